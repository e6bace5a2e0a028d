// What the message log keeps: a delivered message and its position in the total order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace agent::persist {

// Where a message stands in the total order: the ring that ordered it and its ordinal among that
// ring's messages. The same at every daemon that delivered the message; a daemon's positions only
// grow (ring ids grow along any daemon's history). Not dense: a group's messages skip the
// positions of other groups' messages.
struct Position {
  uint64_t ring = 0;
  uint64_t ordinal = 0;
  friend bool operator<(const Position& a, const Position& b) {
    return a.ring != b.ring ? a.ring < b.ring : a.ordinal < b.ordinal;
  }
  friend bool operator==(const Position& a, const Position& b) {
    return a.ring == b.ring && a.ordinal == b.ordinal;
  }
  friend bool operator!=(const Position& a, const Position& b) { return !(a == b); }
  friend bool operator<=(const Position& a, const Position& b) { return !(b < a); }
  bool zero() const { return ring == 0 && ordinal == 0; }
  // "ring_seq.rep:ordinal"
  std::string str() const {
    return std::to_string(ring >> 32) + "." + std::to_string(ring & 0xffffffffu) + ":" +
           std::to_string(ordinal);
  }
};
constexpr Position kEnd{~0ull, ~0ull};  // after every position

struct Entry {
  Position pos;
  uint64_t time_us = 0;  // when this daemon delivered it (wall clock, microseconds since 1970)
  uint32_t service = 0;
  int16_t msg_type = 0;
  std::string sender;               // the sender's private group
  std::vector<std::string> groups;  // every group it was sent to
  std::string payload;
};

// One delivered message and the persistent groups among its destinations (logged under each).
struct Record {
  Entry entry;
  std::vector<std::string> log_groups;
  // Delivered past a gap in its ring's recovery (membership::Delivered::past_gap): its ordinal
  // is this daemon's own, not the ring's.
  bool past_gap = false;
  // The payload may stay where the ring received it: a view into bytes payload_owner keeps
  // alive (immutable, shared with the ring), instead of a copy in entry.payload.
  std::shared_ptr<const void> payload_owner;
  std::string_view payload_view;
  std::string_view payload() const {
    return payload_owner ? payload_view : std::string_view(entry.payload);
  }
};

// What a log holds of one ring: every message of a persistent group with an ordinal up to
// `through` (ordinals there are the ring's: the same message at every daemon). past_gap: it
// also holds messages delivered past a gap, whose ordinals are its own — it cannot take
// another daemon's messages above `through` without mixing two numberings.
struct RingCover {
  uint64_t through = 0;
  bool past_gap = false;
  friend bool operator==(const RingCover& a, const RingCover& b) {
    return a.through == b.through && a.past_gap == b.past_gap;
  }
};
// By ring id. A log keeps the newest kCoveredRings.
using Coverage = std::map<uint64_t, RingCover>;
constexpr size_t kCoveredRings = 64;

// A message at pos (past a gap or not) went to the log: what that says of its ring.
inline void cover(Coverage& c, Position pos, bool past_gap) {
  RingCover& r = c[pos.ring];
  if (past_gap) r.past_gap = true;
  else if (!r.past_gap && pos.ordinal > r.through) r.through = pos.ordinal;
  while (c.size() > kCoveredRings) c.erase(c.begin());
}

// A range of one group's entries, read for a client.
struct ReadResult {
  Position after;  // where the range starts (a time resolved to a position)
  std::vector<Entry> entries;
  bool more = false;  // the range holds more than the limits allowed
  bool gap = false;   // retention removed entries after the requested position
  std::string error;
};

}  // namespace agent::persist
