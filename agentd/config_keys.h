// agentd's integer settings as one table (internal to the config files): how each is loaded,
// range-checked, shown in messages and compared on reload. Add a key here and it is parsed,
// checked and compared everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agentd/config.h"

namespace agent::daemon::config_keys {

enum class Unit { kCount, kBytes, kPackets, kMs, kUsAsMs /* fractional ms in the file, µs kept */ };

struct IntKey {
  const char* key;
  Unit unit;
  uint64_t min, max;  // in the unit kept (µs for kUsAsMs)
  const char* zero;   // what 0 means where min is 0 ("" if nothing special)
  uint64_t (*get)(const Config&);
  void (*set)(Config&, uint64_t);
};

// Every integer key of the file ("clients.max_clients"...).
const std::vector<IntKey>& int_keys();
const IntKey* find_int_key(const std::string& key);
// Every key the file may set, for suggestions and reload comparisons.
std::vector<std::string> known_keys();

// Milliseconds from µs: "20", "0.5", "0.001".
std::string ms_text(uint64_t us);
// A byte count with its binary unit when it has an exact one: "67108864 bytes (64 MiB)".
std::string bytes_text(uint64_t n, const char* unit = "");
// A value as the file writes it (ms for kUsAsMs).
std::string value_text(const IntKey& k, uint64_t v);
// "must be 1..1048576" with the unit, and what 0 means where it is allowed.
std::string range_text(const IntKey& k);

}  // namespace agent::daemon::config_keys
