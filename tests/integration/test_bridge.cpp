// The WAN bridge with real daemons: two sites of two daemons each on loopback, their bridges
// (on e1 and w1) linked through a TCP relay the test can cut and heal.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "daemon_fixture.h"

using namespace agent::testing;

namespace {

uint16_t free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A TCP relay on loopback: connections to its port go on to target. cut() drops every
// connection and refuses new ones until heal(): the WAN link going down and coming back.
class Relay {
 public:
  explicit Relay(uint16_t target) : target_(target) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_, 8) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~Relay() {
    stop_ = true;
    thread_.join();
    for (auto& [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    ::close(listen_);
  }
  uint16_t port() const { return port_; }
  void cut() { cut_ = true; }
  void heal() { cut_ = false; }
  uint64_t bytes() const { return bytes_; }

 private:
  void loop() {
    char buf[65536];
    while (!stop_) {
      std::vector<pollfd> fds{{listen_, POLLIN, 0}};
      for (auto& [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      ::poll(fds.data(), fds.size(), 20);
      if (cut_) {
        for (auto& [a, b] : pairs_) {
          ::close(a);
          ::close(b);
        }
        pairs_.clear();
      }
      if (fds[0].revents & POLLIN) {
        int c = ::accept(listen_, nullptr, nullptr);
        if (c >= 0 && cut_) {
          ::close(c);
        } else if (c >= 0) {
          int t = ::socket(AF_INET, SOCK_STREAM, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          a.sin_port = htons(target_);
          if (::connect(t, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            pairs_.emplace_back(c, t);
          } else {
            ::close(c);
            ::close(t);
          }
        }
      }
      if (cut_) continue;
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto& p = pairs_[(i - 1) / 2];
        int from = fds[i].fd, to = from == p.first ? p.second : p.first;
        ssize_t n = ::read(from, buf, sizeof buf);
        if (n <= 0) {
          ::shutdown(to, SHUT_WR);
          continue;
        }
        bytes_ += static_cast<uint64_t>(n);
        for (ssize_t off = 0; off < n;) {
          ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) break;
          off += w;
        }
      }
    }
  }
  uint16_t target_, port_ = 0;
  int listen_ = -1;
  std::vector<std::pair<int, int>> pairs_;
  std::atomic<bool> cut_{false}, stop_{false};
  std::atomic<uint64_t> bytes_{0};
  std::thread thread_;
};

// A site's [ring] section with named daemons.
std::string site_ring(uint32_t id, const std::vector<uint16_t>& ports,
                      const std::vector<std::string>& names) {
  std::ostringstream s;
  s << "[ring]\nid = " << id << "\n" << kPatientProfile << "key_file = \"" << test_key_file()
    << "\"\n";
  for (size_t i = 0; i < ports.size(); ++i)
    s << "[[ring.daemons]]\nid = " << i + 1 << "\naddress = \"127.0.0.1\"\nport = " << ports[i]
      << "\nname = \"" << names[i] << "\"\n";
  return s.str();
}

// Two sites, east (e1, e2) and west (w1, w2); e1 and w1 run the bridge. East dials west
// through the relay.
struct TwoSites {
  uint16_t west_port = free_tcp_port();
  Relay relay{west_port};
  std::vector<std::unique_ptr<Daemon>> east, west;

  explicit TwoSites(const std::string& bridge_extra = "") {
    auto ep = free_udp_ports(2), wp = free_udp_ports(2);
    auto bridge = [&](const std::string& site, const std::string& other, const std::string& listen,
                      const std::string& address) {
      std::ostringstream s;
      s << "[bridge]\nsite = \"" << site << "\"\nkey_file = \"" << test_key_file() << "\"\n"
        << "heartbeat_ms = 200\nlink_timeout_ms = 1500\nbackoff_min_ms = 50\n"
        << "backoff_max_ms = 400\n" << bridge_extra;
      if (!listen.empty()) s << "listen = \"" << listen << "\"\n";
      s << "[[bridge.sites]]\nname = \"" << other << "\"\n";
      if (!address.empty()) s << "address = \"" << address << "\"\n";
      return s.str();
    };
    for (uint32_t id = 1; id <= 2; ++id) {
      DaemonOptions o;
      o.name = "e" + std::to_string(id);
      o.extra_config = site_ring(id, ep, {"e1", "e2"}) +
                       (id == 1 ? bridge("east", "west", "",
                                         "127.0.0.1:" + std::to_string(relay.port()))
                                : "");
      east.push_back(std::make_unique<Daemon>(o));
    }
    for (uint32_t id = 1; id <= 2; ++id) {
      DaemonOptions o;
      o.name = "w" + std::to_string(id);
      o.extra_config = site_ring(id, wp, {"w1", "w2"}) +
                       (id == 1 ? bridge("west", "east", "127.0.0.1:" + std::to_string(west_port), "")
                                : "");
      west.push_back(std::make_unique<Daemon>(o));
    }
  }
};

bool view_with(const agent_message& m, const std::string& group, std::vector<std::string> want) {
  if (m.kind != AGENT_MSG_MEMBERSHIP || std::string(m.sender) != group) return false;
  auto have = members(m);
  std::sort(want.begin(), want.end());
  return have == want;
}

// Receives data until `want` messages of sender arrived or nothing comes for a while; checks
// they are 0..want-1 in order, once each.
void expect_sequence(agent_conn* c, const std::string& sender, int want, int quiet_ms = 10000) {
  int next = 0;
  while (next < want) {
    auto m = receive_until(c, [&](const agent_message& m) {
      return m.kind == AGENT_MSG_DATA && std::string(m.sender) == sender;
    }, quiet_ms);
    if (!m) break;
    std::string p = payload(*m);
    REQUIRE(p == std::to_string(next));  // in order, no duplicate, no gap
    ++next;
  }
  CHECK(next == want);
}

}  // namespace

TEST_CASE("bridge: two sites share a group: views list both sites' members, messages cross in "
          "order", "[bridge]") {
  TwoSites s;
  auto alice = connect(s.east[1]->socket_path(), "alice");
  auto bob = connect(s.west[1]->socket_path(), "bob");
  REQUIRE(agent_join(alice.get(), "chat") == AGENT_OK);
  REQUIRE(agent_join(bob.get(), "chat") == AGENT_OK);
  // Each sees the other site's member in its view of chat.
  REQUIRE(receive_until(bob.get(), [](auto& m) { return view_with(m, "chat", {"#alice#e2", "#bob#w2"}); },
                        15000));
  REQUIRE(receive_until(alice.get(), [](auto& m) { return view_with(m, "chat", {"#alice#e2", "#bob#w2"}); },
                        15000));
  for (int i = 0; i < 300; ++i) {
    std::string p = std::to_string(i);
    REQUIRE(agent_multicast(alice.get(), AGENT_AGREED, "chat", 1, p.data(), p.size()) == AGENT_OK);
    REQUIRE(agent_multicast(bob.get(), i % 3 ? AGENT_FIFO : AGENT_SAFE, "chat", 2, p.data(), p.size()) ==
            AGENT_OK);
  }
  expect_sequence(bob.get(), "#alice#e2", 300);
  expect_sequence(alice.get(), "#bob#w2", 300);
  // A private message to a member of the other site.
  REQUIRE(agent_send_private(bob.get(), AGENT_AGREED, "#alice#e2", 3, "psst", 4) == AGENT_OK);
  auto p = receive_until(alice.get(), [](auto& m) { return m.kind == AGENT_MSG_DATA && m.msg_type == 3; });
  REQUIRE(p);
  CHECK(payload(*p) == "psst");
  CHECK(std::string(p->sender) == "#bob#w2");
  // Operators see the link in agentctl's counters (and /metrics).
  std::string out;
  {
    std::string cmd = std::string(AGENTCTL_PATH) + " -s " + s.east[0]->socket_path() + " counters";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    CHECK(::pclose(p) == 0);
  }
  CHECK(std::regex_search(out, std::regex(R"(bridge_link_up\{west\}\s+1\b)")));
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex(R"(bridge_items_sent_total\{west\}\s+([0-9]+))")));
  CHECK(std::stoul(m[1]) >= 300);
  // A member leaving at one site leaves the other site's view.
  REQUIRE(agent_leave(alice.get(), "chat") == AGENT_OK);
  REQUIRE(receive_until(bob.get(), [](auto& m) { return view_with(m, "chat", {"#bob#w2"}); }, 10000));
}

// What a client received: data payloads by sender (in order), and its views of groups.
struct Record {
  std::map<std::string, std::vector<std::string>> data;
  std::vector<std::vector<std::string>> views;
  // Reads until pred holds (true) or timeout_ms passes (false).
  bool until(agent_conn* c, const std::function<bool(const Record&)>& pred, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!pred(*this)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return false;
      auto m = receive(c, static_cast<int>(left));
      if (!m) return pred(*this);
      if (m->kind == AGENT_MSG_DATA) data[m->sender].push_back(payload(*m));
      else if (m->kind == AGENT_MSG_MEMBERSHIP && m->ngroups > 0) views.push_back(members(*m));
    }
    return true;
  }
  bool last_view_is(std::vector<std::string> want) const {
    std::sort(want.begin(), want.end());
    return !views.empty() && views.back() == want;
  }
};

TEST_CASE("bridge: a cut link under traffic: remote members leave and return, every message "
          "arrives once, in order", "[bridge]") {
  TwoSites s;
  auto alice = connect(s.east[1]->socket_path(), "alice");
  auto bob = connect(s.west[0]->socket_path(), "bob");
  REQUIRE(agent_join(alice.get(), "feed") == AGENT_OK);
  REQUIRE(agent_join(bob.get(), "feed") == AGENT_OK);
  Record r;
  REQUIRE(r.until(bob.get(), [](auto& r) { return r.last_view_is({"#alice#e2", "#bob#w1"}); },
                  15000));
  const int n = 3000;
  int i = 0;
  auto send_some = [&](int k) {
    for (int end = i + k; i < end; ++i) {
      std::string p = std::to_string(i);
      REQUIRE(agent_multicast(alice.get(), AGENT_AGREED, "feed", 0, p.data(), p.size()) == AGENT_OK);
    }
  };
  send_some(1000);
  s.relay.cut();
  send_some(1000);  // while the link is down: queued at east's bridge
  // Bob sees alice go when the link times out.
  REQUIRE(r.until(bob.get(), [](auto& r) { return r.last_view_is({"#bob#w1"}); }, 15000));
  s.relay.heal();
  send_some(1000);
  // She comes back, and everything arrives: once each, in her order.
  REQUIRE(r.until(bob.get(), [&](auto& r) {
    auto it = r.data.find("#alice#e2");
    return r.last_view_is({"#alice#e2", "#bob#w1"}) && it != r.data.end() &&
           it->second.size() >= static_cast<size_t>(n);
  }, 30000));
  auto& got = r.data["#alice#e2"];
  REQUIRE(got.size() == static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) REQUIRE(got[k] == std::to_string(k));
  // Nothing more (no duplicates trailing).
  CHECK(!r.until(bob.get(), [](auto& r) { return r.data.at("#alice#e2").size() > 3000; }, 1000));
}

TEST_CASE("bridge: three sites in a triangle: every message once at every site, no loops",
          "[bridge]") {
  // Sites a, b, c of one daemon each; a dials b and c, b dials c.
  uint16_t pb = free_tcp_port(), pc = free_tcp_port();
  auto conf = [&](const std::string& site, const std::string& listen,
                  std::vector<std::pair<std::string, std::string>> others) {
    std::ostringstream s;
    s << "[bridge]\nsite = \"" << site << "\"\nkey_file = \"" << test_key_file() << "\"\n"
      << "heartbeat_ms = 200\nlink_timeout_ms = 1500\nbackoff_min_ms = 50\nbackoff_max_ms = 400\n";
    if (!listen.empty()) s << "listen = \"127.0.0.1:" << listen << "\"\n";
    for (auto& [name, addr] : others) {
      s << "[[bridge.sites]]\nname = \"" << name << "\"\n";
      if (!addr.empty()) s << "address = \"127.0.0.1:" << addr << "\"\n";
    }
    return s.str();
  };
  std::vector<std::unique_ptr<Daemon>> d;
  const char* names[] = {"a1", "b1", "c1"};
  std::string confs[] = {
      conf("a", "", {{"b", std::to_string(pb)}, {"c", std::to_string(pc)}}),
      conf("b", std::to_string(pb), {{"a", ""}, {"c", std::to_string(pc)}}),
      conf("c", std::to_string(pc), {{"a", ""}, {"b", ""}})};
  for (int i = 0; i < 3; ++i) {
    DaemonOptions o;
    o.name = names[i];
    o.extra_config = confs[i];
    d.push_back(std::make_unique<Daemon>(o));
  }
  std::vector<Conn> c;
  const char* who[] = {"#ann#a1", "#ben#b1", "#cat#c1"};
  const char* client[] = {"ann", "ben", "cat"};
  for (int i = 0; i < 3; ++i) {
    c.push_back(connect(d[i]->socket_path(), client[i]));
    REQUIRE(agent_join(c[i].get(), "tri") == AGENT_OK);
  }
  std::vector<Record> r(3);
  for (int i = 0; i < 3; ++i)
    REQUIRE(r[i].until(c[i].get(), [&](auto& rec) {
      return rec.last_view_is({who[0], who[1], who[2]});
    }, 20000));
  for (int k = 0; k < 200; ++k)
    for (int i = 0; i < 3; ++i) {
      std::string p = std::to_string(k);
      REQUIRE(agent_multicast(c[i].get(), AGENT_AGREED, "tri", 0, p.data(), p.size()) == AGENT_OK);
    }
  for (int i = 0; i < 3; ++i) {
    REQUIRE(r[i].until(c[i].get(), [&](auto& rec) {
      size_t total = 0;
      for (auto& [s, list] : rec.data) total += list.size();
      return total >= 600;
    }, 20000));
    // A little longer: anything looping or duplicated would come now.
    r[i].until(c[i].get(), [](auto&) { return false; }, 500);
    REQUIRE(r[i].data.size() == 3);
    for (auto& [sender, list] : r[i].data) {
      REQUIRE(list.size() == 200);
      for (int k = 0; k < 200; ++k) REQUIRE(list[k] == std::to_string(k));
    }
  }
}

TEST_CASE("bridge: the bridge daemon restarts while its link is down: what it had queued "
          "still arrives, once, in order", "[bridge]") {
  TwoSites s;
  auto alice = connect(s.east[1]->socket_path(), "alice");
  auto bob = connect(s.west[1]->socket_path(), "bob");
  REQUIRE(agent_join(alice.get(), "feed") == AGENT_OK);
  REQUIRE(agent_join(bob.get(), "feed") == AGENT_OK);
  Record rb;
  REQUIRE(rb.until(bob.get(), [](auto& r) { return r.last_view_is({"#alice#e2", "#bob#w2"}); },
                   15000));
  s.relay.cut();
  REQUIRE(rb.until(bob.get(), [](auto& r) { return r.last_view_is({"#bob#w2"}); }, 15000));
  {
    // carl on e1 (the bridge daemon) tells when e1 has delivered alice's messages.
    auto carl = connect(s.east[0]->socket_path(), "carl");
    REQUIRE(agent_join(carl.get(), "feed") == AGENT_OK);
    Record rc;
    REQUIRE(rc.until(carl.get(), [](auto& r) { return r.last_view_is({"#alice#e2", "#carl#e1"}); },
                     10000));
    for (int i = 0; i < 500; ++i) {
      std::string p = std::to_string(i);
      REQUIRE(agent_multicast(alice.get(), AGENT_AGREED, "feed", 0, p.data(), p.size()) == AGENT_OK);
    }
    REQUIRE(rc.until(carl.get(), [](auto& r) {
      auto it = r.data.find("#alice#e2");
      return it != r.data.end() && it->second.size() == 500;
    }, 15000));
  }
  REQUIRE(s.east[0]->stop() == 0);
  s.east[0]->restart();
  CHECK(await([&] { return s.east[0]->log().find("resuming stream") != std::string::npos; }));
  s.relay.heal();
  REQUIRE(rb.until(bob.get(), [](auto& r) {
    auto it = r.data.find("#alice#e2");
    return it != r.data.end() && it->second.size() >= 500;
  }, 30000));
  rb.until(bob.get(), [](auto&) { return false; }, 500);
  auto& got = rb.data["#alice#e2"];
  REQUIRE(got.size() == 500);
  for (int k = 0; k < 500; ++k) REQUIRE(got[k] == std::to_string(k));
}
