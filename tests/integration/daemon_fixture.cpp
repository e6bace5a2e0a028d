#include "daemon_fixture.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "transport/ring_seal.h"

namespace agent::testing {

namespace {

using Clock = std::chrono::steady_clock;

// n distinct free ports of loopback for sockets of this type (SOCK_STREAM, SOCK_DGRAM): all
// bound at once, so they differ, then released for the daemons to take.
std::vector<uint16_t> free_ports(int type, size_t n) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, type, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ports.push_back(ntohs(a.sin_port));
    fds.push_back(fd);
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

bool can_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::vector<uint16_t> free_udp_ports(size_t n) { return free_ports(SOCK_DGRAM, n); }
std::vector<uint16_t> free_tcp_ports(size_t n) { return free_ports(SOCK_STREAM, n); }

bool await(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (pred()) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

RunResult run_agentd(const std::vector<std::string>& args, int timeout_ms) {
  char tmpl[] = "/tmp/agent-run-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl, out = dir + "/out", err = dir + "/err";
  std::fflush(nullptr);  // or the child's freopen writes what this process buffered
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr))
      std::_Exit(126);
    std::vector<char*> argv{const_cast<char*>("agentd")};
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(AGENTD_PATH, argv.data());
    std::_Exit(127);
  }
  int st = 0;
  bool ended = await([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, timeout_ms);
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
  }
  auto slurp = [](const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  RunResult r;
  r.status = ended && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  std::string cmd = "rm -rf '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) WARN("could not remove " << dir);
  return r;
}

const std::string& test_key_file() {
  static const std::string path = [] {
    char tmpl[] = "/tmp/agent-test-key-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string dir = tmpl;
    std::string p = dir + "/ring.key";
    REQUIRE(agent::ringseal::generate_key_file(p) == "");
    static std::string to_remove = dir;
    std::atexit([] {
      std::string cmd = "rm -rf '" + to_remove + "'";
      if (std::system(cmd.c_str()) != 0) {
      }
    });
    return p;
  }();
  return path;
}

std::string ring_section(uint32_t id, const std::vector<uint16_t>& ports, const std::string& extra,
                         const std::string& address) {
  std::ostringstream s;
  s << "[ring]\nid = " << id << "\n" << extra;
  // Rings run with the cluster key unless the test sets ring.key_file itself.
  if (extra.find("key_file") == std::string::npos)
    s << "key_file = \"" << test_key_file() << "\"\n";
  for (size_t i = 0; i < ports.size(); ++i)
    s << "[[ring.daemons]]\nid = " << i + 1 << "\naddress = \"" << address << "\"\nport = "
      << ports[i] << "\n";
  return s.str();
}

Cluster::Cluster(size_t n, const std::string& ring_extra, const std::string& address,
                 const std::string& daemon_extra, const std::string& clients_extra) {
  auto ports = free_udp_ports(n);
  for (size_t i = 0; i < n; ++i) {
    DaemonOptions o;
    o.name = "d" + std::to_string(i + 1);
    // (The generated file's [clients] table is still open here.)
    o.extra_config = clients_extra +
                     ring_section(static_cast<uint32_t>(i + 1), ports, ring_extra, address) +
                     daemon_extra;
    daemons_.push_back(std::make_unique<Daemon>(o));
  }
}

std::vector<std::unique_ptr<Daemon>> slow_reading_pair() {
  auto ports = free_udp_ports(2);
  std::vector<std::unique_ptr<Daemon>> d;
  for (uint32_t id = 1; id <= 2; ++id) {
    DaemonOptions o;
    o.name = "d" + std::to_string(id);
    o.tcp = id == 1;
    // (The generated file's [clients] table is still open here.)
    o.extra_config = "max_message_bytes = 32768\n" +
                     ring_section(id, ports, std::string(kPatientProfile) + "max_pending_bytes = 65536\n");
    d.push_back(std::make_unique<Daemon>(o));
  }
  return d;
}

void write_private_file(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::fchmod(fd, 0600) == 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
}

Daemon::Daemon(DaemonOptions opt) {
  char tmpl[] = "/tmp/agent-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  dir_ = tmpl;
  socket_ = dir_ + "/agentd.sock";
  if (opt.tcp) port_ = free_ports(SOCK_STREAM, 1).front();
  std::string config = dir_ + "/agentd.toml";
  {
    std::ofstream f(config);
    f << "[daemon]\nname = \"" << opt.name << "\"\nlog_level = \"info\"\nstate_dir = \""
      << (opt.state_dir.empty() ? dir_ + "/state" : opt.state_dir) << "\"\n[clients]\nunix_socket = \"" << socket_ << "\"\ntcp = \""
      << (opt.tcp ? "127.0.0.1:" + std::to_string(port_) : "off") << "\"\n";
    if (opt.tcp && !opt.tcp_secrets.empty()) {
      write_private_file(secrets_path(), opt.tcp_secrets);
      f << "secrets_file = \"" << secrets_path() << "\"\n";
    } else if (opt.tcp && !opt.tcp_auth_default) {
      f << "tcp_auth = \"none\"\n";
    }
    f << opt.extra_config;
    f << "\n[admin]\nhttp = \"" << opt.admin_http << "\"\n";
  }
  config_ = config;
  launch();
}

void Daemon::launch() {
  std::string log = dir_ + "/agentd.log";
  ::unlink(socket_.c_str());  // a killed daemon leaves its socket behind
  std::fflush(nullptr);  // or the child's freopen writes what this process buffered
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    FILE* f = std::freopen(log.c_str(), "a", stderr);
    (void)f;
    ::execl(AGENTD_PATH, "agentd", "--config", config_.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!can_connect(socket_)) {
    int st;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL("agentd exited at start:\n" << this->log());
    }
    if (Clock::now() > deadline) FAIL("agentd did not listen within 10 s:\n" << this->log());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Daemon::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void Daemon::restart() {
  REQUIRE(pid_ <= 0);
  launch();
}

void Daemon::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

Daemon::~Daemon() {
  stop();
  std::string cmd = "rm -rf '" + dir_ + "'";
  if (std::system(cmd.c_str()) != 0) WARN("could not remove " << dir_);
}

std::string Daemon::tcp_address() const { return "127.0.0.1:" + std::to_string(port_); }

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  return wait_exit();
}

int Daemon::wait_exit(int timeout_ms) {
  if (pid_ <= 0) return -1;
  int st = 0;
  bool ended = await([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, timeout_ms);
  if (!ended) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &st, 0);
  }
  pid_ = -1;
  return ended && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string Daemon::log() const {
  std::ifstream f(dir_ + "/agentd.log");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Conn connect(const std::string& daemon, const std::string& name) {
  agent_conn* c = nullptr;
  int rc = agent_connect(daemon.c_str(), name.c_str(), AGENT_WANT_MEMBERSHIP, 5000, &c);
  INFO("connect " << name << " to " << daemon << ": " << agent_strerror(rc));
  REQUIRE(rc == AGENT_OK);
  return Conn(c);
}

Message receive(agent_conn* c, int timeout_ms) {
  agent_message* m = nullptr;
  int rc = agent_receive(c, &m, timeout_ms);
  if (rc != AGENT_OK) return nullptr;
  return Message(m);
}

Message receive_until(agent_conn* c, const std::function<bool(const agent_message&)>& pred,
                      int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return nullptr;
    auto m = receive(c, static_cast<int>(left.count()));
    if (!m) return nullptr;
    if (pred(*m)) return m;
  }
}

std::vector<std::string> members(const agent_message& m) {
  std::vector<std::string> v;
  for (size_t i = 0; i < m.ngroups; ++i) v.emplace_back(m.groups[i]);
  return v;
}

std::string payload(const agent_message& m) {
  return std::string(static_cast<const char*>(m.data), m.len);
}

size_t count_data_until_membership(agent_conn* c) {
  size_t got = 0;
  while (auto m = receive(c, 5000)) {
    if (m->kind == AGENT_MSG_DATA) ++got;
    if (m->kind == AGENT_MSG_MEMBERSHIP && got > 0) break;
  }
  return got;
}

}  // namespace agent::testing
