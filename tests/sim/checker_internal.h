// Shared by the checker's parts (checker.cpp: ring streams; checker_clients.cpp: client
// streams; checker_routing.cpp: the group-table model and the replay). Not an interface.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "groups/events.h"
#include "tests/sim/checker.h"
#include "tests/sim/records.h"

namespace agent::sim::detail {

// What an item of a ring stream is, the same at every daemon that delivers it:
//   a message: its nonce; a regular configuration: its ring id; a transitional configuration:
//   the ring it ends and the regular configuration that follows it (daemons that deliver the
//   same transitional key moved together).
struct ItemKey {
  DeliveryKind kind = DeliveryKind::kMessage;
  uint64_t a = 0, b = 0;
  bool operator<(const ItemKey& o) const { return std::tie(kind, a, b) < std::tie(o.kind, o.a, o.b); }
  bool operator==(const ItemKey& o) const { return kind == o.kind && a == o.a && b == o.b; }
  bool operator!=(const ItemKey& o) const { return !(*this == o); }
};

// One instance's delivery of regular configuration `ring` and what followed, up to its next
// regular configuration (or the end of its stream).
struct Segment {
  uint32_t instance = 0;
  uint64_t ring = 0;
  size_t reg_pos = 0;                   // position of Reg(ring) in the stream
  std::optional<size_t> trans_pos;      // of Trans(ring), if delivered
  std::optional<size_t> next_reg_pos;   // of the next Reg, if delivered
  uint64_t next_ring = 0;
  std::vector<NodeId> trans_members;
  std::vector<uint64_t> regular;        // nonces delivered before Trans(ring)
  std::vector<uint64_t> transitional;   // nonces delivered after it
};

class Ctx {
 public:
  explicit Ctx(const Records& r);

  const Records& r;
  Verdict v;
  void fail(std::string s);
  size_t failures() const { return v.failures.size(); }

  // Derived from the records by index_streams().
  std::vector<std::vector<ItemKey>> keys;             // per instance - 1, per position
  std::vector<std::map<ItemKey, size_t>> position;    // per instance - 1: key -> position
  std::vector<std::vector<Segment>> segments;         // per instance - 1, in stream order
  std::map<uint64_t, std::vector<std::pair<uint32_t, size_t>>> by_ring;  // ring -> (instance, segment #)
  bool streams_ok = true;  // well-formed: the later checks can rely on the structure

  const Instance& inst(uint32_t i) const { return r.instance(i); }
  const std::string& iname(uint32_t i) const { return r.instance(i).name; }
  // The event a message carries (nullopt: unknown or undecodable payload).
  std::optional<groups::Event> event_of(const RingRecord& x) const;
  std::string describe(const RingRecord& x) const;
  std::string describe_nonce(uint64_t nonce) const;
  // The key of the item at ring index `index` of instance i (nullopt: no such item).
  std::optional<ItemKey> key_at(uint32_t i, uint64_t index) const;
  bool alive_at_end(uint32_t i) const;
};

std::string describe(const groups::Event& e);
std::string list(const std::vector<std::string>& v);

// The parts.
void check_streams(Ctx& c);     // structure, identity, FIFO, order, EVS a/b/c/f
void check_liveness(Ctx& c);    // e (and, without faults, everything everywhere)
void check_clients(Ctx& c);     // client safety, order, causal, d, client-level b
void check_routing(Ctx& c);     // the independent model and the replay through GroupState

}  // namespace agent::sim::detail
