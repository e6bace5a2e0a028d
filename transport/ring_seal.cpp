#include "transport/ring_seal.h"

#include "transport/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace agent::ringseal {

namespace {

constexpr char kSubkeyLabel[] = "libagent ring v1 sender key";
constexpr char kKeyIdLabel[] = "libagent ring key id";
constexpr size_t kNonceBytes = 12;

void put_le(char* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t get_le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::array<uint8_t, 32> hmac(const Key& key, const std::string& msg) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), &len) ||
      len != out.size())
    throw std::runtime_error("HMAC-SHA256 failed");
  return out;
}

void nonce_of(uint64_t counter, unsigned char* nonce) {
  std::memset(nonce, 0, kNonceBytes);
  put_le(reinterpret_cast<char*>(nonce), counter, 8);
}

}  // namespace

// One derived key, ready to seal or to open (its key schedule is computed once): a sender's
// own seals, a peer's opens. Only the context used is made (a forged datagram that names a
// new epoch costs one derivation).
struct Sealer::Cipher {
  EVP_CIPHER_CTX* enc = nullptr;
  EVP_CIPHER_CTX* dec = nullptr;
  Cipher(const std::array<uint8_t, 32>& key, bool sealing) {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    (sealing ? enc : dec) = c;
    bool ok = c && (sealing ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), nullptr, key.data(), nullptr)
                            : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), nullptr, key.data(), nullptr)) == 1;
    if (!ok) {
      free();
      throw std::runtime_error("cannot set up AES-256-GCM");
    }
  }
  ~Cipher() { free(); }
  void free() {
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
    enc = dec = nullptr;
  }
};

const char* to_string(Drop d) {
  switch (d) {
    case Drop::kMalformed: return "malformed";
    case Drop::kUnsealed: return "unauthenticated";
    case Drop::kSender: return "sender mismatch";
    case Drop::kWrongKey: return "other key";
    case Drop::kForged: return "forged";
    case Drop::kMode: return "other encryption setting";
    case Drop::kReplayed: return "replayed";
    case Drop::kOldEpoch: return "old incarnation";
    case Drop::kCount: break;
  }
  return "?";
}

uint64_t SealStats::dropped_total() const {
  uint64_t n = 0;
  for (auto d : dropped) n += d;
  return n;
}

std::string generate_key_file(const std::string& path) {
  Key key;
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1)
    return "cannot generate a key: the system's random source failed";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return "cannot create key file " + path + ": " + std::strerror(errno) +
           (errno == EEXIST ? " (a key is never overwritten: remove it first)" : "");
  // The mode given to open() is reduced by the umask; make sure it is exactly 0600.
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return "cannot write key file " + path + ": " + std::strerror(err);
  }
  return {};
}

std::string load_key_file(const std::string& path, Key& out) {
  std::string what = "ring.key_file " + path + ": ";
  transport::PrivateFileRules rules;
  rules.contents = "the key";
  rules.max_bytes = kKeyBytes;
  rules.size_error = [](uint64_t size) -> std::string {
    if (size == kKeyBytes) return {};
    return std::to_string(size) + " bytes, a key has " + std::to_string(kKeyBytes) +
           " (make one with: agentd keygen FILE)";
  };
  std::string text;
  auto r = transport::read_private_file(path, rules, text);
  if (!r.error.empty())
    return what + r.error + (r.open_failed ? " (make one with: agentd keygen " + path + ")" : "");
  if (text.size() != out.size()) return what + "short read";
  std::memcpy(out.data(), text.data(), out.size());
  return {};
}

uint32_t key_id(const Key& key) {
  auto h = hmac(key, kKeyIdLabel);
  return static_cast<uint32_t>(get_le(reinterpret_cast<const char*>(h.data()), 4));
}

Sealer::Sealer(std::vector<Key> keys, uint32_t self, uint64_t epoch, bool encrypt)
    : self_(self), epoch_(epoch), encrypt_(encrypt) {
  set_keys(std::move(keys));
}

Sealer::~Sealer() = default;

void Sealer::set_keys(std::vector<Key> keys) {
  if (keys.empty() || keys.size() > kMaxKeys) throw std::invalid_argument("1 or 2 ring keys");
  keys_.clear();
  for (auto& k : keys) keys_.push_back(KeySlot{k, key_id(k)});
  // The epoch stays: the new key gives new derived keys, so counters may go on.
  send_ = derive(keys_.front().key, self_, epoch_, true);
}

std::unique_ptr<Sealer::Cipher> Sealer::derive(const Key& key, uint32_t sender, uint64_t epoch,
                                               bool sealing) const {
  std::string msg(kSubkeyLabel, sizeof kSubkeyLabel - 1);
  char b[12];
  put_le(b, sender, 4);
  put_le(b + 4, epoch, 8);
  msg.append(b, sizeof b);
  return std::make_unique<Cipher>(hmac(key, msg), sealing);
}

uint64_t Sealer::peer_epoch(uint32_t peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.epoch;
}

std::string Sealer::seal(std::string_view packet) {
  std::string out(packet.size() + kOverheadBytes, '\0');
  out.resize(seal(packet, out.data()));
  return out;
}

size_t Sealer::seal(std::string_view packet, char* out) {
  uint64_t counter = ++counter_;
  put_le(out, kMagic, 2);
  out[2] = static_cast<char>(kVersion);
  out[3] = static_cast<char>(encrypt_ ? kEncrypted : 0);
  put_le(out + 4, keys_.front().id, 4);
  put_le(out + 8, self_, 4);
  put_le(out + 12, epoch_, 8);
  put_le(out + 20, counter, 8);
  unsigned char nonce[kNonceBytes];
  nonce_of(counter, nonce);
  EVP_CIPHER_CTX* c = send_->enc;
  auto* body = reinterpret_cast<unsigned char*>(out + kHeaderBytes);
  auto* in = reinterpret_cast<const unsigned char*>(packet.data());
  int len = 0, inl = static_cast<int>(packet.size());
  bool ok = EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_EncryptUpdate(c, nullptr, &len, reinterpret_cast<unsigned char*>(out),
                              static_cast<int>(kHeaderBytes)) == 1;
  if (encrypt_) {
    ok = ok && EVP_EncryptUpdate(c, body, &len, in, inl) == 1;
  } else {
    // Authenticated only: the packet is additional data, sent as it is.
    ok = ok && EVP_EncryptUpdate(c, nullptr, &len, in, inl) == 1;
    std::memcpy(body, in, packet.size());
  }
  ok = ok && EVP_EncryptFinal_ex(c, body + packet.size(), &len) == 1 &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                           body + packet.size()) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM sealing failed");
  ++stats_.sealed;
  return packet.size() + kOverheadBytes;
}

Sealer::Opened Sealer::drop(Drop why) {
  ++stats_.dropped[static_cast<size_t>(why)];
  Opened o;
  o.why = why;
  return o;
}

bool Sealer::fresh(const Peer& p, uint64_t counter) {
  if (counter == 0) return false;
  if (counter > p.top) return true;
  if (p.top - counter >= kReplayWindow) return false;
  uint64_t bit = counter % kReplayWindow;
  return !(p.seen[bit / 64] >> (bit % 64) & 1);
}

void Sealer::mark(Peer& p, uint64_t counter) {
  if (counter > p.top) {
    if (counter - p.top >= kReplayWindow) {
      p.seen.fill(0);
    } else {
      for (uint64_t c = p.top + 1; c < counter; ++c) {
        uint64_t bit = c % kReplayWindow;
        p.seen[bit / 64] &= ~(uint64_t{1} << (bit % 64));
      }
    }
    p.top = counter;
  }
  uint64_t bit = counter % kReplayWindow;
  p.seen[bit / 64] |= uint64_t{1} << (bit % 64);
}

Sealer::Opened Sealer::open(char* data, size_t size, uint32_t from) {
  if (size < 2 || get_le(data, 2) != kMagic) return drop(Drop::kUnsealed);
  if (size < kOverheadBytes || static_cast<uint8_t>(data[2]) != kVersion ||
      (static_cast<uint8_t>(data[3]) & ~kEncrypted) != 0)
    return drop(Drop::kMalformed);
  bool encrypted = (static_cast<uint8_t>(data[3]) & kEncrypted) != 0;
  uint32_t kid = static_cast<uint32_t>(get_le(data + 4, 4));
  uint32_t sender = static_cast<uint32_t>(get_le(data + 8, 4));
  uint64_t epoch = get_le(data + 12, 8);
  uint64_t counter = get_le(data + 20, 8);
  if (sender != from) return drop(Drop::kSender);
  const KeySlot* slot = nullptr;
  for (auto& k : keys_)
    if (k.id == kid) slot = &k;
  if (!slot) return drop(Drop::kWrongKey);
  // Cheap checks first: nothing is computed for what would be refused anyway.
  Peer& p = peers_[sender];
  bool known = p.cipher != nullptr;
  if (known && epoch < p.epoch) return drop(Drop::kOldEpoch);
  bool same_epoch = known && epoch == p.epoch;
  if (same_epoch && !fresh(p, counter)) return drop(Drop::kReplayed);
  if (counter == 0) return drop(Drop::kReplayed);
  std::unique_ptr<Cipher> fresh_cipher;
  Cipher* cipher = p.cipher.get();
  if (!same_epoch || p.key_id != kid) {
    fresh_cipher = derive(slot->key, sender, epoch, false);
    cipher = fresh_cipher.get();
  }
  size_t body_size = size - kOverheadBytes;
  auto* header = reinterpret_cast<unsigned char*>(data);
  auto* body = header + kHeaderBytes;
  unsigned char nonce[kNonceBytes];
  nonce_of(counter, nonce);
  EVP_CIPHER_CTX* c = cipher->dec;
  int len = 0, n = static_cast<int>(body_size);
  bool ok = EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_DecryptUpdate(c, nullptr, &len, header, static_cast<int>(kHeaderBytes)) == 1;
  if (encrypted)
    ok = ok && EVP_DecryptUpdate(c, body, &len, body, n) == 1;
  else
    ok = ok && EVP_DecryptUpdate(c, nullptr, &len, body, n) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                                 body + body_size) == 1 &&
       EVP_DecryptFinal_ex(c, body + body_size, &len) == 1;
  if (!ok) {
    if (!known) peers_.erase(sender);
    return drop(Drop::kForged);
  }
  // Authentic: only now may it change what this daemon believes about the sender.
  if (encrypted != encrypt_) {
    if (!known) peers_.erase(sender);
    return drop(Drop::kMode);
  }
  if (fresh_cipher) {
    if (!same_epoch) {
      p.epoch = epoch;
      p.top = 0;
      p.seen.fill(0);
    }
    p.key_id = kid;
    p.cipher = std::move(fresh_cipher);
  }
  mark(p, counter);
  ++stats_.opened;
  Opened o;
  o.ok = true;
  o.packet = std::string_view(data + kHeaderBytes, body_size);
  return o;
}

}  // namespace agent::ringseal
