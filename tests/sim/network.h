// The fake network between the simulated daemons: every packet independently may be lost,
// duplicated, and delayed by a base latency plus random jitter (which reorders packets). All
// decisions come from the network's own seeded generator. Partitions split the daemons into
// components; a link between two components is cut both ways, for packets about to be sent and
// for packets in flight (the cluster asks linked() again when one arrives).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/sim/rng.h"
#include "tests/sim/scheduler.h"

namespace agent::sim {

struct NetConfig {
  double loss = 0;         // probability a packet copy is dropped, 0..1
  double duplicate = 0;    // probability a delivered packet arrives twice
  Time base_delay_us = 100;
  Time jitter_us = 0;      // each copy gets an extra uniform 0..jitter_us
};

struct NetStats {
  uint64_t sent = 0;        // packet copies handed to the network (broadcasts count per receiver)
  uint64_t lost = 0;
  uint64_t duplicated = 0;
  uint64_t cut = 0;         // dropped because a partition separates the two daemons
};

class Network {
 public:
  Network(std::vector<NodeId> members, NetConfig cfg, uint64_t seed);

  // Schedules the arrivals of one send: to a daemon, membership::kBroadcast (every other
  // daemon of ring_members: the sender's current ring) or membership::kAllDaemons (every
  // other configured daemon).
  void send(NodeId from, NodeId to, std::string_view bytes, const std::vector<NodeId>& ring_members,
            Time now, Scheduler& sched);
  // Every daemon's side (absent: side 0); daemons on different sides cannot talk.
  void partition(const std::map<NodeId, int>& side) { side_ = side; }
  void heal_partitions() { side_.clear(); }
  bool linked(NodeId a, NodeId b) const { return side_of(a) == side_of(b); }
  bool partitioned() const;
  // The loss probability from now on (delay, jitter and duplication stay).
  void set_loss(double loss) { cfg_.loss = loss; }
  void count_cut() { ++stats_.cut; }
  std::string describe_partition() const;

  const NetConfig& config() const { return cfg_; }
  const NetStats& stats() const { return stats_; }

 private:
  void send_one(NodeId from, NodeId to, std::string_view bytes, Time now, Scheduler& sched);
  int side_of(NodeId n) const {
    auto it = side_.find(n);
    return it == side_.end() ? 0 : it->second;
  }
  Time delay();

  std::vector<NodeId> members_;
  NetConfig cfg_;
  Rng rng_;
  NetStats stats_;
  std::map<NodeId, int> side_;  // absent: side 0
};

}  // namespace agent::sim
