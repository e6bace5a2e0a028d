// A disconnect loses nothing the client sent: every multicast written before agent_disconnect
// reaches the ring, also over TCP with deliveries the client never read (a close() with unread
// bytes would make the kernel reset the connection and drop what the daemon had not read yet).
#include <catch2/catch.hpp>

#include <string>

#include "daemon_fixture.h"

using namespace agent::testing;

namespace {

// Sends n 1 KB AGREED messages to g from a client on `address` that reads nothing, then
// disconnects; returns how many a receiver on the other daemon got.
size_t sent_and_received(Daemon& receiver_daemon, const std::string& address, int n) {
  auto rx = connect(receiver_daemon.socket_path(), "rx");
  REQUIRE(agent_join(rx.get(), "g") == AGENT_OK);
  REQUIRE(receive_until(rx.get(), [](auto& m) { return m.kind == AGENT_MSG_MEMBERSHIP; }, 10000));
  agent_conn* tx = nullptr;
  REQUIRE(agent_connect(address.c_str(), "tx", AGENT_WANT_MEMBERSHIP, 5000, &tx) == AGENT_OK);
  REQUIRE(agent_join(tx, "g") == AGENT_OK);  // its own messages come back and fill its socket
  REQUIRE(receive_until(rx.get(), [](auto& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 2;
  }, 10000));
  std::string body(1024, 'x');
  for (int i = 0; i < n; ++i) REQUIRE(agent_multicast(tx, AGENT_AGREED, "g", 0, body.data(), body.size()) == AGENT_OK);
  agent_disconnect(tx);
  return count_data_until_membership(rx.get());
}

}  // namespace

TEST_CASE("a disconnect over TCP loses none of the messages sent before it", "[disconnect][agentd]") {
  auto d = slow_reading_pair();
  CHECK(sent_and_received(*d[1], d[0]->tcp_address(), 3000) == 3000);
}

TEST_CASE("a disconnect over the Unix socket loses none of the messages sent before it",
          "[disconnect][agentd]") {
  auto d = slow_reading_pair();
  CHECK(sent_and_received(*d[1], d[0]->socket_path(), 3000) == 3000);
}
