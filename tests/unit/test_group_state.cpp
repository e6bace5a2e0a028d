#include <catch2/catch.hpp>

#include "groups/event_codec.h"
#include "groups/group_state.h"

using namespace agent;
using namespace agent::groups;
namespace svc = agent::proto::service;

namespace {

Event join(std::string m, std::string g) {
  Event e;
  e.kind = EventKind::kJoin;
  e.member = std::move(m);
  e.group = std::move(g);
  return e;
}
Event leave(std::string m, std::string g) {
  Event e = join(std::move(m), std::move(g));
  e.kind = EventKind::kLeave;
  return e;
}
Event disconnect(std::string m) {
  Event e;
  e.kind = EventKind::kDisconnect;
  e.member = std::move(m);
  return e;
}
Event data(std::string m, std::vector<std::string> groups, uint32_t service = svc::kAgreed) {
  Event e;
  e.kind = EventKind::kData;
  e.member = std::move(m);
  e.groups = std::move(groups);
  e.service = service;
  e.payload = "p";
  return e;
}

struct Harness {
  explicit Harness(std::string daemon = "d1") : state(std::move(daemon)) {}
  std::vector<Delivery> apply(const Event& e) {
    std::vector<Delivery> out;
    state.apply(++seq, e, out);
    return out;
  }
  GroupState state;
  uint64_t seq = 0;
};

}  // namespace

TEST_CASE("a join creates the group and tells every member, joiner included", "[groups]") {
  Harness h;
  auto d1 = h.apply(join("#a#d1", "chat"));
  REQUIRE(d1.size() == 1);
  CHECK(d1[0].data == nullptr);
  CHECK(d1[0].membership.service == (svc::kRegularMembership | svc::kCausedByJoin));
  CHECK(d1[0].membership.members == std::vector<std::string>{"#a#d1"});
  CHECK(d1[0].recipients == std::vector<std::string>{"#a#d1"});
  auto d2 = h.apply(join("#b#d1", "chat"));
  REQUIRE(d2.size() == 1);
  CHECK(d2[0].membership.members == std::vector<std::string>{"#a#d1", "#b#d1"});
  CHECK(d2[0].membership.changed == "#b#d1");
  CHECK(d2[0].membership.vs_sets == std::vector<std::vector<std::string>>{{"#b#d1"}});
  CHECK(d2[0].recipients == std::vector<std::string>{"#a#d1", "#b#d1"});
  CHECK(d2[0].membership.view.seq == 2);
  CHECK(d2[0].membership.view != d1[0].membership.view);
}

TEST_CASE("a leave tells the rest and gives the leaver a self-leave notice", "[groups]") {
  Harness h;
  h.apply(join("#a#d1", "chat"));
  h.apply(join("#b#d1", "chat"));
  auto d = h.apply(leave("#a#d1", "chat"));
  REQUIRE(d.size() == 2);
  CHECK(d[0].recipients == std::vector<std::string>{"#a#d1"});
  CHECK(d[0].membership.service == svc::kCausedByLeave);  // no view bits: self-leave
  CHECK(d[1].recipients == std::vector<std::string>{"#b#d1"});
  CHECK(d[1].membership.service == (svc::kRegularMembership | svc::kCausedByLeave));
  CHECK(d[1].membership.members == std::vector<std::string>{"#b#d1"});
  CHECK_FALSE(h.state.is_member("#a#d1", "chat"));
  // After the last member leaves, the group is gone.
  h.apply(leave("#b#d1", "chat"));
  CHECK(h.state.members("chat") == nullptr);
  CHECK(h.state.group_count() == 0);
}

TEST_CASE("a disconnect removes the member from every group it was in", "[groups]") {
  Harness h;
  h.apply(join("#a#d1", "g1"));
  h.apply(join("#a#d1", "g2"));
  h.apply(join("#b#d1", "g1"));
  h.apply(join("#b#d1", "g2"));
  auto d = h.apply(disconnect("#a#d1"));
  REQUIRE(d.size() == 3);
  // First the mark of where the session ended (agentd gives it to no client: no session has
  // that name until it is delivered), then the views of the others.
  CHECK(d[0].membership.service == svc::kCausedByDisconnect);
  CHECK(d[0].membership.changed == "#a#d1");
  CHECK(d[0].recipients == std::vector<std::string>{"#a#d1"});
  for (size_t i = 1; i < d.size(); ++i) {
    CHECK(d[i].membership.service == (svc::kRegularMembership | svc::kCausedByDisconnect));
    CHECK(d[i].membership.changed == "#a#d1");
    CHECK(d[i].recipients == std::vector<std::string>{"#b#d1"});
  }
  CHECK_FALSE(h.state.is_member("#a#d1", "g1"));
  CHECK_FALSE(h.state.is_member("#a#d1", "g2"));
  REQUIRE(h.apply(disconnect("#a#d1")).size() == 1);  // only the mark
}

TEST_CASE("duplicate joins and leaves of non-members change nothing", "[groups]") {
  Harness h;
  h.apply(join("#a#d1", "g"));
  CHECK(h.apply(join("#a#d1", "g")).empty());
  CHECK(h.apply(leave("#b#d1", "g")).empty());
  CHECK(h.state.stats().ignored == 2);
}

TEST_CASE("a message to several groups reaches each receiver once", "[groups]") {
  Harness h;
  h.apply(join("#a#d1", "g1"));
  h.apply(join("#a#d1", "g2"));
  h.apply(join("#b#d1", "g2"));
  h.apply(join("#c#d1", "g3"));
  auto d = h.apply(data("#z#d1", {"g1", "g2", "#c#d1", "g1"}));
  REQUIRE(d.size() == 1);
  CHECK(d[0].data != nullptr);
  CHECK(d[0].recipients == std::vector<std::string>{"#a#d1", "#b#d1", "#c#d1"});
}

TEST_CASE("SELF_DISCARD keeps the sender's own copy back", "[groups]") {
  Harness h;
  h.apply(join("#a#d1", "g"));
  h.apply(join("#b#d1", "g"));
  CHECK(h.apply(data("#a#d1", {"g"}))[0].recipients.size() == 2);
  auto d = h.apply(data("#a#d1", {"g"}, svc::kAgreed | svc::kSelfDiscard));
  CHECK(d[0].recipients == std::vector<std::string>{"#b#d1"});
  CHECK(h.apply(data("#a#d1", {"#a#d1"}, svc::kAgreed | svc::kSelfDiscard)).empty());
}

TEST_CASE("messages to empty groups and foreign private names deliver nothing here", "[groups]") {
  Harness h;
  CHECK(h.apply(data("#a#d1", {"nobody"})).empty());
  CHECK(h.apply(data("#a#d1", {"#b#d2"})).empty());
  auto d = h.apply(data("#a#d1", {"#b#d1"}));
  REQUIRE(d.size() == 1);
  CHECK(d[0].recipients == std::vector<std::string>{"#b#d1"});
}

TEST_CASE("daemons fed the same stream agree on views and split the deliveries", "[groups]") {
  Harness d1("d1"), d2("d2");
  std::vector<Event> stream = {join("#a#d1", "g"), join("#b#d2", "g"), data("#a#d1", {"g"}),
                               join("#c#d2", "g"), leave("#a#d1", "g"), disconnect("#b#d2")};
  for (auto& e : stream) {
    auto x = d1.apply(e);
    auto y = d2.apply(e);
    for (auto& d : x)
      for (auto& r : d.recipients) CHECK(d1.state.is_local(r));
    for (auto& d : y)
      for (auto& r : d.recipients) CHECK(d2.state.is_local(r));
    // Where both deliver a regular membership for the same event, it is the same view.
    for (auto& a : x)
      for (auto& b : y)
        if (!a.data && !b.data && a.membership.service == b.membership.service) {
          CHECK(a.membership.view == b.membership.view);
          CHECK(a.membership.members == b.membership.members);
        }
  }
  CHECK(*d1.state.members("g") == std::set<std::string>{"#c#d2"});
  CHECK(*d2.state.members("g") == std::set<std::string>{"#c#d2"});
}

namespace {
// Applies join events as ordered by the daemon hosting the member (origin = its id).
void joined(Harness& h, const std::string& member, const std::string& group, DaemonId origin) {
  std::vector<Delivery> out;
  h.state.apply(++h.seq, origin, join(member, group), out);
}
}  // namespace

TEST_CASE("a network change: transitional view, state exchange, regular view", "[groups]") {
  Harness h("d1");
  joined(h, "#a#d1", "g", 1);
  joined(h, "#b#d2", "g", 2);
  joined(h, "#c#d3", "g", 3);
  // Daemon 3 is gone: the transitional view keeps what came along.
  std::vector<Delivery> out;
  h.state.on_transitional(++h.seq, {1, 2}, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].membership.service == (svc::kTransitional | svc::kCausedByNetwork));
  CHECK(out[0].membership.members == std::vector<std::string>{"#a#d1", "#b#d2"});
  CHECK(out[0].recipients == std::vector<std::string>{"#a#d1"});
  out.clear();
  Event mine = h.state.on_regular(++h.seq, 77, {1, 2}, out);
  CHECK(out.empty());
  CHECK(h.state.exchanging());
  CHECK(mine.kind == EventKind::kState);
  CHECK(mine.memberships == std::vector<std::pair<std::string, std::string>>{{"#a#d1", "g"}});
  // A message ordered before the exchange completes is held back.
  h.state.apply(++h.seq, 2, data("#b#d2", {"g"}), out);
  CHECK(out.empty());
  h.state.apply(++h.seq, 1, mine, out);
  CHECK(out.empty());  // still waiting for daemon 2
  Event theirs;
  theirs.kind = EventKind::kState;
  theirs.config = 77;
  theirs.old_config = mine.old_config;
  theirs.memberships = {{"#b#d2", "g"}};
  h.state.apply(++h.seq, 2, theirs, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].membership.service == (svc::kRegularMembership | svc::kCausedByNetwork));
  CHECK(out[0].membership.members == std::vector<std::string>{"#a#d1", "#b#d2"});
  CHECK(out[0].membership.view.config == 77);
  CHECK(out[0].membership.vs_sets.size() == 1);
  REQUIRE(out[1].data != nullptr);  // then the held message
  CHECK(out[1].data->member == "#b#d2");
  CHECK_FALSE(h.state.exchanging());
}

TEST_CASE("a merge: the exchange unites both sides' members, vs-sets tell them apart",
          "[groups]") {
  Harness h("d1");
  joined(h, "#a#d1", "g", 1);
  std::vector<Delivery> out;
  h.state.on_transitional(++h.seq, {1}, out);
  out.clear();
  Event mine = h.state.on_regular(++h.seq, 90, {1, 2}, out);
  Event theirs;
  theirs.kind = EventKind::kState;
  theirs.config = 90;
  theirs.old_config = 55;  // daemon 2 comes from another partition
  theirs.memberships = {{"#b#d2", "g"}, {"#b#d2", "h"}};
  h.state.apply(++h.seq, 2, theirs, out);
  h.state.apply(++h.seq, 1, mine, out);
  REQUIRE(out.size() == 1);  // group h has no member here
  CHECK(out[0].membership.group == "g");
  CHECK(out[0].membership.members == std::vector<std::string>{"#a#d1", "#b#d2"});
  CHECK(out[0].membership.vs_sets ==
        std::vector<std::vector<std::string>>{{"#a#d1"}, {"#b#d2"}});
  CHECK(h.state.is_member("#b#d2", "h"));
  // A stale state (for an exchange that is over) changes nothing.
  theirs.memberships = {{"#z#d2", "g"}};
  h.state.apply(++h.seq, 2, theirs, out);
  CHECK_FALSE(h.state.is_member("#z#d2", "g"));
}

TEST_CASE("a change during an exchange: the states that arrived, held events, then the cut",
          "[groups]") {
  Harness h("d1");
  joined(h, "#a#d1", "g", 1);
  joined(h, "#b#d2", "g", 2);
  joined(h, "#c#d3", "g", 3);
  std::vector<Delivery> out;
  Event mine = h.state.on_regular(++h.seq, 5, {1, 2, 3}, out);
  Event theirs;
  theirs.kind = EventKind::kState;
  theirs.config = 5;
  theirs.memberships = {{"#b#d2", "g"}};
  h.state.apply(++h.seq, 1, mine, out);
  h.state.apply(++h.seq, 2, theirs, out);  // daemon 3's state never comes
  h.state.apply(++h.seq, 1, data("#a#d1", {"g"}), out);  // held
  h.state.apply(++h.seq, 3, join("#d#d3", "g"), out);    // held; daemon 3 will not come along
  CHECK(out.empty());
  uint64_t trans_ordinal = h.seq;
  h.state.on_transitional(trans_ordinal, {1, 2}, out, 9);
  // No regular view for a configuration whose exchange never finished: the held message, then
  // the transitional view of what the states and the cut leave. Daemon 3's join is ignored.
  REQUIRE(out.size() == 2);
  REQUIRE(out[0].data != nullptr);
  CHECK(out[0].recipients == std::vector<std::string>{"#a#d1"});
  CHECK(out[1].membership.service == (svc::kTransitional | svc::kCausedByNetwork));
  CHECK(out[1].membership.members == std::vector<std::string>{"#a#d1", "#b#d2"});
  CHECK(out[1].membership.view.config == 9);  // named by the ring being installed
  CHECK(out[1].membership.view.seq == transitional_view_seq(5, 0));
  CHECK_FALSE(h.state.is_member("#d#d3", "g"));
}

TEST_CASE("a cut-short exchange without this daemon's state keeps its members local",
          "[groups]") {
  Harness h("d1");
  joined(h, "#a#d1", "g", 1);
  joined(h, "#b#d2", "g", 2);
  std::vector<Delivery> out;
  h.state.on_regular(++h.seq, 5, {1, 2}, out);
  Event theirs;
  theirs.kind = EventKind::kState;
  theirs.config = 5;
  theirs.memberships = {{"#b#d2", "g"}};
  h.state.apply(++h.seq, 2, theirs, out);  // this daemon's own state is cut off
  h.state.on_transitional(h.seq, {1, 2}, out, 9);
  // Daemon 2 never heard of #a#d1 in this configuration: the shared table does not list it, so
  // #a#d1 gets a transitional view named by this daemon alone (daemon 2's view of g does not
  // name #a#d1), then no view until the next exchange.
  CHECK_FALSE(h.state.is_member("#a#d1", "g"));
  REQUIRE(out.size() == 1);
  CHECK(out[0].membership.service == (svc::kTransitional | svc::kCausedByNetwork));
  CHECK(out[0].membership.members == std::vector<std::string>{"#a#d1", "#b#d2"});
  CHECK(out[0].membership.view.seq == transitional_view_seq(5, own_view_slot("d1")));
  CHECK(out[0].recipients == std::vector<std::string>{"#a#d1"});
  // Its data and its own leave still reach it.
  out.clear();
  h.state.apply(++h.seq, 2, data("#b#d2", {"g"}), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].recipients == std::vector<std::string>{"#a#d1"});
  out.clear();
  h.state.apply(++h.seq, 1, leave("#a#d1", "g"), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].membership.service == svc::kCausedByLeave);
  CHECK(out[0].recipients == std::vector<std::string>{"#a#d1"});
  // The next state announces what this daemon's members are now.
  out.clear();
  Event next = h.state.on_regular(++h.seq, 7, {1, 2}, out);
  CHECK(next.memberships.empty());
}

TEST_CASE("after a transitional configuration, views are named by the transitional set",
          "[groups]") {
  Harness h("d1");
  joined(h, "#a#d1", "g", 1);
  std::vector<Delivery> out;
  h.state.on_transitional(++h.seq, {1, 2}, out, 9);
  out.clear();
  h.state.apply(++h.seq, 2, join("#b#d2", "g"), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].membership.view.config == 9);
  CHECK(out[0].membership.view.seq == transitional_view_seq(0, h.seq));
  out.clear();
  h.state.apply(++h.seq, 3, join("#c#d3", "g"), out);  // ordered by a daemon left behind
  CHECK(out.empty());
  CHECK_FALSE(h.state.is_member("#c#d3", "g"));
}

TEST_CASE("a finished exchange keeps only what the states say", "[groups]") {
  Harness h("d1");
  joined(h, "#a#d1", "g", 1);
  joined(h, "#z#d4", "g", 4);  // daemon 4 is not in the next configuration
  std::vector<Delivery> out;
  Event mine = h.state.on_regular(++h.seq, 5, {1}, out);
  h.state.apply(++h.seq, 1, mine, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].membership.members == std::vector<std::string>{"#a#d1"});
  CHECK_FALSE(h.state.is_member("#z#d4", "g"));
}

TEST_CASE("transitional view ids differ for rings that share a sequence", "[groups]") {
  uint64_t a = (uint64_t{70000} << 32) | 1, b = (uint64_t{70000} << 32) | 3;
  CHECK(transitional_view_seq(a, 0) != transitional_view_seq(b, 0));
  CHECK((transitional_view_seq(a, 5) & kTransitionalView) != 0);
}

TEST_CASE("a data event encoded from its parts decodes like one encoded whole", "[groups][codec]") {
  Event ev;
  ev.kind = EventKind::kData;
  ev.member = "#a#d1";
  ev.service = 0x20;
  ev.msg_type = -3;
  ev.groups = {"g", "#b#d2"};
  ev.payload = std::string("x\0y", 3);
  std::string whole, parts;
  encode_event(whole, ev);
  std::string_view groups[] = {"g", "#b#d2"};
  encode_data_event(parts, ev.member, ev.service, ev.msg_type, groups, 2, ev.payload);
  CHECK(whole == parts);
  std::string_view payload;
  auto viewed = decode_event(parts, &payload);
  REQUIRE(viewed);
  CHECK(viewed->payload.empty());  // not copied ...
  CHECK(payload == ev.payload);    // ... but viewed inside the bytes
  CHECK(payload.data() > parts.data());
  CHECK(viewed->groups == ev.groups);
  auto copied = decode_event(parts);
  REQUIRE(copied);
  CHECK(copied->payload == ev.payload);
  for (size_t n = 0; n < parts.size(); ++n) CHECK_FALSE(decode_event(parts.substr(0, n), &payload));
}

TEST_CASE("an event decoded into a reused Event is the one decoded fresh", "[groups][codec]") {
  Event data;
  data.kind = EventKind::kData;
  data.member = "#a-long-member-name#d1";
  data.service = 0x10;
  data.msg_type = 7;
  data.groups = {"a-group-with-a-long-name", "#b#d2", "third"};
  data.payload = "payload";
  Event join;
  join.kind = EventKind::kJoin;
  join.member = "#c#d3";
  join.group = "g";
  Event state;
  state.kind = EventKind::kState;
  state.member = "#d#d1";
  state.config = 9;
  state.old_config = 4;
  state.memberships = {{"#a#d1", "g"}};
  Event small = data;
  small.groups = {"x"};
  small.payload.clear();
  auto same = [](const Event& a, const Event& b) {
    return a.kind == b.kind && a.member == b.member && a.group == b.group &&
           a.service == b.service && a.msg_type == b.msg_type && a.groups == b.groups &&
           a.payload == b.payload && a.config == b.config && a.old_config == b.old_config &&
           a.memberships == b.memberships;
  };
  Event reused;
  for (const Event* e : {&data, &join, &data, &state, &small, &data, &join}) {
    std::string bytes;
    encode_event(bytes, *e);
    REQUIRE(decode_event(bytes, reused));
    CHECK(same(reused, *e));
    auto fresh = decode_event(bytes);
    REQUIRE(fresh);
    CHECK(same(reused, *fresh));
  }
  std::string bytes;
  encode_event(bytes, data);
  CHECK_FALSE(decode_event(bytes.substr(0, bytes.size() - 1), reused));
}
