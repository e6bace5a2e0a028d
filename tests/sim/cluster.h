// N simulated daemons, each one real membership::Ring plus one real groups::GroupState named
// "dN" and its clients, joined by the fake network and driven in virtual time. The daemons
// form their first ring by themselves; the workload starts once it is operational. With faults
// on, daemons crash (ring, group table and clients gone) and restart (incarnation + 1, new
// clients), and the network splits and heals. At the end the cluster heals everything,
// restarts what is down, waits for one ring of all daemons, lets every client send one more
// message (the final round), and runs until everything due is delivered (or a bound). It
// records everything the checker needs.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "groups/group_state.h"
#include "membership/ring.h"
#include "tests/sim/faults.h"
#include "tests/sim/network.h"
#include "tests/sim/records.h"
#include "tests/sim/scheduler.h"
#include "tests/sim/workload.h"

namespace agent::sim {

struct ClusterConfig {
  uint64_t seed = 1;
  size_t nodes = 3;                   // daemons 1..nodes
  size_t clients_per_daemon = 2;
  membership::RingConfig ring;        // members and incarnation are filled in by the cluster
  NetConfig net;                      // net.loss applies once the first ring is up
  WorkloadConfig workload;
  FaultConfig faults;
  std::string fault;                  // a ring fault switch: see valid_fault() in sim.h
  NodeId fault_node = 0;              // 0: every daemon
  Time retry_us = 1000;               // a refused submission is retried after this
  Time lossy_tail_us = 100000;        // the network heals this long after the last action
  Time settle_us = 50000;             // run on this long after everything is delivered
  Time start_bound_us = 2000000;      // the workload starts by then even without a first ring
  Time liveness_bound_us = 10000000;  // after the heal: give up (a liveness failure)
  Time stall_us = 2000000;            // after the heal, no delivery for this long: give up too
  bool verbose = false;
  bool trace = false;                 // print every packet arrival, state change and configuration
  uint64_t max_events = 2000000;      // a run that needs more is stopped (a liveness failure)
};

// Totals for the summary line.
struct ClusterStats {
  uint64_t events = 0;
  uint64_t submissions = 0;
  uint64_t refusals = 0;  // submit() returned false
  uint64_t ring_deliveries = 0;
  uint64_t configurations = 0;  // transitional and regular, over all daemons
  uint64_t client_deliveries = 0;
  uint64_t warnings = 0;
  uint64_t crashes = 0, restarts = 0, partitions = 0, heals = 0;
  membership::RingStats ring;  // summed over every daemon instance
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
    uint32_t instance;
    bool alive = true;
    std::deque<Queued> queue;  // generated, not yet accepted by the ring
    uint64_t last_index = 0;   // highest ring index delivered to it
  };
  struct Daemon {
    NodeId id = 0;
    std::string name;
    bool alive = true;
    uint64_t incarnation = 1;
    uint32_t stored_ring_seq = 0;  // what its ring stored "on disk": survives crashes
    uint32_t instance = 0;  // in the records
    uint64_t gen = 0;       // this instance's generation (timers and retries carry it)
    std::unique_ptr<membership::Ring> ring;
    std::unique_ptr<groups::GroupState> groups;
    std::vector<size_t> clients;  // its live clients
    std::deque<Queued> own;       // the daemon's own events (state) refused by the ring
    size_t queued = 0;            // over its clients' queues
    Time timer_at = 0;            // the scheduled wake-up (0: none)
    bool retry_pending = false;
    uint64_t messages = 0;        // messages delivered by this instance
    uint64_t own_submitted = 0, own_delivered = 0;
    // The stream so far, as the cluster saw it: for the SAFE check and convergence.
    uint64_t last_regular = 0;
    std::vector<NodeId> regular_members;
    bool in_transitional = false;
    std::vector<NodeId> transitional_members;
    membership::RingState state = membership::RingState::kGather;
  };

  void step(SimEvent ev);
  void workload_step();
  void fault_step();
  void final_heal();
  void crash(Daemon& d);
  void restart(Daemon& d);
  void start_instance(Daemon& d);
  void add_client(Daemon& d, const std::string& name);
  void queue_action(Client& c, const ClientAction& a);
  // Carries out the ring's actions and feeds it queued submissions until neither has more.
  void settle(Daemon& d);
  void handle(Daemon& d, membership::Actions a);
  void on_delivered(Daemon& d, membership::Delivered& x);
  void route(Daemon& d, uint64_t index, std::vector<groups::Delivery>& out);
  void check_safe(Daemon& d, const membership::Delivered& x);
  bool submit(Daemon& d, const Queued& q);
  bool pump(Daemon& d);
  void schedule_timer(Daemon& d);
  void watch_state(Daemon& d);
  bool first_ring_up() const;
  bool converged() const;
  void begin_final_round();
  bool everything_delivered() const;
  std::vector<size_t> alive_clients() const;
  std::set<NodeId> down() const;
  void violation(std::string what);

  ClusterConfig cfg_;
  Scheduler sched_;
  std::unique_ptr<Network> net_;
  std::unique_ptr<Workload> workload_;
  std::unique_ptr<FaultInjector> injector_;
  std::vector<Daemon> daemons_;
  std::vector<Client> clients_;
  std::map<std::string, size_t> client_index_;
  Records rec_;
  ClusterStats stats_;
  membership::RingStats dead_ring_stats_;  // of crashed instances
  Time now_ = 0;
  uint64_t gen_ = 0;             // instance generations: timers of a crashed one are stale
  uint64_t fault_gen_ = 0;       // kFault events of an older plan are stale
  bool fault_armed_ = false;     // the next fault fires when a daemon enters commit/recovery
  size_t total_queued_ = 0;
  bool started_ = false;         // the workload has started
  bool healed_ = false;          // the final heal happened
  bool final_round_ = false;     // the final round's messages are queued
  Time last_progress_ = 0;       // the last ring delivery anywhere
  // Submissions after convergence: nonce -> daemons that delivered it (all must).
  std::map<uint64_t, std::set<NodeId>> late_;
  size_t late_done_ = 0;
  uint64_t total_submitted_ = 0;  // without faults: every daemon delivers every submission
};

}  // namespace agent::sim
