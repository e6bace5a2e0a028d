// The Flush protocol for one group at one connection (see flush_core.h).
#include "flush_core.h"

#include <algorithm>

#include "base/check.h"

namespace agent::flush {

namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

Group::Group(std::string me) : me_(std::move(me)) { AGENT_CHECK(!me_.empty()); }

void Group::check_invariants() const {
  AGENT_CHECK(!view_ || contains(view_->members, me_));
  AGENT_CHECK(!proposed_ || changes_ > 0);
  AGENT_CHECK(oks_.empty() || proposed_);
  AGENT_CHECK(oks_.size() <= (proposed_ ? proposed_->members.size() : 0));
  // A flush request is only ever given to a member with a view, for a proposed view.
  AGENT_CHECK(!request_delivered_ || (view_ && proposed_));
  // Without a view the connection is joining: its permission is implicit.
  AGENT_CHECK(view_ || flushed_ || leaving_);
}

Actions Group::on_membership(const Membership& m) {
  Actions out;
  if (!contains(m.members, me_)) return out;  // not ours to install (agentd always includes us)
  proposed_ = m;
  ++changes_;
  oks_.clear();
  if (leaving_) {
    // Our leave is ordered after m: the others will get a view without us and stop waiting
    // for our flush-ok; we neither ask the application nor answer.
  } else if (flushed_) {
    out.send_flush_ok = m.id;  // joining, or already flushed for an earlier proposal
  } else if (!request_delivered_) {
    request_delivered_ = true;
    out.flush_request = true;
  }
  check_invariants();
  return out;
}

Actions Group::on_flush_ok(const std::string& from, const ViewId& proposed) {
  Actions out;
  if (!proposed_ || proposed_->id != proposed || leaving_) return out;  // replaced, or leaving
  if (!contains(proposed_->members, from)) return out;
  oks_.insert(from);
  if (oks_.size() < proposed_->members.size()) {
    check_invariants();
    return out;
  }
  View next = make_view();
  if (view_)
    for (const auto& old : view_->members)
      if (!contains(next.members, old)) out.transition = true;
  view_ = std::move(next);
  out.install = view_;
  proposed_.reset();
  changes_ = 0;
  oks_.clear();
  request_delivered_ = false;
  flushed_ = false;
  check_invariants();
  return out;
}

View Group::make_view() const {
  AGENT_CHECK(proposed_ && changes_ > 0);
  View v;
  v.id = proposed_->id;
  v.members = proposed_->members;
  // One join, leave or disconnect since our last view (or our own join): say so, as Spread
  // does. Anything else (several changes collapsed, a partition or merge) is a network change
  // whose vs-set is who comes with us from our previous view.
  bool single = changes_ == 1 && proposed_->cause != Cause::kNetwork && !proposed_->changed.empty();
  if (single && view_) {
    // Check that it really is the only difference, since collapsed changes are counted above.
    bool joined = proposed_->cause == Cause::kJoin;
    single = joined ? contains(v.members, proposed_->changed) && !contains(view_->members, proposed_->changed)
                    : contains(view_->members, proposed_->changed) && !contains(v.members, proposed_->changed);
  }
  if (single && !view_) single = proposed_->cause == Cause::kJoin && proposed_->changed == me_;
  if (single) {
    v.cause = proposed_->cause;
    v.vs_set = {proposed_->changed};
    return v;
  }
  v.cause = Cause::kNetwork;
  if (!view_) {
    v.vs_set = {me_};
  } else {
    for (const auto& m : v.members)
      if (contains(view_->members, m)) v.vs_set.push_back(m);
  }
  return v;
}

Actions Group::on_self_leave() {
  Actions out;
  out.self_leave = true;
  view_.reset();
  proposed_.reset();
  changes_ = 0;
  oks_.clear();
  request_delivered_ = false;
  flushed_ = true;  // as a fresh joiner
  leaving_ = false;
  check_invariants();
  return out;
}

Verdict Group::can_send() const {
  if (!view_ || leaving_) return Verdict::kIllegalGroup;
  if (flushed_) return Verdict::kIllegalState;
  return Verdict::kOk;
}

Verdict Group::check_receivers(const std::vector<std::string>& receivers) const {
  AGENT_CHECK(view_);
  for (const auto& r : receivers)
    if (!contains(view_->members, r)) return Verdict::kIllegalReceivers;
  return Verdict::kOk;
}

Verdict Group::flush(Actions* actions) {
  if (!view_ || leaving_) return Verdict::kIllegalGroup;
  if (!request_delivered_ || flushed_) return Verdict::kIllegalState;
  AGENT_CHECK(proposed_);
  flushed_ = true;
  actions->send_flush_ok = proposed_->id;
  check_invariants();
  return Verdict::kOk;
}

Verdict Group::leave() {
  if (!view_ || leaving_) return Verdict::kIllegalGroup;
  leaving_ = true;
  check_invariants();
  return Verdict::kOk;
}

bool Group::accepts(const ViewId& sent_in) const { return view_ && view_->id == sent_in; }

}  // namespace agent::flush
