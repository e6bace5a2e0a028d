// The group table of one daemon, as a pure state machine: it consumes the totally ordered event
// stream and produces the deliveries for the members this daemon hosts. No I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "groups/events.h"
#include "transport/client_protocol.h"

namespace agent::groups {

// One thing to hand to local members: a data message or a membership notice.
struct Delivery {
  const Event* data = nullptr;  // set for data: the event passed to apply(), valid during it
  proto::Membership membership;  // set when data == nullptr
  std::vector<std::string> recipients;  // local members' private groups, sorted, no duplicates
};

struct GroupStats {
  uint64_t events = 0;
  uint64_t ignored = 0;  // joins of members already in, leaves of non-members
};

class GroupState {
 public:
  // daemon: this daemon's name; only members "#x#daemon" are delivered to.
  explicit GroupState(std::string daemon);

  // Applies the event at position seq of the total order. Appends deliveries to out.
  // Deliveries for one event come out in the order they must reach the clients.
  void apply(uint64_t seq, const Event& ev, std::vector<Delivery>& out);

  // The configuration id that new views carry (set by the configuration layer).
  void set_config(uint64_t config) { config_ = config; }

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
  void add_membership(const std::string& group, const Group& g, uint32_t cause,
                      const std::string& changed, std::vector<Delivery>& out);
  void remove_member(uint64_t seq, const std::string& member, const std::string& group,
                     uint32_t cause, std::vector<Delivery>& out);
  void apply_data(const Event& ev, std::vector<Delivery>& out);

  std::string daemon_;
  uint64_t config_ = 0;
  std::unordered_map<std::string, Group> groups_;
  std::unordered_map<std::string, std::set<std::string>> member_groups_;
  GroupStats stats_;
};

}  // namespace agent::groups
