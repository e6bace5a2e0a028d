// The checker's ring part: every daemon instance's ordered stream on its own (structure,
// identity, FIFO) and against the others (agreement on configurations, one order per ring, the
// same messages for daemons that move together, SAFE), then liveness. See README.md.
#include "tests/sim/checker.h"

#include <algorithm>

#include "agentd/config.h"
#include "groups/event_codec.h"
#include "tests/sim/checker_internal.h"
#include "tests/sim/nonce.h"
#include "tests/sim/rng.h"

namespace agent::sim {

namespace detail {

namespace {
constexpr size_t kMaxFailures = 30;

bool has(const std::vector<NodeId>& v, NodeId n) { return std::find(v.begin(), v.end(), n) != v.end(); }
bool subset(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  for (NodeId x : a)
    if (!has(b, x)) return false;
  return true;
}
}  // namespace

std::string list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out + "]";
}

std::string describe(const groups::Event& e) {
  using groups::EventKind;
  switch (e.kind) {
    case EventKind::kJoin: return "join " + e.member + " " + e.group;
    case EventKind::kLeave: return "leave " + e.member + " " + e.group;
    case EventKind::kDisconnect: return "disconnect " + e.member;
    case EventKind::kData:
      return "data " + MsgId{e.member, e.msg_type}.str() + " " + service_name(e.service) + " to " +
             list(e.groups) + " (" + std::to_string(e.payload.size()) + " bytes)";
    case EventKind::kState:
      return "state for ring " + ring_name(e.config) + " from ring " + ring_name(e.old_config) + " (" +
             std::to_string(e.memberships.size()) + " memberships)";
  }
  return "?";
}

Ctx::Ctx(const Records& rec) : r(rec) {}

void Ctx::fail(std::string s) {
  if (v.failures.size() < kMaxFailures) v.failures.push_back(std::move(s));
}

bool Ctx::alive_at_end(uint32_t i) const { return !inst(i).crashed; }

std::optional<groups::Event> Ctx::event_of(const RingRecord& x) const {
  auto it = r.payloads.find(x.fingerprint);
  if (it == r.payloads.end()) return std::nullopt;
  return groups::decode_event(it->second);
}

std::string Ctx::describe(const RingRecord& x) const {
  switch (x.kind) {
    case DeliveryKind::kRegular: return "regular configuration " + ring_name(x.ring_id) + " " + id_list(x.members);
    case DeliveryKind::kTransitional:
      return "transitional configuration of " + ring_name(x.ring_id) + " " + id_list(x.members);
    case DeliveryKind::kMessage: break;
  }
  auto ev = event_of(x);
  std::string what = ev ? detail::describe(*ev) : "an unknown payload";
  return "{" + what + ", origin d" + std::to_string(x.origin) + ", " + service_name(x.service) +
         ", ring " + ring_name(x.ring_id) + " packet " + std::to_string(x.packet_seq) + ", nonce " +
         std::to_string(nonce_instance(x.nonce)) + ":" + std::to_string(nonce_submission(x.nonce)) + "}";
}

std::string Ctx::describe_nonce(uint64_t nonce) const {
  uint32_t i = nonce_instance(nonce);
  uint64_t k = nonce_submission(nonce);
  std::string who = "submission #" + std::to_string(k) + " of " +
                    (i >= 1 && i <= r.instances.size() ? iname(i) : "instance " + std::to_string(i));
  if (i < 1 || i > r.instances.size() || k < 1 || k > inst(i).submitted.size()) return who;
  const Submission& s = inst(i).submitted[k - 1];
  auto it = r.payloads.find(s.fingerprint);
  auto ev = it == r.payloads.end() ? std::nullopt : groups::decode_event(it->second);
  return who + " (" + (ev ? detail::describe(*ev) : "?") + ", " + service_name(s.service) +
         ", at t=" + std::to_string(s.at) + "us)";
}

std::optional<ItemKey> Ctx::key_at(uint32_t i, uint64_t index) const {
  if (i < 1 || i > keys.size() || index < 1 || index > keys[i - 1].size()) return std::nullopt;
  return keys[i - 1][index - 1];
}

namespace {

// Each stream on its own: indices 1, 2, 3...; Reg (msgs Trans msgs Reg)* msgs; messages of the
// ring in force, in packet order; configurations that list the daemon; each message submitted
// exactly like that, by a daemon of its ring, delivered once, FIFO per sending instance.
void index_streams(Ctx& c) {
  size_t n = c.r.instances.size();
  c.keys.assign(n, {});
  c.position.assign(n, {});
  c.segments.assign(n, {});
  for (uint32_t i = 1; i <= n; ++i) {
    const Instance& in = c.inst(i);
    auto& keys = c.keys[i - 1];
    auto& segs = c.segments[i - 1];
    std::set<uint64_t> regs, nonces;
    std::map<uint32_t, uint64_t> last_from;  // sending instance -> its last submission # seen
    uint64_t last_seq = 0;
    bool ok = true;
    for (size_t p = 0; p < in.ring.size() && ok; ++p) {
      const RingRecord& x = in.ring[p];
      auto bad = [&](const std::string& what) {
        c.fail("ring: " + in.name + "'s stream at index " + std::to_string(x.index) + ": " + what);
        ok = false;
      };
      if (x.index != p + 1) {
        bad("delivery #" + std::to_string(p + 1) + " carries index " + std::to_string(x.index) +
            " (indices must run 1, 2, 3...)");
        break;
      }
      Segment* cur = segs.empty() ? nullptr : &segs.back();
      switch (x.kind) {
        case DeliveryKind::kRegular: {
          keys.push_back(ItemKey{DeliveryKind::kRegular, x.ring_id, 0});
          if (cur && !cur->trans_pos)
            bad(c.describe(x) + " follows regular configuration " + ring_name(cur->ring) +
                " without its transitional configuration");
          if (!regs.insert(x.ring_id).second) bad(c.describe(x) + " a second time");
          if (!has(x.members, in.daemon)) bad(c.describe(x) + " does not list d" + std::to_string(in.daemon));
          if (cur && cur->trans_pos) {
            uint64_t announced = in.ring[*cur->trans_pos].next_ring_id;
            if (announced != 0 && announced != x.ring_id)
              bad(c.describe(x) + " follows a transitional configuration that announced ring " + ring_name(announced));
            if (!subset(cur->trans_members, x.members))
              bad(c.describe(x) + " lacks members of the transitional configuration " +
                  id_list(cur->trans_members) + " before it");
            cur->next_reg_pos = p;
            cur->next_ring = x.ring_id;
            keys[*cur->trans_pos].b = x.ring_id;
          }
          Segment s;
          s.instance = i;
          s.ring = x.ring_id;
          s.reg_pos = p;
          segs.push_back(std::move(s));
          last_seq = 0;
          break;
        }
        case DeliveryKind::kTransitional: {
          keys.push_back(ItemKey{DeliveryKind::kTransitional, x.ring_id, 0});  // b: the next Reg
          if (!cur) {
            bad(c.describe(x) + " before any regular configuration");
            break;
          }
          if (cur->trans_pos) {
            bad("a second " + c.describe(x) + " in ring " + ring_name(cur->ring));
            break;
          }
          if (x.ring_id != cur->ring) bad(c.describe(x) + " in regular configuration " + ring_name(cur->ring));
          const auto& reg_members = in.ring[cur->reg_pos].members;
          if (!subset(x.members, reg_members))
            bad(c.describe(x) + " lists daemons outside its regular configuration " + id_list(reg_members));
          if (!has(x.members, in.daemon)) bad(c.describe(x) + " does not list d" + std::to_string(in.daemon));
          if (x.ordinal != cur->regular.size())
            bad(c.describe(x) + " carries ordinal " + std::to_string(x.ordinal) + ", but " +
                std::to_string(cur->regular.size()) + " messages of its ring were delivered before it");
          cur->trans_pos = p;
          cur->trans_members = x.members;
          break;
        }
        case DeliveryKind::kMessage: {
          keys.push_back(ItemKey{DeliveryKind::kMessage, x.nonce, 0});
          if (!cur) {
            bad(c.describe(x) + " before any regular configuration");
            break;
          }
          if (x.ring_id != cur->ring) {
            bad(c.describe(x) + " delivered in regular configuration " + ring_name(cur->ring));
            break;
          }
          if (x.packet_seq < last_seq)
            bad("total order: " + c.describe(x) + " after a message of packet " + std::to_string(last_seq));
          if (x.ordinal != cur->regular.size() + cur->transitional.size() + 1)
            bad(c.describe(x) + " carries ordinal " + std::to_string(x.ordinal) + ", but it is message #" +
                std::to_string(cur->regular.size() + cur->transitional.size() + 1) + " of its ring here");
          last_seq = x.packet_seq;
          (cur->trans_pos ? cur->transitional : cur->regular).push_back(x.nonce);
          uint32_t from = nonce_instance(x.nonce);
          uint64_t k = nonce_submission(x.nonce);
          if (from < 1 || from > n || k < 1 || k > c.inst(from).submitted.size()) {
            bad("no creation: " + c.describe(x) + " was never submitted");
            break;
          }
          const Submission& sub = c.inst(from).submitted[k - 1];
          if (sub.fingerprint != x.fingerprint || sub.service != x.service) {
            bad("no creation: " + c.describe(x) + " differs from " + c.describe_nonce(x.nonce));
            break;
          }
          if (c.inst(from).daemon != x.origin) {
            bad(c.describe(x) + " names origin d" + std::to_string(x.origin) + " but " + c.iname(from) +
                " submitted it");
            break;
          }
          if (!nonces.insert(x.nonce).second) {
            bad("duplication: " + c.describe(x) + " a second time");
            break;
          }
          auto& last = last_from[from];
          if (last >= k) {
            bad("FIFO: " + c.describe(x) + " after submission #" + std::to_string(last) + " of " + c.iname(from));
            break;
          }
          last = k;
          break;
        }
      }
    }
    if (ok && !segs.empty() && segs.back().trans_pos && !segs.back().next_reg_pos) {
      c.fail("ring: " + in.name + "'s stream ends with the transitional configuration of " +
             ring_name(segs.back().ring) + " and no regular configuration after it");
      ok = false;
    }
    if (!ok) {
      c.streams_ok = false;
      continue;
    }
    for (size_t p = 0; p < keys.size(); ++p) c.position[i - 1].emplace(keys[p], p);
    for (size_t s = 0; s < segs.size(); ++s) c.by_ring[segs[s].ring].emplace_back(i, s);
  }
}

// a. Every daemon that delivers regular configuration R agrees on its members; one instance
//    per daemon at most (a restarted daemon is a new member of new rings); the transitional
//    configuration of daemons that move from R to R' together is the same, and it lists
//    exactly the daemons of R' that come from R.
void check_configurations(Ctx& c) {
  std::map<ItemKey, std::pair<uint32_t, std::vector<NodeId>>> trans;  // key -> (first, members)
  for (auto& [ring, segs] : c.by_ring) {
    const auto& [i0, s0] = segs.front();
    const auto& m0 = c.inst(i0).ring[c.segments[i0 - 1][s0].reg_pos].members;
    std::map<NodeId, uint32_t> who;
    for (auto& [i, s] : segs) {
      const Segment& seg = c.segments[i - 1][s];
      const auto& m = c.inst(i).ring[seg.reg_pos].members;
      if (m != m0)
        c.fail("ring: agreement (a): " + c.iname(i) + " delivered regular configuration " + ring_name(ring) +
               " with members " + id_list(m) + ", " + c.iname(i0) + " with " + id_list(m0));
      auto [it, fresh] = who.emplace(c.inst(i).daemon, i);
      if (!fresh)
        c.fail("ring: agreement (a): regular configuration " + ring_name(ring) + " delivered by two instances of d" +
               std::to_string(c.inst(i).daemon) + ": " + c.iname(it->second) + " and " + c.iname(i) +
               " (a ring id used twice?)");
      if (!seg.trans_pos || !seg.next_reg_pos) continue;
      ItemKey k{DeliveryKind::kTransitional, ring, seg.next_ring};
      auto t = trans.emplace(k, std::make_pair(i, seg.trans_members));
      if (!t.second && t.first->second.second != seg.trans_members)
        c.fail("ring: agreement (a): moving from " + ring_name(ring) + " to " + ring_name(seg.next_ring) + ", " +
               c.iname(i) + " delivered transitional configuration " + id_list(seg.trans_members) + ", " +
               c.iname(t.first->second.first) + " " + id_list(t.first->second.second));
    }
  }
  // The transitional set against where the members of the next ring really come from.
  for (auto& [k, first] : trans) {
    auto it = c.by_ring.find(k.b);
    if (it == c.by_ring.end()) continue;
    const auto& tset = first.second;
    for (auto& [i, s] : it->second) {
      uint64_t prev = s == 0 ? 0 : c.segments[i - 1][s - 1].ring;
      bool listed = has(tset, c.inst(i).daemon);
      if (listed != (prev == k.a))
        c.fail("ring: agreement (a): " + c.iname(first.first) + " moved from " + ring_name(k.a) + " to " +
               ring_name(k.b) + " with transitional configuration " + id_list(tset) + ", but " + c.iname(i) +
               " came to " + ring_name(k.b) + " from " + (prev ? ring_name(prev) : std::string("nowhere (start)")));
    }
  }
}

// f. One order per ring: a message has the same packet everywhere, and any two daemons deliver
//    the messages of a ring they both deliver in the same relative order. The part before the
//    transitional configuration has no gaps: of two daemons' regular parts, one is a prefix of
//    the other.
// b. Daemons that move from R to R' together deliver the same messages of R before the
//    transitional configuration, and the same after it.
// c. A SAFE message delivered in regular configuration R (before its transitional one) is
//    delivered by every member of R that delivers a later regular configuration (so, in R or
//    in R's transitional configuration), or that ends the run in R after a quiescent end.
void check_ring_order(Ctx& c) {
  for (auto& [ring, segs] : c.by_ring) {
    std::map<uint64_t, std::pair<uint64_t, uint32_t>> packet;  // nonce -> (packet, instance)
    std::vector<std::vector<uint64_t>> all(segs.size());
    std::vector<std::map<uint64_t, size_t>> where(segs.size());
    for (size_t a = 0; a < segs.size(); ++a) {
      auto [i, s] = segs[a];
      const Segment& seg = c.segments[i - 1][s];
      all[a] = seg.regular;
      all[a].insert(all[a].end(), seg.transitional.begin(), seg.transitional.end());
      for (size_t q = 0; q < all[a].size(); ++q) {
        uint64_t nonce = all[a][q];
        where[a].emplace(nonce, q);
        const RingRecord& x = c.inst(i).ring[c.position[i - 1].at(ItemKey{DeliveryKind::kMessage, nonce, 0})];
        auto [it, fresh] = packet.emplace(nonce, std::make_pair(x.packet_seq, i));
        if (!fresh && it->second.first != x.packet_seq)
          c.fail("ring: total order (f): in ring " + ring_name(ring) + " " + c.iname(i) + " delivered " +
                 c.describe_nonce(nonce) + " from packet " + std::to_string(x.packet_seq) + ", " +
                 c.iname(it->second.second) + " from packet " + std::to_string(it->second.first));
      }
    }
    for (size_t a = 0; a < segs.size(); ++a) {
      const Segment& A = c.segments[segs[a].first - 1][segs[a].second];
      const std::string& an = c.iname(A.instance);
      for (size_t b = a + 1; b < segs.size(); ++b) {
        const Segment& B = c.segments[segs[b].first - 1][segs[b].second];
        const std::string& bn = c.iname(B.instance);
        // Common messages in the same relative order.
        size_t prev = 0;
        uint64_t prev_nonce = 0;
        for (uint64_t nonce : all[a]) {
          auto it = where[b].find(nonce);
          if (it == where[b].end()) continue;
          if (prev_nonce != 0 && it->second < prev) {
            c.fail("ring: total order (f): in ring " + ring_name(ring) + " " + an + " delivered " +
                   c.describe_nonce(prev_nonce) + " before " + c.describe_nonce(nonce) + ", " + bn +
                   " the other way round");
            break;
          }
          prev = it->second;
          prev_nonce = nonce;
        }
        // No gaps before the transitional configuration.
        size_t k = std::min(A.regular.size(), B.regular.size());
        for (size_t q = 0; q < k; ++q) {
          if (A.regular[q] == B.regular[q]) continue;
          c.fail("ring: total order (f): in regular configuration " + ring_name(ring) + " " + an + "'s message #" +
                 std::to_string(q + 1) + " is " + c.describe_nonce(A.regular[q]) + ", " + bn + "'s is " +
                 c.describe_nonce(B.regular[q]));
          break;
        }
        // Moving together: the same messages.
        if (A.trans_pos && B.trans_pos && A.next_reg_pos && B.next_reg_pos && A.next_ring == B.next_ring) {
          auto same = [&](const std::vector<uint64_t>& x, const std::vector<uint64_t>& y, const char* part) {
            if (x == y) return;
            std::set<uint64_t> sx(x.begin(), x.end()), sy(y.begin(), y.end());
            std::string diff;
            for (uint64_t m : sx)
              if (!sy.count(m) && diff.empty()) diff = c.describe_nonce(m) + " only at " + an;
            for (uint64_t m : sy)
              if (!sx.count(m) && diff.empty()) diff = c.describe_nonce(m) + " only at " + bn;
            if (diff.empty()) diff = "the same messages in another order";
            c.fail("ring: same view, same messages (b): " + an + " and " + bn + " moved together from " +
                   ring_name(ring) + " to " + ring_name(A.next_ring) + " but delivered " + std::to_string(x.size()) +
                   " and " + std::to_string(y.size()) + " messages " + part + "; " + diff);
          };
          same(A.regular, B.regular, "in the regular configuration");
          same(A.transitional, B.transitional, "in the transitional configuration");
        }
      }
    }
    // c. SAFE.
    for (size_t a = 0; a < segs.size(); ++a) {
      const Segment& A = c.segments[segs[a].first - 1][segs[a].second];
      for (uint64_t nonce : A.regular) {
        const RingRecord& x =
            c.inst(A.instance).ring[c.position[A.instance - 1].at(ItemKey{DeliveryKind::kMessage, nonce, 0})];
        if (!(x.service & membership::kSafeService)) continue;
        for (size_t b = 0; b < segs.size(); ++b) {
          if (b == a) continue;
          const Segment& B = c.segments[segs[b].first - 1][segs[b].second];
          bool last = segs[b].second + 1 == c.segments[B.instance - 1].size();
          bool due = B.next_reg_pos || (last && c.alive_at_end(B.instance) && c.r.quiescent);
          if (!due || where[b].count(nonce)) continue;
          c.fail("ring: SAFE (c): " + c.iname(A.instance) + " delivered SAFE " + c.describe_nonce(nonce) +
                 " in regular configuration " + ring_name(ring) + " (packet " + std::to_string(x.packet_seq) +
                 "), but " + c.iname(B.instance) + ", a member of it, " +
                 (B.next_reg_pos ? "moved on to " + ring_name(B.next_ring) + " without it"
                                 : std::string("never delivered it")));
        }
      }
    }
  }
}

// c, on disk (the message log with durability "always"). A SAFE message to a persistent group
// delivered in regular configuration R (before its transitional one) is in the log of every
// daemon of R at the end of the run, as synced (what a crash did not take).
void check_durable(Ctx& c) {
  if (c.r.persist_groups.empty()) return;
  daemon::PersistSettings ps;
  ps.groups = c.r.persist_groups;
  for (auto& [ring, segs] : c.by_ring) {
    for (auto& [i, s] : segs) {
      const Segment& seg = c.segments[i - 1][s];
      const std::vector<NodeId>& members = c.inst(i).ring[seg.reg_pos].members;
      for (uint64_t nonce : seg.regular) {
        const RingRecord& x =
            c.inst(i).ring[c.position[i - 1].at(ItemKey{DeliveryKind::kMessage, nonce, 0})];
        if (!(x.service & membership::kSafeService)) continue;
        auto ev = c.event_of(x);
        if (!ev || ev->kind != groups::EventKind::kData) continue;
        bool persistent = false;
        for (auto& g : ev->groups) persistent |= daemon::persistent_group(ps, g);
        if (!persistent) continue;
        uint64_t fp = fingerprint(ev->payload);
        for (NodeId m : members) {
          auto lit = c.r.logs.find(m);
          bool found = false;
          if (lit != c.r.logs.end()) {
            auto& log = lit->second;
            auto it = std::lower_bound(log.begin(), log.end(), std::make_pair(x.ring_id, x.ordinal),
                                       [](const LoggedMessage& e, const std::pair<uint64_t, uint64_t>& p) {
                                         return std::make_pair(e.ring_id, e.ordinal) < p;
                                       });
            found = it != log.end() && it->ring_id == x.ring_id && it->ordinal == x.ordinal &&
                    it->payload_fingerprint == fp;
          }
          if (found) continue;
          c.fail("ring: SAFE on disk (c): " + c.iname(i) + " delivered SAFE " + c.describe_nonce(nonce) +
                 " (ring " + ring_name(ring) + " ordinal " + std::to_string(x.ordinal) +
                 ") in the regular configuration, but the log of " + c.r.daemon_names.at(m) +
                 ", a member of it, does not hold it on disk");
          return;
        }
      }
    }
  }
}

// Every message of ring R comes from a daemon instance that delivered Reg(R).
void check_senders(Ctx& c) {
  for (auto& [ring, segs] : c.by_ring) {
    std::set<uint32_t> members;
    for (auto& [i, s] : segs) members.insert(i);
    for (auto& [i, s] : segs) {
      const Segment& seg = c.segments[i - 1][s];
      for (const auto* part : {&seg.regular, &seg.transitional})
        for (uint64_t nonce : *part)
          if (!members.count(nonce_instance(nonce))) {
            c.fail("ring: no creation (f): " + c.iname(i) + " delivered " + c.describe_nonce(nonce) + " in ring " +
                   ring_name(ring) + ", which its sender never installed");
            return;
          }
    }
  }
}

// f. FIFO without gaps. A stream delivers each sending instance's submissions consecutively,
//    except for a submission the checker can excuse: it was sent in a ring this daemon never
//    delivered, or this daemon parted from the sender's daemon after it (a transitional
//    configuration without the sender's daemon, in the segment of the ring it was sent in or
//    in a later one before the next delivery from that sender). Within one configuration, and
//    across changes the two daemons go through together, extended virtual synchrony leaves no
//    room for a gap: the tail of a departed sender's messages may be missing, but nothing after
//    them in the same ring. A submission no stream delivered (its ring unknown) is excused
//    only by a parting since the previous delivery from that sender (or the stream's start).
void check_fifo_gaps(Ctx& c) {
  std::map<uint64_t, uint64_t> ring_of;  // nonce -> the ring it was delivered in (anywhere)
  for (auto& [ring, segs] : c.by_ring)
    for (auto& [i, s] : segs) {
      const Segment& seg = c.segments[i - 1][s];
      for (const auto* part : {&seg.regular, &seg.transitional})
        for (uint64_t nonce : *part) ring_of.emplace(nonce, ring);
    }
  for (uint32_t i = 1; i <= c.segments.size(); ++i) {
    const auto& segs = c.segments[i - 1];
    std::map<uint64_t, size_t> seg_of;  // ring -> its segment here
    for (size_t s = 0; s < segs.size(); ++s) seg_of.emplace(segs[s].ring, s);
    // The first segment in [lo, hi) whose transitional configuration leaves daemon d out.
    auto parted = [&](NodeId d, size_t lo, size_t hi) -> std::optional<size_t> {
      for (size_t s = lo; s < hi; ++s)
        if (segs[s].trans_pos && !has(segs[s].trans_members, d)) return s;
      return std::nullopt;
    };
    struct Last {
      uint64_t k = 0;
      size_t seg = 0;
    };
    std::map<uint32_t, Last> last;  // sending instance -> its last submission here
    bool reported = false;
    for (size_t s = 0; s < segs.size() && !reported; ++s)
      for (const auto* part : {&segs[s].regular, &segs[s].transitional})
        for (uint64_t nonce : *part) {
          if (reported) break;
          uint32_t from = nonce_instance(nonce);
          uint64_t k = nonce_submission(nonce);
          auto prev = last.find(from);
          NodeId d = c.inst(from).daemon;
          for (uint64_t m = prev == last.end() ? 1 : prev->second.k + 1; m < k; ++m) {
            uint64_t missing = make_nonce(from, m);
            auto r = ring_of.find(missing);
            size_t lo = prev == last.end() ? 0 : prev->second.seg;
            std::string why;
            if (r != ring_of.end()) {
              auto sg = seg_of.find(r->second);
              if (sg == seg_of.end()) continue;  // sent in a ring this daemon never delivered
              lo = sg->second;
              why = "it was sent in ring " + ring_name(r->second) + ", which " + c.iname(i) + " delivered";
            } else {
              why = "no stream delivered it";
            }
            if (parted(d, lo, s)) continue;
            const RingRecord& x = c.inst(i).ring[c.position[i - 1].at(ItemKey{DeliveryKind::kMessage, nonce, 0})];
            std::string changes = lo == s ? "this message comes in the same ring (a departed sender's messages may "
                                            "stop short, but none follows a missing one in that ring)"
                                          : "every transitional configuration " + c.iname(i) +
                                                " delivered in between lists d" + std::to_string(d) +
                                                " (the two never parted)";
            c.fail("ring: FIFO gap (f): " + c.iname(i) + "'s stream at index " + std::to_string(x.index) + ": " +
                   c.describe(x) +
                   (prev == last.end() ? " is the first from " + c.iname(from)
                                       : " follows submission #" + std::to_string(prev->second.k) + " of " +
                                             c.iname(from)) +
                   ", but " + c.describe_nonce(missing) + " is missing; " + why + ", and " + changes);
            reported = true;
            break;
          }
          last[from] = Last{k, s};
        }
  }
}

// Without faults every daemon delivers the same stream: configurations and messages alike.
void check_identical(Ctx& c) {
  uint32_t ref = 0;
  for (uint32_t i = 1; i <= c.keys.size(); ++i)
    if (ref == 0 || c.keys[i - 1].size() > c.keys[ref - 1].size()) ref = i;
  if (ref == 0) return;
  const auto& rk = c.keys[ref - 1];
  for (uint32_t i = 1; i <= c.keys.size(); ++i) {
    const auto& k = c.keys[i - 1];
    for (size_t p = 0; p < k.size(); ++p) {
      if (k[p] == rk[p]) continue;
      c.fail("ring: " + c.iname(i) + " and " + c.iname(ref) + " disagree at index " + std::to_string(p + 1) + ": " +
             c.describe(c.inst(i).ring[p]) + " vs " + c.describe(c.inst(ref).ring[p]));
      break;
    }
  }
}

}  // namespace

void check_streams(Ctx& c) {
  index_streams(c);
  for (auto& v : c.r.violations) c.fail("ring: " + v);
  if (!c.streams_ok) return;
  if (!c.r.faults) check_identical(c);
  check_fifo_gaps(c);
  check_configurations(c);
  check_senders(c);
  check_ring_order(c);
  check_durable(c);
}

// e. Liveness. Without faults: every daemon delivered everything submitted. With faults: after
//    the final heal every daemon runs, all end in one regular configuration of every configured
//    daemon, every message submitted after that configuration was reached is delivered by
//    every daemon, and every daemon delivered all its own messages.
void check_liveness(Ctx& c) {
  std::string when = "by t=" + std::to_string(c.r.end_at) + "us (healed at t=" + std::to_string(c.r.heal_at) + "us" +
                     (c.r.converged_at ? ", converged at t=" + std::to_string(c.r.converged_at) + "us" : "") + ")";
  if (c.r.faults && c.r.converged_at == 0)
    c.fail("liveness (e): the daemons never formed one ring of all after the final heal " + when);
  std::map<NodeId, uint32_t> last;  // daemon -> its last instance
  for (uint32_t i = 1; i <= c.r.instances.size(); ++i) last[c.inst(i).daemon] = i;
  uint64_t final_ring = 0;
  uint32_t final_by = 0;
  for (auto& [daemon, i] : last) {
    const Instance& in = c.inst(i);
    if (in.crashed) {
      c.fail("liveness (e): " + in.name + " is down at the end");
      continue;
    }
    if (!c.r.faults) continue;
    uint64_t ring = 0;
    std::vector<NodeId> members;
    for (auto& x : in.ring)
      if (x.kind == DeliveryKind::kRegular) {
        ring = x.ring_id;
        members = x.members;
      }
    if (members != c.r.daemons)
      c.fail("liveness (e): " + in.name + " ends in regular configuration " + ring_name(ring) + " " +
             id_list(members) + ", not one of every daemon " + when);
    else if (final_by != 0 && ring != final_ring)
      c.fail("liveness (e): " + in.name + " ends in regular configuration " + ring_name(ring) + ", " +
             c.iname(final_by) + " in " + ring_name(final_ring));
    if (final_by == 0) {
      final_ring = ring;
      final_by = i;
    }
  }
  for (auto& [daemon, i] : last) {
    const Instance& in = c.inst(i);
    if (in.crashed) continue;
    std::set<uint64_t> got;
    for (auto& x : in.ring)
      if (x.message()) got.insert(x.nonce);
    std::map<uint32_t, size_t> missing;
    uint64_t first = 0;
    size_t want = 0;
    for (uint32_t j = 1; j <= c.r.instances.size(); ++j) {
      const auto& subs = c.inst(j).submitted;
      for (size_t k = 0; k < subs.size(); ++k) {
        // Without faults everything is due everywhere; with faults, the daemon's own messages
        // and everything submitted once the final ring was reached.
        bool due = !c.r.faults || j == i || (c.r.converged_at != 0 && subs[k].at >= c.r.converged_at);
        if (!due) continue;
        ++want;
        uint64_t nonce = make_nonce(j, k + 1);
        if (got.count(nonce)) continue;
        ++missing[j];
        if (first == 0) first = nonce;
      }
    }
    if (missing.empty()) continue;
    std::string m;
    size_t total = 0;
    for (auto& [j, n] : missing) {
      m += (m.empty() ? "" : ", ") + std::to_string(n) + " from " + c.iname(j);
      total += n;
    }
    c.fail("liveness (e): " + in.name + " delivered " + std::to_string(want - total) + " of the " + std::to_string(want) +
           " messages due " + when + " (missing " + m + "); first missing: " + c.describe_nonce(first));
  }
  for (auto& [client, n] : c.r.unsent)
    c.fail("liveness: " + client + " still had " + std::to_string(n) + " messages its daemon's ring never accepted " + when);
}

}  // namespace detail

Verdict check(const Records& r) {
  detail::Ctx c(r);
  detail::check_streams(c);
  bool ring_ok = c.failures() == 0;
  detail::check_clients(c);
  if (ring_ok) detail::check_routing(c);
  detail::check_liveness(c);
  c.v.ok = c.v.failures.empty();
  if (!c.v.ok) c.v.reason = c.v.failures.front();
  return c.v;
}

}  // namespace agent::sim
