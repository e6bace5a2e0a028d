// Wire format of the packets daemons exchange on the ring. Versioned, little-endian,
// bounds-checked: a packet that does not decode exactly is dropped by the caller, never trusted.
//
//   header  u16 magic 0x5241 ("AR") | u8 version | u8 type | u64 ring id | u32 sender
//   data    u64 seq | u64 hop | u16 chunk count | chunks: u32 service, u8 flags, bytes32 data
//   token   u64 hop | u64 seq | u32 fcc | u16 n | n x (u32 member, u64 aru) | u16 m | m x u64 rtr
//   wake    (nothing)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agent::ringwire {

constexpr uint16_t kMagic = 0x5241;
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = 16;
constexpr size_t kDataHeaderBytes = kHeaderBytes + 18;
constexpr size_t kChunkHeaderBytes = 9;
constexpr uint8_t kFirst = 0x01;  // chunk starts a message
constexpr uint8_t kLast = 0x02;   // chunk ends a message (both: a whole message)

enum class Type : uint8_t { kData = 1, kToken = 2, kWake = 3 };

struct Header {
  Type type = Type::kData;
  uint64_t ring_id = 0;
  uint32_t sender = 0;
};

struct ChunkView {
  uint32_t service = 0;
  uint8_t flags = 0;
  std::string_view data;
};

struct DataView {
  uint64_t seq = 0;
  uint64_t hop = 0;  // the token hop during which the sender multicast it
  std::vector<ChunkView> chunks;
};

struct Token {
  uint64_t hop = 0;  // +1 on every pass: older hops are duplicates
  uint64_t seq = 0;  // highest sequence number assigned
  uint32_t fcc = 0;  // packets multicast during the last rotation
  std::vector<std::pair<uint32_t, uint64_t>> arus;  // (member, all-received-up-to), by member
  std::vector<uint64_t> rtr;  // retransmission requests
};

void encode_header(std::string& out, const Header& h);
// Data packet: encode_header(kData) + begin_data, then add_chunk per chunk (count patched in).
void begin_data(std::string& out, uint64_t seq, uint64_t hop);
void add_chunk(std::string& out, uint32_t service, uint8_t flags, std::string_view data);
void encode_token(std::string& out, uint64_t ring_id, uint32_t sender, const Token& t);

std::optional<Header> decode_header(std::string_view bytes);
// body: the bytes after the header. The views point into body.
std::optional<DataView> decode_data(std::string_view body);
std::optional<Token> decode_token(std::string_view body, size_t max_members,
                                  size_t max_requests);

}  // namespace agent::ringwire
