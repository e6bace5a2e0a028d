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

void GroupState::apply(uint64_t seq, const Event& ev, std::vector<Delivery>& out) {
  ++stats_.events;
  switch (ev.kind) {
    case EventKind::kJoin: {
      auto& g = groups_[ev.group];
      if (!g.members.insert(ev.member).second) {
        ++stats_.ignored;
        return;
      }
      member_groups_[ev.member].insert(ev.group);
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
    auto mg = member_groups_.find(member);
    if (mg != member_groups_.end()) {
      mg->second.erase(group);
      if (mg->second.empty()) member_groups_.erase(mg);
    }
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
