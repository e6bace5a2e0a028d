// validate() and changed_keys(): the rules a configuration must follow once loaded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>

#include "agentd/config.h"
#include "agentd/config_keys.h"
#include "transport/names.h"

namespace agent::daemon {

using namespace config_keys;

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
    for (auto& k : int_keys()) {
      uint64_t v = k.get(cfg_);
      if (v < k.min || v > k.max) say(k.key, value_text(k, v) + ": " + range_text(k));
    }
    if (!out_.empty()) return out_;  // the rules between keys assume values in range
    check_daemon();
    check_clients();
    check_ring_daemons();
    check_ring();
    if (auto err = validate_persist(cfg_); !err.empty()) out_ += (out_.empty() ? "" : "\n") + err;
    if (auto err = validate_bridge(cfg_); !err.empty()) out_ += (out_.empty() ? "" : "\n") + err;
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
    else if (cfg_.unix_socket.empty() && !tcp_listening(cfg_))
      say("clients.unix_socket", "\"\": no client listener (clients.tcp stays closed without "
                                 "clients.secrets_file, since clients.tcp_auth = \"secret\"): "
                                 "set clients.secrets_file, or a Unix socket");
    if (cfg_.tcp_auth == Config::TcpAuth::kNone && !cfg_.secrets_file.empty())
      say("clients.secrets_file", "\"" + cfg_.secrets_file + "\": clients.tcp_auth = \"none\" "
                                  "asks TCP clients for no secret: remove one of the two");
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
    // Without a key anyone who can send UDP to a daemon can disturb the ring and read it: that
    // must be chosen, not fallen into.
    if (r.daemons.size() > 1 && r.key_file.empty())
      say("ring.key_file", "\"\" (not set): a ring of " + std::to_string(r.daemons.size()) +
                               " daemons needs a cluster key (make one with 'agentd keygen "
                               "FILE', copy it to every daemon, set ring.key_file = FILE), or "
                               "ring.key_file = \"none\" to run the ring without "
                               "authentication (docs/security.md)");
    if (!r.accept_key_file.empty() && (r.key_file.empty() || r.key_file == kNoKey))
      say("ring.accept_key_file", "\"" + r.accept_key_file + "\": needs ring.key_file (the key "
                                      "that seals)");
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
  differ("clients.tcp_auth", a.tcp_auth != b.tcp_auth);
  differ("clients.slow_policy", a.slow_policy != b.slow_policy);
  // The file's name, and what it holds (entries added, removed or changed under one name).
  differ("clients.secrets_file",
         a.secrets_file != b.secrets_file || !a.tcp_secrets != !b.tcp_secrets ||
             (a.tcp_secrets && b.tcp_secrets && *a.tcp_secrets != *b.tcp_secrets));
  for (auto& k : int_keys()) differ(k.key, k.get(a) != k.get(b));
  differ("ring.udp_offload", a.ring.udp_offload != b.ring.udp_offload);
  differ("ring.encrypt", a.ring.encrypt != b.ring.encrypt);
  // Key files: their names, and what they hold (a key replaced under the same name).
  differ("ring.key_file", a.ring.key_file != b.ring.key_file ||
                              (!a.ring_keys.empty() && !b.ring_keys.empty() &&
                               a.ring_keys.front() != b.ring_keys.front()));
  differ("ring.accept_key_file", a.ring.accept_key_file != b.ring.accept_key_file ||
                                     a.ring_keys.size() != b.ring_keys.size() ||
                                     (a.ring_keys.size() > 1 && a.ring_keys[1] != b.ring_keys[1]));
  differ("admin.http", a.admin_http.host != b.admin_http.host || a.admin_http.port != b.admin_http.port);
  differ("admin.operators", a.admin_operators.size() != b.admin_operators.size() ||
                                !std::equal(a.admin_operators.begin(), a.admin_operators.end(),
                                            b.admin_operators.begin(),
                                            [](auto& x, auto& y) { return x.text == y.text; }));
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
