// Configuration changes: gather, commit, recovery (docs/ring-protocol.md).
#include <algorithm>
#include <limits>

#include "membership/ring.h"
#include "base/check.h"

namespace agent::membership {

namespace rw = ringwire;

namespace {
std::vector<NodeId> sorted(const std::set<NodeId>& s) { return {s.begin(), s.end()}; }
std::string list(const std::vector<NodeId>& v) {
  std::string out;
  for (NodeId n : v) out += (out.empty() ? "" : ",") + std::to_string(n);
  return out;
}
}  // namespace

bool Ring::foreign(const rw::Header& h) const {
  if (h.ring_id == ring_id_ || (h.ring_id == prev_ring_id_ && prev_ring_id_ != 0)) return false;
  bool member = std::binary_search(members_.begin(), members_.end(), h.sender);
  if (!member) return true;
  return ring_seq(h.ring_id) > ring_seq(ring_id_);
}

void Ring::start_gather(Time now, const char* why, bool send) {
  if (why) actions_.warnings.push_back(std::string("configuration change: ") + why);
  if (state_ == RingState::kOperational) {
    proc_.clear();
    // Keep the ring that ends here: recovery needs its packets.
    old_ = OldRing{};
    old_.id = ring_id_;
    old_.members = members_;
    old_.packets = std::move(packets_);
    old_.aru = my_aru_;
    old_.delivered = delivered_seq_;
    old_.high = high_seq_;
    old_.safe = safe_seq_;
    old_.reassembly = std::move(reassembly_);
    old_.msgs = ring_msgs_;
    old_.received = recv_seq_;
    old_.received_msgs = recv_msgs_;
    // A message cut short by the ring's end is sent whole in the next one.
    if (!pending_.empty()) pending_.front().offset = 0;
  }
  // From commit or recovery the new ring never became regular: old_ stays what it was.
  proc_.insert(members_.begin(), members_.end());
  proc_.insert(self_);
  fail_.clear();
  consensus_.clear();
  packets_.clear();
  reassembly_.clear();
  recovery_queue_.clear();
  holding_ = false;
  self_pass_ = false;
  waiting_disk_ = false;
  retransmit_at_ = 0;
  hold_until_ = 0;
  paced_until_ = 0;
  state_ = RingState::kGather;
  gather_seq_ = max_ring_seq_;
  ++stats_.gathers;
  consensus_deadline_ = now + consensus_timeout();
  if (send) send_join(now);
  // The caller checks consensus once it has taken in what made it gather.
}

void Ring::send_join(Time now) {
  rw::Join j;
  j.ring_seq = gather_seq_;
  j.incarnation = cfg_.incarnation;
  j.proc = sorted(proc_);
  j.fail = sorted(fail_);
  std::string b;
  rw::encode_join(b, ring_id_, self_, j);
  if (cfg_.members.size() > 1) actions_.sends.push_back({kAllDaemons, std::move(b)});
  consensus_.insert(self_);
  join_at_ = now + cfg_.join_timeout_us;
}

void Ring::handle_join(NodeId from, const rw::Join& j, Time now) {
  auto inc = incarnations_.find(from);
  bool restarted = inc != incarnations_.end() && inc->second != j.incarnation;
  if (std::find(j.fail.begin(), j.fail.end(), from) != j.fail.end()) {
    // The sender leaves (it gave up on itself, see leave()): form a ring without it now,
    // whatever round this daemon is in. A late copy from an earlier incarnation is ignored.
    if (restarted || from == self_) return;
    // Nothing to do when the ring being formed or in use already leaves it out.
    bool forming = state_ == RingState::kGather || state_ == RingState::kCommit;
    bool excluded = forming ? !proc_.count(from) || fail_.count(from)
                            : !std::binary_search(members_.begin(), members_.end(), from);
    if (excluded) return;
    if (state_ != RingState::kGather) {
      std::string why = "daemon " + std::to_string(from) + " leaves";
      start_gather(now, why.c_str(), /*send=*/false);
    }
    // Those it was in a ring with stay wanted (this daemon may not have installed that ring).
    proc_.insert(j.proc.begin(), j.proc.end());
    give_up_on(from, now);
    return;
  }
  // A join from an older round still tells that its sender is alive, but its fail set is out
  // of date and must not be acted on. A gathering daemon compares with the round it is in (a
  // commit token may have told it of a newer ring since), others with the newest ring seen.
  uint32_t round = static_cast<uint32_t>(j.ring_seq);
  bool current = round >= (state_ == RingState::kGather ? gather_seq_ : max_ring_seq_);
  max_ring_seq_ = std::max(max_ring_seq_, round);
  std::set<NodeId> jp(j.proc.begin(), j.proc.end()), jf(j.fail.begin(), j.fail.end());
  if (!current) jf.clear();
  if (state_ != RingState::kGather) {
    bool member = state_ == RingState::kCommit
                      ? proc_.count(from) && !fail_.count(from)
                      : std::binary_search(members_.begin(), members_.end(), from);
    // A member of the commit attempt under way that gathers in the attempt's ring seq or a
    // newer one has given the attempt up (after the commit token passed it): the token will
    // not come round again, and waiting for it would cost a whole token_loss_us.
    bool attempt_over = state_ == RingState::kCommit && member && round >= ring_seq(commit_ring_);
    if (!attempt_over) {
      // A daemon that has given up on this one forms its ring without it; the rings merge once
      // it runs (presence beacons), not by restarting this ring at every join it resends.
      if (jf.count(self_) && !restarted) return;
      // A member's late (or duplicated) join from the gather that made this ring changes
      // nothing.
      if (member && !restarted && (!current || j.ring_seq < ring_seq(ring_id_))) return;
      if (state_ == RingState::kCommit && jp == proc_ && jf == fail_) return;
    }
    std::string why = "daemon " + std::to_string(from) +
                      (restarted ? " restarted" : " asks to form a new ring") + " (its ring seq " +
                      std::to_string(j.ring_seq) + ", proc " + list(j.proc) + ", fail " +
                      list(j.fail) + "; this ring " + std::to_string(ring_seq(ring_id_)) + " in " +
                      to_string(state_) + ")";
    start_gather(now, why.c_str(), /*send=*/false);
  }
  if (round > gather_seq_) {
    // A ring formed since this round began: whoever this daemon gave up on may have been busy
    // forming it. Given-up daemons would otherwise spread from round to round (each gives up on
    // those that list it as failed), and with a dozen daemons some round is always under way
    // with stale ones: rings of one form and merge for ever. Start over in the newer round.
    gather_seq_ = round;
    fail_.clear();
    consensus_.clear();
    consensus_deadline_ = now + consensus_timeout();
  }
  if (restarted) incarnations_.erase(inc);
  if (fail_.count(from)) return;  // given up on this round; answering would ping-pong
  if (jf.count(self_)) {
    // It has given up on this daemon: the two cannot be in one ring this round.
    give_up_on(from, now);
    return;
  }
  if (round == gather_seq_ && jp == proc_ && jf == fail_) {
    consensus_.insert(from);
    if (!consensus_.count(self_)) send_join(now);
    check_consensus(now);
    return;
  }
  bool subset = std::includes(proc_.begin(), proc_.end(), jp.begin(), jp.end()) &&
                std::includes(fail_.begin(), fail_.end(), jf.begin(), jf.end()) &&
                proc_.count(from);
  if (subset) {
    if (!consensus_.count(self_)) send_join(now);  // just restarted the gather: say where we are
    return;  // it will catch up with this daemon's join
  }
  proc_.insert(jp.begin(), jp.end());
  proc_.insert(from);
  fail_.insert(jf.begin(), jf.end());
  consensus_.clear();
  // It already holds the merged view.
  if (round == gather_seq_ && jp == proc_ && jf == fail_) consensus_.insert(from);
  // New sets: everyone gets a full consensus timeout to agree on them.
  consensus_deadline_ = now + consensus_timeout();
  send_join(now);
  check_consensus(now);
}

// Gives up on `from` for this round: agreement starts over among the rest.
void Ring::give_up_on(NodeId from, Time now) {
  fail_.insert(from);
  consensus_ = {self_};
  consensus_deadline_ = now + consensus_timeout();
  send_join(now);
  check_consensus(now);
}

Time Ring::consensus_timeout() const {
  // Agreement needs every daemon of the round to hear a join from every other, n(n-1) joins
  // any of which loss may drop. Beyond 8 daemons the time grows with their number, so that a
  // lossy network does not make a large ring give up on some daemon in nearly every round.
  size_t n = 0;
  for (NodeId p : proc_) n += fail_.count(p) ? 0 : 1;
  return cfg_.consensus_timeout_us * std::max<size_t>(n, 8) / 8;
}

void Ring::leave(Time now) {
  (void)now;
  if (cfg_.members.size() <= 1) return;
  // A join that gives up on its own sender: receivers gather with it in their fail set.
  rw::Join j;
  j.ring_seq = max_ring_seq_;
  j.incarnation = cfg_.incarnation;
  std::set<NodeId> proc(members_.begin(), members_.end());
  proc.insert(proc_.begin(), proc_.end());
  proc.insert(self_);
  j.proc = sorted(proc);
  j.fail = {self_};
  std::string b;
  rw::encode_join(b, ring_id_, self_, j);
  for (int i = 0; i < 2; ++i) actions_.sends.push_back({kAllDaemons, b});  // twice: loss
  holding_ = false;
  paced_until_ = 0;
}

void Ring::check_consensus(Time now) {
  if (state_ != RingState::kGather) return;
  std::vector<NodeId> need;
  for (NodeId p : proc_)
    if (!fail_.count(p)) need.push_back(p);
  for (NodeId p : need)
    if (!consensus_.count(p)) return;
  if (need.front() != self_) return;  // the representative sends the commit token
  if (max_ring_seq_ > kMaxRingSeq - 4) {
    // Ring ids must never repeat: rather no new ring than one whose id wraps.
    if (!warned_exhausted_)
      actions_.warnings.push_back("ring sequence numbers are exhausted (" +
                                  std::to_string(max_ring_seq_) +
                                  "): this daemon cannot form a new ring as representative");
    warned_exhausted_ = true;
    return;
  }
  rw::Commit c;
  max_ring_seq_ += 4;
  if (max_ring_seq_ > ring_seq_stored_) {
    ring_seq_stored_ = max_ring_seq_ + 64;  // the next 16 rings need no write
    actions_.store_ring_seq = ring_seq_stored_;  // stored before the commit token leaves
  }
  c.ring_id = (static_cast<uint64_t>(max_ring_seq_) << 32) | self_;
  c.hop = 1;
  for (NodeId m : need) c.members.push_back(rw::CommitEntry{m, 0, 0, 0, 0, 0, 0});
  handle_commit(self_, c, now);
}

void Ring::handle_commit(NodeId from, const rw::Commit& c, Time now) {
  (void)from;
  max_ring_seq_ = std::max(max_ring_seq_, ring_seq(c.ring_id));
  std::vector<NodeId> ids;
  for (auto& e : c.members) ids.push_back(e.member);
  bool all_filled = std::all_of(c.members.begin(), c.members.end(),
                                [](const rw::CommitEntry& e) { return e.filled != 0; });
  // A token whose entry for this daemon another incarnation filled, or this one from another
  // old ring, would install a ring on facts that are not this daemon's: let it die.
  for (auto& e : c.members)
    if (e.member == self_ && e.filled &&
        (e.incarnation != cfg_.incarnation || e.old_ring != old_.id)) {
      ++stats_.stale_commits;
      return;
    }
  // A commit token that does not name this daemon is not for it (installing it would leave
  // this daemon out of its own ring).
  if (!std::binary_search(ids.begin(), ids.end(), self_)) return;
  NodeId rep = ids.front();
  rw::Commit next = c;
  switch (state_) {
    case RingState::kGather: {
      std::vector<NodeId> need;
      for (NodeId p : proc_)
        if (!fail_.count(p)) need.push_back(p);
      if (ids != need || all_filled) return;  // not the ring this daemon agreed to
      state_ = RingState::kCommit;
      commit_hop_ = c.hop;
      commit_ring_ = c.ring_id;
      commit_ids_ = ids;
      break;
    }
    case RingState::kCommit:
      if (c.ring_id != commit_ring_ && !all_filled &&
          ring_seq(c.ring_id) > ring_seq(commit_ring_)) {
        // A newer attempt for the same daemons (its representative gave up the one this daemon
        // took part in, which will never come round again): take part in this one instead.
        std::vector<NodeId> need;
        for (NodeId p : proc_)
          if (!fail_.count(p)) need.push_back(p);
        if (ids != need) return;
        commit_hop_ = c.hop;
        commit_ring_ = c.ring_id;
        commit_ids_ = ids;
        break;
      }
      // The second rotation carries the members of the first: a token for this ring with
      // others is not the one this daemon filled.
      if (c.ring_id != commit_ring_ || c.hop <= commit_hop_ || ids != commit_ids_) return;
      commit_hop_ = c.hop;
      if (!all_filled) return;  // a duplicate of the first rotation
      install_new_ring(c, now);
      if (self_ == rep) {
        // The representative has it back filled: the second rotation starts.
        break;
      }
      break;
    case RingState::kRecovery:
      if (c.ring_id != ring_id_ || c.hop <= commit_hop_ || ids != members_) return;
      commit_hop_ = c.hop;
      if (self_ == rep && all_filled && last_token_hop_ == 0) {
        // Second rotation done: every member is in recovery. The first token of the new ring.
        retransmit_at_ = 0;
        Token t;
        t.hop = 1;
        for (NodeId m : members_) t.arus.push_back(rw::TokenEntry{m, 0, 0, 0});
        arrive(std::move(t), now);
      }
      return;
    case RingState::kOperational:
      return;
  }
  // Fill this daemon's entry (first rotation) and pass the token on.
  for (auto& e : next.members)
    if (e.member == self_ && !e.filled) {
      e.incarnation = cfg_.incarnation;
      e.old_ring = old_.id;
      e.old_aru = old_.aru;
      e.old_high = old_.high;
      e.old_safe = old_.safe;
      e.filled = 1;
    }
  if (state_ == RingState::kCommit && self_ == rep &&
      std::all_of(next.members.begin(), next.members.end(),
                  [](const rw::CommitEntry& e) { return e.filled != 0; }))
    install_new_ring(next, now);  // a ring of one, or the first rotation just completed
  commit_deadline_ = now + cfg_.token_loss_us;
  next.hop = c.hop + 1;
  size_t i = static_cast<size_t>(std::find(ids.begin(), ids.end(), self_) - ids.begin());
  NodeId to = ids[(i + 1) % ids.size()];
  if (to == self_) {
    handle_commit(self_, next, now);
    return;
  }
  last_sent_token_.clear();
  rw::encode_commit(last_sent_token_, ring_id_, self_, next);
  actions_.sends.push_back({to, last_sent_token_});
  last_commit_to_ = to;
  retransmit_at_ = now + cfg_.token_retransmit_us;
}

void Ring::install_new_ring(const rw::Commit& c, Time now) {
  if (state_ == RingState::kRecovery && ring_id_ == c.ring_id) return;
  ring_id_ = c.ring_id;
  members_.clear();
  incarnations_.clear();
  trans_members_.clear();
  uint64_t low = std::numeric_limits<uint64_t>::max(), high = 0;
  trans_safe_ = 0;
  for (auto& e : c.members) {
    members_.push_back(e.member);
    incarnations_[e.member] = e.incarnation;
    if (old_.id != 0 && e.old_ring == old_.id) {
      trans_members_.push_back(e.member);
      low = std::min(low, e.old_aru);
      high = std::max(high, e.old_high);
      trans_safe_ = std::max(trans_safe_, e.old_safe);
    }
  }
  AGENT_CHECK(std::is_sorted(members_.begin(), members_.end()));
  my_index_ = static_cast<size_t>(std::find(members_.begin(), members_.end(), self_) - members_.begin());
  AGENT_CHECK(my_index_ < members_.size());
  recovery_high_ = old_.id != 0 && !trans_members_.empty() ? high : 0;
  recovery_queue_.clear();
  if (old_.id != 0 && !(faults_ && faults_->skip_recovery))
    for (auto& [seq, p] : old_.packets)
      if (seq > low && seq <= high) recovery_queue_.emplace_back(p.bytes);
  packets_.clear();
  reassembly_.clear();
  my_aru_ = high_seq_ = delivered_seq_ = safe_seq_ = 0;
  ring_msgs_ = 0;
  recv_seq_ = recv_msgs_ = durable_ordinal_ = 0;
  recv_reassembly_.clear();
  not_durable_.clear();
  pass_next_ = false;  // a wake heard in the old ring is no reason to keep this one busy
  wake_sent_ = false;
  sent_last_visit_ = false;
  quiet_seq_ = kNotQuiet;
  last_token_hop_ = 0;
  holding_ = false;
  paced_until_ = 0;
  my_fcc_ = 0;
  tok_ = Token{};
  state_ = RingState::kRecovery;
  last_token_at_ = now;
  fail_.clear();
}

void Ring::absorb_recovery_chunk(std::string_view bytes) {
  auto h = rw::decode_header(bytes);
  if (!h || h->type != rw::Type::kData || h->ring_id != old_.id || old_.id == 0) return;
  auto d = rw::decode_data(bytes.substr(rw::kHeaderBytes));
  if (!d || d->seq <= old_.delivered || old_.packets.count(d->seq)) return;
  bool has_safe = false;
  for (auto& ch : d->chunks) has_safe |= (ch.service & kSafeService) != 0;
  old_.packets.emplace(d->seq, owning(h->sender, has_safe, std::string(bytes)));
  ++stats_.recovered_packets;
  // What this daemon holds of the old ring now: should this recovery fail, the next commit
  // token reports it, so the next recovery hands it to every member of the transitional set.
  old_.high = std::max(old_.high, d->seq);
  while (old_.packets.count(old_.aru + 1)) ++old_.aru;
}

void Ring::finish_recovery(Time now) {
  AGENT_CHECK(state_ == RingState::kRecovery);
  // The transitional set: members of the new ring that come from this daemon's old one,
  // this daemon among them.
  AGENT_CHECK(std::includes(members_.begin(), members_.end(), trans_members_.begin(),
                            trans_members_.end()));
  AGENT_CHECK(old_.id == 0 ||
              std::binary_search(trans_members_.begin(), trans_members_.end(), self_));
  if (old_.id != 0) {
    auto deliver_old = [&](uint64_t seq, const Packet& p, bool only_trans) {
      auto d = rw::decode_data(p.bytes.substr(rw::kHeaderBytes));
      AGENT_CHECK(d && d->seq == seq);
      bool from_trans = std::binary_search(trans_members_.begin(), trans_members_.end(), p.sender);
      if (only_trans && !from_trans) {
        old_.reassembly.erase(p.sender);
        if (faults_ && faults_->deliver_past_gap)
          for (auto& ch : d->chunks)
            if ((ch.flags & rw::kFirst) && (ch.flags & rw::kLast))
              emit(p.sender, ch.service, p.owner, ch.data, seq, old_.id);
        return;
      }
      for (auto& ch : d->chunks) {
        if ((ch.flags & rw::kFirst) && (ch.flags & rw::kLast)) {
          emit(p.sender, ch.service, p.owner, ch.data, seq, old_.id);
        } else if (ch.flags & rw::kFirst) {
          old_.reassembly[p.sender].assign(ch.data.data(), ch.data.size());
        } else {
          auto r = old_.reassembly.find(p.sender);
          if (r == old_.reassembly.end()) continue;  // its start is lost: a departed sender's
          r->second.append(ch.data.data(), ch.data.size());
          if (ch.flags & rw::kLast) {
            emit(p.sender, ch.service, std::move(r->second), seq, old_.id);
            old_.reassembly.erase(r);
          }
        }
      }
    };
    // 1. What the old regular configuration can still deliver: in order, up to the first gap,
    //    SAFE only where some member of it knew it safe.
    uint64_t safe_line = std::max(old_.safe, trans_safe_);
    uint64_t s = old_.delivered + 1;
    for (; s <= recovery_high_; ++s) {
      auto it = old_.packets.find(s);
      if (it == old_.packets.end()) break;
      if (it->second.has_safe && s > safe_line && !(faults_ && faults_->deliver_safe_early)) break;
      deliver_old(s, it->second, false);
    }
    old_.delivered = s - 1;
    // 2. The transitional configuration.
    Delivered t;
    t.index = ++delivered_items_;
    t.kind = DeliveryKind::kTransitional;
    t.ring_id = old_.id;
    t.next_ring_id = ring_id_;
    t.ordinal = old_.msgs;
    t.members = trans_members_;
    actions_.deliveries.push_back(std::move(t));
    // 3. The rest, in order. Past a gap only messages of members that came along: a departed
    //    sender's later messages could follow one of its own that nobody here has.
    bool gap = false;
    uint64_t expect = old_.delivered + 1;
    for (auto& [seq, p] : old_.packets) {
      if (seq <= old_.delivered) continue;
      if (seq > recovery_high_) break;  // beyond what the transitional set reported holding
      if (seq != expect) gap = true;
      expect = seq + 1;
      emitting_past_gap_ = gap;
      deliver_old(seq, p, gap);
    }
    emitting_past_gap_ = false;
  }
  // 4. The regular configuration.
  Delivered r;
  r.index = ++delivered_items_;
  r.kind = DeliveryKind::kRegular;
  r.ring_id = ring_id_;
  r.members = members_;
  actions_.deliveries.push_back(std::move(r));
  prev_ring_id_ = old_.id;
  old_ = OldRing{};
  trans_members_.clear();
  state_ = RingState::kOperational;
  ++stats_.rings_installed;
  presence_at_ = now + cfg_.join_timeout_us * 4;
  std::vector<NodeId> absent;
  for (NodeId m : cfg_.members)
    if (!std::binary_search(members_.begin(), members_.end(), m)) absent.push_back(m);
  if (!absent.empty() && absent != warned_absent_list_) {
    actions_.warnings.push_back("ring " + std::to_string(ring_seq(ring_id_)) + " formed with daemons " +
                                list(members_) + "; daemons " + list(absent) +
                                " do not answer (are they running and reachable?)");
  }
  warned_absent_list_ = absent;
}

Time Ring::next_timeout() const {
  Time next = std::numeric_limits<Time>::max();
  auto at = [&](Time t) {
    if (t != 0) next = std::min(next, t);
  };
  switch (state_) {
    case RingState::kGather:
      at(join_at_);
      at(consensus_deadline_);
      break;
    case RingState::kCommit:
      at(retransmit_at_);
      at(commit_deadline_);
      break;
    case RingState::kRecovery:
    case RingState::kOperational:
      if (holding_ && hold_until_ != 0) at(hold_until_);
      if (holding_ && paced_until_ != 0) at(paced_until_);
      at(retransmit_at_);
      if (members_.size() > 1 && !holding_) at(last_token_at_ + cfg_.token_loss_us);
      if (state_ == RingState::kOperational && members_.size() < cfg_.members.size()) at(presence_at_);
      break;
  }
  return next;
}

void Ring::on_timeout(Time now) {
  switch (state_) {
    case RingState::kGather:
      if (now >= consensus_deadline_) {
        // Give up on daemons that have not agreed in time.
        std::vector<NodeId> gone;
        for (NodeId p : proc_)
          if (!fail_.count(p) && !consensus_.count(p)) gone.push_back(p);
        for (NodeId p : gone) fail_.insert(p);
        consensus_deadline_ = now + consensus_timeout();
        consensus_ = {self_};
        send_join(now);
        check_consensus(now);
      } else if (now >= join_at_) {
        send_join(now);
      }
      break;
    case RingState::kCommit:
      if (now >= commit_deadline_) {
        start_gather(now, "the commit token was lost");
        check_consensus(now);
      } else if (retransmit_at_ != 0 && now >= retransmit_at_) {
        ++stats_.tokens_retransmitted;
        actions_.sends.push_back({last_commit_to_, last_sent_token_});
        retransmit_at_ = now + cfg_.token_retransmit_us;
      }
      break;
    case RingState::kRecovery:
    case RingState::kOperational:
      if (holding_ && paced_until_ != 0 && now >= paced_until_) {
        paced_until_ = 0;
        visit(now);
        run_self_passes(now);
      }
      if (holding_ && hold_until_ != 0 && now >= hold_until_) pass_token(now);
      if (retransmit_at_ != 0 && now >= retransmit_at_) {
        actions_.sends.push_back({state_ == RingState::kRecovery && last_token_hop_ == 0
                                      ? last_commit_to_
                                      : successor(),
                                  last_sent_token_});
        ++stats_.tokens_retransmitted;
        retransmit_at_ = now + cfg_.token_retransmit_us;
      }
      if (members_.size() > 1 && !holding_ && now >= last_token_at_ + cfg_.token_loss_us) {
        start_gather(now, "token lost");
        check_consensus(now);
        break;
      }
      if (state_ == RingState::kOperational && members_.size() < cfg_.members.size() &&
          now >= presence_at_) {
        // Let daemons outside this ring know it exists, so partitions merge when they heal.
        std::string w;
        rw::encode_header(w, rw::Header{rw::Type::kWake, ring_id_, self_});
        for (NodeId m : cfg_.members)
          if (!std::binary_search(members_.begin(), members_.end(), m))
            actions_.sends.push_back({m, w});
        presence_at_ = now + cfg_.join_timeout_us * 4;
      }
      break;
  }
  run_self_passes(now);
}

}  // namespace agent::membership
