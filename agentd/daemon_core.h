// The whole daemon without its sockets: the client sessions (ClientHub), the group table
// (GroupState, inside the hub) and the ring (membership::Ring), with the glue between them —
// submission and back-pressure, configuration changes and the state exchange, leaving at
// shutdown.
//
// Inputs come in as calls (client bytes and connection ends, ring datagrams, the time);
// everything to do goes out through CoreIo (bytes per connection, datagrams, durable writes,
// whether to read clients) in the order it must happen. Two drivers run exactly this class:
// agentd's event loop (agentd/daemon.cpp) and the simulator (tests/sim/cluster.cpp), which
// speaks the client protocol to it from simulated clients.
//
// The driver calls the inputs, then run(now) once per batch of them, and run(now) again when
// now >= next_timeout(). Nothing here reads a clock, a socket or a file.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentd/catch_up.h"
#include "agentd/client_hub.h"
#include "agentd/config.h"
#include "bridge/site_bridge.h"
#include "agentd/histogram.h"
#include "membership/ring.h"

namespace agent::daemon {

using membership::NodeId;
using membership::Time;

// What the core needs done. ClientIo's calls (bytes per connection, closes) are part of it.
class CoreIo : public ClientIo {
 public:
  // A ring datagram to daemon `to`, or to membership::kBroadcast (every other member of
  // ring_members, the current ring) or membership::kAllDaemons (every other configured
  // daemon). bytes stay valid until flush_datagrams() returns.
  virtual void send_datagram(NodeId to, std::string_view bytes,
                             const std::vector<NodeId>& ring_members) = 0;
  // Sends the datagrams queued so far. Called before the deliveries of the same batch go to
  // clients: the token and data packets leave first, so the next daemon works meanwhile.
  virtual void flush_datagrams() {}
  // Sends every connection's queued bytes (the end of a round of work).
  virtual void flush_clients() {}
  // Stop (false) or resume reading client input: the ring's queue is full / has room again.
  virtual void set_client_input(bool on) = 0;
  // Stores the ring sequence floor durably; called before any datagram that depends on it.
  // Returns "" on success, else what went wrong.
  virtual std::string store_ring_seq(uint32_t seq) = 0;
  // Catch-up of the message log (agentd/catch_up.h). Reads the messages of ring r.ring with
  // ordinals in (r.after, r.upto] from the log, about max_bytes of them (persist::MessageLog::
  // read_ring); the answer comes back through DaemonCore::on_fill_read.
  virtual void log_read_ring(const FillRead& r, size_t max_bytes) {
    (void)r;
    (void)max_bytes;
  }
  // Writes another daemon's messages of `ring` to the log (it skips those it holds); the log
  // then holds the ring up to `upto` (persist::MessageLog::fill).
  virtual void log_fill(std::vector<persist::Record>& records, uint64_t ring, uint64_t upto) {
    (void)ring;
    (void)upto;
    records.clear();
  }
  // The WAN bridge (bridge/site_bridge.h): bytes for one of its links; a link to close (its
  // end comes back as DaemonCore::bridge_closed).
  virtual void bridge_send(uint64_t link, std::string& bytes) { (void)link, bytes.clear(); }
  virtual void bridge_close(uint64_t link, const std::string& reason) {
    (void)link;
    (void)reason;
  }
  // The bridge's durable state changed (persist/bridge_store.h): to be written, in order.
  virtual void bridge_store(persist::BridgeChanges& changes) { changes = {}; }
};

// Watches the ring boundary: the simulator's recorder (agentd has none). It sees every event
// handed to the ring and every item the ring delivers, before the group layer does.
class RingTap {
 public:
  virtual ~RingTap() = default;
  // An event about to be offered to the ring: may change the bytes (the simulator puts a
  // nonce in front). on_refused follows when the ring has no room; the event is offered again
  // later (its original bytes), maybe after others.
  virtual void on_submit(uint32_t service, std::string& event) = 0;
  virtual void on_refused() = 0;
  // An item the ring delivered. For a message, returns the event bytes the group layer gets
  // (a view into d.payload).
  virtual std::string_view on_delivered(const membership::Delivered& d) = 0;
  // A message the ring handed out as received (the durability gate): the event bytes the
  // message log gets (a view into d.payload).
  virtual std::string_view on_received(const membership::Delivered& d) { return d.payload; }
};

struct CoreStats {
  uint64_t input_pauses = 0;  // times the ring's full queue paused client input
  uint64_t bad_events = 0;    // ring messages that did not decode as group events
  uint64_t bad_fills = 0;     // catch-up fill events that did not decode
  uint64_t held_events = 0;   // events held because the ring's queue was full
  uint64_t ring_holds = 0;    // times slow clients began to hold the ring back (back-pressure)
};

// A configuration the ring delivered, for operators (agentctl, the status page's timeline).
struct ConfigChange {
  Time at_us = 0;  // the core's time (the driver's clock) when it was delivered
  bool regular = false;
  uint64_t ring_id = 0;
  std::vector<NodeId> members;
};

class DaemonCore {
 public:
  // cfg must outlive the core. The ring's settings come from cfg (ring_config), or as given.
  DaemonCore(const Config& cfg, CoreIo& io, Time now, RingTap* tap = nullptr);
  DaemonCore(const Config& cfg, membership::RingConfig ring, CoreIo& io, Time now,
             RingTap* tap = nullptr);

  // Client connections. on_open: false when refused (the hub has closed it). nonce: fresh
  // random bytes for a client that must authenticate (ClientHub::on_open).
  bool on_open(ConnId id, Time now, Peer peer = {}, std::string_view nonce = {});
  // The secrets TCP clients authenticate against, anew (SIGHUP).
  void set_client_secrets(std::shared_ptr<const clientauth::Secrets> secrets) {
    hub_.set_secrets(std::move(secrets));
  }
  void on_bytes(ConnId id, const char* data, size_t size, Time now);
  // The connection ended (the peer closed it, or it failed).
  void on_closed(ConnId id);
  // How many bytes the connection still has unsent (slow clients are dropped past a limit,
  // or hold the ring back). When wants_run() then holds, call run() (a hold ended).
  void on_sent(ConnId id, uint64_t queued) { hub_.on_sent(id, queued); }
  // The hub's slow clients began or ceased to hold the ring back and the ring does not know
  // yet: run() tells it.
  bool wants_run() const { return !running_ && !stopped_ && hold_ != hub_.holding_ring(); }
  // Whether this daemon holds the ring back for a slow client (clients.slow_policy =
  // "backpressure"): the durable position it reports stays where it was when the hold began.
  bool holding_ring() const { return hold_; }
  // The message log's answer to a read (CoreIo::log_read); run() sends it on.
  void on_history(ConnId id, uint64_t read_id, persist::ReadResult&& chunk) {
    hub_.on_history(id, read_id, std::move(chunk));
  }
  // The message log could not write messages of these senders (private groups): the local
  // ones are told (error 18, at most once a second each). With the durability gate, what was
  // handed to the log so far no longer holds the ring back: it may never reach the disk.
  void on_log_failed(const std::vector<std::string>& senders, const std::string& what, Time now);
  // What the message log holds of recent rings when the daemon starts (its catch-up compares
  // it with the other daemons').
  void set_log_coverage(persist::Coverage c) { coverage_ = std::move(c); }
  // The log's answer to CoreIo::log_read_ring: records, complete up to `reached` (or error).
  void on_fill_read(const FillRead& r, std::vector<persist::Record>&& records, uint64_t reached,
                    const std::string& error);
  const CatchUp& catch_up() const { return catch_up_; }
  const persist::Coverage& log_coverage() const { return coverage_; }
  // The message log has everything up to this position on disk (CoreIo::log_append's records).
  // With the durability gate the ring learns what is durable (its token carries it).
  void on_log_synced(persist::Position synced);
  // The WAN bridge's links (bridge.site set): a TCP connection to or from another site's
  // bridge opened (nonce: bridge::kNonceBytes fresh random bytes), bytes arrived, it ended.
  void bridge_opened(uint64_t link, std::string nonce, Time now);
  void bridge_bytes(uint64_t link, const char* data, size_t size, Time now);
  void bridge_closed(uint64_t link, Time now);
  const bridge::SiteBridge* bridge() const { return bridge_.get(); }
  // The bridge's durable state as the store held it at start; its changes go to
  // CoreIo::bridge_store from now on. Returns the bridge's epoch (the store's, or a new one).
  uint64_t bridge_restore(const persist::BridgeState& state);

  // A datagram from daemon `from` (the driver maps source addresses to ids). Given the
  // owner of the bytes, the ring keeps them instead of copying.
  void on_datagram(NodeId from, std::string_view bytes, Time now,
                   const membership::Owner& owner = nullptr);

  // Carries out everything the inputs caused: a timeout that is due, held submissions, the
  // ring's actions (datagrams, deliveries to clients, configuration changes) until none
  // remain. Call after every batch of inputs and when now >= next_timeout().
  void run(Time now);
  // The ring's next timeout, or a client's hello falling due (while clients are read).
  Time next_timeout() const;

  // Tells every client the daemon stops, closes them, and leaves the ring (the others form a
  // ring without this daemon at once). Nothing else is done afterwards.
  void shutdown(Time now);
  // The daemon cannot go on (a durable write failed): the driver stops it. What went wrong.
  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }

  const membership::Ring& ring() const { return ring_; }
  membership::Ring& ring() { return ring_; }
  const ClientHub& hub() const { return hub_; }
  // The answer to an admin request (CoreIo::admin), or its refusal; run() sends it.
  void admin_reply(ConnId id, const std::string& command, std::string_view text) {
    hub_.admin_reply(id, command, text);
  }
  void admin_error(ConnId id, proto::ErrorCode code, const std::string& command,
                   const std::string& text) {
    hub_.admin_error(id, code, command, text);
  }
  const CoreStats& stats() const { return stats_; }
  // Delivery latency of this daemon's clients' multicasts: from when the core read one to when
  // the ring delivered it here.
  const Histogram& latency() const { return latency_; }
  // The latest configurations (at most kKeptChanges), oldest first.
  static constexpr size_t kKeptChanges = 64;
  const std::deque<ConfigChange>& config_changes() const { return changes_; }
  Time started_us() const { return started_us_; }
  // Events waiting for room in the ring's queue.
  size_t held() const { return backlog_.size(); }
  bool reading_clients() const { return !throttled_; }

 private:
  void submit(uint32_t service, std::string& event);
  // Hands the event to the ring: true when it took the bytes (moved out), false when its
  // queue is full (bytes untouched).
  bool offer(uint32_t service, std::string& bytes);
  void retry_backlog();
  void on_configuration(const membership::Delivered& d);
  void fail(std::string what, Time now);
  // Catch-up: a state event's summary, a fill event, the donor's next read.
  void on_state_event(const membership::Delivered& d, std::string_view event);
  void on_fill_event(NodeId origin, std::string_view event);
  void next_fill_read();
  // The durability gate: logs what the ring handed out as received, and tells the ring how
  // far its messages are on disk.
  void absorb_received();
  void report_durable();
  // Starts or ends the hold of the ring (back-pressure) as the hub's slow clients say.
  void update_hold();
  void run_once();
  // The bridge's events for the ring (at the start of a round) and its frames (at the end).
  void bridge_submissions();
  void bridge_frames();
  // A delivered event as the group layer takes it: another site's is unwrapped (tag set).
  std::string_view unwrap(std::string_view event, bridge::RemoteTag* tag) const;

  const Config& cfg_;
  CoreIo& io_;
  RingTap* tap_;
  membership::Ring ring_;
  ClientHub hub_;
  std::deque<std::pair<uint32_t, std::string>> backlog_;  // refused by the ring, in order
  bool throttled_ = false;  // client input paused until the backlog drains
  bool running_ = false;    // inside run(): deliveries may cause submissions; not re-entered
  bool stopped_ = false;
  Time now_ = 0;            // the latest time an input gave
  membership::Actions actions_;  // run()'s, kept for the lists' capacity
  std::vector<membership::Owner> in_flight_;  // delivered payloads, until clients are flushed
  // The durability gate (ring config durable_gate): received messages taken from the ring
  // (reused), the positions handed to the log and not yet synced (the current ring's only:
  // older rings' messages hold nothing back), and the last received message.
  bool gate_ = false;
  // The gate is on for the message log (log_gate_) or for back-pressure,
  // or both; the position reported is the lowest of what each allows.
  bool log_gate_ = false;
  // Back-pressure: while hold_, the reported position stays at hold_at_ (what was received
  // when the hold began; nothing of a newer ring).
  bool hold_ = false;
  persist::Position hold_at_;
  std::vector<membership::Delivered> received_;
  std::deque<persist::Position> unsynced_;
  persist::Position last_received_;
  std::string failure_;
  CoreStats stats_;
  // The message log's catch-up, and what the log holds (this daemon's handing over so far).
  CatchUp catch_up_;
  persist::Coverage coverage_;
  groups::Event state_event_;  // on_state_event decodes into it
  // The WAN bridge, on the daemon that runs it; members_dirty_: a membership change since
  // the bridge last looked at the group table.
  std::unique_ptr<bridge::SiteBridge> bridge_;
  bool members_dirty_ = false;
  Histogram latency_;
  // When each data event submitted here and not yet delivered was read, in submission order
  // (the ring delivers one sender's messages in that order). At most kMaxTracked: beyond, the
  // oldest is forgotten (its delivery then counts the next one's time: an underestimate
  // only when a million messages are in flight).
  static constexpr size_t kMaxTracked = 1u << 20;
  std::deque<Time> submitted_at_;
  std::deque<ConfigChange> changes_;
  Time started_us_ = 0;
};

// The ring's settings from the daemon's configuration.
membership::RingConfig ring_config(const Config& cfg);

}  // namespace agent::daemon
