// Sealing and opening ring datagrams (transport/ring_seal.h): authentication, encryption,
// replay windows, epochs, keys and key files.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "transport/ring_seal.h"

using namespace agent::ringseal;

namespace {

Key key_of(uint8_t fill) {
  Key k;
  k.fill(fill);
  return k;
}

// Opens a copy (opening works in place).
Sealer::Opened open_copy(Sealer& s, std::string datagram, uint32_t from, std::string* packet = nullptr) {
  auto o = s.open(datagram.data(), datagram.size(), from);
  if (o.ok && packet) *packet = std::string(o.packet);
  return o;
}

struct TempDir {
  TempDir() {
    char t[] = "/tmp/agent-seal-XXXXXX";
    REQUIRE(::mkdtemp(t));
    path = t;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string path;
};

}  // namespace

TEST_CASE("seal: an encrypted datagram opens to the packet and hides it on the wire", "[seal]") {
  Sealer a({key_of(1)}, 1, 1000, true), b({key_of(1)}, 2, 2000, true);
  std::string packet = "a ring packet with a recognisable payload";
  std::string d = a.seal(packet);
  CHECK(d.size() == packet.size() + kOverheadBytes);
  CHECK(d.find("recognisable") == std::string::npos);
  std::string got;
  auto o = open_copy(b, d, 1, &got);
  REQUIRE(o.ok);
  CHECK(got == packet);
  CHECK(b.stats().opened == 1);
  CHECK(b.peer_epoch(1) == 1000);
}

TEST_CASE("seal: authenticated only the packet travels as it is but cannot be changed", "[seal]") {
  Sealer a({key_of(1)}, 1, 1000, false), b({key_of(1)}, 2, 2000, false);
  std::string packet = "plain for all to read";
  std::string d = a.seal(packet);
  CHECK(d.find(packet) != std::string::npos);
  std::string got;
  REQUIRE(open_copy(b, d, 1, &got).ok);
  CHECK(got == packet);
  std::string changed = a.seal(packet);  // not yet seen: the tag, not the window, refuses it
  changed[kHeaderBytes + 3] ^= 0x20;
  CHECK(open_copy(b, changed, 1).why == Drop::kForged);
}

TEST_CASE("seal: any changed byte or a truncation or random bytes are dropped and counted", "[seal]") {
  Sealer a({key_of(7)}, 1, 1000, true), b({key_of(7)}, 2, 2000, true);
  std::string d = a.seal(std::string(100, 'x'));
  uint64_t drops = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    std::string m = d;
    m[i] ^= 0x01;
    auto o = open_copy(b, m, 1);
    CHECK_FALSE(o.ok);
    ++drops;
  }
  for (size_t len : {size_t{0}, size_t{1}, size_t{16}, kOverheadBytes - 1, d.size() - 1}) {
    CHECK_FALSE(open_copy(b, d.substr(0, len), 1).ok);
    ++drops;
  }
  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {
    std::string r(16 + rng() % 200, '\0');
    for (auto& ch : r) ch = static_cast<char>(rng());
    CHECK_FALSE(open_copy(b, r, 1).ok);
    ++drops;
    // Random bytes behind a valid-looking header: forged.
    r.replace(0, kHeaderBytes, d.substr(0, kHeaderBytes));
    r.resize(std::max(r.size(), kOverheadBytes));
    CHECK(open_copy(b, r, 1).why == Drop::kForged);
    ++drops;
  }
  CHECK(b.stats().dropped_total() == drops);
  CHECK(b.stats().opened == 0);
  CHECK(b.stats().dropped[static_cast<size_t>(Drop::kForged)] >= 200);
  // The genuine one still opens: failed attempts changed nothing.
  CHECK(open_copy(b, d, 1).ok);
}

TEST_CASE("seal: a datagram under another key or of another sender or mode is refused", "[seal]") {
  Sealer a({key_of(1)}, 1, 1000, true), other({key_of(2)}, 1, 1000, true);
  Sealer b({key_of(1)}, 2, 2000, true), plain({key_of(1)}, 3, 3000, false);
  std::string packet = "hello";
  CHECK(open_copy(b, other.seal(packet), 1).why == Drop::kWrongKey);
  CHECK(open_copy(b, a.seal(packet), 3).why == Drop::kSender);  // from 3's address, names 1
  CHECK(open_copy(b, plain.seal(packet), 3).why == Drop::kMode);
  CHECK(open_copy(plain, a.seal(packet), 1).why == Drop::kMode);
  std::string raw = "\x41\x52\x01\x03 not sealed at all";  // a ring packet's magic
  CHECK(open_copy(b, raw, 1).why == Drop::kUnsealed);
}

TEST_CASE("seal: replays are dropped but reordering within the window is not", "[seal]") {
  Sealer a({key_of(1)}, 1, 1000, true), b({key_of(1)}, 2, 2000, true);
  std::vector<std::string> sent;
  for (int i = 0; i < 10; ++i) sent.push_back(a.seal("packet " + std::to_string(i)));
  // Out of order: 0, 2, 1, 5, 3, 4 ...
  for (int i : {0, 2, 1, 5, 3, 4, 9, 6, 8, 7}) CHECK(open_copy(b, sent[i], 1).ok);
  for (auto& d : sent) CHECK(open_copy(b, d, 1).why == Drop::kReplayed);
  // Far behind the newest: refused even if never seen.
  std::string old = a.seal("held back");
  for (uint64_t i = 0; i < kReplayWindow + 1; ++i) REQUIRE(open_copy(b, a.seal("x"), 1).ok);
  CHECK(open_copy(b, old, 1).why == Drop::kReplayed);
  CHECK(b.stats().dropped[static_cast<size_t>(Drop::kReplayed)] == 11);
}

TEST_CASE("seal: a sender's previous incarnation is refused once a newer one is heard", "[seal]") {
  Sealer b({key_of(1)}, 2, 5000, true);
  Sealer first({key_of(1)}, 1, 1000, true);
  std::string early = first.seal("from the first start");
  std::string late = first.seal("also from the first start");
  REQUIRE(open_copy(b, early, 1).ok);
  Sealer second({key_of(1)}, 1, 1001, true);  // restarted: a later epoch, counters from 1
  REQUIRE(open_copy(b, second.seal("restarted"), 1).ok);
  CHECK(b.peer_epoch(1) == 1001);
  CHECK(open_copy(b, late, 1).why == Drop::kOldEpoch);
  CHECK(open_copy(b, second.seal("goes on"), 1).ok);
  // A forged datagram naming a newer epoch changes nothing.
  std::string fake = second.seal("x");
  fake[19] = static_cast<char>(0x7f);  // the epoch's top byte: far in the future
  CHECK(open_copy(b, fake, 1).why == Drop::kForged);
  CHECK(b.peer_epoch(1) == 1001);
}

TEST_CASE("seal: key rotation: a receiver with both keys follows a sender to the new one", "[seal]") {
  Key old_key = key_of(1), new_key = key_of(2);
  Sealer a({old_key}, 1, 1000, true);
  Sealer b({old_key, new_key}, 2, 2000, true);  // step 1: accepts both, seals with the old
  std::string before = a.seal("under the old key");
  REQUIRE(open_copy(b, before, 1).ok);
  a.set_keys({new_key, old_key});  // step 2: a seals with the new key
  std::string after = a.seal("under the new key");
  REQUIRE(open_copy(b, after, 1).ok);
  CHECK(open_copy(b, before, 1).why == Drop::kReplayed);  // the window survives the switch
  CHECK(open_copy(b, after, 1).why == Drop::kReplayed);
  Sealer c({new_key}, 3, 3000, true);  // step 3: the old key is gone
  CHECK(open_copy(c, a.seal("x"), 1).ok);
  CHECK(key_id(old_key) != key_id(new_key));
}

TEST_CASE("key files: keygen writes 32 random bytes with mode 0600 and loading checks mode and size",
          "[seal]") {
  TempDir t;
  std::string path = t.path + "/ring.key";
  REQUIRE(generate_key_file(path) == "");
  struct stat sb;
  REQUIRE(::stat(path.c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0600);
  CHECK(sb.st_size == 32);
  Key k{}, k2{};
  CHECK(load_key_file(path, k) == "");
  CHECK(k != Key{});
  std::string path2 = t.path + "/other.key";
  REQUIRE(generate_key_file(path2) == "");
  REQUIRE(load_key_file(path2, k2) == "");
  CHECK(k != k2);
  // Never overwritten.
  CHECK(generate_key_file(path).find("File exists") != std::string::npos);
  ::chmod(path.c_str(), 0640);
  auto err = load_key_file(path, k);
  CHECK(err.find(path) != std::string::npos);
  CHECK(err.find("mode 0640") != std::string::npos);
  CHECK(err.find("chmod 600") != std::string::npos);
  ::chmod(path.c_str(), 0604);
  CHECK(load_key_file(path, k).find("group or others") != std::string::npos);
  std::string small = t.path + "/small.key";
  { std::ofstream(small) << "short"; }
  ::chmod(small.c_str(), 0600);
  err = load_key_file(small, k);
  CHECK(err.find("5 bytes, a key has 32") != std::string::npos);
  err = load_key_file(t.path + "/missing.key", k);
  CHECK(err.find("No such file") != std::string::npos);
  CHECK(err.find("agentd keygen") != std::string::npos);
}
