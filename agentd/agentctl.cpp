// agentctl: asks a running agentd what it knows (status, members, groups, clients, counters,
// ring), watches it, and takes operators' actions (disconnect a client, leave the ring). It
// speaks the client protocol's admin verb over the daemon's Unix socket
// (docs/client-protocol.md, "Admin"); the daemon renders the answer, as text or JSON.
#include <getopt.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "transport/client_protocol.h"

#ifndef AGENT_VERSION_STRING
#define AGENT_VERSION_STRING "0.0.0"
#endif

namespace {

using namespace agent;

const char* kUsage =
    "Usage: agentctl [options] COMMAND [ARGUMENT]\n"
    "Shows what a running agentd knows, and acts on it, over its Unix socket.\n"
    "\n"
    "Commands:\n"
    "  status              this daemon: ring id and state, the daemons and their addresses,\n"
    "                      uptime, incarnation\n"
    "  members             every group with its members\n"
    "  groups              every group with its member count\n"
    "  clients             this daemon's clients: queue depth, groups, messages by service\n"
    "  counters            messages and bytes per service, packets, retransmits, rates,\n"
    "                      configuration changes, bad datagrams, slow-client drops\n"
    "  ring                every configured daemon as this one knows it, and the latest\n"
    "                      configuration changes\n"
    "  watch               status and counters, refreshed every --interval seconds\n"
    "  disconnect NAME     disconnect this daemon's client NAME (or #NAME#DAEMON)   [operator]\n"
    "  leave               make the daemon leave the ring and stop                   [operator]\n"
    "Operators are root, the daemon's own user and the principals of admin.operators.\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH   the daemon's Unix socket (default /tmp/agentd.sock, or $AGENTD_SOCKET)\n"
    "  -j, --json          print JSON (for scripts) instead of text\n"
    "  -i, --interval SEC  watch: seconds between refreshes (default 1)\n"
    "  -n, --count N       watch: stop after N refreshes (default: until interrupted)\n"
    "  -t, --timeout MS    how long to wait for the daemon (default 5000)\n"
    "  -h, --help          show this help and exit\n"
    "  -V, --version       show the version and exit\n"
    "\n"
    "Exit status: 0 done, 1 the daemon refused the request, 2 bad usage, 3 no daemon to ask.\n";

// A connection to the daemon, blocking with a deadline per answer.
class Session {
 public:
  explicit Session(int timeout_ms) : timeout_ms_(timeout_ms), reader_(proto::kMaxAdminReplyBytes + 65536) {}
  ~Session() {
    if (fd_ >= 0) ::close(fd_);
  }

  // "" or why not.
  std::string connect(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return "socket path too long: " + path;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return "cannot connect to " + path + ": " + std::strerror(errno) +
             " (is agentd running? -s names another socket)";
    std::string out;
    proto::encode(out, proto::Hello{proto::kMagic, proto::kVersion, proto::kHelloGenerateName, ""});
    if (!write_all(out)) return "cannot write to " + path + ": " + std::strerror(errno);
    proto::Frame f;
    if (auto err = next(f); !err.empty()) return err;
    if (f.verb == proto::Verb::kWelcome) return {};
    if (f.verb == proto::Verb::kError) {
      auto e = proto::decode_error(f.body);
      return "the daemon refused the connection: " + (e ? e->text : std::string("(undecodable)"));
    }
    return "unexpected answer to hello (verb " + std::to_string(int(f.verb)) + ")";
  }

  // The reply's text; refused: 1 and why in err; failed: 3.
  int ask(const proto::Admin& req, std::string& text) {
    std::string out;
    proto::encode(out, req);
    if (!write_all(out)) {
      text = std::string("cannot write to the daemon: ") + std::strerror(errno);
      return 3;
    }
    for (;;) {
      proto::Frame f;
      if (auto err = next(f); !err.empty()) {
        text = err;
        return 3;
      }
      if (f.verb == proto::Verb::kAdminReply) {
        auto r = proto::decode_admin_reply(f.body);
        if (!r) {
          text = "the daemon's reply does not decode";
          return 3;
        }
        text = std::move(r->text);
        return 0;
      }
      if (f.verb == proto::Verb::kError) {
        auto e = proto::decode_error(f.body);
        if (!e) {
          text = "the daemon's error does not decode";
          return 3;
        }
        if (e->code == proto::ErrorCode::kUnknownVerb)
          text = "this agentd does not know the admin verb (an older version?): " + e->text;
        else
          text = std::string(proto::error_name(e->code)) + ": " + e->text;
        return 1;
      }
      // Anything else (none is expected: this session joins nothing) is skipped.
    }
  }

 private:
  bool write_all(const std::string& b) {
    size_t off = 0;
    while (off < b.size()) {
      ssize_t n = ::send(fd_, b.data() + off, b.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // The next frame, waiting at most timeout_ms_; "" or why not.
  std::string next(proto::Frame& f) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
    for (;;) {
      auto st = reader_.next(f);
      if (st == proto::FrameReader::Status::kFrame) return {};
      if (st == proto::FrameReader::Status::kTooLarge) return "the daemon sent a frame too large";
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return "no answer from the daemon within " + std::to_string(timeout_ms_) + " ms";
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return "the daemon closed the connection";
      if (n < 0) return std::string("reading from the daemon: ") + std::strerror(errno);
      reader_.feed(buf, static_cast<size_t>(n));
    }
  }

  int fd_ = -1;
  int timeout_ms_;
  proto::FrameReader reader_;
};

bool parse_number(const char* s, double& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s, &end);
  return errno == 0 && end != s && *end == '\0' && out >= 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket = std::getenv("AGENTD_SOCKET") ? std::getenv("AGENTD_SOCKET") : "/tmp/agentd.sock";
  bool json = false;
  double interval = 1, count = 0, timeout = 5000;
  static const option longopts[] = {{"socket", required_argument, nullptr, 's'},
                                     {"json", no_argument, nullptr, 'j'},
                                     {"interval", required_argument, nullptr, 'i'},
                                     {"count", required_argument, nullptr, 'n'},
                                     {"timeout", required_argument, nullptr, 't'},
                                     {"help", no_argument, nullptr, 'h'},
                                     {"version", no_argument, nullptr, 'V'},
                                     {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "s:ji:n:t:hV", longopts, nullptr)) != -1) {
    switch (c) {
      case 's': socket = optarg; break;
      case 'j': json = true; break;
      case 'i':
        if (!parse_number(optarg, interval) || interval < 0.1 || interval > 3600) {
          std::fprintf(stderr, "agentctl: --interval %s: must be 0.1..3600 seconds\n", optarg);
          return 2;
        }
        break;
      case 'n':
        if (!parse_number(optarg, count) || count < 1 || count > 1e9) {
          std::fprintf(stderr, "agentctl: --count %s: must be a positive number\n", optarg);
          return 2;
        }
        break;
      case 't':
        if (!parse_number(optarg, timeout) || timeout < 1 || timeout > 3600000) {
          std::fprintf(stderr, "agentctl: --timeout %s: must be 1..3600000 ms\n", optarg);
          return 2;
        }
        break;
      case 'h': std::fputs(kUsage, stdout); return 0;
      case 'V': std::printf("agentctl %s\n", AGENT_VERSION_STRING); return 0;
      default: std::fputs(kUsage, stderr); return 2;
    }
  }
  if (optind >= argc) {
    std::fputs("agentctl: which command? (agentctl --help lists them)\n", stderr);
    return 2;
  }
  proto::Admin req;
  req.command = argv[optind++];
  req.flags = json ? proto::kAdminJson : 0;
  if (req.command == "disconnect") {
    if (optind >= argc) {
      std::fputs("agentctl: disconnect needs a client's name (agentctl clients lists them)\n", stderr);
      return 2;
    }
    req.argument = argv[optind++];
    if (req.argument.size() > 255) {
      std::fputs("agentctl: that name is longer than any private group\n", stderr);
      return 2;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "agentctl: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  const char* known[] = {"status", "members", "groups", "clients", "counters", "ring", "watch",
                         "disconnect", "leave"};
  bool ok = false;
  for (auto* k : known) ok |= req.command == k;
  if (!ok) {
    std::fprintf(stderr, "agentctl: unknown command '%s' (agentctl --help lists them)\n",
                 req.command.c_str());
    return 2;
  }

  Session s(static_cast<int>(timeout));
  if (auto err = s.connect(socket); !err.empty()) {
    std::fprintf(stderr, "agentctl: %s\n", err.c_str());
    return 3;
  }
  bool watch = req.command == "watch";
  bool tty = ::isatty(STDOUT_FILENO);
  for (uint64_t round = 0;; ++round) {
    std::string text;
    int rc = s.ask(req, text);
    if (rc != 0) {
      std::fprintf(stderr, "agentctl: %s: %s\n", req.command.c_str(), text.c_str());
      return rc;
    }
    if (watch && tty) std::fputs("\033[H\033[2J", stdout);  // a refreshing view
    else if (watch && round > 0) std::fputs(json ? "" : "\n", stdout);
    std::fputs(text.c_str(), stdout);
    if (json || text.empty() || text.back() != '\n') std::fputc('\n', stdout);
    std::fflush(stdout);
    if (!watch || (count > 0 && round + 1 >= static_cast<uint64_t>(count))) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(interval * 1000)));
  }
}
