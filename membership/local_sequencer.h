// The ring of one: a daemon alone orders events by numbering them as they are submitted.
// It is the degenerate case of the daemon ring and has the same contract towards the group
// layer: a gap-free, strictly increasing sequence number per ordered event within a
// configuration id.
#pragma once

#include <cstdint>

namespace agent::membership {

class LocalSequencer {
 public:
  explicit LocalSequencer(uint64_t config_id = 1) : config_id_(config_id) {}
  // The number of the next event in the total order.
  uint64_t next() { return ++seq_; }
  uint64_t last() const { return seq_; }
  uint64_t config_id() const { return config_id_; }

 private:
  uint64_t config_id_;
  uint64_t seq_ = 0;
};

}  // namespace agent::membership
