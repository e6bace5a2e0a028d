// A wide-area link for the bridge benchmark (bench/wan.sh): relays TCP connections from a port
// of loopback to another, each direction limited to a rate and delayed by a one-way latency,
// with a bounded buffer (the link's bandwidth-delay product and 256 KiB more), so that TCP
// sees what a WAN gives it. This kernel has no netem; the relay needs none.
//   wan-relay --listen PORT --to PORT [--rate-mbit R] [--delay-ms D]
// SIGUSR1 cuts the link (drops every connection, refuses new ones), SIGUSR2 heals it; on heal
// the relay prints when the first bytes cross again. SIGTERM ends it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t g_cut = 0, g_heal = 0, g_stop = 0;

uint64_t now_us() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

struct Chunk {
  uint64_t arrive_us;
  std::string bytes;
  size_t off = 0;
};

// One direction of one connection.
struct Lane {
  int from = -1, to = -1;
  std::deque<Chunk> queue;
  size_t queued = 0;
  uint64_t wire_free_us = 0;
  bool eof = false;
};

struct Options {
  uint16_t listen = 0, to = 0;
  double rate_bps = 100e6;
  uint64_t delay_us = 25000;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--listen") o.listen = static_cast<uint16_t>(std::atoi(argv[i + 1]));
    else if (a == "--to") o.to = static_cast<uint16_t>(std::atoi(argv[i + 1]));
    else if (a == "--rate-mbit") o.rate_bps = std::atof(argv[i + 1]) * 1e6;
    else if (a == "--delay-ms") o.delay_us = static_cast<uint64_t>(std::atof(argv[i + 1]) * 1000);
    else {
      std::fprintf(stderr, "usage: wan-relay --listen PORT --to PORT [--rate-mbit R] [--delay-ms D]\n");
      return 2;
    }
  }
  if (!o.listen || !o.to) {
    std::fprintf(stderr, "usage: wan-relay --listen PORT --to PORT [--rate-mbit R] [--delay-ms D]\n");
    return 2;
  }
  signal(SIGUSR1, [](int) { g_cut = 1; });
  signal(SIGUSR2, [](int) { g_heal = 1; });
  signal(SIGTERM, [](int) { g_stop = 1; });
  signal(SIGINT, [](int) { g_stop = 1; });
  signal(SIGPIPE, SIG_IGN);
  const size_t limit = static_cast<size_t>(o.rate_bps / 8 * (o.delay_us / 1e6)) + (256u << 10);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(o.listen);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 8) != 0) {
    std::perror("wan-relay: listen");
    return 1;
  }
  std::vector<Lane> lanes;  // pairs: 2k (client->server), 2k+1 (server->client)
  bool cut = false;
  uint64_t healed_at = 0;
  std::vector<char> buf(64u << 10);
  auto close_all = [&] {
    for (size_t i = 0; i < lanes.size(); i += 2) {
      ::close(lanes[i].from);
      ::close(lanes[i].to);
    }
    lanes.clear();
  };
  while (!g_stop) {
    if (g_cut) {
      g_cut = 0;
      cut = true;
      close_all();
      std::printf("cut\n");
      std::fflush(stdout);
    }
    if (g_heal) {
      g_heal = 0;
      cut = false;
      healed_at = now_us();
      std::printf("healed\n");
      std::fflush(stdout);
    }
    uint64_t now = now_us();
    int timeout_ms = 50;
    std::vector<pollfd> fds{{lfd, POLLIN, 0}};
    for (auto& l : lanes) {
      short ev = 0;
      if (!l.eof && l.queued < limit) ev |= POLLIN;
      fds.push_back({l.from, ev, 0});
      if (!l.queue.empty()) {
        uint64_t at = l.queue.front().arrive_us;
        if (at <= now) fds.push_back({l.to, POLLOUT, 0});
        else timeout_ms = std::min<int>(timeout_ms, static_cast<int>((at - now) / 1000) + 1);
      }
    }
    ::poll(fds.data(), fds.size(), timeout_ms);
    now = now_us();
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
      if (c >= 0 && cut) {
        ::close(c);
      } else if (c >= 0) {
        int t = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in b = a;
        b.sin_port = htons(o.to);
        if (::connect(t, reinterpret_cast<sockaddr*>(&b), sizeof b) != 0) {
          ::close(c);
          ::close(t);
        } else {
          ::setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          int fl = 1;
          ::ioctl(t, FIONBIO, &fl);
          Lane up, down;
          up.from = c, up.to = t, down.from = t, down.to = c;
          lanes.push_back(std::move(up));
          lanes.push_back(std::move(down));
        }
      }
    }
    bool dead = false;
    for (auto& l : lanes) {
      // Reads what the lane's buffer has room for; each chunk takes the wire in turn.
      if (!l.eof && l.queued < limit) {
        ssize_t n = ::read(l.from, buf.data(), std::min(buf.size(), limit - l.queued));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          l.eof = true;
          dead = true;
        } else if (n > 0) {
          uint64_t start = std::max(now, l.wire_free_us);
          l.wire_free_us = start + static_cast<uint64_t>(n * 8 / o.rate_bps * 1e6);
          l.queue.push_back(Chunk{l.wire_free_us + o.delay_us, std::string(buf.data(), n)});
          l.queued += static_cast<size_t>(n);
        }
      }
      while (!l.queue.empty() && l.queue.front().arrive_us <= now) {
        Chunk& c = l.queue.front();
        ssize_t w = ::write(l.to, c.bytes.data() + c.off, c.bytes.size() - c.off);
        if (w <= 0) break;
        if (healed_at != 0) {
          std::printf("first bytes %.1f ms after the heal\n", (now - healed_at) / 1000.0);
          std::fflush(stdout);
          healed_at = 0;
        }
        c.off += static_cast<size_t>(w);
        if (c.off == c.bytes.size()) {
          l.queued -= c.bytes.size();
          l.queue.pop_front();
        }
      }
    }
    if (dead) {
      // Either side closed: the connection ends (the bridge reconnects).
      for (size_t i = 0; i < lanes.size();) {
        if (lanes[i].eof || lanes[i + 1].eof) {
          ::close(lanes[i].from);
          ::close(lanes[i].to);
          lanes.erase(lanes.begin() + static_cast<long>(i), lanes.begin() + static_cast<long>(i) + 2);
        } else {
          i += 2;
        }
      }
    }
  }
  close_all();
  return 0;
}
