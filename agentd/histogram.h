// A fixed-bucket histogram of durations in microseconds, as Prometheus histograms are shown:
// counts per upper bound, their sum and count. Fixed size, no allocation: observed on the hot
// path (delivery latency, token rotation), copied into admin snapshots.
#pragma once

#include <array>
#include <cstdint>

namespace agent::daemon {

struct Histogram {
  // Upper bounds in µs (le="..." in seconds on /metrics); the last bucket is +Inf.
  static constexpr std::array<uint64_t, 16> kBoundsUs = {
      50,    100,    250,    500,    1000,    2500,    5000,    10000,
      25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
  std::array<uint64_t, kBoundsUs.size() + 1> counts{};  // per bucket, not cumulative
  uint64_t count = 0;
  uint64_t sum_us = 0;

  void observe(uint64_t us) {
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    ++counts[i];
    ++count;
    sum_us += us;
  }
  // The smallest bucket bound under which at least q (0..1) of the observations fall; the
  // last finite bound when they lie beyond it; 0 when empty.
  uint64_t quantile_bound_us(double q) const {
    if (count == 0) return 0;
    uint64_t want = static_cast<uint64_t>(q * static_cast<double>(count) + 0.999999);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBoundsUs.size(); ++i)
      if ((seen += counts[i]) >= want) return kBoundsUs[i];
    return kBoundsUs.back();
  }
};

}  // namespace agent::daemon
