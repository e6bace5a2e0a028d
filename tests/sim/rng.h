// The simulator's only source of randomness: xoshiro256** seeded through splitmix64, with our own
// uniform and bernoulli helpers. std:: distributions are not used because their output differs
// between standard libraries, and a failing seed must replay identically everywhere.
#pragma once

#include <cstdint>
#include <cstddef>
#include <iterator>
#include <string_view>

namespace agent::sim {

// splitmix64 step: also a good 64-bit mixer for deriving independent seeds.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  // salt separates the streams drawn from one seed (config, network, workload...).
  explicit Rng(uint64_t seed, uint64_t salt = 0) {
    uint64_t st = seed ^ (salt * 0xd1b54a32d192ed03ull);
    for (auto& w : s_) w = splitmix64(st);
  }

  uint64_t next() {
    uint64_t result = rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n); n > 0. Rejection sampling: no modulo bias.
  uint64_t below(uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
      uint64_t x = next();
      if (x < limit) return x % n;
    }
  }
  // Uniform in [lo, hi], inclusive.
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // Uniform in [0, 1) with 53 bits.
  double unit() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  bool chance(double p) { return p > 0 && unit() < p; }
  template <typename C>
  auto pick(const C& c) {
    return c[below(std::size(c))];
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// FNV-1a 64: payload fingerprints for the records (the checker compares these, not copies).
inline uint64_t fingerprint(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h ^ s.size();
}

}  // namespace agent::sim
