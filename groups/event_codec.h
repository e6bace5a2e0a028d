// Group events as bytes, for carrying them through the daemon ring. Versioned, bounds-checked.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "groups/events.h"

namespace agent::groups {

constexpr uint8_t kEventCodecVersion = 1;

void encode_event(std::string& out, const Event& ev);
// nullopt for anything that is not exactly one well-formed event.
std::optional<Event> decode_event(std::string_view bytes);

}  // namespace agent::groups
