#include "tests/sim/cluster.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <stdexcept>

#include "groups/event_codec.h"
#include "tests/sim/daemon_feed.h"
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

Cluster::Cluster(ClusterConfig cfg) : cfg_(std::move(cfg)) {
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
    for (size_t c = 1; c <= cfg_.clients_per_daemon; ++c)
      add_client(d, names::private_group("c" + std::to_string(c), d.name));
  }
}

Cluster::~Cluster() = default;

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
  rc.store_ring_seq = [&d](uint32_t seq) { d.stored_ring_seq = seq; };
  d.ring = std::make_unique<Ring>(d.id, rc, now_);
  auto& f = d.ring->faults();
  if (cfg_.fault_node == 0 || cfg_.fault_node == d.id) {
    if (cfg_.fault == "skip-retransmit") f.skip_retransmissions = true;
    else if (cfg_.fault == "out-of-order") f.deliver_out_of_order = true;
    else if (cfg_.fault == "safe-early") f.deliver_safe_early = true;
    else if (cfg_.fault == "skip-recovery") f.skip_recovery = true;
    else if (cfg_.fault == "deliver-past-gap") f.deliver_past_gap = true;
    else if (!cfg_.fault.empty()) throw std::invalid_argument("unknown fault: " + cfg_.fault);
  }
  d.groups = std::make_unique<groups::GroupState>(d.name);
  d.clients.clear();
  d.own.clear();
  d.queued = 0;
  d.timer_at = 0;
  d.retry_pending = false;
  d.messages = d.own_submitted = d.own_delivered = 0;
  d.last_regular = 0;
  d.regular_members.clear();
  d.in_transitional = false;
  d.transitional_members.clear();
  d.state = d.ring->state();
}

void Cluster::add_client(Daemon& d, const std::string& name) {
  Client cl;
  cl.name = name;
  cl.daemon = static_cast<size_t>(&d - daemons_.data());
  cl.instance = d.instance;
  size_t index = workload_->add_client(name);
  if (index != clients_.size()) throw std::logic_error("workload and cluster disagree on clients");
  d.clients.push_back(index);
  client_index_[name] = index;
  rec_.clients[name] = d.instance;
  rec_.received[name];
  clients_.push_back(std::move(cl));
}

void Cluster::crash(Daemon& d) {
  if (!d.alive) return;
  add_stats(dead_ring_stats_, d.ring->stats());
  d.ring.reset();
  d.groups.reset();
  d.alive = false;
  d.gen = 0;
  d.timer_at = 0;
  d.retry_pending = false;
  Instance& inst = rec_.instances.at(d.instance - 1);
  inst.crashed = true;
  inst.crashed_at = now_;
  for (size_t ci : d.clients) {
    Client& c = clients_[ci];
    c.alive = false;
    total_queued_ -= c.queue.size();
    c.queue.clear();  // never accepted by a ring: lost with the daemon
  }
  d.clients.clear();
  d.queued = 0;
  d.own.clear();
  ++stats_.crashes;
}

void Cluster::restart(Daemon& d) {
  if (d.alive) return;
  ++d.incarnation;
  start_instance(d);
  // Its old clients are gone; new ones connect under new names.
  for (size_t c = 1; c <= cfg_.clients_per_daemon; ++c)
    add_client(d, names::private_group("c" + std::to_string(c) + "r" + std::to_string(d.incarnation),
                                       d.name));
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
    if (!d.alive || d.ring->state() != RingState::kOperational) return false;
    if (d.ring->members().size() != daemons_.size() || d.last_regular != d.ring->ring_id()) return false;
    if (ring != 0 && d.ring->ring_id() != ring) return false;
    ring = d.ring->ring_id();
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
  } catch (const std::exception& e) {
    violation(std::string("the protocol core threw: ") + e.what());
  }
  rec_.end_at = now_;
  for (auto& c : clients_)
    if (c.alive && !c.queue.empty()) rec_.unsent[c.name] = c.queue.size();
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
        d.ring->on_packet(ev.from, *owner, now_, owner);
      } else {
        d.ring->on_packet(ev.from, ev.bytes, now_);
      }
      settle(d);
      break;
    }
    case EventKind::kTimer: {
      Daemon& d = daemons_.at(ev.node - 1);
      if (!d.alive || ev.gen != d.gen || ev.at != d.timer_at) return;  // stale
      d.timer_at = 0;
      if (now_ >= d.ring->next_timeout()) d.ring->on_timeout(now_);
      settle(d);
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
  if (a.event.kind == groups::EventKind::kData) {
    SentMessage m;
    m.id = MsgId{c.name, a.event.msg_type};
    m.instance = c.instance;
    m.service = a.event.service;
    m.groups = a.event.groups;
    m.payload_fingerprint = fingerprint(a.event.payload);
    m.payload_bytes = a.event.payload.size();
    m.seen_index = c.last_index;
    m.at = now_;
    rec_.sent.emplace(m.id, std::move(m));
  }
  Queued q;
  groups::encode_event(q.bytes, a.event);
  q.service = a.service;
  c.queue.push_back(std::move(q));
  ++d.queued;
  ++total_queued_;
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
  RingState s = d.ring->state();
  if (s == d.state) return;
  if (cfg_.trace)
    std::printf("  [t=%llu us] %s: %s -> %s (ring %s)\n", static_cast<unsigned long long>(now_), d.name.c_str(),
                membership::to_string(d.state), membership::to_string(s), ring_name(d.ring->ring_id()).c_str());
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
  for (;;) {
    membership::Actions a = d.ring->take_actions();
    if (!a.sends.empty() || !a.deliveries.empty() || !a.warnings.empty()) {
      handle(d, std::move(a));
      continue;
    }
    if (!pump(d)) break;
  }
  if ((d.queued > 0 || !d.own.empty()) && !d.retry_pending) {
    d.retry_pending = true;
    sched_.push(SimEvent{now_ + cfg_.retry_us, 0, EventKind::kRetry, d.id, 0, {}, d.gen});
  }
  schedule_timer(d);
  watch_state(d);
}

void Cluster::schedule_timer(Daemon& d) {
  Time t = d.ring->next_timeout();
  if (t == kNever) {
    d.timer_at = 0;  // any scheduled wake-up is now stale
    return;
  }
  t = std::max(t, now_);
  if (t == d.timer_at) return;
  d.timer_at = t;
  sched_.push(SimEvent{t, 0, EventKind::kTimer, d.id, 0, {}, d.gen});
}

void Cluster::handle(Daemon& d, membership::Actions a) {
  for (auto& s : a.sends) net_->send(d.id, s.to, s.view(), d.ring->members(), now_, sched_);
  for (auto& x : a.deliveries) on_delivered(d, x);
  for (auto& w : a.warnings) {
    ++stats_.warnings;
    if (cfg_.verbose) std::printf("  [t=%llu us] warning from %s: %s\n",
                                  static_cast<unsigned long long>(now_), d.name.c_str(), w.c_str());
  }
}

bool Cluster::submit(Daemon& d, const Queued& q) {
  Instance& inst = rec_.instances.at(d.instance - 1);
  uint64_t nonce = make_nonce(d.instance, inst.submitted.size() + 1);
  if (!d.ring->submit(q.service, frame(nonce, q.bytes), now_)) {
    ++stats_.refusals;
    return false;
  }
  uint64_t fp = fingerprint(q.bytes);
  inst.submitted.push_back(Submission{q.service, fp, now_});
  rec_.payloads.emplace(fp, q.bytes);
  ++d.own_submitted;
  ++total_submitted_;
  ++stats_.submissions;
  if (rec_.converged_at != 0) late_[nonce];
  return true;
}

bool Cluster::pump(Daemon& d) {
  bool any = false;
  // The daemon's own events first (as agentd puts a refused state event first in line).
  while (!d.own.empty()) {
    if (!submit(d, d.own.front())) return any;
    d.own.pop_front();
    any = true;
  }
  for (size_t ci : d.clients) {
    Client& c = clients_[ci];
    while (!c.queue.empty()) {
      if (!submit(d, c.queue.front())) break;
      c.queue.pop_front();
      --d.queued;
      --total_queued_;
      any = true;
    }
  }
  return any;
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
    bool knows = &e == &d ? e.ring->state() == RingState::kOperational && e.ring->ring_id() == x.ring_id
                          : e.last_regular == x.ring_id;
    if (!knows || e.ring->has_packet(x.ring_id, x.packet_seq)) continue;
    violation("SAFE delivered early: " + rec_.instances.at(d.instance - 1).name + " delivered index " +
              std::to_string(x.index) + " (ring " + ring_name(x.ring_id) + " packet " +
              std::to_string(x.packet_seq) + ", " + service_name(x.service) + ", " +
              (d.in_transitional ? "transitional" : "regular") + " configuration) while " +
              rec_.instances.at(e.instance - 1).name + " does not hold that packet");
  }
}

void Cluster::on_delivered(Daemon& d, membership::Delivered& x) {
  ++stats_.ring_deliveries;
  last_progress_ = now_;
  Instance& inst = rec_.instances.at(d.instance - 1);
  RingRecord r;
  r.index = x.index;
  r.kind = x.kind;
  r.ring_id = x.ring_id;
  r.ordinal = x.ordinal;
  r.next_ring_id = x.next_ring_id;
  r.at = now_;
  std::vector<groups::Delivery> out;
  if (x.kind != DeliveryKind::kMessage) {
    ++stats_.configurations;
    if (cfg_.trace || cfg_.verbose)
      std::printf("  [t=%llu us] %s delivers %s configuration %s %s at index %llu\n",
                  static_cast<unsigned long long>(now_), inst.name.c_str(),
                  x.kind == DeliveryKind::kRegular ? "regular" : "transitional", ring_name(x.ring_id).c_str(),
                  id_list(x.members).c_str(), static_cast<unsigned long long>(x.index));
    r.members = x.members;
    r.next_ring_id = x.next_ring_id;
    inst.ring.push_back(r);
    if (x.kind == DeliveryKind::kTransitional) {
      d.in_transitional = true;
      d.transitional_members = x.members;
      feed_transitional(*d.groups, x.ring_id, x.ordinal, x.members, x.next_ring_id, out);
      route(d, x.index, out);
      return;
    }
    d.last_regular = x.ring_id;
    d.regular_members = x.members;
    d.in_transitional = false;
    d.transitional_members.clear();
    groups::Event state = feed_regular(*d.groups, x.ring_id, x.ordinal, x.members, out);
    route(d, x.index, out);
    // As agentd: the state event goes to the ring at once (first in line if refused).
    Queued q;
    groups::encode_event(q.bytes, state);
    q.service = proto::service::kAgreed;
    if (!d.own.empty() || !submit(d, q)) d.own.push_back(std::move(q));
    return;
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
  if (u) {
    if (nonce_instance(u->nonce) == d.instance) ++d.own_delivered;
    auto late = late_.find(u->nonce);
    if (late != late_.end() && late->second.insert(d.id).second &&
        late->second.size() == daemons_.size())
      ++late_done_;
  }
  auto ev = u ? groups::decode_event(u->event) : std::nullopt;
  if (cfg_.trace)
    std::printf("  [t=%llu us] %s delivers index %llu: ring %s packet %llu ordinal %llu from d%u nonce %u:%llu %s %s\n",
                static_cast<unsigned long long>(now_), inst.name.c_str(), static_cast<unsigned long long>(x.index),
                ring_name(x.ring_id).c_str(), static_cast<unsigned long long>(x.packet_seq),
                static_cast<unsigned long long>(x.ordinal), x.origin, u ? nonce_instance(u->nonce) : 0,
                static_cast<unsigned long long>(u ? nonce_submission(u->nonce) : 0), service_name(x.service).c_str(),
                ev ? describe_event(*ev).c_str() : "?");
  if (!ev) {
    violation(inst.name + " delivered an undecodable event at index " + std::to_string(x.index));
    return;
  }
  feed_message(*d.groups, x.ring_id, x.ordinal, x.origin, *ev, out);
  route(d, x.index, out);
}

void Cluster::route(Daemon& d, uint64_t index, std::vector<groups::Delivery>& out) {
  const std::string& iname = rec_.instances.at(d.instance - 1).name;
  for (auto& del : out) {
    ClientRecord r;
    r.index = index;
    if (del.data) {
      r.data = true;
      r.id = MsgId{del.data->member, del.data->msg_type};
      r.service = del.data->service;
      r.groups = del.data->groups;
      r.payload_fingerprint = fingerprint(del.data->payload);
      r.payload_bytes = del.data->payload.size();
    } else {
      r.membership = del.membership;
    }
    for (auto& name : del.recipients) {
      auto it = client_index_.find(name);
      if (it == client_index_.end() || clients_[it->second].daemon != static_cast<size_t>(&d - daemons_.data())) {
        violation(iname + " routed index " + std::to_string(index) + " to " + name +
                  ", which is not one of its clients");
        continue;
      }
      Client& c = clients_[it->second];
      // A client of an earlier incarnation of this daemon is gone: agentd has no session for
      // it and drops the delivery (the checker's replay does the same).
      if (!c.alive || c.instance != d.instance) continue;
      c.last_index = std::max(c.last_index, index);
      rec_.received[name].push_back(r);
      ++stats_.client_deliveries;
    }
  }
}

bool Cluster::everything_delivered() const {
  if (!final_round_ || total_queued_ != 0 || late_done_ < late_.size()) return false;
  for (auto& d : daemons_) {
    if (!d.alive || !d.own.empty() || d.own_delivered < d.own_submitted) return false;
    // Without faults there is one instance per daemon and all of them deliver everything.
    if (!cfg_.faults.enabled && d.messages < total_submitted_) return false;
  }
  return true;
}

ClusterStats Cluster::stats() const {
  ClusterStats s = stats_;
  s.ring = dead_ring_stats_;
  for (auto& d : daemons_)
    if (d.alive) add_stats(s.ring, d.ring->stats());
  s.net = net_->stats();
  return s;
}

}  // namespace agent::sim
