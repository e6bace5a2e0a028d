// Group events as bytes, for carrying them through the daemon ring. Versioned, bounds-checked.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "groups/events.h"

namespace agent::groups {

constexpr uint8_t kEventCodecVersion = 1;

void encode_event(std::string& out, const Event& ev);
// A data event from its parts: the bytes encode_event writes for such an Event.
void encode_data_event(std::string& out, std::string_view member, uint32_t service,
                       int16_t msg_type, const std::string_view* groups, size_t ngroups,
                       std::string_view payload);
// nullopt for anything that is not exactly one well-formed event. With payload given, a data
// event's payload is not copied: ev.payload stays empty and *payload views it inside bytes.
std::optional<Event> decode_event(std::string_view bytes, std::string_view* payload = nullptr);
// The same into ev, whose strings and lists keep their capacity (no allocation per event once
// they are large enough); false when the bytes do not decode (ev is then unspecified).
bool decode_event(std::string_view bytes, Event& ev, std::string_view* payload = nullptr);

}  // namespace agent::groups
