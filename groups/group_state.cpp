#include "groups/group_state.h"

#include <algorithm>

#include "base/check.h"
#include "transport/names.h"

namespace agent::groups {

namespace svc = proto::service;

GroupState::GroupState(std::string daemon) : daemon_(std::move(daemon)) {}

bool GroupState::is_local(const std::string& member) const {
  return names::private_group_daemon(member) == daemon_;
}

const std::set<std::string>* GroupState::members(const std::string& group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? nullptr : &it->second.members;
}

std::vector<std::pair<std::string, std::vector<std::string>>> GroupState::table() const {
  std::vector<std::pair<std::string, std::vector<std::string>>> v;
  v.reserve(groups_.size());
  for (auto& [name, g] : groups_)
    v.emplace_back(name, std::vector<std::string>(g.members.begin(), g.members.end()));
  std::sort(v.begin(), v.end());
  return v;
}

bool GroupState::is_member(const std::string& member, const std::string& group) const {
  auto it = groups_.find(group);
  return it != groups_.end() && it->second.members.count(member) != 0;
}

proto::ViewId GroupState::view_id(uint64_t seq) const {
  if (mode_ == Mode::kTransitional)
    return proto::ViewId{next_ring_ ? next_ring_ : config_, transitional_view_seq(config_, seq)};
  return proto::ViewId{config_, seq};
}

void GroupState::apply(uint64_t seq, DaemonId origin, const Event& ev,
                       std::vector<Delivery>& out) {
  replayed_.clear();
  ++stats_.events;
  if (ev.kind == EventKind::kState) {
    if (mode_ != Mode::kExchange || ev.config != exchange_.config) {
      ++stats_.ignored;  // a state for an exchange that is over or was cut short
      return;
    }
    take_state(ev, origin);
    if (std::includes(exchange_.received.begin(), exchange_.received.end(),
                      exchange_.expected.begin(), exchange_.expected.end()))
      complete_exchange(seq, out);
    return;
  }
  if (mode_ == Mode::kExchange) {
    ++stats_.held;
    exchange_.held.push_back(Held{seq, origin, ev});
    return;
  }
  apply_now(seq, origin, ev, out);
}

void GroupState::add_local(const std::string& member, const std::string& group) {
  local_members_[group].insert(member);
  local_groups_[member].insert(group);
}

bool GroupState::remove_local(const std::string& member, const std::string& group) {
  auto g = local_groups_.find(member);
  if (g == local_groups_.end() || !g->second.erase(group)) return false;
  if (g->second.empty()) local_groups_.erase(g);
  auto m = local_members_.find(group);
  AGENT_CHECK(m != local_members_.end() && m->second.count(member));  // the two tables agree
  m->second.erase(member);
  if (m->second.empty()) local_members_.erase(m);
  return true;
}

void GroupState::apply_now(uint64_t seq, DaemonId origin, const Event& ev,
                           std::vector<Delivery>& out) {
  size_t first = out.size();
  apply_event(seq, origin, ev, out);
  // Events apply in the ring that ordered them: the regular configuration's (held ones
  // included), or the old ring's after Trans(C) until the next regular configuration.
  for (size_t i = first; i < out.size(); ++i) {
    out[i].ring = config_;
    out[i].ordinal = seq;
  }
}

void GroupState::apply_event(uint64_t seq, DaemonId origin, const Event& ev,
                             std::vector<Delivery>& out) {
  switch (ev.kind) {
    case EventKind::kState:
      return;
    case EventKind::kJoin: {
      if (is_hosted(ev.member)) add_local(ev.member, ev.group);
      // After Trans(C), a join ordered by a daemon that did not come along has no member here.
      if (mode_ == Mode::kTransitional && !trans_.count(origin)) {
        ++stats_.ignored;
        return;
      }
      auto& g = groups_[ev.group];
      if (!g.members.insert(ev.member).second) {
        ++stats_.ignored;
        return;
      }
      member_groups_[ev.member].insert(ev.group);
      member_daemon_[ev.member] = origin;
      g.view = view_id(seq);
      view(ev.group, g, svc::kRegularMembership | svc::kCausedByJoin, ev.member, out);
      return;
    }
    case EventKind::kLeave: {
      bool was_local = remove_local(ev.member, ev.group);
      if (was_local && is_local(ev.member)) {
        // The leaver learns its leave took effect: a notice without view bits, as in Spread.
        Delivery d;
        d.recipients = {ev.member};
        d.membership.service = svc::kCausedByLeave;
        d.membership.group = ev.group;
        d.membership.view = view_id(seq);
        d.membership.changed = ev.member;
        d.membership.vs_sets = {{ev.member}};
        out.push_back(std::move(d));
      }
      if (!is_member(ev.member, ev.group)) {
        if (!was_local) ++stats_.ignored;
        return;
      }
      forget_member_group(ev.member, ev.group);
      remove_shared(seq, ev.member, ev.group, svc::kCausedByLeave, out);
      return;
    }
    case EventKind::kDisconnect: {
      if (is_local(ev.member)) {
        // The member's session is over: a notice without view bits marks where (agentd has no
        // session of that name until this is delivered, so no client gets it).
        Delivery d;
        d.recipients = {ev.member};
        d.membership.service = svc::kCausedByDisconnect;
        d.membership.view = view_id(seq);
        d.membership.changed = ev.member;
        out.push_back(std::move(d));
      }
      auto lg = local_groups_.find(ev.member);
      if (lg != local_groups_.end()) {
        std::set<std::string> groups = std::move(lg->second);
        local_groups_.erase(lg);
        for (auto& group : groups) {
          auto m = local_members_.find(group);
          AGENT_CHECK(m != local_members_.end() && m->second.count(ev.member));
          m->second.erase(ev.member);
          if (m->second.empty()) local_members_.erase(m);
        }
      }
      auto it = member_groups_.find(ev.member);
      if (it == member_groups_.end()) return;
      std::set<std::string> groups = std::move(it->second);
      member_groups_.erase(it);
      member_daemon_.erase(ev.member);
      for (auto& group : groups) remove_shared(seq, ev.member, group, svc::kCausedByDisconnect, out);
      return;
    }
    case EventKind::kData:
      apply_data(ev, out);
      return;
  }
}

void GroupState::view(const std::string& group, const Group& g, uint32_t service,
                      const std::string& changed, std::vector<Delivery>& out) {
  AGENT_CHECK(!g.members.empty());
  Delivery d;
  for (auto& m : g.members) {
    // Whoever a view lists, the shared table knows which daemon it is on and that it is in.
    AGENT_CHECK(member_daemon_.count(m));
    if (is_local(m)) d.recipients.push_back(m);
  }
  if (d.recipients.empty()) return;
  d.membership.service = service;
  d.membership.group = group;
  d.membership.view = g.view;
  d.membership.members.assign(g.members.begin(), g.members.end());
  d.membership.changed = changed;
  if (!changed.empty()) d.membership.vs_sets = {{changed}};
  out.push_back(std::move(d));
}

// Takes member out of the shared table's group (its member -> groups entry is the caller's).
void GroupState::remove_shared(uint64_t seq, const std::string& member, const std::string& group,
                               uint32_t cause, std::vector<Delivery>& out) {
  auto it = groups_.find(group);
  AGENT_CHECK(it != groups_.end() && it->second.members.count(member));
  Group& g = it->second;
  g.members.erase(member);
  g.view = view_id(seq);
  if (g.members.empty()) {
    groups_.erase(it);
    return;
  }
  view(group, g, svc::kRegularMembership | cause, member, out);
}

void GroupState::forget_member_group(const std::string& member, const std::string& group) {
  auto mg = member_groups_.find(member);
  if (mg == member_groups_.end()) return;
  mg->second.erase(group);
  if (mg->second.empty()) {
    member_groups_.erase(mg);
    member_daemon_.erase(member);
  }
}

void GroupState::on_transitional(uint64_t ordinal, const std::vector<DaemonId>& daemons,
                                 std::vector<Delivery>& out, uint64_t next_ring) {
  replayed_.clear();
  std::deque<Held> held;
  if (mode_ == Mode::kExchange) {
    // Cut short: the shared table as the states that did arrive describe it (every daemon of
    // the transitional set saw the same ones); the held events follow in transitional mode.
    Exchange ex = std::move(exchange_);
    exchange_ = Exchange{};
    rebuild(ex);
    held = std::move(ex.held);
  }
  mode_ = Mode::kTransitional;
  next_ring_ = next_ring;
  trans_ = std::set<DaemonId>(daemons.begin(), daemons.end());
  for (auto it = groups_.begin(); it != groups_.end();) {
    auto& g = it->second;
    for (auto m = g.members.begin(); m != g.members.end();) {
      auto d = member_daemon_.find(*m);
      AGENT_CHECK(d != member_daemon_.end());
      if (!trans_.count(d->second)) {
        forget_member_group(*m, it->first);
        m = g.members.erase(m);
      } else {
        ++m;
      }
    }
    it = g.members.empty() ? groups_.erase(it) : std::next(it);
  }
  replayed_ = std::move(held);
  for (auto& h : replayed_) apply_now(h.seq, h.origin, h.ev, out);
  (void)ordinal;
  for (auto& [name, g] : groups_) {
    g.view = view_id(0);  // messages have ordinals from 1: (next ring, T-mark, 0) names T's views
    Delivery d;
    for (auto& m : g.members)
      if (is_local(m)) d.recipients.push_back(m);
    if (d.recipients.empty()) continue;
    d.membership.service = svc::kTransitional | svc::kCausedByNetwork;
    d.membership.group = name;
    d.membership.view = g.view;
    d.membership.members.assign(g.members.begin(), g.members.end());
    d.membership.vs_sets = {d.membership.members};
    out.push_back(std::move(d));
  }
  // Local members the shared table lacks: a view of their own.
  for (auto& [name, locals] : local_members_) {
    auto it = groups_.find(name);
    Delivery d;
    for (auto& m : locals)
      if ((it == groups_.end() || !it->second.members.count(m)) && is_local(m))
        d.recipients.push_back(m);
    if (d.recipients.empty()) continue;
    std::set<std::string> members(locals.begin(), locals.end());
    if (it != groups_.end()) members.insert(it->second.members.begin(), it->second.members.end());
    d.membership.service = svc::kTransitional | svc::kCausedByNetwork;
    d.membership.group = name;
    d.membership.view = view_id(own_view_slot(daemon_));
    d.membership.members.assign(members.begin(), members.end());
    d.membership.vs_sets = {d.membership.members};
    out.push_back(std::move(d));
  }
}

Event GroupState::on_regular(uint64_t seq, uint64_t config, const std::vector<DaemonId>& daemons,
                             std::vector<Delivery>& out) {
  replayed_.clear();
  AGENT_CHECK(config != 0 && !daemons.empty());
  AGENT_CHECK(std::is_sorted(daemons.begin(), daemons.end()));
  if (mode_ == Mode::kExchange) {
    // A regular configuration always follows a transitional one; should one not, the exchange
    // ends with the states that arrived and its held events apply in the old configuration.
    Exchange ex = std::move(exchange_);
    exchange_ = Exchange{};
    rebuild(ex);
    mode_ = Mode::kRegular;
    replayed_ = std::move(ex.held);
    for (auto& h : replayed_) apply_now(h.seq, h.origin, h.ev, out);
  }
  Event state;
  state.kind = EventKind::kState;
  state.config = config;
  state.old_config = config_;
  for (auto& [member, groups] : local_groups_)
    for (auto& g : groups) state.memberships.emplace_back(member, g);
  std::sort(state.memberships.begin(), state.memberships.end());
  config_ = config;
  mode_ = Mode::kExchange;
  next_ring_ = 0;
  trans_.clear();
  exchange_ = Exchange{};
  exchange_.config = config;
  exchange_.expected.insert(daemons.begin(), daemons.end());
  return state;
}

void GroupState::take_state(const Event& ev, DaemonId origin) {
  // Only the configuration's daemons send states for its exchange.
  if (!exchange_.expected.count(origin)) {
    ++stats_.ignored;
    return;
  }
  if (!exchange_.received.insert(origin).second) return;  // one state per daemon
  exchange_.old_configs[origin] = ev.old_config;
  for (auto& [m, g] : ev.memberships) {
    // A daemon speaks only for its own members.
    if (!names::is_private_group(m) || !names::valid_group(g)) continue;
    exchange_.memberships.emplace_back(m, g);
    exchange_.member_daemons[m] = origin;
  }
}

void GroupState::rebuild(const Exchange& ex) {
  groups_.clear();
  member_groups_.clear();
  member_daemon_.clear();
  for (auto& [m, gname] : ex.memberships) {
    groups_[gname].members.insert(m);
    member_groups_[m].insert(gname);
    member_daemon_[m] = ex.member_daemons.at(m);
  }
}

void GroupState::complete_exchange(uint64_t seq, std::vector<Delivery>& out) {
  Exchange ex = std::move(exchange_);
  exchange_ = Exchange{};
  mode_ = Mode::kRegular;
  rebuild(ex);
  AGENT_CHECK(ex.received == ex.expected);
  // A regular view, caused by the network, for every group with members here.
  for (auto& [name, g] : groups_) {
    g.view = view_id(seq);
    Delivery d;
    for (auto& m : g.members)
      if (is_local(m)) d.recipients.push_back(m);
    if (d.recipients.empty()) continue;
    d.membership.service = svc::kRegularMembership | svc::kCausedByNetwork;
    d.membership.group = name;
    d.membership.view = g.view;
    d.membership.members.assign(g.members.begin(), g.members.end());
    // vs-sets: members that come from the same previous configuration, together.
    std::map<uint64_t, std::vector<std::string>> by_origin;
    for (auto& m : g.members) {
      auto dm = member_daemon_.find(m);
      uint64_t from = 0;
      if (dm != member_daemon_.end()) {
        auto oc = ex.old_configs.find(dm->second);
        if (oc != ex.old_configs.end()) from = oc->second;
      }
      by_origin[from].push_back(m);
    }
    for (auto& [from, set] : by_origin) d.membership.vs_sets.push_back(set);
    std::sort(d.membership.vs_sets.begin(), d.membership.vs_sets.end());
    out.push_back(std::move(d));
  }
  ++stats_.exchanges;
  // Then what was held back, in order.
  replayed_ = std::move(ex.held);
  for (auto& h : replayed_) apply_now(h.seq, h.origin, h.ev, out);
}

void GroupState::apply_data(const Event& ev, std::vector<Delivery>& out) {
  Delivery d;
  d.data = &ev;
  bool self_discard = (ev.service & svc::kSelfDiscard) != 0;
  for (auto& group : ev.groups) {
    if (names::is_private_group(group)) {
      if (is_local(group)) d.recipients.push_back(group);
      continue;
    }
    auto it = local_members_.find(group);
    if (it == local_members_.end()) continue;
    for (auto& m : it->second)
      if (proxies_.empty() || !proxies_.count(m)) d.recipients.push_back(m);
  }
  if (self_discard)
    d.recipients.erase(std::remove(d.recipients.begin(), d.recipients.end(), ev.member),
                       d.recipients.end());
  if (ev.groups.size() > 1) {
    std::sort(d.recipients.begin(), d.recipients.end());
    d.recipients.erase(std::unique(d.recipients.begin(), d.recipients.end()), d.recipients.end());
  }
  if (!d.recipients.empty()) out.push_back(std::move(d));
}

}  // namespace agent::groups
