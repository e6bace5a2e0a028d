// The Flush library's protocol core (bindings/c/flush_core.h), driven by hand: what the daemon
// delivers goes in, the actions that come out are checked.
#include "bindings/c/flush_core.h"

#include <catch2/catch.hpp>

using namespace agent::flush;

namespace {

Membership memb(uint64_t seq, std::vector<std::string> members, Cause cause, std::string changed) {
  return Membership{ViewId{1, seq}, std::move(members), cause, std::move(changed)};
}

// "a" alone in its first view (seq 1).
Group alone() {
  Group a("a");
  Actions j = a.on_membership(memb(1, {"a"}, Cause::kJoin, "a"));
  REQUIRE(j.send_flush_ok);  // a joiner flushes by itself
  CHECK(!j.flush_request);
  Actions v = a.on_flush_ok("a", ViewId{1, 1});
  REQUIRE(v.install);
  CHECK(v.install->cause == Cause::kJoin);
  CHECK(v.install->vs_set == std::vector<std::string>{"a"});
  CHECK(!v.transition);
  return a;
}

}  // namespace

TEST_CASE("flush core: a view is installed only when every member of it has flushed", "[flush]") {
  Group a = alone();
  CHECK(a.can_send() == Verdict::kOk);
  Actions r = a.on_membership(memb(2, {"a", "b"}, Cause::kJoin, "b"));
  CHECK(r.flush_request);
  CHECK(!r.send_flush_ok);
  CHECK(a.can_send() == Verdict::kOk);             // still in the old view until it flushes
  CHECK(a.on_flush_ok("b", ViewId{1, 2}).install == std::nullopt);  // b's alone is not enough
  Actions f;
  REQUIRE(a.flush(&f) == Verdict::kOk);
  CHECK(f.send_flush_ok == ViewId{1, 2});
  CHECK(a.can_send() == Verdict::kIllegalState);
  Actions again;
  CHECK(a.flush(&again) == Verdict::kIllegalState);
  Actions v = a.on_flush_ok("a", ViewId{1, 2});
  REQUIRE(v.install);
  CHECK(v.install->members == std::vector<std::string>{"a", "b"});
  CHECK(v.install->cause == Cause::kJoin);
  CHECK(v.install->vs_set == std::vector<std::string>{"b"});
  CHECK(a.can_send() == Verdict::kOk);
  CHECK(a.accepts(ViewId{1, 2}));
  CHECK(!a.accepts(ViewId{1, 1}));  // data of the old view is not delivered in the new one
}

TEST_CASE("flush core: changes before the flush completes make one view, stale oks are ignored",
          "[flush]") {
  Group a = alone();
  REQUIRE(a.on_membership(memb(2, {"a", "b"}, Cause::kJoin, "b")).flush_request);
  Actions f;
  REQUIRE(a.flush(&f) == Verdict::kOk);
  // c joins before b's flush-ok for seq 2 arrives: a has flushed, so it answers for seq 3 by
  // itself, and no second flush request is given.
  Actions r = a.on_membership(memb(3, {"a", "b", "c"}, Cause::kJoin, "c"));
  CHECK(!r.flush_request);
  CHECK(r.send_flush_ok == ViewId{1, 3});
  CHECK(!a.on_flush_ok("b", ViewId{1, 2}).install);  // for the replaced proposal
  CHECK(!a.on_flush_ok("a", ViewId{1, 2}).install);
  CHECK(!a.on_flush_ok("a", ViewId{1, 3}).install);
  CHECK(!a.on_flush_ok("b", ViewId{1, 3}).install);
  Actions v = a.on_flush_ok("c", ViewId{1, 3});
  REQUIRE(v.install);
  CHECK(v.install->cause == Cause::kNetwork);  // two changes in one view
  CHECK(v.install->vs_set == std::vector<std::string>{"a"});

  // b leaves: a transitional signal before the view; the leaver's own leave needs no flush.
  REQUIRE(a.on_membership(memb(4, {"a", "c"}, Cause::kLeave, "b")).flush_request);
  REQUIRE(a.flush(&f) == Verdict::kOk);
  a.on_flush_ok("a", ViewId{1, 4});
  Actions l = a.on_flush_ok("c", ViewId{1, 4});
  REQUIRE(l.install);
  CHECK(l.transition);
  CHECK(l.install->cause == Cause::kLeave);
  CHECK(l.install->vs_set == std::vector<std::string>{"b"});
}

TEST_CASE("flush core: a leaving member neither asks nor answers, and may not send", "[flush]") {
  Group a = alone();
  CHECK(a.leave() == Verdict::kOk);
  CHECK(a.leave() == Verdict::kIllegalGroup);
  CHECK(a.can_send() == Verdict::kIllegalGroup);
  Actions r = a.on_membership(memb(2, {"a", "b"}, Cause::kJoin, "b"));
  CHECK(!r.flush_request);
  CHECK(!r.send_flush_ok);
  Actions f;
  CHECK(a.flush(&f) == Verdict::kIllegalGroup);
  CHECK(a.on_self_leave().self_leave);
  CHECK(!a.view());
  CHECK(a.can_send() == Verdict::kIllegalGroup);

  Group j("j");  // joining: no view, so no sends and no receivers to check yet
  CHECK(j.can_send() == Verdict::kIllegalGroup);
  CHECK(!j.accepts(ViewId{1, 1}));
}
