// The daemon ring's protocol core: Totem-style token-ring total order, as a pure state machine.
//
// No sockets, no clock, no threads: packets and time come in as arguments, and everything the
// ring wants done (packets to send, deliveries, warnings) comes out of take_actions(). The
// daemon's actor and the simulator drive the same code.
//
// Normal operation (fixed membership): a token circulates among the members in id order. Only
// the holder multicasts new packets, numbered token.seq+1..., within the global window (packets
// per rotation for the whole ring) and its personal window (per visit). Each member writes its
// all-received-up-to (aru) into the token and requests what it misses; any holder that has a
// requested packet sends it again. Client messages are packed many per packet and fragmented
// when larger than one. A packet is delivered when every lower one has been (AGREED order);
// one that carries SAFE messages waits until the token shows every member has it. Packets every
// member has (stable) are discarded.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "transport/ring_wire.h"

namespace agent::membership {

using NodeId = uint32_t;
using Time = uint64_t;  // microseconds, from any fixed origin; supplied by the caller
constexpr NodeId kBroadcast = 0xffffffff;
// Service bits are the client protocol's; the ring itself only looks at SAFE.
constexpr uint32_t kSafeService = 0x20;

struct RingConfig {
  std::vector<NodeId> members;            // every daemon of the ring; sorted, unique
  uint64_t ring_id = 1;                   // identifies this ring (configuration)
  uint32_t max_packet_bytes = 8192;       // data packet size including headers
  uint32_t global_window = 256;           // new packets per token rotation, whole ring
  uint32_t personal_window = 128;         // new packets per token visit, one member
  uint32_t accelerated_window = 0;        // of those, how many go out after the token (0: off)
  uint32_t max_outstanding = 4096;        // token.seq - min aru never exceeds this
  uint32_t max_retransmit_requests = 512; // entries in a token's request list
  uint64_t max_pending_bytes = 64u << 20; // submitted, not yet sent; submit() refuses beyond
  uint64_t max_message_bytes = 16u << 20; // largest message submit() accepts
  Time token_retransmit_us = 20000;       // resend the token if the successor shows no progress
  Time token_hold_us = 2000;              // an idle ring's holder keeps the token this long
  Time token_warning_us = 2000000;        // no token for this long: warn (member unreachable?)
};

// One client-level message delivered in the total order.
struct Delivered {
  uint64_t index;     // 1, 2, 3...: position in this ring's total order of messages
  uint64_t packet_seq;  // the ring packet that completed it (for checkers: who had it when)
  NodeId origin;      // the member that submitted it
  uint32_t service;   // the service bits given to submit()
  std::string payload;
};

struct Send {
  NodeId to;  // a member, or kBroadcast (every other member)
  std::string bytes;
};

struct Actions {
  std::vector<Send> sends;             // in order: the token's position among them matters
  std::vector<Delivered> deliveries;   // in the total order
  std::vector<std::string> warnings;   // for the log: something needs a human's attention
};

struct RingStats {
  uint64_t packets_sent = 0;        // new data packets multicast
  uint64_t packets_retransmitted = 0;
  uint64_t tokens_received = 0;
  uint64_t tokens_retransmitted = 0;
  uint64_t duplicate_tokens = 0;
  uint64_t duplicate_packets = 0;
  uint64_t bad_packets = 0;         // undecodable or from another ring: dropped
  uint64_t messages_delivered = 0;
  uint64_t held_tokens = 0;         // times an idle ring's token was held
};

// Test-only fault switches, to prove the simulator's checker catches broken cores.
struct RingFaults {
  bool skip_retransmissions = false;  // never answer retransmission requests
  bool deliver_out_of_order = false;  // swap two deliveries once
  bool deliver_safe_early = false;    // treat SAFE like AGREED
};

class Ring {
 public:
  Ring(NodeId self, RingConfig cfg, Time now);

  // Queues a client message (any size up to max_message_bytes) for multicast. False when the
  // pending queue is full (back-pressure: try again after deliveries) or the message too large.
  bool submit(uint32_t service, std::string_view payload, Time now);
  // A packet from another member (bytes as received; undecodable ones are counted and dropped).
  void on_packet(NodeId from, std::string_view bytes, Time now);
  // Call when now >= next_timeout().
  void on_timeout(Time now);
  Time next_timeout() const;
  // Everything to do since the last call.
  Actions take_actions();

  NodeId self() const { return self_; }
  const RingConfig& config() const { return cfg_; }
  const RingStats& stats() const { return stats_; }
  uint64_t my_aru() const { return my_aru_; }
  uint64_t highest_seq() const { return high_seq_; }
  uint64_t delivered_seq() const { return delivered_seq_; }
  uint64_t pending_bytes() const { return pending_bytes_; }
  size_t buffered_packets() const { return packets_.size(); }
  bool holds_token() const { return holding_; }
  RingFaults& faults() { return faults_; }

 private:
  using Token = ringwire::Token;
  struct Packet {
    NodeId sender = 0;
    bool has_safe = false;
    std::string bytes;  // as on the wire: for retransmission and, at delivery, the chunks
  };
  struct Pending {
    uint32_t service;
    std::string data;
    size_t offset = 0;  // bytes already packed (fragmentation)
  };

  void arrive(Token t, Time now);
  void visit(Time now);
  void pass_token(Time now);
  void run_self_passes(Time now);
  void handle_data(const ringwire::Header& h, std::string_view body, Time now);
  void build_packet(uint64_t seq, std::string& out);
  void store(uint64_t seq, NodeId sender, bool has_safe, std::string bytes);
  void advance_aru();
  void deliver();
  void discard_stable();
  void emit(NodeId origin, uint32_t service, std::string payload, uint64_t seq);
  void broadcast(const std::string& bytes) { actions_.sends.push_back({kBroadcast, bytes}); }
  NodeId successor() const;
  uint64_t min_aru(const Token& t) const;

  NodeId self_;
  RingConfig cfg_;
  size_t my_index_ = 0;
  RingFaults faults_;
  RingStats stats_;
  Actions actions_;

  std::map<uint64_t, Packet> packets_;  // received or sent, not yet stable
  uint64_t my_aru_ = 0;                 // every seq <= this is here (or already discarded)
  uint64_t high_seq_ = 0;               // highest seq seen on the token or in a packet
  uint64_t delivered_seq_ = 0;          // packets delivered up to here
  uint64_t safe_seq_ = 0;               // every member has every packet up to here
  uint64_t delivered_msgs_ = 0;
  std::map<NodeId, std::string> reassembly_;  // per origin: the fragments so far

  std::deque<Pending> pending_;
  uint64_t pending_bytes_ = 0;

  // Token state.
  Token tok_;                     // the token while this member holds it
  bool holding_ = false;
  bool self_pass_ = false;        // a ring of one passes the token to itself
  Time hold_until_ = 0;           // an idle ring's holder passes the token at this time
  Time no_hold_until_ = 0;        // someone asked for the token (wake): do not hold until then
  Time last_wake_sent_ = 0;
  uint64_t last_token_hop_ = 0;   // highest hop processed: tokens with lower hops are duplicates
  std::string last_sent_token_;   // for retransmission
  uint64_t last_sent_hop_ = 0;
  Time retransmit_at_ = 0;        // 0: none due
  Time retransmitting_since_ = 0; // when the successor stopped showing progress
  Time last_token_at_ = 0;        // when a token last arrived (or start)
  Time warned_at_ = 0;
  uint32_t my_fcc_ = 0;           // packets this member added to the token's fcc this rotation
  bool out_of_order_done_ = false;
};

}  // namespace agent::membership
