// N simulated daemons, each the real daemon core (agentd/daemon_core.h: client sessions, group
// table and ring, with the glue agentd runs) named "dN", with its clients, joined by the fake
// network and driven in virtual time. The clients speak the client protocol to their daemon's
// core: hello, joins, leaves, multicasts of every service, disconnects (sometimes in the middle
// of a frame); a client reconnects under its name once its disconnect took effect. The daemons
// form their first ring by themselves; the workload starts once it is operational. With faults
// on, daemons crash (core and clients gone) and restart (incarnation + 1, new clients), and the
// network splits and heals. At the end the cluster heals everything, restarts what is down,
// waits for one ring of all daemons, lets every client send one more message (the final
// round), and runs until everything due is delivered (or a bound). It records everything the
// checker needs, through the core's RingTap (what goes into each ring and comes out) and the
// frames each client reads.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agentd/config.h"
#include "agentd/daemon_core.h"
#include "membership/ring.h"
#include "tests/sim/rng.h"
#include "tests/sim/faults.h"
#include "tests/sim/network.h"
#include "tests/sim/records.h"
#include "tests/sim/scheduler.h"
#include "tests/sim/sim_log.h"
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
  // The message log: the persistent groups (patterns; empty: no log), kept with durability
  // "always" when ring.durable_gate is set. A sync takes sync_min_us..sync_max_us.
  std::vector<std::string> persist_groups;
  Time sync_min_us = 50, sync_max_us = 2000;
  std::string fault;                  // a ring fault switch: see valid_fault() in sim.h
  NodeId fault_node = 0;              // 0: every daemon
  Time retry_us = 1000;               // held submissions and unread client bytes: retried after this
  double p_cut_mid_frame = 0.3;       // a disconnect cuts the connection in the middle of a frame
  double p_pause = 0;                 // a client action also stops its reading for 1..30 ms
  uint64_t client_queue_bytes = 64u << 20;  // the daemons' limit on a client's unread bytes
  // What the daemons do with a client that does not read (clients.slow_policy): drop it, or
  // hold the ring back (the ring's durable gate on) until it reads or slow_timeout_ms passes.
  bool backpressure = false;
  uint32_t slow_timeout_ms = 10000;
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
  uint64_t slow_clients_dropped = 0;  // clients the daemons dropped for not reading
  uint64_t slow_holds = 0;            // times a slow client began to hold the ring back
  uint64_t crashes = 0, restarts = 0, partitions = 0, heals = 0;
  uint64_t logged = 0, syncs = 0;     // message log records appended, syncs completed
  uint64_t filled = 0;                // records other daemons' logs gave (catch-up)
  uint64_t safe_on_disk_checks = 0;   // SAFE deliveries checked against every member's log
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
  struct Node;  // a running daemon instance: its core, and the I/O and tap the core talks to
  struct Client {
    std::string name;  // private group
    std::string user;  // the name in its hello
    size_t daemon;     // index into daemons_
    uint32_t instance;
    bool alive = true;
    daemon::ConnId conn = 0;    // its connection (0: none)
    std::string out;            // written, not yet read by the daemon
    bool close_after = false;   // closes the connection once the daemon has read out
    // Closed, and its disconnect has not taken effect yet (the name is still taken): it
    // reconnects then, and what it writes meanwhile waits in next_out.
    bool departing = false;
    std::string next_out;
    std::unique_ptr<proto::FrameReader> in;  // frames from the daemon
    uint64_t last_index = 0;    // highest ring index delivered to it
    Time paused_until = 0;      // it reads nothing until then (0: it reads)
    // What the daemon sent while it did not read, with the ring index each was sent at.
    std::vector<std::pair<uint64_t, std::string>> unread;
    uint64_t unread_bytes = 0;
  };
  struct Daemon {
    NodeId id = 0;
    std::string name;
    bool alive = true;
    uint64_t incarnation = 1;
    uint32_t stored_ring_seq = 0;  // what its core stored "on disk": survives crashes
    SimLog log;                    // its message log: what was synced survives crashes
    std::deque<std::pair<daemon::FillRead, size_t>> log_reads;  // catch-up reads, oldest first
    uint32_t instance = 0;  // in the records
    uint64_t gen = 0;       // this instance's generation (timers and retries carry it)
    std::unique_ptr<Node> node;
    std::vector<size_t> clients;  // its live clients
    Time timer_at = 0;            // the scheduled wake-up (0: none)
    bool retry_pending = false;
    bool reading = true;          // the core reads client input
    uint64_t delivering = 0;      // the ring index being handed to the clients
    uint64_t messages = 0;        // messages delivered by this instance
    uint64_t own_submitted = 0, own_delivered = 0;
    // The stream so far, as the cluster saw it: for the SAFE check and convergence.
    uint64_t last_regular = 0;
    std::vector<NodeId> regular_members;
    bool in_transitional = false;
    std::vector<NodeId> transitional_members;
    membership::RingState state = membership::RingState::kGather;
    const membership::Ring& ring() const;
  };

  void step(SimEvent ev);
  void workload_step();
  void fault_step();
  void final_heal();
  void crash(Daemon& d);
  void restart(Daemon& d);
  void start_instance(Daemon& d);
  void add_client(Daemon& d, const std::string& user);
  void connect(Client& c);
  void queue_action(Client& c, const ClientAction& a);
  // Runs the core and feeds it what its clients wrote until neither has more to do.
  void settle(Daemon& d);
  bool feed_clients(Daemon& d);
  // The core's outputs (Node forwards them here).
  void on_submit(Daemon& d, uint32_t service, std::string& event);
  void on_refused(Daemon& d);
  std::string_view on_delivered(Daemon& d, const membership::Delivered& x);
  void on_frames(Daemon& d, daemon::ConnId conn, std::string_view bytes);
  void read_frames(Daemon& d, Client& c, uint64_t index, std::string_view bytes);
  void read_unread(Daemon& d, Client& c);
  void on_close(Daemon& d, daemon::ConnId conn, bool aborted);
  void on_session_ended(Daemon& d, const std::string& member, const proto::Membership& notice);
  void check_safe(Daemon& d, const membership::Delivered& x);
  // A SAFE message of a persistent group delivered in a regular configuration is on disk at
  // every daemon of that configuration.
  void check_durable(Daemon& d, const membership::Delivered& x, std::string_view event);
  void on_log_append(Daemon& d, std::vector<persist::Record>& batch);
  void on_log_fill(Daemon& d, std::vector<persist::Record>& records, uint64_t ring, uint64_t upto);
  void on_log_read_ring(Daemon& d, const daemon::FillRead& r, size_t max_bytes);
  void answer_log_read(Daemon& d);
  // The catch-up's promises, at the end of a run (message log on): logs agree on every
  // position both hold with the ring's numbering; once it healed and settled, every log holds
  // what any other holds of the rings it can take.
  void check_catch_up();
  bool catching_up() const;
  void begin_sync(Daemon& d);
  std::string_view on_received(Daemon& d, const membership::Delivered& x);
  Client* client_of(Daemon& d, daemon::ConnId conn);
  size_t pending_client_bytes() const;
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
  Rng rng_;                      // the cluster's own choices (clients cut off mid-frame)
  Records rec_;
  ClusterStats stats_;
  membership::RingStats dead_ring_stats_;  // of crashed instances
  uint64_t dead_slow_holds_ = 0;
  Time now_ = 0;
  uint64_t gen_ = 0;             // instance generations: timers of a crashed one are stale
  uint64_t fault_gen_ = 0;       // kFault events of an older plan are stale
  bool fault_armed_ = false;     // the next fault fires when a daemon enters commit/recovery
  daemon::ConnId next_conn_ = 0;
  int saved_log_level_ = 0;
  const std::string* logging_ = nullptr;  // the daemon whose core runs (log lines name it)
  std::vector<size_t> reconnects_;  // clients whose disconnect took effect: connect again
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
