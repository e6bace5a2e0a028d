#include "transport/ring_wire.h"

#include "transport/wire.h"

namespace agent::ringwire {

void encode_header(std::string& out, const Header& h) {
  wire::Writer w(out);
  w.u16(kMagic);
  w.u8(kVersion);
  w.u8(static_cast<uint8_t>(h.type));
  w.u64(h.ring_id);
  w.u32(h.sender);
}

void begin_data(std::string& out, uint64_t seq, uint64_t hop) {
  wire::Writer w(out);
  w.u64(seq);
  w.u64(hop);
  w.u16(0);
}

void add_chunk(std::string& out, uint32_t service, uint8_t flags, std::string_view data) {
  // The chunk count sits right after the data header's seq and hop.
  size_t count_at = kHeaderBytes + 16;
  uint16_t n = static_cast<uint8_t>(out[count_at]) | static_cast<uint8_t>(out[count_at + 1]) << 8;
  ++n;
  out[count_at] = static_cast<char>(n & 0xff);
  out[count_at + 1] = static_cast<char>(n >> 8);
  wire::Writer w(out);
  w.u32(service);
  w.u8(flags);
  w.bytes32(data);
}

void encode_token(std::string& out, uint64_t ring_id, uint32_t sender, const Token& t) {
  encode_header(out, Header{Type::kToken, ring_id, sender});
  wire::Writer w(out);
  w.u64(t.hop);
  w.u64(t.seq);
  w.u32(t.fcc);
  w.u64(t.recovery_end);
  w.u16(static_cast<uint16_t>(t.arus.size()));
  for (auto& e : t.arus) {
    w.u32(e.member);
    w.u64(e.aru);
    w.u8(e.flags);
    if (e.flags & kTokenDurable) w.u64(e.durable);
  }
  w.u16(static_cast<uint16_t>(t.rtr.size()));
  for (auto s : t.rtr) w.u64(s);
}

std::optional<Header> decode_header(std::string_view bytes) {
  wire::Reader r(bytes);
  if (r.u16() != kMagic || r.u8() != kVersion) return std::nullopt;
  Header h;
  uint8_t type = r.u8();
  if (type < 1 || type > 6) return std::nullopt;
  h.type = static_cast<Type>(type);
  h.ring_id = r.u64();
  h.sender = r.u32();
  if (!r.ok()) return std::nullopt;
  return h;
}

std::optional<DataView> decode_data(std::string_view body) {
  wire::Reader r(body);
  DataView d;
  d.seq = r.u64();
  d.hop = r.u64();
  size_t n = r.u16();
  if (!r.ok() || n == 0 || n * kChunkHeaderBytes > r.remaining()) return std::nullopt;
  d.chunks.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    ChunkView c;
    c.service = r.u32();
    c.flags = r.u8();
    c.data = r.bytes32();
    d.chunks.push_back(c);
  }
  if (!r.done() || d.seq == 0) return std::nullopt;
  return d;
}

std::optional<Token> decode_token(std::string_view body, size_t max_members, size_t max_requests) {
  wire::Reader r(body);
  Token t;
  t.hop = r.u64();
  t.seq = r.u64();
  t.fcc = r.u32();
  t.recovery_end = r.u64();
  size_t n = r.u16();
  if (!r.ok() || n > max_members) return std::nullopt;
  for (size_t i = 0; i < n; ++i) {
    TokenEntry e;
    e.member = r.u32();
    e.aru = r.u64();
    e.flags = r.u8();
    e.durable = (e.flags & kTokenDurable) ? r.u64() : e.aru;
    if (e.durable > e.aru) return std::nullopt;  // nobody has on disk what it has not received
    t.arus.push_back(e);
  }
  size_t k = r.u16();
  if (!r.ok() || k > max_requests) return std::nullopt;
  for (size_t i = 0; i < k; ++i) t.rtr.push_back(r.u64());
  if (!r.done()) return std::nullopt;
  return t;
}

namespace {
void put_ids(wire::Writer& w, const std::vector<uint32_t>& ids) {
  w.u16(static_cast<uint16_t>(ids.size()));
  for (auto id : ids) w.u32(id);
}
bool get_ids(wire::Reader& r, std::vector<uint32_t>& ids, size_t max) {
  size_t n = r.u16();
  if (!r.ok() || n > max) return false;
  for (size_t i = 0; i < n; ++i) ids.push_back(r.u32());
  return r.ok();
}
}  // namespace

void encode_join(std::string& out, uint64_t ring_id, uint32_t sender, const Join& j) {
  encode_header(out, Header{Type::kJoin, ring_id, sender});
  wire::Writer w(out);
  w.u64(j.ring_seq);
  w.u64(j.incarnation);
  put_ids(w, j.proc);
  put_ids(w, j.fail);
}

void encode_held(std::string& out, uint64_t ring_id, uint32_t sender, uint64_t hop) {
  encode_header(out, Header{Type::kHeld, ring_id, sender});
  wire::Writer(out).u64(hop);
}

std::optional<uint64_t> decode_held(std::string_view body) {
  wire::Reader r(body);
  uint64_t hop = r.u64();
  if (!r.done()) return std::nullopt;
  return hop;
}

std::optional<Join> decode_join(std::string_view body, size_t max_members) {
  wire::Reader r(body);
  Join j;
  j.ring_seq = r.u64();
  j.incarnation = r.u64();
  if (!get_ids(r, j.proc, max_members) || !get_ids(r, j.fail, max_members) || !r.done())
    return std::nullopt;
  return j;
}

void encode_commit(std::string& out, uint64_t ring_id, uint32_t sender, const Commit& c) {
  encode_header(out, Header{Type::kCommit, ring_id, sender});
  wire::Writer w(out);
  w.u64(c.ring_id);
  w.u64(c.hop);
  w.u16(static_cast<uint16_t>(c.members.size()));
  for (auto& e : c.members) {
    w.u32(e.member);
    w.u64(e.incarnation);
    w.u64(e.old_ring);
    w.u64(e.old_aru);
    w.u64(e.old_high);
    w.u64(e.old_safe);
    w.u8(e.filled);
  }
}

std::optional<Commit> decode_commit(std::string_view body, size_t max_members) {
  wire::Reader r(body);
  Commit c;
  c.ring_id = r.u64();
  c.hop = r.u64();
  size_t n = r.u16();
  if (!r.ok() || n == 0 || n > max_members) return std::nullopt;
  for (size_t i = 0; i < n; ++i) {
    CommitEntry e;
    e.member = r.u32();
    // Sorted by member, each once: the ring's order is the members' (a daemon installs it).
    if (!c.members.empty() && e.member <= c.members.back().member) return std::nullopt;
    e.incarnation = r.u64();
    e.old_ring = r.u64();
    e.old_aru = r.u64();
    e.old_high = r.u64();
    e.old_safe = r.u64();
    e.filled = r.u8();
    c.members.push_back(e);
  }
  if (!r.done()) return std::nullopt;
  return c;
}

}  // namespace agent::ringwire
