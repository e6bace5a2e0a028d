#include "agentd/admin_snapshot.h"

#include <algorithm>
#include <map>

namespace agent::daemon {

std::string ring_id_text(uint64_t ring_id) {
  return std::to_string(ring_id >> 32) + "." + std::to_string(ring_id & 0xffffffffu);
}

uint64_t metric_value(const AdminSnapshot& s, const std::string& name, const std::string& label) {
  for (auto& m : s.metrics)
    if (m.name == name && m.label == label) return m.value;
  return 0;
}

AdminSnapshot take_snapshot(const DaemonCore& core, const Config& cfg, const ShellCounters& shell,
                            Time now_us, uint64_t wall_ms) {
  AdminSnapshot s;
  const auto& ring = core.ring();
  const auto& hub = core.hub();
  s.daemon = cfg.name;
  s.id = cfg.ring.id;
  s.incarnation = cfg.incarnation;
  s.uptime_us = now_us - std::min(now_us, core.started_us());
  s.wall_ms = wall_ms;
  s.ring_state = membership::to_string(ring.state());
  s.ring_id = ring.ring_id();
  s.ring_members.assign(ring.members().begin(), ring.members().end());

  for (auto& [name, members] : hub.group_state().table())
    s.groups.push_back({name, members});
  // Members per daemon, by the daemon part of their private groups ("#name#daemon").
  std::map<std::string, uint64_t> per_daemon;
  for (auto& g : s.groups)
    for (auto& m : g.members)
      if (auto at = m.rfind('#'); at != std::string::npos && at > 0) ++per_daemon[m.substr(at + 1)];
  auto in_ring = [&](uint32_t id) {
    return std::find(s.ring_members.begin(), s.ring_members.end(), id) != s.ring_members.end();
  };
  if (cfg.ring.daemons.empty()) {
    s.daemons.push_back({cfg.ring.id, cfg.name, "", true, true, per_daemon[cfg.name]});
  } else {
    for (auto& d : cfg.ring.daemons) {
      bool self = d.id == cfg.ring.id;
      std::string name = self ? cfg.name : d.name;
      std::string addr = d.address.find(':') != std::string::npos
                             ? "[" + d.address + "]:" + std::to_string(d.port)
                             : d.address + ":" + std::to_string(d.port);
      s.daemons.push_back({d.id, name, addr, in_ring(d.id), self,
                           name.empty() ? 0 : per_daemon[name]});
    }
  }
  s.clients = hub.clients();
  s.latency = core.latency();
  s.rotation = shell.rotation;
  for (auto& c : core.config_changes()) {
    uint64_t ago_ms = (now_us - std::min(now_us, c.at_us)) / 1000;
    s.changes.push_back({wall_ms - std::min(wall_ms, ago_ms), c.regular, c.ring_id,
                         std::vector<uint32_t>(c.members.begin(), c.members.end())});
  }

  const auto& rs = ring.stats();
  const auto& hs = hub.stats();
  const auto& cs = core.stats();
  auto counter = [&](const char* name, const char* help, uint64_t v, std::string label = "") {
    s.metrics.push_back({name, help, false, std::move(label), v});
  };
  auto gauge = [&](const char* name, const char* help, uint64_t v) {
    s.metrics.push_back({name, help, true, "", v});
  };
  for (size_t i = 0; i < 6; ++i)
    counter("agentd_client_messages_total", "Multicasts taken from this daemon's clients, by service",
            hs.sent[i], std::string("service=\"") + kServiceNames[i] + "\"");
  for (size_t i = 0; i < 6; ++i)
    counter("agentd_client_bytes_total", "Payload bytes of multicasts taken from this daemon's clients, by service",
            hs.sent_bytes[i], std::string("service=\"") + kServiceNames[i] + "\"");
  counter("agentd_delivered_messages_total", "Data messages handed to local clients (per recipient)",
          hs.messages_delivered);
  counter("agentd_delivered_bytes_total", "Payload bytes handed to local clients (per recipient)",
          hs.bytes_delivered);
  counter("agentd_ring_messages_ordered_total", "Messages the ring delivered here in the total order",
          rs.messages_delivered);
  counter("agentd_ring_packets_sent_total", "New data packets this daemon multicast", rs.packets_sent);
  counter("agentd_ring_packets_retransmitted_total", "Data packets this daemon sent again",
          rs.packets_retransmitted);
  counter("agentd_ring_duplicate_packets_total", "Data packets received twice", rs.duplicate_packets);
  counter("agentd_ring_tokens_total", "Token visits (rotations) at this daemon", rs.tokens_received);
  counter("agentd_ring_tokens_retransmitted_total", "Tokens this daemon sent again",
          rs.tokens_retransmitted);
  counter("agentd_ring_configuration_changes_total", "Configuration changes started (gathers)",
          rs.gathers);
  counter("agentd_ring_rings_installed_total", "Regular configurations installed", rs.rings_installed);
  counter("agentd_bad_datagrams_total",
          "Ring datagrams dropped: not from a configured daemon, failed authentication, undecodable",
          shell.bad_datagrams + rs.bad_packets);
  counter("agentd_datagram_send_drops_total", "Ring datagrams the kernel did not take", shell.send_drops);
  counter("agentd_bad_client_frames_total", "Client frames refused as malformed", hs.bad_frames);
  counter("agentd_slow_clients_dropped_total", "Clients disconnected for not reading",
          hs.slow_clients_dropped);
  counter("agentd_slow_client_holds_total", "Times a slow client began to hold the ring back",
          hs.slow_holds);
  counter("agentd_client_input_pauses_total", "Times a full ring queue paused client input",
          cs.input_pauses);
  counter("agentd_admin_requests_total", "Admin requests (agentctl) received", hs.admin_requests);
  counter("agentd_operator_disconnects_total", "Clients disconnected by an operator",
          hs.operator_disconnects);
  gauge("agentd_clients", "Client connections", hub.client_count());
  gauge("agentd_groups", "Groups with members in the ring", hub.group_state().group_count());
  gauge("agentd_ring_members", "Daemons in the current ring", s.ring_members.size());
  gauge("agentd_client_queued_bytes", "Bytes queued for clients, unsent", hub.queued_total());
  gauge("agentd_ring_pending_bytes", "Client messages waiting for the token", ring.pending_bytes());
  gauge("agentd_incarnation", "This start's incarnation", cfg.incarnation);
  gauge("agentd_uptime_seconds", "Seconds since the daemon started", s.uptime_us / 1000000);
  // The WAN bridge (docs/bridge.md), on the daemon that runs it: per other site.
  if (const auto* b = core.bridge()) {
    for (auto& [site, st] : b->stats()) {
      std::string l = "site=\"" + site + "\"";
      s.metrics.push_back({"agentd_bridge_link_up", "Whether the link with the site is up", true, l,
                           st.up ? 1u : 0u});
      counter("agentd_bridge_links_total", "Times the link with the site came up", st.links, l);
      counter("agentd_bridge_items_sent_total", "Items of this site's stream sent to the site",
              st.items_sent, l);
      counter("agentd_bridge_bytes_raw_total", "Bytes of the batches sent, before compression",
              st.raw_bytes_sent, l);
      counter("agentd_bridge_bytes_wire_total", "Bytes of the batches sent, on the link",
              st.wire_bytes_sent, l);
      counter("agentd_bridge_items_received_total", "Items of the site's stream received",
              st.items_received, l);
      counter("agentd_bridge_duplicates_total", "Items of the site's stream received again",
              st.duplicates, l);
      counter("agentd_bridge_gap_items_total", "Items of the site's stream it could not send here",
              st.gap_items, l);
      s.metrics.push_back({"agentd_bridge_acked", "The site applied this site's stream up to here",
                           true, l, st.acked});
    }
    gauge("agentd_bridge_queue_items", "Items of this site's stream not yet acknowledged everywhere",
          b->queued_items());
    gauge("agentd_bridge_queue_bytes", "Bytes of those items", b->queued_bytes());
  }
  return s;
}

}  // namespace agent::daemon
