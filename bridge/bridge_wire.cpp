#include "bridge/bridge_wire.h"

#include <lz4.h>

#include "groups/event_codec.h"
#include "transport/client_auth.h"
#include "transport/wire.h"

namespace agent::bridge {

namespace {

// Starts a frame: length placeholder and type. finish() patches the length.
size_t begin(std::string& out, FrameType t) {
  return wire::begin_frame(out, static_cast<uint8_t>(t));
}
void finish(std::string& out, size_t at) { wire::finish_frame(out, at); }

}  // namespace

void encode_hello(std::string& out, const Hello& h) {
  size_t at = begin(out, FrameType::kHello);
  wire::Writer w(out);
  w.u8(h.version);
  w.u8(h.sealed ? 1 : 0);
  w.str8(h.site);
  w.u64(h.epoch);
  w.u16(static_cast<uint16_t>(h.daemons.size()));
  for (auto& d : h.daemons) w.str8(d);
  w.raw(h.nonce);
  finish(out, at);
}

void encode_proof(std::string& out, std::string_view mac) {
  size_t at = begin(out, FrameType::kProof);
  wire::Writer(out).raw(mac);
  finish(out, at);
}

void encode_snapshot(std::string& out, const Snapshot& s) {
  size_t at = begin(out, FrameType::kSnapshot);
  wire::Writer w(out);
  w.u64(s.as_of);
  w.u32(static_cast<uint32_t>(s.memberships.size()));
  for (auto& [m, g] : s.memberships) {
    w.str8(m);
    w.str8(g);
  }
  finish(out, at);
}

size_t encode_batch(std::string& out, const std::vector<const Item*>& items, bool compress) {
  std::string raw;
  wire::Writer r(raw);
  for (auto* it : items) {
    r.u64(it->seq);
    r.bytes32(it->event);
  }
  size_t at = begin(out, FrameType::kBatch);
  wire::Writer w(out);
  std::string packed;
  if (compress && raw.size() >= 64) {
    int bound = LZ4_compressBound(static_cast<int>(raw.size()));
    packed.resize(static_cast<size_t>(bound));
    int n = LZ4_compress_default(raw.data(), packed.data(), static_cast<int>(raw.size()), bound);
    if (n > 0 && static_cast<size_t>(n) < raw.size()) packed.resize(static_cast<size_t>(n));
    else packed.clear();  // does not compress: sent as it is
  }
  w.u8(packed.empty() ? 0 : 1);
  w.u32(static_cast<uint32_t>(raw.size()));
  w.u32(static_cast<uint32_t>(items.size()));
  w.raw(packed.empty() ? raw : packed);
  finish(out, at);
  return raw.size();
}

void encode_ack(std::string& out, uint64_t seq) {
  size_t at = begin(out, FrameType::kAck);
  wire::Writer(out).u64(seq);
  finish(out, at);
}

void encode_heartbeat(std::string& out) { finish(out, begin(out, FrameType::kHeartbeat)); }

void encode_gap(std::string& out, uint64_t from, uint64_t to) {
  size_t at = begin(out, FrameType::kGap);
  wire::Writer w(out);
  w.u64(from);
  w.u64(to);
  finish(out, at);
}

void encode_bye(std::string& out, std::string_view reason) {
  size_t at = begin(out, FrameType::kBye);
  wire::Writer(out).str8(reason.substr(0, 255));
  finish(out, at);
}

void FrameReader::feed(const char* data, size_t size) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 20)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(data, size);
}

std::optional<std::pair<FrameType, std::string_view>> FrameReader::next() {
  if (!error_.empty() || buf_.size() - pos_ < 4) return std::nullopt;
  wire::Reader r(std::string_view(buf_).substr(pos_, 4));
  uint32_t len = r.u32();
  if (len == 0 || len > kMaxFrameBytes) {
    error_ = "a frame of " + std::to_string(len) + " bytes (the limit is " +
             std::to_string(kMaxFrameBytes) + ")";
    return std::nullopt;
  }
  if (buf_.size() - pos_ - 4 < len) return std::nullopt;
  uint8_t type = static_cast<uint8_t>(buf_[pos_ + 4]);
  std::string_view body(buf_.data() + pos_ + 5, len - 1);
  pos_ += 4 + len;
  if (type < static_cast<uint8_t>(FrameType::kHello) || type > static_cast<uint8_t>(FrameType::kSealed)) {
    error_ = "a frame of unknown type " + std::to_string(type);
    return std::nullopt;
  }
  return std::make_pair(static_cast<FrameType>(type), body);
}

bool decode_hello(std::string_view body, Hello& h) {
  wire::Reader r(body);
  h.version = r.u8();
  uint8_t flags = r.u8();
  h.sealed = (flags & 1) != 0;
  h.site = std::string(r.str8());
  h.epoch = r.u64();
  uint16_t n = r.u16();
  h.daemons.clear();
  for (uint16_t i = 0; i < n && r.ok(); ++i) h.daemons.emplace_back(r.str8());
  h.nonce = std::string(r.bytes(kNonceBytes));
  return r.done() && !h.site.empty() && flags <= 1;
}

bool decode_proof(std::string_view body, std::string& mac) {
  if (body.size() != kProofBytes) return false;
  mac.assign(body);
  return true;
}

bool decode_snapshot(std::string_view body, Snapshot& s) {
  wire::Reader r(body);
  s.as_of = r.u64();
  uint32_t n = r.u32();
  s.memberships.clear();
  // Each entry takes at least two bytes: a count past that is malformed, not a reservation.
  if (!r.ok() || n > r.remaining() / 2) return false;
  s.memberships.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    std::string m(r.str8());
    std::string g(r.str8());
    s.memberships.emplace_back(std::move(m), std::move(g));
  }
  return r.done();
}

bool decode_batch(std::string_view body, std::vector<Item>& items, size_t max_raw) {
  wire::Reader r(body);
  uint8_t flags = r.u8();
  uint32_t raw_size = r.u32();
  uint32_t count = r.u32();
  if (!r.ok() || flags > 1 || raw_size > max_raw) return false;
  std::string_view rest = r.bytes(r.remaining());
  std::string unpacked;
  std::string_view raw = rest;
  if (flags == 1) {
    unpacked.resize(raw_size);
    int n = LZ4_decompress_safe(rest.data(), unpacked.data(), static_cast<int>(rest.size()),
                                static_cast<int>(raw_size));
    if (n < 0 || static_cast<uint32_t>(n) != raw_size) return false;
    raw = unpacked;
  } else if (rest.size() != raw_size) {
    return false;
  }
  // An item takes at least 12 bytes.
  if (count > raw.size() / 12 + 1) return false;
  wire::Reader ir(raw);
  size_t first = items.size();
  for (uint32_t i = 0; i < count && ir.ok(); ++i) {
    Item it;
    it.seq = ir.u64();
    it.event = std::string(ir.bytes32());
    items.push_back(std::move(it));
  }
  if (!ir.done()) {
    items.resize(first);
    return false;
  }
  return true;
}

bool decode_u64(std::string_view body, uint64_t& v) {
  wire::Reader r(body);
  v = r.u64();
  return r.done();
}

bool decode_gap(std::string_view body, uint64_t& from, uint64_t& to) {
  wire::Reader r(body);
  from = r.u64();
  to = r.u64();
  return r.done() && from <= to;
}

bool decode_bye(std::string_view body, std::string& reason) {
  wire::Reader r(body);
  reason = std::string(r.str8());
  return r.done();
}

std::string link_proof(std::string_view key, std::string_view site, std::string_view peer_nonce,
                       std::string_view own_nonce) {
  std::string t = "agent-bridge-proof";
  t.push_back(static_cast<char>(site.size()));
  t.append(site);
  t.append(peer_nonce);
  t.append(own_nonce);
  auto mac = clientauth::hmac_sha256(key, t);
  return std::string(reinterpret_cast<const char*>(mac.data()), mac.size());
}

void encode_remote(std::string& out, std::string_view site, uint64_t epoch, uint64_t seq,
                   std::string_view event) {
  wire::Writer w(out);
  w.u8(groups::kEventCodecVersion);
  w.u8(kRemoteEventKind);
  w.str8(site);
  w.u64(epoch);
  w.u64(seq);
  w.raw(event);
}

bool is_remote_event(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == groups::kEventCodecVersion &&
         static_cast<uint8_t>(bytes[1]) == kRemoteEventKind;
}

bool decode_remote(std::string_view bytes, RemoteTag& tag, std::string_view& event) {
  if (!is_remote_event(bytes)) return false;
  wire::Reader r(bytes.substr(2));
  tag.site = r.str8();
  tag.epoch = r.u64();
  tag.seq = r.u64();
  if (!r.ok() || tag.site.empty()) return false;
  event = r.bytes(r.remaining());
  return !event.empty();
}

}  // namespace agent::bridge
