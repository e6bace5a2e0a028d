#include "tests/sim/cluster.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <stdexcept>

#include "agentd/log.h"
#include "groups/event_codec.h"
#include "tests/sim/nonce.h"
#include "tests/sim/trace.h"
#include "transport/names.h"

namespace agent::sim {

using membership::DeliveryKind;
using membership::Ring;
using membership::RingState;

namespace {
constexpr Time kNever = std::numeric_limits<Time>::max();
constexpr NodeId kStartMarker = 1;  // a kWorkload event with this node: start at the bound

void add_stats(membership::RingStats& s, const membership::RingStats& r) {
  s.packets_sent += r.packets_sent;
  s.packets_retransmitted += r.packets_retransmitted;
  s.tokens_received += r.tokens_received;
  s.tokens_retransmitted += r.tokens_retransmitted;
  s.duplicate_tokens += r.duplicate_tokens;
  s.duplicate_packets += r.duplicate_packets;
  s.bad_packets += r.bad_packets;
  s.messages_delivered += r.messages_delivered;
  s.held_tokens += r.held_tokens;
  s.gathers += r.gathers;
  s.rings_installed += r.rings_installed;
  s.recovered_packets += r.recovered_packets;
}
}  // namespace

// A running daemon instance: the core, and what it talks to (CoreIo, RingTap), forwarded to
// the cluster.
struct Cluster::Node final : daemon::CoreIo, daemon::RingTap {
  Node(Cluster& cl, Daemon& d, membership::RingConfig rc)
      : cluster(cl), daemon(d), config(make_config(cl, d)), core(config, gated(std::move(rc), cl), *this, cl.now_, this) {}

  // Back-pressure holds the ring through its durable gate (daemon::ring_config does the same).
  static membership::RingConfig gated(membership::RingConfig rc, const Cluster& cl) {
    rc.durable_gate |= cl.cfg_.backpressure;
    return rc;
  }

  static daemon::Config make_config(const Cluster& cl, const Daemon& d) {
    daemon::Config c;
    c.name = d.name;
    c.ring.id = d.id;
    c.incarnation = d.incarnation;
    c.ring_seq_floor = d.stored_ring_seq;
    c.client_queue_bytes = cl.cfg_.client_queue_bytes;
    c.slow_policy = cl.cfg_.backpressure ? daemon::Config::SlowPolicy::kBackpressure
                                         : daemon::Config::SlowPolicy::kDisconnect;
    c.slow_timeout_ms = cl.cfg_.slow_timeout_ms;
    c.persist.groups = cl.cfg_.persist_groups;
    c.persist.durability = cl.cfg_.ring.durable_gate ? daemon::PersistSettings::Durability::kAlways
                                                     : daemon::PersistSettings::Durability::kBatch;
    return c;
  }

  // CoreIo
  void send(daemon::ConnId id, std::string_view bytes) override { cluster.on_frames(daemon, id, bytes); }
  void send(daemon::ConnId id, std::string_view head, std::string_view tail) override {
    std::string both(head);
    both.append(tail);
    cluster.on_frames(daemon, id, both);
  }
  void close(daemon::ConnId id) override { cluster.on_close(daemon, id, false); }
  void abort(daemon::ConnId id) override { cluster.on_close(daemon, id, true); }
  void session_ended(const std::string& member, const proto::Membership& notice) override {
    cluster.on_session_ended(daemon, member, notice);
  }
  void send_datagram(NodeId to, std::string_view bytes, const std::vector<NodeId>& members) override {
    cluster.net_->send(daemon.id, to, bytes, members, cluster.now_, cluster.sched_);
  }
  void flush_clients() override {
    // The batch goes out: a client that reads takes it now; what one does not read stays
    // queued.
    for (daemon::ConnId id : std::exchange(written, {})) {
      Client* c = cluster.client_of(daemon, id);
      if (!c) continue;
      if (c->paused_until == 0) cluster.read_unread(daemon, *c);
      core.on_sent(id, c->unread_bytes);
    }
  }
  void set_client_input(bool on) override { daemon.reading = on; }
  std::string store_ring_seq(uint32_t seq) override {
    daemon.stored_ring_seq = seq;
    return {};
  }
  void log_append(std::vector<persist::Record>& batch) override {
    cluster.on_log_append(daemon, batch);
    batch.clear();
  }
  void log_fill(std::vector<persist::Record>& records, uint64_t ring, uint64_t upto) override {
    cluster.on_log_fill(daemon, records, ring, upto);
    records.clear();
  }
  void log_read_ring(const daemon::FillRead& r, size_t max_bytes) override {
    cluster.on_log_read_ring(daemon, r, max_bytes);
  }
  // RingTap
  void on_submit(uint32_t service, std::string& event) override { cluster.on_submit(daemon, service, event); }
  void on_refused() override { cluster.on_refused(daemon); }
  std::string_view on_delivered(const membership::Delivered& d) override {
    return cluster.on_delivered(daemon, d);
  }
  std::string_view on_received(const membership::Delivered& d) override {
    return cluster.on_received(daemon, d);
  }

  Cluster& cluster;
  Daemon& daemon;
  daemon::Config config;  // the core keeps a reference
  daemon::DaemonCore core;
  std::vector<daemon::ConnId> written;  // connections that got bytes since the last flush
  membership::RingFaults faults;        // the ring's, when a fault switch is on
};

const membership::Ring& Cluster::Daemon::ring() const { return node->core.ring(); }

Cluster::Cluster(ClusterConfig cfg) : cfg_(std::move(cfg)), rng_(cfg_.seed, 0x434c5354) {
  if (cfg_.nodes == 0 || cfg_.nodes > 16) throw std::invalid_argument("nodes must be 1..16");
  if (cfg_.clients_per_daemon == 0 || cfg_.clients_per_daemon > 9)
    throw std::invalid_argument("clients_per_daemon must be 1..9");
  std::vector<NodeId> members;
  for (NodeId i = 1; i <= cfg_.nodes; ++i) members.push_back(i);
  cfg_.ring.members = members;
  NetConfig first = cfg_.net;
  first.loss = 0;  // the first ring forms on a clean network; loss starts with the workload
  net_ = std::make_unique<Network>(members, first, cfg_.seed);
  workload_ = std::make_unique<Workload>(cfg_.workload, cfg_.seed);
  if (cfg_.faults.enabled) injector_ = std::make_unique<FaultInjector>(cfg_.faults, members, cfg_.seed);
  rec_.daemons = members;
  rec_.faults = cfg_.faults.enabled;
  daemons_.resize(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    Daemon& d = daemons_[i];
    d.id = members[i];
    d.name = "d" + std::to_string(d.id);
    rec_.daemon_names[d.id] = d.name;
    start_instance(d);
    for (size_t c = 1; c <= cfg_.clients_per_daemon; ++c) add_client(d, "c" + std::to_string(c));
  }
  // The cores log through agentd's log: counted, and printed with the virtual time when verbose.
  saved_log_level_ = static_cast<int>(log::level());
  log::set_level(cfg_.verbose ? log::Level::kInfo : log::Level::kWarn);
  log::set_sink([this](log::Level l, const std::string& text) {
    if (l <= log::Level::kWarn) ++stats_.warnings;
    if (cfg_.verbose && l <= log::Level::kWarn)
      std::printf("  [t=%llu us] %s: %s\n", static_cast<unsigned long long>(now_),
                  logging_ ? logging_->c_str() : "cluster", text.c_str());
  });
}

Cluster::~Cluster() {
  log::set_sink(nullptr);
  log::set_level(static_cast<log::Level>(saved_log_level_));
}

void Cluster::violation(std::string what) {
  if (rec_.violations.size() >= 100) return;  // the first ones tell the story
  rec_.violations.push_back("t=" + std::to_string(now_) + "us: " + std::move(what));
}

void Cluster::start_instance(Daemon& d) {
  d.alive = true;
  d.gen = ++gen_;
  Instance inst;
  inst.daemon = d.id;
  inst.incarnation = d.incarnation;
  inst.name = d.incarnation == 1 ? d.name : d.name + "@" + std::to_string(d.incarnation);
  inst.started_at = now_;
  rec_.instances.push_back(std::move(inst));
  d.instance = static_cast<uint32_t>(rec_.instances.size());
  membership::RingConfig rc = cfg_.ring;
  rc.incarnation = d.incarnation;
  rc.ring_seq_floor = d.stored_ring_seq;
  // As agentd: rings after every one the daemon's log holds a message of (its positions grow).
  if (d.log.last_ring() != 0)
    rc.ring_seq_floor = std::max(rc.ring_seq_floor, static_cast<uint32_t>(d.log.last_ring() >> 32));
  d.log_reads.clear();
  d.clients.clear();
  d.timer_at = 0;
  d.retry_pending = false;
  d.reading = true;
  d.delivering = 0;
  d.messages = d.own_submitted = d.own_delivered = 0;
  d.last_regular = 0;
  d.regular_members.clear();
  d.in_transitional = false;
  d.transitional_members.clear();
  d.node = std::make_unique<Node>(*this, d, rc);
  if (!cfg_.persist_groups.empty()) d.node->core.set_log_coverage(d.log.coverage());
  auto& f = d.node->faults;
  if (cfg_.fault_node == 0 || cfg_.fault_node == d.id) {
    if (cfg_.fault == "skip-retransmit") f.skip_retransmissions = true;
    else if (cfg_.fault == "out-of-order") f.deliver_out_of_order = true;
    else if (cfg_.fault == "safe-early") f.deliver_safe_early = true;
    else if (cfg_.fault == "skip-recovery") f.skip_recovery = true;
    else if (cfg_.fault == "deliver-past-gap") f.deliver_past_gap = true;
    else if (cfg_.fault == "skip-durable-gate") f.ignore_durable = true;
    else if (!cfg_.fault.empty()) throw std::invalid_argument("unknown fault: " + cfg_.fault);
    if (!cfg_.fault.empty()) d.node->core.ring().set_faults(&f);
  }
  d.state = d.ring().state();
}

void Cluster::add_client(Daemon& d, const std::string& user) {
  Client cl;
  cl.user = user;
  cl.name = names::private_group(user, d.name);
  cl.daemon = static_cast<size_t>(&d - daemons_.data());
  cl.instance = d.instance;
  size_t index = workload_->add_client(cl.name);
  if (index != clients_.size()) throw std::logic_error("workload and cluster disagree on clients");
  d.clients.push_back(index);
  client_index_[cl.name] = index;
  rec_.clients[cl.name] = d.instance;
  rec_.received[cl.name];
  clients_.push_back(std::move(cl));
  connect(clients_.back());
}

// Opens a connection and says hello; what the client wrote meanwhile follows.
void Cluster::connect(Client& c) {
  Daemon& d = daemons_.at(c.daemon);
  c.conn = ++next_conn_;
  c.in = std::make_unique<proto::FrameReader>(64u << 20);
  c.departing = false;
  c.close_after = false;
  proto::Hello h;
  h.name = c.user;
  std::string hello;
  proto::encode(hello, h);
  c.out = hello + c.out + c.next_out;
  c.next_out.clear();
  if (!d.node->core.on_open(c.conn, now_)) violation(d.name + " refused a connection of " + c.name);
}

void Cluster::crash(Daemon& d) {
  if (!d.alive) return;
  add_stats(dead_ring_stats_, d.ring().stats());
  dead_slow_holds_ += d.node->core.hub().stats().slow_holds;
  d.node.reset();
  d.log.crash();  // what was not synced is lost
  d.alive = false;
  d.gen = 0;
  d.timer_at = 0;
  d.retry_pending = false;
  Instance& inst = rec_.instances.at(d.instance - 1);
  inst.crashed = true;
  inst.crashed_at = now_;
  for (size_t ci : d.clients) {
    Client& c = clients_[ci];
    read_unread(d, c);  // what reached its socket before the crash it still reads
    c.alive = false;
    c.conn = 0;
    c.out.clear();  // never read by the daemon: lost with it
    c.next_out.clear();
    c.unread.clear();
    c.unread_bytes = 0;
    c.paused_until = 0;
  }
  d.clients.clear();
  ++stats_.crashes;
}

void Cluster::restart(Daemon& d) {
  if (d.alive) return;
  ++d.incarnation;
  start_instance(d);
  // Its old clients are gone; new ones connect under new names.
  for (size_t c = 1; c <= cfg_.clients_per_daemon; ++c)
    add_client(d, "c" + std::to_string(c) + "r" + std::to_string(d.incarnation));
  ++stats_.restarts;
  settle(d);
}

std::vector<size_t> Cluster::alive_clients() const {
  std::vector<size_t> v;
  for (size_t i = 0; i < clients_.size(); ++i)
    if (clients_[i].alive) v.push_back(i);
  return v;
}

std::set<NodeId> Cluster::down() const {
  std::set<NodeId> s;
  for (auto& d : daemons_)
    if (!d.alive) s.insert(d.id);
  return s;
}

bool Cluster::first_ring_up() const {
  for (auto& d : daemons_)
    if (!d.alive || d.last_regular == 0 || d.regular_members.size() != daemons_.size()) return false;
  return true;
}

bool Cluster::converged() const {
  uint64_t ring = 0;
  for (auto& d : daemons_) {
    if (!d.alive || d.ring().state() != RingState::kOperational) return false;
    if (d.ring().members().size() != daemons_.size() || d.last_regular != d.ring().ring_id()) return false;
    if (ring != 0 && d.ring().ring_id() != ring) return false;
    ring = d.ring().ring_id();
  }
  return true;
}

void Cluster::run() {
  try {
    for (auto& d : daemons_) settle(d);
    sched_.push(SimEvent{cfg_.start_bound_us, 0, EventKind::kWorkload, kStartMarker, 0, {}});
    Time settle_until = 0;
    for (;;) {
      if (!started_ && first_ring_up()) {
        SimEvent ev{now_, 0, EventKind::kWorkload, kStartMarker, 0, {}};
        step(ev);
      }
      if (healed_ && !final_round_ && converged()) {
        rec_.converged_at = now_;
        begin_final_round();
      }
      if (sched_.empty()) break;
      if (stats_.events >= cfg_.max_events) {
        violation("liveness: stopped after " + std::to_string(stats_.events) +
                  " events (a storm of packets or timers?)");
        break;
      }
      Time at = sched_.next_time();
      if (healed_) {
        if (settle_until == 0 && everything_delivered()) {
          settle_until = now_ + cfg_.settle_us;
          rec_.quiescent = true;
        }
        if (settle_until != 0 && at > settle_until) break;
        if (settle_until == 0 && (at > rec_.heal_at + cfg_.liveness_bound_us ||
                                  at > std::max(rec_.heal_at, last_progress_) + cfg_.stall_us))
          break;
      }
      step(sched_.pop());
    }
    if (healed_ && everything_delivered()) rec_.quiescent = true;  // nothing left to happen
    check_catch_up();
  } catch (const std::exception& e) {
    violation(std::string("the protocol core threw: ") + e.what());
  }
  rec_.end_at = now_;
  rec_.persist_groups = cfg_.ring.durable_gate ? cfg_.persist_groups : std::vector<std::string>{};
  for (auto& d : daemons_) {
    if (rec_.persist_groups.empty()) break;
    auto& out = rec_.logs[d.id];
    for (const SimLog::Entry* e : d.log.synced_entries())
      out.push_back(LoggedMessage{e->entry.pos.ring, e->entry.pos.ordinal, e->payload_fingerprint});
  }
  for (auto& c : clients_)
    if (c.alive && (!c.out.empty() || !c.next_out.empty()))
      rec_.unsent[c.name] = c.out.size() + c.next_out.size();
}

void Cluster::step(SimEvent ev) {
  now_ = std::max(now_, ev.at);
  ++stats_.events;
  switch (ev.kind) {
    case EventKind::kArrival: {
      Daemon& d = daemons_.at(ev.node - 1);
      if (!d.alive) return;
      if (!net_->linked(ev.from, ev.node)) {
        net_->count_cut();  // cut while in flight
        return;
      }
      if (cfg_.trace)
        std::printf("  [t=%llu us] %s <- d%u: %s\n", static_cast<unsigned long long>(now_), d.name.c_str(),
                    ev.from, describe_packet(ev.bytes).c_str());
      if (stats_.events % 2) {
        // As agentd gives a packet it read into a buffer it lends: with the buffer's owner,
        // for the ring to keep instead of copying (every other arrival: both ways are run).
        auto owner = std::make_shared<const std::string>(std::move(ev.bytes));
        d.node->core.on_datagram(ev.from, *owner, now_, owner);
      } else {
        d.node->core.on_datagram(ev.from, ev.bytes, now_);
      }
      settle(d);
      break;
    }
    case EventKind::kTimer: {
      Daemon& d = daemons_.at(ev.node - 1);
      if (!d.alive || ev.gen != d.gen || ev.at != d.timer_at) return;  // stale
      d.timer_at = 0;
      settle(d);  // the core handles the timeout that is due
      break;
    }
    case EventKind::kWorkload:
      if (ev.node == kStartMarker) {
        if (started_) return;
        started_ = true;
        net_->set_loss(cfg_.net.loss);
        workload_->start(now_);
        sched_.push(SimEvent{workload_->next_at(), 0, EventKind::kWorkload, 0, 0, {}});
        if (injector_) {
          injector_->begin(now_);
          sched_.push(SimEvent{injector_->next_at(), 0, EventKind::kFault, 0, 0, {}, fault_gen_});
        }
        return;
      }
      workload_step();
      break;
    case EventKind::kFault:
      if (ev.gen != fault_gen_ || healed_) return;
      fault_step();
      break;
    case EventKind::kHeal:
      final_heal();
      break;
    case EventKind::kSync: {
      Daemon& d = daemons_.at(ev.node - 1);
      if (!d.alive || ev.gen != d.gen) return;  // the crash lost the sync under way
      persist::Position synced = d.log.end_sync();
      ++stats_.syncs;
      logging_ = &d.name;
      d.node->core.on_log_synced(synced);
      logging_ = nullptr;
      begin_sync(d);  // what came meanwhile
      settle(d);
      break;
    }
    case EventKind::kLogRead: {
      Daemon& d = daemons_.at(ev.node - 1);
      if (!d.alive || ev.gen != d.gen) return;  // the crash lost the read under way
      answer_log_read(d);
      settle(d);
      break;
    }
    case EventKind::kRetry: {
      Daemon& d = daemons_.at(ev.node - 1);
      if (!d.alive || ev.gen != d.gen) return;
      d.retry_pending = false;
      settle(d);
      break;
    }
  }
}

void Cluster::queue_action(Client& c, const ClientAction& a) {
  Daemon& d = daemons_.at(c.daemon);
  if (c.paused_until == 0 && c.conn != 0 && rng_.chance(cfg_.p_pause)) {
    // It stops reading for a while: the daemon queues its deliveries, and drops it when they
    // pass the limit.
    c.paused_until = now_ + rng_.range(1000, 30000);
    sched_.push(SimEvent{c.paused_until, 0, EventKind::kRetry, d.id, 0, {}, d.gen});
  }
  // Written to the connection, or held for the next one while the last one's disconnect is
  // under way.
  std::string& out = c.departing || c.close_after ? c.next_out : c.out;
  const groups::Event& e = a.event;
  switch (e.kind) {
    case groups::EventKind::kData: {
      SentMessage m;
      m.id = MsgId{c.name, e.msg_type};
      m.instance = c.instance;
      m.service = e.service;
      m.groups = e.groups;
      m.payload_fingerprint = fingerprint(e.payload);
      m.payload_bytes = e.payload.size();
      m.seen_index = c.last_index;
      m.at = now_;
      rec_.sent.emplace(m.id, std::move(m));
      std::vector<std::string_view> groups(e.groups.begin(), e.groups.end());
      proto::encode_multicast(out, e.service, e.msg_type, groups.data(), groups.size(), e.payload);
      break;
    }
    case groups::EventKind::kJoin: proto::encode_join(out, e.group); break;
    case groups::EventKind::kLeave: proto::encode_leave(out, e.group); break;
    case groups::EventKind::kDisconnect:
      if (&out != &c.out) break;  // already on its way out
      if (rng_.chance(cfg_.p_cut_mid_frame)) {
        // Killed while writing: half a frame the daemon never gets whole.
        std::string frame;
        std::string_view g = "g0";
        proto::encode_multicast(frame, proto::service::kAgreed, 0, &g, 1, std::string(100, 'x'));
        out.append(frame, 0, rng_.range(1, frame.size() - 1));
      }
      c.close_after = true;
      break;
    default:
      throw std::logic_error("workload: a client action of an unexpected kind");
  }
  settle(d);
}

void Cluster::workload_step() {
  std::optional<ClientAction> a = workload_->next(alive_clients());
  if (a) queue_action(clients_.at(a->client), *a);
  if (!workload_->done())
    sched_.push(SimEvent{workload_->next_at(), 0, EventKind::kWorkload, 0, 0, {}});
  else
    sched_.push(SimEvent{now_ + cfg_.lossy_tail_us, 0, EventKind::kHeal, 0, 0, {}});
}

void Cluster::fault_step() {
  FaultAction f;
  if (injector_->next(down(), net_->partitioned(), now_, f)) {
    if (cfg_.verbose)
      std::printf("  [t=%llu us] fault: %s\n", static_cast<unsigned long long>(now_), f.str().c_str());
    switch (f.kind) {
      case FaultKind::kCrash: crash(daemons_.at(f.node - 1)); break;
      case FaultKind::kRestart: restart(daemons_.at(f.node - 1)); break;
      case FaultKind::kPartition:
        net_->partition(f.sides);
        ++stats_.partitions;
        break;
      case FaultKind::kHeal:
        net_->heal_partitions();
        ++stats_.heals;
        break;
    }
  }
  ++fault_gen_;
  fault_armed_ = injector_->on_change();
  sched_.push(SimEvent{injector_->next_at(), 0, EventKind::kFault, 0, 0, {}, fault_gen_});
}

void Cluster::final_heal() {
  healed_ = true;
  ++fault_gen_;  // no more faults
  fault_armed_ = false;
  rec_.heal_at = now_;
  net_->heal_partitions();
  net_->set_loss(0);
  if (cfg_.verbose)
    std::printf("  [t=%llu us] final heal\n", static_cast<unsigned long long>(now_));
  for (auto& d : daemons_)
    if (!d.alive) restart(d);
}

void Cluster::begin_final_round() {
  final_round_ = true;
  if (cfg_.verbose)
    std::printf("  [t=%llu us] converged in ring %s: final round\n",
                static_cast<unsigned long long>(now_), ring_name(daemons_[0].last_regular).c_str());
  for (size_t ci : alive_clients()) queue_action(clients_[ci], workload_->probe(ci));
}

void Cluster::watch_state(Daemon& d) {
  RingState s = d.ring().state();
  if (s == d.state) return;
  if (cfg_.trace)
    std::printf("  [t=%llu us] %s: %s -> %s (ring %s)\n", static_cast<unsigned long long>(now_), d.name.c_str(),
                membership::to_string(d.state), membership::to_string(s), ring_name(d.ring().ring_id()).c_str());
  d.state = s;
  if (fault_armed_ && started_ && !healed_ &&
      (s == RingState::kCommit || s == RingState::kRecovery)) {
    // Strike while a configuration change is under way.
    fault_armed_ = false;
    ++fault_gen_;
    sched_.push(SimEvent{now_ + injector_->change_delay(), 0, EventKind::kFault, 0, 0, {}, fault_gen_});
  }
}

void Cluster::settle(Daemon& d) {
  if (!d.alive) return;
  logging_ = &d.name;
  for (size_t ci : d.clients) {
    Client& c = clients_[ci];
    if (c.paused_until != 0 && c.paused_until <= now_) {
      read_unread(d, c);
      if (c.conn != 0) d.node->core.on_sent(c.conn, 0);  // its queue is read
    }
  }
  for (;;) {
    d.node->core.run(now_);
    if (d.node->core.failed()) throw std::logic_error(d.name + "'s core stopped: " + d.node->core.failure());
    bool any = false;
    // Clients whose disconnect took effect connect again (not from inside the core's run).
    for (size_t ci : std::exchange(reconnects_, {})) {
      Client& c = clients_[ci];
      if (c.alive && c.departing && c.daemon == static_cast<size_t>(&d - daemons_.data())) {
        connect(c);
        any = true;
      }
    }
    any |= feed_clients(d);
    if (!any) break;
  }
  logging_ = nullptr;
  bool waiting = d.node->core.held() > 0;
  for (size_t ci : d.clients) waiting |= !clients_[ci].out.empty();
  if (waiting && !d.retry_pending) {
    d.retry_pending = true;
    sched_.push(SimEvent{now_ + cfg_.retry_us, 0, EventKind::kRetry, d.id, 0, {}, d.gen});
  }
  schedule_timer(d);
  watch_state(d);
}

// What the clients wrote, read as agentd reads it (up to 64 KiB per connection per round,
// none while the core has paused input); a client whose last bytes were read and that
// closes its connection is closed. True when the core got something.
bool Cluster::feed_clients(Daemon& d) {
  constexpr size_t kReadBytes = 64 * 1024;
  bool any = false;
  for (size_t k = 0; k < d.clients.size(); ++k) {
    Client& c = clients_[d.clients[k]];
    if (c.conn == 0) continue;
    if (!c.out.empty() && d.reading) {
      size_t n = std::min(c.out.size(), kReadBytes);
      std::string chunk = c.out.substr(0, n);
      c.out.erase(0, n);
      d.node->core.on_bytes(c.conn, chunk.data(), chunk.size(), now_);
      any = true;
    }
    if (c.out.empty() && c.close_after && c.conn != 0) {
      read_unread(d, c);  // it reads what came before it closes
      daemon::ConnId conn = c.conn;
      c.conn = 0;
      c.close_after = false;
      c.departing = true;
      rec_.sessionless[c.name].emplace_back(d.delivering, ~uint64_t{0});
      d.node->core.on_closed(conn);
      any = true;
    }
  }
  return any;
}

void Cluster::schedule_timer(Daemon& d) {
  Time t = d.node->core.next_timeout();
  if (t == kNever) {
    d.timer_at = 0;  // any scheduled wake-up is now stale
    return;
  }
  t = std::max(t, now_);
  if (t == d.timer_at) return;
  d.timer_at = t;
  sched_.push(SimEvent{t, 0, EventKind::kTimer, d.id, 0, {}, d.gen});
}

void Cluster::on_submit(Daemon& d, uint32_t service, std::string& event) {
  Instance& inst = rec_.instances.at(d.instance - 1);
  uint64_t nonce = make_nonce(d.instance, inst.submitted.size() + 1);
  uint64_t fp = fingerprint(event);
  inst.submitted.push_back(Submission{service, fp, now_});
  rec_.payloads.emplace(fp, event);
  event = frame(nonce, event);
  ++d.own_submitted;
  ++total_submitted_;
  ++stats_.submissions;
  if (rec_.converged_at != 0) late_[nonce];
}

// The last offer did not go in: it is not a submission (it comes again with a new nonce).
void Cluster::on_refused(Daemon& d) {
  Instance& inst = rec_.instances.at(d.instance - 1);
  uint64_t nonce = make_nonce(d.instance, inst.submitted.size());
  inst.submitted.pop_back();
  --d.own_submitted;
  --total_submitted_;
  --stats_.submissions;
  ++stats_.refusals;
  late_.erase(nonce);
}

void Cluster::check_safe(Daemon& d, const membership::Delivered& x) {
  // At the moment of delivery every member of the message's configuration (the regular one,
  // or the transitional one once that was delivered) that still knows the ring must hold the
  // packet. A member knows the ring while it is the last regular one it delivered; the
  // delivering daemon's own ring may already be past it within this batch of actions.
  const auto& set = d.in_transitional ? d.transitional_members : d.regular_members;
  for (NodeId m : set) {
    Daemon& e = daemons_.at(m - 1);
    if (!e.alive) continue;
    bool knows = &e == &d ? e.ring().state() == RingState::kOperational && e.ring().ring_id() == x.ring_id
                          : e.last_regular == x.ring_id;
    if (!knows || e.ring().has_packet(x.ring_id, x.packet_seq)) continue;
    violation("SAFE delivered early: " + rec_.instances.at(d.instance - 1).name + " delivered index " +
              std::to_string(x.index) + " (ring " + ring_name(x.ring_id) + " packet " +
              std::to_string(x.packet_seq) + ", " + service_name(x.service) + ", " +
              (d.in_transitional ? "transitional" : "regular") + " configuration) while " +
              rec_.instances.at(e.instance - 1).name + " does not hold that packet");
  }
}

void Cluster::on_log_append(Daemon& d, std::vector<persist::Record>& batch) {
  stats_.logged += batch.size();
  for (auto& r : batch)
    if (!d.log.append(r, r.payload(), fingerprint(r.payload())))
      violation(d.name + " handed its message log position " + r.entry.pos.str() +
                " after a later one: positions must grow");
  begin_sync(d);
}

void Cluster::on_log_fill(Daemon& d, std::vector<persist::Record>& records, uint64_t ring,
                          uint64_t upto) {
  stats_.filled += records.size();
  if (!d.log.fill(records, ring, upto, &fingerprint))
    violation(d.name + " was given messages of ring " + ring_name(ring) + " up to ordinal " +
              std::to_string(upto) + ", but its log holds that ring's messages past a gap");
  begin_sync(d);
}

void Cluster::on_log_read_ring(Daemon& d, const daemon::FillRead& r, size_t max_bytes) {
  d.log_reads.emplace_back(r, max_bytes);
  sched_.push(SimEvent{now_ + rng_.range(20, 500), 0, EventKind::kLogRead, d.id, 0, {}, d.gen});
}

void Cluster::answer_log_read(Daemon& d) {
  if (d.log_reads.empty()) return;
  auto [r, max_bytes] = d.log_reads.front();
  d.log_reads.pop_front();
  // As persist::MessageLog::read_ring: every message of the ring in (after, upto], as its
  // log holds them now, about max_bytes at a time.
  std::vector<persist::Record> out;
  uint64_t reached = r.upto;
  size_t bytes = 0;
  for (const SimLog::Entry* e : d.log.entries()) {
    const persist::Position& p = e->entry.pos;
    if (p.ring != r.ring || p.ordinal <= r.after || p.ordinal > r.upto) continue;
    size_t cost = 64 + e->entry.payload.size();
    if (!out.empty() && bytes + cost > max_bytes) {
      reached = out.back().entry.pos.ordinal;
      break;
    }
    bytes += cost;
    persist::Record rec;
    rec.entry = e->entry;
    rec.log_groups = e->log_groups;
    out.push_back(std::move(rec));
  }
  logging_ = &d.name;
  d.node->core.on_fill_read(r, std::move(out), reached, "");
  logging_ = nullptr;
}

bool Cluster::catching_up() const {
  if (cfg_.persist_groups.empty()) return false;
  for (auto& d : daemons_)
    if (d.alive && d.node && d.node->core.catch_up().catching_up()) return true;
  return false;
}

void Cluster::check_catch_up() {
  if (cfg_.persist_groups.empty()) return;
  // Safety: a position every log that holds it numbers as the ring did (not past a gap) names
  // one message.
  std::map<persist::Position, std::pair<uint64_t, const std::string*>> seen;
  for (auto& d : daemons_)
    for (const SimLog::Entry* e : d.log.entries()) {
      if (e->past_gap) continue;
      auto [it, fresh] = seen.emplace(e->entry.pos, std::make_pair(e->payload_fingerprint, &d.name));
      if (!fresh && it->second.first != e->payload_fingerprint) {
        violation("catch-up: the logs of " + *it->second.second + " and " + d.name +
                  " hold different messages at position " + e->entry.pos.str());
        return;
      }
    }
  // Liveness: after the heal, once every daemon is in the final ring and no catch-up is under
  // way, each log holds every message any log holds of an older ring — unless it holds
  // messages of that ring delivered past a gap (it keeps its own numbering), or the ring is
  // older than the oldest one a daemon still describes.
  if (!rec_.quiescent || !converged() || catching_up()) return;
  uint64_t current = daemons_.front().ring().ring_id();
  uint64_t horizon = 0;
  for (auto& d : daemons_)
    if (d.log.coverage().size() >= persist::kCoveredRings)
      horizon = std::max(horizon, d.log.coverage().begin()->first);
  for (auto& d : daemons_) {
    for (auto& [pos, v] : seen) {
      if (pos.ring >= current || pos.ring < horizon) continue;
      auto c = d.log.coverage().find(pos.ring);
      if (c != d.log.coverage().end() && c->second.past_gap && pos.ordinal > c->second.through)
        continue;
      if (d.log.at(pos)) continue;
      violation("catch-up: after the heal the log of " + d.name + " lacks position " + pos.str() +
                " (" + *v.second + "'s log holds it)");
      return;
    }
  }
}

void Cluster::begin_sync(Daemon& d) {
  if (!d.log.begin_sync()) return;
  sched_.push(SimEvent{now_ + rng_.range(cfg_.sync_min_us, cfg_.sync_max_us), 0, EventKind::kSync,
                       d.id, 0, {}, d.gen});
}

std::string_view Cluster::on_received(Daemon& d, const membership::Delivered& x) {
  auto u = unframe(x.payload);
  if (!u) {
    violation(rec_.instances.at(d.instance - 1).name +
              " received a message without the simulator's nonce");
    return x.payload;
  }
  return u->event;
}

void Cluster::check_durable(Daemon& d, const membership::Delivered& x, std::string_view event) {
  if (!cfg_.ring.durable_gate || cfg_.persist_groups.empty() || d.in_transitional) return;
  auto ev = groups::decode_event(event);
  if (!ev || ev->kind != groups::EventKind::kData) return;
  daemon::PersistSettings ps;
  ps.groups = cfg_.persist_groups;
  bool persistent = false;
  for (auto& g : ev->groups) persistent |= daemon::persistent_group(ps, g);
  if (!persistent) return;
  persist::Position pos{x.ring_id, x.ordinal};
  ++stats_.safe_on_disk_checks;
  for (NodeId m : d.regular_members) {
    const Daemon& e = daemons_.at(m - 1);
    const SimLog::Entry* got = e.log.synced_at(pos);
    if (got && got->payload_fingerprint == fingerprint(ev->payload)) continue;
    violation("SAFE delivered before it was on disk everywhere: " +
              rec_.instances.at(d.instance - 1).name + " delivered index " +
              std::to_string(x.index) + " (ring " + ring_name(x.ring_id) + " ordinal " +
              std::to_string(x.ordinal) + ", regular configuration) while the log of " + e.name +
              (e.alive ? "" : " (crashed)") +
              (got ? " holds another message at that position" : " has not synced it"));
  }
}

std::string_view Cluster::on_delivered(Daemon& d, const membership::Delivered& x) {
  ++stats_.ring_deliveries;
  last_progress_ = now_;
  d.delivering = x.index;
  Instance& inst = rec_.instances.at(d.instance - 1);
  RingRecord r;
  r.index = x.index;
  r.kind = x.kind;
  r.ring_id = x.ring_id;
  r.ordinal = x.ordinal;
  r.next_ring_id = x.next_ring_id;
  r.at = now_;
  if (x.kind != DeliveryKind::kMessage) {
    ++stats_.configurations;
    if (cfg_.trace || cfg_.verbose)
      std::printf("  [t=%llu us] %s delivers %s configuration %s %s at index %llu\n",
                  static_cast<unsigned long long>(now_), inst.name.c_str(),
                  x.kind == DeliveryKind::kRegular ? "regular" : "transitional", ring_name(x.ring_id).c_str(),
                  id_list(x.members).c_str(), static_cast<unsigned long long>(x.index));
    r.members = x.members;
    inst.ring.push_back(r);
    if (x.kind == DeliveryKind::kTransitional) {
      d.in_transitional = true;
      d.transitional_members = x.members;
    } else {
      d.last_regular = x.ring_id;
      d.regular_members = x.members;
      d.in_transitional = false;
      d.transitional_members.clear();
    }
    return {};
  }
  ++d.messages;
  r.packet_seq = x.packet_seq;
  r.origin = x.origin;
  r.service = x.service;
  auto u = unframe(x.payload);
  if (u) {
    r.nonce = u->nonce;
    r.fingerprint = fingerprint(u->event);
  }
  inst.ring.push_back(r);
  if (x.service & membership::kSafeService) check_safe(d, x);
  if (!u) {
    violation(inst.name + " delivered a message without the simulator's nonce at index " + std::to_string(x.index));
    return x.payload;
  }
  if (x.service & membership::kSafeService) check_durable(d, x, u->event);
  if (nonce_instance(u->nonce) == d.instance) ++d.own_delivered;
  auto late = late_.find(u->nonce);
  if (late != late_.end() && late->second.insert(d.id).second && late->second.size() == daemons_.size())
    ++late_done_;
  if (cfg_.trace) {
    auto ev = groups::decode_event(u->event);
    std::printf("  [t=%llu us] %s delivers index %llu: ring %s packet %llu ordinal %llu from d%u nonce %u:%llu %s %s\n",
                static_cast<unsigned long long>(now_), inst.name.c_str(), static_cast<unsigned long long>(x.index),
                ring_name(x.ring_id).c_str(), static_cast<unsigned long long>(x.packet_seq),
                static_cast<unsigned long long>(x.ordinal), x.origin, nonce_instance(u->nonce),
                static_cast<unsigned long long>(nonce_submission(u->nonce)), service_name(x.service).c_str(),
                ev ? describe_event(*ev).c_str() : "?");
  }
  return u->event;
}

Cluster::Client* Cluster::client_of(Daemon& d, daemon::ConnId conn) {
  for (size_t ci : d.clients)
    if (clients_[ci].conn == conn) return &clients_[ci];
  return nullptr;
}

// What the daemon wrote to a client's connection: the client reads it at once. Deliveries are
// stamped with the ring item the core is handing out.
void Cluster::on_frames(Daemon& d, daemon::ConnId conn, std::string_view bytes) {
  d.node->written.push_back(conn);
  Client* c = client_of(d, conn);
  if (!c) {
    violation(d.name + " wrote to connection " + std::to_string(conn) + ", which no live client holds");
    return;
  }
  // Queued until the core flushes its batch (or longer, while the client does not read).
  c->unread.emplace_back(d.delivering, std::string(bytes));
  c->unread_bytes += bytes.size();
}

// The client stops pausing (or its connection ends): it reads what waited, in order.
void Cluster::read_unread(Daemon& d, Client& c) {
  c.paused_until = 0;
  for (auto& [index, bytes] : std::exchange(c.unread, {})) read_frames(d, c, index, bytes);
  c.unread_bytes = 0;
}

void Cluster::read_frames(Daemon& d, Client& client, uint64_t index, std::string_view bytes) {
  Client* c = &client;
  c->in->feed(bytes.data(), bytes.size());
  proto::Frame f;
  for (;;) {
    auto st = c->in->next(f);
    if (st == proto::FrameReader::Status::kNeedMore) break;
    if (st == proto::FrameReader::Status::kTooLarge) {
      violation(d.name + " sent " + c->name + " a frame above the limit");
      return;
    }
    ClientRecord r;
    r.index = index;
    switch (f.verb) {
      case proto::Verb::kData: {
        auto m = proto::decode_data(f.body);
        if (!m) {
          violation(d.name + " sent " + c->name + " a data frame that does not decode");
          continue;
        }
        r.data = true;
        r.id = MsgId{m->sender, m->msg_type};
        r.service = m->service;
        r.groups = m->groups;
        r.payload_fingerprint = fingerprint(m->payload);
        r.payload_bytes = m->payload.size();
        break;
      }
      case proto::Verb::kMembership: {
        auto m = proto::decode_membership(f.body);
        if (!m) {
          violation(d.name + " sent " + c->name + " a membership frame that does not decode");
          continue;
        }
        r.membership = std::move(*m);
        break;
      }
      case proto::Verb::kWelcome: {
        // Its session starts here: deliveries from the next ring item on reach it.
        auto& gaps = rec_.sessionless[c->name];
        if (!gaps.empty() && gaps.back().second == ~uint64_t{0}) gaps.back().second = index;
        continue;
      }
      case proto::Verb::kError: {
        // Joins of groups it is in and leaves of groups it is not in are refused: the
        // workload does not track what the daemon accepted.
        auto e = proto::decode_error(f.body);
        if (e && e->code == proto::ErrorCode::kSlowClient) continue;
        if (!e || (e->code != proto::ErrorCode::kAlreadyMember && e->code != proto::ErrorCode::kNotMember))
          violation(d.name + " sent " + c->name + " an error: " +
                    (e ? std::string(proto::error_name(e->code)) + ": " + e->text : "undecodable"));
        continue;
      }
      default:
        violation(d.name + " sent " + c->name + " a frame with client verb " + std::to_string(int(f.verb)));
        continue;
    }
    if (r.index == 0) {
      violation(d.name + " sent " + c->name + " a delivery outside any ring item");
      continue;
    }
    c->last_index = std::max(c->last_index, r.index);
    rec_.received[c->name].push_back(std::move(r));
    ++stats_.client_deliveries;
  }
}

void Cluster::on_close(Daemon& d, daemon::ConnId conn, bool aborted) {
  Client* c = client_of(d, conn);
  if (!c) return;
  // The daemon closed it: what the client had not written yet is lost, and it connects again
  // once its disconnect took effect. A client dropped for not reading loses what it had not
  // read too (agentd cuts it after a grace period): its session ends, for the checker, where
  // it stopped reading. One closed otherwise reads what came before the close.
  uint64_t end = d.delivering;
  if (aborted) {
    ++stats_.slow_clients_dropped;
    end = c->last_index;  // what it read last
    c->unread.clear();
    c->unread_bytes = 0;
    c->paused_until = 0;
  } else {
    read_unread(d, *c);
  }
  c->conn = 0;
  c->out.clear();
  c->close_after = false;
  // (A session whose welcome it never read never started for it: the stretch goes on.)
  auto& gaps = rec_.sessionless[c->name];
  if (gaps.empty() || gaps.back().second != ~uint64_t{0}) gaps.emplace_back(end, ~uint64_t{0});
  c->departing = true;
}

void Cluster::on_session_ended(Daemon& d, const std::string& member, const proto::Membership& notice) {
  auto it = client_index_.find(member);
  if (it == client_index_.end() || clients_[it->second].daemon != static_cast<size_t>(&d - daemons_.data())) {
    violation(d.name + " ended the session of " + member + ", which is not one of its clients");
    return;
  }
  Client& c = clients_[it->second];
  if (!c.alive || c.instance != d.instance) return;
  // The notice no session gets: recorded where it takes effect, which the checker expects.
  ClientRecord r;
  r.index = d.delivering;
  r.membership = notice;
  rec_.received[c.name].push_back(std::move(r));
  if (c.departing) reconnects_.push_back(it->second);
}

size_t Cluster::pending_client_bytes() const {
  size_t n = 0;
  for (auto& c : clients_)
    if (c.alive) n += c.out.size() + c.next_out.size() + (c.departing || c.close_after ? 1 : 0);
  return n;
}

bool Cluster::everything_delivered() const {
  if (!final_round_ || pending_client_bytes() != 0 || late_done_ < late_.size()) return false;
  if (catching_up()) return false;  // the message logs' catch-up is part of settling
  for (auto& d : daemons_) {
    if (!d.alive || d.node->core.held() != 0 || d.own_delivered < d.own_submitted) return false;
    // Without faults there is one instance per daemon and all of them deliver everything.
    if (!cfg_.faults.enabled && d.messages < total_submitted_) return false;
  }
  return true;
}

ClusterStats Cluster::stats() const {
  ClusterStats s = stats_;
  s.ring = dead_ring_stats_;
  s.slow_holds = dead_slow_holds_;
  for (auto& d : daemons_)
    if (d.alive) {
      add_stats(s.ring, d.ring().stats());
      s.slow_holds += d.node->core.hub().stats().slow_holds;
    }
  s.net = net_->stats();
  return s;
}

}  // namespace agent::sim
