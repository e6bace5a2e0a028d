// A real agentd process driven through libagent and raw sockets.
#include <signal.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>

#include "daemon_fixture.h"
#include "transport/client_protocol.h"

using namespace agent::testing;

namespace {

bool is_membership(const agent_message& m, const std::string& group, uint32_t cause) {
  return m.kind == AGENT_MSG_MEMBERSHIP && group == m.sender && (m.service & cause);
}
auto membership_of(const std::string& group, uint32_t cause) {
  return [=](const agent_message& m) { return is_membership(m, group, cause); };
}
bool is_data(const agent_message& m) { return m.kind == AGENT_MSG_DATA; }

int raw_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}
void raw_send(int fd, const std::string& b) {
  REQUIRE(::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
}
// Reads one whole frame (verb, body); verb 0 on EOF or timeout.
std::pair<int, std::string> raw_frame(int fd) {
  auto read_n = [&](size_t n) {
    std::string s(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd, &s[got], n - got, 0);
      if (r <= 0) return std::string();
      got += static_cast<size_t>(r);
    }
    return s;
  };
  std::string h = read_n(5);
  if (h.empty()) return {0, {}};
  uint32_t len = static_cast<uint8_t>(h[0]) | static_cast<uint8_t>(h[1]) << 8 |
                 static_cast<uint8_t>(h[2]) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(h[3])) << 24;
  return {static_cast<uint8_t>(h[4]), read_n(len - 1)};
}
std::string hello(const std::string& name) {
  std::string b;
  agent::proto::encode(b, agent::proto::Hello{agent::proto::kMagic, agent::proto::kVersion, 1, name});
  return b;
}

// A raw client `name` that has joined `group`, seen joining by `watcher`; rcvbuf > 0 shrinks
// its receive buffer first. Returns the socket.
int raw_member(const std::string& path, agent_conn* watcher, const std::string& name,
               const std::string& group, int rcvbuf = 0) {
  int fd = raw_connect(path);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  raw_send(fd, hello(name));
  std::string j;
  agent::proto::encode_join(j, group);
  raw_send(fd, j);
  std::string member = "#" + name + "#d1";
  REQUIRE(receive_until(watcher, [&](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && std::string(m.changed) == member;
  }));
  return fd;
}

}  // namespace

TEST_CASE("members see joins, leaves and disconnects in one order", "[agentd]") {
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  auto b = connect(d.socket_path(), "bob");
  REQUIRE(agent_join(a.get(), "chat") == AGENT_OK);
  auto m = receive_until(a.get(), membership_of("chat", AGENT_CAUSED_BY_JOIN));
  REQUIRE(m);
  CHECK(members(*m) == std::vector<std::string>{"#alice#d1"});
  REQUIRE(agent_join(b.get(), "chat") == AGENT_OK);
  auto ma = receive_until(a.get(), membership_of("chat", AGENT_CAUSED_BY_JOIN));
  auto mb = receive_until(b.get(), membership_of("chat", AGENT_CAUSED_BY_JOIN));
  REQUIRE(ma);
  REQUIRE(mb);
  CHECK(members(*ma) == std::vector<std::string>{"#alice#d1", "#bob#d1"});
  CHECK(std::string(ma->changed) == "#bob#d1");
  CHECK((ma->view.config == mb->view.config && ma->view.seq == mb->view.seq));
  CHECK((ma->service & AGENT_REG_MEMB));

  REQUIRE(agent_leave(b.get(), "chat") == AGENT_OK);
  auto self_leave = receive_until(b.get(), membership_of("chat", AGENT_CAUSED_BY_LEAVE));
  REQUIRE(self_leave);
  CHECK_FALSE((self_leave->service & AGENT_REG_MEMB));
  auto left = receive_until(a.get(), membership_of("chat", AGENT_CAUSED_BY_LEAVE));
  REQUIRE(left);
  CHECK(members(*left) == std::vector<std::string>{"#alice#d1"});

  REQUIRE(agent_join(b.get(), "chat") == AGENT_OK);
  REQUIRE(receive_until(a.get(), membership_of("chat", AGENT_CAUSED_BY_JOIN)));
  b.reset();  // agent_disconnect
  auto gone = receive_until(a.get(), membership_of("chat", AGENT_CAUSED_BY_DISCONNECT));
  REQUIRE(gone);
  CHECK(std::string(gone->changed) == "#bob#d1");
  CHECK(members(*gone) == std::vector<std::string>{"#alice#d1"});
}

TEST_CASE("a client killed with SIGKILL is seen to disconnect", "[agentd]") {
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  REQUIRE(agent_join(a.get(), "g") == AGENT_OK);
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    agent_conn* c = nullptr;
    if (agent_connect(d.socket_path().c_str(), "victim", AGENT_WANT_MEMBERSHIP, 5000, &c) != 0 ||
        agent_join(c, "g") != 0)
      std::_Exit(1);
    agent_message* m = nullptr;  // wait for our own join, so the join is ordered
    while (agent_receive(c, &m, 5000) == 0 && m->kind != AGENT_MSG_MEMBERSHIP)
      agent_message_free(m);
    char x = 1;
    if (::write(ready[1], &x, 1) != 1) std::_Exit(1);
    ::pause();
    std::_Exit(0);
  }
  char x;
  REQUIRE(::read(ready[0], &x, 1) == 1);
  REQUIRE(receive_until(a.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && std::string(m.changed) == "#victim#d1";
  }));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  auto m = receive_until(a.get(), membership_of("g", AGENT_CAUSED_BY_DISCONNECT));
  REQUIRE(m);
  CHECK(std::string(m->changed) == "#victim#d1");
  CHECK(members(*m) == std::vector<std::string>{"#alice#d1"});
}

TEST_CASE("a message to several groups is delivered once to a member of all of them",
          "[agentd]") {
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  auto s = connect(d.socket_path(), "sender");
  for (auto g : {"g1", "g2", "g3"}) REQUIRE(agent_join(a.get(), g) == AGENT_OK);
  // The joins take effect in the order; wait until the last one has.
  REQUIRE(receive_until(a.get(), membership_of("g3", AGENT_CAUSED_BY_JOIN)));
  const char* groups[] = {"g1", "g2", "g3"};
  REQUIRE(agent_multicast_groups(s.get(), AGENT_AGREED, groups, 3, 5, "one", 3) == AGENT_OK);
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED, "g2", 6, "two", 3) == AGENT_OK);
  auto m1 = receive_until(a.get(), is_data);
  REQUIRE(m1);
  CHECK(payload(*m1) == "one");
  CHECK(m1->msg_type == 5);
  CHECK(m1->ngroups == 3);
  CHECK(std::string(m1->sender) == "#sender#d1");
  auto m2 = receive_until(a.get(), is_data);
  REQUIRE(m2);
  CHECK(payload(*m2) == "two");  // not a second copy of "one"
}

TEST_CASE("AGENT_MORE holds messages until a flush, a plain send, a join or a full buffer",
          "[agentd][libagent]") {
  Daemon d;
  auto r = connect(d.socket_path(), "recv");
  auto s = connect(d.socket_path(), "sender");
  REQUIRE(agent_join(r.get(), "g") == AGENT_OK);
  REQUIRE(receive_until(r.get(), membership_of("g", AGENT_CAUSED_BY_JOIN)));
  auto data_payload = [&](int timeout_ms) -> std::string {
    auto m = receive(r.get(), timeout_ms);
    return m && m->kind == AGENT_MSG_DATA ? payload(*m) : std::string("<none>");
  };
  // Held: nothing reaches the daemon until agent_flush.
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED | AGENT_MORE, "g", 0, "a", 1) == AGENT_OK);
  REQUIRE(agent_multicast(s.get(), AGENT_FIFO | AGENT_MORE, "g", 0, "b", 1) == AGENT_OK);
  CHECK(data_payload(300) == "<none>");
  REQUIRE(agent_flush(s.get()) == AGENT_OK);
  CHECK(data_payload(5000) == "a");
  auto b = receive(r.get());
  REQUIRE(b);
  CHECK(payload(*b) == "b");
  CHECK(b->service == AGENT_FIFO);  // the flag is the library's: it never reaches the wire
  CHECK(agent_flush(s.get()) == AGENT_OK);  // nothing held: nothing to do

  // A send without the flag takes the held ones along, in order.
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED | AGENT_MORE, "g", 0, "c", 1) == AGENT_OK);
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED, "g", 0, "d", 1) == AGENT_OK);
  CHECK(data_payload(5000) == "c");
  CHECK(data_payload(5000) == "d");

  // A join is written after what is held: the message is ordered before the join.
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED | AGENT_MORE, "g", 0, "e", 1) == AGENT_OK);
  REQUIRE(agent_join(s.get(), "g") == AGENT_OK);
  CHECK(data_payload(5000) == "e");
  CHECK(receive_until(r.get(), membership_of("g", AGENT_CAUSED_BY_JOIN)));

  // A full buffer is written without a flush.
  std::string big(1000, 'x');
  const int n = AGENT_SEND_BUFFER / 1000 + 2;
  for (int i = 0; i < n; ++i)
    REQUIRE(agent_multicast(s.get(), AGENT_AGREED | AGENT_MORE, "g", 0, big.data(), big.size()) ==
            AGENT_OK);
  int got = 0;
  while (got < n && receive_until(r.get(), is_data, 1000)) ++got;
  CHECK(got > 0);
  CHECK(got < n);  // the last ones are still held
  REQUIRE(agent_flush(s.get()) == AGENT_OK);
  while (got < n && receive_until(r.get(), is_data, 5000)) ++got;
  CHECK(got == n);

  // agent_disconnect writes what is held before its goodbye.
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED | AGENT_MORE, "g", 0, "last", 4) == AGENT_OK);
  s.reset();
  auto last = receive_until(r.get(), is_data);
  REQUIRE(last);
  CHECK(payload(*last) == "last");
}

TEST_CASE("private messages reach only their addressee, in order with group messages",
          "[agentd]") {
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  auto b = connect(d.socket_path(), "bob");
  auto c = connect(d.socket_path(), "carol");
  REQUIRE(agent_join(b.get(), "g") == AGENT_OK);
  REQUIRE(agent_join(c.get(), "g") == AGENT_OK);
  REQUIRE(agent_multicast(a.get(), AGENT_FIFO, "g", 0, "1", 1) == AGENT_OK);
  REQUIRE(agent_send_private(a.get(), AGENT_FIFO, "#bob#d1", 0, "2", 1) == AGENT_OK);
  REQUIRE(agent_multicast(a.get(), AGENT_FIFO, "g", 0, "3", 1) == AGENT_OK);
  std::string seen_b, seen_c;
  while (seen_b.size() < 3) {
    auto m = receive_until(b.get(), is_data);
    REQUIRE(m);
    seen_b += payload(*m);
  }
  while (seen_c.size() < 2) {
    auto m = receive_until(c.get(), is_data);
    REQUIRE(m);
    seen_c += payload(*m);
  }
  CHECK(seen_b == "123");
  CHECK(seen_c == "13");
  // Nothing more for carol: the private message was not hers.
  CHECK_FALSE(receive_until(c.get(), is_data, 200));
}

TEST_CASE("concurrent senders: every receiver sees one identical order", "[agentd]") {
  Daemon d;
  constexpr int kSenders = 3, kPerSender = 400, kReceivers = 3;
  std::vector<Conn> rx;
  for (int i = 0; i < kReceivers; ++i) {
    rx.push_back(connect(d.socket_path(), "r" + std::to_string(i)));
    REQUIRE(agent_join(rx.back().get(), "order") == AGENT_OK);
  }
  // Wait until all three joins are ordered (the last receiver sees a view of 3).
  REQUIRE(receive_until(rx.back().get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == kReceivers;
  }));
  // Catch2 assertions are not thread-safe: the sender threads count their failures.
  std::atomic<int> failures{0};
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      agent_conn* c = nullptr;
      std::string name = "s" + std::to_string(s);
      if (agent_connect(d.socket_path().c_str(), name.c_str(), 0, 5000, &c) != AGENT_OK) {
        ++failures;
        return;
      }
      for (int i = 0; i < kPerSender; ++i) {
        std::string p = std::to_string(s) + ":" + std::to_string(i);
        if (agent_multicast(c, AGENT_AGREED, "order", 0, p.data(), p.size()) != AGENT_OK)
          ++failures;
      }
      agent_disconnect(c);
    });
  }
  std::vector<std::vector<std::string>> seqs(kReceivers);
  for (int r = 0; r < kReceivers; ++r) {
    while (seqs[r].size() < kSenders * kPerSender) {
      auto m = receive_until(rx[r].get(), is_data, 10000);
      REQUIRE(m);
      seqs[r].push_back(payload(*m));
    }
  }
  for (auto& t : senders) t.join();
  CHECK(failures == 0);
  CHECK(seqs[1] == seqs[0]);
  CHECK(seqs[2] == seqs[0]);
  // FIFO per sender within the total order.
  std::vector<int> next(kSenders, 0);
  for (auto& p : seqs[0]) {
    int s = p[0] - '0';
    CHECK(std::stoi(p.substr(2)) == next[s]++);
  }
}

TEST_CASE("names are checked: illegal names by the library, duplicates by the daemon",
          "[agentd]") {
  Daemon d;
  agent_conn* c = nullptr;
  CHECK(agent_connect(d.socket_path().c_str(), "", 0, 2000, &c) == AGENT_ERR_ILLEGAL_NAME);
  CHECK(agent_connect(d.socket_path().c_str(), "elevenchars", 0, 2000, &c) ==
        AGENT_ERR_ILLEGAL_NAME);
  CHECK(agent_connect(d.socket_path().c_str(), "a b", 0, 2000, &c) == AGENT_ERR_ILLEGAL_NAME);
  auto a = connect(d.socket_path(), "alice");
  CHECK(agent_connect(d.socket_path().c_str(), "alice", 0, 2000, &c) == AGENT_ERR_NAME_TAKEN);
  REQUIRE(agent_connect(d.socket_path().c_str(), nullptr, AGENT_GENERATE_NAME, 2000, &c) ==
          AGENT_OK);
  CHECK(std::string(agent_private_group(c)).rfind("#u", 0) == 0);
  agent_disconnect(c);
  // The daemon refuses a raw hello with a bad name, whatever the client library does.
  int fd = raw_connect(d.socket_path());
  raw_send(fd, hello("sp ace"));
  auto [verb, body] = raw_frame(fd);
  CHECK(verb == static_cast<int>(agent::proto::Verb::kError));
  CHECK(agent::proto::decode_error(body)->code == agent::proto::ErrorCode::kIllegalName);
  CHECK(raw_frame(fd).first == 0);  // closed
  ::close(fd);
}

TEST_CASE("joining twice and leaving a group not joined are reported", "[agentd]") {
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  REQUIRE(agent_join(a.get(), "g") == AGENT_OK);
  REQUIRE(agent_join(a.get(), "g") == AGENT_OK);  // accepted by the library, refused by the daemon
  REQUIRE(agent_leave(a.get(), "h") == AGENT_OK);
  auto e1 = receive_until(a.get(), [](auto& m) { return m.kind == AGENT_MSG_ERROR; });
  REQUIRE(e1);
  CHECK(e1->error_code == static_cast<int>(agent::proto::ErrorCode::kAlreadyMember));
  auto e2 = receive_until(a.get(), [](auto& m) { return m.kind == AGENT_MSG_ERROR; });
  REQUIRE(e2);
  CHECK(e2->error_code == static_cast<int>(agent::proto::ErrorCode::kNotMember));
  CHECK(std::string(e2->sender) == "h");
  CHECK(agent_join(a.get(), "bad name") == AGENT_ERR_ILLEGAL_GROUP);
  CHECK(agent_multicast(a.get(), AGENT_AGREED | AGENT_SAFE, "g", 0, "x", 1) ==
        AGENT_ERR_ILLEGAL_SERVICE);
}

TEST_CASE("malformed frames get errors and do not disturb other clients", "[agentd]") {
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  REQUIRE(agent_join(a.get(), "g") == AGENT_OK);
  int fd = raw_connect(d.socket_path());
  raw_send(fd, hello("raw"));
  REQUIRE(raw_frame(fd).first == static_cast<int>(agent::proto::Verb::kWelcome));
  // A join whose group length runs past the frame; then an unknown verb.
  raw_send(fd, std::string("\x03\x00\x00\x00\x02\x09g", 7));
  raw_send(fd, std::string("\x01\x00\x00\x00\x7f", 5));
  auto [v1, b1] = raw_frame(fd);
  REQUIRE(v1 == static_cast<int>(agent::proto::Verb::kError));
  CHECK(agent::proto::decode_error(b1)->code == agent::proto::ErrorCode::kMalformedFrame);
  auto [v2, b2] = raw_frame(fd);
  REQUIRE(v2 == static_cast<int>(agent::proto::Verb::kError));
  CHECK(agent::proto::decode_error(b2)->code == agent::proto::ErrorCode::kUnknownVerb);
  // A length prefix of 2 GiB: error, then the daemon closes this connection.
  raw_send(fd, std::string("\x00\x00\x00\x80\x04", 5));
  auto [v3, b3] = raw_frame(fd);
  REQUIRE(v3 == static_cast<int>(agent::proto::Verb::kError));
  CHECK(agent::proto::decode_error(b3)->code == agent::proto::ErrorCode::kFrameTooLarge);
  CHECK(raw_frame(fd).first == 0);
  ::close(fd);
  // Garbage and a truncated frame from a client that then vanishes.
  int g = raw_connect(d.socket_path());
  raw_send(g, std::string("\xde\xad\xbe\xef garbage", 13));
  ::close(g);
  int t = raw_connect(d.socket_path());
  raw_send(t, hello("trunc").substr(0, 7));
  ::close(t);
  // alice is unaffected.
  REQUIRE(agent_multicast(a.get(), AGENT_AGREED, "g", 0, "still here", 10) == AGENT_OK);
  auto m = receive_until(a.get(), is_data);
  REQUIRE(m);
  CHECK(payload(*m) == "still here");
}

TEST_CASE("agent_next lends messages in the order agent_receive would give them", "[agentd]") {
  Daemon d;
  auto s = connect(d.socket_path(), "sender");
  auto r = connect(d.socket_path(), "reader");
  for (auto g : {"g1", "g2"}) REQUIRE(agent_join(r.get(), g) == AGENT_OK);
  REQUIRE(receive_until(r.get(), membership_of("g2", AGENT_CAUSED_BY_JOIN)));
  // Sizes around and past the library's 256 KiB read buffer, so that frames are cut between
  // reads and one needs a larger buffer; every third message goes to both groups.
  const int n = 120;
  auto size_of = [](int i) -> size_t { return i == 60 ? 700000 : 1 + (i * 7919) % 9000; };
  const char* both[] = {"g1", "g2"};
  for (int i = 0; i < n; ++i) {
    std::string p(size_of(i), static_cast<char>('a' + i % 26));
    std::memcpy(&p[0], &i, std::min(sizeof i, p.size()));
    REQUIRE(agent_multicast_groups(s.get(), AGENT_AGREED | (i % 10 != 9 ? AGENT_MORE : 0),
                                   both, i % 3 == 0 ? 2 : 1, static_cast<int16_t>(i), p.data(),
                                   p.size()) == AGENT_OK);
  }
  REQUIRE(agent_flush(s.get()) == AGENT_OK);
  // Every other message borrowed, the others owned: one stream, one order.
  for (int i = 0; i < n; ++i) {
    INFO("message " << i);
    Message owned;
    const agent_message* m = nullptr;
    if (i % 2 == 0) {
      REQUIRE(agent_next(r.get(), &m, 5000) == AGENT_OK);
    } else {
      owned = receive(r.get());
      m = owned.get();
    }
    REQUIRE(m);
    REQUIRE(m->kind == AGENT_MSG_DATA);
    CHECK(std::string(m->sender) == "#sender#d1");
    CHECK(m->msg_type == i);
    REQUIRE(m->ngroups == (i % 3 == 0 ? 2u : 1u));
    CHECK(std::string(m->groups[0]) == "g1");
    if (m->ngroups == 2) CHECK(std::string(m->groups[1]) == "g2");
    REQUIRE(m->len == size_of(i));
    std::string expect(size_of(i), static_cast<char>('a' + i % 26));
    std::memcpy(&expect[0], &i, std::min(sizeof i, expect.size()));
    CHECK(payload(*m) == expect);
  }
  // Membership messages come through agent_next too. (The leave goes only now: requests from
  // different connections are ordered as the daemon reads them, and it reads a client that
  // sends much in bounded portions, taking other clients' requests in between.)
  REQUIRE(agent_leave(r.get(), "g2") == AGENT_OK);
  const agent_message* m = nullptr;
  REQUIRE(agent_next(r.get(), &m, 5000) == AGENT_OK);
  REQUIRE(m);
  CHECK(m->kind == AGENT_MSG_MEMBERSHIP);
  CHECK(std::string(m->sender) == "g2");
  CHECK((m->service & AGENT_CAUSED_BY_LEAVE) != 0);
  CHECK(agent_next(r.get(), &m, 50) == AGENT_ERR_TIMEOUT);
  CHECK(m == nullptr);
  CHECK(agent_next(r.get(), nullptr, 0) == AGENT_ERR_INVALID);
}

TEST_CASE("agent_next with AGENT_NO_READ_AHEAD leaves the rest in the socket", "[agentd]") {
  Daemon d;
  auto s = connect(d.socket_path(), "sender");
  agent_conn* raw = nullptr;
  REQUIRE(agent_connect(d.socket_path().c_str(), "reader", AGENT_NO_READ_AHEAD, 5000, &raw) ==
          AGENT_OK);
  Conn r(raw);
  REQUIRE(agent_join(r.get(), "g") == AGENT_OK);
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED, "g", 1, "one", 3) == AGENT_OK);
  REQUIRE(agent_multicast(s.get(), AGENT_AGREED, "g", 2, "two", 3) == AGENT_OK);
  const agent_message* m = nullptr;
  REQUIRE(agent_next(r.get(), &m, 5000) == AGENT_OK);
  CHECK(payload(*m) == "one");
  CHECK(agent_pending(r.get()) == 0);
  pollfd p{agent_fd(r.get()), POLLIN, 0};
  CHECK(::poll(&p, 1, 5000) == 1);  // "two" waits in the socket, not in the library
  REQUIRE(agent_next(r.get(), &m, 5000) == AGENT_OK);
  CHECK(payload(*m) == "two");
  CHECK(m->msg_type == 2);
}

TEST_CASE("a client that falls behind gets every message in order once it reads again",
          "[agentd]") {
  // Its daemon queues what the socket does not take and writes it when the socket drains
  // (a small socket buffer, so that the queue is what holds most of it).
  Daemon d(DaemonOptions{"d1", false, "socket_buffer_bytes = 65536\n", "", "", false});
  auto r = connect(d.socket_path(), "slow");
  auto s = connect(d.socket_path(), "sender");
  REQUIRE(agent_join(r.get(), "g") == AGENT_OK);
  REQUIRE(receive_until(r.get(), membership_of("g", AGENT_CAUSED_BY_JOIN)));
  // 8 MB, far more than the socket buffers hold, sent while the receiver does not read.
  const int n = 2000;
  std::string payload(4000, 'p');
  for (int i = 0; i < n; ++i) {
    std::memcpy(&payload[0], &i, sizeof i);
    REQUIRE(agent_multicast(s.get(), AGENT_AGREED | (i % 50 != 49 ? AGENT_MORE : 0), "g", 0,
                            payload.data(), payload.size()) == AGENT_OK);
  }
  REQUIRE(agent_flush(s.get()) == AGENT_OK);
  int got = 0;
  bool in_order = true;
  while (got < n) {
    auto m = receive(r.get(), 10000);
    REQUIRE(m);
    if (m->kind != AGENT_MSG_DATA) continue;
    int k = -1;
    REQUIRE(m->len == payload.size());
    std::memcpy(&k, m->data, sizeof k);
    in_order &= k == got;
    ++got;
  }
  CHECK(in_order);
  CHECK(got == n);
  CHECK(d.log().find("disconnecting it") == std::string::npos);  // slow, not dropped
}

TEST_CASE("a client whose socket no longer takes data is disconnected", "[agentd]") {
  // It shut down its reading side: the daemon's next write to it fails, and its member
  // leaves the group for everyone instead of staying a member nothing reaches.
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  REQUIRE(agent_join(a.get(), "g") == AGENT_OK);
  int fd = raw_member(d.socket_path(), a.get(), "half", "g");
  REQUIRE(::shutdown(fd, SHUT_RD) == 0);
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    REQUIRE(agent_multicast(a.get(), AGENT_AGREED, "g", 0, "x", 1) == AGENT_OK);
    gone = static_cast<bool>(receive_until(a.get(), [](const agent_message& m) {
      return m.kind == AGENT_MSG_MEMBERSHIP && (m.service & AGENT_CAUSED_BY_DISCONNECT) &&
             std::string(m.changed) == "#half#d1";
    }, 200));
  }
  CHECK(gone);
  ::close(fd);
}

TEST_CASE("a client that stops reading is disconnected and the daemon stays bounded", "[agentd]") {
  Daemon d(DaemonOptions{"d1", false,
                         "max_message_bytes = 65536\nqueue_limit_bytes = 1048576\n", "", "", false});
  auto a = connect(d.socket_path(), "alice");
  REQUIRE(agent_join(a.get(), "g") == AGENT_OK);
  int fd = raw_member(d.socket_path(), a.get(), "stuck", "g", 4096);
  // alice sends 60 KB messages one at a time, reading each back: her queue stays short while
  // the stuck client's grows past the 1 MiB limit (plus what its socket buffers hold).
  std::string chunk(60000, 'x');
  bool dropped = false;
  for (int i = 0; i < 400 && !dropped; ++i) {
    REQUIRE(agent_multicast(a.get(), AGENT_AGREED, "g", 0, chunk.data(), chunk.size()) ==
            AGENT_OK);
    bool own = false;
    while (!own) {
      auto m = receive(a.get(), 5000);
      REQUIRE(m);
      own = m->kind == AGENT_MSG_DATA;
      if (m->kind == AGENT_MSG_MEMBERSHIP && (m->service & AGENT_CAUSED_BY_DISCONNECT) &&
          std::string(m->changed) == "#stuck#d1")
        dropped = true;
    }
  }
  CHECK(dropped);
  CHECK(d.log().find("disconnecting it") != std::string::npos);
  ::close(fd);
}

TEST_CASE("clients connect over TCP too", "[agentd]") {
  Daemon d(DaemonOptions{"d1", true, "", "", "", false});
  auto t = connect(d.tcp_address(), "tcp");
  auto u = connect(d.socket_path(), "unix");
  REQUIRE(agent_join(u.get(), "mixed") == AGENT_OK);
  REQUIRE(receive_until(u.get(), membership_of("mixed", AGENT_CAUSED_BY_JOIN)));
  REQUIRE(agent_multicast(t.get(), AGENT_SAFE, "mixed", 1, "over tcp", 8) == AGENT_OK);
  auto m = receive_until(u.get(), is_data);
  REQUIRE(m);
  CHECK(payload(*m) == "over tcp");
  CHECK(std::string(m->sender) == "#tcp#d1");
}

TEST_CASE("SIGTERM stops the daemon cleanly and tells its clients", "[agentd]") {
  Daemon d;
  auto a = connect(d.socket_path(), "alice");
  CHECK(d.stop() == 0);
  auto m = receive(a.get(), 5000);
  if (m) {
    CHECK(m->kind == AGENT_MSG_ERROR);
    CHECK(m->error_code == static_cast<int>(agent::proto::ErrorCode::kShuttingDown));
  }
  agent_message* x = nullptr;
  CHECK(agent_receive(a.get(), &x, 5000) == AGENT_ERR_CLOSED);
  CHECK(::access(d.socket_path().c_str(), F_OK) != 0);  // socket file removed
}

TEST_CASE("the flood example sends and receives its messages", "[agentd][examples]") {
  Daemon d;
  // Once writing each message, once in groups of 16 (AGENT_MORE) with a window small enough
  // that the sender waits for its own messages, which it must flush first.
  std::string batch = GENERATE(std::string(""), std::string(" -b 16 -w 40"));
  std::string cmd = std::string(AGENT_FLOOD_PATH) + " -d " + d.socket_path() +
                    " -c 2000 -s 1024" + batch + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int st = ::pclose(p);
  INFO(out);
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(out.find("RESULT count=2000 size=1024") != std::string::npos);
}

TEST_CASE("connections that never say hello cannot hold the client slots", "[agentd][limits]") {
  DaemonOptions o;
  o.extra_config = "max_clients = 2\nhello_timeout_ms = 300\n";  // into the [clients] table
  Daemon d(o);
  int idle1 = raw_connect(d.socket_path()), idle2 = raw_connect(d.socket_path());
  // The slots are taken: a third connection is refused at once (error 16).
  int third = raw_connect(d.socket_path());
  auto refused = raw_frame(third);
  REQUIRE(refused.first == static_cast<int>(agent::proto::Verb::kError));
  CHECK(agent::proto::decode_error(refused.second)->code == agent::proto::ErrorCode::kTooManyClients);
  ::close(third);
  // The idle ones are told and closed once their hello is overdue...
  for (int fd : {idle1, idle2}) {
    auto f = raw_frame(fd);
    REQUIRE(f.first == static_cast<int>(agent::proto::Verb::kError));
    auto e = agent::proto::decode_error(f.second);
    CHECK(e->code == agent::proto::ErrorCode::kNotConnected);
    CHECK(e->text.find("no hello within 300 ms") != std::string::npos);
    CHECK(raw_frame(fd).first == 0);  // then the end
    ::close(fd);
  }
  // ...and a real client gets in.
  auto c = connect(d.socket_path(), "alice");
  CHECK(std::string(agent_private_group(c.get())) == "#alice#d1");
}
