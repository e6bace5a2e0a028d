#include "proc_sample.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace agent::bench {

namespace {
// Fields 3..15 of /proc/PID/stat (1-based numbering as in proc(5)); false when it is gone.
bool stat_fields(pid_t pid, unsigned long long (&f)[16]) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line)) return false;
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 15 && rest >> field; ++i) f[i] = i == 3 ? 0 : std::stoull(field);
  return static_cast<bool>(rest);
}
}  // namespace

std::optional<double> process_cpu_s(pid_t pid) {
  unsigned long long f[16] = {};
  if (!stat_fields(pid, f)) return std::nullopt;
  return static_cast<double>(f[14] + f[15]) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::optional<uint64_t> process_minor_faults(pid_t pid) {
  unsigned long long f[16] = {};
  if (!stat_fields(pid, f)) return std::nullopt;
  return f[10];
}

namespace {
std::optional<uint64_t> status_kib(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return std::nullopt;
  std::string line;
  size_t klen = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, klen, key) == 0) return std::stoull(line.substr(klen));
  return std::nullopt;
}
}  // namespace

std::optional<uint64_t> process_peak_rss_kib(pid_t pid) { return status_kib(pid, "VmHWM:"); }
std::optional<uint64_t> process_rss_kib(pid_t pid) { return status_kib(pid, "VmRSS:"); }

}  // namespace agent::bench
