// The fault injector: crashes, restarts, partitions into arbitrary subsets, and heals, at
// random times during the workload. Some faults come in bursts (shortly after the previous
// one) and some are armed to fire the moment a daemon enters commit or recovery, so that
// faults also hit a configuration change that is already under way. Pure: the cluster asks
// what to do next and carries it out; every decision comes from the injector's own stream.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/sim/rng.h"
#include "tests/sim/scheduler.h"

namespace agent::sim {

struct FaultConfig {
  bool enabled = false;
  bool crashes = true;      // a daemon stops; its ring, group table and clients are gone
  bool restarts = true;     // a crashed daemon starts again with incarnation + 1, new clients
  bool partitions = true;   // the daemons split into 2..3 sides; a later fault heals them
  Time mean_gap_us = 50000;  // between two faults (uniform 0..2 * mean)
  double p_burst = 0.25;     // the next fault follows within burst_us
  Time burst_us = 5000;
  double p_on_change = 0.25;  // the next fault fires when a daemon enters commit or recovery
  Time on_change_max_delay_us = 2000;  // ... after a random delay up to this
};

enum class FaultKind : uint8_t { kCrash, kRestart, kPartition, kHeal };

struct FaultAction {
  FaultKind kind = FaultKind::kCrash;
  NodeId node = 0;              // kCrash, kRestart
  std::map<NodeId, int> sides;  // kPartition: every daemon's side
  std::string str() const;
};

class FaultInjector {
 public:
  FaultInjector(FaultConfig cfg, std::vector<NodeId> daemons, uint64_t seed);

  const FaultConfig& config() const { return cfg_; }
  // Plans the first fault after now.
  void begin(Time now) { plan(now); }
  // When the next fault is due (by time), and whether it is armed to fire early, at the next
  // configuration change.
  Time next_at() const { return next_at_; }
  bool on_change() const { return on_change_; }
  Time change_delay() { return rng_.below(cfg_.on_change_max_delay_us + 1); }
  // The next fault, given which daemons are down and whether the network is split; then
  // plans the one after it. False when no fault is possible now.
  bool next(const std::set<NodeId>& down, bool partitioned, Time now, FaultAction& out);

 private:
  void plan(Time now);

  FaultConfig cfg_;
  std::vector<NodeId> daemons_;
  Rng rng_;
  Time next_at_ = 0;
  bool on_change_ = false;
};

const char* to_string(FaultKind k);

}  // namespace agent::sim
