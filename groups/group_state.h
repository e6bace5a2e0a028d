// The group table of one daemon, as a pure state machine: it consumes the totally ordered
// stream (events and configuration changes) and produces the deliveries for the members this
// daemon hosts. No I/O, no clock.
//
// Two tables. The shared table (groups and their members, every daemon's) is what views list;
// every daemon that delivers a view with a given id holds the same shared table there. The local
// table (this daemon's members and their groups) is the truth about this daemon's members; data
// reaches local members through it, and the state exchange announces it.
//
// Modes, following the ring's stream Reg(C) msgs [Trans(C) msgs] Reg(C'') ...:
//   exchange      from Reg(C) until every daemon of C's state arrived: events are held back.
//                 The last state rebuilds the shared table from the states alone, every group
//                 with local members gets a regular view caused by the network (with vs-sets),
//                 then the held events apply.
//   regular       events apply at once; views are named (C, ordinal).
//   transitional  from Trans(C) until Reg(C''): members on daemons outside the transitional set
//                 T are cut, and events apply at once, but their views are named (C'', T-mark of
//                 C and ordinal): only the daemons of T deliver them, and they agree on them,
//                 where daemons of C that went elsewhere may not. Joins ordered by daemons
//                 outside T do not enter the shared table.
// A transitional configuration that cuts an exchange short rebuilds the shared table from the
// states that did arrive (every daemon of T saw the same ones), cuts it to T, applies the held
// events in transitional mode, then gives the transitional views. Local members whose state did
// not arrive are missing from the shared table until the next exchange: they get a transitional
// view of their own (the shared members and this daemon's, named by this daemon alone:
// own_view_slot), then no view until the next regular one, but still their data and their own
// leave notices.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "groups/events.h"
#include "transport/client_protocol.h"

namespace agent::groups {

using DaemonId = uint32_t;
// Marks the view sequence numbers of transitional views, so they never equal one of a message.
constexpr uint64_t kTransitionalView = 1ull << 63;
// The sequence number of views given between Trans(old_ring) and the next regular
// configuration, for the item at this ordinal of old_ring; with the ring being installed as the
// configuration, they are unique per transitional set (its old ring and the new ring).
// Bits 32..62 mix the old ring's sequence and representative (two rings formed at once in two
// partitions share a sequence).
inline uint64_t transitional_view_seq(uint64_t old_ring, uint64_t ordinal) {
  uint64_t ring_seq = old_ring >> 32, rep = old_ring & 0xffffffffu;
  uint64_t mix = (ring_seq ^ (rep << 20) ^ (rep >> 11)) & 0x7fffffffu;
  return kTransitionalView | mix << 32 | (ordinal & 0xffffffffu);
}

// The ordinal slot of the transitional view that only this daemon's members get (their state did
// not arrive before the change): above any message ordinal, one per daemon name.
inline uint64_t own_view_slot(const std::string& daemon) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : daemon) h = (h ^ c) * 16777619u;
  return 0x80000000u | (h & 0x7fffffffu);
}

// One thing to hand to local members: a data message or a membership notice.
struct Delivery {
  const Event* data = nullptr;  // set for data: valid until the next call into GroupState
  proto::Membership membership;  // set when data == nullptr
  std::vector<std::string> recipients;  // local members' private groups, sorted, no duplicates
  // The position of the event that caused it in the total order: the ring that ordered it
  // and its ordinal there (zero for views caused by a configuration change).
  uint64_t ring = 0;
  uint64_t ordinal = 0;
};

struct GroupStats {
  uint64_t events = 0;
  uint64_t ignored = 0;  // joins of members already in, leaves of non-members, stale states
  uint64_t held = 0;     // events held back during a state exchange
  uint64_t exchanges = 0;
};

class GroupState {
 public:
  // daemon: this daemon's name; only members "#x#daemon" are delivered to.
  explicit GroupState(std::string daemon);

  // Applies the event at position seq of the total order, submitted by daemon origin.
  // Appends deliveries to out, in the order they must reach the clients.
  void apply(uint64_t seq, DaemonId origin, const Event& ev, std::vector<Delivery>& out);
  void apply(uint64_t seq, const Event& ev, std::vector<Delivery>& out) {
    apply(seq, 0, ev, out);
  }
  // The ring delivered Trans(C) at this ordinal of C: only these daemons came along, into the
  // ring next_ring (0: name its views by C).
  void on_transitional(uint64_t ordinal, const std::vector<DaemonId>& daemons,
                       std::vector<Delivery>& out, uint64_t next_ring = 0);
  // The ring delivered a regular configuration. Returns the kState event this daemon must
  // submit to the ring (AGREED) for the state exchange.
  Event on_regular(uint64_t seq, uint64_t config, const std::vector<DaemonId>& daemons,
                   std::vector<Delivery>& out);

  // The configuration id that new views carry.
  void set_config(uint64_t config) { config_ = config; }
  uint64_t config() const { return config_; }
  bool exchanging() const { return mode_ == Mode::kExchange; }

  // Queries.
  const std::set<std::string>* members(const std::string& group) const;
  bool is_member(const std::string& member, const std::string& group) const;
  size_t group_count() const { return groups_.size(); }
  // Every group's name and members, by name (operators' views; not for the hot path).
  std::vector<std::pair<std::string, std::vector<std::string>>> table() const;
  const GroupStats& stats() const { return stats_; }
  bool is_local(const std::string& member) const;

  // Proxies: members of another site (the WAN bridge, bridge/site_bridge.h) that this daemon
  // hosts. Registered before their join is ordered, they enter the local table like local
  // members (the state exchange announces them, so they outlive configuration changes as long
  // as this daemon stays) but get no deliveries: they have no session here.
  void add_proxy(const std::string& member) { proxies_.insert(member); }
  // Forgets the proxy once it has left (its disconnect was delivered).
  void drop_proxy(const std::string& member) { proxies_.erase(member); }
  bool is_proxy(const std::string& member) const { return proxies_.count(member) != 0; }
  // The shared table: every member and the groups it is in.
  const std::unordered_map<std::string, std::set<std::string>>& member_groups() const {
    return member_groups_;
  }

 private:
  enum class Mode { kRegular, kExchange, kTransitional };
  struct Group {
    std::set<std::string> members;  // sorted: the stable order views list them in
    proto::ViewId view;
  };
  struct Held {
    uint64_t seq;
    DaemonId origin;
    Event ev;
  };
  struct Exchange {
    uint64_t config = 0;
    std::set<DaemonId> expected, received;
    std::map<DaemonId, uint64_t> old_configs;  // where each daemon came from (vs-sets)
    std::vector<std::pair<std::string, std::string>> memberships;  // (member, group)
    std::map<std::string, DaemonId> member_daemons;
    std::deque<Held> held;
  };

  proto::ViewId view_id(uint64_t seq) const;
  // Applies the event, its deliveries marked with its position.
  void apply_now(uint64_t seq, DaemonId origin, const Event& ev, std::vector<Delivery>& out);
  void apply_event(uint64_t seq, DaemonId origin, const Event& ev, std::vector<Delivery>& out);
  void view(const std::string& group, const Group& g, uint32_t service, const std::string& changed,
            std::vector<Delivery>& out);
  void remove_shared(uint64_t seq, const std::string& member, const std::string& group,
                     uint32_t cause, std::vector<Delivery>& out);
  void add_local(const std::string& member, const std::string& group);
  bool remove_local(const std::string& member, const std::string& group);
  // A member of the local table: local, or a proxy of this daemon.
  bool is_hosted(const std::string& member) const {
    return is_local(member) || (!proxies_.empty() && proxies_.count(member));
  }
  void apply_data(const Event& ev, std::vector<Delivery>& out);
  void take_state(const Event& ev, DaemonId origin);
  // Replaces the shared table by what the exchange's states say.
  void rebuild(const Exchange& ex);
  void complete_exchange(uint64_t seq, std::vector<Delivery>& out);
  void forget_member_group(const std::string& member, const std::string& group);

  std::string daemon_;
  Mode mode_ = Mode::kRegular;
  uint64_t config_ = 0;     // the regular configuration (ring) of the current segment
  uint64_t next_ring_ = 0;  // transitional mode: the ring being installed
  std::set<DaemonId> trans_;  // transitional mode: the transitional set
  // The shared table.
  std::unordered_map<std::string, Group> groups_;
  std::unordered_map<std::string, std::set<std::string>> member_groups_;
  std::unordered_map<std::string, DaemonId> member_daemon_;  // who ordered the join / sent the state
  // The local table: group -> this daemon's members in it, and member -> its groups.
  std::unordered_map<std::string, std::set<std::string>> local_members_;
  std::unordered_map<std::string, std::set<std::string>> local_groups_;
  std::set<std::string> proxies_;
  Exchange exchange_;
  std::deque<Held> replayed_;  // held events applied last call: deliveries point into them
  GroupStats stats_;
};

}  // namespace agent::groups
