// One-line descriptions of ring packets, for agent-sim --trace (diagnosing a failing seed).
#pragma once

#include <string>
#include <string_view>

namespace agent::sim {

std::string describe_packet(std::string_view bytes);

}  // namespace agent::sim
