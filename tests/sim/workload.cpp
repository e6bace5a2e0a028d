#include "tests/sim/workload.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>

#include "transport/client_protocol.h"

namespace agent::sim {

namespace svc = proto::service;

namespace {
constexpr uint32_t kServices[] = {svc::kUnreliable, svc::kReliable, svc::kFifo,
                                  svc::kCausal,     svc::kAgreed,   svc::kSafe};
}

Workload::Workload(WorkloadConfig cfg, uint64_t seed) : cfg_(cfg), rng_(seed, 0x574f524b) {
  if (cfg_.groups == 0) throw std::invalid_argument("workload needs groups");
  for (size_t i = 0; i < cfg_.groups; ++i) group_names_.push_back("g" + std::to_string(i));
}

void Workload::start(Time now) { next_at_ = now + 1000 + rng_.below(2 * cfg_.mean_gap_us + 1); }

size_t Workload::add_client(std::string name) {
  clients_.push_back(std::move(name));
  joined_.emplace_back();
  counters_.push_back(0);
  return clients_.size() - 1;
}

size_t Workload::payload_size() {
  size_t p = cfg_.max_packet_bytes;
  size_t r = rng_.below(100);
  size_t n;
  if (r < 10) n = 0;
  else if (r < 45) n = rng_.range(1, 100);
  else if (r < 75) n = rng_.range(100, p);
  else if (r < 96) n = rng_.range(p, 3 * p);
  else n = rng_.range(3 * p, cfg_.max_payload_bytes);
  return std::min(n, cfg_.max_payload_bytes);
}

// A readable header followed by bytes that depend on the id: any corruption changes the
// fingerprint the checker compares.
std::string Workload::payload_for(const std::string& sender, int16_t counter) {
  size_t n = payload_size();
  std::string head = sender + "/" + std::to_string(counter) + ":";
  std::string p(n, '\0');
  size_t h = std::min(n, head.size());
  p.replace(0, h, head, 0, h);
  uint64_t st = fingerprint(sender) + static_cast<uint64_t>(counter);
  for (size_t i = h; i < n; i += 8) {
    uint64_t x = splitmix64(st);
    for (size_t k = 0; k < 8 && i + k < n; ++k) p[i + k] = static_cast<char>(x >> (8 * k));
  }
  return p;
}

std::optional<ClientAction> Workload::next(const std::vector<size_t>& alive) {
  if (done()) throw std::logic_error("workload asked for an action after its last one");
  ++generated_;
  next_at_ += rng_.below(2 * cfg_.mean_gap_us + 1);
  if (alive.empty()) return std::nullopt;
  ClientAction a;
  a.client = alive[rng_.below(alive.size())];
  const std::string& me = clients_[a.client];
  auto& mine = joined_[a.client];
  a.event.member = me;
  double r = rng_.unit();
  if (r < cfg_.p_join) {
    a.event.kind = groups::EventKind::kJoin;
    a.event.group = rng_.pick(group_names_);  // sometimes one it is already in: ignored
    mine.insert(a.event.group);
    a.service = svc::kAgreed;
  } else if (r < cfg_.p_join + cfg_.p_leave) {
    a.event.kind = groups::EventKind::kLeave;
    if (!mine.empty() && rng_.below(10) != 0) {
      auto it = mine.begin();
      std::advance(it, rng_.below(mine.size()));
      a.event.group = *it;
    } else {
      a.event.group = rng_.pick(group_names_);  // possibly not a member: ignored
    }
    mine.erase(a.event.group);
    a.service = svc::kAgreed;
  } else if (r < cfg_.p_join + cfg_.p_leave + cfg_.p_disconnect) {
    a.event.kind = groups::EventKind::kDisconnect;
    mine.clear();
    a.service = svc::kAgreed;
  } else {
    make_data(a, alive);
  }
  return a;
}

void Workload::make_data(ClientAction& a, const std::vector<size_t>& alive) {
  const std::string& me = clients_[a.client];
  auto& mine = joined_[a.client];
  a.event.member = me;
  a.event.kind = groups::EventKind::kData;
  a.event.service = rng_.pick(kServices);
  if (rng_.chance(cfg_.p_self_discard)) a.event.service |= svc::kSelfDiscard;
  size_t ngroups = rng_.below(4) == 0 ? rng_.range(2, 3) : 1;
  for (size_t i = 0; i < ngroups; ++i) {
    if (rng_.chance(cfg_.p_private) && !alive.empty()) {
      a.event.groups.push_back(clients_[alive[rng_.below(alive.size())]]);
    } else if (!mine.empty() && rng_.below(3) != 0) {
      auto it = mine.begin();
      std::advance(it, rng_.below(mine.size()));
      a.event.groups.push_back(*it);
    } else {
      a.event.groups.push_back(rng_.pick(group_names_));
    }
  }
  int16_t& c = counters_[a.client];
  if (c == INT16_MAX) throw std::logic_error("workload: a client ran out of message counters");
  a.event.msg_type = ++c;
  a.event.payload = payload_for(me, c);
  a.service = a.event.service;
}

ClientAction Workload::probe(size_t client) {
  ClientAction a;
  a.client = client;
  make_data(a, {});
  return a;
}

}  // namespace agent::sim
