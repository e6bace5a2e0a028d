// The fake network between the simulated daemons: every packet independently may be lost,
// duplicated, and delayed by a base latency plus random jitter (which reorders packets). All
// decisions come from the network's own seeded generator.
#pragma once

#include <cstdint>
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
};

class Network {
 public:
  Network(std::vector<NodeId> members, NetConfig cfg, uint64_t seed);

  // Schedules the arrivals of one send (to a member, or membership::kBroadcast: every other one).
  void send(NodeId from, NodeId to, const std::string& bytes, Time now, Scheduler& sched);
  // From now on nothing is lost (delay, jitter and duplication stay).
  void heal() { cfg_.loss = 0; }

  const NetConfig& config() const { return cfg_; }
  const NetStats& stats() const { return stats_; }

 private:
  void send_one(NodeId from, NodeId to, const std::string& bytes, Time now, Scheduler& sched);
  Time delay();

  std::vector<NodeId> members_;
  NetConfig cfg_;
  Rng rng_;
  NetStats stats_;
};

}  // namespace agent::sim
