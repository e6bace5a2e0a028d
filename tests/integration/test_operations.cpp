// agentd under systemd without systemd: the sd_notify messages it sends to a NOTIFY_SOCKET the
// test binds (READY=1, WATCHDOG=1, STOPPING=1), its log lines when stderr is the journal
// stream, and agentd(8) against `agentd --help`.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "daemon_fixture.h"

using namespace agent::testing;

namespace {

using Clock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A scratch directory with a ring-of-one configuration (Unix socket only), removed at the end.
struct Scratch {
  Scratch() {
    char tmpl[] = "/tmp/agent-ops-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    socket = dir + "/agentd.sock";
    config = dir + "/agentd.toml";
    std::ofstream(config) << "[daemon]\nname = \"ops1\"\nstate_dir = \"" << dir
                          << "/state\"\npriority = \"normal\"\n[clients]\nunix_socket = \""
                          << socket << "\"\ntcp = \"off\"\n";
  }
  ~Scratch() {
    std::string cmd = "rm -rf '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) WARN("could not remove " << dir);
  }
  std::string dir, socket, config;
};

// agentd --config FILE with stderr to `log` and these variables added to the environment
// (NAME=VALUE; "JOURNAL_STREAM=@" is replaced by the log file's own dev:inode).
pid_t start_agentd(const std::string& config, const std::string& log,
                   const std::vector<std::string>& env) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ::dup2(fd, 2) < 0) std::_Exit(126);
    for (auto e : env) {
      if (e == "JOURNAL_STREAM=@") {
        struct stat st;
        if (::fstat(2, &st) != 0) std::_Exit(126);
        e = "JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
      }
      ::putenv(::strdup(e.c_str()));
    }
    ::execl(AGENTD_PATH, "agentd", "--config", config.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  return pid;
}

// SIGTERM and the exit status (bounded; killed after 10 s: -1).
int stop_agentd(pid_t pid) {
  ::kill(pid, SIGTERM);
  int st = 0;
  if (!await([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, 10000)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Kills the daemon at the end of the scope unless it was stopped (a failed REQUIRE leaves
// none running).
struct Running {
  explicit Running(pid_t p) : pid(p) {}
  ~Running() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  int stop() {
    int rc = stop_agentd(pid);
    pid = -1;
    return rc;
  }
  pid_t pid;
};

// A datagram socket bound to a path, as systemd's NOTIFY_SOCKET is.
struct NotifySocket {
  explicit NotifySocket(const std::string& p) : path(p) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~NotifySocket() { ::close(fd); }
  // The next datagram within timeout_ms, or "".
  std::string next(int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return {};
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  // Datagrams until one holds `what` (returned) or timeout_ms passes (""); all seen go to log.
  std::string until(const std::string& what, int timeout_ms, std::vector<std::string>& log) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      std::string m = next(static_cast<int>(std::max<int64_t>(left.count(), 1)));
      if (m.empty()) continue;
      log.push_back(m);
      if (m.find(what) != std::string::npos) return m;
    }
    return {};
  }
  std::string path;
  int fd = -1;
};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (auto& m : v) s += "[" + m + "] ";
  return s;
}

bool connectable(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

#ifdef AGENT_HAVE_SYSTEMD
TEST_CASE("systemd: agentd sends READY=1 when listening with its ring up, WATCHDOG=1 from its "
          "loop and STOPPING=1 on SIGTERM") {
  Scratch s;
  NotifySocket notify(s.dir + "/notify");
  // WatchdogSec=0.4s: the daemon pings every 200 ms, idle as it is.
  Running d(start_agentd(s.config, s.dir + "/agentd.log",
                         {"NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=400000"}));
  std::vector<std::string> seen;
  std::string ready = notify.until("READY=1", 10000, seen);
  INFO("log:\n" << slurp(s.dir + "/agentd.log") << "datagrams: " << joined(seen));
  REQUIRE(!ready.empty());
  // Ready means clients can connect now.
  CHECK(connectable(s.socket));
  CHECK(ready.find("STATUS=daemon ops1: ring of 1 daemon operational") != std::string::npos);
  // The idle loop keeps pinging: at least three within 2 s (one every 200 ms expected).
  int pings = 0;
  auto deadline = Clock::now() + std::chrono::seconds(2);
  while (pings < 3 && Clock::now() < deadline)
    if (!notify.until("WATCHDOG=1", 2000, seen).empty()) ++pings;
  CHECK(pings == 3);
  CHECK(slurp(s.dir + "/agentd.log").find("systemd watchdog: WATCHDOG=1 from the event loop "
                                          "every 200 ms") != std::string::npos);
  ::kill(d.pid, SIGTERM);
  std::string stopping = notify.until("STOPPING=1", 10000, seen);
  CHECK(d.stop() == 0);
  INFO("datagrams: " << joined(seen));
  REQUIRE(!stopping.empty());
  CHECK(stopping.find("STATUS=stopping (SIGTERM)") != std::string::npos);
  // READY=1 once only.
  int readies = 0;
  for (auto& m : seen) readies += m.find("READY=1") != std::string::npos;
  CHECK(readies == 1);
}

TEST_CASE("systemd: in a ring of two, READY=1 comes once the ring has formed") {
  auto ports = free_udp_ports(2);
  Scratch s1, s2;
  for (auto* s : {&s1, &s2}) {
    std::ofstream f(s->config, std::ios::app);
    f << ring_section(s == &s1 ? 1 : 2, ports, kPatientProfile);
  }
  // Rename the second daemon (names must differ across a ring).
  {
    std::string text = slurp(s2.config);
    text.replace(text.find("ops1"), 4, "ops2");
    std::ofstream(s2.config) << text;
  }
  NotifySocket n1(s1.dir + "/notify"), n2(s2.dir + "/notify");
  Running d1(start_agentd(s1.config, s1.dir + "/agentd.log", {"NOTIFY_SOCKET=" + n1.path}));
  Running d2(start_agentd(s2.config, s2.dir + "/agentd.log", {"NOTIFY_SOCKET=" + n2.path}));
  std::vector<std::string> seen1, seen2;
  std::string r1 = n1.until("READY=1", 15000, seen1), r2 = n2.until("READY=1", 15000, seen2);
  CHECK(d1.stop() == 0);
  CHECK(d2.stop() == 0);
  INFO("d1 log:\n" << slurp(s1.dir + "/agentd.log") << "d2 log:\n" << slurp(s2.dir + "/agentd.log"));
  REQUIRE(!r1.empty());
  REQUIRE(!r2.empty());
  // Started together, the two form one ring before either is ready (a daemon whose peer does
  // not answer forms a ring of one after consensus_timeout_ms and says so instead).
  bool both = r1.find("ring of 2 daemons") != std::string::npos ||
              r2.find("ring of 2 daemons") != std::string::npos;
  CHECK(both);
}
#endif

TEST_CASE("journal: with stderr the journal stream, log lines carry a syslog priority and no "
          "timestamp, elsewhere they keep the timestamp") {
  Scratch s;
  // JOURNAL_STREAM names stderr: the journal's format.
  Running journal(start_agentd(s.config, s.dir + "/journal.log", {"JOURNAL_STREAM=@"}));
  // Stopped once its loop runs (the ring formed): a stop during its start is another test's.
  REQUIRE(await([&] {
    return connectable(s.socket) &&
           slurp(s.dir + "/journal.log").find("regular configuration") != std::string::npos;
  }, 20000));
  CHECK(journal.stop() == 0);
  std::string text = slurp(s.dir + "/journal.log");
  // The lines that are not in the journal's format, at most a few (one check, not one per line).
  auto misfits = [](const std::string& text, const std::regex& re, int& lines) {
    std::istringstream in(text);
    std::string bad;
    int shown = 0;
    lines = 0;
    for (std::string line; std::getline(in, line); ++lines)
      if (!std::regex_match(line, re) && shown++ < 5) bad += line + "\n";
    return bad;
  };
  std::regex journal_line(R"(<[3467]>(ERROR|WARN |INFO |DEBUG) \S.*)");
  int lines = 0;
  CHECK(misfits(text, journal_line, lines) == "");
  CHECK(lines >= 3);
  CHECK(text.find("<6>INFO  listening for clients on " + s.socket) != std::string::npos);

  // A JOURNAL_STREAM that is not stderr (inherited, stderr redirected since): plain lines.
  Running plain(start_agentd(s.config, s.dir + "/plain.log", {"JOURNAL_STREAM=1:1"}));
  REQUIRE(await([&] {
    return connectable(s.socket) &&
           slurp(s.dir + "/plain.log").find("regular configuration") != std::string::npos;
  }, 20000));
  CHECK(plain.stop() == 0);
  text = slurp(s.dir + "/plain.log");
  std::regex plain_line(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG) \S.*)");
  CHECK(misfits(text, plain_line, lines) == "");
  CHECK(lines >= 3);
}

TEST_CASE("man: agentd(8) names every option of agentd --help") {
  auto r = run_agentd({"--help"});
  REQUIRE(r.status == 0);
  std::string page = slurp(AGENT_MAN_DIR "/agentd.8");
  REQUIRE(!page.empty());
  std::regex opt(R"(--[a-z][a-z-]*)");
  int n = 0;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), opt), end; it != end; ++it, ++n) {
    // roff writes '-' as "\-" in options.
    std::string roff = std::regex_replace(it->str(), std::regex("-"), "\\-");
    INFO(it->str());
    CHECK(page.find(roff) != std::string::npos);
  }
  CHECK(n >= 9);  // --config ... --version: the help text was read
}
