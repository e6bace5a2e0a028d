// What a simulation run leaves behind for the checker: every daemon instance (a daemon between
// a start and a crash) with its submissions and its ordered ring stream (messages and
// configurations), every delivery to every client, what each client sent, and the violations
// that can only be seen while the run is going (SAFE delivered too early, a core that threw).
// Payloads are kept once, by fingerprint.
//
// Every submission carries a simulator nonce in front of the encoded event (see nonce.h): the
// checker identifies each ring message exactly, even when two events encode the same bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "membership/ring.h"
#include "transport/client_protocol.h"

namespace agent::sim {

using membership::DeliveryKind;
using membership::NodeId;
using membership::Time;

// A client's data message: its sender's private group and the sender's counter (carried in
// the event's msg_type, so that even a 0-byte payload is identifiable).
struct MsgId {
  std::string sender;
  int16_t counter = 0;
  bool operator<(const MsgId& o) const { return std::tie(sender, counter) < std::tie(o.sender, o.counter); }
  bool operator==(const MsgId& o) const { return sender == o.sender && counter == o.counter; }
  std::string str() const { return sender + "/" + std::to_string(counter); }
};

// One ring.submit() that was accepted. Its nonce is (instance number << 32) | (position + 1).
struct Submission {
  uint32_t service = 0;
  uint64_t fingerprint = 0;  // of the encoded event (without the nonce)
  Time at = 0;
};

// One Delivered from one daemon instance's ring: a message or a configuration.
struct RingRecord {
  uint64_t index = 0;
  DeliveryKind kind = DeliveryKind::kMessage;
  uint64_t ring_id = 0;
  // Messages: position among the messages of ring_id; configurations: how many messages of
  // ring_id the daemon had delivered before (what the group layer gets as the sequence number).
  uint64_t ordinal = 0;
  // messages
  uint64_t packet_seq = 0;
  NodeId origin = 0;
  uint32_t service = 0;
  uint64_t nonce = 0;        // 0: the payload had none (the checker reports it)
  uint64_t fingerprint = 0;  // of the encoded event
  // configurations
  std::vector<NodeId> members;
  uint64_t next_ring_id = 0;  // transitional: the ring being installed (names its views)
  Time at = 0;

  bool message() const { return kind == DeliveryKind::kMessage; }
};

// A daemon from one start to its crash (or the end of the run). Instance numbers start at 1.
struct Instance {
  NodeId daemon = 0;
  uint64_t incarnation = 1;
  std::string name;  // "d2", or "d2@3" for incarnation 3
  Time started_at = 0;
  bool crashed = false;
  Time crashed_at = 0;
  std::vector<Submission> submitted;  // in submission order
  std::vector<RingRecord> ring;       // the ordered stream, in delivery order
};

// A data message as its sender made it.
struct SentMessage {
  MsgId id;
  uint32_t instance = 0;  // the sender's daemon instance
  uint32_t service = 0;
  std::vector<std::string> groups;
  uint64_t payload_fingerprint = 0;
  size_t payload_bytes = 0;
  uint64_t seen_index = 0;  // highest ring index (of its instance) the sender had received
  Time at = 0;
};

// One delivery to one client: data or a membership notice.
struct ClientRecord {
  uint64_t index = 0;  // ring index (of the client's instance) of the item that caused it
  bool data = false;
  // data
  MsgId id;
  uint32_t service = 0;
  std::vector<std::string> groups;
  uint64_t payload_fingerprint = 0;
  size_t payload_bytes = 0;
  // membership
  proto::Membership membership;

  bool operator==(const ClientRecord& o) const;
  bool operator!=(const ClientRecord& o) const { return !(*this == o); }
  std::string str() const;
};

// A message in a daemon's log, on disk at the end of the run.
struct LoggedMessage {
  uint64_t ring_id = 0;
  uint64_t ordinal = 0;
  uint64_t payload_fingerprint = 0;  // of the client's payload
};

struct Records {
  std::vector<NodeId> daemons;                 // configured, sorted
  std::map<NodeId, std::string> daemon_names;  // id -> "dN" (the GroupState's name)
  std::vector<Instance> instances;             // instance number i is instances[i - 1]
  std::map<std::string, uint32_t> clients;     // private group -> its instance
  std::map<uint64_t, std::string> payloads;    // fingerprint -> encoded event
  std::map<std::string, std::vector<ClientRecord>> received;  // per client, in delivery order
  std::map<MsgId, SentMessage> sent;
  std::map<std::string, size_t> unsent;        // live client -> bytes its daemon never read
  // Per client, the stretches of its instance's stream when it had no session: (after, until]
  // in ring indices, from its connection's close to its next session's hello (until: ~0 when
  // there was none). Nothing is delivered to it there but the notice of its own disconnect.
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> sessionless;
  std::vector<std::string> violations;         // seen during the run
  bool faults = false;       // crashes, restarts or partitions were injected
  Time heal_at = 0;          // the final heal: no more loss, partitions or crashes
  Time converged_at = 0;     // every daemon up and in one ring of all (0: never)
  Time end_at = 0;           // when the run stopped
  bool quiescent = false;    // everything due was delivered everywhere before the bound
  // The message log (--persist always): the persistent groups' patterns, and per daemon what
  // its log held on disk at the end (a crash lost the rest), in position order. Empty: off.
  std::vector<std::string> persist_groups;
  std::map<NodeId, std::vector<LoggedMessage>> logs;

  const Instance& instance(uint32_t i) const { return instances.at(i - 1); }
  // Whether client had no session when its daemon handed out ring item index.
  bool without_session(const std::string& client, uint64_t index) const;
  // Whether it had none at some point in (from, to] (a held event reaches clients later than
  // the ring delivered it: at the end of a state exchange).
  bool without_session_within(const std::string& client, uint64_t from, uint64_t to) const;
};

// "AGREED|SELF_DISCARD" and the like.
std::string service_name(uint32_t service);
// "3.1" for ring id (3 << 32) | 1.
std::string ring_name(uint64_t ring_id);
std::string id_list(const std::vector<NodeId>& ids);

}  // namespace agent::sim
