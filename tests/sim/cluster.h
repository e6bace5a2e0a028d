// N simulated daemons, each one real membership::Ring plus one real groups::GroupState named
// "dN" and its clients, joined by the fake network and driven in virtual time. The cluster runs
// the workload, heals the network, runs until everything is delivered everywhere (or a bound),
// and records everything the checker needs.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "groups/group_state.h"
#include "membership/ring.h"
#include "tests/sim/network.h"
#include "tests/sim/records.h"
#include "tests/sim/scheduler.h"
#include "tests/sim/workload.h"

namespace agent::sim {

struct ClusterConfig {
  uint64_t seed = 1;
  size_t nodes = 3;                   // daemons 1..nodes
  size_t clients_per_daemon = 2;
  membership::RingConfig ring;        // members are filled in by the cluster
  NetConfig net;
  WorkloadConfig workload;
  std::string fault;                  // "", "skip-retransmit", "out-of-order", "safe-early"
  NodeId fault_node = 0;              // 0: every daemon
  Time retry_us = 1000;               // a refused submission is retried after this
  Time lossy_tail_us = 100000;        // the network heals this long after the last action
  Time settle_us = 50000;             // run on this long after everything is delivered
  Time liveness_bound_us = 10000000;  // after the heal: give up (a liveness failure)
  Time stall_us = 2000000;            // after the heal, no delivery for this long: give up too
  bool verbose = false;
};

// Totals for the summary line.
struct ClusterStats {
  uint64_t events = 0;
  uint64_t submissions = 0;
  uint64_t refusals = 0;  // submit() returned false
  uint64_t ring_deliveries = 0;
  uint64_t client_deliveries = 0;
  uint64_t warnings = 0;
  membership::RingStats ring;  // summed over the daemons
  NetStats net;
};

class Cluster {
 public:
  explicit Cluster(ClusterConfig cfg);
  ~Cluster();

  void run();
  const Records& records() const { return rec_; }
  ClusterStats stats() const;

 private:
  struct Queued {
    std::string bytes;  // the encoded event
    uint32_t service;
  };
  struct Client {
    std::string name;  // private group
    size_t daemon;     // index into daemons_
    std::deque<Queued> queue;  // generated, not yet accepted by the ring
    uint64_t last_index = 0;   // highest ring index delivered to it
  };
  struct Daemon {
    NodeId id = 0;
    std::string name;
    std::unique_ptr<membership::Ring> ring;
    std::unique_ptr<groups::GroupState> groups;
    std::vector<size_t> clients;
    size_t queued = 0;        // over its clients' queues
    Time timer_at = 0;        // the scheduled wake-up (0: none)
    bool retry_pending = false;
    uint64_t delivered = 0;
  };

  void step(SimEvent ev);
  void workload_step();
  // Carries out the ring's actions and feeds it queued submissions until neither has more.
  void settle(Daemon& d);
  void handle(Daemon& d, membership::Actions a);
  void on_delivered(Daemon& d, membership::Delivered& x);
  bool pump(Daemon& d);
  void schedule_timer(Daemon& d);
  bool everything_delivered() const;
  void violation(std::string what);

  ClusterConfig cfg_;
  Scheduler sched_;
  std::unique_ptr<Network> net_;
  std::unique_ptr<Workload> workload_;
  std::vector<Daemon> daemons_;
  std::vector<Client> clients_;
  std::map<std::string, size_t> client_index_;
  Records rec_;
  ClusterStats stats_;
  Time now_ = 0;
  uint64_t total_submitted_ = 0;
  size_t total_queued_ = 0;
  bool healed_ = false;
  Time last_progress_ = 0;  // the last ring delivery anywhere
};

}  // namespace agent::sim
