// The WAN bridge's bytes: the frames two sites' bridges exchange over their TCP link, and the
// wrapper that carries another site's event through the local ring. Versioned, little-endian,
// decoded with bounds checks (tests/fuzz covers the decoders).
//
// A link is a stream of frames: u32 length (of what follows), u8 type, body.
//   hello     u8 version, u8 flags (1: sealed), str8 site, u64 epoch, u16 n, n × str8 daemon,
//             32-byte nonce
//             epoch: names the sender's outgoing stream (new when its bridge starts)
//   proof     32-byte HMAC-SHA256(key, "agent-bridge-proof" | site | peer's nonce | own nonce)
//   Once both proofs check, each side's first frame is an ack: where the peer's stream resumes
//   (the last item of the peer's epoch applied here; 0: none).
//   snapshot  u64 as_of, u32 n, n × (str8 member, str8 group): the site's members of bridged
//             groups after item as_of of its stream
//   batch     u8 flags (1: LZ4), u32 raw size, u32 count, then the items (compressed or not):
//             u64 seq, bytes32 event (groups/event_codec.h: data, join or leave)
//   ack       u64 seq: every item up to seq is applied (ordered by the receiving site's ring)
//   heartbeat (empty)
//   gap       u64 from, u64 to: items the peer will never get (they left the sender's bounded
//             queue before the peer acknowledged them)
//   bye       str8 reason: the link is refused or ends
//   sealed    AES-256-GCM of one whole frame above, 16-byte tag (bridge/link_seal.h): with
//             bridge.encrypt, every frame a side sends after its proof
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agent::bridge {

constexpr uint8_t kLinkVersion = 1;
constexpr size_t kNonceBytes = 32;
constexpr size_t kProofBytes = 32;
// A frame longer than this is malformed (a batch holds at most one ring message's worth of
// items above its target size).
constexpr uint32_t kMaxFrameBytes = 64u << 20;

enum class FrameType : uint8_t {
  kHello = 1,
  kProof = 2,
  kSnapshot = 3,
  kBatch = 4,
  kAck = 5,
  kHeartbeat = 6,
  kGap = 7,
  kBye = 8,
  kSealed = 9,  // bridge/link_seal.h: every frame after a side's proof, when encrypting
};

struct Hello {
  uint8_t version = kLinkVersion;
  bool sealed = true;  // the sender seals its frames after its proof
  std::string site;
  uint64_t epoch = 0;
  std::vector<std::string> daemons;
  std::string nonce;  // kNonceBytes
};

struct Item {
  uint64_t seq = 0;
  std::string event;  // an encoded groups::Event: data, join or leave
};

struct Snapshot {
  uint64_t as_of = 0;
  std::vector<std::pair<std::string, std::string>> memberships;  // (member, group), sorted
};

// Frame encoders: append one whole frame (length prefix included) to out.
void encode_hello(std::string& out, const Hello& h);
void encode_proof(std::string& out, std::string_view mac);
void encode_snapshot(std::string& out, const Snapshot& s);
// Items, compressed with LZ4 when compress is set and it saves space. Returns the bytes the
// items took before compression (the link's ratio is raw / frame size).
size_t encode_batch(std::string& out, const std::vector<const Item*>& items, bool compress);
void encode_ack(std::string& out, uint64_t seq);
void encode_heartbeat(std::string& out);
void encode_gap(std::string& out, uint64_t from, uint64_t to);
void encode_bye(std::string& out, std::string_view reason);

// Splits a byte stream into frames. feed() appends what the socket gave; next() returns the
// next whole frame's type and body (valid until the next feed/next), nothing when more bytes
// are needed, and sets error() for a malformed stream (the link must then be closed).
class FrameReader {
 public:
  void feed(const char* data, size_t size);
  std::optional<std::pair<FrameType, std::string_view>> next();
  const std::string& error() const { return error_; }
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  std::string error_;
};

// Frame body decoders: false when malformed.
bool decode_hello(std::string_view body, Hello& h);
bool decode_proof(std::string_view body, std::string& mac);
bool decode_snapshot(std::string_view body, Snapshot& s);
// max_raw: the largest decompressed size accepted.
bool decode_batch(std::string_view body, std::vector<Item>& items, size_t max_raw = kMaxFrameBytes);
bool decode_u64(std::string_view body, uint64_t& v);  // ack
bool decode_gap(std::string_view body, uint64_t& from, uint64_t& to);
bool decode_bye(std::string_view body, std::string& reason);

// The proof a side sends: HMAC-SHA256 over its site name and both nonces with the link key.
std::string link_proof(std::string_view key, std::string_view site, std::string_view peer_nonce,
                       std::string_view own_nonce);

// Another site's event as the local ring carries it: the group layer's codec version, kind 7,
// str8 origin site, u64 the origin stream's epoch, u64 the item's seq, then the event itself.
// Every daemon of the site unwraps it; the bridge daemon learns from it that the item is
// ordered (and acknowledges it to the origin).
constexpr uint8_t kRemoteEventKind = 7;
struct RemoteTag {
  std::string_view site;
  uint64_t epoch = 0;
  uint64_t seq = 0;
};
void encode_remote(std::string& out, std::string_view site, uint64_t epoch, uint64_t seq,
                   std::string_view event);
bool is_remote_event(std::string_view bytes);
// Splits a remote event into its tag and the event it carries (views into bytes).
bool decode_remote(std::string_view bytes, RemoteTag& tag, std::string_view& event);

}  // namespace agent::bridge
