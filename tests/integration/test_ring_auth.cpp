// The authenticated ring through real daemons (docs/security.md): datagrams made without the
// cluster key — forged, from a daemon with another key or none, replayed, mutated — change
// nothing, and are counted by reason in the daemons' totals.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "daemon_fixture.h"
#include "transport/ring_seal.h"
#include "transport/ring_wire.h"

using namespace agent::testing;
namespace rw = agent::ringwire;

namespace {

// A UDP socket of the test's on a loopback port (standing in for a configured daemon).
struct UdpPeer {
  explicit UdpPeer(uint16_t port) {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~UdpPeer() { ::close(fd); }
  void send_to(uint16_t port, const std::string& bytes) const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  // What has arrived so far (the daemons' beacons and joins to the daemon it stands for).
  std::vector<std::string> drain() const {
    std::vector<std::string> v;
    char buf[65536];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) v.emplace_back(buf, size_t(n));
    return v;
  }
  int fd;
};

// A count from the daemon's totals line ("... forged 12, ..."); -1 if there is none.
int64_t total(const std::string& log, const std::string& what) {
  auto line = log.rfind("totals: ");
  if (line == std::string::npos) return -1;
  auto at = log.find(" " + what + " ", line);
  if (at == std::string::npos || at > log.find('\n', line)) return -1;
  return std::stoll(log.substr(at + what.size() + 2));
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

bool is_membership(const agent_message& m) { return m.kind == AGENT_MSG_MEMBERSHIP; }

// Members m1, m2 on d[0], d[1] in group g; returns once both see both.
std::vector<Conn> two_members(Daemon& a, Daemon& b) {
  std::vector<Conn> cl;
  cl.push_back(connect(a.socket_path(), "m1"));
  cl.push_back(connect(b.socket_path(), "m2"));
  for (auto& c : cl) REQUIRE(agent_join(c.get(), "g") == AGENT_OK);
  for (auto& c : cl)
    REQUIRE(receive_until(c.get(), [](auto& m) { return is_membership(m) && m.ngroups == 2; },
                          10000));
  return cl;
}

// Sends a marker through the ring and checks every member gets it with no view before it:
// everything the daemons read before the marker's turn changed no configuration.
void marker_arrives_without_views(std::vector<Conn>& cl, const std::string& text) {
  REQUIRE(agent_multicast(cl[0].get(), AGENT_AGREED, "g", 1, text.data(), text.size()) == AGENT_OK);
  for (auto& c : cl) {
    auto m = receive_until(c.get(), [&](auto& x) {
      return is_membership(x) || (x.kind == AGENT_MSG_DATA && payload(x) == text);
    }, 10000);
    REQUIRE(m);
    CHECK(m->kind == AGENT_MSG_DATA);
  }
}

// Ring datagrams an attacker without the key can make, from daemon 3's address.
// key_id: the ring's key id, public (it is in every datagram), so that made-up envelopes get as
// far as the tag.
std::vector<std::string> forgeries(uint32_t claimed, uint32_t key_id, std::mt19937& rng,
                                   size_t& unsealed, size_t& sealed_looking) {
  std::vector<std::string> v;
  // The 16-byte wake, naming a ring far ahead.
  std::string wake;
  rw::encode_header(wake, rw::Header{rw::Type::kWake, (0xfffffff0ull << 32) | claimed, claimed});
  // The join pushing ring ids towards 2^32.
  rw::Join j;
  j.ring_seq = (uint64_t{1} << 32) - 16;
  j.incarnation = 99;
  j.proc = {1, 2, 3};
  std::string join;
  rw::encode_join(join, 0, claimed, j);
  for (int i = 0; i < 100; ++i) {
    v.push_back(wake);
    v.push_back(join);
    std::string r(16 + rng() % 300, '\0');
    for (auto& c : r) c = static_cast<char>(rng());
    r[0] = 'x';  // not the envelope's magic
    v.push_back(r);
    unsealed += 3;
    // An envelope with the right shape, made up: the tag cannot be right.
    std::string e(agent::ringseal::kOverheadBytes + rng() % 200, '\0');
    for (auto& c : e) c = static_cast<char>(rng());
    e[0] = 0x41;
    e[1] = 0x53;
    e[2] = 1;
    e[3] = 1;
    std::memcpy(&e[4], &key_id, 4);
    std::memcpy(&e[8], &claimed, 4);
    v.push_back(e);
    ++sealed_looking;
  }
  return v;
}

}  // namespace

TEST_CASE("forged ring datagrams from a configured daemon's address change nothing",
          "[ring][agentd][auth]") {
  // Daemons 1 and 2 run; daemon 3 is configured but absent, and the test sends from its port.
  auto ports = free_udp_ports(3);
  UdpPeer attacker(ports[2]);
  std::vector<std::unique_ptr<Daemon>> d;
  for (uint32_t id = 1; id <= 2; ++id) {
    DaemonOptions o;
    o.name = "d" + std::to_string(id);
    o.extra_config = ring_section(id, ports, kPatientProfile);
    d.push_back(std::make_unique<Daemon>(o));
  }
  auto cl = two_members(*d[0], *d[1]);
  size_t before[2] = {d[0]->log().size(), d[1]->log().size()};
  // Real datagrams of the ring, captured (beacons to daemon 3, which they send while 3 is
  // missing), to be sent back from daemon 3's address: they name daemons 1 and 2.
  std::vector<std::string> real;
  REQUIRE(await([&] {
    for (auto& p : attacker.drain()) real.push_back(p);
    return real.size() >= 4;
  }, 5000));
  uint32_t key_id;
  std::memcpy(&key_id, &real[0][4], 4);
  std::mt19937 rng(7);
  size_t unsealed = 0, sealed_looking = 0, captured = real.size();
  auto forged = forgeries(3, key_id, rng, unsealed, sealed_looking);
  forged.insert(forged.end(), real.begin(), real.end());
  for (auto& p : forged) {
    attacker.send_to(ports[0], p);
    attacker.send_to(ports[1], p);
  }
  REQUIRE(await([&] { return d[0]->log().find("unauthenticated", before[0]) != std::string::npos; }));
  marker_arrives_without_views(cl, "after the forgeries");
  CHECK_FALSE(receive_until(cl[0].get(), is_membership, 500));
  for (int i = 0; i < 2; ++i)
    CHECK(count(d[i]->log().substr(before[i]), "configuration change") == 0);
  for (int i = 0; i < 2; ++i) {
    std::string log;
    CHECK(d[i]->stop() == 0);
    log = d[i]->log();
    INFO(log.substr(log.rfind("totals: ")));
    CHECK(total(log, "unauthenticated") >= int64_t(unsealed));
    CHECK(total(log, "forged") >= int64_t(sealed_looking));
    CHECK(total(log, "sender mismatch") >= int64_t(captured));
  }
}

TEST_CASE("without a key (ring.key_file = none) one forged wake reconfigures the ring",
          "[ring][agentd][auth]") {
  // What the key prevents: the attack on an unauthenticated ring (and a ring that
  // runs without a key still works).
  auto ports = free_udp_ports(3);
  UdpPeer attacker(ports[2]);
  std::vector<std::unique_ptr<Daemon>> d;
  for (uint32_t id = 1; id <= 2; ++id) {
    DaemonOptions o;
    o.name = "d" + std::to_string(id);
    o.extra_config = ring_section(id, ports, std::string(kPatientProfile) + "key_file = \"none\"\n");
    d.push_back(std::make_unique<Daemon>(o));
  }
  auto cl = two_members(*d[0], *d[1]);
  CHECK(d[0]->log().find("NOT authenticated") != std::string::npos);
  std::string wake;
  rw::encode_header(wake, rw::Header{rw::Type::kWake, (0xfffffff0ull << 32) | 3, 3});
  attacker.send_to(ports[0], wake);
  auto view = receive_until(cl[0].get(), is_membership, 10000);
  REQUIRE(view);
  CHECK(d[0]->log().find("a daemon of another ring is reachable") != std::string::npos);
}

TEST_CASE("a daemon with another key or with none can neither join nor disturb the ring",
          "[ring][agentd][auth]") {
  auto ports = free_udp_ports(3);
  std::vector<std::unique_ptr<Daemon>> d;
  for (uint32_t id = 1; id <= 2; ++id) {
    DaemonOptions o;
    o.name = "d" + std::to_string(id);
    o.extra_config = ring_section(id, ports, kPatientProfile);
    d.push_back(std::make_unique<Daemon>(o));
  }
  auto cl = two_members(*d[0], *d[1]);
  size_t before[2] = {d[0]->log().size(), d[1]->log().size()};
  std::string reason, hint;
  DaemonOptions o;
  o.name = "d3";
  struct TempDir {
    std::string path;
    ~TempDir() {
      if (!path.empty() && std::system(("rm -rf '" + path + "'").c_str()) != 0) {
      }
    }
  } keydir;
  SECTION("another key") {
    // A copy of a member's configuration, but not its key.
    char tmpl[] = "/tmp/agent-otherkey-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    keydir.path = tmpl;
    std::string key = keydir.path + "/ring.key";
    REQUIRE(agent::ringseal::generate_key_file(key) == "");
    o.extra_config = ring_section(3, ports, std::string(kPatientProfile) + "key_file = \"" + key + "\"\n");
    reason = "other key";
    hint = "is ring.key_file the same on every daemon?";
  }
  SECTION("no key") {
    o.extra_config = ring_section(3, ports, std::string(kPatientProfile) + "key_file = \"none\"\n");
    reason = "unauthenticated";
    hint = "a daemon without a key";
  }
  Daemon outsider(o);
  auto c3 = connect(outsider.socket_path(), "m3");
  REQUIRE(agent_join(c3.get(), "g") == AGENT_OK);
  // It forms a ring of its own and hears nobody; the ring of 1 and 2 drops what it sends.
  auto alone = receive_until(c3.get(), is_membership, 10000);
  REQUIRE(alone);
  CHECK(alone->ngroups == 1);
  for (int i = 0; i < 2; ++i)
    REQUIRE(await([&] { return d[i]->log().find(hint, before[i]) != std::string::npos; }, 10000));
  REQUIRE(await([&] { return outsider.log().find("ring: dropped a datagram") != std::string::npos; }, 10000));
  marker_arrives_without_views(cl, "the ring kept its members");
  CHECK_FALSE(receive_until(cl[1].get(), is_membership, 500));
  CHECK_FALSE(receive_until(c3.get(), [](auto& m) { return is_membership(m) && m.ngroups > 1; }, 200));
  for (int i = 0; i < 2; ++i)
    CHECK(count(d[i]->log().substr(before[i]), "configuration change") == 0);
  for (int i = 0; i < 2; ++i) {
    CHECK(d[i]->stop() == 0);
    std::string log = d[i]->log();
    INFO(log.substr(log.rfind("totals: ")));
    CHECK(total(log, reason) > 0);
  }
  CHECK(outsider.stop() == 0);
  CHECK(outsider.log().find("with daemons 1,2,3") == std::string::npos);
  CHECK(outsider.log().find("with daemons 1,3") == std::string::npos);
}

namespace {

// Raw sockets (root): capture datagrams between the daemons, and send them again with the
// original source address and port, as the attacker did.
struct Raw {
  Raw() {
    capture = ::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_UDP);
    inject = ::socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  }
  ~Raw() {
    if (capture >= 0) ::close(capture);
    if (inject >= 0) ::close(inject);
  }
  bool ok() const { return capture >= 0 && inject >= 0; }
  struct Datagram {
    uint16_t from, to;
    std::string payload;
  };
  // UDP datagrams on loopback between these ports seen so far.
  void read(const std::vector<uint16_t>& ports, std::vector<Datagram>& out, size_t max) {
    char buf[70000];
    for (ssize_t n; out.size() < max && (n = ::recv(capture, buf, sizeof buf, 0)) > 0;) {
      size_t ihl = (static_cast<uint8_t>(buf[0]) & 0x0f) * 4u;
      if (size_t(n) < ihl + 8) continue;
      udphdr u;
      std::memcpy(&u, buf + ihl, sizeof u);
      uint16_t from = ntohs(u.source), to = ntohs(u.dest);
      bool ours = false;
      for (auto p : ports) ours |= from == p;
      bool to_ours = false;
      for (auto p : ports) to_ours |= to == p;
      if (!ours || !to_ours) continue;
      out.push_back({from, to, std::string(buf + ihl + 8, size_t(n) - ihl - 8)});
    }
  }
  void send(const Datagram& d) const {
    std::string pkt(sizeof(iphdr) + sizeof(udphdr) + d.payload.size(), '\0');
    iphdr ip{};
    ip.ihl = 5;
    ip.version = 4;
    ip.ttl = 64;
    ip.protocol = IPPROTO_UDP;
    ip.saddr = htonl(INADDR_LOOPBACK);
    ip.daddr = htonl(INADDR_LOOPBACK);
    ip.tot_len = htons(static_cast<uint16_t>(pkt.size()));
    udphdr u{};
    u.source = htons(d.from);
    u.dest = htons(d.to);
    u.len = htons(static_cast<uint16_t>(sizeof u + d.payload.size()));
    u.check = 0;  // none (allowed for IPv4)
    std::memcpy(&pkt[0], &ip, sizeof ip);
    std::memcpy(&pkt[sizeof ip], &u, sizeof u);
    std::memcpy(&pkt[sizeof ip + sizeof u], d.payload.data(), d.payload.size());
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::sendto(inject, pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  int capture = -1, inject = -1;
};

}  // namespace

TEST_CASE("captured ring datagrams replayed or mutated from their sender's address are dropped",
          "[ring][agentd][auth]") {
  Raw raw;
  if (!raw.ok()) {
    WARN("skipped: raw sockets need root (CAP_NET_RAW)");
    return;
  }
  auto ports = free_udp_ports(2);
  std::vector<std::unique_ptr<Daemon>> d;
  for (uint32_t id = 1; id <= 2; ++id) {
    DaemonOptions o;
    o.name = "d" + std::to_string(id);
    // One datagram per packet, so that what the raw socket sees is what a daemon reads.
    o.extra_config = ring_section(id, ports, std::string(kPatientProfile) + "udp_offload = false\n");
    d.push_back(std::make_unique<Daemon>(o));
  }
  auto cl = two_members(*d[0], *d[1]);
  std::vector<Raw::Datagram> got;
  // What was sent before both ran is not wanted: a datagram the receiver never got (its
  // socket was not open yet) is one it would still take once, within its window.
  raw.read(ports, got, 100000);
  got.clear();
  const int kMessages = 200;
  for (int i = 0; i < kMessages; ++i) {
    std::string p = "message " + std::to_string(i);
    REQUIRE(agent_multicast(cl[i % 2].get(), AGENT_AGREED, "g", 1, p.data(), p.size()) == AGENT_OK);
  }
  int delivered = 0;
  REQUIRE(await([&] {
    raw.read(ports, got, 2000);
    while (auto m = receive(cl[1].get(), 0)) delivered += m->kind == AGENT_MSG_DATA;
    return delivered == kMessages && got.size() >= 20;
  }, 10000));
  raw.read(ports, got, 2000);
  size_t before[2] = {d[0]->log().size(), d[1]->log().size()};
  // Replayed as they were; then mutated: a counter never used (so the window lets it by) with
  // the rest as captured, which the tag refuses.
  size_t replayed[2] = {0, 0}, mutated[2] = {0, 0};
  for (auto& g : got) {
    raw.send(g);
    ++replayed[g.to == ports[0] ? 0 : 1];
  }
  uint64_t counter = uint64_t{1} << 40;
  for (auto g : got) {
    if (g.payload.size() < agent::ringseal::kOverheadBytes) continue;
    std::memcpy(&g.payload[20], &counter, 8);
    ++counter;
    raw.send(g);
    ++mutated[g.to == ports[0] ? 0 : 1];
  }
  REQUIRE(await([&] { return d[1]->log().find("replayed", before[1]) != std::string::npos; }));
  marker_arrives_without_views(cl, "after the replays");
  // Every message once, none again.
  for (auto& c : cl) CHECK_FALSE(receive_until(c.get(), [](auto& m) { return m.kind == AGENT_MSG_DATA || is_membership(m); }, 300));
  for (int i = 0; i < 2; ++i)
    CHECK(count(d[i]->log().substr(before[i]), "configuration change") == 0);
  for (int i = 0; i < 2; ++i) {
    CHECK(d[i]->stop() == 0);
    std::string log = d[i]->log();
    INFO("d" << i + 1 << ": " << log.substr(log.rfind("totals: ")));
    CHECK(total(log, "replayed") >= int64_t(replayed[i]));
    CHECK(total(log, "forged") >= int64_t(mutated[i]));
  }
}

TEST_CASE("agentd keygen writes a key only its owner can read and a daemon refuses a key file "
          "others can read or of the wrong size or none for a ring", "[agentd][config][auth]") {
  char tmpl[] = "/tmp/agent-keygen-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  std::string dir = tmpl, key = dir + "/ring.key";
  auto r = run_agentd({"keygen", key});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  struct stat sb;
  REQUIRE(::stat(key.c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0600);
  CHECK(sb.st_size == 32);
  r = run_agentd({"--keygen", key});  // never overwritten
  CHECK(r.status == 1);
  CHECK(r.err.find("File exists") != std::string::npos);
  auto config = [&](const std::string& key_line) {
    std::string path = dir + "/agentd.toml";
    std::ofstream(path) << "[daemon]\nname = \"d1\"\nstate_dir = \"" << dir
                        << "/state\"\n[clients]\nunix_socket = \"" << dir
                        << "/s.sock\"\ntcp = \"off\"\n[ring]\nid = 1\n" << key_line
                        << "[[ring.daemons]]\nid = 1\naddress = \"127.0.0.1\"\nport = 4810\n"
                        << "[[ring.daemons]]\nid = 2\naddress = \"127.0.0.1\"\nport = 4811\n";
    return path;
  };
  std::string with_key = config("key_file = \"" + key + "\"\n");
  r = run_agentd({"--check-config", with_key});
  CHECK(r.status == 0);
  ::chmod(key.c_str(), 0644);
  r = run_agentd({"--config", with_key});  // at start, before anything is opened
  CHECK(r.status == 2);
  CHECK(r.err.find("ring.key_file " + key + ": mode 0644 lets group or others at the key: chmod 600 " +
                   key) != std::string::npos);
  ::chmod(key.c_str(), 0600);
  ::truncate(key.c_str(), 16);
  r = run_agentd({"--config", with_key});
  CHECK(r.status == 2);
  CHECK(r.err.find("ring.key_file " + key + ": 16 bytes, a key has 32") != std::string::npos);
  r = run_agentd({"--config", config("")});
  CHECK(r.status == 2);
  CHECK(r.err.find("ring.key_file = \"\" (not set): a ring of 2 daemons needs a cluster key") !=
        std::string::npos);
  r = run_agentd({"--check-config", config("key_file = \"none\"\n")});
  CHECK(r.status == 0);
  CHECK(r.out.find("ring NOT authenticated") != std::string::npos);
  CHECK(std::system(("rm -rf '" + dir + "'").c_str()) == 0);
}

TEST_CASE("the cluster key changes while the ring runs: both keys then the new one alone by SIGHUP",
          "[ring][agentd][auth]") {
  char tmpl[] = "/tmp/agent-rotate-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  std::string dir = tmpl, old_key = dir + "/old.key", new_key = dir + "/new.key";
  REQUIRE(agent::ringseal::generate_key_file(old_key) == "");
  REQUIRE(agent::ringseal::generate_key_file(new_key) == "");
  auto ports = free_udp_ports(2);
  std::vector<std::unique_ptr<Daemon>> d;
  for (uint32_t id = 1; id <= 2; ++id) {
    DaemonOptions o;
    o.name = "d" + std::to_string(id);
    o.extra_config =
        ring_section(id, ports, std::string(kPatientProfile) + "key_file = \"" + old_key + "\"\n");
    d.push_back(std::make_unique<Daemon>(o));
  }
  auto cl = two_members(*d[0], *d[1]);
  size_t before[2] = {d[0]->log().size(), d[1]->log().size()};
  auto keys = [](const std::string& seal, const std::string& accept) {
    return "key_file = \"" + seal + "\"\n" +
           (accept.empty() ? "" : "accept_key_file = \"" + accept + "\"\n");
  };
  std::string current[2] = {keys(old_key, ""), keys(old_key, "")};
  int reloads[2] = {0, 0};
  // Rewrites daemon i's key lines and sends SIGHUP; returns once it has taken the keys.
  auto reload = [&](int i, const std::string& lines) {
    std::ifstream in(d[i]->config_path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto at = text.find(current[i]);
    REQUIRE(at != std::string::npos);
    text.replace(at, current[i].size(), lines);
    std::ofstream(d[i]->config_path()) << text;
    current[i] = lines;
    d[i]->signal(SIGHUP);
    ++reloads[i];
    REQUIRE(await([&] { return count(d[i]->log(), "ring keys reloaded") == size_t(reloads[i]); }));
  };
  for (int i = 0; i < 2; ++i) reload(i, keys(old_key, new_key));  // 1. both accept both
  marker_arrives_without_views(cl, "both keys accepted");
  reload(0, keys(new_key, old_key));  // 2. d1 seals with the new key, d2 still with the old
  marker_arrives_without_views(cl, "d1 switched");
  reload(1, keys(new_key, old_key));
  marker_arrives_without_views(cl, "both switched");
  for (int i = 0; i < 2; ++i) reload(i, keys(new_key, ""));  // 3. the old key is gone
  marker_arrives_without_views(cl, "old key gone");
  for (int i = 0; i < 2; ++i)
    CHECK(count(d[i]->log().substr(before[i]), "configuration change") == 0);
  for (int i = 0; i < 2; ++i) {
    CHECK(d[i]->stop() == 0);
    std::string log = d[i]->log();
    INFO(log.substr(log.rfind("totals: ")));
    CHECK(total(log, "other key") == 0);
    CHECK(total(log, "forged") == 0);
  }
  CHECK(std::system(("rm -rf '" + dir + "'").c_str()) == 0);
}
