// The Flush library's protocol for one group at one connection (fl.h), as a pure state machine:
// no sockets, no threads, no clock. The shell (fl.cpp) feeds it what the daemon delivers and
// what the application calls, and carries out the Actions it returns.
//
// How a view is installed. agentd already gives the group extended virtual synchrony: one
// total order of AGREED/SAFE messages and membership events, and members that move together
// from one view to the next delivered the same messages in it. On top of that:
//   1. Each underlying regular membership M of the group is a proposed view. A member of the
//      current (flush) view gets one flush request for it; several Ms before the flush completes
//      are one request, the latest M being proposed.
//   2. Once the application flushes (FL_flush), the member multicasts flush-ok(M) to the group.
//      A member without a view yet (joining) sends it by itself; one that has flushed resends
//      it for every later M.
//   3. Each member installs M when it has received flush-ok(M) from every member of M.
//      flush-oks for an M that a later M' replaced are ignored.
// Data is sent AGREED at least and tagged with the sender's view; a receiver delivers it only
// if that is its own current view. Because a member sends flush-ok after all of its data in
// the old view, and the total order is the same everywhere, every member of both views
// delivers that data before installing the new view (view synchrony); and a joiner, whose view
// differs, drops data of a view it was not in (closed groups).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace agent::flush {

struct ViewId {
  uint64_t config = 0;
  uint64_t seq = 0;
  bool operator==(const ViewId& o) const { return config == o.config && seq == o.seq; }
  bool operator!=(const ViewId& o) const { return !(*this == o); }
};

enum class Cause { kJoin, kLeave, kDisconnect, kNetwork };

// One regular membership of the group as agentd delivered it.
struct Membership {
  ViewId id;
  std::vector<std::string> members;  // the same order at every member
  Cause cause = Cause::kNetwork;
  std::string changed;               // who joined, left or disconnected
};

// A view the application is given.
struct View {
  ViewId id;
  std::vector<std::string> members;
  Cause cause = Cause::kNetwork;
  // kJoin/kLeave/kDisconnect: the member who changed; kNetwork: the members of this view that
  // were in this member's previous view (or this member alone if it had none).
  std::vector<std::string> vs_set;
};

// What the shell must do, in this order: deliver a flush request, send flush-ok, deliver a
// transitional signal and then the new view, deliver the self-leave notice.
struct Actions {
  bool flush_request = false;
  std::optional<ViewId> send_flush_ok;  // multicast flush-ok for this proposed view
  bool transition = false;              // some members of the old view are not in the new one
  std::optional<View> install;
  bool self_leave = false;
};

enum class Verdict { kOk, kIllegalGroup, kIllegalState, kIllegalReceivers };

class Group {
 public:
  // me: this connection's private group name.
  explicit Group(std::string me);

  // --- what the daemon delivered, in its order
  Actions on_membership(const Membership& m);
  Actions on_flush_ok(const std::string& from, const ViewId& proposed);
  Actions on_self_leave();

  // --- what the application asks
  // May it send to the group now? kIllegalGroup if not a member or leaving, kIllegalState
  // after FL_flush until the next view.
  Verdict can_send() const;
  // All receivers in the current view? (after can_send)
  Verdict check_receivers(const std::vector<std::string>& receivers) const;
  // FL_flush: on kOk, actions.send_flush_ok says what to send.
  Verdict flush(Actions* actions);
  // FL_leave: kOk marks the group as leaving.
  Verdict leave();

  // Is data sent in view `sent_in` delivered here? (only in that same view)
  bool accepts(const ViewId& sent_in) const;

  const std::optional<View>& view() const { return view_; }
  bool leaving() const { return leaving_; }
  bool flushed() const { return flushed_; }

 private:
  View make_view() const;
  void check_invariants() const;

  std::string me_;
  std::optional<View> view_;          // the installed view; none while joining
  std::optional<Membership> proposed_;  // the latest underlying view not installed yet
  size_t changes_ = 0;                // underlying views since the installed one
  std::set<std::string> oks_;         // members of proposed_ whose flush-ok arrived
  bool request_delivered_ = false;    // a flush request since the installed view
  bool flushed_ = true;               // permission given (FL_flush; implicit while joining)
  bool leaving_ = false;
};

}  // namespace agent::flush
