#include "tests/sim/checker.h"

#include <algorithm>
#include <map>
#include <set>

#include "groups/event_codec.h"
#include "groups/group_state.h"
#include "tests/sim/rng.h"
#include "transport/names.h"

namespace agent::sim {

namespace svc = proto::service;
using groups::Event;
using groups::EventKind;

namespace {

constexpr size_t kMaxFailures = 30;

std::string list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out + "]";
}

std::string describe(const Event& e) {
  switch (e.kind) {
    case EventKind::kJoin: return "join " + e.member + " " + e.group;
    case EventKind::kLeave: return "leave " + e.member + " " + e.group;
    case EventKind::kDisconnect: return "disconnect " + e.member;
    case EventKind::kData:
      return "data " + MsgId{e.member, e.msg_type}.str() + " " + service_name(e.service) + " to " +
             list(e.groups) + " (" + std::to_string(e.payload.size()) + " bytes)";
  }
  return "?";
}

// The checker's own group table: what GroupState should do, written independently of it.
struct Model {
  std::map<std::string, std::set<std::string>> groups;
  std::map<std::string, std::set<std::string>> of;  // member -> its groups
};

ClientRecord notice(uint32_t service, const std::string& group, const std::set<std::string>& members,
                    const std::string& changed, uint64_t index) {
  ClientRecord r;
  r.index = index;
  r.membership.service = service;
  r.membership.group = group;
  r.membership.members.assign(members.begin(), members.end());
  r.membership.changed = changed;
  r.membership.view.seq = index;
  return r;
}

// The model does not know the configuration id or the vs-sets' shape; it checks the rest.
bool model_matches(const ClientRecord& expected, const ClientRecord& actual) {
  if (expected.data || actual.data) return expected == actual;
  const auto& e = expected.membership;
  const auto& a = actual.membership;
  return expected.index == actual.index && e.service == a.service && e.group == a.group &&
         e.view.seq == a.view.seq && e.members == a.members && e.changed == a.changed;
}

class Checker {
 public:
  explicit Checker(const Records& r) : r_(r) {}

  Verdict run() {
    ring_order();
    ring_origins();
    for (auto& v : r_.violations) fail("ring: " + v);
    bool ring_ok = v_.failures.empty();
    decode_order();
    client_safety();
    client_order();
    if (ring_ok && order_ok_) {
      model_routing();
      replay();
    }
    liveness();
    v_.ok = v_.failures.empty();
    if (!v_.ok) v_.reason = v_.failures.front();
    return v_;
  }

 private:
  void fail(std::string s) {
    if (v_.failures.size() < kMaxFailures) v_.failures.push_back(std::move(s));
  }
  const std::string& dname(NodeId d) const { return r_.daemon_names.at(d); }
  std::string describe_fp(uint64_t fp) const {
    auto it = r_.payloads.find(fp);
    if (it == r_.payloads.end()) return "a payload no client submitted";
    auto ev = groups::decode_event(it->second);
    return ev ? describe(*ev) : "an undecodable event";
  }
  std::string describe_ring(const RingRecord& x) const {
    return "{origin d" + std::to_string(x.origin) + ", " + service_name(x.service) + ", " +
           describe_fp(x.fingerprint) + "}";
  }
  size_t limit_of(const std::string& client) const {
    return r_.ring.at(r_.clients.at(client)).size();
  }

  // Every daemon delivers indices 1, 2, 3... and the same message at each: the longest
  // sequence is the reference, every other one must be a prefix of it.
  void ring_order() {
    for (NodeId d : r_.daemons)
      if (ref_ == 0 || r_.ring.at(d).size() > r_.ring.at(ref_).size()) ref_ = d;
    const auto& ref = r_.ring.at(ref_);
    for (NodeId d : r_.daemons) {
      const auto& mine = r_.ring.at(d);
      for (size_t i = 0; i < mine.size(); ++i) {
        const RingRecord& x = mine[i];
        if (x.index != i + 1) {
          fail("ring: " + dname(d) + "'s delivery #" + std::to_string(i + 1) + " carries index " +
               std::to_string(x.index) + " (indices must run 1, 2, 3...)");
          break;
        }
        const RingRecord& y = ref[i];
        if (x.origin != y.origin || x.service != y.service || x.fingerprint != y.fingerprint) {
          fail("ring: " + dname(d) + " and " + dname(ref_) + " disagree at index " +
               std::to_string(i + 1) + ": " + describe_ring(x) + " vs " + describe_ring(y));
          break;
        }
      }
    }
  }

  // Per origin, a daemon delivers exactly that origin's submissions, each once, in the order
  // they were submitted: no creation, no duplication, FIFO per daemon.
  void ring_origins() {
    std::map<uint64_t, std::pair<NodeId, size_t>> where;  // fingerprint -> (origin, position)
    for (auto& [origin, subs] : r_.submitted)
      for (size_t k = 0; k < subs.size(); ++k) where.emplace(subs[k].fingerprint, std::make_pair(origin, k));
    for (NodeId d : r_.daemons) {
      std::map<NodeId, size_t> next;
      for (const RingRecord& x : r_.ring.at(d)) {
        const auto& subs = r_.submitted.at(x.origin);
        size_t k = next[x.origin]++;
        if (k < subs.size() && subs[k].fingerprint == x.fingerprint && subs[k].service == x.service)
          continue;
        std::string at = dname(d) + " delivered " + describe_ring(x) + " at index " + std::to_string(x.index);
        auto w = where.find(x.fingerprint);
        if (w == where.end()) {
          fail("ring: no creation: " + at + ", which was never submitted");
        } else if (w->second.first != x.origin) {
          fail("ring: " + at + ", but it was submitted by d" + std::to_string(w->second.first));
        } else if (w->second.second < k) {
          fail("ring: duplication: " + at + ", submission #" + std::to_string(w->second.second + 1) +
               " of its origin, a second time");
        } else if (k < subs.size() && subs[k].fingerprint == x.fingerprint) {
          fail("ring: " + at + " with service " + service_name(x.service) + ", submitted as " +
               service_name(subs[k].service));
        } else {
          fail("ring: FIFO: " + at + ", submission #" + std::to_string(w->second.second + 1) +
               " of its origin, but #" + std::to_string(k + 1) + " was due");
        }
        break;
      }
    }
  }

  void decode_order() {
    for (const RingRecord& x : r_.ring.at(ref_)) {
      auto it = r_.payloads.find(x.fingerprint);
      std::optional<Event> ev;
      if (it != r_.payloads.end()) ev = groups::decode_event(it->second);
      if (!ev) {
        order_ok_ = false;
        return;
      }
      order_.push_back(std::move(*ev));
    }
  }

  // What each client got, on its own: only what was sent, once, FIFO per sender, never before
  // a message its sender had already seen when sending.
  void client_safety() {
    for (auto& [client, recs] : r_.received) {
      std::map<MsgId, uint64_t> seen;
      std::map<std::string, int16_t> last;
      uint64_t last_index = 0;
      for (const ClientRecord& c : recs) {
        if (c.index < last_index) {
          fail("clients: " + client + " got " + c.str() + " after index " + std::to_string(last_index));
          break;
        }
        last_index = c.index;
        if (!c.data) continue;
        auto s = r_.sent.find(c.id);
        if (s == r_.sent.end()) {
          fail("clients: no creation: " + client + " got " + c.str() + ", which no client sent");
          break;
        }
        const SentMessage& m = s->second;
        if (m.service != c.service || m.groups != c.groups ||
            m.payload_fingerprint != c.payload_fingerprint || m.payload_bytes != c.payload_bytes) {
          fail("clients: no creation: " + client + " got " + c.str() + ", which differs from what " +
               m.id.sender + " sent (" + service_name(m.service) + " to " + list(m.groups) + ", " +
               std::to_string(m.payload_bytes) + " bytes)");
          break;
        }
        if (!seen.emplace(c.id, c.index).second) {
          fail("clients: duplication: " + client + " got " + c.id.str() + " twice (indices " +
               std::to_string(seen[c.id]) + " and " + std::to_string(c.index) + ")");
          break;
        }
        auto l = last.find(c.id.sender);
        if (l != last.end() && l->second >= c.id.counter) {
          fail("clients: FIFO: " + client + " got " + c.id.str() + " after " +
               MsgId{c.id.sender, l->second}.str());
          break;
        }
        last[c.id.sender] = c.id.counter;
        if (c.index <= m.seen_index) {
          fail("clients: causal: " + c.id.str() + " was sent after its sender had received index " +
               std::to_string(m.seen_index) + ", but " + client + " got it at index " +
               std::to_string(c.index));
          break;
        }
      }
    }
  }

  // Any two clients get the messages they both get in the same relative order.
  void client_order() {
    std::vector<std::pair<const std::string*, std::map<MsgId, size_t>>> pos;
    for (auto& [client, recs] : r_.received) {
      std::map<MsgId, size_t> p;
      for (const ClientRecord& c : recs)
        if (c.data) p.emplace(c.id, p.size());
      pos.emplace_back(&client, std::move(p));
    }
    for (size_t a = 0; a < pos.size(); ++a) {
      // a's messages in a's order
      std::vector<MsgId> seq(pos[a].second.size());
      for (auto& [id, i] : pos[a].second) seq[i] = id;
      for (size_t b = a + 1; b < pos.size(); ++b) {
        const auto& pb = pos[b].second;
        const MsgId* prev = nullptr;
        size_t prev_pos = 0;
        for (const MsgId& id : seq) {
          auto it = pb.find(id);
          if (it == pb.end()) continue;
          if (prev && it->second < prev_pos) {
            fail("clients: one order: " + *pos[a].first + " got " + prev->str() + " before " +
                 id.str() + ", " + *pos[b].first + " got them the other way round");
            return;
          }
          prev = &id;
          prev_pos = it->second;
        }
      }
    }
  }

  // The independent model, replayed over the agreed order up to what each daemon delivered.
  void model_routing() {
    Model m;
    std::map<std::string, std::vector<ClientRecord>> expected;
    uint64_t index = 0;
    auto emit = [&](const std::string& client, ClientRecord rec) {
      auto it = r_.clients.find(client);
      if (it != r_.clients.end() && index <= r_.ring.at(it->second).size())
        expected[client].push_back(std::move(rec));
    };
    auto remove = [&](const std::string& member, const std::string& group, uint32_t cause) {
      auto& g = m.groups[group];
      g.erase(member);
      if (cause == svc::kCausedByLeave) {
        auto& mine = m.of[member];
        mine.erase(group);
        if (mine.empty()) m.of.erase(member);
        emit(member, notice(svc::kCausedByLeave, group, {}, member, index));
      }
      if (g.empty()) {
        m.groups.erase(group);
        return;
      }
      for (auto& x : g) emit(x, notice(svc::kRegularMembership | cause, group, g, member, index));
    };
    for (const Event& e : order_) {
      ++index;
      switch (e.kind) {
        case EventKind::kJoin: {
          auto& g = m.groups[e.group];
          if (!g.insert(e.member).second) break;
          m.of[e.member].insert(e.group);
          for (auto& x : g)
            emit(x, notice(svc::kRegularMembership | svc::kCausedByJoin, e.group, g, e.member, index));
          break;
        }
        case EventKind::kLeave: {
          auto g = m.groups.find(e.group);
          if (g != m.groups.end() && g->second.count(e.member))
            remove(e.member, e.group, svc::kCausedByLeave);
          break;
        }
        case EventKind::kDisconnect: {
          auto it = m.of.find(e.member);
          if (it == m.of.end()) break;
          std::set<std::string> gs = std::move(it->second);
          m.of.erase(it);
          for (auto& g : gs) remove(e.member, g, svc::kCausedByDisconnect);
          break;
        }
        case EventKind::kData: {
          std::set<std::string> to;
          for (auto& g : e.groups) {
            if (names::is_private_group(g)) {
              to.insert(g);
            } else if (auto it = m.groups.find(g); it != m.groups.end()) {
              to.insert(it->second.begin(), it->second.end());
            }
          }
          if (e.service & svc::kSelfDiscard) to.erase(e.member);
          ClientRecord rec;
          rec.index = index;
          rec.data = true;
          rec.id = MsgId{e.member, e.msg_type};
          rec.service = e.service;
          rec.groups = e.groups;
          rec.payload_fingerprint = fingerprint(e.payload);
          rec.payload_bytes = e.payload.size();
          for (auto& c : to) emit(c, rec);
          break;
        }
      }
    }
    for (auto& [client, got] : r_.received) {
      const auto& want = expected[client];
      size_t n = std::min(want.size(), got.size());
      size_t i = 0;
      while (i < n && model_matches(want[i], got[i])) ++i;
      if (i == want.size() && i == got.size()) continue;
      std::string at = client + "'s delivery #" + std::to_string(i + 1);
      if (i < want.size() && want[i].data && want[i].id.sender == client) {
        bool ever = false;
        for (auto& g : got) ever |= g.data && g.id == want[i].id;
        if (!ever) {
          fail("routing: self-delivery: " + client + " never got its own " + want[i].str());
          continue;
        }
      }
      fail("routing: " + at + " should be " + (i < want.size() ? want[i].str() : "nothing more") +
           " but is " + (i < got.size() ? got[i].str() : "missing"));
    }
  }

  // A fresh GroupState per daemon, fed the agreed order, must reproduce every client's stream.
  void replay() {
    std::map<std::string, std::vector<ClientRecord>> expected;
    for (NodeId d : r_.daemons) {
      groups::GroupState gs(dname(d));
      size_t n = r_.ring.at(d).size();
      std::vector<groups::Delivery> out;
      for (size_t i = 0; i < n; ++i) {
        out.clear();
        gs.apply(i + 1, order_[i], out);
        for (auto& del : out) {
          ClientRecord rec;
          rec.index = i + 1;
          if (del.data) {
            rec.data = true;
            rec.id = MsgId{del.data->member, del.data->msg_type};
            rec.service = del.data->service;
            rec.groups = del.data->groups;
            rec.payload_fingerprint = fingerprint(del.data->payload);
            rec.payload_bytes = del.data->payload.size();
          } else {
            rec.membership = del.membership;
          }
          for (auto& to : del.recipients) expected[to].push_back(rec);
        }
      }
    }
    for (auto& [client, got] : r_.received) {
      const auto& want = expected[client];
      size_t i = 0;
      while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
      if (i == want.size() && i == got.size()) continue;
      fail("replay: " + client + "'s delivery #" + std::to_string(i + 1) + " is " +
           (i < got.size() ? got[i].str() : "missing") + ", a fresh replay of the agreed order gives " +
           (i < want.size() ? want[i].str() : "nothing more"));
    }
  }

  // After the heal, everything submitted reaches every daemon; nothing stays unsubmitted.
  void liveness() {
    std::string when = "by t=" + std::to_string(r_.end_at) + "us (healed at t=" +
                       std::to_string(r_.heal_at) + "us)";
    for (NodeId d : r_.daemons) {
      std::map<NodeId, size_t> got;
      for (const RingRecord& x : r_.ring.at(d)) ++got[x.origin];
      size_t want = 0, have = 0;
      std::string missing, first;
      for (auto& [origin, subs] : r_.submitted) {
        size_t n = std::min(got[origin], subs.size());
        want += subs.size();
        have += n;
        if (n == subs.size()) continue;
        missing += (missing.empty() ? "" : ", ") + std::to_string(subs.size() - n) + " from " + dname(origin);
        if (first.empty())
          first = describe_fp(subs[n].fingerprint) + " submitted at " + dname(origin) + " at t=" +
                  std::to_string(subs[n].at) + "us";
      }
      if (have == want) continue;
      fail("liveness: " + dname(d) + " delivered " + std::to_string(have) + " of the " +
           std::to_string(want) + " messages submitted " + when + " (missing " + missing +
           "); first missing: " + first);
    }
    for (auto& [client, n] : r_.unsent)
      fail("liveness: " + client + " still had " + std::to_string(n) +
           " messages its daemon's ring never accepted " + when);
  }

  const Records& r_;
  Verdict v_;
  NodeId ref_ = 0;
  std::vector<Event> order_;  // the agreed order, decoded: index i is order_[i - 1]
  bool order_ok_ = true;
};

}  // namespace

Verdict check(const Records& r) { return Checker(r).run(); }

}  // namespace agent::sim
