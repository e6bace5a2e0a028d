// Spread's Flush library (fl.h, in libspread) against a real agentd: flush requests, views held
// until every member has flushed, view synchrony, subgroupcast, closed-group rules.
#include <poll.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "daemon_fixture.h"
// Last: sp.h (included by fl.h) defines int16 and int32 as macros.
#include "fl.h"

using namespace agent::testing;

namespace {

using Clock = std::chrono::steady_clock;

struct FlGot {
  int ret = 0;  // FL_receive's result; WOULD_BLOCK when nothing came in time
  service type = 0;
  std::string sender;
  std::vector<std::string> groups;
  int16 mess_type = 0;
  std::string body;
  int more = 0;

  bool is_view() const { return ret >= 0 && Is_reg_memb_mess(type); }
  bool is_flush_req() const { return ret >= 0 && Is_flush_req_mess(type); }
  bool is_data() const { return ret >= 0 && Is_regular_mess(type); }
  // The group id and vs-set of a regular view (FL_get_*_offset_memb_mess).
  std::array<int32, 3> gid() const {
    std::array<int32, 3> g{};
    std::memcpy(g.data(), body.data() + FL_get_gid_offset_memb_mess(), sizeof g);
    return g;
  }
  std::vector<std::string> vs_set() const {
    int32 n = 0;
    std::memcpy(&n, body.data() + FL_get_num_vs_offset_memb_mess(), sizeof n);
    std::vector<std::string> out;
    for (int32 i = 0; i < n; ++i)
      out.emplace_back(body.data() + FL_get_vs_set_offset_memb_mess() + i * MAX_GROUP_NAME);
    return out;
  }
};

// An FL connection, disconnected at the end of the test case whatever happened.
struct Fl {
  mailbox mbox = -1;
  std::string me;
  Fl(const Daemon& d, const char* name) {
    char pg[MAX_GROUP_NAME];
    int rc = FL_connect(d.socket_path().c_str(), name, 0, &mbox, pg);
    INFO("FL_connect " << name << ": " << rc);
    REQUIRE(rc == ACCEPT_SESSION);
    me = pg;
  }
  ~Fl() {
    if (mbox >= 0) FL_disconnect(mbox);
  }
  Fl(const Fl&) = delete;
  Fl& operator=(const Fl&) = delete;
  void disconnect() {
    REQUIRE(FL_disconnect(mbox) == 0);
    mbox = -1;
  }

  // The next message, or ret == WOULD_BLOCK after timeout_ms with none. Never blocks longer:
  // a readable mailbox may hold only the library's own messages, so it receives with
  // DONT_BLOCK.
  FlGot next(int timeout_ms = 5000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      FlGot g;
      char sender[MAX_GROUP_NAME] = {};
      char groups[16][MAX_GROUP_NAME] = {};
      char buf[4096];
      int endian = 0, ng = 0;
      g.type = DONT_BLOCK;
      g.ret = FL_receive(mbox, &g.type, sender, 16, &ng, groups, &g.mess_type, &endian,
                         sizeof buf, buf, &g.more);
      if (g.ret != WOULD_BLOCK) {
        REQUIRE(g.ret >= 0);
        CHECK(endian == 0);
        g.sender = sender;
        for (int i = 0; i < ng; ++i) g.groups.emplace_back(groups[i]);
        g.body.assign(buf, static_cast<size_t>(g.ret));
        return g;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return g;
      pollfd p{mbox, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
  }
  // The next message, which must be a flush request for group; then flushes.
  void flush_on_request(const std::string& group) {
    FlGot r = next();
    INFO(me << " expected a flush request, got type " << r.type << " ret " << r.ret);
    REQUIRE(r.is_flush_req());
    CHECK(r.sender == group);
    REQUIRE(FL_flush(mbox, group.c_str()) == 0);
  }
  // Skips a transitional signal, if one comes first; returns the view.
  FlGot view() {
    FlGot v = next();
    if (v.ret >= 0 && Is_transition_mess(v.type)) v = next();
    INFO(me << " expected a view, got type " << v.type << " ret " << v.ret);
    REQUIRE(v.is_view());
    return v;
  }
  void send(const std::string& group, const std::string& text, service svc = AGREED_MESS) {
    REQUIRE(FL_multicast(mbox, svc, group.c_str(), 1, static_cast<int>(text.size()),
                         text.data()) == static_cast<int>(text.size()));
  }
};

// a alone in group g, with its first view.
void first_member(Fl& a, const std::string& g) {
  REQUIRE(FL_join(a.mbox, g.c_str()) == 0);
  FlGot v = a.view();
  CHECK(Is_caused_join_mess(v.type));
  CHECK(v.groups == std::vector<std::string>{a.me});
  CHECK(v.vs_set() == std::vector<std::string>{a.me});
}

// `joiner` joins g, whose current members all flush; everyone gets the same view.
void join_with_flush(Fl& joiner, const std::vector<Fl*>& members, const std::string& g) {
  REQUIRE(FL_join(joiner.mbox, g.c_str()) == 0);
  for (Fl* m : members) m->flush_on_request(g);
  FlGot jv = joiner.view();
  CHECK(Is_caused_join_mess(jv.type));
  CHECK(jv.vs_set() == std::vector<std::string>{joiner.me});
  for (Fl* m : members) {
    FlGot v = m->view();
    CHECK(Is_caused_join_mess(v.type));
    CHECK(v.groups == jv.groups);
    CHECK(v.gid() == jv.gid());
    CHECK(v.vs_set() == std::vector<std::string>{joiner.me});
  }
}

}  // namespace

TEST_CASE("FL: on a join, leave or disconnect every member flushes, then all get one new view",
          "[fl]") {
  Daemon d;
  Fl a(d, "a"), b(d, "b"), c(d, "c");
  first_member(a, "g");
  join_with_flush(b, {&a}, "g");
  join_with_flush(c, {&a, &b}, "g");

  // b leaves: it gets its self-leave without flushing; a and c flush and get the view.
  REQUIRE(FL_leave(b.mbox, "g") == 0);
  FlGot bye = b.next();
  CHECK(Is_self_leave(bye.type));
  CHECK(bye.sender == "g");
  a.flush_on_request("g");
  c.flush_on_request("g");
  FlGot t = a.next();
  CHECK(Is_transition_mess(t.type));  // some members of the old view are gone
  CHECK(t.sender == "g");
  FlGot av = a.view(), cv = c.view();
  CHECK(Is_caused_leave_mess(av.type));
  CHECK(av.groups == std::vector<std::string>{a.me, c.me});
  CHECK(av.groups == cv.groups);
  CHECK(av.gid() == cv.gid());
  CHECK(av.vs_set() == std::vector<std::string>{b.me});
  CHECK(av.mess_type == 0);
  CHECK(cv.mess_type == 1);  // its index among the members

  // c disconnects.
  c.disconnect();
  a.flush_on_request("g");
  FlGot dv = a.view();
  CHECK(Is_caused_disconnect_mess(dv.type));
  CHECK(dv.groups == std::vector<std::string>{a.me});
  CHECK(dv.vs_set() == std::vector<std::string>{c.me});
}

TEST_CASE("FL: what members send before FL_flush reaches every surviving member before the view",
          "[fl]") {
  Daemon d;
  Fl a(d, "a"), b(d, "b"), c(d, "c");
  first_member(a, "g");
  join_with_flush(b, {&a}, "g");
  join_with_flush(c, {&a, &b}, "g");

  c.send("g", "c1");  // c's last words, then it leaves
  REQUIRE(FL_leave(c.mbox, "g") == 0);
  for (Fl* m : {&a, &b}) {
    FlGot r = m->next();
    REQUIRE(r.is_data());
    CHECK(r.body == "c1");
    CHECK(r.sender == c.me);
    CHECK(r.groups == std::vector<std::string>{"g"});
  }
  // A flush request: members may still send in the old view, then flush.
  for (Fl* m : {&a, &b}) REQUIRE(m->next().is_flush_req());
  a.send("g", "a1");
  a.send("g", "a2", FIFO_MESS);
  REQUIRE(FL_flush(a.mbox, "g") == 0);
  // After flushing: no more sends, no second flush, until the view.
  CHECK(FL_multicast(a.mbox, AGREED_MESS, "g", 1, 2, "no") == ILLEGAL_STATE);
  CHECK(FL_flush(a.mbox, "g") == ILLEGAL_STATE);
  b.send("g", "b1", SAFE_MESS);
  REQUIRE(FL_flush(b.mbox, "g") == 0);

  std::vector<std::vector<std::string>> seen;
  for (Fl* m : {&a, &b}) {
    std::vector<std::string> before;
    FlGot g;
    for (;;) {
      g = m->next();
      REQUIRE(g.ret >= 0);
      if (!g.is_data()) break;
      before.push_back(g.body);
    }
    if (Is_transition_mess(g.type)) g = m->next();
    REQUIRE(g.is_view());
    INFO(m->me);
    CHECK(g.groups == std::vector<std::string>{a.me, b.me});
    auto sorted = before;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<std::string>{"a1", "a2", "b1"});
    seen.push_back(before);
  }
  CHECK(seen[0] == seen[1]);  // one total order
  // Each message carries the service it was sent with.
  a.send("g", "x", FIFO_MESS);
  FlGot x = b.next();
  CHECK(x.body == "x");
  CHECK(x.type == FIFO_MESS);
  CHECK(b.next(100).ret == WOULD_BLOCK);
}

TEST_CASE("FL: a member that does not flush holds the new view back", "[fl]") {
  Daemon d;
  Fl a(d, "a"), b(d, "b"), c(d, "c");
  first_member(a, "g");
  join_with_flush(b, {&a}, "g");

  REQUIRE(FL_join(c.mbox, "g") == 0);
  a.flush_on_request("g");
  REQUIRE(b.next().is_flush_req());  // b does not flush yet
  CHECK(a.next(300).ret == WOULD_BLOCK);
  CHECK(c.next(100).ret == WOULD_BLOCK);
  // b may still send in the old view: a gets it, the joiner c does not.
  b.send("g", "old");
  CHECK(a.next().body == "old");
  CHECK(b.next().body == "old");
  REQUIRE(FL_flush(b.mbox, "g") == 0);
  FlGot av = a.view(), bv = b.view(), cv = c.view();
  CHECK(av.gid() == cv.gid());
  CHECK(bv.gid() == cv.gid());
  CHECK(cv.groups.size() == 3);
  b.send("g", "new");
  for (Fl* m : {&a, &b, &c}) CHECK(m->next().body == "new");  // c: its first message in g

  // A member that goes away instead of flushing does not hold the view forever.
  REQUIRE(FL_leave(a.mbox, "g") == 0);
  service left = a.next().type;  // (Is_self_leave evaluates its argument twice)
  REQUIRE(Is_self_leave(left));
  b.flush_on_request("g");
  REQUIRE(c.next().is_flush_req());
  c.disconnect();  // never flushes
  FlGot last = b.view();
  CHECK(last.groups == std::vector<std::string>{b.me});
  CHECK(Is_caused_network_mess(last.type));  // two changes collapsed into one view
  CHECK(last.vs_set() == std::vector<std::string>{b.me});
}

TEST_CASE("FL: subgroupcast and unicast reach only the named members", "[fl]") {
  Daemon d;
  Fl a(d, "a"), b(d, "b"), c(d, "c");
  first_member(a, "g");
  join_with_flush(b, {&a}, "g");
  join_with_flush(c, {&a, &b}, "g");

  char to[3][MAX_GROUP_NAME] = {};
  std::strcpy(to[0], b.me.c_str());
  std::strcpy(to[1], c.me.c_str());
  std::strcpy(to[2], c.me.c_str());  // duplicates are allowed
  REQUIRE(FL_subgroupcast(a.mbox, SAFE_MESS, "g", 3, to, 7, 3, "sub") == 3);
  REQUIRE(FL_unicast(a.mbox, FIFO_MESS, "g", c.me.c_str(), 8, 3, "uni") == 3);
  a.send("g", "all");
  for (Fl* m : {&b, &c}) {
    FlGot s = m->next();
    INFO(m->me);
    REQUIRE(s.is_data());
    CHECK(s.body == "sub");
    CHECK(Is_subgroup_mess(s.type));
    CHECK(Is_safe_mess(s.type));
    CHECK(s.mess_type == 7);
    CHECK(s.sender == a.me);
    CHECK(s.groups == std::vector<std::string>{b.me, c.me, "g"});  // receivers, group last
  }
  FlGot u = c.next();
  CHECK(u.body == "uni");
  CHECK(Is_subgroup_mess(u.type));
  CHECK(u.groups == std::vector<std::string>{c.me, "g"});
  CHECK(a.next().body == "all");  // a was not among the receivers
  CHECK(b.next().body == "all");  // b did not get the unicast
  CHECK(c.next().body == "all");

  // Receivers must be members of the current view.
  char stranger[1][MAX_GROUP_NAME] = {"#zed#d1"};
  CHECK(FL_subgroupcast(a.mbox, AGREED_MESS, "g", 1, stranger, 0, 1, "x") == ILLEGAL_RECEIVERS);
  CHECK(FL_unicast(a.mbox, AGREED_MESS, "g", "#zed#d1", 0, 1, "x") == ILLEGAL_RECEIVERS);
  // A private group needs no membership.
  REQUIRE(FL_multicast(b.mbox, RELIABLE_MESS, a.me.c_str(), 3, 2, "pm") == 2);
  FlGot pm = a.next();
  CHECK(pm.body == "pm");
  CHECK(pm.groups == std::vector<std::string>{a.me});
  CHECK(pm.type == RELIABLE_MESS);
}

TEST_CASE("FL: closed groups refuse calls out of turn", "[fl]") {
  Daemon d;
  Fl a(d, "a"), b(d, "b");
  CHECK(FL_multicast(a.mbox, AGREED_MESS, "g", 0, 1, "x") == ILLEGAL_GROUP);  // not joined
  CHECK(FL_leave(a.mbox, "g") == ILLEGAL_GROUP);
  CHECK(FL_flush(a.mbox, "g") == ILLEGAL_GROUP);
  REQUIRE(FL_join(a.mbox, "g") == 0);
  CHECK(FL_join(a.mbox, "g") == ILLEGAL_GROUP);  // already joining
  a.view();
  CHECK(FL_flush(a.mbox, "g") == ILLEGAL_STATE);  // no flush request to answer
  CHECK(FL_multicast(a.mbox, AGREED_MESS, "g", FL_MIN_LEGAL_MESS_TYPE - 1, 1, "x") ==
        ILLEGAL_MESSAGE_TYPE);
  CHECK(FL_multicast(a.mbox, AGREED_MESS | DONT_BLOCK, "g", 0, 1, "x") == ILLEGAL_SERVICE);
  CHECK(FL_multicast(a.mbox, AGREED_MESS, "", 0, 1, "x") == ILLEGAL_GROUP);
  CHECK(FL_multicast(a.mbox, AGREED_MESS, "g", 0, -1, "x") == ILLEGAL_MESSAGE);

  REQUIRE(FL_join(b.mbox, "g") == 0);
  CHECK(FL_multicast(b.mbox, AGREED_MESS, "g", 0, 1, "x") == ILLEGAL_GROUP);  // no view yet
  a.flush_on_request("g");
  b.view();
  a.view();
  CHECK(a.next(50).ret == WOULD_BLOCK);  // DONT_BLOCK with nothing to receive
  CHECK(FL_more_msgs(a.mbox) == 0);
  CHECK(FL_poll(a.mbox) == 0);
  REQUIRE(FL_leave(a.mbox, "g") == 0);
  CHECK(FL_leave(a.mbox, "g") == ILLEGAL_GROUP);  // already leaving
  CHECK(FL_multicast(a.mbox, AGREED_MESS, "g", 0, 1, "x") == ILLEGAL_GROUP);
  service left = a.next().type;
  CHECK(Is_self_leave(left));
  b.flush_on_request("g");
  CHECK(b.view().groups == std::vector<std::string>{b.me});

  int major = 0, minor = 0, patch = 0;
  FL_version(&major, &minor, &patch);
  CHECK((major == 2 && minor == 0 && patch == 0));
  CHECK(FL_lib_init() == 0);
  mailbox closed = a.mbox;
  a.disconnect();
  CHECK(FL_multicast(closed, AGREED_MESS, "g", 0, 1, "x") == ILLEGAL_SESSION);
  CHECK(FL_disconnect(closed) == ILLEGAL_SESSION);
}
