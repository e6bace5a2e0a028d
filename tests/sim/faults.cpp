#include "tests/sim/faults.h"

#include <algorithm>

namespace agent::sim {

const char* to_string(FaultKind k) {
  switch (k) {
    case FaultKind::kCrash: return "crash";
    case FaultKind::kRestart: return "restart";
    case FaultKind::kPartition: return "partition";
    case FaultKind::kHeal: return "heal";
  }
  return "?";
}

std::string FaultAction::str() const {
  std::string s = to_string(kind);
  if (kind == FaultKind::kCrash || kind == FaultKind::kRestart) return s + " d" + std::to_string(node);
  if (kind == FaultKind::kPartition) {
    std::map<int, std::string> by_side;
    for (auto& [n, side] : sides) {
      auto& b = by_side[side];
      b += (b.empty() ? "" : ",") + std::to_string(n);
    }
    for (auto& [side, ids] : by_side) s += " {" + ids + "}";
  }
  return s;
}

FaultInjector::FaultInjector(FaultConfig cfg, std::vector<NodeId> daemons, uint64_t seed)
    : cfg_(cfg), daemons_(std::move(daemons)), rng_(seed, 0x4641554c54) {}

void FaultInjector::plan(Time now) {
  if (rng_.chance(cfg_.p_burst)) {
    next_at_ = now + 1 + rng_.below(cfg_.burst_us);
  } else {
    next_at_ = now + 1 + rng_.below(2 * cfg_.mean_gap_us + 1);
  }
  on_change_ = rng_.chance(cfg_.p_on_change);
}

bool FaultInjector::next(const std::set<NodeId>& down, bool partitioned, Time now,
                         FaultAction& out) {
  size_t n = daemons_.size();
  // A lone daemon may crash too (then only a restart can follow); larger clusters keep one up.
  size_t max_down = n == 1 ? 1 : n - 1;
  std::vector<std::pair<FaultKind, unsigned>> choices;  // kind, weight
  if (cfg_.crashes && down.size() < max_down) choices.push_back({FaultKind::kCrash, 3});
  if (cfg_.restarts && !down.empty()) choices.push_back({FaultKind::kRestart, 3});
  if (cfg_.partitions && n >= 2) choices.push_back({FaultKind::kPartition, 3});
  if (cfg_.partitions && partitioned) choices.push_back({FaultKind::kHeal, 2});
  plan(now);
  if (choices.empty()) return false;
  unsigned total = 0;
  for (auto& c : choices) total += c.second;
  unsigned r = static_cast<unsigned>(rng_.below(total));
  FaultKind kind = choices.back().first;
  for (auto& c : choices) {
    if (r < c.second) {
      kind = c.first;
      break;
    }
    r -= c.second;
  }
  out = FaultAction{};
  out.kind = kind;
  switch (kind) {
    case FaultKind::kCrash: {
      std::vector<NodeId> up;
      for (NodeId d : daemons_)
        if (!down.count(d)) up.push_back(d);
      out.node = rng_.pick(up);
      break;
    }
    case FaultKind::kRestart: {
      std::vector<NodeId> dn(down.begin(), down.end());
      out.node = rng_.pick(dn);
      break;
    }
    case FaultKind::kPartition: {
      // Arbitrary subsets: each daemon on a random side among 2..3, at least two sides used.
      int sides = n >= 3 && rng_.below(3) == 0 ? 3 : 2;
      for (;;) {
        std::set<int> used;
        out.sides.clear();
        for (NodeId d : daemons_) {
          int s = static_cast<int>(rng_.below(static_cast<uint64_t>(sides)));
          out.sides[d] = s;
          used.insert(s);
        }
        if (used.size() >= 2) break;
      }
      break;
    }
    case FaultKind::kHeal:
      break;
  }
  return true;
}

}  // namespace agent::sim
