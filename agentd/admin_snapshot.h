// What a daemon knows about itself at one moment, for operators: agentctl, /metrics, /status
// and the status page all show this one struct. take_snapshot() reads it from the daemon core
// on the daemon's loop (once a second and on demand: a copy of the tables, O(clients +
// members)); rendering it (agentd/admin_render.h) happens elsewhere, in the admin actor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agentd/daemon_core.h"
#include "agentd/histogram.h"

namespace agent::daemon {

// One counter or gauge as /metrics names it; `counters` shows the same list.
struct Metric {
  std::string name;    // "agentd_ring_packets_sent_total"
  std::string help;
  bool gauge = false;  // else a counter
  std::string label;   // "service=\"agreed\"", or ""
  uint64_t value = 0;
};

// What the shell around the core counts (ring sockets, the token's visits).
struct ShellCounters {
  uint64_t bad_datagrams = 0;    // dropped before the ring: not from a daemon, failed seal...
  uint64_t send_drops = 0, send_errors = 0;
  Histogram rotation;            // time between two visits of the token here
};

struct AdminSnapshot {
  std::string daemon;
  uint32_t id = 0;
  uint64_t incarnation = 0;
  uint64_t uptime_us = 0;
  uint64_t wall_ms = 0;  // when it was taken, ms since 1970
  std::string ring_state;  // "operational", "gather", ...
  uint64_t ring_id = 0;
  std::vector<uint32_t> ring_members;
  struct DaemonInfo {
    uint32_t id = 0;
    std::string name;     // as configured ("" unless given), or this daemon's own
    std::string address;  // "host:port"
    bool in_ring = false;
    bool self = false;
    uint64_t members = 0;  // group members connected to it (by the private groups' daemon part)
  };
  std::vector<DaemonInfo> daemons;
  struct GroupInfo {
    std::string name;
    std::vector<std::string> members;
  };
  std::vector<GroupInfo> groups;
  std::vector<ClientInfo> clients;
  std::vector<Metric> metrics;
  Histogram latency, rotation;
  struct Change {
    uint64_t wall_ms = 0;
    bool regular = false;
    uint64_t ring_id = 0;
    std::vector<uint32_t> members;
  };
  std::vector<Change> changes;  // oldest first
};

// now_us: the core's clock; wall_ms: the same moment in ms since 1970.
AdminSnapshot take_snapshot(const DaemonCore& core, const Config& cfg, const ShellCounters& shell,
                            Time now_us, uint64_t wall_ms);

// A ring id as operators read it: "<seq>.<representative>".
std::string ring_id_text(uint64_t ring_id);
// The value of metric name (with label, when given); 0 when absent.
uint64_t metric_value(const AdminSnapshot& s, const std::string& name, const std::string& label = "");

}  // namespace agent::daemon
