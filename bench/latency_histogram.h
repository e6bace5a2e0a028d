// A fixed-size latency histogram: exact to 1 µs below 10 ms, to 100 µs up to 10 s, and one
// bucket for everything slower. Adding a sample never allocates, so receivers can record every
// message on the hot path.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace agent::bench {

class LatencyHistogram {
 public:
  static constexpr uint64_t kFineLimitUs = 10'000;
  static constexpr uint64_t kCoarseStepUs = 100;
  static constexpr uint64_t kMaxUs = 10'000'000;
  static constexpr size_t kBuckets =
      kFineLimitUs + (kMaxUs - kFineLimitUs) / kCoarseStepUs + 1;  // + overflow

  LatencyHistogram() : buckets_(kBuckets, 0) {}

  void add(uint64_t us) {
    ++buckets_[bucket(us)];
    ++count_;
    max_us_ = std::max(max_us_, us);
  }
  void merge(const LatencyHistogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    max_us_ = std::max(max_us_, o.max_us_);
  }
  uint64_t count() const { return count_; }
  uint64_t max_us() const { return max_us_; }

  // The smallest value v such that at least fraction q (0..1] of the samples are <= v
  // (the bucket's upper bound); 0 when empty.
  uint64_t quantile_us(double q) const {
    if (count_ == 0) return 0;
    uint64_t want = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.5);
    want = std::clamp<uint64_t>(want, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= want) return std::min(upper(i), max_us_);
    }
    return max_us_;
  }

 private:
  static size_t bucket(uint64_t us) {
    if (us < kFineLimitUs) return static_cast<size_t>(us);
    if (us >= kMaxUs) return kBuckets - 1;
    return static_cast<size_t>(kFineLimitUs + (us - kFineLimitUs) / kCoarseStepUs);
  }
  static uint64_t upper(size_t i) {
    if (i < kFineLimitUs) return i;
    if (i == kBuckets - 1) return kMaxUs;
    return kFineLimitUs + (i - kFineLimitUs + 1) * kCoarseStepUs - 1;
  }

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_us_ = 0;
};

}  // namespace agent::bench
