// A simulated daemon's message log: what the core hands to CoreIo::log_append, a durable
// position that simulated syncs advance, and a crash that loses what was not synced. It lives
// with the daemon, not the instance: a restarted daemon finds what its earlier instances synced.
//
// Syncs work as the log actor's with durability "always" (agentd/log_actor.cpp): one sync at a
// time, started as soon as something is appended and none is running; it covers what was
// appended when it started (group commit) and takes the disk's time (the cluster schedules
// its end).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "persist/entry.h"

namespace agent::sim {

class SimLog {
 public:
  struct Entry {
    persist::Position pos;
    uint64_t payload_fingerprint = 0;
    std::vector<std::string> log_groups;
  };

  // False (nothing appended) when a record does not come after the last one: a daemon's
  // positions only grow.
  bool append(const persist::Entry& e, uint64_t payload_fingerprint,
              std::vector<std::string> log_groups) {
    if (!entries_.empty() && !(entries_.back().pos < e.pos)) return false;
    entries_.push_back(Entry{e.pos, payload_fingerprint, std::move(log_groups)});
    return true;
  }
  // A sync starts: true when there is something to sync and none is running.
  bool begin_sync() {
    if (syncing_ || entries_.size() == synced_) return false;
    syncing_ = true;
    sync_target_ = entries_.size();
    return true;
  }
  // The running sync ends: what it covered is durable. Returns the last durable position.
  persist::Position end_sync() {
    syncing_ = false;
    synced_ = std::max(synced_, sync_target_);
    return last_synced();
  }
  // The daemon crashed: the unsynced tail is gone, and so is the sync under way.
  void crash() {
    entries_.resize(synced_);
    syncing_ = false;
  }
  persist::Position last_synced() const {
    return synced_ == 0 ? persist::Position{} : entries_[synced_ - 1].pos;
  }
  // The synced entry at pos, or null.
  const Entry* synced_at(persist::Position pos) const {
    auto end = entries_.begin() + static_cast<std::ptrdiff_t>(synced_);
    auto it = std::lower_bound(entries_.begin(), end, pos,
                               [](const Entry& e, const persist::Position& p) { return e.pos < p; });
    return it != end && it->pos == pos ? &*it : nullptr;
  }
  const std::vector<Entry>& entries() const { return entries_; }
  size_t synced() const { return synced_; }
  bool syncing() const { return syncing_; }

 private:
  std::vector<Entry> entries_;
  size_t synced_ = 0;       // entries_[0, synced_) are on disk
  bool syncing_ = false;
  size_t sync_target_ = 0;  // what the running sync covers
};

}  // namespace agent::sim
