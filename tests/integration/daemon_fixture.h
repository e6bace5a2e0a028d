// Starts a real agentd for one test and stops it afterwards; helpers to drive it with libagent.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent.h"

namespace agent::testing {

struct DaemonOptions {
  std::string name = "d1";
  bool tcp = false;             // also listen on a TCP port of loopback
  std::string extra_config;     // appended to the generated TOML file
  std::string state_dir;        // "" : a directory of its own
  // With tcp, how TCP clients authenticate: tcp_secrets non-empty is a secrets file's text
  // ("NAME SECRET" lines), written mode 0600 and named by clients.secrets_file. Empty:
  // clients.tcp_auth = "none" (tests of other things over TCP), unless tcp_auth_default,
  // which leaves both keys out (the daemon's default: authentication, and no file).
  std::string tcp_secrets;
  bool tcp_auth_default = false;
  // [admin] http: "off" (tests do not share the default port), or "127.0.0.1:PORT".
  std::string admin_http = "off";
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions opt = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  const std::string& socket_path() const { return socket_; }
  std::string tcp_address() const;  // "127.0.0.1:port"
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  const std::string& config_path() const { return config_; }
  // The secrets file clients.secrets_file names (with tcp_secrets): rewrite it, then SIGHUP.
  std::string secrets_path() const { return dir_ + "/clients.secrets"; }
  // Sends SIGTERM and waits (bounded) for the exit status; -1 if it had to be killed.
  int stop();
  // Waits up to timeout_ms for it to exit (after a signal sent with signal()): its exit status;
  // -1 if a signal ended it, or if it was still running and had to be killed.
  int wait_exit(int timeout_ms = 10000);
  bool running() const { return pid_ > 0; }
  // SIGKILL, and reap it.
  void kill9();
  // Starts it again with the same configuration (after kill9 or stop).
  void restart();
  void signal(int sig);
  std::string log() const;

 private:
  void launch();
  std::string dir_, socket_, config_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Runs agentd with these arguments to its end (killed after timeout_ms): its exit status (-1
// if a signal ended it), what it wrote to stdout and to stderr.
struct RunResult {
  int status = -1;
  std::string out, err;
};
RunResult run_agentd(const std::vector<std::string>& args, int timeout_ms = 10000);

// Writes text to path (replacing it), mode 0600: secrets and key files.
void write_private_file(const std::string& path, const std::string& text);

// Waits up to timeout_ms, polling, for pred to hold; whether it did.
bool await(const std::function<bool()>& pred, int timeout_ms = 5000);

// Free UDP ports on loopback for a ring of n daemons.
std::vector<uint16_t> free_udp_ports(size_t n);
// Free TCP ports on loopback.
std::vector<uint16_t> free_tcp_ports(size_t n);
// A cluster key shared by the rings of this test run (made once, removed at exit).
const std::string& test_key_file();
// The [ring] section for daemon `id` of a loopback ring on these ports (ids 1..n), sealed
// with test_key_file() unless extra sets ring.key_file.
std::string ring_section(uint32_t id, const std::vector<uint16_t>& ports,
                         const std::string& extra = "", const std::string& address = "127.0.0.1");

// Timeouts for ring tests that check normal operation: under sanitizers the daemons run many
// times slower, and a configuration change in the middle is not what those tests check.
constexpr const char* kPatientProfile = "token_loss_ms = 2000\nconsensus_timeout_ms = 500\n";

// n daemons d1..dn forming one ring on loopback (ring_extra: more [ring] keys; the default
// is kPatientProfile).
class Cluster {
 public:
  // daemon_extra: appended to every daemon's configuration (after its [ring] section).
  // clients_extra: more [clients] keys for every daemon.
  explicit Cluster(size_t n, const std::string& ring_extra = kPatientProfile,
                   const std::string& address = "127.0.0.1", const std::string& daemon_extra = "",
                   const std::string& clients_extra = "");
  Daemon& operator[](size_t i) { return *daemons_[i]; }
  size_t size() const { return daemons_.size(); }

 private:
  std::vector<std::unique_ptr<Daemon>> daemons_;
};

// Two daemons d1, d2 in a ring on loopback, d1 also on TCP and pausing its clients' input
// early (a 64 KiB ring queue): what a fast sender on d1 wrote can still be in d1's socket when
// the sender disconnects.
std::vector<std::unique_ptr<Daemon>> slow_reading_pair();

// Owning wrappers.
struct ConnDeleter {
  void operator()(agent_conn* c) const { agent_disconnect(c); }
};
using Conn = std::unique_ptr<agent_conn, ConnDeleter>;
struct MessageDeleter {
  void operator()(agent_message* m) const { agent_message_free(m); }
};
using Message = std::unique_ptr<agent_message, MessageDeleter>;

// Connects (asking for membership messages); fails the test if it cannot.
Conn connect(const std::string& daemon, const std::string& name);
// The next message, or nullptr after timeout_ms.
Message receive(agent_conn* c, int timeout_ms = 5000);
// Receives until pred accepts a message (returned) or timeout_ms passes (nullptr).
// Messages that do not match are dropped.
Message receive_until(agent_conn* c, const std::function<bool(const agent_message&)>& pred,
                      int timeout_ms = 5000);
// Members of a membership message, in order.
std::vector<std::string> members(const agent_message& m);
std::string payload(const agent_message& m);
// Counts data messages until a membership message that follows at least one (a sender's
// disconnect comes after its data), or until nothing arrives for 5 s.
size_t count_data_until_membership(agent_conn* c);

}  // namespace agent::testing
