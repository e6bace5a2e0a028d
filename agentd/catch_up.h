// Catch-up of the message log: a daemon that missed messages of persistent groups — it was
// down, in another partition, or lost the unsynced tail of its log in a crash — gets them from a
// daemon of the ring that has them, once they are in one configuration again.
//
// At every regular configuration each daemon's state event (the group layer's state exchange)
// carries what its log holds of each recent ring (persist::Coverage). When every member's state
// has arrived, every member computes the same plan from them (plan()): for each old ring some
// member holds more of than another, the member holding the most (the lowest id among equals)
// is the ring's donor. A donor reads the missing range from its log a chunk at a time and
// multicasts each chunk through the ring (a fill event, AGREED); the next chunk is read once the
// previous one is delivered, so catch-up goes at the pace of the ring and never floods it.
// Every member that lacks the chunk's messages writes them to its log; the others ignore it.
// A configuration change ends the plan; the next regular configuration plans again from what
// the logs hold then.
//
// Ordinals are the ring's own only up to a gap in its recovery (membership::Delivered::
// past_gap): a log that holds messages delivered past a gap keeps them and takes nothing of that
// ring above its last ordinal before the gap.
//
// A pure state machine: the daemon core drives it and carries out what it asks for.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "membership/ring.h"
#include "persist/entry.h"

namespace agent::daemon {

using membership::NodeId;

// What a daemon says of its log in its state event.
struct LogSummary {
  bool has_log = false;  // it keeps a message log (persist.groups set)
  persist::Coverage coverage;
};
void encode_log_summary(std::string& out, const LogSummary& s);
bool decode_log_summary(std::string_view bytes, LogSummary& s);

// One ring's catch-up: donor sends the ring's messages with ordinals in (after, upto].
struct CatchUpTask {
  uint64_t ring = 0;
  NodeId donor = 0;
  uint64_t after = 0;
  uint64_t upto = 0;
  friend bool operator==(const CatchUpTask& a, const CatchUpTask& b) {
    return a.ring == b.ring && a.donor == b.donor && a.after == b.after && a.upto == b.upto;
  }
};

// The plan for configuration `ring` from every member's summary (the same at every member):
// tasks in ring order.
std::vector<CatchUpTask> plan_catch_up(uint64_t ring, const std::map<NodeId, LogSummary>& all);

// A chunk of a ring's messages, from its donor: every message of the ring with an ordinal in
// (after, reached]; final: reached is the task's upto.
struct FillEvent {
  uint64_t config = 0;  // the configuration whose plan it serves
  uint64_t ring = 0;
  uint64_t after = 0;
  uint64_t reached = 0;
  bool final = false;
  bool failed = false;  // the donor could not read its log: the task ends without the messages
  std::vector<persist::Record> records;
};
void encode_fill(std::string& out, const FillEvent& f);
bool decode_fill(std::string_view bytes, FillEvent& f);
// The event kind byte of a fill (after the version byte, as group events have it).
constexpr uint8_t kFillEventKind = 6;
// Whether the event bytes are a fill (else a group event).
inline bool is_fill_event(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[1]) == kFillEventKind;
}

// What the log of this daemon is to read for a task it donates.
struct FillRead {
  uint64_t config = 0;
  uint64_t ring = 0;
  uint64_t after = 0;
  uint64_t upto = 0;
};

class CatchUp {
 public:
  explicit CatchUp(NodeId self) : self_(self) {}

  // A regular configuration (ends any plan); its members, sorted.
  void on_regular(uint64_t config, std::vector<NodeId> members);
  // A member's state event for the current configuration arrived with this summary (empty
  // bytes: the member says nothing of a log). When every member's has, the plan is made.
  void on_state(NodeId origin, uint64_t config, std::string_view summary);
  // A configuration change began (transitional): the plan ends.
  void on_transitional();

  // The next read of this daemon's log the plan needs (one at a time), or nothing.
  std::optional<FillRead> next_read();
  // The log answered the read: the fill event to multicast, or nothing when the plan it was
  // for has ended.
  std::optional<FillEvent> on_read(const FillRead& r, std::vector<persist::Record>&& records,
                                   uint64_t reached, const std::string& error);
  // A fill event was delivered (from origin). True when this daemon's log is to take its
  // records (the core hands them over; the log skips what it holds).
  bool on_fill(NodeId origin, const FillEvent& f);

  // Whether this daemon still waits for messages of the current plan (history reads wait).
  bool catching_up() const { return !planned_ || !needs_.empty(); }
  bool planned() const { return planned_; }
  const std::vector<CatchUpTask>& plan() const { return plan_; }

  struct Stats {
    uint64_t plans = 0, donated_chunks = 0, filled_chunks = 0, filled_messages = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  NodeId self_;
  uint64_t config_ = 0;
  std::vector<NodeId> members_;
  std::map<NodeId, LogSummary> states_;
  bool planned_ = false;
  std::vector<CatchUpTask> plan_;
  // As donor: the tasks left (front first) and how far the current one got; a chunk is out
  // (read or multicast, not yet delivered back) while in_flight_.
  std::vector<CatchUpTask> donate_;
  uint64_t donated_upto_ = 0;
  bool in_flight_ = false;
  std::map<uint64_t, uint64_t> needs_;  // as needer: ring -> the task's upto
  Stats stats_;
};

}  // namespace agent::daemon
