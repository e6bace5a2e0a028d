#include "agentd/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <grp.h>
#include <pwd.h>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <toml.hpp>

#include "agentd/config_keys.h"
#include "transport/names.h"

namespace agent::daemon {

std::string parse_principal(const std::string& text, Principal& p) {
  p = Principal{};
  p.text = text;
  auto colon = text.find(':');
  std::string kind = text.substr(0, colon), what = colon == std::string::npos ? "" : text.substr(colon + 1);
  auto number = [&](uint32_t& out) {
    if (what.empty() || what.size() > 10 || what.find_first_not_of("0123456789") != std::string::npos ||
        std::stoull(what) > 0xffffffffull)
      return false;
    out = static_cast<uint32_t>(std::stoull(what));
    return true;
  };
  if (text == "*") return {};
  if (kind == "user") {
    const passwd* pw = what.empty() ? nullptr : getpwnam(what.c_str());
    if (!pw) return "no such user on this host";
    p.kind = Principal::Kind::kUid;
    p.id = pw->pw_uid;
  } else if (kind == "group") {
    const group* gr = what.empty() ? nullptr : getgrnam(what.c_str());
    if (!gr) return "no such group on this host";
    p.kind = Principal::Kind::kGid;
    p.id = gr->gr_gid;
  } else if (kind == "uid" || kind == "gid") {
    if (!number(p.id)) return "must be " + kind + ":NUMBER";
    p.kind = kind == "uid" ? Principal::Kind::kUid : Principal::Kind::kGid;
  } else if (kind == "tcp") {
    if (what.empty()) return "must be tcp:* or tcp:ADDRESS";
    if (what == "*") {
      p.kind = Principal::Kind::kTcpAny;
    } else {
      p.kind = Principal::Kind::kTcpAddress;
      p.address = what;
    }
  } else if (kind == "tcpuser") {
    if (what == "*") {
      p.kind = Principal::Kind::kTcpUserAny;
    } else if (clientauth::valid_name(what)) {
      p.kind = Principal::Kind::kTcpUser;
      p.address = what;
    } else {
      return "must be tcpuser:* or tcpuser:NAME (a name of clients.secrets_file: 1.." +
             std::to_string(clientauth::kMaxNameBytes) + " of A-Z a-z 0-9 . _ @ -)";
    }
  } else {
    return "must be *, user:NAME, uid:N, group:NAME, gid:N, tcp:*, tcp:ADDRESS, tcpuser:* or "
           "tcpuser:NAME";
  }
  return {};
}

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

using namespace config_keys;

const char* kDaemonEntryKeys[] = {"id", "address", "port", "name"};

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

}  // namespace

size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, cp = c & 0x07;
    } else {
      return i;
    }
    if (s.size() - i <= n) return i;
    for (size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return i;
      cp = cp << 6 | (d & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return i;
    i += n + 1;
  }
  return std::string::npos;
}

namespace {

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
      if (k == "access") {
        load_access(v);
      } else if (k != "daemon" && k != "clients" && k != "ring" && k != "persist" &&
                 k != "bridge" && k != "admin") {
        problem(v, "unknown section [" + k + "]" +
                       suggestion(k, {"daemon", "clients", "ring", "persist", "access", "bridge",
                                      "admin"}));
      } else if (!v.is_table()) {
        problem(v, k + " = " + show(v) + ": must be a table [" + k + "]");
      } else if (k == "persist") {
        if (auto err = load_persist_section(&v, cfg_.persist); !err.empty()) problem(v, err);
      } else if (k == "bridge") {
        if (auto err = load_bridge_section(&v, cfg_.bridge); !err.empty()) problem(v, err);
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

  // An integer key (config_keys), checked against its range before it is narrowed.
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
    } else if (key == "clients.unix_mode") {
      if (!string_value(key, v, s)) return;
      char* end = nullptr;
      unsigned long mode = std::strtoul(s.c_str(), &end, 8);
      if (s.empty() || *end || mode > 0777 || (mode & 0600) != 0600)
        problem(v, key + " = " + show(v) + ": must be octal permissions like \"0660\" that let "
                                             "the daemon's user read and write");
      else
        cfg_.unix_mode = static_cast<uint32_t>(mode);
    } else if (key == "clients.unix_group") {
      if (!string_value(key, v, s)) return;
      if (!s.empty() && !getgrnam(s.c_str()))
        problem(v, key + " = " + show(v) + ": no such group on this host");
      else
        cfg_.unix_group = s;
    } else if (key == "clients.tcp" || key == "ring.multicast") {
      if (!string_value(key, v, s)) return;
      Endpoint e;
      if (auto err = parse_endpoint(s, e); !err.empty()) problem(v, key + " = " + show(v) + ": " + err);
      else (key == "clients.tcp" ? cfg_.tcp : cfg_.ring.multicast) = e;
    } else if (key == "clients.tcp_auth") {
      if (!string_value(key, v, s)) return;
      if (s == "secret") cfg_.tcp_auth = Config::TcpAuth::kSecret;
      else if (s == "none") cfg_.tcp_auth = Config::TcpAuth::kNone;
      else problem(v, key + " = " + show(v) + ": must be \"secret\" (TCP clients prove a shared "
                                             "secret, clients.secrets_file) or \"none\"");
    } else if (key == "clients.slow_policy") {
      if (!string_value(key, v, s)) return;
      if (s == "disconnect") cfg_.slow_policy = Config::SlowPolicy::kDisconnect;
      else if (s == "backpressure") cfg_.slow_policy = Config::SlowPolicy::kBackpressure;
      else problem(v, key + " = " + show(v) + ": must be \"disconnect\" (a client that does not "
                                             "read is dropped, error 14) or \"backpressure\" "
                                             "(it holds the ring's senders back)");
    } else if (key == "clients.secrets_file") {
      if (!string_value(key, v, s)) return;
      if (s.empty()) problem(v, key + " = \"\": must name a secrets file (or leave the key out)");
      else cfg_.secrets_file = s;
    } else if (key == "ring.udp_offload") {
      if (expect(key, v, v.is_boolean(), "true or false")) cfg_.ring.udp_offload = v.as_boolean();
    } else if (key == "ring.encrypt") {
      if (expect(key, v, v.is_boolean(), "true or false")) cfg_.ring.encrypt = v.as_boolean();
    } else if (key == "ring.key_file" || key == "ring.accept_key_file") {
      if (!string_value(key, v, s)) return;
      if (s.empty()) problem(v, key + " = \"\": must name a key file" +
                                    (key == "ring.key_file" ? " (or be \"none\")" : ""));
      else (key == "ring.key_file" ? cfg_.ring.key_file : cfg_.ring.accept_key_file) = s;
    } else if (key == "ring.daemons") {
      load_daemons(v);
    } else if (key == "admin.http") {
      if (!string_value(key, v, s)) return;
      Endpoint e;
      if (auto err = parse_endpoint(s, e); !err.empty()) problem(v, key + " = " + show(v) + ": " + err);
      else cfg_.admin_http = e;
    } else if (key == "admin.operators") {
      bool list = v.is_array();
      if (list)
        for (auto& e : v.as_array()) list &= e.is_string();
      if (!expect(key, v, list, "a list of principals (\"user:NAME\", \"group:NAME\", \"uid:N\"...)"))
        return;
      cfg_.admin_operators.clear();
      for (auto& e : v.as_array()) {
        Principal pr;
        if (auto err = parse_principal(e.as_string(), pr); !err.empty())
          problem(e, key + ": \"" + std::string(e.as_string()) + "\": " + err);
        else
          cfg_.admin_operators.push_back(pr);
      }
    } else {
      problem(v, "unknown key " + key + suggestion(key, known_keys()));
    }
  }

  // [[access]] rules: groups = [...], join = [...], send = [...].
  void load_access(const toml::value& v) {
    if (!v.is_array()) {
      problem(v, "access must be [[access]] tables, not " + std::string(type_name(v)));
      return;
    }
    cfg_.access.clear();
    size_t n = 0;
    for (auto& r : v.as_array()) {
      std::string entry = "access[" + std::to_string(++n) + "]";
      if (!r.is_table()) {
        problem(r, entry + " must be a table, not " + std::string(type_name(r)));
        continue;
      }
      AccessRule rule;
      rule.origin = where(r);
      bool ok = true;
      auto strings = [&](const std::string& key, const toml::value& x,
                         std::vector<std::string>& out) {
        if (!x.is_array()) {
          problem(x, key + " must be a list of strings");
          return false;
        }
        for (auto& e : x.as_array()) {
          if (!e.is_string()) {
            problem(e, key + " must be a list of strings");
            return false;
          }
          out.push_back(e.as_string());
        }
        return true;
      };
      for (auto& [k, x] : r.as_table()) {
        std::string key = entry + "." + k;
        std::vector<std::string> list;
        if (k == "groups") {
          ok &= strings(key, x, rule.groups);
        } else if (k == "join" || k == "send") {
          if (!strings(key, x, list)) {
            ok = false;
            continue;
          }
          auto& into = k == "join" ? rule.join : rule.send;
          (k == "join" ? rule.join_listed : rule.send_listed) = true;
          for (auto& p : list) {
            Principal pr;
            if (auto err = parse_principal(p, pr); !err.empty()) {
              problem(x, key + ": \"" + p + "\": " + err);
              ok = false;
            } else {
              into.push_back(pr);
            }
          }
        } else {
          problem(x, "unknown key " + key + " (an access rule has groups, join and send)");
          ok = false;
        }
      }
      if (rule.groups.empty()) {
        problem(r, entry + " needs groups = [names or patterns]");
        ok = false;
      }
      if (ok) cfg_.access.push_back(std::move(rule));
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
  // TOML is UTF-8. toml11 (3.7) reads out of bounds when it reports invalid UTF-8 inside a
  // multi-line string: such a file never reaches it.
  if (size_t bad = first_invalid_utf8(text); bad != std::string::npos)
    return path + ":" + std::to_string(1 + std::count(text.begin(), text.begin() + bad, '\n')) +
           ": not UTF-8 text (byte " + std::to_string(bad) + "): a TOML file is UTF-8";
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

bool ring_sealed(const Config& cfg) {
  return cfg.ring.daemons.size() > 0 && !cfg.ring.key_file.empty() && cfg.ring.key_file != kNoKey;
}

std::string load_ring_keys(Config& cfg) {
  cfg.ring_keys.clear();
  if (!ring_sealed(cfg)) return {};
  std::string out;
  for (const std::string* f : {&cfg.ring.key_file, &cfg.ring.accept_key_file}) {
    if (f->empty()) continue;
    ringseal::Key k;
    std::string key = f == &cfg.ring.key_file ? "ring.key_file" : "ring.accept_key_file";
    if (auto err = ringseal::load_key_file(*f, k); !err.empty()) {
      auto it = cfg.origin.find(key);
      // load_key_file names ring.key_file; say which key it was.
      if (key != "ring.key_file") err.replace(0, std::string("ring.key_file").size(), key);
      out += (out.empty() ? "" : "\n") + (it == cfg.origin.end() ? "" : it->second + ": ") + err;
      continue;
    }
    cfg.ring_keys.push_back(k);
  }
  return out;
}

const char* tcp_auth_name(Config::TcpAuth a) {
  return a == Config::TcpAuth::kNone ? "none" : "secret";
}

const char* slow_policy_name(Config::SlowPolicy p) {
  return p == Config::SlowPolicy::kBackpressure ? "backpressure" : "disconnect";
}

bool tcp_listening(const Config& cfg) {
  return !cfg.tcp.host.empty() &&
         (cfg.tcp_auth == Config::TcpAuth::kNone || !cfg.secrets_file.empty());
}

std::string load_client_secrets(Config& cfg) {
  cfg.tcp_secrets.reset();
  if (cfg.secrets_file.empty() || cfg.tcp_auth != Config::TcpAuth::kSecret) return {};
  auto secrets = std::make_shared<clientauth::Secrets>();
  if (auto err = clientauth::load_secrets_file(cfg.secrets_file, *secrets); !err.empty()) {
    auto it = cfg.origin.find("clients.secrets_file");
    // A parse problem already starts with the file's name and line.
    bool located = err.rfind(cfg.secrets_file + ":", 0) == 0 &&
                   err.size() > cfg.secrets_file.size() + 1 &&
                   std::isdigit(static_cast<unsigned char>(err[cfg.secrets_file.size() + 1]));
    std::string prefix = (it == cfg.origin.end() ? "" : it->second + ": ") +
                         std::string("clients.secrets_file ");
    if (located) prefix = "clients.secrets_file: ";
    std::string out;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);)
      out += (out.empty() ? "" : "\n") + prefix + line;
    return out;
  }
  cfg.tcp_secrets = std::move(secrets);
  return {};
}

uint64_t token_hold_for(const RingSettings& r) {
  if (r.token_hold_us != 0) return r.token_hold_us;
  uint64_t daemons = std::max<uint64_t>(1, r.daemons.size());
  return std::clamp<uint64_t>(r.token_loss_us / (4 * daemons), 1000, 50000);
}


}  // namespace agent::daemon
