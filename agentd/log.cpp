#include "agentd/log.h"

#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace agent::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
const char* kNames[] = {"ERROR", "WARN", "INFO", "DEBUG"};
Sink g_sink;
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
