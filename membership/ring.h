// The daemon ring's protocol core: Totem-style token-ring total order with extended virtual
// synchrony, as a pure state machine.
//
// No sockets, no clock, no threads: packets and time come in as arguments, and everything the
// ring wants done (packets to send, deliveries, warnings) comes out of take_actions(). The
// daemon's actor and the simulator drive the same code.
//
// Normal operation: a token circulates among the members in id order. Only the holder
// multicasts new packets, numbered token.seq+1..., within the global window (packets per
// rotation for the whole ring) and its personal window (per visit). Each member writes its
// all-received-up-to (aru) into the token and requests what it misses; any holder that has a
// requested packet sends it again. Client messages are packed many per packet and fragmented
// when larger than one. A packet is delivered when every lower one has been (AGREED order); one
// that carries SAFE messages waits until the token shows every member has it.
//
// Durability gate (RingConfig::durable_gate, off by default): the ring also hands out each
// message as soon as it is complete and in order here (received, before it is delivered, with
// the ordinal it will be delivered with), for the daemon to log; the daemon reports which of
// them are on disk (set_durable), each member writes its durable position into the token next
// to its aru, and "safe" means received and on disk at every member.
//
// Configuration changes (docs/ring-protocol.md): token loss or a foreign daemon's packet starts
// a gather (join messages until the daemons agree who is in), then a commit token collects each
// member's old-ring state, then recovery re-sends old-ring packets within the new ring until
// members from the same old ring hold the same set, and delivers: the old ring's remaining
// messages that the old configuration can deliver, the transitional configuration, the rest,
// the regular configuration.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "transport/ring_wire.h"

namespace agent::membership {

using NodeId = uint32_t;
using Time = uint64_t;  // microseconds, from any fixed origin; supplied by the caller
constexpr NodeId kBroadcast = 0xffffffff;   // every other member of the current ring
constexpr NodeId kAllDaemons = 0xfffffffe;  // every other configured daemon
// Ring sequence numbers (the high half of ring ids) never pass this: joins and commit tokens
// that carry a higher one are dropped as bad, so nobody can push ring ids to wrap past 2^32
// and repeat; a daemon whose sequence reached it forms no new ring (and says so). Each
// configuration change uses 4, so that is a billion changes away.
constexpr uint32_t kMaxRingSeq = 0xffff0000u;
// Service bits are the client protocol's; the ring itself only looks at SAFE.
constexpr uint32_t kSafeService = 0x20;

struct RingConfig {
  std::vector<NodeId> members;            // every daemon that may be in the ring (configured)
  uint64_t incarnation = 1;               // this daemon's incarnation: grows on every start
  // Ring ids never repeat, also across restarts. ring_seq_floor: the value last stored from
  // Actions::store_ring_seq (0: none); sequence numbers start above it and above
  // incarnation << 16.
  uint32_t ring_seq_floor = 0;
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
  // A token back sooner than this after its last visit here waits until then: a lightly
  // loaded ring carries more per rotation instead of spinning (each visit costs wake-ups and
  // system calls in every daemon). 0: off.
  Time min_rotation_us = 0;
  Time token_loss_us = 250000;            // no token for this long: start a configuration change
  Time join_timeout_us = 30000;           // resend join messages while gathering
  // Give up on daemons that do not agree by then; a gather of n > 8 daemons waits n / 8 times
  // as long (n(n-1) joins must get through).
  Time consensus_timeout_us = 150000;
  // Hand out received messages (take_received) and hold SAFE delivery, and buffers, until every
  // member reported them durable (set_durable). A daemon without it counts what it received as
  // durable, and still respects the durable positions of members that have it.
  bool durable_gate = false;
};

enum class DeliveryKind : uint8_t {
  kMessage = 0,       // a client message
  kTransitional = 1,  // the transitional configuration: members that came along from the old one
  kRegular = 2,       // a new regular configuration
};

// Keeps bytes alive that views point into (a packet's buffer, a reassembled message), shared
// by the ring's store, its sends and its deliveries.
using Owner = std::shared_ptr<const void>;

// One item of the ordered stream: a client message or a configuration.
struct Delivered {
  uint64_t index = 0;       // 1, 2, 3...: position in this daemon's ordered stream (never reused)
  // Messages: position among the messages of ring_id, the same at every daemon delivering it.
  // Configurations: how many messages of ring_id this daemon had delivered before it (the same
  // at every daemon delivering it with the same members).
  uint64_t ordinal = 0;
  uint64_t packet_seq = 0;  // messages: the ring packet that completed it (for checkers)
  NodeId origin = 0;        // messages: the member that submitted it
  uint32_t service = 0;     // messages: the service bits given to submit()
  // Messages: the payload, a view into bytes the ring shares with this item (a received
  // packet, or the reassembled message): valid as long as a copy of this item lives.
  std::string_view payload;
  Owner payload_owner;
  DeliveryKind kind = DeliveryKind::kMessage;
  uint64_t ring_id = 0;           // the ring the item belongs to (configurations: that ring)
  uint64_t next_ring_id = 0;      // transitional configurations: the ring being installed
  // Messages of an old ring delivered after the transitional configuration past a gap (an old
  // packet nobody here had): from there on a daemon's ordinals in that ring are its own — other
  // daemons of the ring may have delivered other messages with the same ordinals.
  bool past_gap = false;
  std::vector<NodeId> members;    // configurations: the members, sorted
};

struct Send {
  Send(NodeId to_, std::string bytes_) : to(to_), bytes(std::move(bytes_)) {}
  Send(NodeId to_, Owner owner, std::string_view packet)
      : to(to_), shared(std::move(owner)), shared_bytes(packet) {}
  NodeId to;  // a daemon, kBroadcast or kAllDaemons
  std::string bytes;
  // A data packet the ring keeps too (for retransmission and delivery): shared, not copied;
  // bytes is then empty. Read the datagram with view().
  Owner shared;
  std::string_view shared_bytes;
  std::string_view view() const { return shared ? shared_bytes : std::string_view(bytes); }
};

struct Actions {
  // A durable write the sends depend on: before this daemon, as representative, hands out a
  // ring sequence above what it last stored, the driver stores this value (it reserves a few
  // sequence numbers at a time) and only then sends. 0: nothing to store. A driver that cannot
  // store it must not send this batch and must stop the daemon: ring ids could repeat.
  uint32_t store_ring_seq = 0;
  std::vector<Send> sends;             // in order: the token's position among them matters
  std::vector<Delivered> deliveries;   // in the total order
  std::vector<std::string> warnings;   // for the log: something needs a human's attention
};

enum class RingState : uint8_t { kGather, kCommit, kRecovery, kOperational };
const char* to_string(RingState s);

struct RingStats {
  uint64_t packets_sent = 0;        // new data packets multicast
  uint64_t packets_retransmitted = 0;
  uint64_t tokens_received = 0;
  uint64_t tokens_retransmitted = 0;
  uint64_t duplicate_tokens = 0;
  uint64_t duplicate_packets = 0;
  uint64_t bad_packets = 0;         // undecodable or from nowhere: dropped
  // Fragments that continue a message whose first fragment this ring never carried (a
  // faulty sender's): skipped alike at every member, in delivery and in reception.
  uint64_t orphan_fragments = 0;
  uint64_t messages_delivered = 0;
  uint64_t held_tokens = 0;         // times an idle ring's token was held
  uint64_t wakes_sent = 0;          // requests for a token that may rest elsewhere
  uint64_t paced_tokens = 0;        // visits put off to min_rotation_us after the last one
  uint64_t gathers = 0;             // configuration changes started
  uint64_t rings_installed = 0;     // regular configurations delivered
  uint64_t recovered_packets = 0;   // old-ring packets obtained during recovery
  uint64_t stale_commits = 0;       // commit tokens this daemon refused (its entry not its own)
  uint64_t ring_seq_refused = 0;    // joins and commits with a ring seq above kMaxRingSeq
};

// Test-only fault switches, to prove the simulator's checker catches broken cores. A ring
// has none unless a test hands it some (set_faults); they are looked at once per token visit,
// delivery round or configuration change, never per packet or message.
struct RingFaults {
  bool skip_retransmissions = false;  // never answer retransmission requests
  bool deliver_out_of_order = false;  // swap two deliveries once
  bool deliver_safe_early = false;    // treat SAFE like AGREED
  bool skip_recovery = false;         // do not re-send old-ring packets in recovery
  bool deliver_past_gap = false;      // recovery: a departed sender's whole messages past a gap
  bool ignore_durable = false;        // the safe line ignores durable positions (aru only)
};

class Ring {
 public:
  Ring(NodeId self, RingConfig cfg, Time now);

  // Queues a client message (any size up to max_message_bytes) for multicast. False when the
  // pending queue is full (back-pressure: try again after deliveries) or the message too large.
  bool submit(uint32_t service, std::string_view payload, Time now);
  // The same, taking the bytes over when it returns true (left untouched when false).
  bool submit(uint32_t service, std::string&& payload, Time now);
  // An empty string with the capacity of a message already sent (or none): a caller that
  // builds messages to submit in it allocates no memory per message.
  std::string spare_buffer();
  // A packet from another daemon (bytes as received; undecodable ones are counted and dropped).
  // The ring copies what it keeps; given an owner of the bytes, it keeps them (and the owner)
  // instead.
  void on_packet(NodeId from, std::string_view bytes, Time now, const Owner& owner = nullptr);
  // Call when now >= next_timeout().
  void on_timeout(Time now);
  // This daemon is stopping: tell every configured daemon, so that they form a ring without it
  // at once instead of waiting for the token to be lost. Nothing else is done afterwards.
  void leave(Time now);
  Time next_timeout() const;
  // Everything to do since the last call.
  Actions take_actions();
  // The same into out, whose lists are emptied first and whose capacity the ring keeps using
  // (a caller that takes actions for every event allocates no new lists).
  void take_actions(Actions& out);
  // With durable_gate: the messages received since the last call (out is emptied first), in
  // order: complete, every earlier one received, not yet delivered. Each has the ring_id,
  // ordinal, origin, service and payload its delivery will have (index 0). Messages of an old
  // ring that recovery obtained and delivers without having received them before come here
  // just before they are delivered. Take them after every input, before the next one: the
  // sooner set_durable follows, the sooner this member's durable position moves.
  void take_received(std::vector<Delivered>& out);
  // Every received message of ring ring_id up to this ordinal that this daemon keeps is on disk
  // (a message it does not keep counts at once). Another ring's (a stale report) is ignored.
  // A ring of one that waits for its disk goes on here.
  void set_durable(uint64_t ring_id, uint64_t ordinal, Time now);
  bool has_received() const { return !received_.empty(); }

  NodeId self() const { return self_; }
  const RingConfig& config() const { return cfg_; }
  const RingStats& stats() const { return stats_; }
  RingState state() const { return state_; }
  uint64_t ring_id() const { return ring_id_; }
  const std::vector<NodeId>& members() const { return members_; }
  uint64_t my_aru() const { return my_aru_; }
  uint64_t highest_seq() const { return high_seq_; }
  uint64_t delivered_seq() const { return delivered_seq_; }
  // With durable_gate: packets received (handed out by take_received) up to here, and of
  // those, durable up to here (what this member writes into the token).
  uint64_t received_seq() const { return recv_seq_; }
  uint64_t durable_seq() const;
  uint64_t pending_bytes() const { return pending_bytes_; }
  size_t buffered_packets() const { return packets_.size() + old_.packets.size(); }
  bool holds_token() const { return holding_; }
  // Whether this daemon holds packet seq of ring ring_id (for checkers).
  bool has_packet(uint64_t ring_id, uint64_t seq) const;
  // Breaks the ring on purpose (tests only); faults must outlive the ring. Null: none.
  void set_faults(const RingFaults* faults) { faults_ = faults; }

 private:
  using Token = ringwire::Token;
  struct Packet {
    NodeId sender = 0;
    bool has_safe = false;
    // As on the wire: for retransmission and, at delivery, the chunks; owner keeps them
    // alive and is shared with the deliveries whose payloads they hold.
    Owner owner;
    std::string_view bytes;
  };
  struct Pending {
    uint32_t service;
    std::string data;
    size_t offset = 0;  // bytes already packed (fragmentation)
  };
  // The last regular ring, kept from its end until recovery completes.
  struct OldRing {
    uint64_t id = 0;  // 0: none (a daemon that just started)
    std::vector<NodeId> members;
    std::map<uint64_t, Packet> packets;
    uint64_t aru = 0, delivered = 0, high = 0, safe = 0;
    uint64_t msgs = 0;  // its messages delivered here
    uint64_t received = 0, received_msgs = 0;  // handed out as received (durable_gate)
    std::map<NodeId, std::string> reassembly;
  };

  // Normal operation (ring.cpp).
  void arrive(Token t, Time now);
  void visit(Time now);
  void pass_token(Time now);
  void run_self_passes(Time now);
  void handle_token(const ringwire::Header& h, std::string_view body, Time now);
  void handle_data(const ringwire::Header& h, std::string_view bytes, const Owner& owner);
  // last_of_visit: the last packet this token visit allows (it ends at a message boundary
  // where it can).
  // Both return the packet, which the ring also keeps (stored).
  const Packet& build_packet(uint64_t seq, bool last_of_visit);
  const Packet& build_recovery_packet(uint64_t seq);
  // Keeps a packet until it is stable; returns it as kept.
  const Packet& store(uint64_t seq, NodeId sender, bool has_safe, std::string bytes);
  const Packet& store(uint64_t seq, Packet p);
  // A packet that owns its bytes.
  static Packet owning(NodeId sender, bool has_safe, std::string bytes);
  // Queues a delivery of the message payload (a view into owner's bytes).
  void emit(NodeId origin, uint32_t service, Owner owner, std::string_view payload, uint64_t seq,
            uint64_t ring_id);
  void emit(NodeId origin, uint32_t service, std::string&& whole, uint64_t seq, uint64_t ring_id);
  void advance_aru();
  void deliver();
  void discard_stable();
  void broadcast(const std::string& bytes) { actions_.sends.push_back({kBroadcast, bytes}); }
  void broadcast(std::string&& bytes) { actions_.sends.push_back({kBroadcast, std::move(bytes)}); }
  void broadcast(const Packet& p) { actions_.sends.emplace_back(kBroadcast, p.owner, p.bytes); }
  NodeId successor() const;
  // Tells the predecessor that the token it passed rests here.
  void send_held();
  uint64_t min_aru(const Token& t) const;
  // The lowest of every member's aru and durable position: what every member has on disk.
  uint64_t min_durable(const Token& t) const;
  // Hands out what became received (durable_gate): packets up to my_aru_, while operational;
  // in recovery, only packets that carry nothing but old-ring packets.
  void receive();

  // Configuration changes (ring_membership.cpp).
  // send: multicast this daemon's join now (else the caller does, once it has merged).
  void start_gather(Time now, const char* why, bool send = true);
  void handle_join(NodeId from, const ringwire::Join& j, Time now);
  void send_join(Time now);
  void give_up_on(NodeId from, Time now);
  // How long the daemons of this round get to agree before those that have not are given up on.
  Time consensus_timeout() const;
  void check_consensus(Time now);
  void handle_commit(NodeId from, const ringwire::Commit& c, Time now);
  void send_commit(Time now);
  void install_new_ring(const ringwire::Commit& c, Time now);
  void absorb_recovery_chunk(std::string_view old_packet);
  void finish_recovery(Time now);
  bool foreign(const ringwire::Header& h) const;
  uint32_t ring_seq(uint64_t ring_id) const { return static_cast<uint32_t>(ring_id >> 32); }

  NodeId self_;
  RingConfig cfg_;
  const RingFaults* faults_ = nullptr;
  RingStats stats_;
  Actions actions_;

  // The current ring (operational or being recovered).
  RingState state_ = RingState::kGather;
  uint64_t ring_id_ = 0;            // (ring seq << 32) | representative
  std::vector<NodeId> members_;     // sorted
  size_t my_index_ = 0;
  std::map<NodeId, uint64_t> incarnations_;  // of the current ring's members
  uint32_t max_ring_seq_ = 0;       // highest ring seq seen anywhere
  // The gather round this daemon is in: max_ring_seq_ when it began, or a newer round's that a
  // join told of. Joins carry it; give-ups hold only within one round.
  uint32_t gather_seq_ = 0;
  uint32_t ring_seq_stored_ = 0;   // ring seqs up to this one are stored (or asked to be)
  uint64_t recovery_high_ = 0;      // the highest old-ring packet any of the transitional set held
  uint64_t prev_ring_id_ = 0;       // the ring before this one: its late packets are not foreign
  Time presence_at_ = 0;            // next presence beacon to configured daemons not in the ring

  std::map<uint64_t, Packet> packets_;  // received or sent, not yet stable
  uint64_t my_aru_ = 0;                 // every seq <= this is here (or already discarded)
  uint64_t high_seq_ = 0;               // highest seq seen on the token or in a packet
  uint64_t delivered_seq_ = 0;          // packets delivered up to here
  uint64_t safe_seq_ = 0;               // every member has every packet up to here
  uint64_t delivered_items_ = 0;        // index of the last Delivered
  uint64_t ring_msgs_ = 0;              // messages of the current ring delivered
  std::map<NodeId, std::string> reassembly_;  // per origin: the fragments so far
  // Durability gate: the received cursor (packets <= recv_seq_ handed out, recv_msgs_ messages
  // of this ring), its own reassembly, the received messages not yet reported durable
  // (ordinal, packet), and the highest ordinal reported durable.
  uint64_t recv_seq_ = 0;
  uint64_t recv_msgs_ = 0;
  std::map<NodeId, std::string> recv_reassembly_;
  std::deque<std::pair<uint64_t, uint64_t>> not_durable_;
  uint64_t durable_ordinal_ = 0;
  std::vector<Delivered> received_;

  std::deque<Pending> pending_;
  std::vector<std::string> spares_;  // sent messages' buffers, for spare_buffer()
  uint64_t pending_bytes_ = 0;

  // Token state.
  Token tok_;                     // the token while this member holds it
  bool holding_ = false;
  uint64_t held_told_hop_ = 0;  // the token hop whose rest the predecessor was told of
  bool self_pass_ = false;        // a ring of one passes the token to itself
  Time hold_until_ = 0;           // an idle ring's holder passes the token at this time
  Time paced_until_ = 0;          // the held token's visit is put off until then
  bool pass_next_ = false;        // someone asked for the token (wake): pass it at the next visit
  // A ring of one holds its token while only its disk can move things on (set_durable).
  bool waiting_disk_ = false;
  bool wake_sent_ = false;        // this member asked for the token and has not had it since
  // This member's last visit sent new packets: every other member sees the seq move before
  // the token is back, so none can rest it meanwhile, and a new message needs no wake.
  bool sent_last_visit_ = false;
  // The token's seq at this member's last visit if that visit was quiet (nothing pending, sent,
  // missing or asked for), else kNotQuiet. A token quiet for a whole rotation may rest here.
  static constexpr uint64_t kNotQuiet = ~uint64_t{0};
  uint64_t quiet_seq_ = kNotQuiet;
  uint64_t last_token_hop_ = 0;   // highest hop processed: tokens with lower hops are duplicates
  std::string last_sent_token_;   // for retransmission (regular or commit token)
  uint64_t last_sent_hop_ = 0;
  Time retransmit_at_ = 0;        // 0: none due
  Time last_token_at_ = 0;        // when a token last arrived (or the ring was installed)
  uint32_t my_fcc_ = 0;           // packets this member added to the token's fcc this rotation
  bool out_of_order_done_ = false;

  // Gather and commit.
  std::set<NodeId> proc_, fail_, consensus_;
  Time join_at_ = 0;              // next join (re)send
  Time consensus_deadline_ = 0;
  Time commit_deadline_ = 0;
  uint64_t commit_hop_ = 0;       // highest commit token hop seen
  uint64_t commit_ring_ = 0;      // the ring the commit token in hand forms
  std::vector<NodeId> commit_ids_;  // its members (sorted), as the first rotation named them
  NodeId last_commit_to_ = 0;     // where the commit token went (for retransmission)
  std::vector<NodeId> warned_absent_list_;
  bool warned_exhausted_ = false;  // kMaxRingSeq reached: said once

  // Recovery.
  OldRing old_;
  bool emitting_past_gap_ = false;  // finish_recovery: old messages delivered past a gap
  std::deque<std::string> recovery_queue_;  // old packets to re-send in the new ring
  std::vector<NodeId> trans_members_;       // members that come from this daemon's old ring
  uint64_t trans_safe_ = 0;                 // highest safe line any of them knew
};

}  // namespace agent::membership
