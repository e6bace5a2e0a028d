// What writing to the message log costs, alone: the CPU (this process's, RocksDB's background
// flushes and compactions included) per message appended through persist::MessageLog in
// batches, as the log's actor does. On a machine where the daemons share the cores, this is
// the floor of what logging adds to each daemon's work per message.
//
//   log-append [--dir DIR] [--count N] [--batch B] [--size BYTES] [--payload zeros|random]
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "persist/message_log.h"

namespace {
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp", payload_kind = "zeros";
  size_t count = 500000, batch = 256, size = 1024;
  const char* usage = "usage: %s [--dir DIR] [--count N] [--batch B] [--size BYTES] "
                      "[--payload zeros|random]\n"
                      "Appends N messages (default 500000) of BYTES (default 1024) in batches of "
                      "B (default 256)\nto a message log in DIR (default /tmp); prints the CPU "
                      "per message and a RESULT line.\n";
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf(usage, argv[0]);
      return 0;
    }
    if (i + 1 == argc) {
      std::fprintf(stderr, usage, argv[0]);
      return 2;
    }
    if (a == "--dir") dir = argv[i + 1];
    else if (a == "--count") count = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--batch") batch = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--size") size = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--payload") payload_kind = argv[i + 1];
    else {
      std::fprintf(stderr, usage, argv[0]);
      return 2;
    }
  }
  if (batch == 0) batch = 1;
  std::string path = dir + "/log-append." + std::to_string(::getpid());
  std::string err;
  {
    auto log = agent::persist::MessageLog::open(path, err);
    if (!log) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return 1;
    }
    std::mt19937_64 rng(1);
    std::vector<agent::persist::Record> records(batch);
    for (auto& r : records) {
      r.entry.service = 0x08;
      r.entry.sender = "#bench1#d1";
      r.entry.groups = {"bench"};
      r.log_groups = {"bench"};
      r.entry.payload.assign(size, '\0');
    }
    double cpu0 = cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    uint64_t ordinal = 0;
    for (size_t done = 0; done < count; done += batch) {
      for (auto& r : records) {
        r.entry.pos = {1ull << 32 | 1, ++ordinal};
        r.entry.time_us = ordinal / batch;
        if (payload_kind == "random")
          for (size_t i = 0; i + 8 <= size; i += 8) {
            uint64_t v = rng();
            std::memcpy(&r.entry.payload[i], &v, 8);
          }
      }
      err = log->append(records, false);
      if (!err.empty()) {
        std::fprintf(stderr, "append: %s\n", err.c_str());
        return 1;
      }
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Closing waits for RocksDB's background work: its CPU counts too.
    log.reset();
    double cpu = cpu_seconds() - cpu0;
    size_t n = (count + batch - 1) / batch * batch;
    std::printf("RESULT messages=%zu size=%zu batch=%zu payload=%s cpu_us_per_msg=%.2f "
                "wall_msgs_per_s=%.0f\n",
                n, size, batch, payload_kind.c_str(), cpu * 1e6 / n, n / wall);
  }
  std::system(("rm -rf '" + path + "'").c_str());
  return 0;
}
