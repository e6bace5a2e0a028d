// agentd's start-up checks (--check-config, unreadable config paths, the state directory's
// lock) and how it ends on signals, with real processes.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>

#include "daemon_fixture.h"

using namespace agent::testing;

namespace {

// A file in a fresh temporary directory, removed with it.
struct TempFile {
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/agent-cfg-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/agentd.toml";
    std::ofstream(path) << text;
  }
  ~TempFile() {
    ::unlink(path.c_str());
    ::rmdir(dir.c_str());
  }
  std::string dir, path;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("agentd --check-config accepts a good file with a one-line summary", "[agentd][config]") {
  TempFile f(
      "[daemon]\nname = \"d7\"\n[clients]\nunix_socket = \"/tmp/d7.sock\"\ntcp = \"off\"\n"
      "[ring]\nid = 2\nkey_file = \"" + test_key_file() + "\"\n"
      "[[ring.daemons]]\nid = 1\naddress = \"127.0.0.1\"\nport = 4810\n"
      "[[ring.daemons]]\nid = 2\naddress = \"127.0.0.1\"\nport = 4811\nname = \"d7\"\n");
  auto r = run_agentd({"--check-config", f.path});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out == f.path + ": ok: daemon d7, ring id 2 of 2 daemons, ring authenticated and "
                          "encrypted, clients on /tmp/d7.sock, "
                          "state in /tmp/agentd-state/d7\n");
  CHECK(r.err.empty());
  CHECK(::access("/tmp/d7.sock", F_OK) != 0);  // checked, not started
}

TEST_CASE("agentd --check-config reports every problem of a bad file by key, value and line",
          "[agentd][config]") {
  TempFile f(
      "[daemon]\nname = \"d1\"\n[clients]\nqueue_limit_bytes = -5\nmax_clinets = 3\n"
      "[ring]\nid = 1\n[[ring.daemons]]\nid = 1\naddress = \"127.0.0.1\"\nport = 70000\n");
  auto r = run_agentd({"--check-config", f.path});
  INFO(r.out << r.err);
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(contains(r.err, f.path + ":4: clients.queue_limit_bytes = -5: must be 1.."));
  CHECK(contains(r.err, f.path + ":5: unknown key clients.max_clinets (did you mean clients.max_clients?)"));
  CHECK(contains(r.err, f.path + ":11: ring.daemons[1].port = 70000: must be 1..65535"));
  CHECK(contains(r.err, f.path + ": not valid"));
  // A command-line value is checked as well.
  TempFile good("[daemon]\nname = \"d1\"\n");
  auto t = run_agentd({"--check-config", good.path, "--tcp", "127.0.0.1:70000"});
  CHECK(t.status == 2);
  CHECK(contains(t.err, "--tcp: port in '127.0.0.1:70000' must be 1..65535"));
}

TEST_CASE("a config path that is a directory or missing is refused with the reason",
          "[agentd][config]") {
  TempFile f("");
  for (auto [path, reason] : {std::pair<std::string, std::string>{f.dir, "Is a directory"},
                              {f.dir + "/missing.toml", "No such file or directory"}}) {
    for (const char* option : {"--config", "--check-config"}) {
      auto r = run_agentd({option, path});
      INFO(option << " " << path << ": " << r.err);
      CHECK(r.status == 2);
      CHECK(r.err.rfind("agentd: cannot read configuration file " + path + ": " + reason, 0) == 0);
      CHECK_FALSE(contains(r.err, "bad_alloc"));
      CHECK_FALSE(contains(r.err, "what()"));
    }
  }
}

TEST_CASE("a second daemon on a state directory in use is refused at start", "[agentd][config]") {
  Daemon d;
  std::string other_socket = d.dir() + "/other.sock";
  // Same file (so the same state_dir), its own socket and name.
  auto r = run_agentd({"--config", d.config_path(), "--unix", other_socket, "--name", "d2"});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(contains(r.err, "state directory " + d.dir() + "/state is in use by another daemon (pid " +
                            std::to_string(d.pid()) + ")"));
  CHECK(::access(other_socket.c_str(), F_OK) != 0);
  // The first one is unharmed and its lock goes with it.
  auto c = connect(d.socket_path(), "alice");
  c.reset();
  CHECK(d.stop() == 0);
  DaemonOptions o;
  o.state_dir = d.dir() + "/state";
  Daemon again(o);  // starts: the lock was released
}

TEST_CASE("a stop signal ends the daemon cleanly, like SIGTERM", "[agentd][signals]") {
  auto [sig, name] = GENERATE(std::pair<int, std::string>{SIGUSR1, "SIGUSR1"},
                              std::pair<int, std::string>{SIGINT, "SIGINT"},
                              std::pair<int, std::string>{SIGQUIT, "SIGQUIT"},
                              std::pair<int, std::string>{SIGUSR2, "SIGUSR2"});
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  d.signal(sig);
  int rc = d.wait_exit();
  INFO(d.log());
  CHECK(rc == 0);
  CHECK(contains(d.log(), "received " + name + ": stopping"));
  CHECK(contains(d.log(), "shutting down: 1 clients connected"));
  CHECK(contains(d.log(), "INFO  stopped"));
  CHECK(::access(d.socket_path().c_str(), F_OK) != 0);  // socket file removed
  agent_message* x = nullptr;
  int got;
  while ((got = agent_receive(a.get(), &x, 5000)) == AGENT_OK) agent_message_free(x);
  CHECK(got == AGENT_ERR_CLOSED);
}

TEST_CASE("SIGHUP reloads the config file: the log level at once, the rest named for a restart",
          "[agentd][signals]") {
  Daemon d;
  auto log_has = [&](const std::string& s) { return contains(d.log(), s); };
  // Fails with the log when what it waits for is not in it within 5 s.
  auto await_log = [&](const std::string& s) {
    if (!await([&] { return log_has(s); })) FAIL("no '" << s << "' in the log:\n" << d.log());
  };
  d.signal(SIGHUP);
  await_log("received SIGHUP: reloaded " + d.config_path() + ", nothing changed");
  // Edited: a new log level and name; then a file with a mistake, which changes nothing.
  std::string text;
  {
    std::ifstream in(d.config_path());
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    auto at = t.find(from);
    REQUIRE(at != std::string::npos);
    t.replace(at, from.size(), to);
    std::ofstream(d.config_path()) << t;
  };
  edit("[clients]", "[clients]\nmax_clients = 0");
  d.signal(SIGHUP);
  await_log("keeping the running configuration");
  await_log("WARN  reload: " + d.config_path() + ":6: clients.max_clients = 0: must be 1..");
  edit("name = \"d1\"\nlog_level = \"info\"", "name = \"d9\"\nlog_level = \"debug\"");
  d.signal(SIGHUP);
  await_log("daemon.log_level takes effect now; changed, taking effect at the next start: "
            "daemon.name");
  // Still serving, now logging at debug level (an error sent to a client is a debug line).
  auto c = connect(d.socket_path(), "alice");
  REQUIRE(agent_join(c.get(), "g") == AGENT_OK);
  agent_join(c.get(), "g");
  await_log("DEBUG error to connection");
  CHECK(d.running());
  CHECK(d.stop() == 0);
  CHECK(::access(d.socket_path().c_str(), F_OK) != 0);
}

TEST_CASE("a daemon stopped by SIGUSR1 leaves the ring at once", "[agentd][signals][ring]") {
  Cluster c(2);  // token_loss 2 s: a daemon that vanished without a word would take that long
  auto m1 = connect(c[0].socket_path(), "m1");
  REQUIRE(agent_join(m1.get(), "g") == AGENT_OK);
  auto m2 = connect(c[1].socket_path(), "m2");
  REQUIRE(agent_join(m2.get(), "g") == AGENT_OK);
  REQUIRE(receive_until(m1.get(), [](auto& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 2;
  }, 10000));
  auto t0 = std::chrono::steady_clock::now();
  c[1].signal(SIGUSR1);
  CHECK(c[1].wait_exit() == 0);
  auto alone = receive_until(m1.get(), [](auto& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && (m.service & AGENT_CAUSED_BY_NETWORK) &&
           (m.service & AGENT_REG_MEMB) && m.ngroups == 1;
  }, 5000);
  REQUIRE(alone);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  CHECK(ms < 1500);
}

TEST_CASE("a second daemon with the same ring address on this host is refused at start",
          "[agentd][config][ring]") {
  DaemonOptions o;
  o.extra_config = ring_section(1, free_udp_ports(2), kPatientProfile);
  Daemon d(o);
  // The same file (ring.id 1), its own socket, name and state directory.
  auto r = run_agentd({"--config", d.config_path(), "--unix", d.dir() + "/other.sock", "--name",
                       "d2", "--state-dir", d.dir() + "/other-state"});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(contains(r.err, "ring.id 1: cannot bind UDP 127.0.0.1:"));
  CHECK(contains(r.err, "Address already in use (another daemon has this ring address"));
  CHECK(d.stop() == 0);
}
