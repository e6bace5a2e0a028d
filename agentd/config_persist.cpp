// The [persist] section of agentd's configuration: the message log's settings.
#include <toml.hpp>

#include "agentd/config.h"
#include "persist/glob.h"
#include "transport/names.h"

namespace agent::daemon {

const char* durability_name(PersistSettings::Durability d) {
  switch (d) {
    case PersistSettings::Durability::kNone: return "none";
    case PersistSettings::Durability::kBatch: return "batch";
    case PersistSettings::Durability::kAlways: return "always";
  }
  return "?";
}

namespace {

// A non-negative integer key, named in the error.
template <class T>
std::string get_count(const std::string& key, const toml::value& v, T& out, uint64_t max) {
  if (!v.is_integer()) return "persist." + key + " must be an integer";
  int64_t n = v.as_integer();
  if (n < 0 || static_cast<uint64_t>(n) > max)
    return "persist." + key + " = " + std::to_string(n) + " is out of range (0.." +
           std::to_string(max) + ")";
  out = static_cast<T>(n);
  return {};
}

}  // namespace

std::string load_persist_section(const void* table, PersistSettings& p) {
  const auto& section = *static_cast<const toml::value*>(table);
  for (auto& [k, v] : section.as_table()) {
    std::string err;
    if (k == "groups") {
      if (!v.is_array()) return "persist.groups must be a list of group names or patterns";
      p.groups.clear();
      for (auto& g : v.as_array()) {
        if (!g.is_string()) return "persist.groups must hold strings";
        p.groups.push_back(g.as_string());
      }
    } else if (k == "dir") {
      if (!v.is_string()) return "persist.dir must be a string";
      p.dir = v.as_string();
    } else if (k == "durability") {
      std::string d = v.is_string() ? std::string(v.as_string()) : "";
      if (d == "none") p.durability = PersistSettings::Durability::kNone;
      else if (d == "batch") p.durability = PersistSettings::Durability::kBatch;
      else if (d == "always") p.durability = PersistSettings::Durability::kAlways;
      else return "persist.durability must be \"none\", \"batch\" or \"always\"";
    } else if (k == "batch_ms") {
      err = get_count("batch_ms", v, p.batch_ms, 60000);
    } else if (k == "retain_messages") {
      err = get_count("retain_messages", v, p.retain_messages, INT64_MAX);
    } else if (k == "retain_bytes") {
      err = get_count("retain_bytes", v, p.retain_bytes, INT64_MAX);
    } else if (k == "min_free_bytes") {
      err = get_count("min_free_bytes", v, p.min_free_bytes, INT64_MAX);
    } else if (k == "retain_seconds") {
      err = get_count("retain_seconds", v, p.retain_seconds, INT64_MAX / 1000000);
    } else {
      return "unknown key persist." + k;
    }
    if (!err.empty()) return "" + err;
  }
  return {};
}

std::string validate_persist(const Config& cfg) {
  const PersistSettings& p = cfg.persist;
  for (auto& g : p.groups) {
    std::string plain;
    for (char c : g)
      if (c != '*' && c != '?') plain += c;
    if (g.empty() || g.size() > names::kMaxGroupName ||
        (!plain.empty() && !names::valid_group(plain)))
      return "persist.groups: '" + g + "' is not a group name or pattern (1.." +
             std::to_string(names::kMaxGroupName) +
             " printable characters without space or '#'; '*' and '?' match)";
  }
  if (p.enabled() && p.durability == PersistSettings::Durability::kBatch && p.batch_ms == 0)
    return "persist.batch_ms must be at least 1 with durability \"batch\"";
  return {};
}

bool persistent_group(const PersistSettings& p, const std::string& group) {
  if (names::is_private_group(group)) return false;
  for (auto& pattern : p.groups)
    if (persist::glob_match(pattern, group)) return true;
  return false;
}

}  // namespace agent::daemon
