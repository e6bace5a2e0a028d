// Spread's C API (sp.h, libspread) against real agentd processes.
#include <poll.h>
#include <signal.h>

#include <netdb.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon_fixture.h"
#include "sp_c_session.h"
// Last: it defines int16 and int32 as macros.
#include "sp.h"

using namespace agent::testing;

namespace {

struct Box {
  mailbox mbox = -1;
  std::string private_group;
};

Box sp_connect(const std::string& daemon, const char* name, int membership = 1) {
  Box b;
  char pg[MAX_GROUP_NAME];
  int rc = SP_connect(daemon.c_str(), name, 0, membership, &b.mbox, pg);
  INFO("SP_connect " << (name ? name : "(null)") << " to " << daemon << ": " << SP_strerror(rc));
  REQUIRE(rc == ACCEPT_SESSION);
  b.private_group = pg;
  return b;
}

// Disconnects at the end of a test case, whatever happened.
struct Session : Box {
  explicit Session(Box b) : Box(std::move(b)) {}
  ~Session() { SP_disconnect(mbox); }
};

struct Got {
  int ret = 0;
  service type = 0;
  std::string sender;
  int num_groups = 0;
  std::vector<std::string> groups;
  int16 mess_type = 0;
  int endian = 0;
  std::string body;  // the bytes SP_receive wrote (ret of them, or what fits)
  std::vector<char> raw;
};

// Waits (bounded) until the mailbox is readable, as select/poll loops of Spread programs do.
bool wait_readable(mailbox mbox, int timeout_ms = 10000) {
  if (SP_poll(mbox) > 0) return true;
  pollfd p{mbox, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

Got sp_recv(mailbox mbox, int max_groups = 16, int max_len = 4096, service flags = 0) {
  REQUIRE(wait_readable(mbox));
  Got g;
  g.raw.assign(static_cast<size_t>(std::max(max_len, 0)), '\x7f');
  std::vector<std::array<char, MAX_GROUP_NAME>> groups(static_cast<size_t>(std::max(max_groups, 1)));
  char sender[MAX_GROUP_NAME] = {};
  g.type = flags;
  g.ret = SP_receive(mbox, &g.type, sender, max_groups, &g.num_groups,
                     reinterpret_cast<char(*)[MAX_GROUP_NAME]>(groups.data()), &g.mess_type,
                     &g.endian, max_len, g.raw.data());
  g.sender = sender;
  if (g.ret >= 0 || g.ret == BUFFER_TOO_SHORT || g.ret == GROUPS_TOO_SHORT) {
    int n = g.num_groups < 0 ? std::min(-g.num_groups, max_groups) : g.num_groups;
    if (g.ret < 0 && !(flags & DROP_RECV)) n = 0;
    for (int i = 0; i < n; ++i) g.groups.emplace_back(groups[static_cast<size_t>(i)].data());
  }
  if (g.ret >= 0) g.body.assign(g.raw.data(), static_cast<size_t>(g.ret));
  return g;
}

// Receives until a message of which pred is true (others are dropped).
template <typename Pred>
Got sp_recv_until(mailbox mbox, Pred pred) {
  for (int i = 0; i < 100; ++i) {
    Got g = sp_recv(mbox);
    REQUIRE(g.ret >= 0);
    if (pred(g)) return g;
  }
  FAIL("no matching message among 100");
  return {};
}

bool joined(const Got& g, const std::string& group, int n) {
  return Is_reg_memb_mess(g.type) && Is_caused_join_mess(g.type) && g.sender == group &&
         g.num_groups == n;
}

Got data_msg(mailbox mbox) {
  return sp_recv_until(mbox, [](const Got& g) { return Is_regular_mess(g.type); });
}

std::vector<std::string> vs_set_members(const char* body, const vs_set_info& set) {
  std::vector<std::array<char, MAX_GROUP_NAME>> names(set.num_members + 1);
  int n = SP_get_vs_set_members(body, &set, reinterpret_cast<char(*)[MAX_GROUP_NAME]>(names.data()),
                                static_cast<int>(names.size()));
  REQUIRE(n == static_cast<int>(set.num_members));
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.emplace_back(names[static_cast<size_t>(i)].data());
  return out;
}

std::string port_of(const Daemon& d) {
  auto a = d.tcp_address();
  return a.substr(a.rfind(':') + 1);
}

}  // namespace

TEST_CASE("a C program connects, joins, multicasts and parses its membership", "[sp]") {
  Daemon d;
  CHECK(sp_c_session(d.socket_path().c_str()) == 0);
}

TEST_CASE("Spread's daemon name forms reach agentd", "[sp]") {
  DaemonOptions o;
  o.tcp = true;
  Daemon d(o);
  const std::string port = port_of(d);
  int i = 0;
  std::vector<std::string> names = {d.socket_path(), port, port + "@127.0.0.1", "127.0.0.1:" + port};
  // A host name needs a resolver that knows it (a bare chroot may have no /etc/hosts).
  addrinfo hints{}, *found = nullptr;
  hints.ai_family = AF_INET;
  if (getaddrinfo("localhost", nullptr, &hints, &found) == 0) {
    freeaddrinfo(found);
    names.push_back(port + "@localhost");
  } else {
    WARN("'localhost' does not resolve here: the name@host form is tested with an address only");
  }
  for (const std::string& name : names) {
    INFO("daemon name " << name);
    std::string user = "u" + std::to_string(i++);
    Session s(sp_connect(name, user.c_str()));
    CHECK(s.private_group == "#" + user + "#d1");
  }
  int major = 0, minor = 0, patch = 0;
  CHECK(SP_version(&major, &minor, &patch) == 1);
  CHECK((major == 5 && minor == 0 && patch == 1));
  CHECK(SP_version(nullptr, &minor, &patch) == 0);
}

TEST_CASE("connection errors", "[sp]") {
  Daemon d;
  mailbox m = -1;
  char pg[MAX_GROUP_NAME];
  CHECK(SP_connect((d.dir() + "/no-such.sock").c_str(), "x", 0, 1, &m, pg) == COULD_NOT_CONNECT);
  uint16_t closed_port = free_udp_ports(1)[0];  // nothing listens on this TCP port either
  CHECK(SP_connect(std::to_string(closed_port).c_str(), "x", 0, 1, &m, pg) == COULD_NOT_CONNECT);
  for (const char* bad : {"port", "99999", "0", "4803@", "12ab", ":4803"}) {
    INFO(bad);
    CHECK(SP_connect(bad, "x", 0, 1, &m, pg) == ILLEGAL_SPREAD);
  }
  sp_time short_wait{1, 0};
  CHECK(SP_connect_timeout((d.dir() + "/none").c_str(), "x", 0, 1, &m, pg, short_wait) ==
        COULD_NOT_CONNECT);
  CHECK(SP_connect(d.socket_path().c_str(), "x", 0, 1, nullptr, pg) == ILLEGAL_SESSION);

  Session first(sp_connect(d.socket_path(), "taken"));
  CHECK(SP_connect(d.socket_path().c_str(), "taken", 0, 1, &m, pg) == REJECT_NOT_UNIQUE);
  CHECK(SP_connect(d.socket_path().c_str(), "bad name", 0, 1, &m, pg) == REJECT_ILLEGAL_NAME);
  CHECK(SP_connect(d.socket_path().c_str(), "a#b", 0, 1, &m, pg) == REJECT_ILLEGAL_NAME);
  // Spread's rules: no name lets the daemon choose one; a long name is cut to 10 characters.
  Session generated(sp_connect(d.socket_path(), nullptr));
  CHECK(generated.private_group.size() > 4);
  CHECK(generated.private_group[0] == '#');
  CHECK(generated.private_group.substr(generated.private_group.size() - 3) == "#d1");
  Session empty(sp_connect(d.socket_path(), ""));
  CHECK(empty.private_group != generated.private_group);
  Session longname(sp_connect(d.socket_path(), "abcdefghijklmnop"));
  CHECK(longname.private_group == "#abcdefghij#d1");
  sp_time patient{5, 0};
  mailbox t = -1;
  REQUIRE(SP_connect_timeout(d.socket_path().c_str(), "timed", 0, 1, &t, pg, patient) ==
          ACCEPT_SESSION);
  CHECK(SP_disconnect(t) == 0);
}

TEST_CASE("data and membership messages carry Spread's fields and bodies", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  Session b(sp_connect(d.socket_path(), "bob"));
  REQUIRE(SP_join(a.mbox, "chat") == 0);
  Got first = sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "chat", 1); });
  CHECK(first.groups == std::vector<std::string>{"#alice#d1"});
  CHECK(first.mess_type == 0);
  REQUIRE(SP_join(b.mbox, "chat") == 0);
  Got ma = sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "chat", 2); });
  Got mb = sp_recv_until(b.mbox, [](const Got& g) { return joined(g, "chat", 2); });
  CHECK(ma.groups == std::vector<std::string>{"#alice#d1", "#bob#d1"});
  CHECK(mb.groups == ma.groups);
  CHECK(ma.mess_type == 0);  // the receiver's index among the members
  CHECK(mb.mess_type == 1);
  CHECK(ma.type == (REG_MEMB_MESS | CAUSED_BY_JOIN));
  CHECK(ma.ret == static_cast<int>(ma.body.size()));

  // The body: group id, one vs-set holding the joiner.
  membership_info ia{}, ib{}, i1{};
  REQUIRE(SP_get_memb_info(ma.body.data(), ma.type, &ia) == 1);
  REQUIRE(SP_get_memb_info(mb.body.data(), mb.type, &ib) == 1);
  REQUIRE(SP_get_memb_info(first.body.data(), first.type, &i1) == 1);
  CHECK(std::string(ia.changed_member) == "#bob#d1");
  CHECK(std::string(i1.changed_member) == "#alice#d1");
  CHECK(SP_equal_group_ids(ia.gid, ib.gid) == 1);  // the same view at both members
  CHECK(SP_equal_group_ids(ia.gid, i1.gid) == 0);  // and not the previous one
  CHECK(ia.num_vs_sets == 1);
  CHECK(ia.my_vs_set.num_members == 1);
  CHECK(vs_set_members(ma.body.data(), ia.my_vs_set) == std::vector<std::string>{"#bob#d1"});
  vs_set_info sets[4];
  unsigned mine = 99;
  REQUIRE(SP_get_vs_sets_info(ma.body.data(), sets, 4, &mine) == 1);
  CHECK(mine == 0);
  CHECK(sets[0].num_members == 1);
  CHECK(SP_get_vs_sets_info(ma.body.data(), sets, 0, &mine) == BUFFER_TOO_SHORT);
  char one[1][MAX_GROUP_NAME];
  vs_set_info two_members{2, sets[0].members_offset};
  CHECK(SP_get_vs_set_members(ma.body.data(), &two_members, one, 1) == BUFFER_TOO_SHORT);
  CHECK(SP_get_memb_info(ma.body.data(), AGREED_MESS, &ia) == ILLEGAL_MESSAGE);
  CHECK(SP_get_memb_info(ma.body.data(), ma.type | REJECT_MESS, &ia) == ILLEGAL_MESSAGE);

  // Data: sender, groups, type, service, body; endian_mismatch 0.
  REQUIRE(SP_multicast(b.mbox, AGREED_MESS, "chat", 7, 5, "hello") == 5);
  for (mailbox m : {a.mbox, b.mbox}) {
    Got g = data_msg(m);
    CHECK(g.ret == 5);
    CHECK(g.body == "hello");
    CHECK(g.type == AGREED_MESS);
    CHECK(g.sender == "#bob#d1");
    CHECK(g.groups == std::vector<std::string>{"chat"});
    CHECK(g.mess_type == 7);
    CHECK(g.endian == 0);
  }

  // Leave: the others see it; the leaver gets Spread's self-leave notice.
  REQUIRE(SP_leave(b.mbox, "chat") == 0);
  Got left = sp_recv_until(a.mbox, [](const Got& g) { return Is_membership_mess(g.type); });
  CHECK(left.type == (REG_MEMB_MESS | CAUSED_BY_LEAVE));
  CHECK(left.groups == std::vector<std::string>{"#alice#d1"});
  membership_info il{};
  REQUIRE(SP_get_memb_info(left.body.data(), left.type, &il) == 1);
  CHECK(std::string(il.changed_member) == "#bob#d1");
  Got self = sp_recv_until(b.mbox, [](const Got& g) { return Is_membership_mess(g.type); });
  CHECK(Is_self_leave(self.type));
  CHECK(self.sender == "chat");
  CHECK(self.num_groups == 0);
  CHECK(self.mess_type == -1);
  membership_info is{};
  REQUIRE(SP_get_memb_info(self.body.data(), self.type, &is) == 1);
  CHECK(is.num_vs_sets == 0);  // as Spread: only the group id for a self-leave

  // Disconnect: the others see it; the mailbox is gone.
  REQUIRE(SP_join(b.mbox, "chat") == 0);
  sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "chat", 2); });
  mailbox gone = b.mbox;
  REQUIRE(SP_disconnect(b.mbox) == 0);
  b.mbox = -1;
  Got disc = sp_recv_until(a.mbox, [](const Got& g) { return Is_membership_mess(g.type); });
  CHECK(disc.type == (REG_MEMB_MESS | CAUSED_BY_DISCONNECT));
  membership_info idc{};
  REQUIRE(SP_get_memb_info(disc.body.data(), disc.type, &idc) == 1);
  CHECK(std::string(idc.changed_member) == "#bob#d1");
  // The descriptor number is free again, so no other session may hold it for these checks.
  CHECK(SP_disconnect(gone) == ILLEGAL_SESSION);
  CHECK(SP_join(gone, "chat") == ILLEGAL_SESSION);
  CHECK(SP_multicast(gone, AGREED_MESS, "chat", 0, 1, "x") == ILLEGAL_SESSION);
  CHECK(SP_poll(gone) == ILLEGAL_SESSION);
  service st = 0;
  char sender[MAX_GROUP_NAME];
  char groups[1][MAX_GROUP_NAME];
  int ng, en;
  int16 mt;
  char buf[8];
  CHECK(SP_receive(gone, &st, sender, 1, &ng, groups, &mt, &en, 8, buf) == ILLEGAL_SESSION);
}

TEST_CASE("SELF_DISCARD keeps a sender's own copy away, and only that", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  Session b(sp_connect(d.socket_path(), "bob"));
  REQUIRE(SP_join(a.mbox, "g") == 0);
  REQUIRE(SP_join(b.mbox, "g") == 0);
  sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "g", 2); });
  sp_recv_until(b.mbox, [](const Got& g) { return joined(g, "g", 2); });
  REQUIRE(SP_multicast(a.mbox, AGREED_MESS | SELF_DISCARD, "g", 0, 3, "one") == 3);
  REQUIRE(SP_multicast(a.mbox, AGREED_MESS, "g", 0, 3, "two") == 3);
  CHECK(data_msg(a.mbox).body == "two");
  Got b1 = data_msg(b.mbox);
  CHECK(b1.body == "one");
  CHECK(b1.type == (AGREED_MESS | SELF_DISCARD));
  CHECK(data_msg(b.mbox).body == "two");
}

TEST_CASE("multigroup, scatter and private-group variants", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));  // in g1
  Session b(sp_connect(d.socket_path(), "bob"));    // in g2
  Session c(sp_connect(d.socket_path(), "carol"));  // in g1 and g2
  Session s(sp_connect(d.socket_path(), "sender"));  // in none
  REQUIRE(SP_join(a.mbox, "g1") == 0);
  REQUIRE(SP_join(b.mbox, "g2") == 0);
  REQUIRE(SP_join(c.mbox, "g1") == 0);
  REQUIRE(SP_join(c.mbox, "g2") == 0);
  sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "g1", 2); });
  sp_recv_until(b.mbox, [](const Got& g) { return joined(g, "g2", 2); });
  sp_recv_until(c.mbox, [](const Got& g) { return joined(g, "g2", 2); });

  const char two[2][MAX_GROUP_NAME] = {"g1", "g2"};
  REQUIRE(SP_multigroup_multicast(s.mbox, SAFE_MESS, 2, two, 3, 4, "both") == 4);
  char part1[] = "sca", part2[] = "tt", part3[] = "ered";
  scatter out{};
  out.num_elements = 3;
  out.elements[0] = {part1, 3};
  out.elements[1] = {part2, 2};
  out.elements[2] = {part3, 4};
  REQUIRE(SP_multigroup_scat_multicast(s.mbox, FIFO_MESS, 2, two, 4, &out) == 9);
  REQUIRE(SP_scat_multicast(s.mbox, RELIABLE_MESS, "g1", 5, &out) == 9);
  REQUIRE(SP_multicast(s.mbox, AGREED_MESS, c.private_group.c_str(), 6, 7, "private") == 7);

  // carol: each message once, with every destination group listed.
  Got c1 = data_msg(c.mbox);
  CHECK(c1.body == "both");
  CHECK(c1.groups == std::vector<std::string>{"g1", "g2"});
  CHECK(c1.type == SAFE_MESS);
  CHECK(c1.sender == "#sender#d1");
  Got c2 = data_msg(c.mbox);
  CHECK(c2.body == "scattered");
  CHECK(c2.mess_type == 4);
  CHECK(data_msg(c.mbox).body == "scattered");  // the one to g1 alone
  Got c4 = data_msg(c.mbox);
  CHECK(c4.body == "private");
  CHECK(c4.groups == std::vector<std::string>{"#carol#d1"});
  CHECK(data_msg(a.mbox).body == "both");
  CHECK(data_msg(b.mbox).body == "both");
  CHECK(data_msg(b.mbox).body == "scattered");

  // SP_scat_receive spreads the body over the elements in order.
  REQUIRE(wait_readable(a.mbox));
  char r1[2], r2[3], r3[64];
  scatter in{};
  in.num_elements = 3;
  in.elements[0] = {r1, sizeof r1};
  in.elements[1] = {r2, sizeof r2};
  in.elements[2] = {r3, sizeof r3};
  service st = 0;
  char sender[MAX_GROUP_NAME];
  char groups[4][MAX_GROUP_NAME];
  int ng = 0, en = 0;
  int16 mt = 0;
  REQUIRE(SP_scat_receive(a.mbox, &st, sender, 4, &ng, groups, &mt, &en, &in) == 9);
  CHECK(std::string(r1, 2) == "sc");
  CHECK(std::string(r2, 3) == "att");
  CHECK(std::string(r3, 4) == "ered");
  CHECK(st == FIFO_MESS);
}

namespace {
// alice in group x; a 100-byte message to x, y and z, then "next" to x.
void send_three_group_message(mailbox from, int copies) {
  const char three[3][MAX_GROUP_NAME] = {"x", "y", "z"};
  std::string payload(100, 'p');
  payload[99] = 'q';
  for (int i = 0; i < copies; ++i)
    REQUIRE(SP_multigroup_multicast(from, AGREED_MESS, 3, three, 9, 100, payload.data()) == 100);
  REQUIRE(SP_multicast(from, AGREED_MESS, "x", 10, 4, "next") == 4);
}
}  // namespace

TEST_CASE("BUFFER_TOO_SHORT and GROUPS_TOO_SHORT report the sizes and keep the message",
          "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  REQUIRE(SP_join(a.mbox, "x") == 0);
  sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "x", 1); });
  send_three_group_message(a.mbox, 1);

  Got short_body = sp_recv(a.mbox, 16, 10);
  REQUIRE(short_body.ret == BUFFER_TOO_SHORT);
  CHECK(short_body.endian == -100);   // minus the bytes needed
  CHECK(short_body.num_groups == 0);  // the groups would have fitted
  CHECK(short_body.type == AGREED_MESS);
  CHECK(short_body.mess_type == 9);
  CHECK(short_body.sender == "#alice#d1");
  CHECK(short_body.raw[0] == '\x7f');  // nothing written
  CHECK(SP_poll(a.mbox) > 0);          // the message waits in the library

  Got short_groups = sp_recv(a.mbox, 2, 4096);
  REQUIRE(short_groups.ret == GROUPS_TOO_SHORT);
  CHECK(short_groups.num_groups == -3);  // minus the groups needed
  CHECK(short_groups.endian == 0);       // the body would have fitted
  CHECK(short_groups.raw[0] == '\x7f');

  Got both = sp_recv(a.mbox, 1, 10);
  REQUIRE(both.ret == GROUPS_TOO_SHORT);
  CHECK(both.num_groups == -3);
  CHECK(both.endian == -100);

  Got whole = sp_recv(a.mbox, 3, 100);  // exactly large enough
  REQUIRE(whole.ret == 100);
  CHECK(whole.body == std::string(99, 'p') + "q");
  CHECK(whole.groups == std::vector<std::string>{"x", "y", "z"});
  CHECK(whole.num_groups == 3);
  CHECK(whole.endian == 0);
  CHECK(data_msg(a.mbox).body == "next");
}

TEST_CASE("DROP_RECV truncates what does not fit and moves on", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  Session b(sp_connect(d.socket_path(), "bob"));
  REQUIRE(SP_join(a.mbox, "x") == 0);
  sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "x", 1); });
  send_three_group_message(b.mbox, 2);

  Got cut_body = sp_recv(a.mbox, 16, 10, DROP_RECV);
  REQUIRE(cut_body.ret == BUFFER_TOO_SHORT);
  CHECK(std::string(cut_body.raw.data(), 10) == std::string(10, 'p'));
  CHECK(cut_body.endian == -100);
  CHECK(cut_body.num_groups == 3);
  CHECK(cut_body.groups == std::vector<std::string>{"x", "y", "z"});
  CHECK(cut_body.type == AGREED_MESS);  // DROP_RECV is not echoed back

  Got cut_groups = sp_recv(a.mbox, 1, 4096, DROP_RECV);  // the second copy: the first is gone
  REQUIRE(cut_groups.ret == GROUPS_TOO_SHORT);
  CHECK(cut_groups.num_groups == -3);
  CHECK(cut_groups.groups == std::vector<std::string>{"x"});
  CHECK(std::string(cut_groups.raw.data(), 100) == std::string(99, 'p') + "q");
  CHECK(cut_groups.endian == 0);

  Got next = sp_recv(a.mbox, 16, 4096, DROP_RECV);  // fits: an ordinary receive
  CHECK(next.ret == 4);
  CHECK(next.body == "next");

  // A membership message whose member list is cut: no index for the receiver.
  REQUIRE(SP_join(b.mbox, "x") == 0);
  REQUIRE(wait_readable(a.mbox));
  Got memb = sp_recv(a.mbox, 1, 4096, DROP_RECV);
  REQUIRE(memb.ret == GROUPS_TOO_SHORT);
  CHECK(memb.type == (REG_MEMB_MESS | CAUSED_BY_JOIN));
  CHECK(memb.num_groups == -2);
  CHECK(memb.groups == std::vector<std::string>{"#alice#d1"});
  CHECK(memb.mess_type == -1);
}

TEST_CASE("SP_poll counts what waits, and the mailbox works with poll(2)", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  CHECK(SP_poll(a.mbox) == 0);
  for (int i = 0; i < 3; ++i)
    REQUIRE(SP_multicast(a.mbox, AGREED_MESS, a.private_group.c_str(), 0, 2, "hi") == 2);
  // Each message keeps the descriptor readable until it is received: the library reads no
  // further than the message it returns.
  for (int i = 0; i < 3; ++i) {
    pollfd p{a.mbox, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    CHECK(SP_poll(a.mbox) > 0);
    CHECK(sp_recv(a.mbox).body == "hi");
  }
  pollfd p{a.mbox, POLLIN, 0};
  CHECK(::poll(&p, 1, 50) == 0);
  CHECK(SP_poll(a.mbox) == 0);
  CHECK(SP_poll(-1) == ILLEGAL_SESSION);
  CHECK(SP_poll(0) == ILLEGAL_SESSION);  // stdin is no mailbox
}

TEST_CASE("bad requests give Spread's error codes and leave the session usable", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  const std::string long_name(32, 'g');
  for (const char* bad : {"", "two words", "#x", "a#b", long_name.c_str()}) {
    INFO("group '" << bad << "'");
    CHECK(SP_join(a.mbox, bad) == ILLEGAL_GROUP);
    CHECK(SP_leave(a.mbox, bad) == ILLEGAL_GROUP);
    CHECK(SP_multicast(a.mbox, AGREED_MESS, bad, 0, 1, "x") == ILLEGAL_GROUP);
  }
  CHECK(SP_join(a.mbox, nullptr) == ILLEGAL_GROUP);
  CHECK(SP_multicast(a.mbox, AGREED_MESS, nullptr, 0, 1, "x") == ILLEGAL_GROUP);
  char unterminated[1][MAX_GROUP_NAME];
  std::memset(unterminated[0], 'u', MAX_GROUP_NAME);
  CHECK(SP_multigroup_multicast(a.mbox, AGREED_MESS, 1, unterminated, 0, 1, "x") == ILLEGAL_GROUP);
  const char ok[1][MAX_GROUP_NAME] = {"g"};
  CHECK(SP_multigroup_multicast(a.mbox, AGREED_MESS, 0, ok, 0, 1, "x") == ILLEGAL_GROUP);
  CHECK(SP_multigroup_multicast(a.mbox, AGREED_MESS, -1, ok, 0, 1, "x") == ILLEGAL_GROUP);
  CHECK(SP_multigroup_multicast(a.mbox, AGREED_MESS, 1, nullptr, 0, 1, "x") == ILLEGAL_GROUP);

  for (service bad : {0, REJECT_MESS | AGREED_MESS, REG_MEMB_MESS, CAUSED_BY_JOIN | FIFO_MESS,
                      SELF_DISCARD, DROP_RECV | AGREED_MESS}) {
    INFO("service " << bad);
    CHECK(SP_multicast(a.mbox, bad, "g", 0, 1, "x") == ILLEGAL_SERVICE);
  }
  CHECK(SP_multicast(a.mbox, AGREED_MESS, "g", 0, -1, "x") == ILLEGAL_MESSAGE);
  CHECK(SP_multicast(a.mbox, AGREED_MESS, "g", 0, 5, nullptr) == ILLEGAL_MESSAGE);
  CHECK(SP_scat_multicast(a.mbox, AGREED_MESS, "g", 0, nullptr) == ILLEGAL_MESSAGE);
  scatter too_many{};
  too_many.num_elements = MAX_CLIENT_SCATTER_ELEMENTS + 1;
  CHECK(SP_scat_multicast(a.mbox, AGREED_MESS, "g", 0, &too_many) == ILLEGAL_MESSAGE);
  scatter null_buf{};
  null_buf.num_elements = 1;
  null_buf.elements[0] = {nullptr, 4};
  CHECK(SP_scat_multicast(a.mbox, AGREED_MESS, "g", 0, &null_buf) == ILLEGAL_MESSAGE);

  // agentd's limit (16 MiB by default), refused before anything is sent.
  std::vector<char> big(16u * 1024 * 1024 + 1, 'b');
  CHECK(SP_multicast(a.mbox, AGREED_MESS, "g", 0, static_cast<int>(big.size()), big.data()) ==
        MESSAGE_TOO_LONG);
  scatter halves{};
  halves.num_elements = 2;
  halves.elements[0] = {big.data(), big.size() / 2};
  halves.elements[1] = {big.data(), big.size() - big.size() / 2};
  CHECK(SP_scat_multicast(a.mbox, AGREED_MESS, "g", 0, &halves) == MESSAGE_TOO_LONG);

  service st = 0;
  char sender[MAX_GROUP_NAME];
  char groups[1][MAX_GROUP_NAME];
  int ng = 0, en = 0;
  int16 mt = 0;
  char buf[8];
  CHECK(SP_receive(a.mbox, nullptr, sender, 1, &ng, groups, &mt, &en, 8, buf) == ILLEGAL_MESSAGE);
  CHECK(SP_receive(a.mbox, &st, sender, 1, &ng, nullptr, &mt, &en, 8, buf) == ILLEGAL_MESSAGE);
  CHECK(SP_receive(a.mbox, &st, sender, 1, &ng, groups, &mt, &en, 8, nullptr) == ILLEGAL_MESSAGE);

  // Still connected and working.
  REQUIRE(SP_multicast(a.mbox, AGREED_MESS, a.private_group.c_str(), 0, 2, "ok") == 2);
  CHECK(data_msg(a.mbox).body == "ok");
  CHECK(std::string(SP_strerror(ILLEGAL_GROUP)).find("group") != std::string::npos);
  CHECK(std::string(SP_strerror(12345)) == "Unrecognized error");
}

TEST_CASE("a request the daemon refuses comes back as REJECT_MESS", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  REQUIRE(SP_join(a.mbox, "g") == 0);
  REQUIRE(SP_join(a.mbox, "g") == 0);
  REQUIRE(SP_leave(a.mbox, "never") == 0);
  Got j = sp_recv_until(a.mbox, [](const Got& g) { return Is_reject_mess(g.type); });
  CHECK(!Is_regular_mess(j.type));
  CHECK(!Is_membership_mess(j.type));
  CHECK(j.sender == "g");
  CHECK(j.groups == std::vector<std::string>{"g"});
  CHECK(j.mess_type == 8);  // agentd's "already a member"
  CHECK(!j.body.empty());
  Got l = sp_recv_until(a.mbox, [](const Got& g) { return Is_reject_mess(g.type); });
  CHECK(l.sender == "never");
  CHECK(l.mess_type == 9);  // "not a member"
}

TEST_CASE("CONNECTION_CLOSED when the daemon goes, then NET_ERROR_ON_SESSION", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  REQUIRE(SP_join(a.mbox, "g") == 0);
  sp_recv_until(a.mbox, [](const Got& g) { return joined(g, "g", 1); });
  d.stop();
  Got g = sp_recv(a.mbox);
  CHECK(g.ret == CONNECTION_CLOSED);
  CHECK(sp_recv(a.mbox).ret == NET_ERROR_ON_SESSION);
  CHECK(SP_multicast(a.mbox, AGREED_MESS, "g", 0, 1, "x") == NET_ERROR_ON_SESSION);
  CHECK(SP_join(a.mbox, "h") == NET_ERROR_ON_SESSION);
  CHECK(SP_disconnect(a.mbox) == 0);
  a.mbox = -1;
}

TEST_CASE("SP_disconnect wakes a thread blocked in SP_receive", "[sp]") {
  Daemon d;
  Box a = sp_connect(d.socket_path(), "alice");
  auto blocked = std::async(std::launch::async, [mbox = a.mbox] {
    service st = 0;
    char sender[MAX_GROUP_NAME];
    char groups[4][MAX_GROUP_NAME];
    int ng = 0, en = 0;
    int16 mt = 0;
    char buf[64];
    return SP_receive(mbox, &st, sender, 4, &ng, groups, &mt, &en, sizeof buf, buf);
  });
  // Give the thread time to block; if it has not yet, it finds ILLEGAL_SESSION instead.
  CHECK(blocked.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  REQUIRE(SP_disconnect(a.mbox) == 0);
  REQUIRE(blocked.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  int rc = blocked.get();
  CHECK((rc == CONNECTION_CLOSED || rc == ILLEGAL_SESSION));
}

TEST_CASE("a partition and merge on a 3-daemon ring give vs-sets", "[sp][ring]") {
  Cluster c(3, "token_loss_ms = 100\nconsensus_timeout_ms = 60\njoin_timeout_ms = 10\n"
               "token_retransmit_ms = 10\n");
  std::vector<std::unique_ptr<Session>> s;
  for (size_t i = 0; i < 3; ++i) {
    std::string name = "m" + std::to_string(i + 1);
    s.push_back(std::make_unique<Session>(sp_connect(c[i].socket_path(), name.c_str())));
    REQUIRE(SP_join(s.back()->mbox, "g") == 0);
  }
  // Daemons started one after the other may first form smaller rings, and members that
  // joined in those see the others arrive by a merge (a network view), not by their join.
  std::vector<group_id> whole;
  for (auto& x : s) {
    Got v = sp_recv_until(x->mbox, [](const Got& g) {
      return Is_reg_memb_mess(g.type) && g.sender == "g" && g.num_groups == 3;
    });
    membership_info info{};
    REQUIRE(SP_get_memb_info(v.body.data(), v.type, &info) == 1);
    whole.push_back(info.gid);
  }
  c[1].signal(SIGSTOP);
  auto is_net_reg = [](int n) {
    return [n](const Got& g) {
      return Is_reg_memb_mess(g.type) && Is_caused_network_mess(g.type) && g.num_groups == n;
    };
  };
  // As Spread: before the new view, a transitional membership whose service type is
  // TRANSITION_MESS alone and whose group id is the view being left.
  Got trans = sp_recv_until(s[0]->mbox, [](const Got& g) {
    return Is_transition_mess(g.type) && g.sender == "g";
  });
  CHECK(trans.type == TRANSITION_MESS);
  membership_info trans_info{};
  REQUIRE(SP_get_memb_info(trans.body.data(), trans.type, &trans_info) == 1);
  CHECK(SP_equal_group_ids(trans_info.gid, whole[0]) == 1);
  Got apart = sp_recv_until(s[0]->mbox, is_net_reg(2));
  c[1].signal(SIGCONT);
  CHECK(apart.groups == std::vector<std::string>{"#m1#d1", "#m3#d3"});
  // Together again: one vs-set per side of the partition; each member's own set is marked.
  std::vector<group_id> ids;
  for (size_t i = 0; i < 3; ++i) {
    Got m = sp_recv_until(s[i]->mbox, is_net_reg(3));
    CHECK(m.groups == std::vector<std::string>{"#m1#d1", "#m2#d2", "#m3#d3"});
    membership_info info{};
    REQUIRE(SP_get_memb_info(m.body.data(), m.type, &info) == 1);
    CHECK(std::string(info.changed_member).empty());
    REQUIRE(info.num_vs_sets == 2);
    vs_set_info sets[4];
    unsigned mine = 99;
    REQUIRE(SP_get_vs_sets_info(m.body.data(), sets, 4, &mine) == 2);
    std::vector<std::vector<std::string>> all;
    for (int k = 0; k < 2; ++k) all.push_back(vs_set_members(m.body.data(), sets[k]));
    std::sort(all.begin(), all.end());
    CHECK(all == std::vector<std::vector<std::string>>{{"#m1#d1", "#m3#d3"}, {"#m2#d2"}});
    REQUIRE(mine < 2);
    auto my_set = vs_set_members(m.body.data(), sets[mine]);
    CHECK(std::find(my_set.begin(), my_set.end(), s[i]->private_group) != my_set.end());
    CHECK(vs_set_members(m.body.data(), info.my_vs_set) == my_set);
    ids.push_back(info.gid);
  }
  CHECK(SP_equal_group_ids(ids[0], ids[1]) == 1);
  CHECK(SP_equal_group_ids(ids[0], ids[2]) == 1);
}

namespace {
struct LoopState {
  mailbox mbox;
  std::vector<std::string> got;
  bool timed_out = false;
};
void on_readable(int fd, int, void* data) {
  auto* st = static_cast<LoopState*>(data);
  service type = 0;
  char sender[MAX_GROUP_NAME];
  char groups[4][MAX_GROUP_NAME];
  int ng = 0, en = 0;
  int16 mt = 0;
  char buf[64];
  int n = SP_receive(fd, &type, sender, 4, &ng, groups, &mt, &en, sizeof buf, buf);
  if (n < 0) {
    E_exit_events();
    return;
  }
  st->got.emplace_back(buf, static_cast<size_t>(n));
  if (st->got.size() == 3) E_exit_events();
}
void send_burst(int, void* data) {
  auto* st = static_cast<LoopState*>(data);
  char pg[MAX_GROUP_NAME] = "#alice#d1";
  for (const char* m : {"one", "two", "three"})
    SP_multicast(st->mbox, AGREED_MESS, pg, 0, static_cast<int>(std::strlen(m)), m);
}
void give_up(int, void* data) {
  static_cast<LoopState*>(data)->timed_out = true;
  E_exit_events();
}
}  // namespace

TEST_CASE("Spread's event loop serves the mailbox and timers", "[sp]") {
  Daemon d;
  Session a(sp_connect(d.socket_path(), "alice"));
  LoopState st{a.mbox, {}, false};
  REQUIRE(E_init() == 0);
  REQUIRE(E_attach_fd(a.mbox, READ_FD, on_readable, 0, &st, HIGH_PRIORITY) == 0);
  CHECK(E_num_active(HIGH_PRIORITY) == 1);
  REQUIRE(E_queue(send_burst, 0, &st, sp_time{0, 1000}) == 0);
  REQUIRE(E_queue(give_up, 0, &st, sp_time{10, 0}) == 0);
  E_handle_events();
  CHECK_FALSE(st.timed_out);
  CHECK(st.got == std::vector<std::string>{"one", "two", "three"});
  CHECK(E_dequeue(give_up, 0, &st) == 0);
  CHECK(E_dequeue(give_up, 0, &st) == -1);
  CHECK(E_detach_fd(a.mbox, READ_FD) == 0);
  CHECK(E_attach_fd(-1, READ_FD, on_readable, 0, &st, HIGH_PRIORITY) == -1);
  sp_time t1{5, 900000}, t2{1, 200000};
  sp_time sum = E_add_time(t1, t2);
  CHECK((sum.sec == 7 && sum.usec == 100000));
  sp_time diff = E_sub_time(t2, t1);
  CHECK(E_compare_time(diff, sp_time{0, 0}) == -1);
  CHECK(E_compare_time(E_sub_time(sum, t2), t1) == 0);
}

TEST_CASE("SP_disconnect over TCP loses none of the messages sent before it", "[sp][disconnect]") {
  // What the sender wrote can still be in d1's socket when it disconnects, with its own
  // deliveries unread in its socket.
  auto d = slow_reading_pair();
  auto rx = connect(d[1]->socket_path(), "rx");
  REQUIRE(agent_join(rx.get(), "g") == AGENT_OK);
  REQUIRE(receive_until(rx.get(), [](auto& m) { return m.kind == AGENT_MSG_MEMBERSHIP; }, 10000));
  Box tx = sp_connect(d[0]->tcp_address(), "tx");
  REQUIRE(SP_join(tx.mbox, "g") == 0);
  REQUIRE(receive_until(rx.get(), [](auto& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 2;
  }, 10000));
  std::string body(1024, 'x');
  for (int i = 0; i < 3000; ++i)
    REQUIRE(SP_multicast(tx.mbox, AGREED_MESS, "g", 0, static_cast<int>(body.size()), body.data()) ==
            static_cast<int>(body.size()));
  REQUIRE(SP_disconnect(tx.mbox) == 0);
  CHECK(count_data_until_membership(rx.get()) == 3000);
}

TEST_CASE("SP_connect over TCP authenticates with AGENT_SECRET_FILE and AGENT_USER", "[sp][tcpauth]") {
  DaemonOptions o;
  o.tcp = true;
  o.tcp_secrets = "spuser 0123456789abcdef0123\nother fedcba9876543210fedc\n";
  Daemon d(o);
  const std::string port = port_of(d);
  std::string file = d.dir() + "/sp.secrets";
  write_private_file(file, "spuser 0123456789abcdef0123\n");
  ::setenv("AGENT_SECRET_FILE", file.c_str(), 1);
  ::unsetenv("AGENT_USER");
  {
    Session s(sp_connect(port, "sp1"));  // Spread's "4803" form, over TCP
    CHECK(s.private_group == "#sp1#d1");
  }
  mailbox m = -1;
  char pg[MAX_GROUP_NAME];
  write_private_file(file, "spuser fedcba9876543210fedc\n");  // the other's secret
  CHECK(SP_connect(port.c_str(), "sp2", 0, 1, &m, pg) == REJECT_AUTH);
  ::unsetenv("AGENT_SECRET_FILE");
  CHECK(SP_connect(port.c_str(), "sp3", 0, 1, &m, pg) == REJECT_AUTH);
  CHECK(std::string(SP_strerror(REJECT_AUTH)).find("authentication failed") != std::string::npos);
}
