#include "tests/sim/network.h"

#include <set>
#include <stdexcept>

#include "membership/ring.h"

namespace agent::sim {

Network::Network(std::vector<NodeId> members, NetConfig cfg, uint64_t seed)
    : members_(std::move(members)), cfg_(cfg), rng_(seed, 0x4e4554) {
  if (cfg_.loss < 0 || cfg_.loss > 1 || cfg_.duplicate < 0 || cfg_.duplicate > 1)
    throw std::invalid_argument("network probabilities must be within 0..1");
}

Time Network::delay() { return cfg_.base_delay_us + rng_.below(cfg_.jitter_us + 1); }

bool Network::partitioned() const {
  std::set<int> sides;
  for (NodeId m : members_) sides.insert(side_of(m));
  return sides.size() > 1;
}

std::string Network::describe_partition() const {
  std::map<int, std::string> by_side;
  for (NodeId m : members_) {
    auto& s = by_side[side_of(m)];
    s += (s.empty() ? "" : ",") + std::to_string(m);
  }
  std::string out;
  for (auto& [side, ids] : by_side) out += (out.empty() ? "{" : " | {") + ids + "}";
  return out;
}

void Network::send(NodeId from, NodeId to, std::string_view bytes,
                   const std::vector<NodeId>& ring_members, Time now, Scheduler& sched) {
  if (to == membership::kBroadcast) {
    for (NodeId m : ring_members)
      if (m != from) send_one(from, m, bytes, now, sched);
  } else if (to == membership::kAllDaemons) {
    for (NodeId m : members_)
      if (m != from) send_one(from, m, bytes, now, sched);
  } else {
    send_one(from, to, bytes, now, sched);
  }
}

void Network::send_one(NodeId from, NodeId to, std::string_view bytes, Time now,
                       Scheduler& sched) {
  ++stats_.sent;
  if (!linked(from, to)) {
    ++stats_.cut;
    return;
  }
  if (rng_.chance(cfg_.loss)) {
    ++stats_.lost;
    return;
  }
  int copies = 1;
  if (rng_.chance(cfg_.duplicate)) {
    ++stats_.duplicated;
    copies = 2;
  }
  for (int i = 0; i < copies; ++i) {
    SimEvent ev;
    ev.at = now + delay();
    ev.kind = EventKind::kArrival;
    ev.node = to;
    ev.from = from;
    ev.bytes.assign(bytes.data(), bytes.size());
    sched.push(std::move(ev));
  }
}

}  // namespace agent::sim
