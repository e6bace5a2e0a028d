// agentd: the libagent daemon. See docs/agentd.md.
#include <algorithm>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "agentd/admin_http.h"
#include "agentd/config.h"
#include "agentd/daemon.h"
#include "agentd/log.h"
#include "agentd/systemd_notify.h"
#include "persist/incarnation.h"
#include "persist/state_lock.h"
#include "transport/client_protocol.h"

#ifndef AGENT_VERSION_STRING
#define AGENT_VERSION_STRING "0.0.0"
#endif

namespace {

using namespace agent;

const char* kUsage =
    "Usage: agentd [options]\n"
    "       agentd --check-config FILE [options]\n"
    "       agentd keygen FILE   (or --keygen FILE)\n"
    "The libagent daemon: clients connect to it, join groups and multicast messages.\n"
    "\n"
    "  -c, --config FILE     read settings from a TOML file (see docs/agentd.md)\n"
    "      --check-config FILE\n"
    "                        check FILE (with the options given) and exit: status 0 and a\n"
    "                        one-line summary, or 2 and one line per problem\n"
    "      --keygen FILE     write a new random cluster key to FILE (mode 0600) and exit;\n"
    "                        every daemon of a ring names it in ring.key_file\n"
    "  -n, --name NAME       daemon name (default: the short host name)\n"
    "  -u, --unix PATH       client Unix socket (default /tmp/agentd.sock; \"\" disables)\n"
    "  -t, --tcp ADDR        client TCP endpoint host:port, [v6]:port or port\n"
    "                        (default 127.0.0.1:4803; \"off\" disables); it opens with\n"
    "                        clients.secrets_file (TCP clients authenticate) or\n"
    "                        clients.tcp_auth = \"none\" in the config file\n"
    "  -s, --state-dir DIR   where the daemon keeps its identity, locked while it runs\n"
    "                        (default /tmp/agentd-state/NAME)\n"
    "  -l, --log-level LVL   error, warn, info or debug (default info)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Command-line options override the config file. SIGTERM, SIGINT, SIGQUIT, SIGUSR1 or\n"
    "SIGUSR2 stop the daemon cleanly; SIGHUP reloads the config file (log_level, the ring's\n"
    "key files and the client secrets file take effect, other changes at the next start).\n";

// The signals that stop the daemon cleanly (it leaves the ring, tells its clients, removes its
// socket): every catchable one whose default would end it, but for SIGHUP (a reload) and those
// that report a fault or serve a debugger or profiler.
struct SignalName {
  int sig;
  const char* name;
};
const SignalName kStopSignals[] = {
    {SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"},     {SIGQUIT, "SIGQUIT"}, {SIGUSR1, "SIGUSR1"},
    {SIGUSR2, "SIGUSR2"}, {SIGALRM, "SIGALRM"},   {SIGVTALRM, "SIGVTALRM"},
    {SIGXCPU, "SIGXCPU"}, {SIGPWR, "SIGPWR"},     {SIGIO, "SIGIO"}};

const char* signal_name(int sig) {
  for (auto& s : kStopSignals)
    if (s.sig == sig) return s.name;
  return sig == SIGHUP ? "SIGHUP" : "a signal";
}

// What the command line asks for.
struct Options {
  std::string config_path, name, unix_path, tcp, state_dir, level;
  bool have_unix = false, have_tcp = false, check_only = false;
};

// The configuration from the defaults, the file and the command line, in that order: "" or
// one line per problem.
std::string build_config(const Options& o, daemon::Config& cfg) {
  cfg = daemon::Config{};
  cfg.name = daemon::default_daemon_name();
  if (!o.config_path.empty()) {
    auto err = daemon::load_config_file(o.config_path, cfg);
    if (!err.empty()) return err;
  }
  if (!o.name.empty()) {
    cfg.name = o.name;
    cfg.origin["daemon.name"] = "--name";
  }
  if (o.have_unix) {
    cfg.unix_socket = o.unix_path;
    cfg.origin["clients.unix_socket"] = "--unix";
  }
  if (!o.state_dir.empty()) {
    cfg.state_dir = o.state_dir;
    cfg.origin["daemon.state_dir"] = "--state-dir";
  }
  if (o.have_tcp) {
    cfg.origin["clients.tcp"] = "--tcp";
    if (auto err = daemon::parse_endpoint(o.tcp, cfg.tcp); !err.empty()) return "--tcp: " + err;
  }
  if (!o.level.empty() && !log::parse_level(o.level, cfg.log_level))
    return "--log-level " + o.level + ": must be error, warn, info or debug";
  if (auto err = daemon::validate(cfg); !err.empty()) return err;
  if (auto err = daemon::load_ring_keys(cfg); !err.empty()) return err;
  if (auto err = daemon::load_bridge_key(cfg); !err.empty()) return err;
  if (auto err = daemon::load_client_secrets(cfg); !err.empty()) return err;
  if (cfg.state_dir.empty()) cfg.state_dir = daemon::default_state_dir(cfg.name);
  return {};
}

// --check-config: what the daemon would run with, in one line.
std::string summary(const daemon::Config& cfg) {
  std::string s = "daemon " + cfg.name;
  if (cfg.ring.daemons.empty()) s += ", a ring of one";
  else s += ", ring id " + std::to_string(cfg.ring.id) + " of " +
            std::to_string(cfg.ring.daemons.size()) + " daemons";
  if (daemon::ring_sealed(cfg))
    s += cfg.ring.encrypt ? ", ring authenticated and encrypted" : ", ring authenticated";
  else if (cfg.ring.daemons.size() > 1)
    s += ", ring NOT authenticated";
  s += ", clients on ";
  if (!cfg.unix_socket.empty()) s += cfg.unix_socket;
  if (daemon::tcp_listening(cfg))
    s += std::string(cfg.unix_socket.empty() ? "" : " and ") + "TCP " + cfg.tcp.host + ":" +
         std::to_string(cfg.tcp.port) +
         (cfg.tcp_secrets ? " (authenticated, " + std::to_string(cfg.tcp_secrets->by_name.size()) +
                                " names)"
                          : std::string(" (NOT authenticated)"));
  else if (!cfg.tcp.host.empty())
    s += " (TCP off: no clients.secrets_file)";
  return s + ", state in " + cfg.state_dir;
}

// Prints each problem as "agentd: <problem>" (and the excerpt of a syntax error as it is).
void print_problems(const std::string& text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    std::fprintf(stderr, "%s%s\n", line.rfind(' ', 0) == 0 ? "" : "agentd: ", line.c_str());
}

// SIGHUP: reads the file again. What can change while the daemon runs (the log level) takes
// effect; other changes are named and wait for a restart; a file with problems changes nothing.
void reload(const Options& o, daemon::Config& running,
            const std::function<void(const std::vector<ringseal::Key>&)>& rekey,
            const std::function<void(const daemon::SecretsPtr&)>& resecret) {
  if (o.config_path.empty()) {
    AGENT_LOG(kInfo, "received SIGHUP: no configuration file to reload (started without --config)");
    return;
  }
  daemon::Config fresh;
  if (auto err = build_config(o, fresh); !err.empty()) {
    // One record per problem (the log is one line per record).
    AGENT_LOG(kWarn, "received SIGHUP: " << o.config_path
                         << " has problems; keeping the running configuration");
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) AGENT_LOG(kWarn, "reload: " << line);
    return;
  }
  auto changed = daemon::changed_keys(running, fresh);
  if (changed.empty()) {
    AGENT_LOG(kInfo, "received SIGHUP: reloaded " << o.config_path << ", nothing changed");
    return;
  }
  std::string later, now;
  bool level_changed = false;
  // New key files are taken while the ring runs (rotation, docs/security.md) as long as it
  // stays sealed; turning the keys on or off needs a restart.
  bool keys_live = daemon::ring_sealed(running) && daemon::ring_sealed(fresh);
  bool rekeyed = false;
  // The secrets file is read again while TCP clients authenticate against one before and
  // after; opening or closing the TCP listener, or changing tcp_auth, needs a restart.
  bool secrets_live = running.tcp_secrets && fresh.tcp_secrets && daemon::tcp_listening(running) &&
                      running.tcp_auth == fresh.tcp_auth;
  for (auto& key : changed) {
    if (key == "daemon.log_level") {
      running.log_level = fresh.log_level;
      log::set_level(fresh.log_level);
      level_changed = true;
    } else if ((key == "ring.key_file" || key == "ring.accept_key_file") && keys_live) {
      if (!rekeyed) {
        running.ring.key_file = fresh.ring.key_file;
        running.ring.accept_key_file = fresh.ring.accept_key_file;
        running.ring_keys = fresh.ring_keys;
        rekey(running.ring_keys);
        rekeyed = true;
      }
      now += (now.empty() ? "" : ", ") + key;
    } else if (key == "clients.secrets_file" && secrets_live) {
      running.secrets_file = fresh.secrets_file;
      running.tcp_secrets = fresh.tcp_secrets;
      resecret(running.tcp_secrets);
      AGENT_LOG(kInfo, "client secrets reloaded from " << running.secrets_file << ": "
                           << running.tcp_secrets->by_name.size()
                           << " names; connected clients keep theirs");
      now += (now.empty() ? "" : ", ") + key;
    } else {
      later += (later.empty() ? "" : ", ") + key;
    }
  }
  if (rekeyed) {
    std::ostringstream ids;
    ids << std::hex;
    for (size_t i = 0; i < running.ring_keys.size(); ++i)
      ids << (i ? ", also accepting " : "") << ringseal::key_id(running.ring_keys[i]);
    AGENT_LOG(kInfo, "ring keys reloaded (" << now << "): sealing with key id " << ids.str());
  }
  AGENT_LOG(kInfo, "received SIGHUP: reloaded " << o.config_path
                       << (level_changed ? "; daemon.log_level takes effect now" : "")
                       << (!now.empty() ? "; " + now + " take effect now" : std::string())
                       << (later.empty() ? std::string()
                                         : "; changed, taking effect at the next start: " + later));
}

// Creates the listening Unix socket. A stale socket file (nobody accepting) is replaced; a live
// one means another daemon runs there, which is an error.
int listen_unix(const std::string& path, uint32_t mode, const std::string& group,
                std::string& err) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  struct stat sb;
  if (::lstat(path.c_str(), &sb) == 0) {
    if (!S_ISSOCK(sb.st_mode)) {
      err = path + " exists and is not a socket";
      return -1;
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM, 0);
    bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (live) {
      err = "another daemon is listening on " + path;
      return -1;
    }
    ::unlink(path.c_str());
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 128) != 0) {
    err = "cannot listen on " + path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  // Who may connect: the socket file's permissions (clients.unix_mode, unix_group).
  if (!group.empty()) {
    const ::group* gr = ::getgrnam(group.c_str());
    if (!gr || ::chown(path.c_str(), static_cast<uid_t>(-1), gr->gr_gid) != 0) {
      err = "cannot give " + path + " to group " + group + ": " +
            (gr ? std::strerror(errno) : "no such group");
      ::close(fd);
      return -1;
    }
  }
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    err = "cannot set the permissions of " + path + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

// Creates the listening TCP socket for clients (IPv4 or IPv6 literal or host name).
int listen_tcp(const daemon::Endpoint& ep, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    err = "cannot resolve " + ep.host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
    err = "cannot listen on TCP " + ep.host + ":" + port + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

void apply_priority(daemon::Config::Priority p) {
  using P = daemon::Config::Priority;
  if (p == P::kNormal) return;
  if (p == P::kRealtime) {
    sched_param sp{};
    sp.sched_priority = sched_get_priority_min(SCHED_RR) + 1;
    if (::sched_setscheduler(0, SCHED_RR, &sp) == 0) {
      AGENT_LOG(kInfo, "running with real-time priority (SCHED_RR " << sp.sched_priority << ")");
      return;
    }
    AGENT_LOG(kWarn, "daemon.priority = realtime: " << std::strerror(errno)
                                                    << " (needs CAP_SYS_NICE); trying nice -10");
  }
  errno = 0;
  if (::setpriority(PRIO_PROCESS, 0, -10) == 0) {
    AGENT_LOG(kInfo, "running at nice -10 (daemon.priority)");
  } else {
    AGENT_LOG(kInfo, "daemon.priority: cannot raise the priority (" << std::strerror(errno)
                         << "; needs CAP_SYS_NICE): running at normal priority");
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Under load the daemon allocates and frees bursts of packet- and message-sized blocks and
  // grows client write buffers to megabytes. With glibc's defaults the freed memory goes back
  // to the kernel (heap trimming; one mmap per large buffer) and the next burst page-faults it
  // in again, which the profile showed as the largest kernel cost. Keep it: RSS stays near its
  // peak instead.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  // "agentd keygen FILE": the subcommand spelling of --keygen.
  if (argc >= 2 && std::strcmp(argv[1], "keygen") == 0) {
    if (argc != 3) {
      std::fputs("usage: agentd keygen FILE\n", stderr);
      return 2;
    }
    if (auto err = ringseal::generate_key_file(argv[2]); !err.empty()) {
      std::fprintf(stderr, "agentd: %s\n", err.c_str());
      return 1;
    }
    std::printf("%s: a new cluster key (mode 0600); copy it to every daemon of the ring and set "
                "ring.key_file\n", argv[2]);
    return 0;
  }
  Options o;
  enum { kCheckConfig = 1000, kKeygen };
  static const option opts[] = {
      {"config", required_argument, nullptr, 'c'}, {"name", required_argument, nullptr, 'n'},
      {"unix", required_argument, nullptr, 'u'},   {"tcp", required_argument, nullptr, 't'},
      {"state-dir", required_argument, nullptr, 's'},
      {"log-level", required_argument, nullptr, 'l'}, {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {"check-config", required_argument, nullptr, kCheckConfig},
      {"keygen", required_argument, nullptr, kKeygen}, {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long(argc, argv, "c:n:u:t:s:l:hV", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': o.config_path = optarg; break;
      case kCheckConfig: o.config_path = optarg; o.check_only = true; break;
      case kKeygen:
        if (auto err = ringseal::generate_key_file(optarg); !err.empty()) {
          std::fprintf(stderr, "agentd: %s\n", err.c_str());
          return 1;
        }
        std::printf("%s: a new cluster key (mode 0600); copy it to every daemon of the ring and "
                    "set ring.key_file\n", optarg);
        return 0;
      case 'n': o.name = optarg; break;
      case 'u': o.unix_path = optarg; o.have_unix = true; break;
      case 't': o.tcp = optarg; o.have_tcp = true; break;
      case 's': o.state_dir = optarg; break;
      case 'l': o.level = optarg; break;
      case 'h': std::fputs(kUsage, stdout); return 0;
      case 'V': std::printf("agentd %s (client protocol %u, CAF %d)\n", AGENT_VERSION_STRING,
                            proto::kVersion, CAF_VERSION); return 0;
      default: std::fputs(kUsage, stderr); return 2;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "agentd: unexpected argument '%s'\n%s", argv[optind], kUsage);
    return 2;
  }
  daemon::Config cfg;
  if (auto err = build_config(o, cfg); !err.empty()) {
    print_problems(err);
    if (o.check_only) std::fprintf(stderr, "agentd: %s: not valid\n", o.config_path.c_str());
    return 2;
  }
  if (o.check_only) {
    std::printf("%s: ok: %s\n", o.config_path.c_str(), summary(cfg).c_str());
    return 0;
  }
  log::set_level(cfg.log_level);

  // Signals are taken synchronously by the main thread; every other thread inherits the mask.
  // From here on a stop signal waits for the loop below, which ends the daemon cleanly.
  sigset_t signals;
  sigemptyset(&signals);
  for (auto& s : kStopSignals) sigaddset(&signals, s.sig);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // Held until the process ends: a second daemon on this state directory is refused.
  persist::StateLock state_lock;
  if (auto err = state_lock.acquire(cfg.state_dir); !err.empty()) {
    AGENT_LOG(kError, err);
    return 1;
  }
  auto inc = persist::next_incarnation(cfg.state_dir);
  if (!inc.error.empty()) {
    AGENT_LOG(kError, inc.error);
    return 1;
  }
  cfg.incarnation = inc.incarnation;
  auto ring_seq = persist::load_ring_seq(cfg.state_dir);
  if (!ring_seq.error.empty()) {
    AGENT_LOG(kError, ring_seq.error);
    return 1;
  }
  cfg.ring_seq_floor = ring_seq.seq;
  auto epoch = persist::next_ring_epoch(
      cfg.state_dir, static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count()));
  if (!epoch.error.empty()) {
    AGENT_LOG(kError, epoch.error);
    return 1;
  }
  cfg.ring_epoch = epoch.epoch;

  std::shared_ptr<persist::MessageLog> message_log;
  if (cfg.persist.enabled()) {
    if (cfg.persist.dir.empty()) cfg.persist.dir = cfg.state_dir + "/log";
    std::string err;
    message_log = persist::MessageLog::open(cfg.persist.dir, err);
    if (!message_log) {
      AGENT_LOG(kError, err);
      return 1;
    }
    AGENT_LOG(kInfo, "message log " << cfg.persist.dir << ": " << message_log->groups().size()
                                    << " groups, durability "
                                    << daemon::durability_name(cfg.persist.durability));
    // The log keys messages by position, and a position must come after every one it holds:
    // rings this daemon forms or joins from now on are newer than any ring it logged in. (The
    // stored floor only covers rings it formed; one it joined may have a higher sequence
    // than this incarnation would start at, and the log would skip what follows as repeats.)
    cfg.ring_seq_floor = std::max(cfg.ring_seq_floor, message_log->last_ring_seq());
  }

  // TCP first: once the Unix socket answers, both listeners are up.
  int tcp_fd = -1;
  std::string tcp_where = cfg.tcp.host + ":" + std::to_string(cfg.tcp.port);
  if (daemon::tcp_listening(cfg)) {
    std::string err;
    tcp_fd = listen_tcp(cfg.tcp, err);
    if (tcp_fd < 0) {
      AGENT_LOG(kError, err);
      return 1;
    }
    if (cfg.tcp_auth == daemon::Config::TcpAuth::kNone) {
      AGENT_LOG(kWarn, "listening for clients on TCP " << tcp_where
                           << ", NOT authenticated (clients.tcp_auth = \"none\"): whoever can "
                              "reach it may connect, known by address only");
    } else {
      AGENT_LOG(kInfo, "listening for clients on TCP " << tcp_where << ", authenticated by "
                                                       << cfg.secrets_file << " ("
                                                       << cfg.tcp_secrets->by_name.size()
                                                       << " names)");
      if (cfg.tcp_secrets->by_name.empty())
        AGENT_LOG(kWarn, "clients.secrets_file " << cfg.secrets_file
                             << " names nobody: no TCP client can authenticate");
    }
  } else if (!cfg.tcp.host.empty()) {
    // Said outright, louder where clients.tcp was set on purpose.
    std::string why = "not listening for clients on TCP " + tcp_where +
                      ": TCP clients must authenticate (clients.tcp_auth = \"secret\") and no "
                      "clients.secrets_file is set; set clients.secrets_file = FILE (lines 'NAME "
                      "SECRET', mode 0600) to let them in, or clients.tcp_auth = \"none\" to "
                      "listen without authentication (docs/security.md)";
    if (cfg.origin.count("clients.tcp")) AGENT_LOG(kWarn, why);
    else AGENT_LOG(kInfo, why);
  }

  int unix_fd = -1;
  if (!cfg.unix_socket.empty()) {
    std::string err;
    unix_fd = listen_unix(cfg.unix_socket, cfg.unix_mode, cfg.unix_group, err);
    if (unix_fd < 0) {
      AGENT_LOG(kError, err);
      return 1;
    }
    AGENT_LOG(kInfo, "listening for clients on " << cfg.unix_socket);
  }
  // The admin endpoint (/metrics, /status, the status page). Set on purpose, an address it
  // cannot listen on stops the start; the default (127.0.0.1:4804) only warns, so that several
  // daemons on one host start without configuring it.
  cfg.daemon_uid = static_cast<uint32_t>(::geteuid());
  daemon::AdminHttp admin_http;
  std::shared_ptr<daemon::AdminPublished> published;
  if (!cfg.admin_http.host.empty()) {
    published = std::make_shared<daemon::AdminPublished>();
    if (auto err = admin_http.start(cfg.admin_http, cfg.admin_http_threads, published); !err.empty()) {
      published.reset();
      if (cfg.origin.count("admin.http")) {
        AGENT_LOG(kError, err << " (set at " << cfg.origin["admin.http"] << ")");
        return 1;
      }
      AGENT_LOG(kWarn, err << "; the daemon runs without its admin HTTP endpoint (set "
                              "admin.http to another address, or \"off\")");
    } else {
      AGENT_LOG(kInfo, "admin endpoint on http://" << cfg.admin_http.host << ":"
                                                   << cfg.admin_http.port
                                                   << "/ (/metrics, /status)");
    }
  }
  // Before CAF starts its threads: they inherit the priority.
  apply_priority(cfg.priority);
  int rc = 0;
  {
    caf::actor_system_config caf_cfg;
    caf_cfg.load<caf::io::middleman>();
    caf_cfg.set("scheduler.max-threads", size_t{2});
    // The broker runs in the I/O multiplexer's thread; the scheduler's workers are idle nearly
    // always. Work sharing lets them sleep on a condition variable instead of polling.
    caf_cfg.set("scheduler.policy", caf::atom("sharing"));
    caf::actor_system system{caf_cfg};
    AGENT_LOG(kInfo, "agentd " << AGENT_VERSION_STRING << " daemon " << cfg.name
                               << " incarnation " << inc.incarnation << " starting (state in "
                               << cfg.state_dir << ")");
    auto d = system.middleman().spawn_broker(daemon::daemon_actor, cfg, unix_fd, tcp_fd,
                                             std::move(message_log), published);
    caf::scoped_actor self{system};
    self->monitor(d);
    bool running = true;
    bool stopping = false;
    while (running) {
      timespec tick{0, 100 * 1000 * 1000};
      int sig = sigtimedwait(&signals, nullptr, &tick);
      if (sig == SIGHUP) {
        reload(o, cfg, [&](const std::vector<ringseal::Key>& keys) {
          std::string bytes;
          for (auto& k : keys) bytes.append(reinterpret_cast<const char*>(k.data()), k.size());
          self->send(d, daemon::rekey_atom::value, bytes);
        }, [&](const daemon::SecretsPtr& secrets) {
          self->send(d, daemon::secrets_atom::value, secrets);
        });
      } else if (sig > 0 && !stopping) {
        AGENT_LOG(kInfo, "received " << signal_name(sig) << ": stopping");
        daemon::systemd::notify_stopping(std::string("stopping (") + signal_name(sig) + ")");
        self->send(d, daemon::shutdown_atom::value);
        stopping = true;
      } else if (sig > 0) {
        AGENT_LOG(kInfo, "received " << signal_name(sig) << " while stopping");
      }
      self->receive([&](const caf::down_msg&) { running = false; },
                    caf::after(std::chrono::seconds(0)) >> [] {});
    }
    if (!stopping) {
      AGENT_LOG(kError, "the daemon actor stopped on its own; exiting");
      rc = 1;
    }
  }
  if (!cfg.unix_socket.empty()) ::unlink(cfg.unix_socket.c_str());
  AGENT_LOG(kInfo, "stopped");
  return rc;
}
