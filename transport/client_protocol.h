// Client protocol v1: the frames exchanged between a client program and its local agentd over a
// Unix or TCP stream. Specified in docs/client-protocol.md; this file is the reference codec used
// by agentd and by libagent.
//
// Every frame is   u32 length | u8 verb | body      (little-endian; length counts verb + body)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agent::proto {

constexpr uint32_t kMagic = 0x544E4741;  // "AGNT" read as a little-endian u32
constexpr uint16_t kVersion = 1;
constexpr size_t kFrameHeaderBytes = 5;  // u32 length + u8 verb
constexpr size_t kMaxGroupsPerMessage = 256;
constexpr uint32_t kDefaultMaxMessageBytes = 16u << 20;  // payload limit a daemon announces
// The most a welcome may announce (and a daemon be configured with): a client sizes its
// buffers by the announcement, so a larger one is malformed.
constexpr uint32_t kMaxMessageBytes = 16u << 20;
// Room for a frame's fields around the largest payload (names, counts, groups).
constexpr uint32_t kFrameOverheadBytes = 64 * 1024;

enum class Verb : uint8_t {
  // client -> daemon
  kHello = 0x01,
  kJoin = 0x02,
  kLeave = 0x03,
  kMulticast = 0x04,
  kBye = 0x05,
  kHistory = 0x06,
  kAuth = 0x07,  // the answer to a challenge (authenticated TCP, transport/client_auth.h)
  kAdmin = 0x08,  // an operator's request (agentctl): status, counters, actions
  // daemon -> client
  kWelcome = 0x81,
  kData = 0x82,
  kMembership = 0x83,
  kError = 0x84,
  kPositionedData = 0x85,  // data with its position (hello flag kHelloPositions, and history)
  kHistoryEnd = 0x86,
  kChallenge = 0x87,  // the answer to hello where the client must authenticate first
  kAdminReply = 0x88,  // the answer to kAdmin
};

// Service bits; the values are Spread's so that sp.h maps one to one.
namespace service {
constexpr uint32_t kUnreliable = 0x00000001;
constexpr uint32_t kReliable = 0x00000002;
constexpr uint32_t kFifo = 0x00000004;
constexpr uint32_t kCausal = 0x00000008;
constexpr uint32_t kAgreed = 0x00000010;
constexpr uint32_t kSafe = 0x00000020;
constexpr uint32_t kRegularMask = 0x0000003f;
constexpr uint32_t kSelfDiscard = 0x00000040;
constexpr uint32_t kCausedByJoin = 0x00000100;
constexpr uint32_t kCausedByLeave = 0x00000200;
constexpr uint32_t kCausedByDisconnect = 0x00000400;
constexpr uint32_t kCausedByNetwork = 0x00000800;
constexpr uint32_t kRegularMembership = 0x00001000;
constexpr uint32_t kTransitional = 0x00002000;
constexpr uint32_t kMembershipMask = 0x00003f00;
// The strongest service bit set, or 0 when none is.
uint32_t strongest(uint32_t flags);
// A multicast's service: exactly one regular bit, optionally kSelfDiscard, nothing else.
bool valid_multicast(uint32_t flags);
}  // namespace service

// Hello flags.
constexpr uint8_t kHelloWantMembership = 0x01;  // deliver membership messages (Spread's group_membership)
constexpr uint8_t kHelloGenerateName = 0x02;    // the daemon picks a unique private name
constexpr uint8_t kHelloPositions = 0x04;       // data frames carry their position (kPositionedData)

// History flags.
constexpr uint8_t kHistoryJoin = 0x01;  // join the group: history up to the join, then live
constexpr uint8_t kHistorySince = 0x02; // from a time (unix microseconds), not a position
// History end flags.
constexpr uint8_t kHistoryGap = 0x01;     // retention removed entries after the requested start
constexpr uint8_t kHistoryFailed = 0x02;  // the log could not be read (an error frame precedes)

// Error codes carried by kError frames. Stable: they are part of the protocol.
enum class ErrorCode : uint16_t {
  kMalformedFrame = 1,   // a frame's body does not decode; the frame is skipped
  kFrameTooLarge = 2,    // length prefix beyond the limit; the connection is closed
  kUnknownVerb = 3,      // the frame is skipped
  kVersionMismatch = 4,  // hello with a version or magic the daemon does not speak; closed
  kIllegalName = 5,      // private name empty, too long or with forbidden characters; closed
  kNameTaken = 6,        // private name already connected to this daemon; closed
  kIllegalGroup = 7,     // group name empty, too long or with forbidden characters
  kAlreadyMember = 8,    // join of a group the connection is already in
  kNotMember = 9,        // leave of a group the connection is not in
  kMessageTooLarge = 10, // payload beyond the daemon's announced limit
  kIllegalService = 11,  // service flags not one regular service (+ SELF_DISCARD)
  kNotConnected = 12,    // any verb before hello, or a second hello; closed for the former
  kTooManyGroups = 13,   // a multicast to 0 or > kMaxGroupsPerMessage groups; a join past max_groups
  kSlowClient = 14,      // the client did not read and its queue passed the limit; closed
  kShuttingDown = 15,    // the daemon is stopping; closed
  kTooManyClients = 16,  // the daemon has reached its client limit; closed
  kNotPersistent = 17,   // history of a group this daemon keeps no log of
  kLogFailed = 18,       // the message log could not be read or written
  kAccessDenied = 19,    // an access rule does not let this client join or send to the group
  kAuthFailed = 20,      // authentication required and not given, or name/secret refused; closed
  kNotPermitted = 21,    // an admin action from a client that is not an operator; refused
  kBadAdminRequest = 22, // an admin request the daemon does not know, or whose target is not there
  kDisconnectedByOperator = 23,  // an operator disconnected this client (agentctl); closed
};
const char* error_name(ErrorCode c);

struct Hello {
  uint32_t magic = kMagic;
  uint16_t version = kVersion;
  uint8_t flags = kHelloWantMembership;
  std::string name;
};
struct GroupRequest {  // kJoin and kLeave
  std::string group;
};
struct Multicast {
  uint32_t service = service::kAgreed;
  int16_t msg_type = 0;
  std::vector<std::string> groups;
  std::string payload;
};
struct Welcome {
  uint16_t version = kVersion;
  std::string private_group;  // "#name#daemon"
  std::string daemon;
  uint32_t max_message_bytes = kDefaultMaxMessageBytes;
};
struct Data {
  uint32_t service = 0;
  int16_t msg_type = 0;
  std::string sender;  // the sender's private group
  std::vector<std::string> groups;
  std::string payload;
  // The message's position in the total order (kPositionedData frames; zero otherwise): the
  // ring that ordered it and its ordinal there, the same at every daemon.
  uint64_t ring = 0;
  uint64_t ordinal = 0;
};
// Identifies one view of one group, the same at every daemon: the configuration in which the
// view was installed and the position in the total order of the event that caused it.
struct ViewId {
  uint64_t config = 0;
  uint64_t seq = 0;
  bool operator==(const ViewId& o) const { return config == o.config && seq == o.seq; }
  bool operator!=(const ViewId& o) const { return !(*this == o); }
};
struct Membership {
  uint32_t service = 0;  // kRegularMembership or kTransitional, plus one kCausedBy* bit
  std::string group;
  ViewId view;
  std::vector<std::string> members;  // sorted
  std::string changed;               // the member that joined, left or disconnected ("" for network)
  std::vector<std::vector<std::string>> vs_sets;
};
struct History {
  std::string group;
  uint8_t flags = 0;
  uint64_t ring = 0;      // after this position (zero: from the start) ...
  uint64_t ordinal = 0;
  uint64_t since_us = 0;  // ... or from this time (kHistorySince)
};
struct HistoryEnd {
  std::string group;
  uint8_t flags = 0;
  uint64_t count = 0;  // entries sent
  uint64_t ring = 0;   // the last entry's position (the request's start when none was sent)
  uint64_t ordinal = 0;
};
// The daemon's challenge: answer with an Auth for the nonce (transport/client_auth.h).
struct Challenge {
  uint8_t method = 1;  // 1: a shared secret, HMAC-SHA256
  std::string nonce;   // kNonceBytes random bytes, fresh for every connection
};
struct Auth {
  uint8_t method = 1;
  std::string name;  // the entry of the secrets file the client proves it knows
  std::string mac;   // the response (clientauth::response)
};
// An operator's request (agentctl, docs/client-protocol.md "Admin"): a command ("status",
// "counters", "disconnect"...) with an argument, answered by an AdminReply or an error.
constexpr uint8_t kAdminJson = 0x01;  // the reply is JSON, not text for a terminal
constexpr size_t kMaxAdminReplyBytes = 8u << 20;
struct Admin {
  std::string command;
  std::string argument;
  uint8_t flags = 0;
};
struct AdminReply {
  std::string command;
  std::string text;  // JSON with kAdminJson, else lines for a terminal
};
struct Error {
  ErrorCode code = ErrorCode::kMalformedFrame;
  std::string subject;  // the group or name concerned, may be empty
  std::string text;     // a sentence for a human
};

// Encoders append one complete frame (header included) to out.
void encode(std::string& out, const Hello& m);
void encode_join(std::string& out, std::string_view group);
void encode_leave(std::string& out, std::string_view group);
void encode(std::string& out, const Multicast& m);
void encode_multicast(std::string& out, uint32_t service, int16_t msg_type,
                      const std::string_view* groups, size_t ngroups, std::string_view payload);
void encode_bye(std::string& out);
void encode(std::string& out, const Welcome& m);
void encode(std::string& out, const Data& m);
// The same frame from its parts (no Data to build: the delivery path's encoder).
void encode_data(std::string& out, uint32_t service, int16_t msg_type, std::string_view sender,
                 const std::vector<std::string>& groups, std::string_view payload);
// All of that frame but the payload's bytes, which follow it on the wire (the frame is this
// head and then payload_bytes more): the payload need not be copied next to the head.
void encode_data_head(std::string& out, uint32_t service, int16_t msg_type,
                      std::string_view sender, const std::vector<std::string>& groups,
                      size_t payload_bytes);
// kPositionedData: the same with the position in front.
void encode_positioned_data_head(std::string& out, uint64_t ring, uint64_t ordinal,
                                 uint32_t service, int16_t msg_type, std::string_view sender,
                                 const std::vector<std::string>& groups, size_t payload_bytes);
void encode(std::string& out, const Membership& m);
void encode(std::string& out, const Error& m);
void encode(std::string& out, const History& m);
void encode(std::string& out, const HistoryEnd& m);
void encode(std::string& out, const Challenge& m);
void encode(std::string& out, const Auth& m);
void encode(std::string& out, const Admin& m);
void encode(std::string& out, const AdminReply& m);

// Splits a byte stream into frames. feed() takes bytes; next() yields one frame at a time.
struct Frame {
  Verb verb;
  std::string_view body;  // valid until the next feed()/next() call
};
class FrameReader {
 public:
  explicit FrameReader(uint32_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}
  void feed(const char* data, size_t size);
  // Like feed, but when nothing is buffered the frames are read from data where it lies (no
  // copy): data must stay valid until keep_rest(), which the caller calls before data goes
  // away; it copies the bytes not yet read (a partial frame).
  void feed_view(const char* data, size_t size);
  void keep_rest();
  enum class Status { kFrame, kNeedMore, kTooLarge };
  Status next(Frame& out);
  size_t buffered() const { return view_ ? view_size_ - pos_ : buf_.size() - pos_; }
  // The length announced by the frame that was too large.
  uint32_t offending_length() const { return offending_length_; }

 private:
  std::string buf_;
  const char* view_ = nullptr;  // feed_view's bytes, read in place (then buf_ is empty)
  size_t view_size_ = 0;
  size_t pos_ = 0;              // read up to here, in view_ or else buf_
  uint32_t max_frame_bytes_;
  uint32_t offending_length_ = 0;
};

// Decoders: nullopt when the body is malformed (short, trailing bytes, counts out of range).
std::optional<Hello> decode_hello(std::string_view body);
std::optional<GroupRequest> decode_group_request(std::string_view body);
std::optional<Multicast> decode_multicast(std::string_view body);
// A multicast's parts as views into the frame body (valid as long as it): nothing is copied.
struct MulticastView {
  uint32_t service = 0;
  int16_t msg_type = 0;
  std::string_view groups[kMaxGroupsPerMessage];
  size_t ngroups = 0;
  std::string_view payload;
};
std::optional<MulticastView> decode_multicast_view(std::string_view body);
// The same into out (a MulticastView is large: a caller decoding many keeps one); false when
// malformed (out is then unspecified).
bool decode_multicast_view(std::string_view body, MulticastView& out);
std::optional<Welcome> decode_welcome(std::string_view body);
std::optional<Data> decode_data(std::string_view body);
std::optional<Data> decode_positioned_data(std::string_view body);
std::optional<History> decode_history(std::string_view body);
std::optional<HistoryEnd> decode_history_end(std::string_view body);
std::optional<Membership> decode_membership(std::string_view body);
std::optional<Error> decode_error(std::string_view body);
std::optional<Challenge> decode_challenge(std::string_view body);
std::optional<Auth> decode_auth(std::string_view body);
std::optional<Admin> decode_admin(std::string_view body);
std::optional<AdminReply> decode_admin_reply(std::string_view body);

}  // namespace agent::proto
