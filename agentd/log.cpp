#include "agentd/log.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace agent::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
const char* kNames[] = {"ERROR", "WARN", "INFO", "DEBUG"};
// The levels as syslog priorities (err, warning, info, debug), for the journal.
const int kSyslogPriority[] = {3, 4, 6, 7};
Sink g_sink;

// Whether stderr is systemd's journal: JOURNAL_STREAM ("DEV:INODE", systemd.exec(5)) names
// the stream systemd connected, and stderr is still that stream (not redirected since, e.g.
// by a child started from a unit's shell).
bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  if (!env || std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  return ::fstat(STDERR_FILENO, &st) == 0 && static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}
}  // namespace

void set_sink(Sink sink) { g_sink = std::move(sink); }

void set_level(Level l) { g_level = static_cast<int>(l); }
Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

bool parse_level(const std::string& s, Level& out) {
  for (int i = 0; i < 4; ++i) {
    std::string lower = kNames[i];
    for (auto& c : lower) c = static_cast<char>(c - 'A' + 'a');
    if (s == lower) {
      out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

void write(Level l, const std::string& text) {
  if (g_sink) {
    g_sink(l, text);
    return;
  }
  // The journal stamps every line itself and takes a "<N>" prefix as the line's priority
  // (sd-daemon(3)): journalctl -p warning then finds the warnings.
  static const bool journal = stderr_is_journal();
  if (journal) {
    std::fprintf(stderr, "<%d>%-5s %s\n", kSyslogPriority[static_cast<int>(l)],
                 kNames[static_cast<int>(l)], text.c_str());
    return;
  }
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &t);
  // One fprintf per line keeps lines whole when several threads log.
  std::fprintf(stderr, "%s.%03ldZ %-5s %s\n", stamp, static_cast<long>(tv.tv_usec / 1000),
               kNames[static_cast<int>(l)], text.c_str());
}

}  // namespace agent::log
