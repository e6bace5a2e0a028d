// The [bridge] section of agentd's configuration: the WAN bridge's settings (docs/bridge.md).
#include <toml.hpp>

#include <set>

#include "agentd/config.h"
#include "transport/names.h"

namespace agent::daemon {

namespace {

template <class T>
std::string get_count(const std::string& key, const toml::value& v, T& out, uint64_t min,
                      uint64_t max) {
  if (!v.is_integer()) return "bridge." + key + " must be an integer";
  int64_t n = v.as_integer();
  if (n < 0 || static_cast<uint64_t>(n) < min || static_cast<uint64_t>(n) > max)
    return "bridge." + key + " = " + std::to_string(n) + " is out of range (" +
           std::to_string(min) + ".." + std::to_string(max) + ")";
  out = static_cast<T>(n);
  return {};
}

std::string load_sites(const toml::value& v, std::vector<BridgeSite>& out) {
  const char* shape =
      "bridge.sites must be tables ([[bridge.sites]]) with name = \"...\" and, for a site this "
      "one dials, address = \"host:port\"";
  if (!v.is_array()) return shape;
  out.clear();
  for (auto& t : v.as_array()) {
    if (!t.is_table()) return shape;
    BridgeSite s;
    std::string where = "bridge.sites[" + std::to_string(out.size() + 1) + "]";
    for (auto& [k, x] : t.as_table()) {
      if (k == "name") {
        if (!x.is_string()) return where + ".name must be a string";
        s.name = x.as_string();
      } else if (k == "address") {
        if (!x.is_string()) return where + ".address must be a string \"host:port\"";
        if (auto err = parse_endpoint(x.as_string(), s.address); !err.empty())
          return where + ".address: " + err;
      } else {
        return "unknown key " + where + "." + k + " (name, address)";
      }
    }
    if (s.name.empty()) return where + " has no name";
    out.push_back(std::move(s));
  }
  return {};
}

}  // namespace

std::string load_bridge_section(const void* table, BridgeSettings& b) {
  const auto& section = *static_cast<const toml::value*>(table);
  for (auto& [k, v] : section.as_table()) {
    std::string err;
    if (k == "site") {
      if (!v.is_string()) return "bridge.site must be a string";
      b.site = v.as_string();
    } else if (k == "listen") {
      if (!v.is_string()) return "bridge.listen must be a string \"host:port\" or \"off\"";
      if ((err = parse_endpoint(v.as_string(), b.listen)).empty()) continue;
      return "bridge.listen: " + err;
    } else if (k == "sites") {
      err = load_sites(v, b.sites);
    } else if (k == "groups") {
      if (!v.is_array()) return "bridge.groups must be a list of group names or patterns";
      b.groups.clear();
      for (auto& g : v.as_array()) {
        if (!g.is_string()) return "bridge.groups must hold strings";
        b.groups.push_back(g.as_string());
      }
    } else if (k == "key_file") {
      if (!v.is_string()) return "bridge.key_file must be a string";
      b.key_file = v.as_string();
    } else if (k == "compress") {
      if (!v.is_boolean()) return "bridge.compress must be true or false";
      b.compress = v.as_boolean();
    } else if (k == "encrypt") {
      if (!v.is_boolean()) return "bridge.encrypt must be true or false";
      b.encrypt = v.as_boolean();
    } else if (k == "queue_bytes") {
      err = get_count("queue_bytes", v, b.queue_bytes, 1u << 20, kMaxQueueBytes);
    } else if (k == "window_bytes") {
      err = get_count("window_bytes", v, b.window_bytes, 64u << 10, 1ull << 30);
    } else if (k == "heartbeat_ms") {
      err = get_count("heartbeat_ms", v, b.heartbeat_ms, 10, 600000);
    } else if (k == "link_timeout_ms") {
      err = get_count("link_timeout_ms", v, b.link_timeout_ms, 20, 3600000);
    } else if (k == "backoff_min_ms") {
      err = get_count("backoff_min_ms", v, b.backoff_min_ms, 1, 600000);
    } else if (k == "backoff_max_ms") {
      err = get_count("backoff_max_ms", v, b.backoff_max_ms, 1, 3600000);
    } else {
      return "unknown key bridge." + k +
             " (site, listen, sites, groups, key_file, compress, encrypt, queue_bytes, window_bytes, "
             "heartbeat_ms, link_timeout_ms, backoff_min_ms, backoff_max_ms)";
    }
    if (!err.empty()) return err;
  }
  return {};
}

std::vector<std::string> site_daemons(const Config& cfg) {
  std::vector<std::string> out;
  for (auto& d : cfg.ring.daemons) out.push_back(d.id == cfg.ring.id ? cfg.name : d.name);
  if (out.empty()) out.push_back(cfg.name);
  return out;
}

std::string validate_bridge(const Config& cfg) {
  const BridgeSettings& b = cfg.bridge;
  if (!b.enabled()) {
    if (!b.sites.empty() || !b.listen.host.empty())
      return "bridge: bridge.site is not set (this site's name): the bridge needs it";
    return {};
  }
  auto valid_site = [](const std::string& s) {
    if (s.empty() || s.size() > 31) return false;
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
        return false;
    return true;
  };
  if (!valid_site(b.site))
    return "bridge.site = '" + b.site + "': 1..31 letters, digits, '-', '_' or '.'";
  if (b.sites.empty()) return "bridge.sites lists no other site ([[bridge.sites]] name = ...)";
  std::set<std::string> seen;
  for (auto& s : b.sites) {
    if (!valid_site(s.name))
      return "bridge.sites: name '" + s.name + "': 1..31 letters, digits, '-', '_' or '.'";
    if (s.name == b.site) return "bridge.sites names this site (" + b.site + ") itself";
    if (!seen.insert(s.name).second) return "bridge.sites names site " + s.name + " twice";
    if (b.site < s.name && s.address.host.empty())
      return "bridge.sites: site " + s.name + " needs an address: this site (" + b.site +
             ") dials the sites whose names sort after its own";
  }
  if (b.key_file.empty())
    return "bridge.key_file is not set: both sites need the same link key (agentd keygen FILE)";
  if (b.backoff_min_ms > b.backoff_max_ms)
    return "bridge.backoff_min_ms must not exceed bridge.backoff_max_ms";
  if (b.heartbeat_ms >= b.link_timeout_ms)
    return "bridge.heartbeat_ms must be below bridge.link_timeout_ms";
  for (auto& g : b.groups) {
    std::string plain;
    for (char c : g)
      if (c != '*' && c != '?') plain += c;
    if (g.empty() || g.size() > names::kMaxGroupName || (!plain.empty() && !names::valid_group(plain)))
      return "bridge.groups: '" + g + "' is not a group name or pattern";
  }
  // Remote members keep their names: every daemon of the site needs one, so that names of
  // different sites can be told apart.
  for (auto& d : cfg.ring.daemons)
    if (d.id != cfg.ring.id && d.name.empty())
      return "bridge: ring.daemons entry with id " + std::to_string(d.id) +
             " has no name; the bridge needs every daemon's name (name = \"...\")";
  return {};
}

std::string load_bridge_key(Config& cfg) {
  if (!cfg.bridge.enabled()) return {};
  ringseal::Key k;
  if (auto err = ringseal::load_key_file(cfg.bridge.key_file, k); !err.empty()) {
    // load_key_file names ring.key_file; this is the bridge's.
    if (err.rfind("ring.key_file", 0) == 0) err.replace(0, 13, "bridge.key_file");
    return err;
  }
  cfg.bridge.key.assign(reinterpret_cast<const char*>(k.data()), k.size());
  return {};
}

}  // namespace agent::daemon
