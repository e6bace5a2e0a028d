// Virtual time: one priority queue of everything that will happen (packet arrivals, ring timer
// wake-ups, workload steps). Ties are broken by insertion order, so a run is a pure function of
// its seed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "membership/ring.h"

namespace agent::sim {

using membership::NodeId;
using membership::Time;

enum class EventKind : uint8_t {
  kArrival,   // a packet reaches `node` from `from`
  kTimer,     // `node`'s ring asked to be woken at this time
  kWorkload,  // the workload generates its next client action
  kRetry,     // `node` retries submissions refused by back-pressure
  kHeal,      // the final heal: no more loss or partitions, crashed daemons restart
  kFault,     // the fault injector's next crash, restart, partition or heal
  kSync,      // `node`'s message log finishes a sync
  kLogRead,   // `node`'s message log answers its oldest catch-up read
};

struct SimEvent {
  Time at = 0;
  uint64_t order = 0;  // insertion number: the tie-breaker
  EventKind kind = EventKind::kWorkload;
  NodeId node = 0;
  NodeId from = 0;
  std::string bytes;
  uint64_t gen = 0;  // kTimer, kRetry, kSync: the daemon instance it was set for (stale once it crashed)
};

class Scheduler {
 public:
  void push(SimEvent ev) {
    ev.order = next_order_++;
    heap_.push_back(std::move(ev));
    std::push_heap(heap_.begin(), heap_.end(), Later{});
  }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  Time next_time() const { return heap_.front().at; }
  SimEvent pop() {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    SimEvent ev = std::move(heap_.back());
    heap_.pop_back();
    return ev;
  }

 private:
  struct Later {
    bool operator()(const SimEvent& a, const SimEvent& b) const {
      return a.at != b.at ? a.at > b.at : a.order > b.order;
    }
  };
  std::vector<SimEvent> heap_;
  uint64_t next_order_ = 0;
};

}  // namespace agent::sim
