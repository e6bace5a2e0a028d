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
  w.u16(static_cast<uint16_t>(t.arus.size()));
  for (auto& [m, a] : t.arus) {
    w.u32(m);
    w.u64(a);
  }
  w.u16(static_cast<uint16_t>(t.rtr.size()));
  for (auto s : t.rtr) w.u64(s);
}

std::optional<Header> decode_header(std::string_view bytes) {
  wire::Reader r(bytes);
  if (r.u16() != kMagic || r.u8() != kVersion) return std::nullopt;
  Header h;
  uint8_t type = r.u8();
  if (type < 1 || type > 3) return std::nullopt;
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
  size_t n = r.u16();
  if (!r.ok() || n > max_members) return std::nullopt;
  for (size_t i = 0; i < n; ++i) {
    uint32_t m = r.u32();
    uint64_t a = r.u64();
    t.arus.emplace_back(m, a);
  }
  size_t k = r.u16();
  if (!r.ok() || k > max_requests) return std::nullopt;
  for (size_t i = 0; i < k; ++i) t.rtr.push_back(r.u64());
  if (!r.done()) return std::nullopt;
  return t;
}

}  // namespace agent::ringwire
