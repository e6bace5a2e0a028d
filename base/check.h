// The one invariant check of every core (ring, group table, daemon core). It stays on in every
// build — assert() is gone under NDEBUG, which the release builds define — because a core whose
// state is broken must stop, not go on to corrupt the order or the views. A failed check throws
// std::logic_error naming the condition and where it is: the simulator reports it as a failed
// run, agentd stops the daemon (its actor ends) with the message in the log.
#pragma once

#include <stdexcept>
#include <string>

namespace agent {

[[noreturn]] inline void check_failed(const char* cond, const char* file, int line) {
  throw std::logic_error(std::string("invariant failed: ") + cond + " (" + file + ":" +
                         std::to_string(line) + ")");
}

}  // namespace agent

#define AGENT_CHECK(cond)                                                  \
  do {                                                                     \
    if (__builtin_expect(!(cond), 0)) ::agent::check_failed(#cond, __FILE__, __LINE__); \
  } while (0)
