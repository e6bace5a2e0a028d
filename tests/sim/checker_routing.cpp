// The checker's routing part. Two replays of every daemon instance's ring stream (messages
// with their origins, transitional and regular configurations):
//   model   the checker's own group table, written from the rules in docs/ring-protocol.md
//           and groups/group_state.h independently of GroupState, says who gets which data
//           and membership notice (self-delivery included);
//   replay  a fresh GroupState must reproduce every client's stream exactly.
// Notices that one configuration change gives several groups at once come in an order the
// rules do not fix; both sides are compared with such runs sorted by group.
#include <algorithm>
#include <deque>

#include "groups/group_state.h"
#include "tests/sim/checker_internal.h"
#include "tests/sim/daemon_feed.h"
#include "tests/sim/rng.h"
#include "transport/names.h"

namespace agent::sim::detail {

namespace svc = proto::service;
using groups::Event;
using groups::EventKind;

namespace {

ClientRecord data_record(uint64_t index, const Event& e) {
  ClientRecord rec;
  rec.index = index;
  rec.data = true;
  rec.id = MsgId{e.member, e.msg_type};
  rec.service = e.service;
  rec.groups = e.groups;
  rec.payload_fingerprint = fingerprint(e.payload);
  rec.payload_bytes = e.payload.size();
  return rec;
}

ClientRecord notice(uint64_t index, uint32_t service, const std::string& group,
                    const std::set<std::string>& members, const std::string& changed, uint64_t config,
                    uint64_t view_seq) {
  ClientRecord r;
  r.index = index;
  r.membership.service = service;
  r.membership.group = group;
  r.membership.members.assign(members.begin(), members.end());
  r.membership.changed = changed;
  r.membership.view.config = config;
  r.membership.view.seq = view_seq;
  return r;
}

// The model does not know the vs-sets' shape.
bool model_matches(const ClientRecord& expected, const ClientRecord& actual) {
  if (expected.data || actual.data) return expected == actual;
  const auto& e = expected.membership;
  const auto& a = actual.membership;
  return expected.index == actual.index && e.service == a.service && e.group == a.group &&
         e.view == a.view && e.members == a.members && e.changed == a.changed;
}

// Runs of network-caused notices of one item, sorted by group.
std::vector<ClientRecord> canonical(std::vector<ClientRecord> v) {
  auto network = [](const ClientRecord& r) { return !r.data && (r.membership.service & svc::kCausedByNetwork); };
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j < v.size() && network(v[j]) && network(v[i]) && v[j].index == v[i].index &&
           v[j].membership.service == v[i].membership.service)
      ++j;
    if (j > i + 1)
      std::stable_sort(v.begin() + static_cast<long>(i), v.begin() + static_cast<long>(j),
                       [](const ClientRecord& a, const ClientRecord& b) { return a.membership.group < b.membership.group; });
    i = std::max(j, i + 1);
  }
  return v;
}

// The checker's group table of one daemon instance: the shared table views list, and the
// local table (this instance's clients and their groups) that data follows. Modes: exchange
// (Reg(C) until every state of C arrived: events wait), regular (views (C, ordinal)),
// transitional (Trans(C) until the next Reg: members of daemons outside the transitional set
// gone, their joins ignored, views named (next ring, transitional_view_seq(C, ordinal))).
class Model {
 public:
  Model(const Ctx& c, uint32_t instance, std::map<std::string, std::vector<ClientRecord>>& out)
      : c_(c), instance_(instance), out_(out) {
    for (auto& [id, name] : c.r.daemon_names) daemon_of_name_[name] = id;
    self_ = c.inst(instance).daemon;
  }

  // index: the item's place in the stream (what the records carry); ordinal: its place in its
  // ring, what views are named by.
  void message(uint64_t index, uint64_t ordinal, NodeId origin, const Event& e) {
    index_ = index;
    if (e.kind == EventKind::kState) {
      if (mode_ != Mode::kExchange || e.config != ex_.config) return;
      if (!ex_.received.insert(origin).second) return;
      for (auto& mg : e.memberships)
        if (names::is_private_group(mg.first) && names::valid_group(mg.second)) ex_.memberships.push_back(mg);
      if (std::includes(ex_.received.begin(), ex_.received.end(), ex_.expected.begin(), ex_.expected.end()))
        complete(ordinal);
      return;
    }
    if (mode_ == Mode::kExchange) {
      ex_.held.push_back({ordinal, e});
      return;
    }
    apply(ordinal, e);
  }

  // The transitional views are named (next ring, transitional_view_seq(C, 0)): no message has
  // ordinal 0.
  void transitional(uint64_t index, const std::vector<NodeId>& daemons, uint64_t next_ring) {
    index_ = index;
    std::deque<std::pair<uint64_t, Event>> held;
    if (mode_ == Mode::kExchange) {
      rebuild();
      held = std::move(ex_.held);
      ex_ = Exchange{};
    }
    mode_ = Mode::kTransitional;
    next_ring_ = next_ring;
    staying_ = std::set<NodeId>(daemons.begin(), daemons.end());
    for (auto it = groups_.begin(); it != groups_.end();) {
      auto& members = it->second;
      for (auto m = members.begin(); m != members.end();) {
        if (!staying_.count(daemon_of(*m))) {
          forget(*m, it->first);
          m = members.erase(m);
        } else {
          ++m;
        }
      }
      it = members.empty() ? groups_.erase(it) : std::next(it);
    }
    for (auto& [o, e] : held) apply(o, e);
    for (auto& [g, members] : groups_)
      for (auto& x : members)
        emit(x, notice(index, svc::kTransitional | svc::kCausedByNetwork, g, members, "", id(0)));
    // This instance's clients the shared table lacks get a view of their own, listing them too.
    std::map<std::string, std::set<std::string>> lacking;
    for (auto& [member, gs] : mine_)
      for (auto& g : gs) {
        auto it = groups_.find(g);
        if (it == groups_.end() || !it->second.count(member)) lacking[g].insert(member);
      }
    for (auto& [g, missing] : lacking) {
      std::set<std::string> members;
      for (auto& [member, gs] : mine_)
        if (gs.count(g)) members.insert(member);
      if (auto it = groups_.find(g); it != groups_.end()) members.insert(it->second.begin(), it->second.end());
      auto v = id(groups::own_view_slot(c_.r.daemon_names.at(self_)));
      for (auto& x : missing) emit(x, notice(index, svc::kTransitional | svc::kCausedByNetwork, g, members, "", v));
    }
  }

  const std::map<std::string, std::set<std::string>>& table() const { return groups_; }
  bool exchanging() const { return mode_ == Mode::kExchange; }

  void regular(uint64_t index, uint64_t ordinal, uint64_t ring, const std::vector<NodeId>& daemons) {
    index_ = index;
    if (mode_ == Mode::kExchange) {  // not expected: a Reg always follows a Trans
      rebuild();
      auto held = std::move(ex_.held);
      mode_ = Mode::kRegular;
      for (auto& [o, e] : held) apply(o, e);
    }
    (void)ordinal;
    config_ = ring;
    mode_ = Mode::kExchange;
    ex_ = Exchange{};
    ex_.config = ring;
    ex_.expected.insert(daemons.begin(), daemons.end());
  }

 private:
  enum class Mode { kRegular, kExchange, kTransitional };
  struct Exchange {
    uint64_t config = 0;
    std::set<NodeId> expected, received;
    std::vector<std::pair<std::string, std::string>> memberships;
    std::deque<std::pair<uint64_t, Event>> held;
  };

  ClientRecord notice(uint64_t index, uint32_t service, const std::string& group, const std::set<std::string>& members,
                      const std::string& changed, proto::ViewId v) {
    return detail::notice(index, service, group, members, changed, v.config, v.seq);
  }
  proto::ViewId id(uint64_t ordinal) const {
    if (mode_ == Mode::kTransitional)
      return {next_ring_ ? next_ring_ : config_, groups::transitional_view_seq(config_, ordinal)};
    return {config_, ordinal};
  }
  NodeId daemon_of(const std::string& member) const {
    auto it = daemon_of_name_.find(std::string(names::private_group_daemon(member)));
    return it == daemon_of_name_.end() ? 0 : it->second;
  }
  bool local(const std::string& member) const { return daemon_of(member) == self_; }
  void emit(const std::string& client, ClientRecord rec) {
    auto it = c_.r.clients.find(client);
    if (it != c_.r.clients.end() && it->second == instance_) out_[client].push_back(std::move(rec));
  }
  void forget(const std::string& member, const std::string& group) {
    auto it = of_.find(member);
    if (it == of_.end()) return;
    it->second.erase(group);
    if (it->second.empty()) of_.erase(it);
  }
  // The shared table is what the states that arrived say, nothing else.
  void rebuild() {
    groups_.clear();
    of_.clear();
    for (auto& [m, g] : ex_.memberships) {
      groups_[g].insert(m);
      of_[m].insert(g);
    }
  }

  // Every state arrived: the shared table from the states, a regular view for every group,
  // then what was held back, in order.
  void complete(uint64_t ordinal) {
    rebuild();
    auto held = std::move(ex_.held);
    ex_ = Exchange{};
    mode_ = Mode::kRegular;
    for (auto& [g, members] : groups_)
      for (auto& x : members)
        emit(x, notice(index_, svc::kRegularMembership | svc::kCausedByNetwork, g, members, "", id(ordinal)));
    for (auto& [o, e] : held) apply(o, e);
  }

  void remove(uint64_t ordinal, const std::string& member, const std::string& group, uint32_t cause) {
    auto& g = groups_[group];
    g.erase(member);
    if (g.empty()) {
      groups_.erase(group);
      return;
    }
    for (auto& x : g) emit(x, notice(index_, svc::kRegularMembership | cause, group, g, member, id(ordinal)));
  }

  // One event at its place in the order (ordinal: its own; the records carry index_, the item
  // being processed, which differs for events held back during an exchange).
  void apply(uint64_t ordinal, const Event& e) {
    switch (e.kind) {
      case EventKind::kState:
        return;
      case EventKind::kJoin: {
        if (local(e.member)) mine_[e.member].insert(e.group);
        if (mode_ == Mode::kTransitional && !staying_.count(daemon_of(e.member))) return;
        auto& g = groups_[e.group];
        if (!g.insert(e.member).second) return;
        of_[e.member].insert(e.group);
        for (auto& x : g) emit(x, notice(index_, svc::kRegularMembership | svc::kCausedByJoin, e.group, g, e.member, id(ordinal)));
        return;
      }
      case EventKind::kLeave: {
        auto m = mine_.find(e.member);
        if (m != mine_.end() && m->second.erase(e.group)) {
          if (m->second.empty()) mine_.erase(m);
          emit(e.member, notice(index_, svc::kCausedByLeave, e.group, {}, e.member, id(ordinal)));
        }
        auto g = groups_.find(e.group);
        if (g != groups_.end() && g->second.count(e.member)) {
          forget(e.member, e.group);
          remove(ordinal, e.member, e.group, svc::kCausedByLeave);
        }
        return;
      }
      case EventKind::kDisconnect: {
        if (local(e.member)) emit(e.member, notice(index_, svc::kCausedByDisconnect, "", {}, e.member, id(ordinal)));
        mine_.erase(e.member);
        auto it = of_.find(e.member);
        if (it == of_.end()) return;
        std::set<std::string> gs = std::move(it->second);
        of_.erase(it);
        for (auto& g : gs) remove(ordinal, e.member, g, svc::kCausedByDisconnect);
        return;
      }
      case EventKind::kData: {
        std::set<std::string> to;
        for (auto& g : e.groups) {
          if (names::is_private_group(g)) {
            to.insert(g);
            continue;
          }
          for (auto& [member, gs] : mine_)
            if (gs.count(g)) to.insert(member);
        }
        if (e.service & svc::kSelfDiscard) to.erase(e.member);
        for (auto& x : to) emit(x, data_record(index_, e));
        return;
      }
    }
  }

  const Ctx& c_;
  uint32_t instance_;
  NodeId self_ = 0;
  std::map<std::string, std::vector<ClientRecord>>& out_;
  std::map<std::string, NodeId> daemon_of_name_;
  uint64_t index_ = 0;
  Mode mode_ = Mode::kRegular;
  uint64_t config_ = 0;     // the ring of the last regular configuration
  uint64_t next_ring_ = 0;  // transitional mode: the ring being installed
  std::set<NodeId> staying_;
  std::map<std::string, std::set<std::string>> groups_;
  std::map<std::string, std::set<std::string>> of_;    // shared table: member -> its groups
  std::map<std::string, std::set<std::string>> mine_;  // this instance's clients -> their groups
  Exchange ex_;
};

// e, for groups: after a quiescent end every daemon's table (as the model has it, which the
// deliveries were just checked against) is the same, no exchange is under way, and every
// member is a client of a running daemon (a crashed daemon's clients are gone).
void final_tables(Ctx& c, uint32_t i, const Model& m, uint32_t& first,
                  std::map<std::string, std::set<std::string>>& first_table) {
  if (!c.r.quiescent || !c.alive_at_end(i)) return;
  if (m.exchanging()) {
    c.fail("routing: final tables (e): " + c.iname(i) + " ends with its state exchange still under way");
    return;
  }
  for (auto& [g, members] : m.table())
    for (auto& member : members) {
      auto it = c.r.clients.find(member);
      if (it == c.r.clients.end() || !c.alive_at_end(it->second)) {
        c.fail("routing: final tables (e): " + c.iname(i) + " ends with " + member + " in " + g +
               ", but that client's daemon crashed");
        return;
      }
    }
  if (first == 0) {
    first = i;
    first_table = m.table();
    return;
  }
  if (m.table() == first_table) return;
  std::string diff;
  for (auto& [g, members] : m.table()) {
    auto it = first_table.find(g);
    if (it == first_table.end() || it->second != members) {
      diff = g + " is " + list({members.begin(), members.end()}) + " at " + c.iname(i) + ", " +
             (it == first_table.end() ? std::string("absent") : list({it->second.begin(), it->second.end()})) +
             " at " + c.iname(first);
      break;
    }
  }
  if (diff.empty())
    for (auto& [g, members] : first_table)
      if (!m.table().count(g)) {
        diff = g + " is absent at " + c.iname(i) + ", " + list({members.begin(), members.end()}) + " at " + c.iname(first);
        break;
      }
  c.fail("routing: final tables (e): the daemons end with different group tables: " + diff);
}

// What reaches a client: nothing while it has no session (between its connection's close and
// its next hello), but the notice of its own disconnect, which marks where that took effect.
std::vector<ClientRecord> with_session(Ctx& c, const std::string& client, const std::vector<ClientRecord>& v) {
  std::vector<ClientRecord> out;
  for (const ClientRecord& x : v) {
    bool own_end = !x.data && x.membership.service == proto::service::kCausedByDisconnect &&
                   x.membership.changed == client;
    if (own_end || !c.r.without_session(client, x.index)) out.push_back(x);
  }
  return out;
}

void model_routing(Ctx& c) {
  std::map<std::string, std::vector<ClientRecord>> expected;
  uint32_t first = 0;
  std::map<std::string, std::set<std::string>> first_table;
  for (uint32_t i = 1; i <= c.r.instances.size(); ++i) {
    Model m(c, i, expected);
    for (const RingRecord& x : c.inst(i).ring) {
      switch (x.kind) {
        case DeliveryKind::kMessage:
          if (auto ev = c.event_of(x)) m.message(x.index, x.ordinal, x.origin, *ev);
          break;
        case DeliveryKind::kTransitional:
          m.transitional(x.index, x.members, x.next_ring_id);
          break;
        case DeliveryKind::kRegular:
          m.regular(x.index, x.ordinal, x.ring_id, x.members);
          break;
      }
    }
    final_tables(c, i, m, first, first_table);
  }
  for (auto& [client, recs] : c.r.received) {
    auto want = canonical(with_session(c, client, expected[client]));
    auto got = canonical(recs);
    size_t n = std::min(want.size(), got.size());
    size_t i = 0;
    while (i < n && model_matches(want[i], got[i])) ++i;
    if (i == want.size() && i == got.size()) continue;
    if (i < want.size() && want[i].data && want[i].id.sender == client) {
      bool ever = false;
      for (auto& g : got) ever |= g.data && g.id == want[i].id;
      if (!ever) {
        c.fail("routing: self-delivery: " + client + " never got its own " + want[i].str());
        continue;
      }
    }
    c.fail("routing: " + client + "'s delivery #" + std::to_string(i + 1) + " should be " +
           (i < want.size() ? want[i].str() : "nothing more") + " but is " + (i < got.size() ? got[i].str() : "missing"));
  }
}

// A fresh GroupState per instance, fed that instance's stream as agentd feeds it
// (daemon_feed.h), must reproduce its clients' streams.
void replay(Ctx& c) {
  std::map<std::string, std::vector<ClientRecord>> expected;
  for (uint32_t i = 1; i <= c.r.instances.size(); ++i) {
    const Instance& in = c.inst(i);
    groups::GroupState gs(c.r.daemon_names.at(in.daemon));
    std::vector<groups::Delivery> out;
    for (const RingRecord& x : in.ring) {
      out.clear();
      std::optional<Event> ev;
      switch (x.kind) {
        case DeliveryKind::kMessage:
          ev = c.event_of(x);
          if (ev) feed_message(gs, x.ring_id, x.ordinal, x.origin, *ev, out);
          break;
        case DeliveryKind::kTransitional:
          feed_transitional(gs, x.ring_id, x.ordinal, x.members, x.next_ring_id, out);
          break;
        case DeliveryKind::kRegular: feed_regular(gs, x.ring_id, x.ordinal, x.members, out); break;
      }
      for (auto& del : out) {
        ClientRecord rec;
        if (del.data) {
          rec = data_record(x.index, *del.data);
        } else {
          rec.index = x.index;
          rec.membership = del.membership;
        }
        for (auto& to : del.recipients) {
          auto it = c.r.clients.find(to);
          if (it != c.r.clients.end() && it->second == i) expected[to].push_back(rec);
        }
      }
    }
  }
  for (auto& [client, got] : c.r.received) {
    const auto want = with_session(c, client, expected[client]);
    size_t i = 0;
    while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
    if (i == want.size() && i == got.size()) continue;
    c.fail("replay: " + client + "'s delivery #" + std::to_string(i + 1) + " is " +
           (i < got.size() ? got[i].str() : "missing") + ", a fresh replay of its daemon's stream gives " +
           (i < want.size() ? want[i].str() : "nothing more"));
  }
}

}  // namespace

void check_routing(Ctx& c) {
  model_routing(c);
  replay(c);
}

}  // namespace agent::sim::detail
