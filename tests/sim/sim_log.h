// A simulated daemon's message log: what the core hands to CoreIo::log_append and log_fill, a
// durable point that simulated syncs advance, and a crash that loses what was not synced. It
// lives with the daemon, not the instance: a restarted daemon finds what its earlier instances
// synced.
//
// Writes are kept in the order they were made (a journal of appends and catch-up fills, as
// RocksDB's write-ahead log has them); a crash keeps the synced prefix. Syncs work as the log
// actor's with durability "always" (agentd/log_actor.cpp): one sync at a time, started as soon
// as something is written and none is running; it covers what was written when it started
// (group commit) and takes the disk's time (the cluster schedules its end). What the log holds
// of each ring (persist::Coverage) is kept as persist::MessageLog keeps it, in the same writes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "persist/entry.h"

namespace agent::sim {

class SimLog {
 public:
  struct Entry {
    persist::Entry entry;  // payload included: a donor sends it to others
    uint64_t payload_fingerprint = 0;
    std::vector<std::string> log_groups;
    bool past_gap = false;
  };

  // False (nothing written) when an appended record does not come after the last one: a
  // daemon's positions only grow.
  bool append(const persist::Record& r, std::string_view payload, uint64_t payload_fingerprint) {
    if (!last_appended_.zero() && !(last_appended_ < r.entry.pos)) return false;
    Write w;
    w.entries.push_back(make(r, payload, payload_fingerprint));
    last_appended_ = r.entry.pos;
    apply(w, true);
    writes_.push_back(std::move(w));
    return true;
  }
  // Another daemon's messages of `ring` (catch-up), as persist::MessageLog::fill: those held
  // already are skipped; afterwards the log holds the ring up to upto. False (nothing written)
  // when the log holds messages of the ring delivered past a gap and upto is above them.
  bool fill(const std::vector<persist::Record>& records, uint64_t ring, uint64_t upto,
            uint64_t (*fingerprint)(std::string_view)) {
    auto c = coverage_.find(ring);
    if (c != coverage_.end() && c->second.past_gap && upto > c->second.through) return false;
    Write w;
    w.fill_ring = ring;
    w.fill_upto = upto;
    for (auto& r : records)
      if (!index_.count(r.entry.pos)) w.entries.push_back(make(r, r.payload(), fingerprint(r.payload())));
    apply(w, false);
    writes_.push_back(std::move(w));
    return true;
  }
  // A sync starts: true when there is something to sync and none is running.
  bool begin_sync() {
    if (syncing_ || writes_.size() == synced_) return false;
    syncing_ = true;
    sync_target_ = writes_.size();
    return true;
  }
  // The running sync ends: what it covered is durable. Returns the last durable appended
  // position (what CoreIo::log_append's records the disk holds up to).
  persist::Position end_sync() {
    syncing_ = false;
    synced_ = std::max(synced_, sync_target_);
    return last_synced();
  }
  // The daemon crashed: the unsynced writes are gone, and so is the sync under way.
  void crash() {
    writes_.resize(synced_);
    syncing_ = false;
    index_.clear();
    coverage_.clear();
    last_appended_ = {};
    for (size_t i = 0; i < writes_.size(); ++i) {
      for (auto& e : writes_[i].entries) {
        index_[e.entry.pos] = {i, static_cast<size_t>(&e - writes_[i].entries.data())};
        if (writes_[i].fill_ring == 0) last_appended_ = e.entry.pos;
      }
      apply_coverage(writes_[i]);
    }
  }
  persist::Position last_synced() const {
    for (size_t i = synced_; i > 0; --i)
      if (writes_[i - 1].fill_ring == 0) return writes_[i - 1].entries.back().entry.pos;
    return {};
  }
  // The synced entry at pos, or null.
  const Entry* synced_at(persist::Position pos) const {
    auto it = index_.find(pos);
    if (it == index_.end() || it->second.first >= synced_) return nullptr;
    return &writes_[it->second.first].entries[it->second.second];
  }
  // The entry at pos (synced or not), or null.
  const Entry* at(persist::Position pos) const {
    auto it = index_.find(pos);
    return it == index_.end() ? nullptr : &writes_[it->second.first].entries[it->second.second];
  }
  // Every entry (synced or not, as reads see them), by position.
  std::vector<const Entry*> entries() const {
    std::vector<const Entry*> out;
    for (auto& [pos, at] : index_) out.push_back(&writes_[at.first].entries[at.second]);
    return out;
  }
  // The synced entries, by position.
  std::vector<const Entry*> synced_entries() const {
    std::vector<const Entry*> out;
    for (auto& [pos, at] : index_)
      if (at.first < synced_) out.push_back(&writes_[at.first].entries[at.second]);
    return out;
  }
  // The newest ring any entry comes from (0: none).
  uint64_t last_ring() const { return index_.empty() ? 0 : index_.rbegin()->first.ring; }
  const persist::Coverage& coverage() const { return coverage_; }
  bool syncing() const { return syncing_; }

 private:
  struct Write {
    std::vector<Entry> entries;
    uint64_t fill_ring = 0, fill_upto = 0;  // a fill's ring (0: an append)
  };
  static Entry make(const persist::Record& r, std::string_view payload, uint64_t fp) {
    Entry e;
    e.entry = r.entry;
    e.entry.payload.assign(payload.data(), payload.size());
    e.payload_fingerprint = fp;
    e.log_groups = r.log_groups;
    e.past_gap = r.past_gap;
    return e;
  }
  void apply(const Write& w, bool append) {
    size_t i = writes_.size();
    for (size_t k = 0; k < w.entries.size(); ++k) index_[w.entries[k].entry.pos] = {i, k};
    (void)append;
    apply_coverage(w);
  }
  void apply_coverage(const Write& w) {
    if (w.fill_ring == 0) {
      for (auto& e : w.entries) persist::cover(coverage_, e.entry.pos, e.past_gap);
      return;
    }
    persist::RingCover& c = coverage_[w.fill_ring];
    c.through = std::max(c.through, w.fill_upto);
    while (coverage_.size() > persist::kCoveredRings) coverage_.erase(coverage_.begin());
  }

  std::vector<Write> writes_;
  size_t synced_ = 0;       // writes_[0, synced_) are on disk
  bool syncing_ = false;
  size_t sync_target_ = 0;  // what the running sync covers
  std::map<persist::Position, std::pair<size_t, size_t>> index_;  // -> (write, entry)
  persist::Coverage coverage_;
  persist::Position last_appended_;
};

}  // namespace agent::sim
