// How long this disk takes to make an append durable: what bounds durability "always"
// (every SAFE message waits for the slowest daemon's sync of its log). Appends `--bytes` to a
// file in `--dir` and fdatasyncs it, `--count` times, as RocksDB's write-ahead log does for a
// synced write; prints the latencies and one RESULT line.
//
//   fsync-latency [--dir DIR] [--count N] [--bytes B]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  size_t count = 1000, bytes = 1100;  // about one 1 KB message and its record
  const char* usage = "usage: %s [--dir DIR] [--count N] [--bytes B]\n"
                      "Appends B bytes (default 1100) to a file in DIR (default /tmp) and syncs "
                      "it, N times (default 1000);\nprints the latencies and a RESULT line.\n";
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
    else if (a == "--bytes") bytes = std::strtoul(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, usage, argv[0]);
      return 2;
    }
  }
  if (count == 0) count = 1;
  std::string path = dir + "/fsync-latency." + std::to_string(getpid());
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_TRUNC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    return 1;
  }
  std::vector<char> buf(bytes, 'x');
  std::vector<double> us;
  us.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size()) || ::fdatasync(fd) != 0) {
      std::perror("write/fdatasync");
      return 1;
    }
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  ::close(fd);
  ::unlink(path.c_str());
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))]; };
  double sum = 0;
  for (double v : us) sum += v;
  std::printf("RESULT fsync_latency dir=%s count=%zu bytes=%zu mean_us=%.0f p50_us=%.0f p90_us=%.0f "
              "p99_us=%.0f max_us=%.0f syncs_per_s=%.0f\n",
              dir.c_str(), count, bytes, sum / us.size(), at(0.5), at(0.9), at(0.99), us.back(),
              1e6 / (sum / us.size()));
  return 0;
}
