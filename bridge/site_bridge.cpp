#include "bridge/site_bridge.h"

#include <algorithm>

#include <openssl/crypto.h>

#include "base/check.h"
#include "groups/event_codec.h"
#include "persist/glob.h"
#include "transport/client_protocol.h"
#include "transport/names.h"

namespace agent::bridge {

namespace {
constexpr uint32_t kAgreed = proto::service::kAgreed;
}  // namespace

SiteBridge::SiteBridge(SiteSettings s, uint64_t epoch) : s_(std::move(s)), epoch_(epoch) {
  AGENT_CHECK(!s_.site.empty() && epoch_ != 0);
  daemons_.insert(s_.daemons.begin(), s_.daemons.end());
  for (auto& site : s_.sites) {
    remotes_[site];
    stats_[site];
  }
}

void SiteBridge::restore(const persist::BridgeState& st) {
  AGENT_CHECK(links_.empty() && queue_.empty() && head_ == 0);
  if (st.epoch != 0) epoch_ = st.epoch;
  head_ = st.head;
  dropped_through_ = st.dropped_through;
  for (auto& it : st.items) {
    QueuedItem q;
    q.item.seq = it.seq;
    q.item.event = it.event;
    q.data = it.data;
    queue_bytes_ += cost(q);
    queue_.push_back(std::move(q));
  }
  for (auto& [site, r] : remotes_) {
    if (auto a = st.acked.find(site); a != st.acked.end()) r.acked = std::min(a->second, head_);
    if (auto p = st.applied.find(site); p != st.applied.end()) {
      r.peer_epoch = p->second.first;
      r.submitted = r.applied = r.last_wrapped = r.last_ack_sent = p->second.second;
      stats_[site].applied = r.applied;
    }
    stats_[site].acked = r.acked;
  }
  trim();
}

bool SiteBridge::bridged(std::string_view group) const {
  if (names::is_private_group(group)) return false;
  if (s_.groups.empty()) return true;
  std::string g(group);
  for (auto& p : s_.groups)
    if (persist::glob_match(p, g)) return true;
  return false;
}

bool SiteBridge::own_daemon(std::string_view daemon) const { return daemons_.count(daemon) != 0; }

// --- Our stream ---

void SiteBridge::on_local_data(const groups::Event& ev, std::string_view payload) {
  // Only this site's own traffic: what came from another site is not sent on (no loops).
  if (!own_daemon(names::private_group_daemon(ev.member))) return;
  scratch_groups_.clear();
  for (auto& g : ev.groups) {
    if (names::is_private_group(g)) {
      // A private name of another site's member: its site delivers it.
      if (!own_daemon(names::private_group_daemon(g))) scratch_groups_.push_back(g);
    } else if (bridged(g)) {
      scratch_groups_.push_back(g);
    }
  }
  if (scratch_groups_.empty()) return;
  std::vector<std::string_view> groups(scratch_groups_.begin(), scratch_groups_.end());
  std::string event;
  groups::encode_data_event(event, ev.member, ev.service, ev.msg_type, groups.data(),
                            groups.size(), payload.empty() ? ev.payload : payload);
  append(std::move(event), true);
}

void SiteBridge::on_members(
    const std::unordered_map<std::string, std::set<std::string>>& member_groups) {
  std::set<std::pair<std::string, std::string>> now;
  for (auto& [m, groups] : member_groups) {
    if (!own_daemon(names::private_group_daemon(m))) continue;
    for (auto& g : groups)
      if (bridged(g)) now.emplace(m, g);
  }
  if (now == members_) return;
  std::vector<std::pair<std::string, std::string>> left, joined;
  std::set_difference(members_.begin(), members_.end(), now.begin(), now.end(),
                      std::back_inserter(left));
  std::set_difference(now.begin(), now.end(), members_.begin(), members_.end(),
                      std::back_inserter(joined));
  groups::Event ev;
  for (auto* list : {&left, &joined}) {
    ev.kind = list == &left ? groups::EventKind::kLeave : groups::EventKind::kJoin;
    for (auto& [m, g] : *list) {
      ev.member = m;
      ev.group = g;
      std::string bytes;
      groups::encode_event(bytes, ev);
      append(std::move(bytes), false);
    }
  }
  members_ = std::move(now);
}

void SiteBridge::append(std::string event, bool data) {
  QueuedItem q;
  q.item.seq = ++head_;
  q.item.event = std::move(event);
  q.data = data;
  queue_bytes_ += cost(q);
  if (record_) {
    changes_.items.push_back(persist::StoredItem{q.item.seq, q.data, q.item.event});
    changes_.head = head_;
  }
  queue_.push_back(std::move(q));
  // The bound: the oldest go, and a site that had not acknowledged them is told (a gap).
  while (queue_bytes_ > s_.queue_bytes && queue_.size() > 1) {
    auto& front = queue_.front();
    dropped_through_ = front.item.seq;
    if (record_) changes_.dropped_through = dropped_through_;
    for (auto& [site, r] : remotes_) {
      if (r.link == 0 || front.item.seq <= r.acked) continue;
      Link& l = links_.at(r.link);
      if (l.phase == Phase::kUp && front.item.seq < l.next) release(l, front);
    }
    queue_bytes_ -= cost(front);
    queue_.pop_front();
  }
}

const SiteBridge::QueuedItem* SiteBridge::find(uint64_t seq) const {
  if (queue_.empty() || seq < queue_.front().item.seq || seq > queue_.back().item.seq)
    return nullptr;
  const auto& q = queue_[seq - queue_.front().item.seq];
  AGENT_CHECK(q.item.seq == seq);  // the queue holds a contiguous run
  return &q;
}

void SiteBridge::release(Link& l, const QueuedItem& q) {
  if (!counted(l, q)) return;
  AGENT_CHECK(l.inflight >= cost(q));
  l.inflight -= cost(q);
}

void SiteBridge::trim() {
  uint64_t low = head_;
  for (auto& [site, r] : remotes_) low = std::min(low, r.acked);
  while (!queue_.empty() && queue_.front().item.seq <= low) {
    queue_bytes_ -= cost(queue_.front());
    if (record_) changes_.trim_through = queue_.front().item.seq;
    queue_.pop_front();
  }
}

// --- Links ---

void SiteBridge::send(Link& l, std::string bytes) {
  l.last_tx = now_;
  if (l.seal_out) {
    std::string sealed;
    l.seal_out->seal(sealed, bytes);
    bytes = std::move(sealed);
  }
  if (!out_.frames.empty() && out_.frames.back().first == l.id)
    out_.frames.back().second.append(bytes);
  else
    out_.frames.emplace_back(l.id, std::move(bytes));
}

void SiteBridge::refuse(Link& l, const std::string& reason) {
  std::string bye;
  encode_bye(bye, reason);
  send(l, std::move(bye));
  out_.close.emplace_back(l.id, reason);
  out_.log.push_back("bridge link" + (l.peer.site.empty() ? "" : " with site " + l.peer.site) +
                     " refused: " + reason);
}

void SiteBridge::link_opened(LinkId id, std::string nonce, Time now) {
  now_ = std::max(now_, now);
  AGENT_CHECK(nonce.size() == kNonceBytes && !links_.count(id));
  Link& l = links_[id];
  l.id = id;
  l.own_nonce = std::move(nonce);
  l.last_rx = l.last_tx = now_;
  Hello h;
  h.site = s_.site;
  h.epoch = epoch_;
  h.daemons = s_.daemons;
  h.nonce = l.own_nonce;
  h.sealed = s_.encrypt;
  std::string bytes;
  encode_hello(bytes, h);
  send(l, std::move(bytes));
}

void SiteBridge::on_bytes(LinkId id, const char* data, size_t size, Time now) {
  now_ = std::max(now_, now);
  auto it = links_.find(id);
  if (it == links_.end()) return;
  Link& l = it->second;
  l.last_rx = now_;
  l.reader.feed(data, size);
  while (links_.count(id)) {
    auto f = l.reader.next();
    if (!f) break;
    on_wire_frame(l, f->first, f->second, now_);
    // A refused link reads nothing more.
    if (!out_.close.empty() && out_.close.back().first == id) return;
  }
  if (!l.reader.error().empty()) refuse(l, "malformed stream: " + l.reader.error());
}

SiteBridge::Remote* SiteBridge::remote_of(const Link& l) {
  auto it = remotes_.find(l.peer.site);
  return it == remotes_.end() || it->second.link != l.id ? nullptr : &it->second;
}

void SiteBridge::on_wire_frame(Link& l, FrameType t, std::string_view body, Time now) {
  if (!l.seal_in) {
    if (t == FrameType::kSealed) return refuse(l, "a sealed frame before the proof");
    return on_frame(l, t, body, now);
  }
  if (t != FrameType::kSealed) return refuse(l, "an unsealed frame after the proof");
  if (!l.seal_in->open(body, l.opened))
    return refuse(l, "a sealed frame that does not open (altered, replayed or out of order)");
  // One whole frame inside.
  FrameReader inner;
  inner.feed(l.opened.data(), l.opened.size());
  auto f = inner.next();
  if (!f || f->first == FrameType::kSealed || inner.buffered() != 0)
    return refuse(l, "a sealed frame that holds no frame");
  on_frame(l, f->first, f->second, now);
}

void SiteBridge::on_frame(Link& l, FrameType t, std::string_view body, Time now) {
  if (t == FrameType::kBye) {
    std::string reason;
    decode_bye(body, reason);
    out_.close.emplace_back(l.id, "the other side ended it: " + reason);
    out_.log.push_back("bridge link with site " + l.peer.site + " ended by the other side: " +
                       reason);
    return;
  }
  switch (l.phase) {
    case Phase::kHello:
      if (t != FrameType::kHello) return refuse(l, "expected a hello");
      return on_hello(l, body);
    case Phase::kProof:
      if (t != FrameType::kProof) return refuse(l, "expected a proof");
      return on_proof(l, body);
    case Phase::kResume: {
      uint64_t resume = 0;
      if (t != FrameType::kAck || !decode_u64(body, resume))
        return refuse(l, "expected where the stream resumes");
      return on_resume(l, resume);
    }
    case Phase::kUp:
      break;
  }
  Remote* r = remote_of(l);
  AGENT_CHECK(r != nullptr);
  switch (t) {
    case FrameType::kBatch:
      return on_batch(l, body);
    case FrameType::kSnapshot:
      return on_snapshot(l, body);
    case FrameType::kAck: {
      uint64_t seq = 0;
      if (!decode_u64(body, seq) || seq >= l.next) return refuse(l, "a malformed acknowledgement");
      if (seq > r->acked) {
        for (uint64_t s = r->acked + 1; s <= seq; ++s)
          if (const QueuedItem* q = find(s)) release(l, *q);
        r->acked = seq;
        if (record_) changes_.acked[l.peer.site] = seq;
        stats_[l.peer.site].acked = seq;
        trim();
      }
      return;
    }
    case FrameType::kHeartbeat:
      return;
    case FrameType::kGap: {
      uint64_t from = 0, to = 0;
      if (!decode_gap(body, from, to)) return refuse(l, "a malformed gap notice");
      auto& st = stats_[l.peer.site];
      ++st.gaps;
      st.gap_items += to - from + 1;
      out_.log.push_back("bridge: site " + l.peer.site + " dropped items " + std::to_string(from) +
                         ".." + std::to_string(to) +
                         " of its stream before this site had them (its bridge.queue_bytes): "
                         "their messages are lost here");
      // Nothing before the gap's end will come: later items are not duplicates of it.
      r->submitted = std::max(r->submitted, to);
      return;
    }
    default:
      return refuse(l, "an unexpected frame");
  }
  (void)now;
}

void SiteBridge::on_hello(Link& l, std::string_view body) {
  if (!decode_hello(body, l.peer)) return refuse(l, "a malformed hello");
  if (l.peer.version != kLinkVersion)
    return refuse(l, "link protocol version " + std::to_string(l.peer.version) + " (this is " +
                         std::to_string(kLinkVersion) + ")");
  if (l.peer.site == s_.site) return refuse(l, "the other side is site " + s_.site + " too");
  auto r = remotes_.find(l.peer.site);
  if (r == remotes_.end())
    return refuse(l, "site " + l.peer.site + " is not among bridge.sites here");
  for (auto& d : l.peer.daemons)
    if (own_daemon(d))
      return refuse(l, "daemon name " + d + " is used by both sites (names must be unique "
                       "across bridged sites)");
  if (r->second.link != 0) return refuse(l, "site " + l.peer.site + " is linked already");
  if (l.peer.sealed != s_.encrypt)
    return refuse(l, std::string("bridge.encrypt is ") + (s_.encrypt ? "true" : "false") +
                         " here and not at site " + l.peer.site);
  l.peer_nonce = l.peer.nonce;
  l.phase = Phase::kProof;
  std::string bytes;
  encode_proof(bytes, link_proof(s_.key, s_.site, l.peer_nonce, l.own_nonce));
  send(l, std::move(bytes));
  // Everything after the proof is sealed.
  if (s_.encrypt)
    l.seal_out = std::make_unique<LinkSeal>(s_.key, s_.site, l.own_nonce, l.peer_nonce, true);
}

void SiteBridge::on_proof(Link& l, std::string_view body) {
  std::string mac;
  if (!decode_proof(body, mac)) return refuse(l, "a malformed proof");
  std::string want = link_proof(s_.key, l.peer.site, l.own_nonce, l.peer_nonce);
  if (CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0)
    return refuse(l, "wrong link key (bridge.key_file differs between the sites)");
  if (s_.encrypt)
    l.seal_in = std::make_unique<LinkSeal>(s_.key, l.peer.site, l.peer_nonce, l.own_nonce, false);
  Remote& r = remotes_[l.peer.site];
  if (r.link != 0) return refuse(l, "site " + l.peer.site + " is linked already");
  r.link = l.id;
  if (l.peer.epoch != r.peer_epoch) {
    // The other bridge started anew: its stream counts from 1 again.
    r.peer_epoch = l.peer.epoch;
    r.submitted = r.applied = r.last_wrapped = 0;
    applied_changed(l.peer.site, r);
  }
  r.last_ack_sent = r.applied;
  l.phase = Phase::kResume;
  std::string bytes;
  encode_ack(bytes, r.applied);
  send(l, std::move(bytes));
}

void SiteBridge::on_resume(Link& l, uint64_t resume) {
  Remote* r = remote_of(l);
  AGENT_CHECK(r != nullptr);
  if (resume > head_) return refuse(l, "resumes past this site's newest item");
  uint64_t first = queue_.empty() ? head_ + 1 : queue_.front().item.seq;
  uint64_t old_acked = r->acked;
  r->acked = resume;
  if (record_) changes_.acked[l.peer.site] = resume;
  l.next = std::max(resume + 1, first);
  // Items the bound dropped before the other site had them.
  uint64_t gap_from = std::max(resume, old_acked) + 1, gap_to = std::min(dropped_through_, first - 1);
  if (gap_from <= gap_to) {
    std::string gap;
    encode_gap(gap, gap_from, gap_to);
    send(l, std::move(gap));
    out_.log.push_back("bridge: site " + l.peer.site + " misses items " + std::to_string(gap_from) +
                       ".." + std::to_string(gap_to) + " of this site's stream: they left the "
                       "queue (bridge.queue_bytes) before it acknowledged them");
  }
  Snapshot snap;
  snap.as_of = head_;
  snap.memberships.assign(members_.begin(), members_.end());
  std::string bytes;
  encode_snapshot(bytes, snap);
  send(l, std::move(bytes));
  l.snapshot_as_of = head_;
  l.phase = Phase::kUp;
  auto& st = stats_[l.peer.site];
  st.up = true;
  ++st.links;
  st.acked = r->acked;
  out_.log.push_back("bridge link with site " + l.peer.site + " up: sending from item " +
                     std::to_string(l.next) + " (newest " + std::to_string(head_) +
                     "), its stream resumes after item " + std::to_string(r->applied));
  trim();
}

void SiteBridge::on_batch(Link& l, std::string_view body) {
  Remote* r = remote_of(l);
  std::vector<Item> items;
  if (!decode_batch(body, items)) return refuse(l, "a malformed batch");
  auto& st = stats_[l.peer.site];
  std::set<std::string_view> peer_daemons(l.peer.daemons.begin(), l.peer.daemons.end());
  groups::Event ev;
  for (auto& it : items) {
    if (it.seq <= r->submitted) {
      ++st.duplicates;
      continue;
    }
    r->submitted = it.seq;
    ++st.items_received;
    std::string_view payload;
    bool ok = groups::decode_event(it.event, ev, &payload) &&
              peer_daemons.count(names::private_group_daemon(ev.member)) != 0;
    if (ok && ev.kind == groups::EventKind::kData) {
      std::string bytes;
      encode_remote(bytes, l.peer.site, r->peer_epoch, it.seq, it.event);
      out_.submissions.emplace_back(ev.service, std::move(bytes));
      r->last_wrapped = it.seq;
    } else if (ok && (ev.kind == groups::EventKind::kJoin || ev.kind == groups::EventKind::kLeave) &&
               names::valid_group(ev.group)) {
      if (it.seq > l.peer_snapshot_as_of)
        submit_member(l.peer.site, ev.member, ev.group, ev.kind == groups::EventKind::kJoin, &it,
                      r);
    } else {
      out_.log.push_back("bridge: site " + l.peer.site + " sent item " + std::to_string(it.seq) +
                         " that is not its own member's data, join or leave; skipped");
    }
    // Nothing of this site's is waiting in the ring: an item not handed to it counts at once.
    if (r->last_wrapped < it.seq && r->applied >= r->last_wrapped) {
      r->applied = it.seq;
      applied_changed(l.peer.site, *r);
    }
  }
}

void SiteBridge::on_snapshot(Link& l, std::string_view body) {
  Remote* r = remote_of(l);
  Snapshot snap;
  if (!decode_snapshot(body, snap)) return refuse(l, "a malformed snapshot");
  std::set<std::string_view> peer_daemons(l.peer.daemons.begin(), l.peer.daemons.end());
  std::set<std::pair<std::string, std::string>> want;
  for (auto& [m, g] : snap.memberships)
    if (names::is_private_group(m) && names::valid_group(g) && !names::is_private_group(g) &&
        peer_daemons.count(names::private_group_daemon(m)))
      want.emplace(m, g);
  std::set<std::pair<std::string, std::string>> have;
  for (auto& [m, groups] : models_[l.peer.site])
    for (auto& g : groups) have.emplace(m, g);
  for (auto& [m, g] : have)
    if (!want.count({m, g})) submit_member(l.peer.site, m, g, false, nullptr, r);
  for (auto& [m, g] : want)
    if (!have.count({m, g})) submit_member(l.peer.site, m, g, true, nullptr, r);
  l.peer_snapshot_as_of = snap.as_of;
}

void SiteBridge::submit_member(const std::string& site, const std::string& member,
                               const std::string& group, bool join, const Item* wrapped,
                               Remote* r) {
  auto& model = models_[site];
  auto it = model.find(member);
  if (join) {
    if (it == model.end()) {
      it = model.emplace(member, std::set<std::string>{}).first;
      out_.proxies_added.push_back(member);
    }
    if (!it->second.insert(group).second) return;
  } else {
    if (it == model.end() || !it->second.erase(group)) return;
  }
  groups::Event ev;
  ev.kind = join ? groups::EventKind::kJoin : groups::EventKind::kLeave;
  ev.member = member;
  ev.group = group;
  std::string event;
  groups::encode_event(event, ev);
  if (wrapped) {
    std::string bytes;
    encode_remote(bytes, site, r->peer_epoch, wrapped->seq, event);
    out_.submissions.emplace_back(kAgreed, std::move(bytes));
    r->last_wrapped = wrapped->seq;
  } else {
    out_.submissions.emplace_back(kAgreed, std::move(event));
  }
  if (!join && it->second.empty()) {
    model.erase(it);
    out_.proxies_dropped.push_back(member);
  }
}

void SiteBridge::on_remote_delivered(const RemoteTag& tag) {
  auto it = remotes_.find(std::string(tag.site));
  if (it == remotes_.end()) return;
  Remote& r = it->second;
  if (tag.epoch != r.peer_epoch || tag.seq <= r.applied) return;
  r.applied = tag.seq;
  stats_[it->first].applied = tag.seq;
  applied_changed(it->first, r);
}

void SiteBridge::link_closed(LinkId id, Time now) {
  now_ = std::max(now_, now);
  auto it = links_.find(id);
  if (it == links_.end()) return;
  Link& l = it->second;
  auto r = remotes_.find(l.peer.site);
  if (r != remotes_.end() && r->second.link == id) {
    r->second.link = 0;
    stats_[l.peer.site].up = false;
    out_.log.push_back("bridge link with site " + l.peer.site + " down: its " +
                       std::to_string(models_[l.peer.site].size()) +
                       " members leave the local groups until it is back");
    // Its members leave every local group: a network change as the clients see it.
    groups::Event ev;
    ev.kind = groups::EventKind::kDisconnect;
    for (auto& [m, groups] : models_[l.peer.site]) {
      ev.member = m;
      std::string bytes;
      groups::encode_event(bytes, ev);
      out_.submissions.emplace_back(kAgreed, std::move(bytes));
      out_.proxies_dropped.push_back(m);
    }
    models_[l.peer.site].clear();
  }
  links_.erase(it);
}

void SiteBridge::tick(Time now) {
  now_ = std::max(now_, now);
  for (auto& [link_id, l] : links_) {
    LinkId id = link_id;  // (a structured binding cannot be captured in C++17)
    if (!out_.close.empty() && std::any_of(out_.close.begin(), out_.close.end(),
                                           [&](auto& c) { return c.first == id; }))
      continue;
    if (now_ >= l.last_rx + s_.link_timeout_us) {
      refuse(l, l.phase == Phase::kUp ? "nothing heard for " +
                                            std::to_string(s_.link_timeout_us / 1000) + " ms"
                                      : "no handshake within " +
                                            std::to_string(s_.link_timeout_us / 1000) + " ms");
      continue;
    }
    if (l.phase == Phase::kUp && now_ >= l.last_tx + s_.heartbeat_us) {
      std::string hb;
      encode_heartbeat(hb);
      send(l, std::move(hb));
    }
  }
}

Time SiteBridge::next_timeout() const {
  Time t = ~Time{0};
  for (auto& [id, l] : links_) {
    t = std::min(t, l.last_rx + s_.link_timeout_us);
    if (l.phase == Phase::kUp) t = std::min(t, l.last_tx + s_.heartbeat_us);
  }
  return t;
}

void SiteBridge::flush_acks() {
  for (auto& [site, r] : remotes_) {
    if (r.link == 0 || r.applied <= r.last_ack_sent) continue;
    auto l = links_.find(r.link);
    if (l == links_.end() || l->second.phase != Phase::kUp) continue;
    std::string bytes;
    encode_ack(bytes, r.applied);
    send(l->second, std::move(bytes));
    r.last_ack_sent = r.applied;
  }
}

void SiteBridge::pump() {
  flush_acks();
  std::vector<const Item*> batch;
  for (auto& [site, r] : remotes_) {
    if (r.link == 0) continue;
    Link& l = links_.at(r.link);
    if (l.phase != Phase::kUp) continue;
    uint64_t first = queue_.empty() ? head_ + 1 : queue_.front().item.seq;
    if (l.next < first) {
      // The bound dropped items this site had not got: it is told, and sending goes on.
      std::string gap;
      encode_gap(gap, l.next, first - 1);
      send(l, std::move(gap));
      out_.log.push_back("bridge: site " + site + " misses items " + std::to_string(l.next) +
                         ".." + std::to_string(first - 1) + " of this site's stream (bridge."
                         "queue_bytes was reached before it acknowledged them)");
      l.next = first;
    }
    auto& st = stats_[site];
    while (l.next <= head_ && l.inflight < s_.window_bytes) {
      batch.clear();
      size_t bytes = 0;
      while (l.next <= head_ && bytes < s_.batch_bytes && l.inflight + bytes < s_.window_bytes) {
        const QueuedItem* q = find(l.next++);
        AGENT_CHECK(q != nullptr);
        // The snapshot sent at the link's start holds the membership up to its item.
        if (!counted(l, *q)) continue;
        batch.push_back(&q->item);
        bytes += cost(*q);
      }
      l.inflight += bytes;
      if (batch.empty()) continue;
      std::string frame;
      st.raw_bytes_sent += encode_batch(frame, batch, s_.compress);
      st.wire_bytes_sent += frame.size();
      st.items_sent += batch.size();
      send(l, std::move(frame));
    }
  }
}

}  // namespace agent::bridge
