// The C library's send and receive paths for programs that send or receive one message per call
// (Spread's): the send queue keeps what it accepted through exit and reports a vanished daemon,
// and AGENT_NO_READ_AHEAD reads a backlog with one system call per message.
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "daemon_fixture.h"

using namespace agent::testing;

TEST_CASE("a program that returns from main without agent_disconnect loses none of its messages",
          "[sendqueue][agentd]") {
  // d1 pauses reading its clients early: the sender's socket fills and the library queues the
  // rest, which only the exit-time write gets to the daemon.
  auto d = slow_reading_pair();
  auto rx = connect(d[1]->socket_path(), "rx");
  REQUIRE(agent_join(rx.get(), "g") == AGENT_OK);
  REQUIRE(receive_until(rx.get(), [](auto& m) { return m.kind == AGENT_MSG_MEMBERSHIP; }, 10000));
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execl(EXIT_SENDER_PATH, "exit-sender", d[0]->socket_path().c_str(), "g", "3000",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(count_data_until_membership(rx.get()) == 3000);
}

TEST_CASE("a daemon that vanishes while messages are queued is reported to the sender",
          "[sendqueue][agentd]") {
  auto d = slow_reading_pair();
  agent_conn* tx = nullptr;
  REQUIRE(agent_connect(d[0]->socket_path().c_str(), "tx", 0, 5000, &tx) == AGENT_OK);
  REQUIRE(agent_join(tx, "g") == AGENT_OK);
  std::string body(1024, 'x');
  int rc = AGENT_OK;
  int sent = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (rc == AGENT_OK && std::chrono::steady_clock::now() < deadline) {
    if (sent == 2000) d[0]->kill9();
    rc = agent_multicast(tx, AGENT_AGREED, "g", 0, body.data(), body.size());
    if (rc == AGENT_OK) ++sent;
  }
  CHECK(sent >= 2000);
  CHECK(rc == AGENT_ERR_CLOSED);
  CHECK(agent_multicast(tx, AGENT_AGREED, "g", 0, body.data(), body.size()) == AGENT_ERR_CLOSED);
  agent_disconnect(tx);  // returns although the daemon is gone
}

TEST_CASE("with AGENT_NO_READ_AHEAD a backlog is read one system call per message, the socket "
          "staying readable", "[sendqueue][agentd]") {
  Daemon d;
  agent_conn* c = nullptr;
  REQUIRE(agent_connect(d.socket_path().c_str(), "nra", AGENT_NO_READ_AHEAD, 5000, &c) == AGENT_OK);
  std::string me = agent_private_group(c);
  // A data frame to our private group: length, verb, service, type, sender, one group, payload.
  const int frame = 4 + 1 + 4 + 2 + (1 + static_cast<int>(me.size())) + 2 +
                    (1 + static_cast<int>(me.size())) + 4 + 2;
  for (int i = 0; i < 3; ++i)
    REQUIRE(agent_multicast(c, AGENT_AGREED, me.c_str(), 0, "hi", 2) == AGENT_OK);
  int waiting = 0;
  REQUIRE(await([&] { return ::ioctl(agent_fd(c), FIONREAD, &waiting) == 0 && waiting == 3 * frame; },
                10000));
  for (int i = 2; i >= 0; --i) {
    const agent_message* m = nullptr;
    REQUIRE(agent_next(c, &m, 5000) == AGENT_OK);
    CHECK(std::string(static_cast<const char*>(m->data), m->len) == "hi");
    // The message's rest and the next one's length prefix came in one read; the next one's
    // body is still in the socket, which polls readable.
    REQUIRE(::ioctl(agent_fd(c), FIONREAD, &waiting) == 0);
    CHECK(waiting == (i > 0 ? i * frame - 4 : 0));
    pollfd p{agent_fd(c), POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == (i > 0 ? 1 : 0));
  }
  agent_disconnect(c);
}
