#include "transport/client_protocol.h"

#include "transport/wire.h"

namespace agent::proto {

namespace service {
uint32_t strongest(uint32_t flags) {
  for (uint32_t bit = kSafe; bit != 0; bit >>= 1)
    if (flags & bit) return bit;
  return 0;
}
bool valid_multicast(uint32_t flags) {
  uint32_t regular = flags & kRegularMask;
  if (regular == 0 || (regular & (regular - 1)) != 0) return false;  // exactly one bit
  return (flags & ~(kRegularMask | kSelfDiscard)) == 0;
}
}  // namespace service

const char* error_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::kMalformedFrame: return "malformed frame";
    case ErrorCode::kFrameTooLarge: return "frame too large";
    case ErrorCode::kUnknownVerb: return "unknown verb";
    case ErrorCode::kVersionMismatch: return "version mismatch";
    case ErrorCode::kIllegalName: return "illegal private name";
    case ErrorCode::kNameTaken: return "private name taken";
    case ErrorCode::kIllegalGroup: return "illegal group name";
    case ErrorCode::kAlreadyMember: return "already a member";
    case ErrorCode::kNotMember: return "not a member";
    case ErrorCode::kMessageTooLarge: return "message too large";
    case ErrorCode::kIllegalService: return "illegal service";
    case ErrorCode::kNotConnected: return "not connected";
    case ErrorCode::kTooManyGroups: return "bad group count";
    case ErrorCode::kSlowClient: return "slow client disconnected";
    case ErrorCode::kShuttingDown: return "daemon shutting down";
    case ErrorCode::kTooManyClients: return "too many clients";
    case ErrorCode::kNotPersistent: return "not a persistent group";
    case ErrorCode::kLogFailed: return "message log failed";
    case ErrorCode::kAccessDenied: return "access denied";
    case ErrorCode::kAuthFailed: return "authentication failed";
    case ErrorCode::kNotPermitted: return "not permitted";
    case ErrorCode::kBadAdminRequest: return "bad admin request";
    case ErrorCode::kDisconnectedByOperator: return "disconnected by an operator";
  }
  return "unknown error";
}

namespace {

// Writes the header with a placeholder length; finish() fills it in.
size_t begin(std::string& out, Verb v) { return wire::begin_frame(out, static_cast<uint8_t>(v)); }
void finish(std::string& out, size_t start) { wire::finish_frame(out, start); }
void put_names(wire::Writer& w, const std::vector<std::string>& v) {
  w.u16(static_cast<uint16_t>(v.size()));
  for (auto& s : v) w.str8(s);
}
bool get_names(wire::Reader& r, std::vector<std::string>& v, size_t max) {
  size_t n = r.u16();
  if (!r.ok() || n > max || n > r.remaining()) return false;  // each name takes >= 1 byte
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) v.emplace_back(r.str8());
  return r.ok();
}
// The fields of a data frame up to its payload, in a frame begun at start; the length counts
// the payload_bytes that will follow.
void put_data_head(std::string& out, size_t start, uint32_t service, int16_t msg_type,
                   std::string_view sender, const std::vector<std::string>& groups,
                   size_t payload_bytes) {
  wire::Writer w(out);
  w.u32(service);
  w.i16(msg_type);
  w.str8(sender);
  put_names(w, groups);
  w.u32(static_cast<uint32_t>(payload_bytes));
  w.patch_u32(start, static_cast<uint32_t>(out.size() - start - 4 + payload_bytes));
}
void encode_group_request(std::string& out, Verb v, std::string_view group) {
  size_t s = begin(out, v);
  wire::Writer(out).str8(group);
  finish(out, s);
}

}  // namespace

void encode(std::string& out, const Hello& m) {
  size_t s = begin(out, Verb::kHello);
  wire::Writer w(out);
  w.u32(m.magic);
  w.u16(m.version);
  w.u8(m.flags);
  w.str8(m.name);
  finish(out, s);
}
void encode(std::string& out, const Challenge& m) {
  size_t s = begin(out, Verb::kChallenge);
  wire::Writer w(out);
  w.u8(m.method);
  w.str8(m.nonce);
  finish(out, s);
}
void encode(std::string& out, const Auth& m) {
  size_t s = begin(out, Verb::kAuth);
  wire::Writer w(out);
  w.u8(m.method);
  w.str8(m.name);
  w.str8(m.mac);
  finish(out, s);
}
void encode_join(std::string& out, std::string_view g) { encode_group_request(out, Verb::kJoin, g); }
void encode_leave(std::string& out, std::string_view g) { encode_group_request(out, Verb::kLeave, g); }
void encode_multicast(std::string& out, uint32_t service, int16_t msg_type,
                      const std::string_view* groups, size_t ngroups, std::string_view payload) {
  size_t s = begin(out, Verb::kMulticast);
  wire::Writer w(out);
  w.u32(service);
  w.i16(msg_type);
  w.u16(static_cast<uint16_t>(ngroups));
  for (size_t i = 0; i < ngroups; ++i) w.str8(groups[i]);
  w.bytes32(payload);
  finish(out, s);
}
void encode(std::string& out, const Multicast& m) {
  std::vector<std::string_view> g(m.groups.begin(), m.groups.end());
  encode_multicast(out, m.service, m.msg_type, g.data(), g.size(), m.payload);
}
void encode_bye(std::string& out) { finish(out, begin(out, Verb::kBye)); }
void encode(std::string& out, const Welcome& m) {
  size_t s = begin(out, Verb::kWelcome);
  wire::Writer w(out);
  w.u16(m.version);
  w.str8(m.private_group);
  w.str8(m.daemon);
  w.u32(m.max_message_bytes);
  finish(out, s);
}
void encode(std::string& out, const Data& m) {
  encode_data(out, m.service, m.msg_type, m.sender, m.groups, m.payload);
}
void encode_data(std::string& out, uint32_t service, int16_t msg_type, std::string_view sender,
                 const std::vector<std::string>& groups, std::string_view payload) {
  encode_data_head(out, service, msg_type, sender, groups, payload.size());
  out.append(payload.data(), payload.size());
}
void encode_data_head(std::string& out, uint32_t service, int16_t msg_type,
                      std::string_view sender, const std::vector<std::string>& groups,
                      size_t payload_bytes) {
  size_t s = begin(out, Verb::kData);
  put_data_head(out, s, service, msg_type, sender, groups, payload_bytes);
}
void encode_positioned_data_head(std::string& out, uint64_t ring, uint64_t ordinal,
                                 uint32_t service, int16_t msg_type, std::string_view sender,
                                 const std::vector<std::string>& groups, size_t payload_bytes) {
  size_t s = begin(out, Verb::kPositionedData);
  wire::Writer w(out);
  w.u64(ring);
  w.u64(ordinal);
  put_data_head(out, s, service, msg_type, sender, groups, payload_bytes);
}
void encode(std::string& out, const History& m) {
  size_t s = begin(out, Verb::kHistory);
  wire::Writer w(out);
  w.str8(m.group);
  w.u8(m.flags);
  if (m.flags & kHistorySince) {
    w.u64(m.since_us);
    w.u64(0);
  } else {
    w.u64(m.ring);
    w.u64(m.ordinal);
  }
  finish(out, s);
}
void encode(std::string& out, const HistoryEnd& m) {
  size_t s = begin(out, Verb::kHistoryEnd);
  wire::Writer w(out);
  w.str8(m.group);
  w.u8(m.flags);
  w.u64(m.count);
  w.u64(m.ring);
  w.u64(m.ordinal);
  finish(out, s);
}
void encode(std::string& out, const Membership& m) {
  size_t s = begin(out, Verb::kMembership);
  wire::Writer w(out);
  w.u32(m.service);
  w.str8(m.group);
  w.u64(m.view.config);
  w.u64(m.view.seq);
  put_names(w, m.members);
  w.str8(m.changed);
  w.u16(static_cast<uint16_t>(m.vs_sets.size()));
  for (auto& set : m.vs_sets) put_names(w, set);
  finish(out, s);
}
void encode(std::string& out, const Error& m) {
  size_t s = begin(out, Verb::kError);
  wire::Writer w(out);
  w.u16(static_cast<uint16_t>(m.code));
  w.str8(m.subject.size() > 255 ? m.subject.substr(0, 255) : m.subject);
  w.bytes32(m.text);
  finish(out, s);
}

void FrameReader::feed_view(const char* data, size_t size) {
  keep_rest();
  if (buffered() > 0) {
    feed(data, size);
    return;
  }
  buf_.clear();
  view_ = data;
  view_size_ = size;
  pos_ = 0;
}

void FrameReader::keep_rest() {
  if (!view_) return;
  buf_.assign(view_ + pos_, view_size_ - pos_);
  view_ = nullptr;
  view_size_ = 0;
  pos_ = 0;
}

void FrameReader::feed(const char* data, size_t size) {
  keep_rest();
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 16) && pos_ > buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(data, size);
}

FrameReader::Status FrameReader::next(Frame& out) {
  const char* base = view_ ? view_ : buf_.data();
  size_t avail = buffered();
  if (avail < 4) return Status::kNeedMore;
  wire::Reader r(base + pos_, 4);
  uint32_t len = r.u32();
  if (len == 0 || len > max_frame_bytes_) {
    offending_length_ = len;
    return Status::kTooLarge;
  }
  if (avail - 4 < len) return Status::kNeedMore;
  out.verb = static_cast<Verb>(static_cast<uint8_t>(base[pos_ + 4]));
  out.body = std::string_view(base + pos_ + 5, len - 1);
  pos_ += 4 + len;
  return Status::kFrame;
}

std::optional<Hello> decode_hello(std::string_view body) {
  wire::Reader r(body);
  Hello m;
  m.magic = r.u32();
  m.version = r.u16();
  m.flags = r.u8();
  m.name = std::string(r.str8());
  if (!r.done()) return std::nullopt;
  return m;
}
std::optional<GroupRequest> decode_group_request(std::string_view body) {
  wire::Reader r(body);
  GroupRequest m{std::string(r.str8())};
  if (!r.done()) return std::nullopt;
  return m;
}
std::optional<Multicast> decode_multicast(std::string_view body) {
  auto v = decode_multicast_view(body);
  if (!v) return std::nullopt;
  return Multicast{v->service, v->msg_type,
                   std::vector<std::string>(v->groups, v->groups + v->ngroups),
                   std::string(v->payload)};
}
std::optional<MulticastView> decode_multicast_view(std::string_view body) {
  MulticastView m;
  if (!decode_multicast_view(body, m)) return std::nullopt;
  return m;
}
bool decode_multicast_view(std::string_view body, MulticastView& m) {
  wire::Reader r(body);
  m.service = r.u32();
  m.msg_type = r.i16();
  size_t n = r.u16();
  if (!r.ok() || n > kMaxGroupsPerMessage) return false;
  for (size_t i = 0; i < n; ++i) m.groups[i] = r.str8();
  m.ngroups = n;
  m.payload = r.bytes32();
  return r.done();
}
std::optional<Welcome> decode_welcome(std::string_view body) {
  wire::Reader r(body);
  Welcome m;
  m.version = r.u16();
  m.private_group = std::string(r.str8());
  m.daemon = std::string(r.str8());
  m.max_message_bytes = r.u32();
  if (!r.done() || m.max_message_bytes == 0 || m.max_message_bytes > kMaxMessageBytes)
    return std::nullopt;
  return m;
}
std::optional<Data> decode_data(std::string_view body) {
  wire::Reader r(body);
  Data m;
  m.service = r.u32();
  m.msg_type = r.i16();
  m.sender = std::string(r.str8());
  if (!get_names(r, m.groups, kMaxGroupsPerMessage)) return std::nullopt;
  m.payload = std::string(r.bytes32());
  if (!r.done()) return std::nullopt;
  return m;
}
std::optional<Data> decode_positioned_data(std::string_view body) {
  if (body.size() < 16) return std::nullopt;
  wire::Reader r(body.substr(0, 16));
  uint64_t ring = r.u64(), ordinal = r.u64();
  auto m = decode_data(body.substr(16));
  if (!m) return std::nullopt;
  m->ring = ring;
  m->ordinal = ordinal;
  return m;
}
std::optional<History> decode_history(std::string_view body) {
  wire::Reader r(body);
  History m;
  m.group = std::string(r.str8());
  m.flags = r.u8();
  uint64_t a = r.u64(), b = r.u64();
  if (!r.done() || (m.flags & ~(kHistoryJoin | kHistorySince))) return std::nullopt;
  if (m.flags & kHistorySince)
    m.since_us = a;
  else
    m.ring = a, m.ordinal = b;
  return m;
}
std::optional<HistoryEnd> decode_history_end(std::string_view body) {
  wire::Reader r(body);
  HistoryEnd m;
  m.group = std::string(r.str8());
  m.flags = r.u8();
  m.count = r.u64();
  m.ring = r.u64();
  m.ordinal = r.u64();
  if (!r.done()) return std::nullopt;
  return m;
}
std::optional<Membership> decode_membership(std::string_view body) {
  wire::Reader r(body);
  Membership m;
  m.service = r.u32();
  m.group = std::string(r.str8());
  m.view.config = r.u64();
  m.view.seq = r.u64();
  if (!get_names(r, m.members, 65535)) return std::nullopt;
  m.changed = std::string(r.str8());
  size_t nsets = r.u16();
  if (!r.ok() || nsets > r.remaining() / 2 + 1) return std::nullopt;
  m.vs_sets.resize(nsets);
  for (auto& set : m.vs_sets)
    if (!get_names(r, set, 65535)) return std::nullopt;
  if (!r.done()) return std::nullopt;
  return m;
}
std::optional<Error> decode_error(std::string_view body) {
  wire::Reader r(body);
  Error m;
  m.code = static_cast<ErrorCode>(r.u16());
  m.subject = std::string(r.str8());
  m.text = std::string(r.bytes32());
  if (!r.done()) return std::nullopt;
  return m;
}

std::optional<Challenge> decode_challenge(std::string_view body) {
  wire::Reader r(body);
  Challenge m;
  m.method = r.u8();
  m.nonce = std::string(r.str8());
  if (!r.done()) return std::nullopt;
  return m;
}
std::optional<Auth> decode_auth(std::string_view body) {
  wire::Reader r(body);
  Auth m;
  m.method = r.u8();
  m.name = std::string(r.str8());
  m.mac = std::string(r.str8());
  if (!r.done()) return std::nullopt;
  return m;
}

void encode(std::string& out, const Admin& m) {
  size_t s = begin(out, Verb::kAdmin);
  wire::Writer w(out);
  w.str8(m.command);
  w.str8(m.argument);
  w.u8(m.flags);
  finish(out, s);
}
void encode(std::string& out, const AdminReply& m) {
  size_t s = begin(out, Verb::kAdminReply);
  wire::Writer w(out);
  w.str8(m.command);
  w.bytes32(m.text);
  finish(out, s);
}
std::optional<Admin> decode_admin(std::string_view body) {
  wire::Reader r(body);
  Admin m;
  m.command = std::string(r.str8());
  m.argument = std::string(r.str8());
  m.flags = r.u8();
  if (!r.done() || (m.flags & ~kAdminJson)) return std::nullopt;
  return m;
}
std::optional<AdminReply> decode_admin_reply(std::string_view body) {
  wire::Reader r(body);
  AdminReply m;
  m.command = std::string(r.str8());
  m.text = std::string(r.bytes32());
  if (!r.done() || m.text.size() > kMaxAdminReplyBytes) return std::nullopt;
  return m;
}

}  // namespace agent::proto
