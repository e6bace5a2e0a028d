// The simulator's framing of what it submits to a ring: an 8-byte little-endian nonce, then the
// encoded group event. The ring carries opaque bytes, so the framing changes nothing it does;
// it lets the checker identify every ring message exactly ((instance << 32) | submission
// number), even when two events encode to the same bytes (a client joining the same group
// twice, two daemons' empty state events). The daemon strips it before the group layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace agent::sim {

constexpr size_t kNonceBytes = 8;

inline uint64_t make_nonce(uint32_t instance, uint64_t submission) {
  return (static_cast<uint64_t>(instance) << 32) | (submission & 0xffffffffu);
}
inline uint32_t nonce_instance(uint64_t nonce) { return static_cast<uint32_t>(nonce >> 32); }
inline uint64_t nonce_submission(uint64_t nonce) { return nonce & 0xffffffffu; }

inline std::string frame(uint64_t nonce, std::string_view event) {
  std::string out(kNonceBytes, '\0');
  for (size_t i = 0; i < kNonceBytes; ++i) out[i] = static_cast<char>(nonce >> (8 * i));
  out.append(event.data(), event.size());
  return out;
}

struct Unframed {
  uint64_t nonce = 0;
  std::string_view event;
};
inline std::optional<Unframed> unframe(std::string_view payload) {
  if (payload.size() < kNonceBytes) return std::nullopt;
  Unframed u;
  for (size_t i = 0; i < kNonceBytes; ++i)
    u.nonce |= static_cast<uint64_t>(static_cast<unsigned char>(payload[i])) << (8 * i);
  u.event = payload.substr(kNonceBytes);
  return u;
}

}  // namespace agent::sim
