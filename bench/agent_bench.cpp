// agent-bench: the client side of the LAN benchmark (bench/lan.sh starts the daemons).
//
// Connects one receiver to every daemon and the senders round-robin over the daemons, all in
// this process (one thread per connection). Receivers join the group; senders multicast to it
// without joining (unless --senders-receive), so the receivers that count are not also the
// senders. Each payload carries the sender's index, a sequence number and the send time
// (CLOCK_MONOTONIC: every client runs on this host), so receivers measure send-to-delivery
// latency, check FIFO per sender, and fold the order they saw into a hash that must be the same
// at every receiver for AGREED and SAFE.
//
// A sender keeps at most --window messages beyond what the slowest receiver has of its own
// messages (shared counters in this process; no extra traffic through the daemons), or sends at
// a fixed --rate. The run ends when every receiver has every message sent; msgs_per_s is that
// total over the time from the first send to the slowest receiver's last delivery.
// Prints a progress line to stderr every second and one RESULT line to stdout.
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent.h"
#include "latency_histogram.h"
#include "proc_sample.h"

namespace {

using agent::bench::LatencyHistogram;

constexpr uint32_t kMagic = 0x41424e43;  // "ABNC"
constexpr size_t kHeaderBytes = 24;      // magic, sender, sequence, send time
constexpr int kReceivePollMs = 100;
// What the default window lets all senders have queued for one receiver at most: a quarter of
// agentd's default clients.client_queue_bytes.
constexpr uint64_t kInFlightBytes = 16u << 20;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

void sleep_ns(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000u), static_cast<long>(ns % 1'000'000'000u)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void futex_wait(std::atomic<uint32_t>& word, uint32_t seen, uint64_t timeout_ns) {
  timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000u),
              static_cast<long>(timeout_ns % 1'000'000'000u)};
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, &ts,
            nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>& word) {
  word.fetch_add(1);
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
}

void sleep_until_ns(uint64_t t) {
  timespec ts{static_cast<time_t>(t / 1'000'000'000u), static_cast<long>(t % 1'000'000'000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

struct Options {
  std::vector<std::string> daemons;  // client sockets, one per daemon
  std::vector<pid_t> pids;           // the daemons' processes, for CPU and memory
  int senders = -1;                  // -1: one per daemon
  size_t size_bytes = 1024;
  std::string service_name = "agreed";
  uint32_t service = AGENT_AGREED;
  uint64_t count = 0;        // total messages over all senders; 0: run for duration_s
  double duration_s = 5;
  double rate = 0;           // total offered msg/s over all senders; 0: as fast as possible
  uint64_t window = 0;       // per sender; 0: from window_bytes
  uint64_t window_bytes = 512u << 10;
  bool senders_receive = false;
  bool random_payload = false;  // random bytes instead of zeros (what LZ4 cannot shrink)
  uint64_t late_us = 0;      // report deliveries later than this (0: none)
  uint64_t tick_us = 200;    // --rate: a sender wakes at most this often
  uint64_t batch = 16;       // messages per write at most (AGENT_MORE); 1: a write per message
  std::string group = "bench";
  double warmup_s = 0.5;     // messages sent earlier are left out of the latency figures
  double timeout_s = 0;      // 0: duration (or an estimate for counts) + 60 s
  double drain_s = 5;        // no progress this long after the senders stop: give up
  bool progress = true;
};

void usage(FILE* out) {
  std::fprintf(out,
      "usage: agent-bench -d SOCK[,SOCK...] [options]\n"
      "  -d, --daemons LIST      client sockets of the daemons, comma-separated (required)\n"
      "  -p, --pids LIST         the daemons' process ids, for cpu_pct and rss_mb\n"
      "  -S, --senders N         senders, spread round-robin over the daemons (default: one each)\n"
      "  -s, --size BYTES        payload size, at least %zu (default 1024)\n"
      "  -t, --service NAME      unreliable|reliable|fifo|causal|agreed|safe (default agreed)\n"
      "  -c, --count N           send N messages in total, then stop\n"
      "  -D, --duration SECONDS  send for this long (default 5; ignored with --count)\n"
      "  -r, --rate MSGS         offered load in msg/s over all senders (default: maximum)\n"
      "  -w, --window N          messages a sender may be ahead of the slowest receiver\n"
      "                          (default: 512 KiB worth, 32..8192, and at most 16 MiB\n"
      "                          over all senders, at least 1)\n"
      "      --tick US           with --rate: a sender wakes at most every US microseconds and\n"
      "                          sends what fell due meanwhile (default 200; 0: wake for each)\n"
      "  -b, --batch N           a sender writes up to N messages at once (AGENT_MORE) when\n"
      "                          they are due together; 1 = one write per message (default 16)\n"
      "  -R, --senders-receive   senders join the group and count as receivers too\n"
      "      --random-payload    payloads of random bytes (default zeros after the header)\n"
      "  -g, --group NAME        group to use (default bench)\n"
      "      --warmup SECONDS    leave messages sent this early out of latency (default 0.5)\n"
      "      --late MS           print a line for deliveries later than MS milliseconds\n"
      "      --timeout SECONDS   give up after this long (default: run time + 60)\n"
      "  -q, --quiet             no progress lines\n",
      kHeaderBytes);
}

bool parse_u64(const char* s, uint64_t& out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || *end || s[0] == '-') return false;
  out = v;
  return true;
}

bool parse_double(const char* s, double& out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (errno || *end || !std::isfinite(v)) return false;
  out = v;
  return true;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

bool parse_service(const std::string& s, uint32_t& out) {
  static const struct { const char* name; uint32_t bit; } map[] = {
      {"unreliable", AGENT_UNRELIABLE}, {"reliable", AGENT_RELIABLE}, {"fifo", AGENT_FIFO},
      {"causal", AGENT_CAUSAL},         {"agreed", AGENT_AGREED},     {"safe", AGENT_SAFE}};
  for (auto& m : map)
    if (s == m.name) {
      out = m.bit;
      return true;
    }
  return false;
}

// Returns an error message, or "" when the options are usable.
std::string parse_options(int argc, char** argv, Options& o) {
  enum { kWarmup = 1000, kTimeout, kTick, kLate, kRandom };
  static const option longs[] = {
      {"daemons", required_argument, nullptr, 'd'},  {"pids", required_argument, nullptr, 'p'},
      {"senders", required_argument, nullptr, 'S'},  {"size", required_argument, nullptr, 's'},
      {"service", required_argument, nullptr, 't'},  {"count", required_argument, nullptr, 'c'},
      {"duration", required_argument, nullptr, 'D'}, {"rate", required_argument, nullptr, 'r'},
      {"window", required_argument, nullptr, 'w'},   {"senders-receive", no_argument, nullptr, 'R'},
      {"batch", required_argument, nullptr, 'b'},    {"tick", required_argument, nullptr, kTick},
      {"random-payload", no_argument, nullptr, kRandom},
      {"late", required_argument, nullptr, kLate},
      {"group", required_argument, nullptr, 'g'},    {"warmup", required_argument, nullptr, kWarmup},
      {"timeout", required_argument, nullptr, kTimeout}, {"quiet", no_argument, nullptr, 'q'},
      {"help", no_argument, nullptr, 'h'},           {nullptr, 0, nullptr, 0}};
  int opt;
  uint64_t u = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":d:p:S:s:t:c:D:r:w:b:Rg:qh", longs, nullptr)) != -1) {
    std::string arg = optarg ? optarg : "";
    switch (opt) {
      case 'd': o.daemons = split(arg); break;
      case 'p':
        for (auto& p : split(arg)) {
          if (!parse_u64(p.c_str(), u) || u == 0) return "--pids: '" + p + "' is not a process id";
          o.pids.push_back(static_cast<pid_t>(u));
        }
        break;
      case 'S':
        if (!parse_u64(optarg, u) || u == 0 || u > 1000)
          return "--senders must be a number from 1 to 1000, not '" + arg + "'";
        o.senders = static_cast<int>(u);
        break;
      case 's':
        if (!parse_u64(optarg, u) || u < kHeaderBytes || u > (16u << 20))
          return "--size must be from " + std::to_string(kHeaderBytes) +
                 " (sender, sequence and send time travel in the payload) to 16777216, not '" +
                 arg + "'";
        o.size_bytes = u;
        break;
      case 't':
        if (!parse_service(arg, o.service))
          return "--service must be one of unreliable, reliable, fifo, causal, agreed, safe, not '" +
                 arg + "'";
        o.service_name = arg;
        break;
      case 'c':
        if (!parse_u64(optarg, u) || u == 0) return "--count must be a positive number, not '" + arg + "'";
        o.count = u;
        break;
      case 'D':
        if (!parse_double(optarg, o.duration_s) || o.duration_s <= 0 || o.duration_s > 3600)
          return "--duration must be seconds in (0, 3600], not '" + arg + "'";
        break;
      case 'r':
        if (!parse_double(optarg, o.rate) || o.rate < 0)
          return "--rate must be messages per second (0: maximum), not '" + arg + "'";
        break;
      case 'w':
        if (!parse_u64(optarg, u) || u == 0) return "--window must be a positive number, not '" + arg + "'";
        o.window = u;
        break;
      case 'b':
        if (!parse_u64(optarg, u) || u == 0 || u > 4096)
          return "--batch must be a number from 1 to 4096, not '" + arg + "'";
        o.batch = u;
        break;
      case 'R': o.senders_receive = true; break;
      case 'g': o.group = arg; break;
      case kWarmup:
        if (!parse_double(optarg, o.warmup_s) || o.warmup_s < 0)
          return "--warmup must be seconds >= 0, not '" + arg + "'";
        break;
      case kLate: {
        double ms = 0;
        if (!parse_double(optarg, ms) || ms <= 0)
          return "--late must be milliseconds > 0, not '" + arg + "'";
        o.late_us = static_cast<uint64_t>(ms * 1000);
        break;
      }
      case kRandom: o.random_payload = true; break;
      case kTick:
        if (!parse_u64(optarg, u) || u > 1'000'000)
          return "--tick must be microseconds from 0 to 1000000, not '" + arg + "'";
        o.tick_us = u;
        break;
      case kTimeout:
        if (!parse_double(optarg, o.timeout_s) || o.timeout_s <= 0)
          return "--timeout must be seconds > 0, not '" + arg + "'";
        break;
      case 'q': o.progress = false; break;
      case 'h': usage(stdout); std::exit(0);
      case ':': return std::string("option ") + argv[optind - 1] + " needs a value";
      default:
        return std::string("unknown option ") + (optopt ? std::string("-") + char(optopt) : argv[optind - 1]);
    }
  }
  if (optind < argc) return std::string("unexpected argument '") + argv[optind] + "'";
  if (o.daemons.empty()) return "--daemons is required (the daemons' client sockets)";
  if (!o.pids.empty() && o.pids.size() != o.daemons.size())
    return "--pids must list one process id per daemon";
  if (o.senders < 0) o.senders = static_cast<int>(o.daemons.size());
  if (o.count && o.count < static_cast<uint64_t>(o.senders))
    return "--count must be at least the number of senders";
  if (o.window == 0) {
    // 512 KiB worth, at least 32 messages; but a receiver has up to senders × window messages
    // queued at its daemon, which drops it past clients.client_queue_bytes (64 MiB by default):
    // large messages get a smaller window, down to 1 (16 MiB × 3 senders still fits).
    uint64_t w = std::clamp<uint64_t>(o.window_bytes / o.size_bytes, 32, 8192);
    uint64_t fits = kInFlightBytes / (static_cast<uint64_t>(o.senders) * o.size_bytes);
    o.window = std::max<uint64_t>(1, std::min(w, fits));
  }
  return {};
}

// The progress line's latency of the last second: samples counted in steps of 100 µs up to
// 20 ms (and one step for slower), written by the receiver thread only, read by the main one.
constexpr size_t kRecentSteps = 201;
constexpr uint64_t kRecentStepUs = 100;

// One counter per sender, written by one receiver thread, read by every sender.
struct Receiver {
  Receiver(size_t nsenders) : got(new std::atomic<uint64_t>[nsenders]), next_seq(nsenders, 0) {
    for (size_t i = 0; i < nsenders; ++i) got[i].store(0);
    for (auto& c : recent) c.store(0);
  }
  agent_conn* conn = nullptr;
  size_t daemon = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> got;
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> done_ns{0};  // time of the delivery that completed the run
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> network_changes{0};  // membership messages caused by the network
  std::array<std::atomic<uint64_t>, kRecentSteps> recent;  // samples so far, per 100 µs step
  // Owned by the receiver thread until it is joined.
  std::vector<uint64_t> next_seq;
  LatencyHistogram latency;
  uint64_t order_hash = 1469598103934665603ull;
  uint64_t fifo_errors = 0;
  uint64_t foreign = 0;
  uint64_t last_data_ns = 0;
  uint64_t last_late_ns = 0;
  std::string error;
  std::thread thread;
};

struct Sender {
  agent_conn* conn = nullptr;
  size_t daemon = 0;
  std::atomic<uint64_t> sent{0};
  // Flow control without polling: a sender whose window is full sleeps on `wake` (a futex
  // word) until every receiver has `resume_at` of its messages; a receiver whose count
  // reaches it bumps `wake`.
  std::atomic<uint64_t> resume_at{UINT64_MAX};
  std::atomic<uint32_t> wake{0};
  std::atomic<bool> finished{false};
  std::string error;
  std::thread thread;
};

struct Run {
  Options opt;
  std::vector<std::unique_ptr<Receiver>> receivers;
  std::vector<std::unique_ptr<Sender>> senders;
  std::vector<agent_conn*> conns;  // every connection, for the final disconnect
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> go_ns{0};
  std::atomic<uint64_t> warmup_end_ns{0};
  std::atomic<uint64_t> final_total{UINT64_MAX};  // known once every sender has finished
  std::atomic<int> senders_left{0};
  std::mutex mu;  // guards final_total's computation
};

// "  p99 1.9 ms": the 99th percentile (to 100 µs) of the latencies measured since the last
// call, whose counts it keeps in seen; "" when there were none.
std::string recent_p99(Run& run, std::vector<uint64_t>& seen) {
  std::vector<uint64_t> now(kRecentSteps, 0);
  for (auto& r : run.receivers)
    for (size_t i = 0; i < kRecentSteps; ++i) now[i] += r->recent[i].load(std::memory_order_relaxed);
  seen.resize(kRecentSteps, 0);
  uint64_t total = 0;
  std::vector<uint64_t> delta(kRecentSteps);
  for (size_t i = 0; i < kRecentSteps; ++i) total += delta[i] = now[i] - seen[i];
  seen.swap(now);
  if (total == 0) return {};
  uint64_t want = total - total / 100, got = 0;  // at least 99 % at or below
  size_t i = 0;
  for (; i + 1 < kRecentSteps; ++i)
    if ((got += delta[i]) >= want) break;
  char buf[48];
  if (i + 1 == kRecentSteps)
    std::snprintf(buf, sizeof buf, "  p99 >%.1f ms", (kRecentSteps - 1) * kRecentStepUs / 1000.0);
  else
    std::snprintf(buf, sizeof buf, "  p99 %.1f ms", (i + 1) * kRecentStepUs / 1000.0);
  return buf;
}

std::atomic<bool> g_interrupted{false};
void on_signal(int) { g_interrupted.store(true); }

uint64_t min_got(const Run& run, size_t sender) {
  uint64_t m = UINT64_MAX;
  for (auto& r : run.receivers) m = std::min(m, r->got[sender].load());  // seq_cst: see Sender
  return m;
}

uint64_t slowest_total(const Run& run) {
  uint64_t m = UINT64_MAX;
  for (auto& r : run.receivers) m = std::min(m, r->total.load(std::memory_order_relaxed));
  return run.receivers.empty() ? 0 : m;
}

uint64_t sent_total(const Run& run) {
  uint64_t s = 0;
  for (auto& x : run.senders) s += x->sent.load(std::memory_order_relaxed);
  return s;
}

void sender_main(Run& run, size_t idx) {
  Sender& s = *run.senders[idx];
  const Options& o = run.opt;
  prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);  // paced sends wake on time
  std::vector<char> payload(o.size_bytes, 0);
  uint64_t rnd = 0x9e3779b97f4a7c15ull * (idx + 1);
  uint32_t idx32 = static_cast<uint32_t>(idx);
  std::memcpy(payload.data(), &kMagic, 4);
  std::memcpy(payload.data() + 4, &idx32, 4);
  while (!run.go.load() && !run.stop.load()) sleep_ns(1'000'000);
  const uint64_t start = run.go_ns.load();
  const uint64_t n = static_cast<uint64_t>(o.senders);
  const uint64_t my_count = o.count ? o.count / n + (idx < o.count % n ? 1 : 0) : UINT64_MAX;
  const uint64_t end = o.count ? UINT64_MAX : start + static_cast<uint64_t>(o.duration_s * 1e9);
  const double gap_ns = o.rate > 0 ? 1e9 * static_cast<double>(n) / o.rate : 0;
  uint64_t k = 0;
  uint64_t held = 0;  // messages sent with AGENT_MORE and not yet written
  auto flush = [&]() {
    if (held == 0) return true;
    held = 0;
    int rc = agent_flush(s.conn);
    if (rc == AGENT_OK) return true;
    s.error = std::string("send: ") + agent_strerror(rc);
    run.stop.store(true);
    return false;
  };
  for (; k < my_count && !run.stop.load(std::memory_order_relaxed); ++k) {
    uint64_t t = now_ns();
    if (t >= end) break;
    uint64_t due = 0;
    if (gap_ns > 0) {
      due = start + static_cast<uint64_t>(gap_ns * static_cast<double>(k));
      if (due > t) {
        if (!flush()) break;
        // Wake at most every tick; what falls due meanwhile goes out together.
        sleep_until_ns(std::max(due, t + o.tick_us * 1000));
      }
    }
    // Flow control: no more than window messages beyond the slowest receiver.
    bool late = false;
    while (k >= o.window && min_got(run, idx) < k - o.window + 1) {
      if (!flush()) break;
      if (run.stop.load(std::memory_order_relaxed) || (late = now_ns() >= end)) break;
      // Sleep until a quarter of the window is free, not until the next message is: one
      // wake-up per burst instead of one per message (the harness shares the CPUs it measures).
      uint64_t target = k - o.window + 1 + o.window / 4;
      uint32_t seen = s.wake.load();
      s.resume_at.store(target);
      if (min_got(run, idx) < target) futex_wait(s.wake, seen, 10'000'000);
      s.resume_at.store(UINT64_MAX);
    }
    if (late || run.stop.load(std::memory_order_relaxed)) break;
    // Latency counts from when the message was due (at --rate) or sent: time a paced message
    // waits in the sender (tick, flow control) is part of it.
    t = due ? due : now_ns();
    if (o.random_payload)  // new bytes for every message: nothing for a compressor to find
      for (size_t i = 24; i + 8 <= payload.size(); i += 8) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        std::memcpy(payload.data() + i, &rnd, 8);
      }
    std::memcpy(payload.data() + 8, &k, 8);
    std::memcpy(payload.data() + 16, &t, 8);
    // Messages due together go out in one write: held until the batch is full or the sender
    // waits (pacing or flow control) or stops.
    bool more = o.batch > 1 && held + 1 < o.batch && k + 1 < my_count;
    int rc = agent_multicast(s.conn, o.service | (more ? AGENT_MORE : 0), o.group.c_str(), 0,
                             payload.data(), payload.size());
    if (rc != AGENT_OK) {
      s.error = std::string("send: ") + agent_strerror(rc);
      run.stop.store(true);
      break;
    }
    held = more ? held + 1 : 0;
    s.sent.store(k + 1, std::memory_order_relaxed);
  }
  flush();
  s.finished.store(true);
  std::lock_guard<std::mutex> lock(run.mu);
  if (--run.senders_left == 0) run.final_total.store(sent_total(run));
}

void receiver_main(Run& run, size_t idx) {
  Receiver& r = *run.receivers[idx];
  const size_t nsenders = run.senders.size();
  uint64_t total = 0;
  while (!run.stop.load(std::memory_order_relaxed)) {
    const agent_message* m = nullptr;  // lent by the connection until the next agent_next
    int rc = agent_next(r.conn, &m, kReceivePollMs);
    if (rc == AGENT_ERR_TIMEOUT) {
      if (total >= run.final_total.load()) break;
      continue;
    }
    if (rc != AGENT_OK) {
      r.error = std::string("receive: ") + agent_strerror(rc);
      r.failed.store(true);
      break;
    }
    if (m->kind == AGENT_MSG_DATA) {
      uint64_t t = now_ns();
      uint32_t magic = 0, sender = 0;
      uint64_t seq = 0, sent_ns = 0;
      if (m->len >= kHeaderBytes) {
        const char* p = static_cast<const char*>(m->data);
        std::memcpy(&magic, p, 4);
        std::memcpy(&sender, p + 4, 4);
        std::memcpy(&seq, p + 8, 8);
        std::memcpy(&sent_ns, p + 16, 8);
      }
      if (magic != kMagic || sender >= nsenders) {
        ++r.foreign;  // someone else's traffic in the group
      } else {
        if (seq != r.next_seq[sender]) ++r.fifo_errors;
        r.next_seq[sender] = seq + 1;
        uint64_t g = r.got[sender].load(std::memory_order_relaxed) + 1;
        r.got[sender].store(g);
        Sender& snd = *run.senders[sender];
        // Only the receiver that reaches the mark wakes the sender; one already past it is
        // not what the sender waits for (its re-check after setting the mark sees it).
        if (g == snd.resume_at.load()) futex_wake(snd.wake);
        if (t >= sent_ns) {
          uint64_t us = (t - sent_ns) / 1000;
          if (sent_ns >= run.warmup_end_ns.load(std::memory_order_relaxed)) r.latency.add(us);
          auto& c = r.recent[std::min<uint64_t>(us / kRecentStepUs, kRecentSteps - 1)];
          c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
        }
        if (run.opt.late_us && t >= sent_ns && t - sent_ns > run.opt.late_us * 1000 &&
            t - r.last_late_ns > 5'000'000) {  // at most one line per 5 ms and receiver
          r.last_late_ns = t;
          std::fprintf(stderr, "late: at %.3f s receiver %zu got sender %u's message %" PRIu64
                       " after %.1f ms (sent at CLOCK_MONOTONIC %.6f s)\n",
                       static_cast<double>(t - run.go_ns.load()) / 1e9, idx, sender, seq,
                       static_cast<double>(t - sent_ns) / 1e6, static_cast<double>(sent_ns) / 1e9);
        }
        r.order_hash = (r.order_hash ^ (static_cast<uint64_t>(sender) << 48 ^ seq)) * 1099511628211ull;
        r.last_data_ns = t;
        r.total.store(++total, std::memory_order_relaxed);
      }
    } else if (m->kind == AGENT_MSG_MEMBERSHIP && (m->service & AGENT_CAUSED_BY_NETWORK)) {
      if (m->service & AGENT_REG_MEMB) r.network_changes.fetch_add(1);
    } else if (m->kind == AGENT_MSG_ERROR) {
      r.error = "daemon error " + std::to_string(m->error_code) + ": " +
                std::string(static_cast<const char*>(m->data), m->len);
      r.failed.store(true);
      break;
    }
    if (total >= run.final_total.load()) break;
  }
  if (total >= run.final_total.load()) r.done_ns.store(r.last_data_ns ? r.last_data_ns : now_ns());
}

// Waits for this connection's own join to show in a membership message of the group.
bool wait_joined(agent_conn* c, const std::string& group, std::string& err) {
  uint64_t deadline = now_ns() + 10'000'000'000ull;
  const std::string me = agent_private_group(c);
  while (now_ns() < deadline) {
    agent_message* m = nullptr;
    int rc = agent_receive(c, &m, 200);
    if (rc == AGENT_ERR_TIMEOUT) continue;
    if (rc != AGENT_OK) {
      err = agent_strerror(rc);
      return false;
    }
    bool joined = false;
    if (m->kind == AGENT_MSG_MEMBERSHIP && group == m->sender)
      for (size_t i = 0; i < m->ngroups; ++i) joined = joined || me == m->groups[i];
    if (m->kind == AGENT_MSG_ERROR) err = std::string(static_cast<const char*>(m->data), m->len);
    agent_message_free(m);
    if (!err.empty()) return false;
    if (joined) return true;
  }
  err = "no membership message for the join within 10 s";
  return false;
}

int fail(Run& run, const std::string& msg) {
  std::fprintf(stderr, "agent-bench: %s\n", msg.c_str());
  run.stop.store(true);
  for (auto& s : run.senders)
    if (s->thread.joinable()) s->thread.join();
  for (auto& r : run.receivers)
    if (r->thread.joinable()) r->thread.join();
  for (auto* c : run.conns) agent_disconnect(c);
  return 1;
}

std::optional<double> daemons_cpu_s(const Options& o) {
  double sum = 0;
  for (pid_t p : o.pids) {
    auto v = agent::bench::process_cpu_s(p);
    if (!v) return std::nullopt;
    sum += *v;
  }
  return sum;
}

uint64_t daemons_faults(const Options& o) {
  uint64_t sum = 0;
  for (pid_t p : o.pids) sum += agent::bench::process_minor_faults(p).value_or(0);
  return sum;
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string upper(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Run run;
  Options& o = run.opt;
  if (auto err = parse_options(argc, argv, o); !err.empty()) {
    std::fprintf(stderr, "agent-bench: %s\n", err.c_str());
    usage(stderr);
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const size_t ndaemons = o.daemons.size();
  const size_t nsenders = static_cast<size_t>(o.senders);

  auto connect = [&](size_t d, bool membership, agent_conn*& out) -> std::string {
    int rc = agent_connect(o.daemons[d].c_str(), nullptr,
                           AGENT_GENERATE_NAME | (membership ? AGENT_WANT_MEMBERSHIP : 0), 5000, &out);
    if (rc != AGENT_OK) return "connect to " + o.daemons[d] + ": " + agent_strerror(rc);
    if (o.size_bytes > agent_max_message(out))
      return "--size " + std::to_string(o.size_bytes) + " is above the daemon's limit " +
             std::to_string(agent_max_message(out));
    run.conns.push_back(out);
    return {};
  };

  // Senders first (they may double as receivers), then one receiver per daemon without one.
  std::vector<bool> has_receiver(ndaemons, false);
  for (size_t i = 0; i < nsenders; ++i) {
    auto s = std::make_unique<Sender>();
    s->daemon = i % ndaemons;
    if (auto err = connect(s->daemon, o.senders_receive, s->conn); !err.empty()) return fail(run, err);
    if (o.senders_receive) {
      auto r = std::make_unique<Receiver>(nsenders);
      r->conn = s->conn;
      r->daemon = s->daemon;
      has_receiver[s->daemon] = true;
      run.receivers.push_back(std::move(r));
    }
    run.senders.push_back(std::move(s));
  }
  for (size_t d = 0; d < ndaemons; ++d) {
    if (has_receiver[d]) continue;
    auto r = std::make_unique<Receiver>(nsenders);
    r->daemon = d;
    if (auto err = connect(d, true, r->conn); !err.empty()) return fail(run, err);
    run.receivers.push_back(std::move(r));
  }
  for (auto& r : run.receivers) {
    int rc = agent_join(r->conn, o.group.c_str());
    if (rc != AGENT_OK) return fail(run, "join " + o.group + ": " + agent_strerror(rc));
  }
  for (auto& r : run.receivers) {
    std::string err;
    if (!wait_joined(r->conn, o.group, err))
      return fail(run, "receiver on " + o.daemons[r->daemon] + " could not join " + o.group + ": " + err);
  }

  run.senders_left.store(static_cast<int>(nsenders));
  for (size_t i = 0; i < run.receivers.size(); ++i)
    run.receivers[i]->thread = std::thread(receiver_main, std::ref(run), i);
  for (size_t i = 0; i < nsenders; ++i)
    run.senders[i]->thread = std::thread(sender_main, std::ref(run), i);

  std::optional<double> cpu0 = daemons_cpu_s(o);
  uint64_t faults0 = daemons_faults(o);
  double self0 = self_cpu_s();
  uint64_t t0 = now_ns();
  run.go_ns.store(t0);
  run.warmup_end_ns.store(t0 + static_cast<uint64_t>(o.warmup_s * 1e9));
  run.go.store(true);

  double expect_s = o.count ? std::max(5.0, static_cast<double>(o.count) / 20000.0) : o.duration_s;
  double timeout_s = o.timeout_s > 0 ? o.timeout_s : expect_s + 60;
  uint64_t last_print = t0, last_slowest = 0, last_progress_ns = t0, last_seen = 0;
  std::vector<uint64_t> recent_seen;  // the latency counts at the last progress line
  std::optional<double> last_dcpu = cpu0;
  double last_ccpu = self0;
  std::string problem;
  for (;;) {
    sleep_ns(20'000'000);
    uint64_t t = now_ns();
    bool all_done = true;
    for (auto& r : run.receivers) {
      if (r->failed.load()) problem = "a receiver on " + o.daemons[r->daemon] + " failed: " + r->error;
      all_done = all_done && r->done_ns.load() != 0;
    }
    for (auto& s : run.senders)
      if (!s->error.empty() && s->finished.load()) problem = "a sender on " + o.daemons[s->daemon] + " failed: " + s->error;
    for (pid_t p : o.pids)
      if (::kill(p, 0) != 0) problem = "daemon process " + std::to_string(p) + " is gone";
    if (all_done || !problem.empty()) break;
    if (g_interrupted.load()) {
      problem = "interrupted";
      break;
    }
    uint64_t slowest = slowest_total(run);
    if (slowest != last_seen) {
      last_seen = slowest;
      last_progress_ns = t;
    }
    if (t - last_progress_ns > o.drain_s * 1e9) {
      bool sending_done = run.final_total.load() != UINT64_MAX;
      if (sending_done && o.service == AGENT_UNRELIABLE) break;  // losses are allowed
      uint64_t changes = 0;
      for (auto& r : run.receivers) changes = std::max(changes, r->network_changes.load());
      problem = "no delivery for " + std::to_string(static_cast<int>(o.drain_s)) +
                " s: slowest receiver has " + std::to_string(slowest) + " of " +
                (sending_done ? std::to_string(run.final_total.load()) : std::to_string(sent_total(run)) + " sent so far") +
                (changes ? "; the ring changed configuration " + std::to_string(changes) +
                               " times during the run (a partition lets messages be delivered on one "
                               "side only; see the daemons' logs)"
                         : "");
      break;
    }
    if (t - t0 > timeout_s * 1e9) {
      problem = "timed out after " + std::to_string(static_cast<int>(timeout_s)) +
                " s: slowest receiver has " + std::to_string(slowest) + " of " +
                (run.final_total.load() == UINT64_MAX ? std::to_string(sent_total(run)) + " sent so far"
                                                      : std::to_string(run.final_total.load()));
      break;
    }
    if (o.progress && t - last_print >= 1'000'000'000u) {
      double dt = (t - last_print) / 1e9;
      // CPU over this second: daemons (when known) and this process's clients.
      std::optional<double> dcpu = daemons_cpu_s(o);
      double ccpu = self_cpu_s();
      std::string cpu;
      if (dcpu && last_dcpu) cpu += "  daemons " + std::to_string(static_cast<int>(100 * (*dcpu - *last_dcpu) / dt)) + "% cpu";
      cpu += "  clients " + std::to_string(static_cast<int>(100 * (ccpu - last_ccpu) / dt)) + "% cpu";
      std::fprintf(stderr, "progress: %5.1f s  sent %" PRIu64 "  delivered to all %" PRIu64 "  rate %.0f msg/s%s%s\n",
                   (t - t0) / 1e9, sent_total(run), slowest, (slowest - last_slowest) / dt,
                   recent_p99(run, recent_seen).c_str(), cpu.c_str());
      last_print = t;
      last_slowest = slowest;
      last_dcpu = dcpu;
      last_ccpu = ccpu;
    }
  }
  uint64_t t_seen = now_ns();
  std::optional<double> cpu1 = daemons_cpu_s(o);
  uint64_t faults1 = daemons_faults(o);
  double self1 = self_cpu_s();
  if (!problem.empty()) return fail(run, problem);
  run.stop.store(true);
  for (auto& s : run.senders) s->thread.join();
  for (auto& r : run.receivers) r->thread.join();

  uint64_t total = run.final_total.load();
  uint64_t t_end = t0;
  uint64_t delivered_min = UINT64_MAX, fifo_errors = 0, foreign = 0;
  LatencyHistogram lat;
  bool same_order = true;
  for (auto& r : run.receivers) {
    t_end = std::max(t_end, r->done_ns.load() ? r->done_ns.load() : r->last_data_ns);
    delivered_min = std::min(delivered_min, r->total.load());
    fifo_errors += r->fifo_errors;
    foreign += r->foreign;
    lat.merge(r->latency);
    same_order = same_order && r->order_hash == run.receivers.front()->order_hash;
  }
  double secs = std::max(1e-9, (t_end - t0) / 1e9);
  double wall = std::max(1e-9, (t_seen - t0) / 1e9);
  double msgs_per_s = static_cast<double>(delivered_min) / secs;
  double mb_per_s = msgs_per_s * static_cast<double>(o.size_bytes) / (1024.0 * 1024.0);
  std::string cpu_pct = "na", rss_mb = "na";
  if (cpu0 && cpu1) cpu_pct = std::to_string(static_cast<long>(std::lround((*cpu1 - *cpu0) / wall * 100)));
  if (!o.pids.empty()) {
    uint64_t peak = 0;
    std::string per;
    for (pid_t p : o.pids) {
      auto v = agent::bench::process_peak_rss_kib(p);
      if (v) peak = std::max(peak, *v);
    }
    char b[32];
    std::snprintf(b, sizeof b, "%.0f", peak / 1024.0);
    rss_mb = b;
  }
  uint64_t changes = 0;
  for (auto& r : run.receivers) changes = std::max(changes, r->network_changes.load());
  if (changes)
    std::fprintf(stderr, "warning: the ring changed configuration %" PRIu64 " times during the run\n", changes);
  bool ordered = o.service == AGENT_AGREED || o.service == AGENT_SAFE;
  bool fifo = ordered || o.service == AGENT_FIFO || o.service == AGENT_CAUSAL;
  std::fprintf(stderr,
               "summary: %" PRIu64 " messages sent, slowest receiver got %" PRIu64 " in %.3f s; "
               "%zu receivers; window %" PRIu64 "; latency samples %" PRIu64 " max %" PRIu64 " us; "
               "clients' cpu %.0f%%\n",
               total, delivered_min, secs, run.receivers.size(), o.window, lat.count(), lat.max_us(),
               (self1 - self0) / wall * 100);
  if (cpu0 && cpu1 && delivered_min > 0)
    std::fprintf(stderr,
                 "cost: daemons %.2f us cpu and %.3f page faults per message (all daemons), "
                 "clients %.2f us cpu per message\n",
                 (*cpu1 - *cpu0) * 1e6 / static_cast<double>(delivered_min),
                 static_cast<double>(faults1 - faults0) / static_cast<double>(delivered_min),
                 (self1 - self0) * 1e6 / static_cast<double>(delivered_min));
  // The daemons' CPU (all of them) per message delivered to the slowest receiver, as on the
  // cost line: what a message costs the ring at this load.
  std::string cpu_us_per_msg = "na";
  if (cpu0 && cpu1 && delivered_min > 0) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", (*cpu1 - *cpu0) * 1e6 / static_cast<double>(delivered_min));
    cpu_us_per_msg = b;
  }
  int rc = 0;
  if (fifo && fifo_errors) {
    std::fprintf(stderr, "agent-bench: %" PRIu64 " messages arrived out of FIFO order\n", fifo_errors);
    rc = 3;
  }
  if (ordered && !same_order) {
    std::fprintf(stderr, "agent-bench: receivers saw different total orders\n");
    rc = 3;
  }
  if (ordered && fifo_errors == 0 && same_order)
    std::fprintf(stderr, "check: every receiver saw the same total order, FIFO per sender\n");
  if (foreign) std::fprintf(stderr, "note: %" PRIu64 " messages in %s were not the benchmark's\n", foreign, o.group.c_str());
  std::printf("RESULT daemons=%zu senders=%zu size=%zu service=%s msgs_per_s=%.0f mb_per_s=%.1f "
              "p50_us=%" PRIu64 " p99_us=%" PRIu64 " cpu_pct=%s rss_mb=%s cpu_us_per_msg=%s\n",
              ndaemons, nsenders, o.size_bytes, upper(o.service_name).c_str(), msgs_per_s, mb_per_s,
              lat.quantile_us(0.50), lat.quantile_us(0.99), cpu_pct.c_str(), rss_mb.c_str(),
              cpu_us_per_msg.c_str());
  std::fflush(stdout);
  for (auto* c : run.conns) agent_disconnect(c);
  return rc;
}
