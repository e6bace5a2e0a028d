// Several real agentd processes forming one ring on loopback.
#include <signal.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "daemon_fixture.h"

using namespace agent::testing;

namespace {
bool is_data(const agent_message& m) { return m.kind == AGENT_MSG_DATA; }

// A member "m<i>" on every daemon of c, all in group g; returns once each saw them all.
std::vector<Conn> one_member_each(Cluster& c, const char* g) {
  std::vector<Conn> cl;
  for (size_t d = 0; d < c.size(); ++d) {
    cl.push_back(connect(c[d].socket_path(), "m" + std::to_string(d + 1)));
    REQUIRE(agent_join(cl.back().get(), g) == AGENT_OK);
  }
  for (auto& x : cl)
    REQUIRE(receive_until(x.get(), [&](auto& m) {
      return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == c.size();
    }, 10000));
  return cl;
}
}  // namespace

TEST_CASE("three daemons: a join on one is seen by members on the others", "[ring][agentd]") {
  Cluster c(3);
  auto a = connect(c[0].socket_path(), "alice");
  auto b = connect(c[1].socket_path(), "bob");
  auto z = connect(c[2].socket_path(), "zoe");
  REQUIRE(agent_join(a.get(), "team") == AGENT_OK);
  REQUIRE(agent_join(b.get(), "team") == AGENT_OK);
  REQUIRE(agent_join(z.get(), "team") == AGENT_OK);
  auto full = [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 3;
  };
  std::vector<Message> views;
  for (auto* conn : {a.get(), b.get(), z.get()}) {
    auto m = receive_until(conn, full, 10000);
    REQUIRE(m);
    CHECK(members(*m) == std::vector<std::string>{"#alice#d1", "#bob#d2", "#zoe#d3"});
    views.push_back(std::move(m));
  }
  // The same view everywhere.
  for (auto& v : views) {
    CHECK(v->view.seq == views[0]->view.seq);
    CHECK(v->view.config == views[0]->view.config);
  }
  // A private message crosses daemons.
  REQUIRE(agent_send_private(z.get(), AGENT_AGREED, "#alice#d1", 3, "hi", 2) == AGENT_OK);
  auto p = receive_until(a.get(), is_data, 10000);
  REQUIRE(p);
  CHECK(payload(*p) == "hi");
  CHECK(std::string(p->sender) == "#zoe#d3");
  // A disconnect on daemon 2 reaches daemons 1 and 3.
  b.reset();
  for (auto* conn : {a.get(), z.get()}) {
    auto m = receive_until(conn, [](const agent_message& m) {
      return m.kind == AGENT_MSG_MEMBERSHIP && (m.service & AGENT_CAUSED_BY_DISCONNECT);
    }, 10000);
    REQUIRE(m);
    CHECK(std::string(m->changed) == "#bob#d2");
  }
}

TEST_CASE("three daemons, a sender on each: every receiver logs the same order",
          "[ring][agentd]") {
  // Packets for every daemon go to each daemon's address, or once to a multicast group.
  bool multicast = GENERATE(false, true);
  CAPTURE(multicast);
  std::string group = "239.192.77.1:" + std::to_string(free_udp_ports(1).front());
  Cluster c(3, std::string(kPatientProfile) +
                   (multicast ? "multicast = \"" + group + "\"\n" : std::string()));
  constexpr int kPerSender = 1000;
  std::vector<Conn> rx;
  for (size_t d = 0; d < 3; ++d) {
    rx.push_back(connect(c[d].socket_path(), "r" + std::to_string(d)));
    REQUIRE(agent_join(rx.back().get(), "order") == AGENT_OK);
  }
  for (auto& r : rx)
    REQUIRE(receive_until(r.get(), [](const agent_message& m) {
      return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 3;
    }, 10000));
  // Catch2 assertions are not thread-safe: the sender threads count their failures.
  std::atomic<int> failures{0};
  std::vector<std::thread> senders;
  for (size_t d = 0; d < 3; ++d) {
    senders.emplace_back([&, d] {
      agent_conn* s = nullptr;
      std::string name = "s" + std::to_string(d);
      if (agent_connect(c[d].socket_path().c_str(), name.c_str(), 0, 5000, &s) != AGENT_OK) {
        ++failures;
        return;
      }
      for (int i = 0; i < kPerSender; ++i) {
        std::string p = std::to_string(d) + ":" + std::to_string(i) + std::string(100 + i % 900, '.');
        uint32_t svc = i % 10 == 0 ? AGENT_SAFE : AGENT_AGREED;
        if (agent_multicast(s, svc, "order", 0, p.data(), p.size()) != AGENT_OK) ++failures;
      }
      agent_disconnect(s);
    });
  }
  for (auto& t : senders) t.join();
  REQUIRE(failures == 0);
  std::vector<std::vector<std::string>> seqs(3);
  for (size_t r = 0; r < 3; ++r) {
    while (seqs[r].size() < 3 * kPerSender) {
      auto m = receive_until(rx[r].get(), is_data, 15000);
      REQUIRE(m);
      std::string p = payload(*m);
      seqs[r].push_back(p.substr(0, p.find('.')));
    }
  }
  CHECK(seqs[1] == seqs[0]);
  CHECK(seqs[2] == seqs[0]);
  std::map<char, int> next;
  for (auto& p : seqs[0]) CHECK(std::stoi(p.substr(2)) == next[p[0]]++);
  if (multicast)
    for (size_t d = 0; d < 3; ++d) CHECK(c[d].log().find("multicast " + group) != std::string::npos);
}

TEST_CASE("a large message crosses the ring intact", "[ring][agentd]") {
  Cluster c(3);
  auto a = connect(c[0].socket_path(), "alice");
  auto z = connect(c[2].socket_path(), "zoe");
  REQUIRE(agent_join(a.get(), "big") == AGENT_OK);
  REQUIRE(agent_join(z.get(), "big") == AGENT_OK);
  REQUIRE(receive_until(z.get(), [](auto& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 2;
  }, 10000));
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 12));
  REQUIRE(agent_multicast(a.get(), AGENT_SAFE, "big", 1, big.data(), big.size()) == AGENT_OK);
  auto m = receive_until(z.get(), is_data, 15000);
  REQUIRE(m);
  CHECK(payload(*m) == big);
}

TEST_CASE("a daemon whose ring peers are absent says so", "[ring][agentd]") {
  auto ports = free_udp_ports(2);
  DaemonOptions o;
  o.extra_config = ring_section(1, ports);
  Daemon d(o);  // daemon 2 is never started
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (d.log().find("do not answer") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(d.log().find("daemons 2 do not answer") != std::string::npos);
}

namespace {
// Detects a crashed daemon within a few hundred milliseconds (docs/ring-protocol.md).
const char* kFastProfile =
    "token_loss_ms = 100\nconsensus_timeout_ms = 60\njoin_timeout_ms = 10\ntoken_retransmit_ms = 10\n";

bool network_view(const agent_message& m, uint32_t kind) {
  return m.kind == AGENT_MSG_MEMBERSHIP && (m.service & AGENT_CAUSED_BY_NETWORK) &&
         (m.service & kind);
}
}  // namespace

TEST_CASE("three daemons over IPv6 loopback", "[ring][agentd]") {
  Cluster c(3, kPatientProfile, "::1");
  auto a = connect(c[0].socket_path(), "alice");
  auto z = connect(c[2].socket_path(), "zoe");
  REQUIRE(agent_join(a.get(), "v6") == AGENT_OK);
  REQUIRE(agent_join(z.get(), "v6") == AGENT_OK);
  // Daemons started one after the other may first form smaller rings: wait for one view.
  REQUIRE(receive_until(z.get(), [](auto& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 2;
  }, 10000));
  REQUIRE(agent_multicast(a.get(), AGENT_SAFE, "v6", 0, "six", 3) == AGENT_OK);
  auto m = receive_until(z.get(), is_data, 10000);
  REQUIRE(m);
  CHECK(payload(*m) == "six");
}

TEST_CASE("a daemon killed with SIGKILL: the others' members see a network change, then it returns",
          "[ring][agentd][faults]") {
  Cluster c(3, kFastProfile);
  auto cl = one_member_each(c, "g");
  auto t0 = std::chrono::steady_clock::now();
  c[2].kill9();
  for (size_t d = 0; d < 2; ++d) {
    auto t = receive_until(cl[d].get(), [](auto& m) { return network_view(m, AGENT_TRANSITION); }, 5000);
    REQUIRE(t);
    CHECK(members(*t) == std::vector<std::string>{"#m1#d1", "#m2#d2"});
    auto r = receive_until(cl[d].get(), [](auto& m) { return network_view(m, AGENT_REG_MEMB); }, 5000);
    REQUIRE(r);
    CHECK(members(*r) == std::vector<std::string>{"#m1#d1", "#m2#d2"});
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  WARN("crash to regular view: " << ms << " ms");
  CHECK(ms < 1000);
  // Messages flow in the smaller ring.
  REQUIRE(agent_multicast(cl[0].get(), AGENT_SAFE, "g", 0, "two left", 8) == AGENT_OK);
  auto m = receive_until(cl[1].get(), is_data, 5000);
  REQUIRE(m);
  CHECK(payload(*m) == "two left");
  // The daemon comes back as a new incarnation; its new member is seen everywhere.
  c[2].restart();
  auto back = connect(c[2].socket_path(), "m3");
  REQUIRE(agent_join(back.get(), "g") == AGENT_OK);
  for (auto* x : {cl[0].get(), cl[1].get(), back.get()})
    REQUIRE(receive_until(x, [](auto& m) {
      return m.kind == AGENT_MSG_MEMBERSHIP && (m.service & AGENT_REG_MEMB) && m.ngroups == 3;
    }, 10000));
}

TEST_CASE("a paused daemon drops out and merges back when it resumes", "[ring][agentd][faults]") {
  Cluster c(3, kFastProfile);
  auto cl = one_member_each(c, "g");
  c[1].signal(SIGSTOP);
  auto r = receive_until(cl[0].get(), [](auto& m) {
    return network_view(m, AGENT_REG_MEMB) && m.ngroups == 2;
  }, 5000);
  c[1].signal(SIGCONT);
  REQUIRE(r);
  CHECK(members(*r) == std::vector<std::string>{"#m1#d1", "#m3#d3"});
  // After it resumes, all three are together again, at every member.
  for (auto& x : cl) {
    auto back = receive_until(x.get(), [](auto& m) {
      return network_view(m, AGENT_REG_MEMB) && m.ngroups == 3;
    }, 10000);
    REQUIRE(back);
    CHECK(members(*back) == std::vector<std::string>{"#m1#d1", "#m2#d2", "#m3#d3"});
  }
  // And the order is one again.
  REQUIRE(agent_multicast(cl[1].get(), AGENT_AGREED, "g", 0, "again", 5) == AGENT_OK);
  for (auto& x : cl) {
    auto m = receive_until(x.get(), is_data, 5000);
    REQUIRE(m);
    CHECK(payload(*m) == "again");
  }
}

TEST_CASE("a daemon told to stop leaves at once: no wait for the token loss timeout",
          "[ring][agentd][faults]") {
  // token_loss 2 s: a daemon that vanished without a word would take at least that long.
  Cluster c(3, kPatientProfile);
  auto cl = one_member_each(c, "g");
  auto t0 = std::chrono::steady_clock::now();
  int rc = c[2].stop();
  INFO(c[2].log());
  CHECK(rc == 0);
  // The survivors' regular view of the two of them.
  const std::vector<std::string> both{"#m1#d1", "#m2#d2"};
  for (size_t d = 0; d < 2; ++d) {
    auto r = receive_until(cl[d].get(), [&](auto& m) {
      return network_view(m, AGENT_REG_MEMB) && members(m) == both;
    }, 5000);
    REQUIRE(r);
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  WARN("stop to regular view: " << ms << " ms");
  CHECK(ms < 1000);
}

TEST_CASE("a sender is paused while the ring's queue is full and loses nothing", "[ring][agentd]") {
  // d2 stopped: the token does not come back, d1's queue for it fills (16 MiB, the least it
  // may be) and d1 stops reading its clients until d2 runs again.
  Cluster c(2, std::string(kPatientProfile) + "max_pending_bytes = 16777216\n");
  auto r = connect(c[0].socket_path(), "r");
  auto s = connect(c[0].socket_path(), "s");
  REQUIRE(agent_join(r.get(), "g") == AGENT_OK);
  REQUIRE(receive_until(r.get(), [](auto& m) { return m.kind == AGENT_MSG_MEMBERSHIP; }, 10000));
  constexpr size_t kCount = 400, kSize = 64 * 1024;  // 25 MiB: more than the queue holds
  auto message = [](size_t i) {
    std::string m(kSize, static_cast<char>('a' + i % 26));
    std::memcpy(&m[0], &i, sizeof i);
    return m;
  };
  c[1].signal(SIGSTOP);
  std::atomic<size_t> sent{0};
  std::atomic<int> send_rc{AGENT_OK};
  std::thread sender([&] {
    for (size_t i = 0; i < kCount; ++i) {
      std::string m = message(i);
      int rc = agent_multicast(s.get(), AGENT_AGREED, "g", 0, m.data(), m.size());
      if (rc != AGENT_OK) {
        send_rc = rc;
        return;
      }
      sent = i + 1;
    }
  });
  // The sender stalls (its socket fills once d1 stops reading it) before it has sent all.
  size_t last = 0;
  auto since = std::chrono::steady_clock::now();
  auto until = since + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < until && sent < kCount) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (sent != last) {
      last = sent;
      since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - since > std::chrono::milliseconds(300)) {
      break;
    }
  }
  c[1].signal(SIGCONT);
  CHECK(sent < kCount);
  sender.join();
  REQUIRE(send_rc == AGENT_OK);
  for (size_t i = 0; i < kCount; ++i) {
    auto m = receive_until(r.get(), is_data, 20000);
    REQUIRE(m);
    REQUIRE(payload(*m) == message(i));
  }
  REQUIRE(c[0].stop() == 0);
  auto log = c[0].log();
  auto at = log.find("client input paused ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stoul(log.substr(at + 20)) >= 1);
}
