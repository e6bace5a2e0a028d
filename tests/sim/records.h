// What a simulation run leaves behind for the checker: every submission to a ring, every ring
// delivery at every daemon, every delivery to every client, what each client sent, and the
// violations that can only be seen while the run is going (SAFE delivered too early, a core
// that threw). Payloads are kept once, by fingerprint.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "membership/ring.h"
#include "transport/client_protocol.h"

namespace agent::sim {

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

// One ring.submit() that was accepted.
struct Submission {
  uint32_t service = 0;
  uint64_t fingerprint = 0;  // of the payload (the encoded event)
  Time at = 0;
};

// One Delivered from one daemon's ring.
struct RingRecord {
  uint64_t index = 0;
  uint64_t packet_seq = 0;
  NodeId origin = 0;
  uint32_t service = 0;
  uint64_t fingerprint = 0;
  Time at = 0;
};

// A data message as its sender made it.
struct SentMessage {
  MsgId id;
  NodeId daemon = 0;
  uint32_t service = 0;
  std::vector<std::string> groups;
  uint64_t payload_fingerprint = 0;
  size_t payload_bytes = 0;
  uint64_t seen_index = 0;  // highest ring index the sender had received when it sent this
  Time at = 0;
};

// One delivery to one client: data or a membership notice.
struct ClientRecord {
  uint64_t index = 0;  // ring index of the event that caused it
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

struct Records {
  std::vector<NodeId> daemons;                      // sorted
  std::map<NodeId, std::string> daemon_names;       // id -> "dN"
  std::map<std::string, NodeId> clients;            // private group -> its daemon
  std::map<NodeId, std::vector<Submission>> submitted;  // per origin, in submission order
  std::map<uint64_t, std::string> payloads;         // fingerprint -> encoded event
  std::map<NodeId, std::vector<RingRecord>> ring;   // per daemon, in delivery order
  std::map<std::string, std::vector<ClientRecord>> received;  // per client, in delivery order
  std::map<MsgId, SentMessage> sent;
  std::map<std::string, size_t> unsent;             // client -> actions never accepted by its ring
  std::vector<std::string> violations;              // seen during the run
  Time heal_at = 0;      // when the network stopped losing packets
  Time end_at = 0;       // when the run stopped
  bool quiescent = false;  // everything submitted was delivered everywhere before the bound
};

// "AGREED|SELF_DISCARD" and the like.
std::string service_name(uint32_t service);

}  // namespace agent::sim
