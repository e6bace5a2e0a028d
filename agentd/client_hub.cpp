#include "agentd/client_hub.h"

#include <algorithm>

#include "agentd/log.h"
#include "base/check.h"
#include "groups/event_codec.h"
#include "persist/glob.h"
#include "transport/names.h"

namespace agent::daemon {

using proto::ErrorCode;
using proto::Verb;

ClientHub::ClientHub(const Config& cfg, ClientIo& io, Submit submit)
    : cfg_(cfg), io_(io), submit_(std::move(submit)), state_(cfg.name), secrets_(cfg.tcp_secrets) {}

bool ClientHub::needs_auth(const Peer& peer) const {
  return peer.kind == Peer::Kind::kTcp && cfg_.tcp_auth == Config::TcpAuth::kSecret;
}

void ClientHub::set_secrets(std::shared_ptr<const clientauth::Secrets> secrets) {
  secrets_ = std::move(secrets);
}

std::string Peer::describe() const {
  switch (kind) {
    case Kind::kUnix:
      return "uid " + std::to_string(uid) + " (pid " + std::to_string(pid) + ")";
    case Kind::kTcp:
      return tcp_user.empty() ? address : address + " (tcpuser " + tcp_user + ")";
    case Kind::kUnknown:
      break;
  }
  return "an unknown peer";
}

std::string Peer::user_key() const {
  if (kind == Kind::kUnix) return "uid " + std::to_string(uid);
  if (kind == Kind::kTcp) return address;
  return {};
}

bool Peer::matches(const Principal& p) const {
  using K = Principal::Kind;
  switch (p.kind) {
    case K::kAnyone: return true;
    case K::kUid: return kind == Kind::kUnix && uid == p.id;
    case K::kGid:
      return kind == Kind::kUnix &&
             (gid == p.id || std::find(groups.begin(), groups.end(), p.id) != groups.end());
    case K::kTcpAny: return kind == Kind::kTcp;
    case K::kTcpAddress: return kind == Kind::kTcp && address == p.address;
    case K::kTcpUserAny: return kind == Kind::kTcp && !tcp_user.empty();
    case K::kTcpUser: return kind == Kind::kTcp && !tcp_user.empty() && tcp_user == p.address;
  }
  return false;
}

bool ClientHub::on_open(ConnId id, uint64_t now_us, Peer peer, std::string_view nonce) {
  now_us_ = std::max(now_us_, now_us);
  std::string user = peer.user_key();
  if (!user.empty() && cfg_.max_clients_per_user > 0 &&
      per_user_[user] >= cfg_.max_clients_per_user && sessions_.size() < cfg_.max_clients) {
    ++user_refusals_;
    if (user_refusals_logged_at_ == 0 || now_us_ >= user_refusals_logged_at_ + 10'000'000) {
      AGENT_LOG(kWarn, "refused a client connection of " << peer.describe() << ": " << user
                           << " has " << per_user_[user]
                           << " connections (clients.max_clients_per_user)"
                           << (user_refusals_ > 1 ? "; " + std::to_string(user_refusals_ - 1) +
                                                        " more refusals since the last report"
                                                  : std::string()));
      user_refusals_ = 0;
      user_refusals_logged_at_ = std::max<uint64_t>(now_us_, 1);
    }
    frame_.clear();
    proto::encode(frame_, proto::Error{ErrorCode::kTooManyClients, "",
                                       user + " has reached its limit of " +
                                           std::to_string(cfg_.max_clients_per_user) +
                                           " connections to this daemon"});
    io_.send(id, frame_);
    io_.close(id);
    return false;
  }
  if (sessions_.size() >= cfg_.max_clients) {
    // One line, then one per interval with the count: a flood of connections must not flood
    // the log.
    constexpr uint64_t kRefusalLogIntervalUs = 10'000'000;
    ++refused_;
    if (!refusal_logged_ || now_us >= refusal_logged_at_ + kRefusalLogIntervalUs) {
      AGENT_LOG(kWarn, "refused " << refused_ << " client connection" << (refused_ == 1 ? "" : "s")
                                  << (refusal_logged_ ? " since the last report" : "") << ": "
                                  << sessions_.size() << " connected, the limit is "
                                  << cfg_.max_clients << " (clients.max_clients)");
      refused_ = 0;
      refusal_logged_ = true;
      refusal_logged_at_ = now_us;
    }
    frame_.clear();
    proto::encode(frame_, proto::Error{ErrorCode::kTooManyClients, "",
                                       "the daemon has reached its client limit (" +
                                           std::to_string(cfg_.max_clients) + ")"});
    io_.send(id, frame_);
    io_.close(id);
    return false;
  }
  auto [it, added] =
      sessions_.emplace(id, Session(cfg_.max_message_bytes + proto::kFrameOverheadBytes));
  AGENT_CHECK(added);  // an id names one open connection
  if (!user.empty()) ++per_user_[user];
  if (needs_auth(peer)) {
    // The shell's randomness: a nonce that repeated would let a recorded answer in.
    AGENT_CHECK(nonce.size() == clientauth::kNonceBytes);
    it->second.nonce.assign(nonce);
  }
  it->second.peer = std::move(peer);
  it->second.opened_due = now_us + uint64_t{cfg_.hello_timeout_ms} * 1000;
  hello_due_.emplace_back(it->second.opened_due, id);
  return true;
}

uint64_t ClientHub::next_hello_deadline() const {
  return hello_due_.empty() ? ~uint64_t{0} : hello_due_.front().first;
}

void ClientHub::expire(uint64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  ++depth_;
  while (!hello_due_.empty() && hello_due_.front().first <= now_us) {
    auto [due, id] = hello_due_.front();
    hello_due_.pop_front();
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.connected || it->second.closing) continue;
    // A connection id may be reused by a later connection: its own entry is further back.
    if (it->second.opened_due != due) continue;
    send_error(id, ErrorCode::kNotConnected, "",
               "no hello within " + std::to_string(cfg_.hello_timeout_ms) + " ms; closing");
    it->second.closing = true;
    to_drop_.push_back(id);
  }
  --depth_;
  process_drops();
}

void ClientHub::restart_hello_clock(uint64_t now_us) {
  uint64_t due = now_us + uint64_t{cfg_.hello_timeout_ms} * 1000;
  hello_due_.clear();
  for (auto& [id, s] : sessions_)
    if (!s.connected && !s.closing) {
      s.opened_due = due;
      hello_due_.emplace_back(due, id);
    }
}

void ClientHub::on_bytes(ConnId id, const char* data, size_t size) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.reader.feed_view(data, size);  // keep_rest() below, before data goes away
  proto::Frame f;
  ++depth_;
  while (!s.closing) {
    auto st = s.reader.next(f);
    if (st == proto::FrameReader::Status::kNeedMore) break;
    if (st == proto::FrameReader::Status::kTooLarge) {
      ++stats_.bad_frames;
      send_error(id, ErrorCode::kFrameTooLarge, "",
                 "frame length " + std::to_string(s.reader.offending_length()) +
                     " is zero or above the limit " +
                     std::to_string(cfg_.max_message_bytes + proto::kFrameOverheadBytes) +
                     "; closing the connection");
      s.closing = true;
      break;
    }
    ++stats_.frames_in;
    handle_frame(id, s, f);
  }
  s.reader.keep_rest();
  --depth_;
  if (s.closing) to_drop_.push_back(id);
  process_drops();
}

void ClientHub::on_closed(ConnId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  it->second.closing = true;
  forget(id, /*close=*/false);
  process_drops();
}

void ClientHub::on_sent(ConnId id, uint64_t remaining) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.closing) return;  // a closing one counts as it was
  Session& s = it->second;
  remaining += s.held.size();
  queued_total_ = queued_total_ - s.queued_bytes + remaining;
  s.queued_bytes = remaining;
  if (s.read_waits && remaining - s.held.size() < cfg_.client_queue_bytes / 4) {
    s.read_waits = false;
    issue_read(s);
  }
  if (remaining <= hold_low_bytes() && holding_.count(id)) end_hold(id, s, /*drained=*/true);
}

uint64_t ClientHub::hold_deadline() const {
  uint64_t first = ~0ull;
  for (auto& [id, since] : holding_) first = std::min(first, since);
  return first == ~0ull ? first : first + uint64_t{cfg_.slow_timeout_ms} * 1000;
}

void ClientHub::expire_holds(uint64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  if (holding_.empty() || now_us_ < hold_deadline()) return;
  std::vector<ConnId> late;
  for (auto& [id, since] : holding_)
    if (now_us_ >= since + uint64_t{cfg_.slow_timeout_ms} * 1000) late.push_back(id);
  for (ConnId id : late) {
    Session& s = sessions_.at(id);  // holding_ names only live sessions
    ++stats_.slow_hold_timeouts;
    drop_slow(id, s,
              "the client did not read its messages: its queue stayed over " +
                  std::to_string(hold_low_bytes()) + " bytes for clients.slow_timeout_ms (" +
                  std::to_string(cfg_.slow_timeout_ms) +
                  " ms) while it held the ring's senders back (clients.slow_policy = "
                  "\"backpressure\"), " + std::to_string(s.queued_bytes) + " bytes unread");
  }
  AGENT_CHECK(holding_.empty() || now_us_ < hold_deadline());
  process_drops();
}

void ClientHub::start_hold(ConnId id, Session& s) {
  AGENT_CHECK(cfg_.slow_policy == Config::SlowPolicy::kBackpressure && !s.closing);
  bool fresh = holding_.emplace(id, now_us_).second;
  AGENT_CHECK(fresh);
  ++stats_.slow_holds;
  // A client that reads in bursts may start and end holds often: the log gets a sample.
  if (hold_logged_at_ != 0 && now_us_ < hold_logged_at_ + 10'000'000) {
    ++holds_unlogged_;
    return;
  }
  AGENT_LOG(kWarn, "client " << (s.connected ? s.private_group : std::to_string(id))
                             << " has " << s.queued_bytes
                             << " bytes unread (over half of clients.queue_limit_bytes): it "
                                "holds the ring's senders back until it reads"
                             << (holds_unlogged_ > 0 ? "; " + std::to_string(holds_unlogged_) +
                                                           " more holds since the last such line"
                                                     : ""));
  holds_unlogged_ = 0;
  hold_logged_at_ = std::max<uint64_t>(now_us_, 1);
  s.hold_logged = true;
}

void ClientHub::end_hold(ConnId id, Session& s, bool drained) {
  auto it = holding_.find(id);
  AGENT_CHECK(it != holding_.end());
  uint64_t held_ms = (now_us_ - std::min(now_us_, it->second)) / 1000;
  holding_.erase(it);
  if (s.hold_logged && drained)
    AGENT_LOG(kInfo, "client " << (s.connected ? s.private_group : std::to_string(id))
                               << " read its queue down to " << s.queued_bytes << " bytes after "
                               << held_ms << " ms: it no longer holds the ring back");
  s.hold_logged = false;
}

void ClientHub::process_drops() {
  if (depth_ > 0) return;
  while (!to_drop_.empty()) {
    ConnId id = to_drop_.back();
    to_drop_.pop_back();
    if (sessions_.count(id)) forget(id, /*close=*/true);
  }
}

void ClientHub::forget(ConnId id, bool close) {
  auto it = sessions_.find(id);
  AGENT_CHECK(it != sessions_.end());
  Session& s = it->second;
  if (holding_.count(id)) end_hold(id, s, /*drained=*/false);
  AGENT_CHECK(queued_total_ >= s.queued_bytes);
  queued_total_ -= s.queued_bytes;
  std::string member;
  if (s.connected) {
    member = s.private_group;
    by_group_.erase(member);
  }
  if (s.positions) --positions_sessions_;
  for (auto& g : s.groups) state_bytes_ -= membership_bytes(s, g);
  if (std::string user = s.peer.user_key(); !user.empty()) {
    auto u = per_user_.find(user);
    if (u != per_user_.end() && --u->second == 0) per_user_.erase(u);
  }
  if (close) {
    auto a = std::find(to_abort_.begin(), to_abort_.end(), id);
    if (a != to_abort_.end()) {
      to_abort_.erase(a);
      io_.abort(id);
    } else {
      io_.close(id);
    }
  }
  sessions_.erase(it);
  if (!member.empty()) {
    departing_.insert(member);
    AGENT_LOG(kInfo, "client " << member << " disconnected");
    groups::Event ev;
    ev.kind = groups::EventKind::kDisconnect;
    ev.member = std::move(member);
    ++depth_;
    submit_event(ev);
    --depth_;
  }
}

void ClientHub::shutdown() {
  for (auto& [id, s] : sessions_) {
    send_error(id, ErrorCode::kShuttingDown, "", "the daemon is shutting down");
    io_.close(id);
  }
  sessions_.clear();
  per_user_.clear();
  by_group_.clear();
  departing_.clear();
  to_drop_.clear();
}

void ClientHub::send_error(ConnId id, ErrorCode code, std::string subject, std::string text) {
  AGENT_LOG(kDebug, "error to connection " << id << ": " << proto::error_name(code) << ": "
                                           << text);
  // Not frame_: an error may be sent while a delivery's frame is in it (a slow client
  // dropped halfway through its recipients).
  std::string frame;
  proto::encode(frame, proto::Error{code, std::move(subject), std::move(text)});
  io_.send(id, frame);
}

void ClientHub::handle_frame(ConnId id, Session& s, const proto::Frame& f) {
  if (s.challenged) {
    // Between the challenge and the welcome only the answer is taken.
    if (f.verb == Verb::kAuth) {
      handle_auth(id, s, f.body);
    } else {
      ++stats_.bad_frames;
      std::string verb = std::to_string(static_cast<int>(f.verb));
      refuse_auth(id, s,
                  "daemon " + cfg_.name + " requires TCP clients to authenticate: answer its "
                  "challenge with auth (verb 7), not verb " + verb + "; closing",
                  "did not authenticate (sent verb " + verb + " instead of auth)");
    }
    return;
  }
  if (!s.connected && f.verb != Verb::kHello) {
    ++stats_.bad_frames;
    send_error(id, ErrorCode::kNotConnected, "", "the first frame must be hello; closing");
    s.closing = true;
    return;
  }
  switch (f.verb) {
    case Verb::kHello:
      if (s.connected) {
        ++stats_.bad_frames;
        send_error(id, ErrorCode::kNotConnected, "", "hello was already accepted");
        return;
      }
      handle_hello(id, s, f.body);
      return;
    case Verb::kJoin:
    case Verb::kLeave: {
      bool join = f.verb == Verb::kJoin;
      auto m = proto::decode_group_request(f.body);
      if (!m) {
        ++stats_.bad_frames;
        send_error(id, ErrorCode::kMalformedFrame, "",
                   join ? "join frame does not decode" : "leave frame does not decode");
        return;
      }
      if (!names::valid_group(m->group)) {
        send_error(id, ErrorCode::kIllegalGroup, m->group, names::explain_group(m->group));
        return;
      }
      if (join) {
        request_join(id, s, m->group);
        return;
      }
      if (!s.groups.count(m->group)) {
        send_error(id, ErrorCode::kNotMember, m->group, "not a member of " + m->group);
        return;
      }
      s.groups.erase(m->group);
      state_bytes_ -= membership_bytes(s, m->group);
      s.history_joins.erase(m->group);
      groups::Event ev;
      ev.kind = groups::EventKind::kLeave;
      ev.member = s.private_group;
      ev.group = std::move(m->group);
      submit_event(ev);
      return;
    }
    case Verb::kHistory:
      handle_history(id, s, f.body);
      return;
    case Verb::kMulticast:
      handle_multicast(id, s, f.body);
      return;
    case Verb::kBye:
      s.closing = true;
      return;
    case Verb::kAdmin:
      handle_admin(id, s, f.body);
      return;
    case Verb::kAuth:
      ++stats_.bad_frames;
      send_error(id, ErrorCode::kAuthFailed, "",
                 "auth is only the answer to a challenge, and this connection has none pending");
      return;
    default:
      ++stats_.bad_frames;
      send_error(id, ErrorCode::kUnknownVerb, "",
                 "verb " + std::to_string(static_cast<int>(f.verb)) + " is not a client verb");
      return;
  }
}

void ClientHub::handle_hello(ConnId id, Session& s, std::string_view body) {
  auto h = proto::decode_hello(body);
  if (!h) {
    ++stats_.bad_frames;
    send_error(id, ErrorCode::kMalformedFrame, "", "hello frame does not decode; closing");
    s.closing = true;
    return;
  }
  if (h->magic != proto::kMagic || h->version != proto::kVersion) {
    send_error(id, ErrorCode::kVersionMismatch, "",
               "this daemon speaks client protocol version " + std::to_string(proto::kVersion) +
                   ", the client sent version " + std::to_string(h->version) +
                   (h->magic != proto::kMagic ? " with a wrong magic number" : ""));
    s.closing = true;
    return;
  }
  if (!(h->flags & proto::kHelloGenerateName) && !names::valid_private_name(h->name)) {
    send_error(id, ErrorCode::kIllegalName, h->name, names::explain_private_name(h->name));
    s.closing = true;
    return;
  }
  if (needs_auth(s.peer)) {
    // The welcome waits for the answer to a challenge; the response covers this hello.
    s.hello = std::move(*h);
    s.hello_body.assign(body);
    s.challenged = true;
    frame_.clear();
    proto::encode(frame_, proto::Challenge{clientauth::kMethodSecret, s.nonce});
    io_.send(id, frame_);
    return;
  }
  finish_hello(id, s, *h);
}

void ClientHub::handle_auth(ConnId id, Session& s, std::string_view body) {
  s.challenged = false;
  auto a = proto::decode_auth(body);
  if (!a) {
    ++stats_.bad_frames;
    refuse_auth(id, s, "auth frame does not decode; closing",
                "sent an auth frame that does not decode");
    return;
  }
  if (a->method != clientauth::kMethodSecret) {
    refuse_auth(id, s,
                "auth method " + std::to_string(a->method) + " is not the challenge's (" +
                    std::to_string(clientauth::kMethodSecret) + "); closing",
                "answered with auth method " + std::to_string(a->method));
    return;
  }
  static const clientauth::Secrets kNone;
  auto verdict = clientauth::verify(secrets_ ? *secrets_ : kNone, a->name, a->mac, s.nonce,
                                    s.hello_body);
  // One answer per nonce: a second try on this connection would need a new challenge.
  s.nonce.clear();
  if (verdict != clientauth::Verdict::kOk) {
    // The client is not told which of name and secret was wrong (names would be guessable);
    // the log says.
    std::string shown = clientauth::valid_name(a->name) ? a->name : "(not a valid name)";
    refuse_auth(id, s,
                "authentication failed: daemon " + cfg_.name +
                    " does not accept this name and secret (clients.secrets_file); closing",
                "failed to authenticate as '" + shown + "': " + clientauth::to_string(verdict) +
                    (verdict == clientauth::Verdict::kUnknownName
                         ? " (not in clients.secrets_file)"
                         : ""));
    return;
  }
  s.peer.tcp_user = a->name;
  proto::Hello h = std::move(s.hello);
  s.hello_body.clear();
  finish_hello(id, s, h);
}

void ClientHub::refuse_auth(ConnId id, Session& s, const std::string& to_client,
                            const std::string& log_line) {
  // One line, then at most one per 10 s with the count: a client guessing secrets, or many
  // clients without them, must not flood the log.
  ++auth_failures_;
  if (auth_failures_logged_at_ == 0 || now_us_ >= auth_failures_logged_at_ + 10'000'000) {
    AGENT_LOG(kWarn, "refused TCP client " << s.peer.describe() << ": " << log_line
                         << (auth_failures_ > 1
                                 ? "; " + std::to_string(auth_failures_ - 1) +
                                       " more refused authentications since the last report"
                                 : std::string()));
    auth_failures_ = 0;
    auth_failures_logged_at_ = std::max<uint64_t>(now_us_, 1);
  }
  send_error(id, ErrorCode::kAuthFailed, "", to_client);
  s.challenged = false;
  s.closing = true;
}

void ClientHub::finish_hello(ConnId id, Session& s, const proto::Hello& h) {
  std::string name = h.name;
  if (h.flags & proto::kHelloGenerateName) name = generate_name();
  std::string pg = names::private_group(name, cfg_.name);
  if (by_group_.count(pg) || departing_.count(pg)) {
    send_error(id, ErrorCode::kNameTaken, name,
               by_group_.count(pg)
                   ? "a client named '" + name + "' is already connected to daemon " + cfg_.name
                   : "the previous session named '" + name + "' is still leaving its groups; "
                     "try again in a moment");
    s.closing = true;
    return;
  }
  AGENT_CHECK(!needs_auth(s.peer) || !s.peer.tcp_user.empty());  // no welcome without auth
  s.connected = true;
  s.want_membership = (h.flags & proto::kHelloWantMembership) != 0;
  s.positions = (h.flags & proto::kHelloPositions) != 0;
  if (s.positions) ++positions_sessions_;
  s.private_group = pg;
  by_group_.emplace(pg, id);
  frame_.clear();
  proto::encode(frame_, proto::Welcome{proto::kVersion, pg, cfg_.name, cfg_.max_message_bytes});
  io_.send(id, frame_);
  AGENT_LOG(kInfo, "client " << pg << " connected"
                              << (s.peer.tcp_user.empty() ? ""
                                                          : " (tcpuser " + s.peer.tcp_user + ")"));
}

void ClientHub::handle_multicast(ConnId id, Session& s, std::string_view body) {
  // Decoded into the hub's own view (256 group slots: not set up anew for every message).
  proto::MulticastView& m = multicast_;
  if (!proto::decode_multicast_view(body, m)) {
    ++stats_.bad_frames;
    send_error(id, ErrorCode::kMalformedFrame, "", "multicast frame does not decode");
    return;
  }
  if (!proto::service::valid_multicast(m.service)) {
    send_error(id, ErrorCode::kIllegalService, "",
               "service flags must hold exactly one of UNRELIABLE, RELIABLE, FIFO, CAUSAL, "
               "AGREED, SAFE, optionally with SELF_DISCARD");
    return;
  }
  if (m.ngroups == 0) {
    send_error(id, ErrorCode::kTooManyGroups, "",
               "a multicast names 1.." + std::to_string(proto::kMaxGroupsPerMessage) + " groups");
    return;
  }
  for (size_t i = 0; i < m.ngroups; ++i) {
    std::string_view g = m.groups[i];
    if (!names::valid_destination(g)) {
      send_error(id, ErrorCode::kIllegalGroup, std::string(g), names::explain_group(g));
      return;
    }
    if (!cfg_.access.empty() && !allowed(id, s, std::string(g), true)) return;
  }
  if (m.payload.size() > cfg_.max_message_bytes) {
    send_error(id, ErrorCode::kMessageTooLarge, "",
               "message of " + std::to_string(m.payload.size()) + " bytes is above the limit " +
                   std::to_string(cfg_.max_message_bytes));
    return;
  }
  // Straight from the frame to the ring's encoding: the payload is copied once, into a buffer
  // the ordering layer hands back when it is done with an earlier one.
  if (size_t i = service_index(m.service); i < s.sent.size()) {
    ++s.sent[i];
    ++stats_.sent[i];
    stats_.sent_bytes[i] += m.payload.size();
  }
  std::string& bytes = multicast_event_;
  bytes.clear();
  bytes.reserve(m.payload.size() + 64 * (m.ngroups + 1));
  groups::encode_data_event(bytes, s.private_group, m.service, m.msg_type, m.groups,
                            m.ngroups, m.payload);
  submit_(m.service, bytes);
}

void ClientHub::submit_event(const groups::Event& ev) {
  std::string bytes;
  groups::encode_event(bytes, ev);
  submit_(ev.kind == groups::EventKind::kData ? ev.service : proto::service::kAgreed, bytes);
}

bool ClientHub::deliver_bytes(uint64_t seq, std::string_view bytes, groups::DaemonId origin,
                              uint64_t ring, bool past_gap,
                              const std::shared_ptr<const void>& owner) {
  while (!undelivered_.empty() && undelivered_.front() <= persist::Position{ring, seq})
    undelivered_.pop_front();
  // During a state exchange the group layer keeps events for later: those need their payload.
  std::string_view payload;
  // Decoded into the hub's own event: its strings keep their capacity from one to the next.
  bool viewed = !state_.exchanging();
  if (!groups::decode_event(bytes, event_, viewed ? &payload : nullptr)) return false;
  // Logged in the order the ring delivers (the total order), whatever the group layer holds.
  if (event_.kind == groups::EventKind::kData && cfg_.persist.enabled() && !log_on_receipt_)
    log_message(ring, seq, event_, viewed ? payload : std::string_view(event_.payload), past_gap,
                viewed ? owner : nullptr);

  last_payload_ = payload;
  deliveries_.clear();
  state_.apply(seq, origin, event_, deliveries_);
  route(&event_, payload);
  return true;
}

void ClientHub::on_transitional(uint64_t ordinal, const std::vector<groups::DaemonId>& daemons,
                                uint64_t next_ring) {
  deliveries_.clear();
  state_.on_transitional(ordinal, daemons, deliveries_, next_ring);
  route();
}

groups::Event ClientHub::on_regular(uint64_t seq, uint64_t config,
                                    const std::vector<groups::DaemonId>& daemons) {
  deliveries_.clear();
  auto state = state_.on_regular(seq, config, daemons, deliveries_);
  route();
  return state;
}

void ClientHub::route(const groups::Event* viewed, std::string_view payload) {
  ++depth_;  // slow clients found while routing are dropped after the whole batch
  for (auto& d : deliveries_) {
    frame_.clear();
    if (d.data) {
      // The frame's head is encoded once; the payload goes from where it lies (the ring's
      // packet) straight into each recipient's output.
      const auto& e = *d.data;
      std::string_view body = d.data == viewed ? payload : std::string_view(e.payload);
      proto::encode_data_head(frame_, e.service, e.msg_type, e.member, e.groups, body.size());
      positioned_frame_.clear();
      if (positions_sessions_ > 0)
        proto::encode_positioned_data_head(positioned_frame_, d.ring, d.ordinal, e.service,
                                           e.msg_type, e.member, e.groups, body.size());
      stats_.messages_delivered += d.recipients.size();
      stats_.bytes_delivered += d.recipients.size() * body.size();
      // A payload viewed in the delivered bytes lives until the io's flush; one held by the
      // group layer (an event kept during a state exchange) may not: that one is copied.
      bool lives = d.data == viewed && !payload.empty();
      for (auto& r : d.recipients) send_to(r, frame_, body, false, lives, positioned_frame_);
      continue;
    } else {
      if (d.membership.service == proto::service::kCausedByDisconnect) {
        // A local member's disconnect took effect: its name is free again. No session gets it.
        for (auto& r : d.recipients) {
          departing_.erase(r);
          io_.session_ended(r, d.membership);
        }
        continue;
      }
      proto::encode(frame_, d.membership);
      if (d.membership.service & proto::service::kCausedByJoin) {
        // A join that asked for history: what the log holds before the join comes first.
        auto it = by_group_.find(d.membership.changed);
        if (it != by_group_.end()) {
          Session& s = sessions_.at(it->second);
          auto h = s.history_joins.find(d.membership.group);
          if (h != s.history_joins.end() && !s.closing) {
            proto::History request = std::move(h->second);
            s.history_joins.erase(h);
            start_read(it->second, s, request, {d.ring, d.ordinal});
          }
        }
      }
    }
    for (auto& r : d.recipients) send_to(r, frame_, {}, true);
  }
  --depth_;
  process_drops();
}

void ClientHub::send_to(const std::string& member, std::string_view head, std::string_view tail,
                        bool membership, bool tail_lives, std::string_view positioned_head) {
  auto it = by_group_.find(member);
  if (it == by_group_.end()) return;  // gone since the event was ordered
  auto sit = sessions_.find(it->second);
  AGENT_CHECK(sit != sessions_.end());  // by_group_ names only live sessions
  Session& s = sit->second;
  if (s.closing || (membership && !s.want_membership)) return;
  if (s.positions && !positioned_head.empty()) head = positioned_head;
  if (!s.reads.empty())
    s.held.append(head).append(tail);  // after the history being read
  else if (tail.empty())
    io_.send(it->second, head);
  else if (tail_lives)
    io_.send_view(it->second, head, tail);
  else
    io_.send(it->second, head, tail);
  s.queued_bytes += head.size() + tail.size();
  queued_total_ += head.size() + tail.size();
  check_queue(it->second, s);
}

bool ClientHub::check_queue(ConnId id, Session& s) {
  bool backpressure = cfg_.slow_policy == Config::SlowPolicy::kBackpressure;
  if (s.queued_bytes > cfg_.client_queue_bytes) {
    // With back-pressure the ring stops within ring.max_outstanding packets of the hold; a
    // client still passes the limit when that is more than the half of it left.
    drop_slow(id, s,
              "the client did not read its messages and its queue passed " +
                  std::to_string(cfg_.client_queue_bytes) + " bytes" +
                  (backpressure ? " although it held the ring's senders back" : ""));
    return false;
  }
  if (backpressure && !s.closing && s.queued_bytes > hold_high_bytes() && !holding_.count(id))
    start_hold(id, s);
  if (queued_total_ > cfg_.client_queue_total_bytes) {
    // All clients' queues together are over the daemon's bound: the one holding the most goes.
    ConnId worst = 0;
    Session* most = nullptr;
    for (auto& [cid, x] : sessions_)
      if (!x.closing && (!most || x.queued_bytes > most->queued_bytes)) {
        worst = cid;
        most = &x;
      }
    if (most) {
      drop_slow(worst, *most,
                "the daemon's queues for all clients passed " +
                    std::to_string(cfg_.client_queue_total_bytes) +
                    " bytes and this client had the most unread (" +
                    std::to_string(most->queued_bytes) + " bytes)");
      return worst != id;
    }
  }
  return true;
}

void ClientHub::drop_slow(ConnId id, Session& s, const std::string& why) {
  AGENT_LOG(kWarn, "client " << (s.connected ? s.private_group : std::to_string(id)) << ": "
                             << why << "; disconnecting it");
  ++stats_.slow_clients_dropped;
  if (holding_.count(id)) end_hold(id, s, /*drained=*/false);
  // It cannot read this error before the queue drains; it is sent for the record.
  send_error(id, proto::ErrorCode::kSlowClient, s.private_group, why);
  // Its queue is cut, not waited for: it stops counting now (or the next send could find the
  // total still over the bound and drop another client).
  queued_total_ -= s.queued_bytes;
  s.queued_bytes = 0;
  s.held.clear();
  s.held.shrink_to_fit();
  s.reads.clear();
  s.read_waits = false;
  s.closing = true;
  to_drop_.push_back(id);
  to_abort_.push_back(id);
}

bool ClientHub::allowed(ConnId id, Session& s, const std::string& group, bool send) {
  if (cfg_.access.empty() || names::is_private_group(group)) return true;
  for (size_t i = 0; i < cfg_.access.size(); ++i) {
    const AccessRule& r = cfg_.access[i];
    bool applies = false;
    for (auto& pattern : r.groups) applies |= persist::glob_match(pattern, group);
    if (!applies) continue;
    if (!(send ? r.send_listed : r.join_listed)) return true;
    for (auto& p : send ? r.send : r.join)
      if (s.peer.matches(p)) return true;
    // One line, then at most one per 10 s with the count: a client repeating a refused
    // request must not flood the log.
    ++denials_;
    if (denials_logged_at_ == 0 || now_us_ >= denials_logged_at_ + 10'000'000) {
      AGENT_LOG(kWarn, "client " << s.private_group << " (" << s.peer.describe() << ") may not "
                                 << (send ? "send to " : "join ") << group << ": access rule "
                                 << i + 1 << " (" << r.origin << ")"
                                 << (denials_ > 1 ? "; " + std::to_string(denials_ - 1) +
                                                        " more refusals since the last report"
                                                  : std::string()));
      denials_ = 0;
      denials_logged_at_ = std::max<uint64_t>(now_us_, 1);
    }
    send_error(id, ErrorCode::kAccessDenied, group,
               std::string(send ? "this client may not send to " : "this client may not join ") +
                   group + " (access rule " + std::to_string(i + 1) + " of daemon " + cfg_.name +
                   ")");
    return false;
  }
  return true;
}

bool ClientHub::request_join(ConnId id, Session& s, const std::string& group) {
  if (!allowed(id, s, group, false)) return false;
  if (s.groups.count(group)) {
    send_error(id, ErrorCode::kAlreadyMember, group, "already a member of " + group);
    return false;
  }
  if (s.groups.size() >= cfg_.max_groups_per_client) {
    send_error(id, ErrorCode::kTooManyGroups, group,
               "a client may be in at most " + std::to_string(cfg_.max_groups_per_client) +
                   " groups (clients.max_groups)");
    return false;
  }
  // Every local membership travels in this daemon's state event at each configuration change:
  // one that could not carry them all would stall the exchange (the ring refuses a message
  // above its limit). The ring leaves room above max_message_bytes; joins stop below it.
  if (state_bytes_ + membership_bytes(s, group) > cfg_.max_message_bytes) {
    send_error(id, ErrorCode::kTooManyGroups, group,
               "daemon " + cfg_.name + " hosts as many memberships as its state exchange can " +
                   "carry (" + std::to_string(state_bytes_) + " bytes of names; " +
                   "clients.max_message_bytes bounds them)");
    return false;
  }
  s.groups.insert(group);
  state_bytes_ += membership_bytes(s, group);
  groups::Event ev;
  ev.kind = groups::EventKind::kJoin;
  ev.member = s.private_group;
  ev.group = group;
  submit_event(ev);
  return true;
}

bool ClientHub::persistent(const std::string& group) {
  auto it = persistent_.find(group);
  if (it != persistent_.end()) return it->second;
  if (persistent_.size() > 100000) persistent_.clear();  // bounded; the patterns decide again
  bool p = persistent_group(cfg_.persist, group);
  persistent_.emplace(group, p);
  return p;
}

void ClientHub::handle_history(ConnId id, Session& s, std::string_view body) {
  auto h = proto::decode_history(body);
  if (!h) {
    ++stats_.bad_frames;
    send_error(id, ErrorCode::kMalformedFrame, "", "history frame does not decode");
    return;
  }
  if (!names::valid_group(h->group) || names::is_private_group(h->group)) {
    send_error(id, ErrorCode::kIllegalGroup, h->group,
               names::valid_group(h->group) ? "a private group has no history"
                                            : names::explain_group(h->group));
    return;
  }
  if (!cfg_.persist.enabled() || !persistent(h->group)) {
    send_error(id, ErrorCode::kNotPersistent, h->group,
               cfg_.persist.enabled()
                   ? "daemon " + cfg_.name + " keeps no log of group " + h->group +
                         " (persist.groups does not name it)"
                   : "daemon " + cfg_.name + " keeps no message log (no [persist] groups)");
    return;
  }
  if (h->flags & proto::kHistoryJoin) {
    if (s.groups.count(h->group)) {
      send_error(id, ErrorCode::kAlreadyMember, h->group, "already a member of " + h->group);
      return;
    }
    // The history is read when the join takes effect (maybe before request_join returns):
    // everything before it is history, everything after it comes live.
    std::string group = h->group;
    s.history_joins[group] = std::move(*h);
    if (!request_join(id, s, group)) s.history_joins.erase(group);
    return;
  }
  if (!allowed(id, s, h->group, false)) return;  // the history is the group's: joiners' right
  start_read(id, s, *h, persist::kEnd);
}

void ClientHub::start_read(ConnId id, Session& s, const proto::History& h,
                           persist::Position before) {
  LogRead r;
  r.conn = id;
  r.group = h.group;
  if (h.flags & proto::kHistorySince)
    r.since_us = std::max<uint64_t>(h.since_us, 1);
  else
    r.after = {h.ring, h.ordinal};
  // Logged at reception: what this daemon has not delivered yet is not history yet.
  r.before = undelivered_.empty() ? before : std::min(before, undelivered_.front());
  s.reads.push_back(std::move(r));
  if (s.reads.size() == 1) {
    s.read_count = 0;
    s.read_gap = false;
    issue_read(s);
  }
}

void ClientHub::issue_read(Session& s) {
  AGENT_CHECK(!s.reads.empty() && !s.read_out);
  if (reads_held_) {
    s.read_parked = true;
    return;
  }
  flush_log();  // the read sees every message delivered before it
  s.read_out = true;
  s.reads.front().id = ++s.next_read;  // each chunk's read has its own: answers match
  io_.log_read(s.reads.front());
}

void ClientHub::on_history(ConnId id, uint64_t read_id, persist::ReadResult&& chunk) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;  // gone meanwhile
  Session& s = it->second;
  if (s.closing || s.reads.empty() || s.reads.front().id != read_id || !s.read_out) return;
  s.read_out = false;
  LogRead& r = s.reads.front();
  ++depth_;
  if (!chunk.error.empty()) {
    AGENT_LOG(kError, "message log: reading group " << r.group << " for client "
                                                    << s.private_group << ": " << chunk.error);
    send_error(id, ErrorCode::kLogFailed, r.group,
               "the message log could not be read: " + chunk.error);
    end_read(id, s, proto::kHistoryFailed);
  } else {
    if (r.since_us) {
      r.since_us = 0;
      r.after = chunk.after;
    }
    s.read_gap |= chunk.gap;
    bool alive = true;
    for (auto& e : chunk.entries) {
      frame_.clear();
      proto::encode_positioned_data_head(frame_, e.pos.ring, e.pos.ordinal, e.service,
                                         e.msg_type, e.sender, e.groups, e.payload.size());
      frame_.append(e.payload);
      r.after = e.pos;
      ++s.read_count;
      ++stats_.history_entries;
      if (!(alive = send_direct(id, s, frame_))) break;
    }
    if (alive) {
      if (!chunk.more)
        end_read(id, s, s.read_gap ? proto::kHistoryGap : 0);
      else if (s.queued_bytes - s.held.size() < cfg_.client_queue_bytes / 4)
        issue_read(s);
      else
        s.read_waits = true;  // on_sent asks for more once the client has read
    }
  }
  --depth_;
  process_drops();
}

void ClientHub::on_log_failed(const std::vector<std::string>& senders, const std::string& what,
                              uint64_t now_us) {
  for (auto& sender : senders) {
    auto it = by_group_.find(sender);
    if (it == by_group_.end()) continue;
    Session& s = sessions_.at(it->second);
    if (s.closing || (s.log_error_at != 0 && now_us - s.log_error_at < 1000000)) continue;
    s.log_error_at = std::max<uint64_t>(now_us, 1);
    send_error(it->second, ErrorCode::kLogFailed, "",
               "daemon " + cfg_.name + " " + what +
                   "; they were delivered, but are missing from the group's history");
  }
}

void ClientHub::end_read(ConnId id, Session& s, uint8_t flags) {
  LogRead& r = s.reads.front();
  frame_.clear();
  proto::encode(frame_, proto::HistoryEnd{r.group, flags, s.read_count, r.after.ring,
                                          r.after.ordinal});
  if (!send_direct(id, s, frame_)) return;
  s.reads.pop_front();
  s.read_count = 0;
  s.read_gap = false;
  if (!s.reads.empty()) {
    issue_read(s);
    return;
  }
  // The history is complete: what was held for the client follows it.
  if (!s.held.empty()) io_.send(id, s.held);
  s.held.clear();
  if (s.held.capacity() > (1u << 20)) s.held.shrink_to_fit();
}

bool ClientHub::send_direct(ConnId id, Session& s, std::string_view bytes) {
  io_.send(id, bytes);
  s.queued_bytes += bytes.size();
  queued_total_ += bytes.size();
  return check_queue(id, s) && !s.closing;
}

void ClientHub::hold_reads(bool held) {
  if (held == reads_held_) return;
  reads_held_ = held;
  if (held) return;
  for (auto& [id, s] : sessions_) {
    if (!s.read_parked) continue;
    s.read_parked = false;
    if (!s.closing && !s.reads.empty() && !s.read_out) issue_read(s);
  }
}

void ClientHub::log_message(uint64_t ring, uint64_t seq, const groups::Event& ev,
                            std::string_view payload, bool past_gap,
                            const std::shared_ptr<const void>& owner) {
  persist::Record* rec = nullptr;
  for (auto& g : ev.groups) {
    if (!persistent(g)) continue;
    if (!rec) {
      rec = &log_batch_.emplace_back();
      rec->entry.pos = {ring, seq};
      rec->entry.service = ev.service;
      rec->entry.msg_type = ev.msg_type;
      rec->entry.sender = ev.member;
      rec->entry.groups = ev.groups;
      if (owner) {
        rec->payload_owner = owner;
        rec->payload_view = payload;
      } else {
        rec->entry.payload.assign(payload.data(), payload.size());
      }
      rec->past_gap = past_gap;
    }
    rec->log_groups.push_back(g);
  }
  if (rec) ++stats_.logged;
}

bool ClientHub::log_received(uint64_t ring, uint64_t ordinal, std::string_view event,
                             bool past_gap, const std::shared_ptr<const void>& owner) {
  AGENT_CHECK(log_on_receipt_);
  if (!cfg_.persist.enabled()) return false;
  std::string_view payload;
  if (!groups::decode_event(event, received_event_, &payload) ||
      received_event_.kind != groups::EventKind::kData)
    return false;  // an undecodable one is reported at its delivery
  size_t before = log_batch_.size();
  log_message(ring, ordinal, received_event_, payload, past_gap, owner);
  if (log_batch_.size() == before) return false;
  persist::Position pos{ring, ordinal};
  AGENT_CHECK(undelivered_.empty() || undelivered_.back() < pos);  // the total order
  undelivered_.push_back(pos);
  return true;
}

void ClientHub::flush_log() {
  if (coverage_)
    for (auto& r : log_batch_) persist::cover(*coverage_, r.entry.pos, r.past_gap);
  if (!log_batch_.empty()) io_.log_append(log_batch_);
  log_batch_.clear();
}

std::string ClientHub::generate_name() {
  for (;;) {
    std::string name = "u" + std::to_string(++generated_names_);
    if (name.size() > names::kMaxPrivateName) generated_names_ = 0;  // wrap; unlikely
    else if (!by_group_.count(names::private_group(name, cfg_.name)) &&
             !departing_.count(names::private_group(name, cfg_.name)))
      return name;
  }
}

}  // namespace agent::daemon
