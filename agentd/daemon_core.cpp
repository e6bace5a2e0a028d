#include "agentd/daemon_core.h"

#include <algorithm>

#include "agentd/log.h"
#include "bridge/bridge_wire.h"
#include "groups/event_codec.h"
#include "base/check.h"

namespace agent::daemon {

namespace {
constexpr uint32_t kAgreed = proto::service::kAgreed;
}

membership::RingConfig ring_config(const Config& cfg) {
  membership::RingConfig rc;
  const RingSettings& r = cfg.ring;
  if (r.daemons.empty())
    rc.members = {r.id};
  else
    for (auto& d : r.daemons) rc.members.push_back(d.id);
  // ring.packet_bytes is the UDP payload: a sealed packet leaves room for its envelope.
  rc.max_packet_bytes = r.packet_bytes - (ring_sealed(cfg) ? ringseal::kOverheadBytes : 0);
  rc.global_window = r.global_window;
  rc.personal_window = r.personal_window;
  rc.accelerated_window = r.accelerated_window;
  rc.max_outstanding = r.max_outstanding;
  rc.max_pending_bytes = r.max_pending_bytes;
  // An encoded event: the payload and names (a multicast's 256 group names, a catch-up
  // chunk's entry).
  rc.max_message_bytes = cfg.max_message_bytes + (64u << 10);
  rc.token_retransmit_us = r.token_retransmit_us;
  rc.token_hold_us = token_hold_for(r);
  rc.min_rotation_us = r.min_rotation_us;
  rc.token_loss_us = r.token_loss_us;
  rc.join_timeout_us = r.join_timeout_us;
  rc.consensus_timeout_us = r.consensus_timeout_us;
  rc.incarnation = cfg.incarnation;
  rc.ring_seq_floor = cfg.ring_seq_floor;
  // With a log, the ring goes at the pace of the slowest daemon's log: what a daemon reports as
  // durable is what its log has written ("none", "batch") or synced ("always"); flow control
  // keeps the ring within ring.max_outstanding packets of it, and a SAFE message is delivered
  // once every daemon's log has it (on disk everywhere with "always"). Without it a log that
  // cannot keep up would queue the ring's messages in memory without bound. Back-pressure: a
  // slow client's daemon holds its reported position back, and flow control stops every
  // sender ring.max_outstanding packets beyond it.
  rc.durable_gate =
      cfg.persist.enabled() || cfg.slow_policy == Config::SlowPolicy::kBackpressure;
  return rc;
}

DaemonCore::DaemonCore(const Config& cfg, CoreIo& io, Time now, RingTap* tap)
    : DaemonCore(cfg, ring_config(cfg), io, now, tap) {}

DaemonCore::DaemonCore(const Config& cfg, membership::RingConfig ring, CoreIo& io, Time now,
                       RingTap* tap)
    : cfg_(cfg),
      io_(io),
      tap_(tap),
      ring_(cfg.ring.id, std::move(ring), now),
      hub_(cfg, io, [this](uint32_t service, std::string& ev) { submit(service, ev); }),
      now_(now),
      gate_(ring_.config().durable_gate),
      // With a log, messages are logged as received and count once the log reports them
      // (written or synced); without one (back-pressure alone) what is received counts at once.
      log_gate_(gate_ && cfg.persist.enabled()),
      catch_up_(cfg.ring.id),
      started_us_(now) {
  // A hold needs the gate: the ring then counts this daemon's reported position.
  AGENT_CHECK(gate_ || cfg.slow_policy != Config::SlowPolicy::kBackpressure);
  hub_.log_on_receipt(log_gate_);
  if (cfg_.bridge.enabled()) {
    const BridgeSettings& b = cfg_.bridge;
    bridge::SiteSettings s;
    s.site = b.site;
    s.daemons = site_daemons(cfg_);
    for (auto& site : b.sites) s.sites.push_back(site.name);
    s.groups = b.groups;
    s.key = b.key;
    s.queue_bytes = b.queue_bytes;
    s.window_bytes = b.window_bytes;
    // A batch is one ring message at the other site: within its message limit.
    s.batch_bytes = std::min<size_t>(256u << 10, cfg_.max_message_bytes);
    s.compress = b.compress;
    s.encrypt = b.encrypt;
    s.heartbeat_us = uint64_t{b.heartbeat_ms} * 1000;
    s.link_timeout_us = uint64_t{b.link_timeout_ms} * 1000;
    // The incarnation is new at every start: it names this run's outgoing stream.
    bridge_ = std::make_unique<bridge::SiteBridge>(std::move(s),
                                                   std::max<uint64_t>(1, cfg_.incarnation));
  }
  if (cfg_.persist.enabled()) {
    hub_.track_coverage(&coverage_);
    hub_.hold_reads(true);  // until the first configuration's catch-up
  }
}

bool DaemonCore::on_open(ConnId id, Time now, Peer peer, std::string_view nonce) {
  now_ = std::max(now_, now);
  if (stopped_) {
    io_.close(id);
    return false;
  }
  return hub_.on_open(id, now_, std::move(peer), nonce);
}

Time DaemonCore::next_timeout() const {
  Time ring = std::min<Time>(ring_.next_timeout(), hub_.hold_deadline());
  if (bridge_) ring = std::min<Time>(ring, bridge_->next_timeout());
  return throttled_ ? ring : std::min(ring, hub_.next_hello_deadline());
}

void DaemonCore::on_bytes(ConnId id, const char* data, size_t size, Time now) {
  now_ = std::max(now_, now);
  hub_.on_bytes(id, data, size);
}

void DaemonCore::on_closed(ConnId id) { hub_.on_closed(id); }

void DaemonCore::on_datagram(NodeId from, std::string_view bytes, Time now,
                             const membership::Owner& owner) {
  now_ = std::max(now_, now);
  if (stopped_) return;
  ring_.on_packet(from, bytes, now_, owner);
  // Before the next datagram (the token, maybe): what this one completed may be durable at
  // once (nothing to log), and the visit then says so.
  absorb_received();
}

void DaemonCore::absorb_received() {
  if (!gate_) return;
  ring_.take_received(received_);
  if (received_.empty()) return;
  for (auto& d : received_) {
    persist::Position pos{d.ring_id, d.ordinal};
    AGENT_CHECK(last_received_ < pos);  // handed out in the total order, once each
    // A newer ring's message: the older ring's unsynced ones hold nothing back any more.
    if (!unsynced_.empty() && unsynced_.back().ring != pos.ring) unsynced_.clear();
    if (log_gate_) {
      std::string_view event = unwrap(tap_ ? tap_->on_received(d) : d.payload, nullptr);
      if (hub_.log_received(d.ring_id, d.ordinal, event, d.past_gap, d.payload_owner))
        unsynced_.push_back(pos);
    }
    last_received_ = pos;
  }
  received_.clear();
  report_durable();
}

void DaemonCore::report_durable() {
  if (!gate_ || last_received_.zero()) return;
  uint64_t durable = unsynced_.empty() ? last_received_.ordinal : unsynced_.front().ordinal - 1;
  // Held: nothing received since the hold began counts (a newer ring's messages none).
  if (hold_) durable = std::min(durable, hold_at_.ring == last_received_.ring ? hold_at_.ordinal : 0);
  ring_.set_durable(last_received_.ring, durable, now_);
}

void DaemonCore::update_hold() {
  bool want = hub_.holding_ring();
  if (want == hold_) return;
  AGENT_CHECK(gate_);  // only back-pressure holds, and it turns the gate on
  hold_ = want;
  if (hold_) {
    hold_at_ = last_received_;
    ++stats_.ring_holds;
    AGENT_LOG(kDebug, "holding the ring back for slow clients at " << hold_at_.str());
  } else {
    AGENT_LOG(kDebug, "no longer holding the ring back");
    report_durable();
  }
}

void DaemonCore::on_log_synced(persist::Position synced) {
  while (!unsynced_.empty() && unsynced_.front() <= synced) unsynced_.pop_front();
  report_durable();
}

void DaemonCore::on_log_failed(const std::vector<std::string>& senders, const std::string& what,
                               Time now) {
  hub_.on_log_failed(senders, what, now);
  if (!gate_ || unsynced_.empty()) return;
  // What failed will not reach the disk; the ring must not wait for it for ever (the senders
  // are told their messages are missing from the history).
  AGENT_LOG(kWarn, "message log failed: " << unsynced_.size()
                                          << " messages no longer hold SAFE delivery back");
  unsynced_.clear();
  report_durable();
}

bool DaemonCore::offer(uint32_t service, std::string& bytes) {
  if (!tap_) return ring_.submit(service, std::move(bytes), now_);  // moves only when it takes
  std::string tapped = bytes;
  tap_->on_submit(service, tapped);
  if (ring_.submit(service, std::move(tapped), now_)) {
    bytes.clear();
    return true;
  }
  tap_->on_refused();
  return false;
}

// Takes event's bytes; leaves a spare buffer of the ring's in their place.
void DaemonCore::submit(uint32_t service, std::string& event) {
  if (stopped_) return;
  std::string bytes = std::move(event);
  event = ring_.spare_buffer();
  if (bytes.size() >= 2 && bytes[1] == static_cast<char>(groups::EventKind::kData)) {
    if (submitted_at_.size() >= kMaxTracked) submitted_at_.pop_front();
    submitted_at_.push_back(now_);
  }
  if (!backlog_.empty() || !offer(service, bytes)) {
    // The ring's queue is full: hold this one and stop reading clients until it drains.
    backlog_.emplace_back(service, std::move(bytes));
    ++stats_.held_events;
    if (!throttled_) {
      throttled_ = true;
      ++stats_.input_pauses;
      io_.set_client_input(false);
      AGENT_LOG(kDebug, "ring queue full: pausing client input");
    }
  }
}

void DaemonCore::retry_backlog() {
  while (!backlog_.empty() && offer(backlog_.front().first, backlog_.front().second))
    backlog_.pop_front();
  if (backlog_.empty() && throttled_) {
    throttled_ = false;
    io_.set_client_input(true);
    // Hellos that waited unread while input was paused get their full time again.
    hub_.restart_hello_clock(now_);
  }
  AGENT_CHECK(!throttled_ || !backlog_.empty());
}

void DaemonCore::run(Time now) {
  now_ = std::max(now_, now);
  // Deliveries may cause submissions (a slow client's disconnect), whose actions the loop
  // below picks up in order.
  if (running_ || stopped_) return;
  run_once();
  // Flushing the clients may have ended a hold (a client read its queue): the ring learns it
  // now, not at the next input. Bounded: each round needs a client to read again.
  for (int round = 0; round < 4 && wants_run(); ++round) run_once();
}

void DaemonCore::run_once() {
  running_ = true;
  // A timeout that is due is handled here: the timer's, and one that another event meets
  // first (a paced token's visit goes with it, not with a wake-up later).
  if (now_ >= ring_.next_timeout()) ring_.on_timeout(now_);
  if (!throttled_) hub_.expire(now_);
  // Held clients are timed while input is paused too: the hold is what pauses it.
  hub_.expire_holds(now_);
  if (bridge_) {
    if (now_ >= bridge_->next_timeout()) bridge_->tick(now_);
    bridge_submissions();
  }
  for (;;) {
    retry_backlog();
    absorb_received();  // logged before the deliveries that follow them
    update_hold();      // before the token leaves with this daemon's position
    ring_.take_actions(actions_);
    auto& a = actions_;
    if (a.store_ring_seq == 0 && a.sends.empty() && a.deliveries.empty() && a.warnings.empty() &&
        !ring_.has_received())
      break;
    if (a.store_ring_seq != 0) {
      // Before the commit token that hands out ring ids up to this value leaves.
      std::string err = io_.store_ring_seq(a.store_ring_seq);
      if (!err.empty()) {
        running_ = false;
        fail("cannot store the ring sequence (" + err +
                 "): ring ids could repeat after a restart, so this daemon stops",
             now_);
        return;
      }
    }
    for (auto& s : a.sends) io_.send_datagram(s.to, s.view(), ring_.members());
    io_.flush_datagrams();
    for (auto& w : a.warnings) AGENT_LOG(kWarn, "ring: " << w);
    for (auto& d : a.deliveries) {
      if (d.kind != membership::DeliveryKind::kMessage) {
        if (tap_) tap_->on_delivered(d);
        on_configuration(d);
        members_dirty_ = true;
        continue;
      }
      bridge::RemoteTag remote;
      std::string_view event = unwrap(tap_ ? tap_->on_delivered(d) : d.payload, &remote);
      if (is_fill_event(event)) {
        on_fill_event(d.origin, event);
        continue;
      }
      if (event.size() >= 2 && event[1] == static_cast<char>(groups::EventKind::kState))
        on_state_event(d, event);
      if (d.origin == cfg_.ring.id && !submitted_at_.empty() && event.size() >= 2 &&
          event[1] == static_cast<char>(groups::EventKind::kData)) {
        latency_.observe(now_ - std::min(now_, submitted_at_.front()));
        submitted_at_.pop_front();
      }
      if (!hub_.deliver_bytes(d.ordinal, event, d.origin, d.ring_id, d.past_gap, d.payload_owner)) {
        ++stats_.bad_events;
        AGENT_LOG(kError, "ring delivered an undecodable group event from daemon " << d.origin
                                                                                 << "; skipped");
      } else if (bridge_) {
        // The bridge sees the site's stream: its own traffic to send on, other sites' items
        // ordered here, and when membership may have changed.
        auto kind = hub_.last_event().kind;
        if (remote.seq != 0)
          bridge_->on_remote_delivered(remote);
        else if (kind == groups::EventKind::kData)
          bridge_->on_local_data(hub_.last_event(), hub_.last_payload());
        if (kind != groups::EventKind::kData) members_dirty_ = true;
      }
      // The clients' batches view the payload: its packet lives until they are flushed.
      if (in_flight_.empty() || in_flight_.back() != d.payload_owner)
        in_flight_.push_back(std::move(d.payload_owner));
    }
  }
  hub_.flush_log();
  next_fill_read();
  if (cfg_.persist.enabled()) hub_.hold_reads(catch_up_.catching_up());
  if (bridge_) bridge_frames();
  io_.flush_clients();
  in_flight_.clear();
  running_ = false;
}

std::string_view DaemonCore::unwrap(std::string_view event, bridge::RemoteTag* tag) const {
  if (!bridge::is_remote_event(event)) return event;
  bridge::RemoteTag t;
  std::string_view inner;
  // An undecodable one goes on as it is: the group layer reports it.
  if (!bridge::decode_remote(event, t, inner)) return event;
  if (tag) *tag = t;
  return inner;
}

void DaemonCore::bridge_opened(uint64_t link, std::string nonce, Time now) {
  now_ = std::max(now_, now);
  if (bridge_ && !stopped_) bridge_->link_opened(link, std::move(nonce), now_);
}

void DaemonCore::bridge_bytes(uint64_t link, const char* data, size_t size, Time now) {
  now_ = std::max(now_, now);
  if (bridge_ && !stopped_) bridge_->on_bytes(link, data, size, now_);
}

void DaemonCore::bridge_closed(uint64_t link, Time now) {
  now_ = std::max(now_, now);
  if (bridge_ && !stopped_) bridge_->link_closed(link, now_);
}

uint64_t DaemonCore::bridge_restore(const persist::BridgeState& state) {
  AGENT_CHECK(bridge_ != nullptr);
  bridge_->restore(state);
  bridge_->record_changes(true);
  return bridge_->epoch();
}

void DaemonCore::bridge_submissions() {
  auto& out = bridge_->output();
  // Proxies are known to the group table before their joins can be delivered.
  auto& gs = hub_.group_state();
  for (auto& m : out.proxies_added) gs.add_proxy(m);
  out.proxies_added.clear();
  for (auto& [service, bytes] : out.submissions) submit(service, bytes);
  out.submissions.clear();
  for (auto& m : out.proxies_dropped) gs.drop_proxy(m);
  out.proxies_dropped.clear();
}

void DaemonCore::bridge_frames() {
  if (members_dirty_) {
    members_dirty_ = false;
    bridge_->on_members(hub_.group_state().member_groups());
  }
  bridge_->pump();
  auto& out = bridge_->output();
  for (auto& line : out.log) AGENT_LOG(kInfo, line);
  out.log.clear();
  for (auto& [link, bytes] : out.frames) io_.bridge_send(link, bytes);
  out.frames.clear();
  for (auto& [link, reason] : out.close) io_.bridge_close(link, reason);
  out.close.clear();
  if (!bridge_->changes().empty()) {
    io_.bridge_store(bridge_->changes());
    bridge_->changes() = {};
  }
}

void DaemonCore::on_state_event(const membership::Delivered& d, std::string_view event) {
  if (!groups::decode_event(event, state_event_) || state_event_.kind != groups::EventKind::kState)
    return;  // the group layer reports it
  bool planned = catch_up_.planned();
  catch_up_.on_state(d.origin, state_event_.config, state_event_.log_summary);
  if (planned || !catch_up_.planned() || !cfg_.persist.enabled()) return;
  size_t donating = 0, needing = 0;
  for (auto& t : catch_up_.plan()) {
    if (t.donor == cfg_.ring.id) ++donating;
    else if (catch_up_.catching_up()) ++needing;
  }
  if (!catch_up_.plan().empty())
    AGENT_LOG(kInfo, "message log catch-up: " << catch_up_.plan().size() << " rings to fill, "
                                              << donating << " from this daemon's log"
                                              << (catch_up_.catching_up()
                                                      ? "; this daemon's log misses messages "
                                                        "(history reads wait for them)"
                                                      : ""));
}

void DaemonCore::on_fill_event(NodeId origin, std::string_view event) {
  FillEvent f;
  if (!decode_fill(event, f)) {
    ++stats_.bad_fills;
    AGENT_LOG(kError, "ring delivered an undecodable catch-up chunk from daemon " << origin
                                                                                 << "; skipped");
    return;
  }
  bool was_catching_up = catch_up_.catching_up();
  if (!catch_up_.on_fill(origin, f) || !cfg_.persist.enabled()) return;
  // Only the groups this daemon logs (another daemon's persist.groups may name more).
  std::vector<persist::Record> records;
  for (auto& r : f.records) {
    r.log_groups.erase(std::remove_if(r.log_groups.begin(), r.log_groups.end(),
                                      [&](const std::string& g) { return !hub_.persistent(g); }),
                       r.log_groups.end());
    if (!r.log_groups.empty()) records.push_back(std::move(r));
  }
  persist::RingCover& c = coverage_[f.ring];
  if (!c.past_gap) c.through = std::max(c.through, f.reached);
  while (coverage_.size() > persist::kCoveredRings) coverage_.erase(coverage_.begin());
  hub_.flush_log();  // the log writes in this order
  io_.log_fill(records, f.ring, f.reached);
  if (was_catching_up && !catch_up_.catching_up())
    AGENT_LOG(kInfo, "message log catch-up: done; " << catch_up_.stats().filled_messages
                                                    << " messages received so far");
}

// The largest catch-up chunk the ring takes: a message, and within its queue's bound.
static size_t fill_limit(const membership::RingConfig& rc) {
  return static_cast<size_t>(std::min<uint64_t>(rc.max_message_bytes, rc.max_pending_bytes));
}

void DaemonCore::next_fill_read() {
  if (!cfg_.persist.enabled()) return;
  // Half the limit: the chunk's names and fields come on top of the payloads read.
  if (auto r = catch_up_.next_read())
    io_.log_read_ring(*r, std::min<size_t>(256u << 10, fill_limit(ring_.config()) / 2));
}

void DaemonCore::on_fill_read(const FillRead& r, std::vector<persist::Record>&& records,
                              uint64_t reached, const std::string& error) {
  if (!error.empty())
    AGENT_LOG(kError, "message log catch-up: cannot read ring " << (r.ring >> 32) << "."
                                                                 << (r.ring & 0xffffffffu)
                                                                 << " for the others: " << error);
  auto f = catch_up_.on_read(r, std::move(records), reached, error);
  if (!f || stopped_) return;
  std::string bytes;
  encode_fill(bytes, *f);
  // Too large for the ring (it would refuse it for ever): the chunk ends earlier. A single
  // message that does not fit with a chunk's fields around it is left out, and said so.
  const size_t limit = fill_limit(ring_.config());
  while (bytes.size() > limit && !f->records.empty()) {
    if (f->records.size() == 1) {
      AGENT_LOG(kWarn, "message log catch-up: message " << f->records[0].entry.pos.str()
                                                        << " is too large to hand over ("
                                                        << bytes.size() << " bytes); the others' "
                                                                           "logs will lack it");
      f->records.clear();
    } else {
      f->records.pop_back();
      f->reached = f->records.back().entry.pos.ordinal;
      f->final = false;
    }
    bytes.clear();
    encode_fill(bytes, *f);
  }
  if (!backlog_.empty() || !offer(kAgreed, bytes)) backlog_.emplace_back(kAgreed, std::move(bytes));
}

void DaemonCore::on_configuration(const membership::Delivered& d) {
  bool regular = d.kind == membership::DeliveryKind::kRegular;
  std::string ids;
  for (auto m : d.members) ids += (ids.empty() ? "" : ",") + std::to_string(m);
  AGENT_LOG(kInfo, "ring: " << (regular ? "regular" : "transitional") << " configuration "
                            << (d.ring_id >> 32) << "." << (d.ring_id & 0xffffffff)
                            << " with daemons " << ids);
  AGENT_CHECK(!d.members.empty());
  if (changes_.size() >= kKeptChanges) changes_.pop_front();
  changes_.push_back(ConfigChange{now_, regular, d.ring_id, d.members});
  // View ids are (ring, ordinal): the same at every daemon that delivers the same stream.
  if (!regular) {
    catch_up_.on_transitional();
    hub_.on_transitional(d.ordinal, d.members, d.next_ring_id);
    return;
  }
  AGENT_CHECK(std::binary_search(d.members.begin(), d.members.end(), cfg_.ring.id));
  catch_up_.on_regular(d.ring_id, d.members);
  auto state = hub_.on_regular(d.ordinal, d.ring_id, d.members);
  // What this daemon's log holds goes with its state: every member plans the catch-up alike.
  hub_.flush_log();
  encode_log_summary(state.log_summary, LogSummary{cfg_.persist.enabled(), coverage_});
  std::string bytes;
  groups::encode_event(bytes, state);
  // First in line: the exchange waits for every daemon's state, clients' events can wait.
  if (!offer(kAgreed, bytes)) backlog_.emplace_front(kAgreed, std::move(bytes));
}

void DaemonCore::shutdown(Time now) {
  now_ = std::max(now_, now);
  if (stopped_) return;
  hub_.flush_log();
  hub_.shutdown();
  io_.flush_clients();
  stopped_ = true;
  ring_.leave(now_);
  ring_.take_actions(actions_);  // only the leave's datagrams matter now
  for (auto& s : actions_.sends) io_.send_datagram(s.to, s.view(), ring_.members());
  io_.flush_datagrams();
}

void DaemonCore::fail(std::string what, Time now) {
  AGENT_LOG(kError, what);
  failure_ = std::move(what);
  shutdown(now);
}

}  // namespace agent::daemon
