// The WAN bridge's logic for one site, as a pure state machine (no sockets, no clock, no
// threads): what to forward to other sites, what to hand the local ring from them, and the link
// protocol between the two (bridge/bridge_wire.h). agentd runs it on the site's bridge daemon
// (agentd/bridge_link.h moves its frames over TCP); the unit tests drive two of them against
// each other.
//
// Outgoing: the site's own traffic. Every data event the local ring delivers whose sender is a
// member of this site (its private group names one of this site's daemons) and that names a
// bridged group goes into one outgoing stream, numbered 1, 2, … in the site's total order,
// together with the joins and leaves of this site's members of bridged groups (read off the
// group table after each change, so members a partition cuts off leave too). Events from other
// sites are never forwarded: sites form a full mesh and each sends only its own traffic, so a
// triangle neither loops nor duplicates. The stream is kept in a bounded queue until every
// configured site has acknowledged it.
//
// Per link: hello (site, epoch, daemons, nonce) both ways, proofs (HMAC of the nonces with the
// link key) both ways, then each side says where the other's stream resumes (the last item it
// applied of the other's current epoch). The sender then sends a snapshot of its site's members
// of bridged groups as of its newest item, and the items after the resume point within a window
// of unacknowledged bytes; the receiver acknowledges items once its own ring has ordered them.
//
// Incoming: another site's items enter the local ring in their order, each wrapped with its
// origin (site, epoch, seq) so the bridge daemon sees when it is ordered; duplicates (items
// resent after a reconnect) are dropped by seq. Another site's members join local groups as
// proxies of the bridge daemon (groups::GroupState::add_proxy): local clients see them in views.
// When the link goes, they disconnect; the snapshot of the next link brings them back.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridge/bridge_wire.h"
#include "bridge/link_seal.h"
#include "groups/events.h"
#include "persist/bridge_store.h"  // the durable state's types (the store itself is agentd's)

namespace agent::bridge {

using LinkId = uint64_t;
using Time = uint64_t;  // microseconds, any fixed origin

struct SiteSettings {
  std::string site;                   // this site's name
  std::vector<std::string> daemons;   // this site's daemon names
  std::vector<std::string> sites;     // the other sites (only these may link)
  std::vector<std::string> groups;    // bridged groups: names or patterns ('*', '?')
  std::string key;                    // the link key both sites hold
  uint64_t queue_bytes = 256u << 20;  // the outgoing queue's bound
  uint64_t window_bytes = 8u << 20;   // unacknowledged bytes in flight per link
  size_t batch_bytes = 256u << 10;    // a batch frame's target size (before compression)
  bool compress = true;               // LZ4 batches (sent raw when that saves nothing)
  bool encrypt = true;                // seal frames after the handshake (both sites alike)
  Time heartbeat_us = 1000000;        // a frame at least this often on an idle link
  Time link_timeout_us = 5000000;     // nothing heard this long: the link is dead
};

struct SiteStats {
  bool up = false;
  uint64_t links = 0;              // links that came up
  uint64_t items_sent = 0, items_received = 0, duplicates = 0;
  uint64_t raw_bytes_sent = 0, wire_bytes_sent = 0;  // batches before / after compression
  uint64_t gaps = 0, gap_items = 0;  // items the other side lost (queue bound), as told
  uint64_t acked = 0;                // the other side applied our stream up to here
  uint64_t applied = 0;              // we applied theirs up to here
};

class SiteBridge {
 public:
  SiteBridge(SiteSettings s, uint64_t epoch);

  // What to do after the calls: bytes per link, events for the local ring in this order
  // (after registering proxies_added with the group table), links to close. take() empties.
  struct Output {
    std::vector<std::pair<LinkId, std::string>> frames;
    std::vector<std::string> proxies_added;
    std::vector<std::pair<uint32_t, std::string>> submissions;  // (service, event)
    std::vector<std::string> proxies_dropped;
    std::vector<std::pair<LinkId, std::string>> close;  // (link, reason)
    std::vector<std::string> log;  // lines worth a log line (links up and down, refusals)
  };
  Output& output() { return out_; }

  // The durable state (persist/bridge_store.h): restore() before any link, with what the store
  // held (an epoch of 0: none; this bridge's epoch stays); with recording on, changes()
  // collects what to write, and the driver takes it after each round.
  void restore(const persist::BridgeState& st);
  void record_changes(bool on) { record_ = on; }
  persist::BridgeChanges& changes() { return changes_; }
  uint64_t epoch() const { return epoch_; }

  bool bridged(std::string_view group) const;
  bool own_daemon(std::string_view daemon) const;

  // --- The local ring's stream (called in its order) ---
  // A data event this daemon delivered (not one from another site).
  void on_local_data(const groups::Event& ev, std::string_view payload);
  // The group table after a change of membership (a join, leave, disconnect or configuration
  // change): this site's members of bridged groups are compared with the last call's.
  void on_members(const std::unordered_map<std::string, std::set<std::string>>& member_groups);
  // An item of another site, wrapped by this bridge, was ordered by the local ring.
  void on_remote_delivered(const RemoteTag& tag);

  // --- Links ---
  // A TCP connection to or from another site's bridge: it gets our hello. nonce: fresh random
  // kNonceBytes bytes.
  void link_opened(LinkId id, std::string nonce, Time now);
  void on_bytes(LinkId id, const char* data, size_t size, Time now);
  void link_closed(LinkId id, Time now);
  // Heartbeats and silent links. Call at next_timeout().
  void tick(Time now);
  Time next_timeout() const;
  // Sends what the windows allow (after new items or acknowledgements).
  void pump();

  uint64_t head() const { return head_; }
  size_t queued_items() const { return queue_.size(); }
  uint64_t queued_bytes() const { return queue_bytes_; }
  const std::map<std::string, SiteStats>& stats() const { return stats_; }
  // Proxies: another site's members this bridge hosts locally (site -> member -> groups).
  const std::map<std::string, std::map<std::string, std::set<std::string>>>& remote_members()
      const {
    return models_;
  }

 private:
  enum class Phase { kHello, kProof, kResume, kUp };
  struct Link {
    LinkId id = 0;
    Phase phase = Phase::kHello;
    std::string own_nonce, peer_nonce;
    Hello peer;
    bool own_proof_checked = false;
    FrameReader reader;
    std::unique_ptr<LinkSeal> seal_out, seal_in;  // with encrypt: after each side's proof
    std::string opened;                            // the last sealed frame's plain bytes
    Time last_rx = 0, last_tx = 0;
    uint64_t next = 0;            // the next item of our stream to send
    uint64_t snapshot_as_of = 0;  // membership items up to here are in the snapshot sent
    uint64_t inflight = 0;        // bytes of items sent and not acknowledged (the window)
    uint64_t peer_snapshot_as_of = 0;  // the peer's membership items up to here: in its snapshot
  };
  struct Remote {
    LinkId link = 0;       // the link that is up, or 0
    uint64_t acked = 0;    // of our stream (our current epoch)
    uint64_t peer_epoch = 0;
    uint64_t submitted = 0, applied = 0;  // of their stream: received, ordered here
    uint64_t last_wrapped = 0;  // the last of their items handed to the local ring
    uint64_t last_ack_sent = 0;
  };
  struct QueuedItem {
    Item item;
    bool data = false;
  };

  void append(std::string event, bool data);
  void trim();
  void send(Link& l, std::string bytes);
  void refuse(Link& l, const std::string& reason);
  void on_frame(Link& l, FrameType t, std::string_view body, Time now);
  // A frame as read: a sealed one is opened first.
  void on_wire_frame(Link& l, FrameType t, std::string_view body, Time now);
  void on_hello(Link& l, std::string_view body);
  void on_proof(Link& l, std::string_view body);
  void on_resume(Link& l, uint64_t resume);
  void on_batch(Link& l, std::string_view body);
  void on_snapshot(Link& l, std::string_view body);
  void down(Link& l, const std::string& why);
  void submit_member(const std::string& site, const std::string& member, const std::string& group,
                     bool join, const Item* wrapped, Remote* r);
  // Whether the link sent (or will send) q: the snapshot stands for membership items before it.
  static bool counted(const Link& l, const QueuedItem& q) {
    return q.data || q.item.seq > l.snapshot_as_of;
  }
  static uint64_t cost(const QueuedItem& q) { return q.item.event.size() + 16; }
  // q leaves the link's window (acknowledged, or dropped by the bound).
  void release(Link& l, const QueuedItem& q);
  void flush_acks();
  Remote* remote_of(const Link& l);
  const QueuedItem* find(uint64_t seq) const;

  SiteSettings s_;
  uint64_t epoch_;
  Time now_ = 0;
  std::set<std::string, std::less<>> daemons_;
  // Our stream.
  uint64_t head_ = 0;
  std::deque<QueuedItem> queue_;
  uint64_t queue_bytes_ = 0;
  uint64_t dropped_through_ = 0;  // the bound dropped items up to here
  std::set<std::pair<std::string, std::string>> members_;  // this site's, of bridged groups
  // Links and sites.
  std::map<LinkId, Link> links_;
  std::map<std::string, Remote> remotes_;
  std::map<std::string, SiteStats> stats_;
  std::map<std::string, std::map<std::string, std::set<std::string>>> models_;
  std::vector<std::string> scratch_groups_;
  std::string scratch_;
  Output out_;
  bool record_ = false;
  persist::BridgeChanges changes_;
  void applied_changed(const std::string& site, const Remote& r) {
    if (record_) changes_.applied[site] = {r.peer_epoch, r.applied};
  }
};

}  // namespace agent::bridge
