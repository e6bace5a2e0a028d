// The admin verb of the client protocol (docs/client-protocol.md, "Admin"): what an operator's
// agentctl asks a daemon. The hub checks the request and who sends it; answers that need the
// daemon around it (status, counters, leaving the ring) go out through ClientIo::admin.
#include <algorithm>
#include <cstdio>
#include <iterator>

#include "agentd/client_hub.h"
#include "agentd/log.h"

namespace agent::daemon {

using proto::ErrorCode;

const char* const kServiceNames[6] = {"unreliable", "reliable", "fifo",
                                      "causal",     "agreed",   "safe"};

size_t service_index(uint32_t service) {
  switch (service & proto::service::kRegularMask) {
    case proto::service::kUnreliable: return 0;
    case proto::service::kReliable: return 1;
    case proto::service::kFifo: return 2;
    case proto::service::kCausal: return 3;
    case proto::service::kAgreed: return 4;
    case proto::service::kSafe: return 5;
    default: return 6;
  }
}

namespace {

// Read-only commands: any client that may connect may ask.
const char* const kViews[] = {"status", "members", "groups", "clients", "counters", "ring", "watch"};
// Actions: operators only.
const char* const kActions[] = {"disconnect", "leave"};

bool listed(const std::string& command, const char* const* list, size_t n) {
  return std::any_of(list, list + n, [&](const char* c) { return command == c; });
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

}  // namespace

bool ClientHub::is_operator(const Peer& peer) const {
  if (peer.kind == Peer::Kind::kUnix && (peer.uid == 0 || peer.uid == cfg_.daemon_uid))
    return true;
  return std::any_of(cfg_.admin_operators.begin(), cfg_.admin_operators.end(),
                     [&](const Principal& p) { return peer.matches(p); });
}

void ClientHub::handle_admin(ConnId id, Session& s, std::string_view body) {
  auto req = proto::decode_admin(body);
  if (!req) {
    ++stats_.bad_frames;
    send_error(id, ErrorCode::kMalformedFrame, "", "admin frame does not decode");
    return;
  }
  ++stats_.admin_requests;
  bool view = listed(req->command, kViews, std::size(kViews));
  bool action = listed(req->command, kActions, std::size(kActions));
  if (!view && !action) {
    ++stats_.admin_refused;
    send_error(id, ErrorCode::kBadAdminRequest, req->command,
               "unknown admin command '" + req->command +
                   "' (status, members, groups, clients, counters, ring, watch, disconnect, "
                   "leave)");
    return;
  }
  if (action && !is_operator(s.peer)) {
    ++stats_.admin_refused;
    AGENT_LOG(kWarn, "refused admin action " << req->command << " of " << s.private_group
                                             << " (" << s.peer.describe()
                                             << "): not an operator");
    send_error(id, ErrorCode::kNotPermitted, req->command,
               "'" + req->command + "' is for operators: root, the daemon's user or a "
               "principal of admin.operators; this client is " + s.peer.describe());
    return;
  }
  if (req->command == "disconnect") {
    std::string target = req->argument;
    if (!disconnect_client(target, s.private_group + " (" + s.peer.describe() + ")")) {
      send_error(id, ErrorCode::kBadAdminRequest, req->command,
                 target.empty() ? std::string("disconnect needs a client's private name")
                                : "no client '" + target + "' on daemon " + cfg_.name);
      return;
    }
    bool json = req->flags & proto::kAdminJson;
    admin_reply(id, req->command,
                json ? "{\"disconnected\":" + json_string(target) + "}"
                     : "disconnected " + target + "\n");
    return;
  }
  io_.admin(id, *req);
}

bool ClientHub::disconnect_client(const std::string& name, const std::string& by) {
  std::string member = name;
  if (!name.empty() && name[0] != '#') member = "#" + name + "#" + cfg_.name;
  auto g = by_group_.find(member);
  if (g == by_group_.end()) return false;
  auto it = sessions_.find(g->second);
  if (it == sessions_.end() || it->second.closing) return false;
  Session& t = it->second;
  AGENT_LOG(kInfo, "client " << member << " disconnected by operator " << by);
  ++stats_.operator_disconnects;
  send_error(g->second, ErrorCode::kDisconnectedByOperator, member,
             "an operator disconnected this client (agentctl disconnect)");
  t.closing = true;
  to_drop_.push_back(g->second);
  process_drops();
  return true;
}

void ClientHub::admin_reply(ConnId id, const std::string& command, std::string_view text) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.closing) return;
  std::string frame;
  proto::encode(frame, proto::AdminReply{command, std::string(text.substr(
                                                      0, proto::kMaxAdminReplyBytes))});
  send_direct(id, it->second, frame);
}

void ClientHub::admin_error(ConnId id, ErrorCode code, const std::string& command,
                            const std::string& text) {
  if (sessions_.count(id)) send_error(id, code, command, text);
}

std::vector<ClientInfo> ClientHub::clients() const {
  std::vector<ClientInfo> v;
  v.reserve(sessions_.size());
  for (auto& [id, s] : sessions_) {
    ClientInfo c;
    c.name = s.connected ? s.private_group : "";
    c.peer = s.peer.describe();
    c.queued_bytes = s.queued_bytes;
    c.groups.assign(s.groups.begin(), s.groups.end());
    c.sent = s.sent;
    c.holding = holding_.count(id) != 0;
    v.push_back(std::move(c));
  }
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return v;
}

}  // namespace agent::daemon
