// The group table of one daemon, as a pure state machine: it consumes the totally ordered
// stream (events and configuration changes) and produces the deliveries for the members this
// daemon hosts. No I/O, no clock.
//
// Configuration changes: at a transitional configuration the members on daemons that did not
// come along are cut and every group with local members gets a transitional view. At the
// regular configuration every daemon sends its local memberships (a kState event, which the
// caller submits to the ring); events ordered before all states have arrived are held back.
// When the last state arrives the table is rebuilt from the states, every group with local
// members gets a regular view caused by the network (with vs-sets), and the held events apply.
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
// The sequence number of the transitional views of a configuration change: unique per old
// ring and position in it (daemons from different old rings install different ones).
inline uint64_t transitional_view_seq(uint64_t old_ring, uint64_t ordinal) {
  return kTransitionalView | ((old_ring >> 32) & 0x7fffffff) << 32 | (ordinal & 0xffffffff);
}

// One thing to hand to local members: a data message or a membership notice.
struct Delivery {
  const Event* data = nullptr;  // set for data: valid until the next call into GroupState
  proto::Membership membership;  // set when data == nullptr
  std::vector<std::string> recipients;  // local members' private groups, sorted, no duplicates
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
  // The ring delivered a transitional configuration: only these daemons came along.
  // view_config names the transitional views (daemons of one old configuration that split
  // apart must not share view ids): the configuration being installed; 0 keeps the current.
  void on_transitional(uint64_t seq, const std::vector<DaemonId>& daemons,
                       std::vector<Delivery>& out, uint64_t view_config = 0);
  // The ring delivered a regular configuration. Returns the kState event this daemon must
  // submit to the ring (AGREED) for the state exchange.
  Event on_regular(uint64_t seq, uint64_t config, const std::vector<DaemonId>& daemons,
                   std::vector<Delivery>& out);

  // The configuration id that new views carry.
  void set_config(uint64_t config) { config_ = config; }
  uint64_t config() const { return config_; }
  bool exchanging() const { return exchange_.active; }

  // Queries.
  const std::set<std::string>* members(const std::string& group) const;
  bool is_member(const std::string& member, const std::string& group) const;
  size_t group_count() const { return groups_.size(); }
  const GroupStats& stats() const { return stats_; }
  bool is_local(const std::string& member) const;

 private:
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
    bool active = false;
    uint64_t config = 0;
    std::set<DaemonId> expected, received;
    std::map<DaemonId, uint64_t> old_configs;  // where each daemon came from (vs-sets)
    std::vector<std::pair<std::string, std::string>> memberships;  // (member, group)
    std::map<std::string, DaemonId> member_daemons;
    std::deque<Held> held;
  };

  void apply_now(uint64_t seq, DaemonId origin, const Event& ev, std::vector<Delivery>& out);
  void add_membership(const std::string& group, const Group& g, uint32_t cause,
                      const std::string& changed, std::vector<Delivery>& out);
  void remove_member(uint64_t seq, const std::string& member, const std::string& group,
                     uint32_t cause, std::vector<Delivery>& out);
  void apply_data(const Event& ev, std::vector<Delivery>& out);
  void take_state(const Event& ev, DaemonId origin);
  void complete_exchange(uint64_t seq, std::vector<Delivery>& out);
  void forget_member_group(const std::string& member, const std::string& group);

  std::string daemon_;
  uint64_t config_ = 0;
  std::unordered_map<std::string, Group> groups_;
  std::unordered_map<std::string, std::set<std::string>> member_groups_;
  std::unordered_map<std::string, DaemonId> member_daemon_;  // learned from who ordered joins
  Exchange exchange_;
  std::deque<Held> replayed_;  // held events applied last call: deliveries point into them
  GroupStats stats_;
};

}  // namespace agent::groups
