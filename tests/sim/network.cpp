#include "tests/sim/network.h"

#include <stdexcept>

namespace agent::sim {

Network::Network(std::vector<NodeId> members, NetConfig cfg, uint64_t seed)
    : members_(std::move(members)), cfg_(cfg), rng_(seed, 0x4e4554) {
  if (cfg_.loss < 0 || cfg_.loss > 1 || cfg_.duplicate < 0 || cfg_.duplicate > 1)
    throw std::invalid_argument("network probabilities must be within 0..1");
}

Time Network::delay() { return cfg_.base_delay_us + rng_.below(cfg_.jitter_us + 1); }

void Network::send(NodeId from, NodeId to, const std::string& bytes, Time now, Scheduler& sched) {
  if (to != membership::kBroadcast) {
    send_one(from, to, bytes, now, sched);
    return;
  }
  for (NodeId m : members_)
    if (m != from) send_one(from, m, bytes, now, sched);
}

void Network::send_one(NodeId from, NodeId to, const std::string& bytes, Time now,
                       Scheduler& sched) {
  ++stats_.sent;
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
    ev.bytes = bytes;
    sched.push(std::move(ev));
  }
}

}  // namespace agent::sim
