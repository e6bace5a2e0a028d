// clients.slow_policy = "backpressure" with real daemons: a receiver that does not read holds
// the whole ring's senders back instead of being dropped, and one that never reads is dropped
// after clients.slow_timeout_ms while the others go on.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "daemon_fixture.h"

using namespace agent::testing;

namespace {

constexpr int kMessages = 3000;  // 1000 bytes each: 3 MB, several times a queue limit

// A 1 MiB queue limit (hold at 512 KiB, release at 256 KiB) and small socket buffers, so the
// daemon's queue is what fills; the ring stops 32 packets (256 KiB) beyond a held position, and
// the sender's daemon takes only 64 KiB into its ring queue before it stops reading it.
std::string clients_keys(int slow_timeout_ms) {
  return "slow_policy = \"backpressure\"\nslow_timeout_ms = " + std::to_string(slow_timeout_ms) +
         "\nmax_message_bytes = 65536\nqueue_limit_bytes = 1048576\n"
         "socket_buffer_bytes = 65536\n";
}
std::string ring_keys() {
  return std::string(kPatientProfile) + "max_outstanding = 32\nmax_pending_bytes = 65536\n";
}

// Floods g with kMessages numbered messages from its own thread; done once all were written.
struct Flood {
  explicit Flood(const std::string& socket) : tx(connect(socket, "tx")) {
    thread = std::thread([this] {
      std::string body(1000, 'x');
      for (int i = 0; i < kMessages; ++i) {
        std::memcpy(&body[0], &i, sizeof i);
        if (agent_multicast(tx.get(), AGENT_AGREED, "g", 0, body.data(), body.size()) != AGENT_OK)
          failed = true;
      }
      if (agent_flush(tx.get()) != AGENT_OK) failed = true;
      done = true;
    });
  }
  ~Flood() {
    if (thread.joinable()) thread.join();
  }
  Conn tx;
  std::atomic<bool> done{false}, failed{false};
  std::thread thread;
};

// Reads data messages until n arrived (or a 10 s silence): how many, and whether 0, 1, 2...
// alone: set when a membership message shows the reader alone in g.
int read_in_order(agent_conn* c, int n, bool& in_order, bool* alone = nullptr) {
  int got = 0;
  in_order = true;
  while (got < n) {
    auto m = receive(c, 10000);
    if (!m) break;
    if (m->kind == AGENT_MSG_ERROR) break;
    if (alone && m->kind == AGENT_MSG_MEMBERSHIP && m->ngroups == 1) *alone = true;
    if (m->kind != AGENT_MSG_DATA) continue;
    int k = -1;
    if (m->len >= sizeof k) std::memcpy(&k, m->data, sizeof k);
    in_order &= k == got;
    ++got;
  }
  return got;
}

bool joined_by(agent_conn* c, size_t members) {
  return receive_until(c, [&](const agent_message& m) {
           return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == members;
         }, 10000) != nullptr;
}

}  // namespace

TEST_CASE("back-pressure: a receiver that pauses reading holds the sender back and then gets "
          "every message in order, without error 14", "[agentd][ring][slow]") {
  Cluster c(3, ring_keys(), "127.0.0.1", "", clients_keys(30000));
  auto rx = connect(c[2].socket_path(), "rx");
  REQUIRE(agent_join(rx.get(), "g") == AGENT_OK);
  REQUIRE(joined_by(rx.get(), 1));
  Flood flood(c[0].socket_path());
  // rx reads nothing: its daemon's queue passes the high-water mark and it holds the ring.
  REQUIRE(await([&] { return c[2].log().find("holds the ring's senders back") != std::string::npos; },
                20000));
  // The sender is held back: its 3 MB do not get through while rx does not read (without the
  // hold they take well under a second on loopback).
  CHECK_FALSE(await([&] { return flood.done.load(); }, 1500));
  bool in_order = false;
  CHECK(read_in_order(rx.get(), kMessages, in_order) == kMessages);
  CHECK(in_order);
  REQUIRE(await([&] { return flood.done.load(); }, 20000));
  CHECK_FALSE(flood.failed);
  CHECK(await([&] { return c[2].log().find("no longer holds the ring back") != std::string::npos; }));
  CHECK(c[2].log().find("disconnecting it") == std::string::npos);
  REQUIRE(c[2].stop() == 0);
  CHECK(c[2].log().find("slow clients held the ring 0 times") == std::string::npos);
}

TEST_CASE("back-pressure: a receiver that never reads is dropped with error 14 after "
          "slow_timeout_ms, and the others get everything", "[agentd][ring][slow]") {
  Cluster c(3, ring_keys(), "127.0.0.1", "", clients_keys(1500));
  auto stuck = connect(c[2].socket_path(), "stuck");
  auto rx = connect(c[1].socket_path(), "rx");
  REQUIRE(agent_join(stuck.get(), "g") == AGENT_OK);
  REQUIRE(agent_join(rx.get(), "g") == AGENT_OK);
  REQUIRE(joined_by(rx.get(), 2));
  Flood flood(c[0].socket_path());
  bool in_order = false, alone = false;
  CHECK(read_in_order(rx.get(), kMessages, in_order, &alone) == kMessages);
  CHECK(in_order);
  REQUIRE(await([&] { return flood.done.load(); }, 20000));
  CHECK_FALSE(flood.failed);
  // rx sees stuck leave g (its drop is ordered like any disconnect).
  CHECK((alone || receive_until(rx.get(), [](const agent_message& m) {
           return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 1;
         }, 10000)));
  std::string log = c[2].log();
  CHECK(log.find("holds the ring's senders back") != std::string::npos);
  CHECK(log.find("clients.slow_timeout_ms (1500 ms)") != std::string::npos);
  CHECK(log.find("disconnecting it") != std::string::npos);
}
