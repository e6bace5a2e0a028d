#include "groups/group_state.h"

#include <algorithm>
#include <cassert>

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

bool GroupState::is_member(const std::string& member, const std::string& group) const {
  auto it = groups_.find(group);
  return it != groups_.end() && it->second.members.count(member) != 0;
}

void GroupState::apply(uint64_t seq, DaemonId origin, const Event& ev,
                       std::vector<Delivery>& out) {
  replayed_.clear();
  ++stats_.events;
  if (ev.kind == EventKind::kState) {
    if (!exchange_.active || ev.config != exchange_.config) {
      ++stats_.ignored;  // a state for an exchange that is over or was cut short
      return;
    }
    take_state(ev, origin);
    if (std::includes(exchange_.received.begin(), exchange_.received.end(),
                      exchange_.expected.begin(), exchange_.expected.end()))
      complete_exchange(seq, out);
    return;
  }
  if (exchange_.active) {
    ++stats_.held;
    exchange_.held.push_back(Held{seq, origin, ev});
    return;
  }
  apply_now(seq, origin, ev, out);
}

void GroupState::apply_now(uint64_t seq, DaemonId origin, const Event& ev,
                           std::vector<Delivery>& out) {
  switch (ev.kind) {
    case EventKind::kState:
      return;
    case EventKind::kJoin: {
      auto& g = groups_[ev.group];
      if (!g.members.insert(ev.member).second) {
        ++stats_.ignored;
        return;
      }
      member_groups_[ev.member].insert(ev.group);
      member_daemon_[ev.member] = origin;
      g.view = proto::ViewId{config_, seq};
      add_membership(ev.group, g, svc::kCausedByJoin, ev.member, out);
      return;
    }
    case EventKind::kLeave:
      if (!is_member(ev.member, ev.group)) {
        ++stats_.ignored;
        return;
      }
      remove_member(seq, ev.member, ev.group, svc::kCausedByLeave, out);
      return;
    case EventKind::kDisconnect: {
      auto it = member_groups_.find(ev.member);
      if (it == member_groups_.end()) return;
      std::set<std::string> groups = std::move(it->second);
      member_groups_.erase(it);
      member_daemon_.erase(ev.member);
      for (auto& group : groups) remove_member(seq, ev.member, group, svc::kCausedByDisconnect, out);
      return;
    }
    case EventKind::kData:
      apply_data(ev, out);
      return;
  }
}

void GroupState::add_membership(const std::string& group, const Group& g, uint32_t cause,
                                const std::string& changed, std::vector<Delivery>& out) {
  Delivery d;
  for (auto& m : g.members)
    if (is_local(m)) d.recipients.push_back(m);
  if (d.recipients.empty()) return;
  d.membership.service = svc::kRegularMembership | cause;
  d.membership.group = group;
  d.membership.view = g.view;
  d.membership.members.assign(g.members.begin(), g.members.end());
  d.membership.changed = changed;
  d.membership.vs_sets = {{changed}};
  out.push_back(std::move(d));
}

void GroupState::remove_member(uint64_t seq, const std::string& member, const std::string& group,
                               uint32_t cause, std::vector<Delivery>& out) {
  auto it = groups_.find(group);
  assert(it != groups_.end() && it->second.members.count(member));
  Group& g = it->second;
  g.members.erase(member);
  if (cause == svc::kCausedByLeave) {
    forget_member_group(member, group);
    // The leaver learns its leave took effect: a self-leave notice (no view bits, as in Spread).
    if (is_local(member)) {
      Delivery d;
      d.recipients = {member};
      d.membership.service = cause;
      d.membership.group = group;
      d.membership.view = proto::ViewId{config_, seq};
      d.membership.changed = member;
      d.membership.vs_sets = {{member}};
      out.push_back(std::move(d));
    }
  }
  g.view = proto::ViewId{config_, seq};
  if (g.members.empty()) {
    groups_.erase(it);
    return;
  }
  add_membership(group, g, cause, member, out);
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

void GroupState::on_transitional(uint64_t seq, const std::vector<DaemonId>& daemons,
                                 std::vector<Delivery>& out, uint64_t view_config) {
  replayed_.clear();
  // A change that cuts an exchange short: finish it with the states that did arrive (every
  // daemon moving on together saw the same ones).
  if (exchange_.active) complete_exchange(seq, out);
  std::set<DaemonId> staying(daemons.begin(), daemons.end());
  std::vector<std::string> emptied;
  for (auto& [name, g] : groups_) {
    std::vector<std::string> gone;
    for (auto& m : g.members) {
      auto d = member_daemon_.find(m);
      if (d != member_daemon_.end() && !staying.count(d->second)) gone.push_back(m);
    }
    for (auto& m : gone) {
      g.members.erase(m);
      forget_member_group(m, name);
    }
    if (g.members.empty()) {
      emptied.push_back(name);
      continue;
    }
    Delivery d;
    for (auto& m : g.members)
      if (is_local(m)) d.recipients.push_back(m);
    if (d.recipients.empty()) continue;
    d.membership.service = svc::kTransitional | svc::kCausedByNetwork;
    d.membership.group = name;
    d.membership.view = proto::ViewId{view_config ? view_config : config_, seq};
    d.membership.members.assign(g.members.begin(), g.members.end());
    d.membership.vs_sets = {d.membership.members};
    out.push_back(std::move(d));
  }
  for (auto& name : emptied) groups_.erase(name);
}

Event GroupState::on_regular(uint64_t seq, uint64_t config, const std::vector<DaemonId>& daemons,
                             std::vector<Delivery>& out) {
  replayed_.clear();
  if (exchange_.active) complete_exchange(seq, out);
  Event state;
  state.kind = EventKind::kState;
  state.config = config;
  state.old_config = config_;
  for (auto& [name, g] : groups_)
    for (auto& m : g.members)
      if (is_local(m)) state.memberships.emplace_back(m, name);
  std::sort(state.memberships.begin(), state.memberships.end());
  config_ = config;
  exchange_ = Exchange{};
  exchange_.active = true;
  exchange_.config = config;
  exchange_.expected.insert(daemons.begin(), daemons.end());
  return state;
}

void GroupState::take_state(const Event& ev, DaemonId origin) {
  if (!exchange_.received.insert(origin).second) return;  // one state per daemon
  exchange_.old_configs[origin] = ev.old_config;
  for (auto& [m, g] : ev.memberships) {
    // A daemon speaks only for its own members.
    if (!names::is_private_group(m) || !names::valid_group(g)) continue;
    exchange_.memberships.emplace_back(m, g);
    exchange_.member_daemons[m] = origin;
  }
}

void GroupState::complete_exchange(uint64_t seq, std::vector<Delivery>& out) {
  Exchange ex = std::move(exchange_);
  exchange_ = Exchange{};
  // The table as the states describe it. Members whose daemon sent no state (the exchange was
  // cut short) stay as this daemon knew them.
  std::set<DaemonId> reported = ex.received;
  for (auto it = groups_.begin(); it != groups_.end();) {
    auto& g = it->second;
    for (auto m = g.members.begin(); m != g.members.end();) {
      auto d = member_daemon_.find(*m);
      bool replaced = d != member_daemon_.end() && reported.count(d->second);
      if (replaced) {
        forget_member_group(*m, it->first);
        m = g.members.erase(m);
      } else {
        ++m;
      }
    }
    it = g.members.empty() ? groups_.erase(it) : std::next(it);
  }
  for (auto& [m, gname] : ex.memberships) {
    groups_[gname].members.insert(m);
    member_groups_[m].insert(gname);
    member_daemon_[m] = ex.member_daemons[m];
  }
  // A regular view, caused by the network, for every group with members here.
  for (auto& [name, g] : groups_) {
    g.view = proto::ViewId{config_, seq};
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
    auto it = groups_.find(group);
    if (it == groups_.end()) continue;
    for (auto& m : it->second.members)
      if (is_local(m)) d.recipients.push_back(m);
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
