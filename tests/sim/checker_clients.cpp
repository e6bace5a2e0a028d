// The checker's client part: what each client got on its own (no creation, no duplication,
// FIFO per sender, causal, membership consistent with data), and against the other clients
// (one order; the same messages for clients that move from one view to the next together).
#include <algorithm>

#include "groups/event_codec.h"
#include "tests/sim/checker_internal.h"
#include "tests/sim/nonce.h"
#include "transport/names.h"

namespace agent::sim::detail {

namespace svc = proto::service;

namespace {

// What the client checks need of the submitted events, each payload decoded once.
class Submitted {
 public:
  struct Summary {
    groups::EventKind kind = groups::EventKind::kData;
    std::string member, group;
    int16_t msg_type = 0;
  };

  explicit Submitted(const Ctx& c) : c_(c) {
    for (uint32_t j = 1; j <= c.r.instances.size(); ++j) {
      const auto& subs = c.inst(j).submitted;
      for (size_t k = 0; k < subs.size(); ++k) {
        const Summary* e = summary(subs[k].fingerprint);
        if (e && e->kind == groups::EventKind::kData)
          nonce_of_.emplace(MsgId{e->member, e->msg_type}, make_nonce(j, k + 1));
      }
    }
  }
  // nullptr: an unknown or undecodable payload.
  const Summary* summary(uint64_t fingerprint) {
    auto it = events_.find(fingerprint);
    if (it != events_.end()) return &it->second;
    auto pl = c_.r.payloads.find(fingerprint);
    if (pl == c_.r.payloads.end()) return nullptr;
    std::string_view payload;  // not copied
    auto ev = groups::decode_event(pl->second, &payload);
    if (!ev) return nullptr;
    return &events_.emplace(fingerprint, Summary{ev->kind, ev->member, ev->group, ev->msg_type}).first->second;
  }
  // The nonce of the accepted submission that carries a data message (nullopt: never accepted).
  std::optional<uint64_t> nonce(const MsgId& id) const {
    auto it = nonce_of_.find(id);
    if (it == nonce_of_.end()) return std::nullopt;
    return it->second;
  }

 private:
  const Ctx& c_;
  std::map<uint64_t, Summary> events_;
  std::map<MsgId, uint64_t> nonce_of_;
};

// Only what was sent, once, FIFO per sender, never before what its sender had already seen
// when sending (the item the sender had last received, where the receiver's daemon delivers
// that item too).
void client_safety(Ctx& c, const Submitted& subs) {
  for (auto& [client, recs] : c.r.received) {
    uint32_t mine = c.r.clients.at(client);
    std::map<MsgId, uint64_t> seen;
    std::map<std::string, int16_t> last;
    uint64_t last_index = 0;
    for (const ClientRecord& x : recs) {
      if (x.index < last_index) {
        c.fail("clients: " + client + " got " + x.str() + " after index " + std::to_string(last_index));
        break;
      }
      last_index = x.index;
      if (!x.data) continue;
      auto s = c.r.sent.find(x.id);
      if (s == c.r.sent.end()) {
        c.fail("clients: no creation: " + client + " got " + x.str() + ", which no client sent");
        break;
      }
      const SentMessage& m = s->second;
      if (m.service != x.service || m.groups != x.groups || m.payload_fingerprint != x.payload_fingerprint ||
          m.payload_bytes != x.payload_bytes) {
        c.fail("clients: no creation: " + client + " got " + x.str() + ", which differs from what " + m.id.sender +
               " sent (" + service_name(m.service) + " to " + list(m.groups) + ", " +
               std::to_string(m.payload_bytes) + " bytes)");
        break;
      }
      if (!seen.emplace(x.id, x.index).second) {
        c.fail("clients: duplication: " + client + " got " + x.id.str() + " twice (indices " +
               std::to_string(seen[x.id]) + " and " + std::to_string(x.index) + ")");
        break;
      }
      auto l = last.find(x.id.sender);
      if (l != last.end() && l->second >= x.id.counter) {
        c.fail("clients: FIFO: " + client + " got " + x.id.str() + " after " + MsgId{x.id.sender, l->second}.str());
        break;
      }
      last[x.id.sender] = x.id.counter;
      if (m.seen_index == 0 || !c.streams_ok) continue;
      auto key = c.key_at(m.instance, m.seen_index);
      if (!key || mine > c.position.size()) continue;
      auto p = c.position[mine - 1].find(*key);
      if (p == c.position[mine - 1].end()) {
        // The receiver's daemon never had the predecessor. It need not have when the message
        // came in a later ring than the predecessor's, and the receiver's daemon was never in
        // that ring or did not move on from it together with the sender's daemon (into the
        // same next ring): only daemons that move together deliver the same items of a ring.
        const RingRecord& k = c.inst(m.instance).ring[m.seen_index - 1];
        auto segment = [&](uint32_t i) -> const Segment* {
          auto b = c.by_ring.find(k.ring_id);
          if (b != c.by_ring.end())
            for (auto& [j, s] : b->second)
              if (j == i) return &c.segments[j - 1][s];
          return nullptr;
        };
        auto nonce = subs.nonce(x.id);
        auto q = nonce ? c.position[mine - 1].find(ItemKey{DeliveryKind::kMessage, *nonce, 0})
                       : c.position[mine - 1].end();
        if (q == c.position[mine - 1].end()) continue;  // (no creation judges that)
        uint64_t ring_m = c.inst(mine).ring[q->second].ring_id;
        const Segment* here = segment(mine);
        const Segment* there = segment(m.instance);
        bool together =
            here && there && here->next_reg_pos && there->next_reg_pos && here->next_ring == there->next_ring;
        if (ring_m != k.ring_id && !together) continue;
        c.fail("clients: causal: " + x.id.str() + " was sent after its sender had received index " +
               std::to_string(m.seen_index) + " of " + c.iname(m.instance) + " (" + c.describe(k) + "), which " +
               c.iname(mine) + " never delivered, though " +
               (ring_m == k.ring_id ? "it delivered " + x.id.str() + " in that ring (" + ring_name(ring_m) + ")"
                                    : "it moved on from ring " + ring_name(k.ring_id) + " to " +
                                          ring_name(here->next_ring) + " together with " + c.iname(m.instance)) +
               "; " + client + " got it at index " + std::to_string(x.index));
        break;
      }
      if (x.index <= p->second + 1) {
        c.fail("clients: causal: " + x.id.str() + " was sent after its sender had received index " +
               std::to_string(m.seen_index) + " of " + c.iname(m.instance) + ", which is index " +
               std::to_string(p->second + 1) + " at " + c.iname(mine) + ", but " + client + " got it at index " +
               std::to_string(x.index));
        break;
      }
    }
  }
}

// FIFO without gaps, per receiving client and sending client: the data a client gets from one
// sender carries consecutive counters, except for a message the checker can excuse: a
// SELF_DISCARD message of the client itself; one its sender's daemon never accepted (lost with
// a crash); one the client's daemon instance never delivered (the ring-level FIFO gap check
// judges that); one addressed neither to the client nor to a group the client was in where its
// daemon delivered it (the client's own joins, leaves and disconnects before that point in
// that daemon's stream decide: data reaches a client through its daemon's local table, which
// only they change, in stream order, also when a state exchange holds events back).
void client_fifo_gaps(Ctx& c, Submitted& subs) {
  if (!c.streams_ok) return;
  // Per instance, per local client: its groups after each of its own membership events, by
  // stream position.
  std::map<uint32_t, std::map<std::string, std::vector<std::pair<size_t, std::set<std::string>>>>> local;
  for (auto& [client, i] : c.r.clients) local[i][client];
  for (auto& [i, clients] : local) {
    const auto& ring = c.inst(i).ring;
    for (size_t p = 0; p < ring.size(); ++p) {
      if (!ring[p].message()) continue;
      const Submitted::Summary* e = subs.summary(ring[p].fingerprint);
      if (!e || e->kind == groups::EventKind::kData || e->kind == groups::EventKind::kState) continue;
      auto cl = clients.find(e->member);
      if (cl == clients.end()) continue;
      std::set<std::string> now = cl->second.empty() ? std::set<std::string>{} : cl->second.back().second;
      if (e->kind == groups::EventKind::kJoin) now.insert(e->group);
      else if (e->kind == groups::EventKind::kLeave) now.erase(e->group);
      else now.clear();  // disconnect
      cl->second.emplace_back(p, std::move(now));
    }
  }
  for (auto& [client, recs] : c.r.received) {
    uint32_t mine = c.r.clients.at(client);
    const auto& timeline = local[mine][client];
    std::map<std::string, int16_t> last;
    for (const ClientRecord& x : recs) {
      if (!x.data) continue;
      int16_t& prev = last[x.id.sender];
      for (int16_t n = static_cast<int16_t>(prev + 1); n > 0 && n < x.id.counter; ++n) {
        MsgId id{x.id.sender, n};
        auto s = c.r.sent.find(id);
        if (s == c.r.sent.end()) continue;  // (no creation judges the sender's counters)
        const SentMessage& m = s->second;
        if ((m.service & svc::kSelfDiscard) && id.sender == client) continue;
        auto nonce = subs.nonce(id);
        if (!nonce) continue;  // never accepted by a ring
        auto p = c.position[mine - 1].find(ItemKey{DeliveryKind::kMessage, *nonce, 0});
        if (p == c.position[mine - 1].end()) continue;  // the ring level judges this
        // Nobody there to get it: from where the ring delivered it to where the group layer
        // handed it on (at the latest where the later one was).
        if (c.r.without_session_within(client, p->second, x.index)) continue;
        auto t = std::lower_bound(timeline.begin(), timeline.end(), p->second,
                                  [](const auto& e, size_t pos) { return e.first < pos; });
        static const std::set<std::string> kNone;
        const std::set<std::string>& in = t == timeline.begin() ? kNone : std::prev(t)->second;
        std::string through;
        for (auto& g : m.groups)
          if (through.empty() && (g == client || in.count(g))) through = g;
        if (through.empty()) continue;  // addressed to none of its groups there
        c.fail("clients: FIFO gap: " + client + " got " + x.id.str() +
               (prev == 0 ? " as the first from " + x.id.sender : " after " + MsgId{x.id.sender, prev}.str()) +
               " but not " + id.str() + ", which " + c.iname(mine) + " delivered at index " +
               std::to_string(p->second + 1) + " while " + client +
               (through == client ? std::string(" was its addressee") : " was in " + through));
        return;
      }
      prev = x.id.counter;
    }
  }
}

// Any two clients get the messages they both get in the same relative order.
void client_order(Ctx& c) {
  std::vector<std::pair<const std::string*, std::map<MsgId, size_t>>> pos;
  for (auto& [client, recs] : c.r.received) {
    std::map<MsgId, size_t> p;
    for (const ClientRecord& x : recs)
      if (x.data) p.emplace(x.id, p.size());
    pos.emplace_back(&client, std::move(p));
  }
  for (size_t a = 0; a < pos.size(); ++a) {
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
          c.fail("clients: one order: " + *pos[a].first + " got " + prev->str() + " before " + id.str() + ", " +
                 *pos[b].first + " got them the other way round");
          return;
        }
        prev = &id;
        prev_pos = it->second;
      }
    }
  }
}

bool is_view(const proto::Membership& m) {
  return (m.service & (svc::kRegularMembership | svc::kTransitional)) != 0;
}

// The group layer marks where a client's own disconnect took effect (agentd hands this to no
// session: the name is not reused before it).
bool own_disconnect(const proto::Membership& m, const std::string& client) {
  return m.service == svc::kCausedByDisconnect && m.changed == client;
}

// d. Membership consistent with data: every view a client gets lists the client; a client's
//    first view of a group is its own join; a notice without a view is the client's own leave
//    of a group it was in; data reaches a client only through its private group or a group it
//    is in (from its view of that group up to its own leave or disconnect).
void membership_consistency(Ctx& c) {
  for (auto& [client, recs] : c.r.received) {
    std::set<std::string> in;
    for (const ClientRecord& x : recs) {
      if (x.data) {
        bool through = false;
        for (auto& g : x.groups) through |= g == client || in.count(g) != 0;
        if (!through) {
          c.fail("clients: membership (d): " + client + " got " + x.str() + " but is in none of its groups");
          break;
        }
        continue;
      }
      const auto& m = x.membership;
      if (own_disconnect(m, client)) {  // its session ended: a new one starts with no groups
        in.clear();
        continue;
      }
      if (!is_view(m)) {
        if (m.service != svc::kCausedByLeave || m.changed != client || !in.count(m.group)) {
          c.fail("clients: membership (d): " + client + " got " + x.str() +
                 ", which is neither a view nor its own leave of a group it is in");
          break;
        }
        in.erase(m.group);
        continue;
      }
      if (!std::binary_search(m.members.begin(), m.members.end(), client)) {
        c.fail("clients: membership (d): " + client + " got " + x.str() + ", a view without itself");
        break;
      }
      if (!in.count(m.group) && !((m.service & svc::kCausedByJoin) && m.changed == client)) {
        c.fail("clients: membership (d): " + client + "'s first view of " + m.group + " is " + x.str() +
               ", not its own join");
        break;
      }
      in.insert(m.group);
    }
  }
}

// b, for clients. A view is named by its group, its id (ring, ordinal), its kind and its
// members; two clients that both go from view V of a group straight to view V' deliver the
// same data messages of that group in V (SELF_DISCARD messages of either of the two aside).
// And a view id names one view: every client that gets a view with that id of that group gets
// the same kind and members.
void same_view_same_messages(Ctx& c) {
  struct ViewName {
    std::string group;
    uint32_t service = 0;
    uint64_t config = 0, seq = 0;
    std::vector<std::string> members;
    bool operator<(const ViewName& o) const {
      return std::tie(group, service, config, seq, members) < std::tie(o.group, o.service, o.config, o.seq, o.members);
    }
  };
  struct Seen {
    std::string client;
    std::set<MsgId> messages;
    std::string from, to;  // the two views, for the report
  };
  std::map<std::pair<ViewName, ViewName>, Seen> first;
  std::map<std::tuple<std::string, uint64_t, uint64_t>, std::pair<std::string, ClientRecord>> ids;
  auto unshared = [&](const MsgId& id, const std::string& a, const std::string& b) {
    auto s = c.r.sent.find(id);
    return s != c.r.sent.end() && (s->second.service & svc::kSelfDiscard) && (id.sender == a || id.sender == b);
  };
  bool ids_ok = true;
  for (auto& [client, recs] : c.r.received) {
    std::map<std::string, std::pair<ViewName, std::pair<std::set<MsgId>, std::string>>> current;
    for (const ClientRecord& x : recs) {
      if (x.data) {
        for (auto& g : x.groups) {
          auto it = current.find(g);
          if (it != current.end()) it->second.second.first.insert(x.id);
        }
        continue;
      }
      const auto& m = x.membership;
      if (own_disconnect(m, client)) {
        current.clear();
        continue;
      }
      if (!is_view(m)) {
        current.erase(m.group);
        continue;
      }
      ViewName v{m.group, m.service, m.view.config, m.view.seq, m.members};
      auto [id, fresh_id] = ids.emplace(std::make_tuple(m.group, m.view.config, m.view.seq), std::make_pair(client, x));
      if (!fresh_id && ids_ok) {
        const auto& o = id->second.second.membership;
        if (o.service != m.service || o.members != m.members) {
          c.fail("clients: view ids: " + client + " got " + x.str() + ", " + id->second.first + " got " +
                 id->second.second.str() + ": one view id, two views");
          ids_ok = false;  // one report is enough
        }
      }
      auto it = current.find(m.group);
      if (it != current.end()) {
        auto [f, fresh] = first.emplace(std::make_pair(it->second.first, v),
                                        Seen{client, it->second.second.first, it->second.second.second, x.str()});
        if (!fresh) {
          const Seen& o = f->second;
          const auto& mine_msgs = it->second.second.first;
          std::string diff;
          for (auto& mid : mine_msgs)
            if (!o.messages.count(mid) && !unshared(mid, client, o.client) && diff.empty())
              diff = mid.str() + " only at " + client;
          for (auto& mid : o.messages)
            if (!mine_msgs.count(mid) && !unshared(mid, client, o.client) && diff.empty())
              diff = mid.str() + " only at " + o.client;
          if (!diff.empty())
            c.fail("clients: same view, same messages (b): " + client + " and " + o.client + " both went from " +
                   o.from + " to " + o.to + " but delivered different messages of " + m.group + " in between: " + diff);
        }
      }
      current[m.group] = {v, {{}, x.str()}};
    }
  }
}

// d, for views. A view lists only members on daemons of the configuration in force where it
// is delivered: the regular configuration's daemons, or after the transitional configuration
// the transitional set (the transitional views themselves, too). Regular views that a
// transitional configuration delivers (a state exchange it cut short) belong to the regular
// configuration that ends there.
void views_within_configuration(Ctx& c) {
  std::map<std::string, NodeId> daemon_of_name;
  for (auto& [id, name] : c.r.daemon_names) daemon_of_name[name] = id;
  for (auto& [client, recs] : c.r.received) {
    uint32_t mine = c.r.clients.at(client);
    const Instance& in = c.inst(mine);
    // Per stream position: the regular members in force, and the transitional set if any.
    std::vector<std::pair<const std::vector<NodeId>*, const std::vector<NodeId>*>> in_force(in.ring.size());
    const std::vector<NodeId>* reg = nullptr;
    const std::vector<NodeId>* trans = nullptr;
    for (size_t p = 0; p < in.ring.size(); ++p) {
      const RingRecord& x = in.ring[p];
      if (x.kind == DeliveryKind::kRegular) {
        reg = &x.members;
        trans = nullptr;
      } else if (x.kind == DeliveryKind::kTransitional) {
        trans = &x.members;
      }
      in_force[p] = {reg, trans};
    }
    for (const ClientRecord& x : recs) {
      if (x.data || !is_view(x.membership) || x.index < 1 || x.index > in_force.size()) continue;
      auto [regular, transitional] = in_force[x.index - 1];
      const RingRecord& item = in.ring[x.index - 1];
      bool regular_view = (x.membership.service & svc::kRegularMembership) != 0;
      const std::vector<NodeId>* allowed =
          (item.kind == DeliveryKind::kTransitional && regular_view) || !transitional ? regular : transitional;
      if (!allowed) continue;
      for (auto& m : x.membership.members) {
        auto d = daemon_of_name.find(std::string(names::private_group_daemon(m)));
        if (d != daemon_of_name.end() && std::find(allowed->begin(), allowed->end(), d->second) != allowed->end())
          continue;
        c.fail("clients: membership (d): " + client + " got " + x.str() + ", which lists " + m +
               ", but its daemon is not in the " + (allowed == transitional ? "transitional" : "regular") +
               " configuration " + id_list(*allowed) + " in force at " + c.iname(mine));
        return;
      }
    }
  }
}

}  // namespace

void check_clients(Ctx& c) {
  Submitted subs(c);
  client_safety(c, subs);
  client_fifo_gaps(c, subs);
  client_order(c);
  membership_consistency(c);
  same_view_same_messages(c);
  if (c.streams_ok) views_within_configuration(c);
}

}  // namespace agent::sim::detail
