// Who may connect, join and send: the client socket's permissions, access rules by the peer's
// credentials, the per-user connection limit.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "daemon_fixture.h"

using namespace agent::testing;

namespace {

// The error the daemon answers a request with (the next error message), or 0.
int next_error(agent_conn* c) {
  Message m = receive_until(c, [](const agent_message& x) { return x.kind == AGENT_MSG_ERROR; },
                            3000);
  return m ? m->error_code : 0;
}

// Runs f in a child process as user nobody (65534); its exit status.
template <class F>
int as_nobody(F f) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(90);
    ::_exit(f());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

}  // namespace

TEST_CASE("the client socket is not world-writable unless configured", "[agentd][access]") {
  {
    Daemon d;
    struct stat sb {};
    REQUIRE(::stat(d.socket_path().c_str(), &sb) == 0);
    CHECK((sb.st_mode & 0777) == 0660);
  }
  DaemonOptions o;
  o.extra_config = "unix_mode = \"0666\"\n";  // into [clients]
  Daemon open(o);
  struct stat sb {};
  REQUIRE(::stat(open.socket_path().c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0666);
}

TEST_CASE("access rules refuse joins, history and sends with error 19", "[agentd][access]") {
  DaemonOptions o;
  o.extra_config =
      "[persist]\ngroups = [\"secret*\"]\n"
      "[[access]]\ngroups = [\"secret*\"]\njoin = [\"uid:4242\"]\nsend = []\n"
      "[[access]]\ngroups = [\"staff\"]\njoin = [\"uid:" + std::to_string(::getuid()) + "\"]\n";
  Daemon d(o);
  Conn c = connect(d.socket_path(), "c");
  REQUIRE(agent_join(c.get(), "secret1") == AGENT_OK);
  CHECK(next_error(c.get()) == 19);
  REQUIRE(agent_history(c.get(), "secret1", nullptr, 0) == AGENT_OK);
  CHECK(next_error(c.get()) == 19);
  REQUIRE(agent_multicast(c.get(), AGENT_AGREED, "secret1", 0, "x", 1) == AGENT_OK);
  CHECK(next_error(c.get()) == 19);
  // Allowed by a rule, and by no rule at all.
  REQUIRE(agent_join(c.get(), "staff") == AGENT_OK);
  REQUIRE(agent_join(c.get(), "public") == AGENT_OK);
  int views = 0;
  while (views < 2) {
    Message m = receive(c.get(), 3000);
    REQUIRE(m);
    REQUIRE(m->kind == AGENT_MSG_MEMBERSHIP);  // no error in between
    ++views;
  }
  REQUIRE(agent_multicast(c.get(), AGENT_AGREED, "staff", 0, "ok", 2) == AGENT_OK);
  Message m = receive(c.get());
  REQUIRE(m);
  CHECK(m->kind == AGENT_MSG_DATA);
  CHECK(d.log().find("may not join secret1: access rule 1") != std::string::npos);
}

TEST_CASE("another user is kept out by the socket's permissions, and by rules once let in",
          "[agentd][access]") {
  if (::geteuid() != 0) {
    WARN("needs root to act as another user; not run");
    return;
  }
  {
    Daemon d;  // socket 0660, root's
    std::string path = d.socket_path();
    CHECK(as_nobody([&] {
            agent_conn* c = nullptr;
            int rc = agent_connect(path.c_str(), "n", 0, 3000, &c);
            return rc == AGENT_ERR_CONNECT && errno == EACCES ? 0 : 1;
          }) == 0);
  }
  DaemonOptions o;
  o.extra_config = "unix_mode = \"0666\"\n[[access]]\ngroups = [\"adm*\"]\njoin = [\"uid:0\"]\n";
  Daemon d(o);
  ::chmod(d.dir().c_str(), 0755);  // the fixture's directory holds the socket
  std::string path = d.socket_path();
  CHECK(as_nobody([&] {
          agent_conn* c = nullptr;
          if (agent_connect(path.c_str(), "n", AGENT_WANT_MEMBERSHIP, 3000, &c) != AGENT_OK) return 1;
          int rc = 2;
          if (agent_join(c, "adm1") == AGENT_OK && next_error(c) == 19) rc = 0;
          agent_disconnect(c);
          return rc;
        }) == 0);
  CHECK(d.log().find("(uid 65534") != std::string::npos);
}

TEST_CASE("one user's connections are limited", "[agentd][access]") {
  DaemonOptions o;
  o.extra_config = "max_clients_per_user = 2\n";
  Daemon d(o);
  Conn a = connect(d.socket_path(), "a");
  Conn b = connect(d.socket_path(), "b");
  agent_conn* c = nullptr;
  CHECK(agent_connect(d.socket_path().c_str(), "c", 0, 3000, &c) == AGENT_ERR_REJECTED);
  CHECK(d.log().find("connections (clients.max_clients_per_user)") != std::string::npos);
  a.reset();  // a slot is free again once a's session is over
  // The slot frees when the daemon sees the close.
  bool connected = await(
      [&] { return agent_connect(d.socket_path().c_str(), "c", 0, 3000, &c) == AGENT_OK; }, 2000);
  CHECK(connected);
  agent_disconnect(c);
}
