#include "agentd/config.h"

#include <algorithm>

#include <unistd.h>

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

// Milliseconds as an integer or a fraction ("2" or "0.5"), returned in microseconds.
template <class T>
T get_ms_as_us(const toml::value& v) {
  if (v.is_integer()) return static_cast<T>(toml::get<int64_t>(v) * 1000);
  return static_cast<T>(toml::get<double>(v) * 1000.0);
}

std::string load_ring(const std::string& path, const toml::value& ring, RingSettings& r) {
  for (auto& [k, v] : ring.as_table()) {
    if (k == "id") r.id = toml::get<uint32_t>(v);
    else if (k == "packet_bytes") r.packet_bytes = toml::get<uint32_t>(v);
    else if (k == "udp_offload") r.udp_offload = toml::get<bool>(v);
    else if (k == "multicast") {
      std::string text = toml::get<std::string>(v);
      if (text != "off" && !text.empty()) {
        auto err = parse_endpoint(text, r.multicast);
        if (!err.empty()) return path + ": ring.multicast: " + err;
      }
    }
    else if (k == "global_window") r.global_window = toml::get<uint32_t>(v);
    else if (k == "personal_window") r.personal_window = toml::get<uint32_t>(v);
    else if (k == "accelerated_window") r.accelerated_window = toml::get<uint32_t>(v);
    else if (k == "max_outstanding") r.max_outstanding = toml::get<uint32_t>(v);
    else if (k == "max_pending_bytes") r.max_pending_bytes = toml::get<uint64_t>(v);
    else if (k == "token_retransmit_ms") r.token_retransmit_us = get_ms_as_us<uint64_t>(v);
    else if (k == "token_hold_ms") r.token_hold_us = get_ms_as_us<uint64_t>(v);
    else if (k == "min_rotation_ms") r.min_rotation_us = get_ms_as_us<uint64_t>(v);
    else if (k == "token_loss_ms") r.token_loss_us = get_ms_as_us<uint64_t>(v);
    else if (k == "join_timeout_ms") r.join_timeout_us = get_ms_as_us<uint64_t>(v);
    else if (k == "consensus_timeout_ms") r.consensus_timeout_us = get_ms_as_us<uint64_t>(v);
    else if (k == "daemons") {
      for (auto& d : v.as_array()) {
        RingDaemon rd;
        for (auto& [dk, dv] : d.as_table()) {
          if (dk == "id") rd.id = toml::get<uint32_t>(dv);
          else if (dk == "address") rd.address = toml::get<std::string>(dv);
          else if (dk == "port") rd.port = toml::get<uint16_t>(dv);
          else return path + ": unknown key ring.daemons." + dk;
        }
        if (rd.id == 0 || rd.address.empty() || rd.port == 0)
          return path + ": every [[ring.daemons]] needs id (>= 1), address and port";
        r.daemons.push_back(rd);
      }
    } else {
      return path + ": unknown key ring." + k;
    }
  }
  return {};
}

}  // namespace

std::string load_config_file(const std::string& path, Config& cfg) {
  toml::value root;
  try {
    root = toml::parse(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  try {
    if (root.contains("daemon")) {
      const auto& d = toml::find(root, "daemon");
      for (auto& [k, v] : d.as_table()) {
        if (k == "name") {
          cfg.name = toml::get<std::string>(v);
        } else if (k == "log_level") {
          if (!log::parse_level(toml::get<std::string>(v), cfg.log_level))
            return path + ": daemon.log_level must be error, warn, info or debug";
        } else if (k == "state_dir") {
          cfg.state_dir = toml::get<std::string>(v);
        } else if (k == "priority") {
          auto p = toml::get<std::string>(v);
          if (p == "normal") cfg.priority = Config::Priority::kNormal;
          else if (p == "high") cfg.priority = Config::Priority::kHigh;
          else if (p == "realtime") cfg.priority = Config::Priority::kRealtime;
          else return path + ": daemon.priority must be normal, high or realtime, not '" + p + "'";
        } else {
          return path + ": unknown key daemon." + k;
        }
      }
    }
    if (root.contains("clients")) {
      const auto& c = toml::find(root, "clients");
      for (auto& [k, v] : c.as_table()) {
        if (k == "unix_socket") {
          cfg.unix_socket = toml::get<std::string>(v);
        } else if (k == "tcp") {
          auto err = parse_endpoint(toml::get<std::string>(v), cfg.tcp);
          if (!err.empty()) return path + ": clients.tcp: " + err;
        } else if (k == "max_clients") {
          cfg.max_clients = toml::get<uint32_t>(v);
        } else if (k == "hello_timeout_ms") {
          cfg.hello_timeout_ms = toml::get<uint32_t>(v);
        } else if (k == "max_message_bytes") {
          cfg.max_message_bytes = toml::get<uint32_t>(v);
        } else if (k == "queue_limit_bytes") {
          cfg.client_queue_bytes = toml::get<uint64_t>(v);
        } else if (k == "queue_total_bytes") {
          cfg.client_queue_total_bytes = toml::get<uint64_t>(v);
        } else if (k == "max_groups") {
          cfg.max_groups_per_client = toml::get<uint32_t>(v);
        } else if (k == "socket_buffer_bytes") {
          cfg.client_socket_buffer_bytes = toml::get<uint32_t>(v);
        } else {
          return path + ": unknown key clients." + k;
        }
      }
    }
    if (root.contains("ring")) {
      auto err = load_ring(path, toml::find(root, "ring"), cfg.ring);
      if (!err.empty()) return err;
    }
    if (root.contains("persist")) {
      auto err = load_persist_section(path, &toml::find(root, "persist"), cfg.persist);
      if (!err.empty()) return err;
    }
    for (auto& [k, v] : root.as_table())
      if (k != "daemon" && k != "clients" && k != "ring" && k != "persist")
        return path + ": unknown section [" + k + "]";
  } catch (const std::exception& e) {
    return path + ": " + e.what();
  }
  return {};
}

uint64_t token_hold_for(const RingSettings& r) {
  if (r.token_hold_us != 0) return r.token_hold_us;
  uint64_t daemons = std::max<uint64_t>(1, r.daemons.size());
  return std::clamp<uint64_t>(r.token_loss_us / (4 * daemons), 1000, 50000);
}

std::string validate(const Config& cfg) {
  if (!names::valid_daemon_name(cfg.name))
    return "daemon name '" + cfg.name + "' must be 1..19 printable characters without space or '#'";
  if (cfg.unix_socket.empty() && cfg.tcp.host.empty())
    return "no client listener: set clients.unix_socket or clients.tcp";
  if (cfg.unix_socket.size() >= 108) return "clients.unix_socket is longer than 107 bytes";
  if (cfg.max_clients == 0) return "clients.max_clients must be at least 1";
  if (cfg.hello_timeout_ms == 0) return "clients.hello_timeout_ms must be at least 1";
  if (cfg.max_message_bytes == 0 || cfg.max_message_bytes > proto::kDefaultMaxMessageBytes)
    return "clients.max_message_bytes must be 1.." + std::to_string(proto::kDefaultMaxMessageBytes);
  if (cfg.client_queue_bytes < 2ull * cfg.max_message_bytes)
    return "clients.queue_limit_bytes must be at least twice clients.max_message_bytes";
  if (cfg.client_queue_total_bytes < cfg.client_queue_bytes)
    return "clients.queue_total_bytes must be at least clients.queue_limit_bytes";
  if (cfg.max_groups_per_client == 0) return "clients.max_groups must be at least 1";
  if (cfg.client_socket_buffer_bytes > (1u << 30))
    return "clients.socket_buffer_bytes must be at most 1 GiB (0: the system's default)";
  const RingSettings& r = cfg.ring;
  if (r.id == 0) return "ring.id must be at least 1";
  if (!r.daemons.empty()) {
    bool self = false;
    for (size_t i = 0; i < r.daemons.size(); ++i) {
      self |= r.daemons[i].id == r.id;
      for (size_t j = 0; j < i; ++j)
        if (r.daemons[j].id == r.daemons[i].id)
          return "ring.daemons lists id " + std::to_string(r.daemons[i].id) + " twice";
    }
    if (!self) return "ring.id " + std::to_string(r.id) + " is not among ring.daemons";
  }
  if (r.packet_bytes < 512 || r.packet_bytes > 65000) return "ring.packet_bytes must be 512..65000";
  if (r.global_window == 0 || r.personal_window == 0 || r.max_outstanding == 0)
    return "ring windows must be at least 1";
  if (r.max_pending_bytes < cfg.max_message_bytes)
    return "ring.max_pending_bytes must be at least clients.max_message_bytes";
  if (r.token_retransmit_us == 0 || r.token_loss_us == 0 || r.join_timeout_us == 0 ||
      r.consensus_timeout_us == 0)
    return "ring timeouts (token_retransmit_ms, token_loss_ms, join_timeout_ms, "
           "consensus_timeout_ms) must be above 0";
  // A paced token waits at most min_rotation at a daemon; its predecessor must not resend it.
  if (r.min_rotation_us * 2 > r.token_retransmit_us)
    return "ring.min_rotation_ms must be at most half of ring.token_retransmit_ms";
  // An idle token rests token_hold at every daemon: a rotation of a quiet ring must fit in
  // token_loss with room to spare, or a quiet ring would reconfigure for ever.
  uint64_t daemons = std::max<uint64_t>(1, r.daemons.size());
  uint64_t hold = token_hold_for(r);
  if (r.token_loss_us < 2 * daemons * hold)
    return "ring.token_loss_ms (" + std::to_string(r.token_loss_us / 1000.0) +
           ") must be at least 2 x daemons x token_hold_ms (" +
           std::to_string(2 * daemons * hold / 1000.0) +
           "): an idle token would be taken for lost";
  if (r.token_loss_us < 2 * r.token_retransmit_us)
    return "ring.token_loss_ms must be at least twice ring.token_retransmit_ms";
  if (r.consensus_timeout_us < 2 * r.join_timeout_us)
    return "ring.consensus_timeout_ms must be at least twice ring.join_timeout_ms";
  return validate_persist(cfg);
}

}  // namespace agent::daemon
