// Leveled logging to stderr: one line per record, with a UTC timestamp and the level (under
// systemd, with the journal as stderr: a "<N>" syslog priority instead of the timestamp).
//   AGENT_LOG(kInfo, "client " << name << " joined " << group);
#pragma once

#include <functional>
#include <sstream>
#include <string>

namespace agent::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void set_level(Level l);
Level level();
// Parses "error", "warn", "info" or "debug".
bool parse_level(const std::string& s, Level& out);
void write(Level l, const std::string& text);
// Where records go instead of stderr (the simulator counts and prints them with its virtual
// time); an empty function restores stderr. Set before any thread logs.
using Sink = std::function<void(Level, const std::string&)>;
void set_sink(Sink sink);

}  // namespace agent::log

#define AGENT_LOG(lvl, expr)                                              \
  do {                                                                    \
    if (::agent::log::Level::lvl <= ::agent::log::level()) {              \
      std::ostringstream agent_log_os_;                                   \
      agent_log_os_ << expr;                                              \
      ::agent::log::write(::agent::log::Level::lvl, agent_log_os_.str()); \
    }                                                                     \
  } while (0)
