// Wire format of the packets daemons exchange on the ring. Versioned, little-endian,
// bounds-checked: a packet that does not decode exactly is dropped by the caller, never trusted.
//
//   header  u16 magic 0x5241 ("AR") | u8 version | u8 type | u64 ring id | u32 sender
//   data    u64 seq | u64 hop | u16 chunk count | chunks: u32 service, u8 flags, bytes32 data
//   token   u64 hop | u64 seq | u32 fcc | u64 recovery_end | u16 n | n x (u32 member, u64 aru,
//           u8 flags [, u64 durable when flags has kTokenDurable]) | u16 m | m x u64 rtr
//   wake    (nothing)
//   held    u64 hop (the token's hop its sender now holds: an idle ring's token rests there)
//   join    u64 ring_seq | u64 incarnation | u16 n | n x u32 proc | u16 m | m x u32 fail
//   commit  u64 new ring id | u64 hop | u16 n | n x (u32 member, u64 incarnation, u64 old ring,
//           u64 old aru, u64 old high, u64 old safe, u8 filled); members strictly increasing
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
constexpr uint8_t kRecovery = 0x04;  // chunk is a whole packet of an old ring, resent in recovery
constexpr uint8_t kTokenRecoveryDone = 0x01;  // token aru flag: member has resent its old packets
// Token aru flag: a durable position follows the flags (the member logs messages and holds SAFE
// delivery until they are on disk everywhere). Without it the member's durable is its aru.
constexpr uint8_t kTokenDurable = 0x02;

enum class Type : uint8_t { kData = 1, kToken = 2, kWake = 3, kJoin = 4, kCommit = 5, kHeld = 6 };

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

struct TokenEntry {
  uint32_t member = 0;
  uint64_t aru = 0;  // the member's all-received-up-to, as of its last visit
  uint8_t flags = 0;
  // Every packet up to here that the member logs is on its disk (<= aru). On the wire only
  // with kTokenDurable; decoded as aru without it.
  uint64_t durable = 0;
};

struct Token {
  uint64_t hop = 0;  // +1 on every pass: older hops are duplicates
  uint64_t seq = 0;  // highest sequence number assigned
  uint32_t fcc = 0;  // packets multicast during the last rotation
  uint64_t recovery_end = 0;  // recovery: seq of the last resent old packet, once all are sent
  std::vector<TokenEntry> arus;  // one per member, by member
  std::vector<uint64_t> rtr;  // retransmission requests
};

struct Join {
  uint64_t ring_seq = 0;     // highest ring sequence the sender has seen
  uint64_t incarnation = 0;  // the sender's incarnation (grows on restart)
  std::vector<uint32_t> proc;  // daemons the sender wants in the ring, sorted
  std::vector<uint32_t> fail;  // daemons the sender gave up on, sorted
};

struct CommitEntry {
  uint32_t member = 0;
  uint64_t incarnation = 0;
  uint64_t old_ring = 0;  // the ring the member comes from (0: none)
  uint64_t old_aru = 0;
  uint64_t old_high = 0;
  uint64_t old_safe = 0;
  uint8_t filled = 0;
};

struct Commit {
  uint64_t ring_id = 0;  // the new ring
  uint64_t hop = 0;
  std::vector<CommitEntry> members;  // sorted by member
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
void encode_held(std::string& out, uint64_t ring_id, uint32_t sender, uint64_t hop);
std::optional<uint64_t> decode_held(std::string_view body);
void encode_join(std::string& out, uint64_t ring_id, uint32_t sender, const Join& j);
std::optional<Join> decode_join(std::string_view body, size_t max_members);
void encode_commit(std::string& out, uint64_t ring_id, uint32_t sender, const Commit& c);
std::optional<Commit> decode_commit(std::string_view body, size_t max_members);

}  // namespace agent::ringwire
