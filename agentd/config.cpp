#include "agentd/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <toml.hpp>

#include "transport/client_protocol.h"
#include "transport/names.h"

namespace agent::daemon {

std::string default_daemon_name() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) return "agentd";
  std::string name;
  for (const char* p = host; *p && *p != '.' && name.size() < names::kMaxDaemonName; ++p)
    if (names::valid_char(*p)) name += *p;
  return name.empty() ? "agentd" : name;
}

std::string default_state_dir(const std::string& daemon_name) {
  // One directory per name, and only names that cannot leave kStateBase ("..", "a/b").
  std::string dir = std::string(kStateBase) + "/";
  for (size_t i = 0; i < daemon_name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(daemon_name[i]);
    if (std::isalnum(c) || c == '-' || c == '_' || (c == '.' && i > 0)) {
      dir += static_cast<char>(c);
    } else {
      char esc[4];
      std::snprintf(esc, sizeof esc, "%%%02X", c);
      dir += esc;
    }
  }
  return dir;
}

std::string parse_endpoint(const std::string& text, Endpoint& out) {
  if (text.empty() || text == "off") {
    out = Endpoint{};
    return {};
  }
  std::string host = "127.0.0.1", port;
  if (text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return "'" + text + "' is not [address]:port";
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (auto colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  } else {
    port = text;
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return "'" + text + "' has no valid port (expected host:port, [v6]:port or port)";
  unsigned long p = std::stoul(port);
  if (p == 0 || p > 65535) return "port in '" + text + "' must be 1..65535";
  out.host = host.empty() ? "0.0.0.0" : host;
  out.port = static_cast<uint16_t>(p);
  return {};
}

namespace {

// ---- The integer settings: one row each, used to load, check and compare them.

enum class Unit { kCount, kBytes, kPackets, kMs, kUsAsMs /* fractional ms in the file, µs kept */ };

struct IntKey {
  const char* key;
  Unit unit;
  uint64_t min, max;  // in the unit kept (µs for kUsAsMs)
  const char* zero;   // what 0 means when allowed below min-1 ("" if nothing special)
  uint64_t (*get)(const Config&);
  void (*set)(Config&, uint64_t);
};

#define AGENT_FIELD(f)                                  \
  [](const Config& c) -> uint64_t { return c.f; },      \
      [](Config& c, uint64_t v) { c.f = static_cast<decltype(c.f)>(v); }

const IntKey kIntKeys[] = {
    {"clients.max_clients", Unit::kCount, 1, kMaxClients, "", AGENT_FIELD(max_clients)},
    {"clients.hello_timeout_ms", Unit::kMs, 1, kMaxTimeoutUs / 1000, "",
     AGENT_FIELD(hello_timeout_ms)},
    {"clients.max_message_bytes", Unit::kBytes, 1, proto::kDefaultMaxMessageBytes, "",
     AGENT_FIELD(max_message_bytes)},
    {"clients.queue_limit_bytes", Unit::kBytes, 1, kMaxQueueBytes, "",
     AGENT_FIELD(client_queue_bytes)},
    {"clients.queue_total_bytes", Unit::kBytes, 1, kMaxQueueBytes, "",
     AGENT_FIELD(client_queue_total_bytes)},
    {"clients.max_groups", Unit::kCount, 1, kMaxGroupsPerClient, "",
     AGENT_FIELD(max_groups_per_client)},
    {"clients.socket_buffer_bytes", Unit::kBytes, 0, kMaxSocketBufferBytes,
     "the system's default", AGENT_FIELD(client_socket_buffer_bytes)},
    {"ring.id", Unit::kCount, 1, kMaxNodeId, "", AGENT_FIELD(ring.id)},
    {"ring.packet_bytes", Unit::kBytes, kMinPacketBytes, kMaxPacketBytes, "",
     AGENT_FIELD(ring.packet_bytes)},
    {"ring.global_window", Unit::kPackets, 1, kMaxWindow, "", AGENT_FIELD(ring.global_window)},
    {"ring.personal_window", Unit::kPackets, 1, kMaxWindow, "", AGENT_FIELD(ring.personal_window)},
    {"ring.accelerated_window", Unit::kPackets, 0, kMaxWindow, "off",
     AGENT_FIELD(ring.accelerated_window)},
    {"ring.max_outstanding", Unit::kPackets, 1, kMaxWindow, "", AGENT_FIELD(ring.max_outstanding)},
    {"ring.max_pending_bytes", Unit::kBytes, 1, kMaxQueueBytes, "",
     AGENT_FIELD(ring.max_pending_bytes)},
    {"ring.token_retransmit_ms", Unit::kUsAsMs, 1, kMaxTimeoutUs, "",
     AGENT_FIELD(ring.token_retransmit_us)},
    {"ring.token_hold_ms", Unit::kUsAsMs, 0, kMaxTimeoutUs, "automatic",
     AGENT_FIELD(ring.token_hold_us)},
    {"ring.min_rotation_ms", Unit::kUsAsMs, 0, kMaxTimeoutUs, "off",
     AGENT_FIELD(ring.min_rotation_us)},
    {"ring.token_loss_ms", Unit::kUsAsMs, 1, kMaxTimeoutUs, "", AGENT_FIELD(ring.token_loss_us)},
    {"ring.join_timeout_ms", Unit::kUsAsMs, 1, kMaxTimeoutUs, "",
     AGENT_FIELD(ring.join_timeout_us)},
    {"ring.consensus_timeout_ms", Unit::kUsAsMs, 1, kMaxTimeoutUs, "",
     AGENT_FIELD(ring.consensus_timeout_us)},
};

#undef AGENT_FIELD

// The other keys, for unknown-key suggestions and reload comparisons.
const char* kOtherKeys[] = {"daemon.name",      "daemon.log_level", "daemon.state_dir",
                            "daemon.priority",  "clients.unix_socket", "clients.tcp",
                            "ring.udp_offload", "ring.multicast",   "ring.daemons"};
const char* kDaemonEntryKeys[] = {"id", "address", "port", "name"};

const IntKey* find_int_key(const std::string& key) {
  for (auto& k : kIntKeys)
    if (key == k.key) return &k;
  return nullptr;
}

// Milliseconds from µs: "20", "0.5", "0.001".
std::string ms_text(uint64_t us) {
  std::string s = std::to_string(us / 1000);
  if (uint64_t frac = us % 1000) {
    char buf[8];
    std::snprintf(buf, sizeof buf, ".%03u", static_cast<unsigned>(frac));
    std::string f = buf;
    while (f.back() == '0') f.pop_back();
    s += f;
  }
  return s;
}

// A byte count with its binary unit when it has an exact one: "67108864 bytes (64 MiB)".
std::string bytes_text(uint64_t n, const char* unit = "") {
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  std::string s = std::to_string(n) + unit;
  uint64_t v = n;
  int u = -1;
  while (v >= 1024 && v % 1024 == 0 && u < 3) {
    v /= 1024;
    ++u;
  }
  if (u >= 0) s += " (" + std::to_string(v) + " " + units[u] + ")";
  return s;
}

std::string value_text(const IntKey& k, uint64_t v) {
  return k.unit == Unit::kUsAsMs ? ms_text(v) : std::to_string(v);
}

// "must be 1..1048576" with the unit, and what 0 means where it is allowed.
std::string range_text(const IntKey& k) {
  std::string s = "must be ";
  if (k.unit == Unit::kUsAsMs) s += ms_text(k.min) + ".." + ms_text(k.max) + " ms";
  else if (k.unit == Unit::kBytes) s += std::to_string(k.min) + ".." + bytes_text(k.max, " bytes");
  else if (k.unit == Unit::kMs) s += std::to_string(k.min) + ".." + std::to_string(k.max) + " ms";
  else if (k.unit == Unit::kPackets) s += std::to_string(k.min) + ".." + std::to_string(k.max) + " packets";
  else s += std::to_string(k.min) + ".." + std::to_string(k.max);
  if (k.min == 0 && *k.zero) s += std::string(" (0: ") + k.zero + ")";
  return s;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean clients.max_clients?)" for a key a typo away from a known one.
std::string suggestion(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = 3;
  for (auto& k : known)
    if (size_t d = edit_distance(key, k); d < best_d) {
      best_d = d;
      best = k;
    }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

std::vector<std::string> known_keys() {
  std::vector<std::string> v;
  for (auto& k : kIntKeys) v.push_back(k.key);
  for (auto* k : kOtherKeys) v.push_back(k);
  return v;
}

const char* type_name(const toml::value& v) {
  switch (v.type()) {
    case toml::value_t::boolean: return "a boolean";
    case toml::value_t::integer: return "an integer";
    case toml::value_t::floating: return "a number";
    case toml::value_t::string: return "a string";
    case toml::value_t::array: return "an array";
    case toml::value_t::table: return "a table";
    default: return "a date or time";
  }
}

// The value as written, short: 5, -1.5, "text", true, a table.
std::string show(const toml::value& v) {
  std::ostringstream s;
  if (v.is_integer()) s << v.as_integer();
  else if (v.is_floating()) s << v.as_floating();
  else if (v.is_string()) s << '"' << v.as_string().str << '"';
  else if (v.is_boolean()) s << (v.as_boolean() ? "true" : "false");
  else s << type_name(v);
  return s.str();
}

// Reads a configuration file whole: "" or a message with the path and the system's reason.
std::string read_file(const std::string& path, std::string& text) {
  auto fail = [&](const std::string& why) {
    return "cannot read configuration file " + path + ": " + why;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  struct stat sb;
  if (::fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
    int err = S_ISDIR(sb.st_mode) ? EISDIR : errno;
    ::close(fd);
    return fail(std::strerror(err));
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return fail(std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigFileBytes) {
      ::close(fd);
      return fail("larger than " + bytes_text(kMaxConfigFileBytes, " bytes"));
    }
  }
  ::close(fd);
  return {};
}

// Loads one file; problems are collected with their line, to be reported in file order.
class Loader {
 public:
  Loader(const std::string& path, Config& cfg) : path_(path), cfg_(cfg) {}

  void load(const toml::value& root) {
    for (auto& [k, v] : root.as_table()) {
      if (k != "daemon" && k != "clients" && k != "ring") {
        problem(v, "unknown section [" + k + "]" + suggestion(k, {"daemon", "clients", "ring"}));
      } else if (!v.is_table()) {
        problem(v, k + " = " + show(v) + ": must be a table [" + k + "]");
      } else {
        for (auto& [key, value] : v.as_table()) load_key(k + "." + key, value);
      }
    }
  }

  std::string messages() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](auto& a, auto& b) { return a.first < b.first; });
    std::string out;
    for (auto& p : problems_) out += (out.empty() ? "" : "\n") + p.second;
    return out;
  }

 private:
  std::string where(const toml::value& v) {
    auto line = v.location().line();
    return line > 0 ? path_ + ":" + std::to_string(line) : path_;
  }
  void problem(const toml::value& v, const std::string& text) {
    problems_.emplace_back(v.location().line(), where(v) + ": " + text);
  }
  bool expect(const std::string& key, const toml::value& v, bool ok, const char* what) {
    if (!ok) problem(v, key + " = " + show(v) + ": must be " + what + ", not " + type_name(v));
    return ok;
  }

  // An integer row of kIntKeys, checked against its range before it is narrowed.
  bool int_value(const std::string& key, const IntKey& k, const toml::value& v, uint64_t& out) {
    if (k.unit == Unit::kUsAsMs) {
      if (!expect(key, v, v.is_integer() || v.is_floating(), "a number of milliseconds"))
        return false;
      double us = v.is_integer() ? static_cast<double>(v.as_integer()) * 1000.0
                                 : v.as_floating() * 1000.0;
      if (!std::isfinite(us) || std::round(us) < static_cast<double>(k.min) ||
          std::round(us) > static_cast<double>(k.max)) {
        problem(v, key + " = " + show(v) + ": " + range_text(k));
        return false;
      }
      out = static_cast<uint64_t>(std::llround(us));
      return true;
    }
    if (!expect(key, v, v.is_integer(), "an integer")) return false;
    int64_t i = v.as_integer();
    if (i < 0 || static_cast<uint64_t>(i) < k.min || static_cast<uint64_t>(i) > k.max) {
      problem(v, key + " = " + show(v) + ": " + range_text(k));
      return false;
    }
    out = static_cast<uint64_t>(i);
    return true;
  }

  bool string_value(const std::string& key, const toml::value& v, std::string& out) {
    if (!expect(key, v, v.is_string(), "a string")) return false;
    out = v.as_string().str;
    return true;
  }

  void load_key(const std::string& key, const toml::value& v) {
    cfg_.origin[key] = where(v);
    std::string s;
    if (const IntKey* k = find_int_key(key)) {
      uint64_t n;
      if (int_value(key, *k, v, n)) k->set(cfg_, n);
    } else if (key == "daemon.name") {
      if (string_value(key, v, s)) cfg_.name = s;
    } else if (key == "daemon.state_dir") {
      if (string_value(key, v, s)) cfg_.state_dir = s;
    } else if (key == "daemon.log_level") {
      if (string_value(key, v, s) && !log::parse_level(s, cfg_.log_level))
        problem(v, key + " = " + show(v) + ": must be error, warn, info or debug");
    } else if (key == "daemon.priority") {
      if (!string_value(key, v, s)) return;
      if (s == "normal") cfg_.priority = Config::Priority::kNormal;
      else if (s == "high") cfg_.priority = Config::Priority::kHigh;
      else if (s == "realtime") cfg_.priority = Config::Priority::kRealtime;
      else problem(v, key + " = " + show(v) + ": must be normal, high or realtime");
    } else if (key == "clients.unix_socket") {
      if (string_value(key, v, s)) cfg_.unix_socket = s;
    } else if (key == "clients.tcp" || key == "ring.multicast") {
      if (!string_value(key, v, s)) return;
      Endpoint e;
      if (auto err = parse_endpoint(s, e); !err.empty()) problem(v, key + " = " + show(v) + ": " + err);
      else (key == "clients.tcp" ? cfg_.tcp : cfg_.ring.multicast) = e;
    } else if (key == "ring.udp_offload") {
      if (expect(key, v, v.is_boolean(), "true or false")) cfg_.ring.udp_offload = v.as_boolean();
    } else if (key == "ring.daemons") {
      load_daemons(v);
    } else {
      problem(v, "unknown key " + key + suggestion(key, known_keys()));
    }
  }

  void load_daemons(const toml::value& v) {
    if (!v.is_array()) {
      problem(v, "ring.daemons must be [[ring.daemons]] tables, not " + std::string(type_name(v)));
      return;
    }
    cfg_.ring.daemons.clear();
    size_t n = 0;
    for (auto& d : v.as_array()) {
      std::string entry = "ring.daemons[" + std::to_string(++n) + "]";
      if (!d.is_table()) {
        problem(d, entry + " must be a table, not " + std::string(type_name(d)));
        continue;
      }
      cfg_.origin[entry] = where(d);
      RingDaemon rd;
      bool has_id = false, has_address = false, has_port = false, ok = true;
      for (auto& [k, dv] : d.as_table()) {
        std::string key = entry + "." + k;
        cfg_.origin[key] = where(dv);
        uint64_t num = 0;
        if (k == "id") {
          static const IntKey id{"", Unit::kCount, 1, kMaxNodeId, "", nullptr, nullptr};
          has_id = true;
          if (int_value(key, id, dv, num)) rd.id = static_cast<uint32_t>(num);
          else ok = false;
        } else if (k == "port") {
          static const IntKey port{"", Unit::kCount, 1, 65535, "", nullptr, nullptr};
          has_port = true;
          if (int_value(key, port, dv, num)) rd.port = static_cast<uint16_t>(num);
          else ok = false;
        } else if (k == "address") {
          has_address = true;
          ok &= string_value(key, dv, rd.address);
          if (ok && rd.address.empty()) {
            problem(dv, key + " = \"\": must be an address or host name");
            ok = false;
          }
        } else if (k == "name") {
          ok &= string_value(key, dv, rd.name);
        } else {
          std::vector<std::string> known(std::begin(kDaemonEntryKeys), std::end(kDaemonEntryKeys));
          problem(dv, "unknown key " + key + suggestion(k, known));
          ok = false;
        }
      }
      std::string missing;
      const std::pair<bool, const char*> needed[] = {
          {has_id, "id"}, {has_address, "address"}, {has_port, "port"}};
      for (auto& [has, what] : needed)
        if (!has) missing += std::string(missing.empty() ? "" : ", ") + what;
      if (!missing.empty()) {
        problem(d, entry + " lacks " + missing + " (every daemon needs id, address and port)");
        ok = false;
      }
      if (ok) cfg_.ring.daemons.push_back(rd);
    }
  }

  const std::string& path_;
  Config& cfg_;
  std::vector<std::pair<uint32_t, std::string>> problems_;  // (line, message)
};

}  // namespace

std::string load_config_file(const std::string& path, Config& cfg) {
  std::string text;
  if (auto err = read_file(path, text); !err.empty()) return err;
  toml::value root;
  try {
    std::istringstream in(text);
    root = toml::parse(in, path);
  } catch (const toml::syntax_error& e) {
    // toml11's text: "[error] toml::function: what\n --> file\n   | excerpt". Keep what and
    // the excerpt, put file:line in front.
    std::string what = e.what();
    auto eol = what.find('\n');
    std::string first = what.substr(0, eol);
    if (auto colon = first.find(": "); first.rfind("[error]", 0) == 0 && colon != std::string::npos)
      first = first.substr(colon + 2);
    std::string rest = eol == std::string::npos ? "" : what.substr(eol);
    return path + ":" + std::to_string(e.location().line()) + ": syntax error: " + first + rest;
  } catch (const std::exception& e) {
    return path + ": " + e.what();
  }
  Loader loader(path, cfg);
  loader.load(root);
  return loader.messages();
}

uint64_t token_hold_for(const RingSettings& r) {
  if (r.token_hold_us != 0) return r.token_hold_us;
  uint64_t daemons = std::max<uint64_t>(1, r.daemons.size());
  return std::clamp<uint64_t>(r.token_loss_us / (4 * daemons), 1000, 50000);
}

namespace {

// "file:line: " (or "--tcp: ") where key was set, "" where it keeps its default.
std::string origin_of(const Config& cfg, const std::string& key) {
  auto it = cfg.origin.find(key);
  return it == cfg.origin.end() ? "" : it->second + ": ";
}

// An address as text that two spellings of one IP address share ("::1", "0::1").
std::string canonical_address(const std::string& a) {
  char buf[INET6_ADDRSTRLEN];
  unsigned char bin[sizeof(in6_addr)];
  for (int family : {AF_INET, AF_INET6})
    if (::inet_pton(family, a.c_str(), bin) == 1 && ::inet_ntop(family, bin, buf, sizeof buf))
      return buf;
  std::string lower = a;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

class Checker {
 public:
  explicit Checker(const Config& cfg) : cfg_(cfg) {}

  std::string run() {
    for (auto& k : kIntKeys) {
      uint64_t v = k.get(cfg_);
      if (v < k.min || v > k.max) say(k.key, value_text(k, v) + ": " + range_text(k));
    }
    if (!out_.empty()) return out_;  // the rules between keys assume values in range
    check_daemon();
    check_clients();
    check_ring_daemons();
    check_ring();
    return out_;
  }

 private:
  // "origin: key = value: text"; value already in text.
  void say(const std::string& key, const std::string& value_and_why) {
    out_ += (out_.empty() ? "" : "\n") + origin_of(cfg_, key) + key + " = " + value_and_why;
  }
  std::string num(const char* key) { return value_text(*find_int_key(key), find_int_key(key)->get(cfg_)); }

  void check_daemon() {
    if (!names::valid_daemon_name(cfg_.name))
      say("daemon.name", "\"" + cfg_.name + "\": must be 1.." +
                             std::to_string(names::kMaxDaemonName) +
                             " printable characters without space or '#'");
  }

  void check_clients() {
    if (cfg_.unix_socket.empty() && cfg_.tcp.host.empty())
      say("clients.unix_socket", "\"\": no client listener (clients.tcp is off too): set one");
    if (cfg_.unix_socket.size() >= sizeof(sockaddr_un{}.sun_path))
      say("clients.unix_socket", "\"" + cfg_.unix_socket + "\": longer than " +
                                     std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
    if (cfg_.client_queue_bytes < 2ull * cfg_.max_message_bytes)
      say("clients.queue_limit_bytes", num("clients.queue_limit_bytes") +
                                           ": must be at least twice clients.max_message_bytes (" +
                                           num("clients.max_message_bytes") + ")");
    if (cfg_.client_queue_total_bytes < cfg_.client_queue_bytes)
      say("clients.queue_total_bytes", num("clients.queue_total_bytes") +
                                           ": must be at least clients.queue_limit_bytes (" +
                                           num("clients.queue_limit_bytes") + ")");
  }

  void check_ring_daemons() {
    const RingSettings& r = cfg_.ring;
    if (r.daemons.empty()) return;
    if (r.daemons.size() > kMaxRingDaemons)
      say("ring.daemons", std::to_string(r.daemons.size()) + " daemons: at most " +
                              std::to_string(kMaxRingDaemons));
    bool self = false;
    for (size_t i = 0; i < r.daemons.size(); ++i) {
      const RingDaemon& d = r.daemons[i];
      std::string entry = "ring.daemons[" + std::to_string(i + 1) + "]";
      if (d.id < 1 || d.id > kMaxNodeId)
        say(entry + ".id", std::to_string(d.id) + ": must be 1.." + std::to_string(kMaxNodeId));
      if (d.address.empty() || d.port == 0)
        say(entry, "id " + std::to_string(d.id) + ": needs an address and a port (1..65535)");
      if (!d.name.empty() && !names::valid_daemon_name(d.name))
        say(entry + ".name", "\"" + d.name + "\": not a daemon name (1..19 printable characters "
                                             "without space or '#')");
      if (d.id == r.id) {
        self = true;
        if (!d.name.empty() && d.name != cfg_.name)
          say(entry + ".name", "\"" + d.name + "\": this daemon (ring.id " +
                                   std::to_string(r.id) + ") is named \"" + cfg_.name +
                                   "\" (daemon.name)");
      }
      for (size_t j = 0; j < i; ++j) {
        const RingDaemon& e = r.daemons[j];
        std::string other = "ring.daemons[" + std::to_string(j + 1) + "]";
        if (e.id == d.id)
          say(entry + ".id", std::to_string(d.id) + ": " + other + " has this id too");
        if (!d.name.empty() && e.name == d.name)
          say(entry + ".name", "\"" + d.name + "\": " + other + " has this name too (two clients "
                                                          "would share one private name)");
        if (e.port == d.port && canonical_address(e.address) == canonical_address(d.address))
          say(entry, d.address + ":" + std::to_string(d.port) + ": " + other + " (id " +
                         std::to_string(e.id) + ") has this address and port too");
      }
    }
    if (!self)
      say("ring.id", std::to_string(r.id) + ": not among ring.daemons (ids " + ids() + ")");
  }

  std::string ids() {
    std::string s;
    for (auto& d : cfg_.ring.daemons) s += (s.empty() ? "" : ", ") + std::to_string(d.id);
    return s;
  }

  void check_ring() {
    const RingSettings& r = cfg_.ring;
    if (!r.multicast.host.empty()) {
      in_addr a{};
      if (::inet_pton(AF_INET, r.multicast.host.c_str(), &a) != 1 || !IN_MULTICAST(ntohl(a.s_addr)))
        say("ring.multicast", "\"" + r.multicast.host + ":" + std::to_string(r.multicast.port) +
                                  "\": must be an IPv4 multicast address (224.0.0.0/4) and port");
    }
    if (r.accelerated_window > r.personal_window)
      say("ring.accelerated_window", num("ring.accelerated_window") +
                                         ": must be at most ring.personal_window (" +
                                         num("ring.personal_window") + ")");
    if (r.max_pending_bytes < cfg_.max_message_bytes)
      say("ring.max_pending_bytes", num("ring.max_pending_bytes") +
                                        ": must be at least clients.max_message_bytes (" +
                                        num("clients.max_message_bytes") + ")");
    // A paced token waits at most min_rotation at a daemon; its predecessor must not resend it.
    if (r.min_rotation_us * 2 > r.token_retransmit_us)
      say("ring.min_rotation_ms", num("ring.min_rotation_ms") +
                                      ": must be at most half of ring.token_retransmit_ms (" +
                                      num("ring.token_retransmit_ms") + ")");
    // An idle token rests token_hold at every daemon: a rotation of a quiet ring must fit in
    // token_loss with room to spare, or a quiet ring would reconfigure for ever.
    uint64_t daemons = std::max<uint64_t>(1, r.daemons.size());
    uint64_t hold = token_hold_for(r);
    if (r.token_loss_us < 2 * daemons * hold)
      say("ring.token_loss_ms", num("ring.token_loss_ms") + ": must be at least 2 x daemons x "
                                "token_hold_ms (" + ms_text(2 * daemons * hold) +
                                "): an idle token would be taken for lost");
    if (r.token_loss_us < 2 * r.token_retransmit_us)
      say("ring.token_loss_ms", num("ring.token_loss_ms") +
                                    ": must be at least twice ring.token_retransmit_ms (" +
                                    num("ring.token_retransmit_ms") + ")");
    if (r.consensus_timeout_us < 2 * r.join_timeout_us)
      say("ring.consensus_timeout_ms", num("ring.consensus_timeout_ms") +
                                           ": must be at least twice ring.join_timeout_ms (" +
                                           num("ring.join_timeout_ms") + ")");
  }

  const Config& cfg_;
  std::string out_;
};

}  // namespace

std::string validate(const Config& cfg) { return Checker(cfg).run(); }

std::vector<std::string> changed_keys(const Config& a, const Config& b) {
  std::vector<std::string> keys;
  auto differ = [&](const char* key, bool d) {
    if (d) keys.push_back(key);
  };
  differ("daemon.name", a.name != b.name);
  differ("daemon.log_level", a.log_level != b.log_level);
  differ("daemon.state_dir", a.state_dir != b.state_dir);
  differ("daemon.priority", a.priority != b.priority);
  differ("clients.unix_socket", a.unix_socket != b.unix_socket);
  differ("clients.tcp", a.tcp.host != b.tcp.host || a.tcp.port != b.tcp.port);
  for (auto& k : kIntKeys) differ(k.key, k.get(a) != k.get(b));
  differ("ring.udp_offload", a.ring.udp_offload != b.ring.udp_offload);
  differ("ring.multicast", a.ring.multicast.host != b.ring.multicast.host ||
                               a.ring.multicast.port != b.ring.multicast.port);
  auto same_daemon = [](const RingDaemon& x, const RingDaemon& y) {
    return x.id == y.id && x.address == y.address && x.port == y.port && x.name == y.name;
  };
  differ("ring.daemons", !std::equal(a.ring.daemons.begin(), a.ring.daemons.end(),
                                     b.ring.daemons.begin(), b.ring.daemons.end(), same_daemon));
  return keys;
}

}  // namespace agent::daemon
