#include "agentd/admin_render.h"

#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

namespace agent::daemon {

using nlohmann::json;

namespace {

const char* const kRateSeries[5] = {"agentd_ring_messages_ordered_total",
                                    "agentd_delivered_messages_total",
                                    "agentd_delivered_bytes_total", "", "agentd_ring_tokens_total"};

uint64_t client_messages(const AdminSnapshot& s) {
  uint64_t n = 0;
  for (auto& m : s.metrics)
    if (m.name == "agentd_client_messages_total") n += m.value;
  return n;
}

std::string seconds_text(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(us) / 1e6);
  return buf;
}

std::string rate_text(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

json histogram_json(const Histogram& h) {
  json buckets = json::array();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < Histogram::kBoundsUs.size(); ++i) {
    cumulative += h.counts[i];
    buckets.push_back({{"le_us", Histogram::kBoundsUs[i]}, {"count", cumulative}});
  }
  return {{"count", h.count},
          {"sum_us", h.sum_us},
          {"p50_us", h.quantile_bound_us(0.5)},
          {"p99_us", h.quantile_bound_us(0.99)},
          {"buckets", buckets}};
}

json rates_json(const RatePoint& p) {
  return {{"wall_ms", p.wall_ms},
          {"ordered_per_s", p.ordered_per_s},
          {"delivered_per_s", p.delivered_per_s},
          {"bytes_per_s", p.bytes_per_s},
          {"sent_per_s", p.sent_per_s},
          {"rotations_per_s", p.rotations_per_s}};
}

json daemons_json(const AdminSnapshot& s) {
  json v = json::array();
  for (auto& d : s.daemons)
    v.push_back({{"id", d.id}, {"name", d.name}, {"address", d.address}, {"in_ring", d.in_ring},
                 {"self", d.self}, {"members", d.members}});
  return v;
}

json groups_json(const AdminSnapshot& s) {
  json v = json::array();
  for (auto& g : s.groups) v.push_back({{"name", g.name}, {"members", g.members}});
  return v;
}

json clients_json(const AdminSnapshot& s) {
  json v = json::array();
  for (auto& c : s.clients) {
    json sent = json::object();
    for (size_t i = 0; i < c.sent.size(); ++i) sent[kServiceNames[i]] = c.sent[i];
    v.push_back({{"name", c.name}, {"peer", c.peer}, {"queued_bytes", c.queued_bytes},
                 {"groups", c.groups}, {"sent", sent}, {"holding_ring", c.holding}});
  }
  return v;
}

// Counters by name; labelled ones as objects by label value.
json counters_json(const AdminSnapshot& s) {
  json v = json::object();
  for (auto& m : s.metrics) {
    if (m.label.empty()) {
      v[m.name] = m.value;
      continue;
    }
    auto q = m.label.find('"');
    std::string value = m.label.substr(q + 1, m.label.size() - q - 2);
    v[m.name][value] = m.value;
  }
  return v;
}

json status_json(const AdminSnapshot& s) {
  return {{"daemon", s.daemon},
          {"id", s.id},
          {"incarnation", s.incarnation},
          {"uptime_s", s.uptime_us / 1000000},
          {"wall_ms", s.wall_ms},
          {"ring", {{"id", ring_id_text(s.ring_id)}, {"state", s.ring_state}, {"members", s.ring_members}}},
          {"daemons", daemons_json(s)},
          {"clients", s.clients.size()},
          {"groups", s.groups.size()}};
}

json changes_json(const AdminSnapshot& s) {
  json v = json::array();
  for (auto& c : s.changes)
    v.push_back({{"wall_ms", c.wall_ms}, {"kind", c.regular ? "regular" : "transitional"},
                 {"ring", ring_id_text(c.ring_id)}, {"members", c.members}});
  return v;
}

// A label value as the exposition format writes it: \\, \" and \n escaped.
std::string label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

void AdminHistory::add(const AdminSnapshot& s) {
  uint64_t now[5];
  for (int i = 0; i < 5; ++i) now[i] = i == 3 ? client_messages(s) : metric_value(s, kRateSeries[i]);
  if (have_prev_ && s.wall_ms > prev_ms_) {
    double secs = static_cast<double>(s.wall_ms - prev_ms_) / 1000.0;
    auto rate = [&](int i) {
      return now[i] >= prev_[i] ? static_cast<double>(now[i] - prev_[i]) / secs : 0.0;
    };
    RatePoint p{s.wall_ms, rate(0), rate(1), rate(2), rate(3), rate(4)};
    if (points_.size() >= kPoints) points_.pop_front();
    points_.push_back(p);
  }
  have_prev_ = true;
  prev_ms_ = s.wall_ms;
  std::copy(now, now + 5, prev_);
}

std::string render_json(const AdminSnapshot& s, const AdminHistory* history) {
  json j = status_json(s);
  j["groups"] = groups_json(s);
  j["clients"] = clients_json(s);
  j["counters"] = counters_json(s);
  j["histograms"] = {{"delivery_latency", histogram_json(s.latency)},
                     {"token_rotation", histogram_json(s.rotation)}};
  j["changes"] = changes_json(s);
  if (history) {
    j["rates"] = rates_json(history->latest());
    json points = json::array();
    for (auto& p : history->points()) points.push_back(rates_json(p));
    j["history"] = points;
  }
  return dump(j);
}

std::string render_json(const std::string& command, const AdminSnapshot& s,
                        const AdminHistory& history) {
  if (command == "status") return dump(status_json(s));
  if (command == "members" || command == "groups") return dump(json{{"groups", groups_json(s)}});
  if (command == "clients") return dump(json{{"clients", clients_json(s)}});
  if (command == "ring")
    return dump(json{{"ring", ring_id_text(s.ring_id)}, {"state", s.ring_state},
                     {"daemons", daemons_json(s)}, {"changes", changes_json(s)}});
  if (command == "counters") {
    json j = {{"counters", counters_json(s)}, {"rates", rates_json(history.latest())}};
    j["histograms"] = {{"delivery_latency", histogram_json(s.latency)},
                       {"token_rotation", histogram_json(s.rotation)}};
    return dump(j);
  }
  return render_json(s, &history);  // watch: everything
}

std::string render_prometheus(const AdminSnapshot& s) {
  std::ostringstream o;
  std::string last;
  for (auto& m : s.metrics) {
    if (m.name != last) {
      o << "# HELP " << m.name << ' ' << m.help << '\n'
        << "# TYPE " << m.name << ' ' << (m.gauge ? "gauge" : "counter") << '\n';
      last = m.name;
    }
    o << m.name;
    if (!m.label.empty()) o << '{' << m.label << '}';
    o << ' ' << m.value << '\n';
  }
  auto histogram = [&](const char* name, const char* help, const Histogram& h) {
    o << "# HELP " << name << ' ' << help << '\n' << "# TYPE " << name << " histogram\n";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < Histogram::kBoundsUs.size(); ++i) {
      cumulative += h.counts[i];
      o << name << "_bucket{le=\"" << seconds_text(Histogram::kBoundsUs[i]) << "\"} "
        << cumulative << '\n';
    }
    o << name << "_bucket{le=\"+Inf\"} " << h.count << '\n'
      << name << "_sum " << seconds_text(h.sum_us) << '\n'
      << name << "_count " << h.count << '\n';
  };
  histogram("agentd_delivery_latency_seconds",
            "From reading a local client's multicast to its delivery here", s.latency);
  histogram("agentd_token_rotation_seconds", "Time between two visits of the token here",
            s.rotation);
  o << "# HELP agentd_ring_info This daemon's ring: id and state as labels\n"
    << "# TYPE agentd_ring_info gauge\n"
    << "agentd_ring_info{daemon=\"" << label_value(s.daemon) << "\",ring=\"" << ring_id_text(s.ring_id)
    << "\",state=\"" << s.ring_state << "\"} 1\n";
  return o.str();
}

std::string duration_text(uint64_t seconds) {
  char buf[64];
  if (seconds >= 86400)
    std::snprintf(buf, sizeof buf, "%llud%02lluh%02llum", (unsigned long long)(seconds / 86400),
                  (unsigned long long)(seconds / 3600 % 24), (unsigned long long)(seconds / 60 % 60));
  else if (seconds >= 3600)
    std::snprintf(buf, sizeof buf, "%lluh%02llum%02llus", (unsigned long long)(seconds / 3600),
                  (unsigned long long)(seconds / 60 % 60), (unsigned long long)(seconds % 60));
  else if (seconds >= 60)
    std::snprintf(buf, sizeof buf, "%llum%02llus", (unsigned long long)(seconds / 60),
                  (unsigned long long)(seconds % 60));
  else
    std::snprintf(buf, sizeof buf, "%llus", (unsigned long long)seconds);
  return buf;
}

std::string render_text(const std::string& command, const AdminSnapshot& s,
                        const AdminHistory& history) {
  std::ostringstream o;
  auto status = [&] {
    o << "daemon " << s.daemon << " (id " << s.id << "), incarnation " << s.incarnation << ", up "
      << duration_text(s.uptime_us / 1000000) << '\n'
      << "ring " << ring_id_text(s.ring_id) << ", " << s.ring_state << ", " << s.ring_members.size()
      << " of " << s.daemons.size() << " daemons\n";
    for (auto& d : s.daemons) {
      o << "  " << d.id << "  " << (d.name.empty() ? "-" : d.name);
      if (!d.address.empty()) o << "  " << d.address;
      o << "  " << (d.in_ring ? "in ring" : "not in ring") << (d.self ? "  (this daemon)" : "") << '\n';
    }
    o << s.clients.size() << " clients, " << s.groups.size() << " groups\n";
  };
  auto groups = [&](bool with_members) {
    if (s.groups.empty()) o << "no groups\n";
    for (auto& g : s.groups) {
      o << g.name << "  " << g.members.size() << (g.members.size() == 1 ? " member" : " members");
      if (with_members) {
        o << '\n';
        for (auto& m : g.members) o << "  " << m << '\n';
      } else {
        o << '\n';
      }
    }
  };
  auto counters = [&] {
    RatePoint r = history.latest();
    o << "rates: " << rate_text(r.ordered_per_s) << " msg/s ordered, " << rate_text(r.sent_per_s)
      << " msg/s from clients, " << rate_text(r.delivered_per_s) << " msg/s and "
      << rate_text(r.bytes_per_s) << " B/s to clients, " << rate_text(r.rotations_per_s)
      << " token rotations/s\n";
    o << "delivery latency p50 <= " << s.latency.quantile_bound_us(0.5) << " us, p99 <= "
      << s.latency.quantile_bound_us(0.99) << " us (" << s.latency.count
      << " messages); token rotation p50 <= " << s.rotation.quantile_bound_us(0.5)
      << " us, p99 <= " << s.rotation.quantile_bound_us(0.99) << " us\n";
    for (auto& m : s.metrics) {
      std::string name = m.name.substr(m.name.rfind("agentd_", 0) == 0 ? 7 : 0);
      if (!m.label.empty()) {
        auto q = m.label.find('"');
        name += "{" + m.label.substr(q + 1, m.label.size() - q - 2) + "}";
      }
      o << "  " << name << std::string(name.size() < 40 ? 40 - name.size() : 1, ' ') << m.value
        << '\n';
    }
  };
  if (command == "status") {
    status();
  } else if (command == "members") {
    groups(true);
  } else if (command == "groups") {
    groups(false);
  } else if (command == "clients") {
    if (s.clients.empty()) o << "no clients\n";
    for (auto& c : s.clients) {
      o << (c.name.empty() ? "(no hello yet)" : c.name) << "  " << c.peer << "  queued "
        << c.queued_bytes << " bytes" << (c.holding ? " (holding the ring)" : "") << "\n    groups:";
      if (c.groups.empty()) o << " none";
      for (auto& g : c.groups) o << ' ' << g;
      o << "\n    sent:";
      bool any = false;
      for (size_t i = 0; i < c.sent.size(); ++i)
        if (c.sent[i]) o << ' ' << kServiceNames[i] << ' ' << c.sent[i], any = true;
      if (!any) o << " nothing";
      o << '\n';
    }
  } else if (command == "counters") {
    counters();
  } else if (command == "ring") {
    o << "ring " << ring_id_text(s.ring_id) << ", " << s.ring_state << '\n';
    for (auto& d : s.daemons)
      o << "  " << d.id << "  " << (d.name.empty() ? "-" : d.name) << "  "
        << (d.address.empty() ? "-" : d.address) << "  "
        << (d.in_ring ? "in ring" : "not in ring") << "  " << d.members << " group members"
        << (d.self ? "  (this daemon)" : "") << '\n';
    o << "configuration changes (latest last):\n";
    if (s.changes.empty()) o << "  none\n";
    for (auto& c : s.changes) {
      o << "  " << (s.wall_ms - std::min(s.wall_ms, c.wall_ms)) / 1000 << " s ago  "
        << (c.regular ? "regular     " : "transitional") << "  " << ring_id_text(c.ring_id) << "  [";
      for (size_t i = 0; i < c.members.size(); ++i) o << (i ? " " : "") << c.members[i];
      o << "]\n";
    }
  } else {  // watch
    status();
    counters();
  }
  return o.str();
}

}  // namespace agent::daemon
