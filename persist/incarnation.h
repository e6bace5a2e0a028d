// A daemon's durable identity: a counter that grows on every start, so a daemon that crashed and
// came back is recognisably a new incarnation. Kept in <state_dir>/incarnation, written
// atomically (write to a temporary file, fsync, rename).
#pragma once

#include <cstdint>
#include <string>

namespace agent::persist {

struct IncarnationResult {
  uint64_t incarnation = 0;
  std::string error;  // empty on success
};

// Reads the previous incarnation (0 if none), stores previous + 1 and returns it.
IncarnationResult next_incarnation(const std::string& state_dir);

}  // namespace agent::persist
