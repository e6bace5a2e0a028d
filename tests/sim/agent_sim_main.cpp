// agent-sim: runs the deterministic simulator on one seed or a range of seeds and prints, for
// every failing seed, the reason and the exact command that reproduces it.
//
//   agent-sim --seed S | --seeds N [--from S]  [--nodes K] [--loss P] [--faults]
//             [--fault NAME [--fault-node K|all]] [--persist always] [--ignore TEXT]...
//             [--seed-timeout SEC]
//             [--verbose] [--trace]
//
// A seed that runs longer than --seed-timeout seconds of wall clock (a core stuck in a loop:
// nothing in the simulator can interrupt it) is reported as HANG with its reproduce command,
// and agent-sim exits with status 3.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/sim/sim.h"

using namespace agent::sim;

namespace {

void usage(const char* prog, FILE* out = stderr) {
  std::fprintf(out,
               "usage: %s (--seed S | --seeds N [--from S]) [--nodes K] [--loss P] [--faults] "
               "[--fault skip-retransmit|out-of-order|safe-early|skip-recovery|deliver-past-gap|"
               "skip-durable-gate] [--fault-node K|all] [--persist always] "
               "[--ignore TEXT]... [--seed-timeout SEC] [--verbose] [--trace]\n"
               "  --seed S        run seed S only\n"
               "  --seeds N       run seeds 1..N (with --from S: S..S+N-1)\n"
               "  --nodes K       daemons, 1..16 (default: derived from the seed, cycling 1..7)\n"
               "  --loss P        packet loss probability 0..1 during the workload\n"
               "                  (default: derived from the seed among 0, 0.05, 0.2, 0.3)\n"
               "  --faults        inject crashes, restarts, partitions and heals during the workload\n"
               "                  (which of them, and how often: derived from the seed)\n"
               "  --fault NAME    switch on a ring fault, to prove the checker catches it\n"
               "  --fault-node K  the daemon that gets the fault (default: all)\n"
               "  --persist always  daemons keep a message log (simulated disk) with durability\n"
               "                  always: SAFE messages are delivered once on disk everywhere\n"
               "  --ignore TEXT   drop failures containing TEXT (triage of known problems; repeatable)\n"
               "  --seed-timeout SEC  report a seed still running after SEC s of wall clock as HANG\n"
               "                  and stop (default 60; 0: no limit)\n"
               "  --verbose       a summary line per seed, faults, configurations, warnings, and\n"
               "                  every failure\n"
               "  --trace         --verbose plus every packet arrival, ring state change and message\n"
               "                  delivery\n",
               prog);
}

bool parse_u64(const char* s, uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
  out = v;
  return true;
}

// What the watchdog writes when a seed hangs: prepared before each seed (a signal handler may
// only write(2) what is ready).
char g_hang_message[1024];
size_t g_hang_length = 0;

void on_alarm(int) {
  ssize_t n = ::write(STDOUT_FILENO, g_hang_message, g_hang_length);
  (void)n;
  std::_Exit(3);
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const char* prog = argv[0];
  SimParams base;
  uint64_t first = 0, count = 0, from = 0;
  bool single = false;  // --seed
  std::vector<std::string> ignore;  // --ignore
  unsigned seed_timeout_s = 60;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: %s needs a value\n", prog, a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    uint64_t v = 0;
    if (a == "--seed") {
      if (!parse_u64(value(), v) || v == 0) {
        std::fprintf(stderr, "%s: --seed wants a positive integer\n", prog);
        return 2;
      }
      first = v;
      count = 1;
      single = true;
    } else if (a == "--from") {
      if (!parse_u64(value(), v) || v == 0) {
        std::fprintf(stderr, "%s: --from wants a positive integer\n", prog);
        return 2;
      }
      from = v;
    } else if (a == "--ignore") {
      ignore.emplace_back(value());
    } else if (a == "--seed-timeout") {
      if (!parse_u64(value(), v)) {
        std::fprintf(stderr, "%s: --seed-timeout wants seconds (0: none)\n", prog);
        return 2;
      }
      seed_timeout_s = static_cast<unsigned>(v);
    } else if (a == "--seeds") {
      if (!parse_u64(value(), v) || v == 0) {
        std::fprintf(stderr, "%s: --seeds wants a positive integer\n", prog);
        return 2;
      }
      first = 1;
      count = v;
    } else if (a == "--nodes") {
      if (!parse_u64(value(), v) || v < 1 || v > 16) {
        std::fprintf(stderr, "%s: --nodes wants 1..16\n", prog);
        return 2;
      }
      base.nodes = v;
    } else if (a == "--loss") {
      const char* s = value();
      char* end = nullptr;
      double p = std::strtod(s, &end);
      if (end == s || *end != '\0' || !(p >= 0 && p <= 1)) {
        std::fprintf(stderr, "%s: --loss wants a probability 0..1\n", prog);
        return 2;
      }
      base.loss = p;
    } else if (a == "--faults") {
      base.faults = true;
    } else if (a == "--fault") {
      base.fault = value();
      if (!valid_fault(base.fault)) {
        std::fprintf(stderr,
                     "%s: unknown fault '%s' (skip-retransmit, out-of-order, safe-early, skip-recovery, "
                     "deliver-past-gap, skip-durable-gate)\n",
                     prog, base.fault.c_str());
        return 2;
      }
    } else if (a == "--persist") {
      base.persist = value();
      if (base.persist != "always") {
        std::fprintf(stderr, "%s: --persist wants always\n", prog);
        return 2;
      }
    } else if (a == "--fault-node") {
      std::string s = value();
      if (s == "all") {
        base.fault_node = 0;
      } else if (!parse_u64(s.c_str(), v) || v < 1 || v > 16) {
        std::fprintf(stderr, "%s: --fault-node wants 1..16 or all\n", prog);
        return 2;
      } else {
        base.fault_node = static_cast<NodeId>(v);
      }
    } else if (a == "--trace") {
      base.trace = true;
      base.verbose = true;
    } else if (a == "--verbose" || a == "-v") {
      base.verbose = true;
    } else if (a == "--help" || a == "-h") {
      usage(prog, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\n", prog, a.c_str());
      usage(prog);
      return 2;
    }
  }
  if (count == 0) {
    usage(prog);
    return 2;
  }

  if (from != 0) {
    if (single) {
      std::fprintf(stderr, "%s: --from goes with --seeds\n", prog);
      return 2;
    }
    first = from;
  }
  if (seed_timeout_s > 0) std::signal(SIGALRM, on_alarm);
  auto start = std::chrono::steady_clock::now();
  uint64_t passed = 0, failed = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    SimParams p = base;
    p.seed = seed;
    if (seed_timeout_s > 0) {
      std::string m = "HANG seed " + std::to_string(seed) + ": still running after " +
                      std::to_string(seed_timeout_s) + " s of wall clock (a core stuck in a loop?) | reproduce: " +
                      repro_command(resolve(p), prog) + "\n";
      g_hang_length = std::min(m.size(), sizeof g_hang_message);
      std::memcpy(g_hang_message, m.data(), g_hang_length);
      std::fflush(stdout);
      alarm(seed_timeout_s);
    }
    SeedResult r = run_seed(p);
    if (seed_timeout_s > 0) alarm(0);
    if (!ignore.empty()) {
      // Triage: drop the failures of known problems, to see what else a seed shows.
      auto& f = r.verdict.failures;
      f.erase(std::remove_if(f.begin(), f.end(),
                             [&](const std::string& x) {
                               for (auto& i : ignore)
                                 if (x.find(i) != std::string::npos) return true;
                               return false;
                             }),
              f.end());
      r.verdict.ok = f.empty();
      r.verdict.reason = f.empty() ? "" : f.front();
    }
    if (base.verbose)
      std::printf("seed %llu: %s (%.1f ms) %s\n", static_cast<unsigned long long>(seed),
                  r.verdict.ok ? "ok" : "FAILED", r.wall_ms, r.summary.c_str());
    if (r.verdict.ok) {
      ++passed;
    } else {
      ++failed;
      std::printf("FAIL seed %llu: %s | reproduce: %s\n", static_cast<unsigned long long>(seed),
                  one_line(r.verdict.reason).c_str(), repro_command(r.params, prog).c_str());
      if (base.verbose)
        for (size_t i = 1; i < r.verdict.failures.size(); ++i)
          std::printf("  also: %s\n", one_line(r.verdict.failures[i]).c_str());
    }
    std::fflush(stdout);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("seeds/minute: %.0f (%llu seeds in %.2f s wall clock)\n",
              secs > 0 ? (passed + failed) * 60.0 / secs : 0.0,
              static_cast<unsigned long long>(passed + failed), secs);
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(passed),
              static_cast<unsigned long long>(failed));
  return failed == 0 ? 0 : 1;
}
