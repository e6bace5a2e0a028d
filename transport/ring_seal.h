// Authentication and encryption of ring datagrams (docs/security.md).
//
// Every datagram on the ring socket travels in an envelope sealed with AES-256-GCM (OpenSSL):
//
//   u16 magic 0x5341 ("AS") | u8 version 1 | u8 flags (0x01: encrypted) | u32 key id
//   | u32 sender | u64 epoch | u64 counter | body | 16-byte tag
//
// The 28 header bytes are authenticated; the body is the ring packet (transport/ring_wire.h),
// encrypted, or with encryption off authenticated as it is (then everything is additional
// data and the plaintext is empty: a GMAC). The cluster key is never used directly: each
// (sender, epoch) gets a key of its own, HMAC-SHA256(cluster key, label | sender | epoch),
// and its nonces are the counter, so no nonce repeats under one key while epochs differ.
//
// Replay: the epoch is the sender's start time in µs (kept above every earlier one, see
// persist::next_ring_epoch), the counter grows by one per datagram from 1. A receiver keeps,
// per configured sender, the newest epoch it authenticated and a window of the last
// kReplayWindow counters: a counter seen before, or below the window, or an older epoch (a
// previous incarnation of the sender) is dropped. A retransmitted ring packet is a new
// datagram (new counter), so retransmission is unaffected.
//
// The key id (from the key, not secret) lets a receiver tell a datagram sealed under another
// key ("is ring.key_file the same everywhere?") from a forged one, and lets two keys be
// accepted at once (rotation).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace agent::ringseal {

constexpr size_t kKeyBytes = 32;
constexpr uint16_t kMagic = 0x5341;
constexpr uint8_t kVersion = 1;
constexpr uint8_t kEncrypted = 0x01;
constexpr size_t kHeaderBytes = 28;
constexpr size_t kTagBytes = 16;
constexpr size_t kOverheadBytes = kHeaderBytes + kTagBytes;
constexpr uint64_t kReplayWindow = 4096;  // counters behind the newest still accepted once
constexpr size_t kMaxKeys = 2;            // keys accepted at once (the sending key first)

using Key = std::array<uint8_t, kKeyBytes>;

// Writes a new random key to path (created with mode 0600; an existing file is refused).
// "" on success, else what went wrong.
std::string generate_key_file(const std::string& path);
// Reads a key file: exactly kKeyBytes bytes, a regular file that neither group nor others
// may read or write. "" on success, else a message naming the file and what to do.
std::string load_key_file(const std::string& path, Key& out);
// A key's public id (the first four bytes of HMAC-SHA256(key, "libagent ring key id")).
uint32_t key_id(const Key& key);

// Why a datagram was dropped.
enum class Drop : uint8_t {
  kMalformed,    // too short, or a version this daemon does not speak
  kUnsealed,     // no envelope at all: a daemon without a key, or a forgery
  kSender,       // the envelope's sender is not the daemon at the source address
  kWrongKey,     // sealed under a key this daemon does not have
  kForged,       // the tag does not verify: changed in flight, or made without the key
  kMode,         // encrypted where this daemon only authenticates, or the other way round
  kReplayed,     // a counter already seen, or too far behind the window
  kOldEpoch,     // from an earlier incarnation of the sender than one already heard
  kCount
};
const char* to_string(Drop d);

struct SealStats {
  uint64_t sealed = 0;
  uint64_t opened = 0;
  std::array<uint64_t, static_cast<size_t>(Drop::kCount)> dropped{};
  uint64_t dropped_total() const;
};

class Sealer {
 public:
  // keys: the keys accepted, the first one seals. self: this daemon's id; epoch: this
  // start's (never reused with these keys). encrypt: seal with encryption, and accept only
  // encrypted datagrams (false: authenticated only, and accept only those).
  Sealer(std::vector<Key> keys, uint32_t self, uint64_t epoch, bool encrypt);
  ~Sealer();
  Sealer(const Sealer&) = delete;
  Sealer& operator=(const Sealer&) = delete;

  // Seals packet into out, which has room for packet.size() + kOverheadBytes; returns the
  // sealed size. Every call uses a new counter.
  size_t seal(std::string_view packet, char* out);
  std::string seal(std::string_view packet);

  struct Opened {
    bool ok = false;
    Drop why = Drop::kMalformed;  // when !ok
    std::string_view packet;      // when ok: the ring packet, in place inside the datagram
  };
  // Opens a datagram in place (decrypting overwrites it). from: the daemon at the source
  // address (its envelope must name it). A datagram that does not open changes no state.
  Opened open(char* data, size_t size, uint32_t from);

  // Replaces the keys (rotation): the first seals from now on, all are accepted.
  void set_keys(std::vector<Key> keys);

  bool encrypting() const { return encrypt_; }
  uint64_t epoch() const { return epoch_; }
  const SealStats& stats() const { return stats_; }
  // Peers heard from: their current epoch (for diagnostics and tests).
  uint64_t peer_epoch(uint32_t peer) const;

 private:
  struct Cipher;  // an AES-256-GCM context with one derived key
  struct KeySlot {
    Key key;
    uint32_t id;
  };
  struct Peer {
    uint32_t key_id = 0;
    uint64_t epoch = 0;
    uint64_t top = 0;  // newest counter accepted
    std::array<uint64_t, kReplayWindow / 64> seen{};
    std::unique_ptr<Cipher> cipher;  // for (key_id, sender, epoch)
  };
  std::unique_ptr<Cipher> derive(const Key& key, uint32_t sender, uint64_t epoch,
                                 bool sealing) const;
  Opened drop(Drop why);
  static bool fresh(const Peer& p, uint64_t counter);
  static void mark(Peer& p, uint64_t counter);

  std::vector<KeySlot> keys_;
  uint32_t self_;
  uint64_t epoch_;
  bool encrypt_;
  uint64_t counter_ = 0;
  std::unique_ptr<Cipher> send_;
  std::map<uint32_t, Peer> peers_;
  SealStats stats_;
};

}  // namespace agent::ringseal
