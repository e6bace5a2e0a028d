#include "tests/sim/cluster.h"

#include <cstdio>
#include <limits>
#include <stdexcept>

#include "groups/event_codec.h"
#include "transport/names.h"

namespace agent::sim {

using membership::Ring;

namespace {
constexpr Time kNever = std::numeric_limits<Time>::max();
}

Cluster::Cluster(ClusterConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.nodes == 0 || cfg_.nodes > 16) throw std::invalid_argument("nodes must be 1..16");
  std::vector<NodeId> members;
  for (NodeId i = 1; i <= cfg_.nodes; ++i) members.push_back(i);
  cfg_.ring.members = members;
  net_ = std::make_unique<Network>(members, cfg_.net, cfg_.seed);
  rec_.daemons = members;

  std::vector<std::string> names;
  for (NodeId id : members) {
    Daemon d;
    d.id = id;
    d.name = "d" + std::to_string(id);
    d.ring = std::make_unique<Ring>(id, cfg_.ring, now_);
    d.groups = std::make_unique<groups::GroupState>(d.name);
    auto& f = d.ring->faults();
    if (cfg_.fault_node == 0 || cfg_.fault_node == id) {
      if (cfg_.fault == "skip-retransmit") f.skip_retransmissions = true;
      else if (cfg_.fault == "out-of-order") f.deliver_out_of_order = true;
      else if (cfg_.fault == "safe-early") f.deliver_safe_early = true;
      else if (!cfg_.fault.empty()) throw std::invalid_argument("unknown fault: " + cfg_.fault);
    }
    for (size_t c = 1; c <= cfg_.clients_per_daemon; ++c) {
      Client cl;
      cl.name = names::private_group("c" + std::to_string(c), d.name);
      cl.daemon = daemons_.size();
      d.clients.push_back(clients_.size());
      client_index_[cl.name] = clients_.size();
      rec_.clients[cl.name] = id;
      rec_.received[cl.name];
      names.push_back(cl.name);
      clients_.push_back(std::move(cl));
    }
    rec_.daemon_names[id] = d.name;
    rec_.submitted[id];
    rec_.ring[id];
    daemons_.push_back(std::move(d));
  }
  workload_ = std::make_unique<Workload>(names, cfg_.workload, cfg_.seed);
}

Cluster::~Cluster() = default;

void Cluster::violation(std::string what) {
  if (rec_.violations.size() >= 100) return;  // the first ones tell the story
  rec_.violations.push_back("t=" + std::to_string(now_) + "us: " + std::move(what));
}

void Cluster::run() {
  try {
    for (auto& d : daemons_) settle(d);  // the first token's holder may already act
    sched_.push(SimEvent{workload_->next_at(), 0, EventKind::kWorkload, 0, 0, {}});
    Time settle_until = 0;
    while (!sched_.empty()) {
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
    if (!c.queue.empty()) rec_.unsent[c.name] = c.queue.size();
}

void Cluster::step(SimEvent ev) {
  now_ = ev.at;
  ++stats_.events;
  switch (ev.kind) {
    case EventKind::kArrival: {
      Daemon& d = daemons_.at(ev.node - 1);
      d.ring->on_packet(ev.from, ev.bytes, now_);
      settle(d);
      break;
    }
    case EventKind::kTimer: {
      Daemon& d = daemons_.at(ev.node - 1);
      if (ev.at != d.timer_at) return;  // superseded by a later schedule
      d.timer_at = 0;
      if (now_ >= d.ring->next_timeout()) d.ring->on_timeout(now_);
      settle(d);
      break;
    }
    case EventKind::kWorkload:
      workload_step();
      break;
    case EventKind::kHeal:
      healed_ = true;
      rec_.heal_at = now_;
      net_->heal();
      break;
    case EventKind::kRetry: {
      Daemon& d = daemons_.at(ev.node - 1);
      d.retry_pending = false;
      settle(d);
      break;
    }
  }
}

void Cluster::workload_step() {
  ClientAction a = workload_->next();
  Client& c = clients_.at(a.client);
  Daemon& d = daemons_.at(c.daemon);
  if (a.event.kind == groups::EventKind::kData) {
    SentMessage m;
    m.id = MsgId{c.name, a.event.msg_type};
    m.daemon = d.id;
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
  if (!workload_->done())
    sched_.push(SimEvent{workload_->next_at(), 0, EventKind::kWorkload, 0, 0, {}});
  else
    sched_.push(SimEvent{now_ + cfg_.lossy_tail_us, 0, EventKind::kHeal, 0, 0, {}});
}

void Cluster::settle(Daemon& d) {
  do {
    handle(d, d.ring->take_actions());
  } while (pump(d));
  if (d.queued > 0 && !d.retry_pending) {
    d.retry_pending = true;
    sched_.push(SimEvent{now_ + cfg_.retry_us, 0, EventKind::kRetry, d.id, 0, {}});
  }
  schedule_timer(d);
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
  sched_.push(SimEvent{t, 0, EventKind::kTimer, d.id, 0, {}});
}

void Cluster::handle(Daemon& d, membership::Actions a) {
  for (auto& s : a.sends) net_->send(d.id, s.to, s.bytes, now_, sched_);
  for (auto& x : a.deliveries) on_delivered(d, x);
  for (auto& w : a.warnings) {
    ++stats_.warnings;
    if (cfg_.verbose) std::printf("  [t=%llu us] warning from %s: %s\n",
                                  static_cast<unsigned long long>(now_), d.name.c_str(), w.c_str());
  }
}

bool Cluster::pump(Daemon& d) {
  bool any = false;
  for (size_t ci : d.clients) {
    Client& c = clients_[ci];
    while (!c.queue.empty()) {
      Queued& q = c.queue.front();
      if (!d.ring->submit(q.service, q.bytes, now_)) {
        ++stats_.refusals;
        break;
      }
      uint64_t fp = fingerprint(q.bytes);
      rec_.submitted[d.id].push_back(Submission{q.service, fp, now_});
      rec_.payloads.emplace(fp, std::move(q.bytes));
      c.queue.pop_front();
      --d.queued;
      --total_queued_;
      ++total_submitted_;
      ++stats_.submissions;
      any = true;
    }
  }
  return any;
}

void Cluster::on_delivered(Daemon& d, membership::Delivered& x) {
  ++stats_.ring_deliveries;
  ++d.delivered;
  last_progress_ = now_;
  uint64_t fp = fingerprint(x.payload);
  rec_.ring[d.id].push_back(RingRecord{x.index, x.packet_seq, x.origin, x.service, fp, now_});
  if (x.service & membership::kSafeService) {
    // SAFE: at the moment of delivery every daemon's ring must already hold the packet.
    for (auto& o : daemons_)
      if (o.ring->my_aru() < x.packet_seq)
        violation("SAFE delivered early: " + d.name + " delivered index " +
                  std::to_string(x.index) + " (packet " + std::to_string(x.packet_seq) +
                  ", " + service_name(x.service) + ") while " + o.name +
                  " has all packets only up to " + std::to_string(o.ring->my_aru()));
  }
  auto ev = groups::decode_event(x.payload);
  if (!ev) {
    violation(d.name + " delivered an undecodable event at index " + std::to_string(x.index));
    return;
  }
  std::vector<groups::Delivery> out;
  d.groups->apply(x.index, *ev, out);
  for (auto& del : out) {
    ClientRecord r;
    r.index = x.index;
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
      if (it == client_index_.end() || clients_[it->second].daemon != static_cast<size_t>(d.id - 1)) {
        violation(d.name + " routed index " + std::to_string(x.index) + " to " + name +
                  ", which is not one of its clients");
        continue;
      }
      Client& c = clients_[it->second];
      c.last_index = std::max(c.last_index, x.index);
      rec_.received[name].push_back(r);
      ++stats_.client_deliveries;
    }
  }
}

bool Cluster::everything_delivered() const {
  if (total_queued_ != 0) return false;
  for (auto& d : daemons_)
    if (d.delivered < total_submitted_) return false;
  return true;
}

ClusterStats Cluster::stats() const {
  ClusterStats s = stats_;
  for (auto& d : daemons_) {
    const auto& r = d.ring->stats();
    s.ring.packets_sent += r.packets_sent;
    s.ring.packets_retransmitted += r.packets_retransmitted;
    s.ring.tokens_received += r.tokens_received;
    s.ring.tokens_retransmitted += r.tokens_retransmitted;
    s.ring.duplicate_tokens += r.duplicate_tokens;
    s.ring.duplicate_packets += r.duplicate_packets;
    s.ring.bad_packets += r.bad_packets;
    s.ring.messages_delivered += r.messages_delivered;
    s.ring.held_tokens += r.held_tokens;
  }
  s.net = net_->stats();
  return s;
}

}  // namespace agent::sim
