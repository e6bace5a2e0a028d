// One-line descriptions of ring packets, for agent-sim --trace (diagnosing a failing seed).
#pragma once

#include <string>
#include <string_view>

#include "groups/events.h"

namespace agent::sim {

std::string describe_packet(std::string_view bytes);
std::string describe_event(const groups::Event& e);

}  // namespace agent::sim
