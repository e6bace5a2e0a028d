// Normal operation of the ring: token handling, packing, retransmission, delivery.
// Configuration changes are in ring_membership.cpp.
#include "membership/ring.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "base/check.h"

namespace agent::membership {

namespace rw = ringwire;

namespace {
// Buffers of sent messages kept for spare_buffer(): enough for a token visit's worth of
// messages of a few KB; larger ones are freed.
constexpr size_t kMaxSpares = 1024;
constexpr size_t kMaxSpareBytes = 16384;
}  // namespace

const char* to_string(RingState s) {
  switch (s) {
    case RingState::kGather: return "gather";
    case RingState::kCommit: return "commit";
    case RingState::kRecovery: return "recovery";
    case RingState::kOperational: return "operational";
  }
  return "?";
}

Ring::Ring(NodeId self, RingConfig cfg, Time now) : self_(self), cfg_(std::move(cfg)) {
  std::sort(cfg_.members.begin(), cfg_.members.end());
  cfg_.members.erase(std::unique(cfg_.members.begin(), cfg_.members.end()), cfg_.members.end());
  if (!std::binary_search(cfg_.members.begin(), cfg_.members.end(), self_))
    throw std::invalid_argument("ring member list lacks this daemon");
  if (cfg_.max_packet_bytes < rw::kDataHeaderBytes + rw::kChunkHeaderBytes + 16)
    throw std::invalid_argument("max_packet_bytes too small");
  if (cfg_.personal_window == 0 || cfg_.global_window == 0 || cfg_.max_outstanding == 0)
    throw std::invalid_argument("ring windows must be at least 1");
  last_token_at_ = now;
  // Ring ids must never repeat, also across restarts: this incarnation starts above every
  // sequence number an earlier one handed out (stored), and 65536 per incarnation above the
  // previous one's (joins then carry the highest seen).
  // The incarnation's share is capped (it would wrap after 65536 starts); the stored floor is
  // what keeps this daemon's own ring ids from repeating.
  uint64_t by_incarnation = std::min<uint64_t>(cfg_.incarnation << 16, kMaxRingSeq / 2);
  max_ring_seq_ = std::max(static_cast<uint32_t>(by_incarnation), cfg_.ring_seq_floor);
  ring_seq_stored_ = cfg_.ring_seq_floor;
  // At start, wait for every configured daemon; those that do not answer within the consensus
  // timeout are left out and join later.
  proc_.insert(cfg_.members.begin(), cfg_.members.end());
  start_gather(now, nullptr);
  check_consensus(now);
}

NodeId Ring::successor() const { return members_[(my_index_ + 1) % members_.size()]; }

uint64_t Ring::min_aru(const Token& t) const {
  uint64_t m = std::numeric_limits<uint64_t>::max();
  for (auto& e : t.arus) m = std::min(m, e.aru);
  return t.arus.empty() ? 0 : m;
}

uint64_t Ring::min_durable(const Token& t) const {
  uint64_t m = std::numeric_limits<uint64_t>::max();
  for (auto& e : t.arus) m = std::min({m, e.aru, e.durable});
  return t.arus.empty() ? 0 : m;
}

uint64_t Ring::durable_seq() const {
  if (!cfg_.durable_gate) return my_aru_;
  // Packets below the first message not yet on disk; packets without messages to keep count
  // once received.
  return not_durable_.empty() ? recv_seq_ : not_durable_.front().second - 1;
}

void Ring::take_received(std::vector<Delivered>& out) {
  out.clear();
  std::swap(out, received_);
}

void Ring::set_durable(uint64_t ring_id, uint64_t ordinal, Time now) {
  if (!cfg_.durable_gate || ring_id != ring_id_ || ring_id == 0) return;
  AGENT_CHECK(ordinal <= recv_msgs_);  // only what was handed out can be on disk
  if (ordinal <= durable_ordinal_) return;
  durable_ordinal_ = ordinal;
  uint64_t before = durable_seq();
  while (!not_durable_.empty() && not_durable_.front().first <= durable_ordinal_)
    not_durable_.pop_front();
  if (waiting_disk_ && holding_ && durable_seq() > before) {
    waiting_disk_ = false;
    hold_until_ = 0;
    visit(now);
    run_self_passes(now);
  }
}

bool Ring::has_packet(uint64_t ring_id, uint64_t seq) const {
  if (ring_id == ring_id_ && ring_id != 0) return seq <= my_aru_ || packets_.count(seq);
  if (ring_id == old_.id && ring_id != 0) return seq <= old_.aru || old_.packets.count(seq);
  return false;
}

Actions Ring::take_actions() {
  Actions a;
  std::swap(a, actions_);
  return a;
}

void Ring::take_actions(Actions& out) {
  out.store_ring_seq = 0;
  out.sends.clear();
  out.deliveries.clear();
  out.warnings.clear();
  std::swap(out, actions_);
}

std::string Ring::spare_buffer() {
  if (spares_.empty()) return {};
  std::string s = std::move(spares_.back());
  spares_.pop_back();
  s.clear();
  return s;
}

bool Ring::submit(uint32_t service, std::string_view payload, Time now) {
  if (payload.size() > cfg_.max_message_bytes) return false;
  if (pending_bytes_ + payload.size() > cfg_.max_pending_bytes) return false;
  std::string bytes = spare_buffer();
  bytes.assign(payload.data(), payload.size());
  return submit(service, std::move(bytes), now);
}

bool Ring::submit(uint32_t service, std::string&& payload, Time now) {
  if (payload.size() > cfg_.max_message_bytes) return false;
  if (pending_bytes_ + payload.size() > cfg_.max_pending_bytes) return false;
  bool was_empty = pending_.empty();
  pending_bytes_ += payload.size();
  pending_.push_back(Pending{service, std::move(payload), 0});
  if (state_ != RingState::kOperational) return true;  // sent once a ring is installed
  if (holding_) {
    if (paced_until_ == 0) {
      visit(now);  // the idle holder sends at once
      run_self_passes(now);
    }  // else the put-off visit sends it
  } else if (was_empty && members_.size() > 1 && !wake_sent_ && !sent_last_visit_) {
    // The ring may be idle with the token resting somewhere: ask for it (once until it comes).
    // Not after a visit that sent packets: a member rests the token only when the seq did not
    // move for a whole rotation, and these packets move it before the token is back here.
    std::string w;
    rw::encode_header(w, rw::Header{rw::Type::kWake, ring_id_, self_});
    broadcast(w);
    wake_sent_ = true;
    ++stats_.wakes_sent;
  }
  return true;
}

void Ring::on_packet(NodeId from, std::string_view bytes, Time now, const Owner& owner) {
  auto h = rw::decode_header(bytes);
  // A data packet names its origin, which differs from `from` when another member resends it
  // in answer to a retransmission request; everything else comes from its sender itself.
  auto configured = [&](NodeId n) {
    return std::binary_search(cfg_.members.begin(), cfg_.members.end(), n);
  };
  if (!h || !configured(from) || from == self_ || !configured(h->sender) ||
      (h->type != rw::Type::kData && h->sender != from)) {
    ++stats_.bad_packets;
    return;
  }
  std::string_view body = bytes.substr(rw::kHeaderBytes);
  switch (h->type) {
    case rw::Type::kJoin: {
      auto j = rw::decode_join(body, cfg_.members.size());
      if (j && j->ring_seq > kMaxRingSeq) ++stats_.ring_seq_refused;
      if (!j || j->ring_seq > kMaxRingSeq) {
        ++stats_.bad_packets;
        return;
      }
      handle_join(from, *j, now);
      break;
    }
    case rw::Type::kCommit: {
      auto c = rw::decode_commit(body, cfg_.members.size());
      if (c && ring_seq(c->ring_id) > kMaxRingSeq) ++stats_.ring_seq_refused;
      if (!c || ring_seq(c->ring_id) > kMaxRingSeq) {
        ++stats_.bad_packets;
        return;
      }
      handle_commit(from, *c, now);
      break;
    }
    case rw::Type::kData:
    case rw::Type::kToken:
    case rw::Type::kWake:
    case rw::Type::kHeld:
      if (h->ring_id != ring_id_ || state_ == RingState::kGather || state_ == RingState::kCommit) {
        if (foreign(*h)) {
          if (state_ == RingState::kGather) {
            if (!proc_.count(from) && !fail_.count(from)) {
              proc_.insert(from);
              consensus_ = {self_};
              send_join(now);
            }
          } else {
            start_gather(now, "a daemon of another ring is reachable");
            proc_.insert(from);
            send_join(now);
          }
        }
        break;
      }
      // This ring's packets come from its members (a data packet's origin too): a daemon
      // outside it has no say in its order, and a ring of one would pass its token to itself
      // for ever waiting for a sequence number only such a packet announced.
      if (!std::binary_search(members_.begin(), members_.end(), from) ||
          !std::binary_search(members_.begin(), members_.end(), h->sender)) {
        ++stats_.bad_packets;
        break;
      }
      if (h->type == rw::Type::kData) {
        handle_data(*h, bytes, owner);
      } else if (h->type == rw::Type::kToken) {
        handle_token(*h, body, now);
      } else if (h->type == rw::Type::kHeld) {
        // The successor holds the token this member passed: no need to resend it.
        auto hop = rw::decode_held(body);
        if (!hop) {
          ++stats_.bad_packets;
          return;
        }
        if (from == successor() && *hop >= last_sent_hop_) retransmit_at_ = 0;
      } else {
        pass_next_ = true;  // every member passes the token on once: it reaches the asker
        if (holding_ && paced_until_ == 0) visit(now);
      }
      break;
  }
  run_self_passes(now);
}

void Ring::handle_token(const rw::Header& h, std::string_view body, Time now) {
  auto t = rw::decode_token(body, cfg_.members.size(), cfg_.max_retransmit_requests);
  if (!t || t->arus.size() != members_.size()) {
    ++stats_.bad_packets;
    return;
  }
  (void)h;
  arrive(std::move(*t), now);
}

void Ring::handle_data(const rw::Header& h, std::string_view bytes, const Owner& owner) {
  auto d = rw::decode_data(bytes.substr(rw::kHeaderBytes));
  if (!d) {
    ++stats_.bad_packets;
    return;
  }
  if (h.sender == successor() && d->hop >= last_sent_hop_) retransmit_at_ = 0;  // it has the token
  if (d->seq <= my_aru_ || packets_.count(d->seq)) {
    ++stats_.duplicate_packets;
    return;
  }
  if (d->seq > my_aru_ + cfg_.max_outstanding + cfg_.global_window + cfg_.personal_window) {
    ++stats_.bad_packets;  // far outside any window this ring allows: not trusted
    return;
  }
  bool has_safe = false;
  for (auto& c : d->chunks) {
    if (c.flags & rw::kRecovery) {
      if (state_ == RingState::kRecovery) absorb_recovery_chunk(c.data);
    } else {
      has_safe |= (c.service & kSafeService) != 0;
    }
  }
  // Kept as received: in the receive buffer its owner gives, else copied.
  if (owner)
    store(d->seq, Packet{h.sender, has_safe, owner, bytes});
  else
    store(d->seq, h.sender, has_safe, std::string(bytes));
  high_seq_ = std::max(high_seq_, d->seq);
  advance_aru();
  deliver();
}

Ring::Packet Ring::owning(NodeId sender, bool has_safe, std::string bytes) {
  auto kept = std::make_shared<const std::string>(std::move(bytes));
  std::string_view view = *kept;
  return Packet{sender, has_safe, std::move(kept), view};
}

const Ring::Packet& Ring::store(uint64_t seq, NodeId sender, bool has_safe, std::string bytes) {
  return store(seq, owning(sender, has_safe, std::move(bytes)));
}

const Ring::Packet& Ring::store(uint64_t seq, Packet p) {
  return packets_.emplace(seq, std::move(p)).first->second;
}

void Ring::advance_aru() {
  while (packets_.count(my_aru_ + 1)) ++my_aru_;
  AGENT_CHECK(my_aru_ <= std::max(high_seq_, packets_.empty() ? 0 : packets_.rbegin()->first));
}

void Ring::arrive(Token t, Time now) {
  if (t.hop <= last_token_hop_) {
    ++stats_.duplicate_tokens;
    // The predecessor resends the token it passed here: the word that it rests here was lost.
    if (t.hop == last_token_hop_ && holding_ && hold_until_ != 0 && members_.size() > 1)
      send_held();
    return;
  }
  ++stats_.tokens_received;
  Time previous_visit = last_token_at_;
  last_token_hop_ = t.hop;
  last_token_at_ = now;
  retransmit_at_ = 0;
  wake_sent_ = false;
  high_seq_ = std::max(high_seq_, t.seq);
  // This member's contribution to the flow-control count is renewed on every visit.
  t.fcc -= std::min(t.fcc, my_fcc_);
  my_fcc_ = 0;
  tok_ = std::move(t);
  holding_ = true;
  hold_until_ = 0;
  paced_until_ = 0;
  if (cfg_.min_rotation_us != 0 && state_ == RingState::kOperational && members_.size() > 1 &&
      previous_visit != 0 && tok_.rtr.empty() && now < previous_visit + cfg_.min_rotation_us) {
    paced_until_ = previous_visit + cfg_.min_rotation_us;  // on_timeout visits then
    ++stats_.paced_tokens;
    return;
  }
  visit(now);
}

void Ring::visit(Time now) {
  AGENT_CHECK(holding_);
  AGENT_CHECK(state_ == RingState::kOperational || state_ == RingState::kRecovery);
  Token& t = tok_;
  bool recovering = state_ == RingState::kRecovery;
  // 1. Answer retransmission requests this member can.
  if (!t.rtr.empty()) {
    std::vector<uint64_t> still;
    bool answer = !(faults_ && faults_->skip_retransmissions);
    for (uint64_t s : t.rtr) {
      auto it = packets_.find(s);
      if (it != packets_.end() && answer) {
        broadcast(it->second);
        ++stats_.packets_retransmitted;
        ++t.fcc;
        ++my_fcc_;
      } else {
        still.push_back(s);
      }
    }
    t.rtr.swap(still);
  }
  // 2. New packets, within the windows: old-ring packets during recovery, else client messages.
  // Buffers hold packets until they are safe: with the durability gate, until on disk
  // everywhere, so a slow disk holds the ring back here too.
  uint64_t outstanding = t.seq - std::min(t.seq, min_durable(t));
  uint64_t allowed = cfg_.personal_window;
  allowed = std::min<uint64_t>(allowed, cfg_.global_window > t.fcc ? cfg_.global_window - t.fcc : 0);
  allowed = std::min<uint64_t>(
      allowed, cfg_.max_outstanding > outstanding ? cfg_.max_outstanding - outstanding : 0);
  std::vector<Packet> fresh;
  while (fresh.size() < allowed && (recovering ? !recovery_queue_.empty() : !pending_.empty())) {
    fresh.push_back(recovering ? build_recovery_packet(t.seq + 1)
                               : build_packet(t.seq + 1, fresh.size() + 1 == allowed));
    ++t.seq;
  }
  // The windows hold: this visit never takes the ring further past its slowest member than
  // max_outstanding, nor itself past its personal window.
  AGENT_CHECK(fresh.size() <= cfg_.personal_window);
  AGENT_CHECK(fresh.empty() || t.seq - std::min(t.seq, min_durable(t)) <= cfg_.max_outstanding);
  t.fcc += static_cast<uint32_t>(fresh.size());
  my_fcc_ += static_cast<uint32_t>(fresh.size());
  sent_last_visit_ = !fresh.empty();
  stats_.packets_sent += fresh.size();
  high_seq_ = std::max(high_seq_, t.seq);
  size_t after = std::min<size_t>(cfg_.accelerated_window, fresh.size());
  for (size_t i = 0; i + after < fresh.size(); ++i) broadcast(fresh[i]);
  // 3. This member's aru, durable position and its own requests.
  advance_aru();
  receive();
  bool all_done = true;
  for (auto& e : t.arus) {
    if (e.member == self_) {
      e.aru = my_aru_;
      e.durable = durable_seq();
      AGENT_CHECK(e.durable <= e.aru);
      if (cfg_.durable_gate) e.flags |= rw::kTokenDurable;
      if (recovering && recovery_queue_.empty()) e.flags |= rw::kTokenRecoveryDone;
    }
    all_done &= (e.flags & rw::kTokenRecoveryDone) != 0;
  }
  if (all_done && t.recovery_end == 0) t.recovery_end = std::max<uint64_t>(t.seq, 1);
  if (my_aru_ < t.seq && t.rtr.size() < cfg_.max_retransmit_requests) {
    std::set<uint64_t> asked(t.rtr.begin(), t.rtr.end());
    for (uint64_t s = my_aru_ + 1; s <= t.seq && t.rtr.size() < cfg_.max_retransmit_requests; ++s)
      if (!packets_.count(s) && !asked.count(s)) t.rtr.push_back(s);
  }
  // 4. What every member has (on disk, where members keep it) is safe, and once delivered
  // here, stable.
  bool ignore_durable = faults_ && faults_->ignore_durable;
  safe_seq_ = std::max(safe_seq_, ignore_durable ? min_aru(t) : min_durable(t));
  if (recovering && t.recovery_end != 0 && min_aru(t) >= std::min(t.recovery_end, t.seq))
    finish_recovery(now);
  deliver();
  discard_stable();
  // 5. Hold an idle token for a while, else pass it on. Idle: quiet now and at this member's
  // previous visit with the same seq, so a whole rotation brought nothing new and every member
  // has seen that all have everything (SAFE messages are delivered everywhere), and nobody
  // asked for the token since. A busy ring never rests; a lightly used one rests between
  // messages instead of spinning the token at full speed.
  bool quiet = state_ == RingState::kOperational && pending_.empty() && t.rtr.empty() &&
               min_durable(t) == t.seq && fresh.empty();
  // Every member has everything and only disks lag: a ring of one would pass the token to
  // itself for ever, so it holds the token until its disk catches up (set_durable).
  waiting_disk_ = members_.size() == 1 && fresh.empty() && t.rtr.empty() &&
                  min_aru(t) == t.seq && min_durable(t) < t.seq;
  bool idle = quiet && !pass_next_ && (members_.size() == 1 || quiet_seq_ == t.seq);
  quiet_seq_ = quiet ? t.seq : kNotQuiet;
  pass_next_ = false;
  if (waiting_disk_) {
    hold_until_ = std::numeric_limits<Time>::max();
  } else if (idle) {
    ++stats_.held_tokens;
    hold_until_ = members_.size() == 1 ? std::numeric_limits<Time>::max() : now + cfg_.token_hold_us;
    // Tell the predecessor, or it would resend the token every token_retransmit until the
    // token came back round (an idle ring's rotation takes many of those).
    if (members_.size() > 1 && held_told_hop_ != last_token_hop_) send_held();
  } else {
    pass_token(now);
  }
  // Accelerated Ring: the rest of this visit's packets go out after the token.
  for (size_t i = fresh.size() - after; i < fresh.size(); ++i) broadcast(fresh[i]);
}

const Ring::Packet& Ring::build_packet(uint64_t seq, bool last_of_visit) {
  std::string pkt;
  pkt.reserve(cfg_.max_packet_bytes);
  rw::encode_header(pkt, rw::Header{rw::Type::kData, ring_id_, self_});
  rw::begin_data(pkt, seq, tok_.hop);
  bool has_safe = false;
  size_t chunks = 0;
  while (!pending_.empty()) {
    Pending& p = pending_.front();
    size_t room = cfg_.max_packet_bytes - pkt.size();
    size_t left = p.data.size() - p.offset;
    if (room < rw::kChunkHeaderBytes + (left == 0 ? 0 : 1)) break;
    size_t avail = room - rw::kChunkHeaderBytes;
    // Packets are filled to the byte, splitting a message across two, so that all but the
    // visit's last have the same size and leave together (UDP segmentation offload). The
    // last packet of a visit does not start a message that would fit a packet of its own:
    // its rest would wait a whole rotation.
    size_t capacity = cfg_.max_packet_bytes - rw::kDataHeaderBytes - rw::kChunkHeaderBytes;
    if (last_of_visit && left > avail && p.offset == 0 && left <= capacity && chunks > 0) break;
    size_t take = std::min(left, avail);
    uint8_t flags = (p.offset == 0 ? rw::kFirst : 0) | (take == left ? rw::kLast : 0);
    rw::add_chunk(pkt, p.service, flags, std::string_view(p.data).substr(p.offset, take));
    has_safe |= (p.service & kSafeService) != 0;
    ++chunks;
    p.offset += take;
    if (p.offset == p.data.size()) {
      pending_bytes_ -= p.data.size();
      if (spares_.size() < kMaxSpares && p.data.capacity() <= kMaxSpareBytes)
        spares_.push_back(std::move(p.data));
      pending_.pop_front();
    } else {
      break;  // the packet is full
    }
  }
  AGENT_CHECK(chunks > 0);
  return store(seq, self_, has_safe, std::move(pkt));
}

const Ring::Packet& Ring::build_recovery_packet(uint64_t seq) {
  std::string pkt;
  // One old packet per new one: a bit larger than max_packet_bytes, by the new headers.
  rw::encode_header(pkt, rw::Header{rw::Type::kData, ring_id_, self_});
  rw::begin_data(pkt, seq, tok_.hop);
  rw::add_chunk(pkt, 0, rw::kRecovery, recovery_queue_.front());
  recovery_queue_.pop_front();
  return store(seq, self_, false, std::move(pkt));
}

void Ring::receive() {
  if (!cfg_.durable_gate) return;
  bool recovering = state_ == RingState::kRecovery;
  if (!recovering && state_ != RingState::kOperational) return;
  while (recv_seq_ < my_aru_) {
    auto it = packets_.find(recv_seq_ + 1);
    AGENT_CHECK(it != packets_.end());  // only delivered packets are discarded
    const Packet& p = it->second;
    auto d = rw::decode_data(p.bytes.substr(rw::kHeaderBytes));
    AGENT_CHECK(d && d->seq == it->first);
    if (recovering) {
      // The old ring's messages come first (finish_recovery): new ones wait until then.
      for (auto& c : d->chunks)
        if (!(c.flags & rw::kRecovery)) return;
      ++recv_seq_;
      continue;
    }
    auto hand_out = [&](uint32_t service, Owner owner, std::string_view payload) {
      Delivered x;
      x.packet_seq = it->first;
      x.origin = p.sender;
      x.service = service;
      x.payload = payload;
      x.payload_owner = std::move(owner);
      x.ring_id = ring_id_;
      x.ordinal = ++recv_msgs_;
      not_durable_.emplace_back(x.ordinal, x.packet_seq);
      received_.push_back(std::move(x));
    };
    // The same reassembly as deliver(): the same messages, in the same order.
    for (auto& c : d->chunks) {
      if (c.flags & rw::kRecovery) continue;
      if ((c.flags & rw::kFirst) && (c.flags & rw::kLast)) {
        hand_out(c.service, p.owner, c.data);
      } else if (c.flags & rw::kFirst) {
        recv_reassembly_[p.sender].assign(c.data.data(), c.data.size());
      } else {
        auto r = recv_reassembly_.find(p.sender);
        if (r == recv_reassembly_.end()) continue;  // an orphan fragment: deliver() counts it
        r->second.append(c.data.data(), c.data.size());
        if (c.flags & rw::kLast) {
          auto whole = std::make_shared<const std::string>(std::move(r->second));
          std::string_view payload = *whole;
          hand_out(c.service, std::move(whole), payload);
          recv_reassembly_.erase(r);
        }
      }
    }
    ++recv_seq_;
  }
}

void Ring::deliver() {
  receive();  // what is delivered was received first
  if (state_ != RingState::kOperational) return;  // recovery delivers when it completes
  // SAFE packets wait until every member holds them (the safe line).
  const uint64_t safe_line = faults_ && faults_->deliver_safe_early ? ~uint64_t{0} : safe_seq_;
  for (;;) {
    auto it = packets_.find(delivered_seq_ + 1);
    if (it == packets_.end()) break;
    if (it->second.has_safe && it->first > safe_line) break;
    uint64_t seq = it->first;
    AGENT_CHECK(seq <= my_aru_);  // delivered in order: every lower packet is here
    const Packet& p = it->second;
    auto d = rw::decode_data(p.bytes.substr(rw::kHeaderBytes));
    AGENT_CHECK(d && d->seq == seq);
    for (auto& c : d->chunks) {
      if (c.flags & rw::kRecovery) continue;  // consumed when recovery completed
      if ((c.flags & rw::kFirst) && (c.flags & rw::kLast)) {
        emit(p.sender, c.service, p.owner, c.data, seq, ring_id_);
      } else if (c.flags & rw::kFirst) {
        reassembly_[p.sender].assign(c.data.data(), c.data.size());
      } else {
        auto r = reassembly_.find(p.sender);
        if (r == reassembly_.end()) {
          // No first fragment: the sender's fault, seen alike by every member (the packets
          // are the same everywhere), so every member skips it alike.
          ++stats_.orphan_fragments;
          continue;
        }
        r->second.append(c.data.data(), c.data.size());
        if (c.flags & rw::kLast) {
          emit(p.sender, c.service, std::move(r->second), seq, ring_id_);
          reassembly_.erase(r);
        }
      }
    }
    delivered_seq_ = seq;
  }
  if (faults_ && faults_->deliver_out_of_order && !out_of_order_done_ &&
      actions_.deliveries.size() >= 2) {
    auto& v = actions_.deliveries;
    auto& a = v[v.size() - 1];
    auto& b = v[v.size() - 2];
    if (a.kind == DeliveryKind::kMessage && b.kind == DeliveryKind::kMessage) {
      std::swap(a.payload, b.payload);
      std::swap(a.payload_owner, b.payload_owner);
      std::swap(a.origin, b.origin);
      std::swap(a.service, b.service);
      out_of_order_done_ = true;
    }
  }
}

void Ring::emit(NodeId origin, uint32_t service, std::string&& whole, uint64_t seq,
                uint64_t ring_id) {
  auto owner = std::make_shared<const std::string>(std::move(whole));
  std::string_view payload = *owner;
  emit(origin, service, std::move(owner), payload, seq, ring_id);
}

void Ring::emit(NodeId origin, uint32_t service, Owner owner, std::string_view payload,
                uint64_t seq, uint64_t ring_id) {
  ++stats_.messages_delivered;
  Delivered d;
  d.index = ++delivered_items_;
  d.packet_seq = seq;
  d.origin = origin;
  d.service = service;
  d.payload = payload;
  d.payload_owner = std::move(owner);
  d.ring_id = ring_id;
  d.past_gap = emitting_past_gap_;
  bool old = ring_id == old_.id && old_.id != 0;
  d.ordinal = old ? ++old_.msgs : ++ring_msgs_;
  if (cfg_.durable_gate) {
    if (!old) {
      AGENT_CHECK(seq <= recv_seq_ && d.ordinal <= recv_msgs_);  // handed out as received
    } else if (seq <= old_.received) {
      AGENT_CHECK(d.ordinal <= old_.received_msgs);  // handed out with this ordinal before
    } else {
      AGENT_CHECK(d.ordinal > old_.received_msgs);
      // Recovery obtained it: handed out now, as received, just before its delivery.
      Delivered x = d;
      x.index = 0;
      received_.push_back(std::move(x));
    }
  }
  actions_.deliveries.push_back(std::move(d));
}

void Ring::discard_stable() {
  // Only what this member delivered and every member holds: nobody can ask for it again.
  uint64_t stable = std::min(safe_seq_, delivered_seq_);
  AGENT_CHECK(delivered_seq_ <= my_aru_);
  while (!packets_.empty() && packets_.begin()->first <= stable) packets_.erase(packets_.begin());
}

void Ring::send_held() {
  held_told_hop_ = last_token_hop_;
  std::string w;
  rw::encode_held(w, ring_id_, self_, last_token_hop_);
  actions_.sends.push_back({members_[(my_index_ + members_.size() - 1) % members_.size()], w});
}

void Ring::pass_token(Time now) {
  AGENT_CHECK(holding_);
  holding_ = false;
  hold_until_ = 0;
  paced_until_ = 0;
  Token t = tok_;
  ++t.hop;
  if (members_.size() == 1) {
    tok_ = std::move(t);
    self_pass_ = true;
    return;
  }
  last_sent_token_.clear();
  rw::encode_token(last_sent_token_, ring_id_, self_, t);
  last_sent_hop_ = t.hop;
  actions_.sends.push_back({successor(), last_sent_token_});
  retransmit_at_ = now + cfg_.token_retransmit_us;
}

void Ring::run_self_passes(Time now) {
  while (self_pass_) {
    self_pass_ = false;
    Token t = std::move(tok_);
    arrive(std::move(t), now);
  }
}

}  // namespace agent::membership
