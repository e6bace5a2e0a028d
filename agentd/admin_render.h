// Renders admin snapshots (agentd/admin_snapshot.h): JSON (/status, agentctl --json),
// Prometheus' text exposition format (/metrics) and text for a terminal (agentctl). Pure
// functions; the admin actor calls them, never the daemon's loop.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "agentd/admin_snapshot.h"

namespace agent::daemon {

// Rates between two snapshots.
struct RatePoint {
  uint64_t wall_ms = 0;
  double ordered_per_s = 0;    // messages the ring ordered (the same on every daemon)
  double delivered_per_s = 0;  // messages handed to this daemon's clients
  double bytes_per_s = 0;      // payload bytes handed to this daemon's clients
  double sent_per_s = 0;       // multicasts from this daemon's clients
  double rotations_per_s = 0;  // token visits here
};

// The rates of the last minutes, from the snapshots given in turn (bounded).
class AdminHistory {
 public:
  static constexpr size_t kPoints = 600;  // ten minutes at a snapshot a second
  void add(const AdminSnapshot& s);
  const std::deque<RatePoint>& points() const { return points_; }
  RatePoint latest() const { return points_.empty() ? RatePoint{} : points_.back(); }

 private:
  std::deque<RatePoint> points_;
  bool have_prev_ = false;
  uint64_t prev_ms_ = 0;
  uint64_t prev_[5] = {};
};

// The whole snapshot as one JSON object; with history: its rates and points too.
std::string render_json(const AdminSnapshot& s, const AdminHistory* history = nullptr);
// One command's part as JSON (status, members, groups, clients, counters, ring).
std::string render_json(const std::string& command, const AdminSnapshot& s,
                        const AdminHistory& history);
// /metrics: every metric with HELP and TYPE, and the latency and rotation histograms.
std::string render_prometheus(const AdminSnapshot& s);
// A command's view for a terminal (status, members, groups, clients, counters, ring, watch).
std::string render_text(const std::string& command, const AdminSnapshot& s,
                        const AdminHistory& history);
// "1h02m03s"
std::string duration_text(uint64_t seconds);

}  // namespace agent::daemon
