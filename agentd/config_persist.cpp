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

std::string load_retain_rules(const toml::value& v, std::vector<RetainRule>& out) {
  const char* shape =
      "persist.retain must be tables ([[persist.retain]]) with groups = [...] and any of "
      "messages, bytes, seconds";
  if (!v.is_array()) return shape;
  out.clear();
  for (auto& t : v.as_array()) {
    if (!t.is_table()) return shape;
    RetainRule r;
    std::string where = "persist.retain[" + std::to_string(out.size() + 1) + "]";
    for (auto& [k, x] : t.as_table()) {
      std::string err;
      uint64_t n = 0;
      if (k == "groups") {
        if (!x.is_array() || x.as_array().empty())
          return where + ".groups must be a non-empty list of group names or patterns";
        for (auto& g : x.as_array()) {
          if (!g.is_string()) return where + ".groups must hold strings";
          r.groups.push_back(g.as_string());
        }
      } else if (k == "messages") {
        if ((err = get_count("retain[].messages", x, n, INT64_MAX)).empty()) r.messages = n;
      } else if (k == "bytes") {
        if ((err = get_count("retain[].bytes", x, n, INT64_MAX)).empty()) r.bytes = n;
      } else if (k == "seconds") {
        if ((err = get_count("retain[].seconds", x, n, INT64_MAX / 1000000)).empty()) r.seconds = n;
      } else {
        return "unknown key " + where + "." + k + " (groups, messages, bytes, seconds)";
      }
      if (!err.empty()) return where + ": " + err;
    }
    if (r.groups.empty()) return where + " names no groups (groups = [...])";
    out.push_back(std::move(r));
  }
  return {};
}

}  // namespace

bool PersistSettings::retains() const {
  if (retain_messages || retain_bytes || retain_seconds) return true;
  for (auto& r : retain)
    if (r.messages.value_or(0) || r.bytes.value_or(0) || r.seconds.value_or(0)) return true;
  return false;
}

GroupRetention retention_for(const PersistSettings& p, const std::string& group) {
  GroupRetention g{p.retain_messages, p.retain_bytes, p.retain_seconds};
  for (auto& r : p.retain) {
    bool named = false;
    for (auto& pattern : r.groups) named |= persist::glob_match(pattern, group);
    if (!named) continue;
    g.messages = r.messages.value_or(g.messages);
    g.bytes = r.bytes.value_or(g.bytes);
    g.seconds = r.seconds.value_or(g.seconds);
    break;
  }
  return g;
}

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
    } else if (k == "retain") {
      err = load_retain_rules(v, p.retain);
    } else {
      return "unknown key persist." + k;
    }
    if (!err.empty()) return "" + err;
  }
  return {};
}

std::string validate_persist(const Config& cfg) {
  const PersistSettings& p = cfg.persist;
  auto check = [](const std::string& key, const std::vector<std::string>& patterns) -> std::string {
    for (auto& g : patterns) {
      std::string plain;
      for (char c : g)
        if (c != '*' && c != '?') plain += c;
      if (g.empty() || g.size() > names::kMaxGroupName ||
          (!plain.empty() && !names::valid_group(plain)))
        return key + ": '" + g + "' is not a group name or pattern (1.." +
               std::to_string(names::kMaxGroupName) +
               " printable characters without space or '#'; '*' and '?' match)";
    }
    return {};
  };
  if (auto err = check("persist.groups", p.groups); !err.empty()) return err;
  for (size_t i = 0; i < p.retain.size(); ++i)
    if (auto err = check("persist.retain[" + std::to_string(i + 1) + "].groups", p.retain[i].groups);
        !err.empty())
      return err;
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
