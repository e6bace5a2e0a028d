#include "agentd/config_keys.h"

#include <cstdio>

#include "transport/client_protocol.h"

namespace agent::daemon::config_keys {

namespace {

#define AGENT_FIELD(f)                                  \
  [](const Config& c) -> uint64_t { return c.f; },      \
      [](Config& c, uint64_t v) { c.f = static_cast<decltype(c.f)>(v); }

const std::vector<IntKey> kIntKeys = {
    {"clients.max_clients", Unit::kCount, 1, kMaxClients, "", AGENT_FIELD(max_clients)},
    {"clients.hello_timeout_ms", Unit::kMs, 1, kMaxTimeoutUs / 1000, "",
     AGENT_FIELD(hello_timeout_ms)},
    {"clients.max_message_bytes", Unit::kBytes, 1, proto::kMaxMessageBytes, "",
     AGENT_FIELD(max_message_bytes)},
    {"clients.queue_limit_bytes", Unit::kBytes, 1, kMaxQueueBytes, "",
     AGENT_FIELD(client_queue_bytes)},
    {"clients.queue_total_bytes", Unit::kBytes, 1, kMaxQueueBytes, "",
     AGENT_FIELD(client_queue_total_bytes)},
    {"clients.slow_timeout_ms", Unit::kMs, 1, kMaxTimeoutUs / 1000, "",
     AGENT_FIELD(slow_timeout_ms)},
    {"clients.max_clients_per_user", Unit::kCount, 0, kMaxClients, "no limit",
     AGENT_FIELD(max_clients_per_user)},
    {"clients.max_groups", Unit::kCount, 1, kMaxGroupsPerClient, "",
     AGENT_FIELD(max_groups_per_client)},
    {"clients.socket_buffer_bytes", Unit::kBytes, 0, kMaxSocketBufferBytes,
     "the system's default", AGENT_FIELD(client_socket_buffer_bytes)},
    {"admin.http_threads", Unit::kCount, 1, kMaxAdminHttpThreads, "",
     AGENT_FIELD(admin_http_threads)},
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
                            "clients.unix_mode", "clients.unix_group",
                            "clients.tcp_auth", "clients.secrets_file", "clients.slow_policy",
                            "ring.udp_offload", "ring.multicast",   "ring.daemons",
                            "ring.key_file",    "ring.accept_key_file", "ring.encrypt",
                            "admin.http",       "admin.operators"};

}  // namespace

const std::vector<IntKey>& int_keys() { return kIntKeys; }

const IntKey* find_int_key(const std::string& key) {
  for (auto& k : kIntKeys)
    if (key == k.key) return &k;
  return nullptr;
}

std::vector<std::string> known_keys() {
  std::vector<std::string> v;
  for (auto& k : kIntKeys) v.push_back(k.key);
  for (auto* k : kOtherKeys) v.push_back(k);
  return v;
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
std::string bytes_text(uint64_t n, const char* unit) {
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

}  // namespace agent::daemon::config_keys
