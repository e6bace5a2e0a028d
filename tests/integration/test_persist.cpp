// The message log through real daemons: history of persistent groups, the hand-over from
// history to live messages, positions, restarts, retention, refusals.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon_fixture.h"

using namespace agent::testing;

// Positions compare by ring, then ordinal (global: found for agent.h's type).
static bool operator<(const agent_position& a, const agent_position& b) {
  return a.ring != b.ring ? a.ring < b.ring : a.ordinal < b.ordinal;
}

namespace {

const std::string kPersist = "[persist]\ngroups = [\"log.*\", \"audit\"]\n";

Daemon persistent_daemon(const std::string& extra = "") {
  DaemonOptions o;
  o.extra_config = kPersist + extra;
  return Daemon(o);
}

void send(agent_conn* c, const std::string& group, const std::string& text,
          uint32_t service = AGENT_AGREED) {
  REQUIRE(agent_multicast(c, service, group.c_str(), 0, text.data(), text.size()) == AGENT_OK);
}

struct History {
  std::vector<std::string> payloads;
  std::vector<agent_position> positions;
  Message end;  // the HISTORY_END, or null if none came
};

// Reads a history's entries and its end; other messages must not come in between.
History read_history(agent_conn* c, int timeout_ms = 10000) {
  History h;
  for (;;) {
    Message m = receive(c, timeout_ms);
    REQUIRE(m);
    if (m->kind == AGENT_MSG_HISTORY_END) {
      h.end = std::move(m);
      return h;
    }
    INFO("kind " << m->kind << " error " << m->error_code << ": " << payload(*m));
    REQUIRE(m->kind == AGENT_MSG_DATA);
    h.payloads.push_back(payload(*m));
    h.positions.push_back(m->position);
  }
}

// A connection with a name of the daemon's choosing: the last probe's name may still be taken
// (a name is free once its disconnect is ordered).
Conn probe(const std::string& daemon) {
  agent_conn* c = nullptr;
  REQUIRE(agent_connect(daemon.c_str(), nullptr, AGENT_GENERATE_NAME, 5000, &c) == AGENT_OK);
  return Conn(c);
}

// Asks the daemon for the group's history until done(history) holds (the log is written
// apart from delivery), for at most 10 s. Returns the last history read.
History await_history(const std::string& daemon, const std::string& group,
                      const std::function<bool(const History&)>& done) {
  History h;
  await(
      [&] {
        Conn r = probe(daemon);
        REQUIRE(agent_history(r.get(), group.c_str(), nullptr, 0) == AGENT_OK);
        h = read_history(r.get());
        return done(h);
      },
      10000);
  return h;
}

// Waits (bounded) until the daemon's log holds n entries of group.
History await_logged(const std::string& daemon, const std::string& group, size_t n) {
  return await_history(daemon, group, [n](const History& h) { return h.payloads.size() >= n; });
}

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back(prefix + std::to_string(i));
  return v;
}

}  // namespace

TEST_CASE("a late joiner gets a persistent group's history, then its view, then live messages",
          "[persist]") {
  Daemon d = persistent_daemon();
  Conn a = connect(d.socket_path(), "a");
  for (int i = 0; i < 50; ++i) send(a.get(), "log.a", "m" + std::to_string(i));
  await_logged(d.socket_path(), "log.a", 50);

  Conn b = connect(d.socket_path(), "b");
  REQUIRE(agent_history(b.get(), "log.a", nullptr, /*join=*/1) == AGENT_OK);
  History h = read_history(b.get());
  CHECK(h.payloads == numbered("m", 0, 50));
  for (size_t i = 1; i < h.positions.size(); ++i) CHECK(h.positions[i - 1] < h.positions[i]);
  REQUIRE(h.end);
  CHECK(std::string(h.end->sender) == "log.a");
  CHECK(h.end->history_count == 50);
  CHECK(h.end->history_flags == 0);
  CHECK(h.end->position.ring == h.positions.back().ring);
  CHECK(h.end->position.ordinal == h.positions.back().ordinal);
  // Then its own join...
  Message view = receive(b.get());
  REQUIRE(view);
  CHECK(view->kind == AGENT_MSG_MEMBERSHIP);
  CHECK((view->service & AGENT_CAUSED_BY_JOIN) != 0);
  CHECK(members(*view) == std::vector<std::string>{"#b#d1"});
  // ...and what comes after it, live.
  send(a.get(), "log.a", "live");
  Message live = receive(b.get());
  REQUIRE(live);
  CHECK(live->kind == AGENT_MSG_DATA);
  CHECK(payload(*live) == "live");
}

TEST_CASE("history after a position resumes there, history since a time starts there",
          "[persist]") {
  Daemon d = persistent_daemon();
  Conn a = connect(d.socket_path(), "a");
  for (int i = 0; i < 20; ++i) send(a.get(), "audit", "first" + std::to_string(i));
  History all = await_logged(d.socket_path(), "audit", 20);
  REQUIRE(all.payloads.size() == 20);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a time between the batches
  int64_t between = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  for (int i = 0; i < 10; ++i) send(a.get(), "audit", "second" + std::to_string(i));
  await_logged(d.socket_path(), "audit", 30);

  Conn b = connect(d.socket_path(), "b");
  agent_position after = all.positions[9];
  REQUIRE(agent_history(b.get(), "audit", &after, 0) == AGENT_OK);
  History h = read_history(b.get());
  auto expect = numbered("first", 10, 20);
  for (auto& s : numbered("second", 0, 10)) expect.push_back(s);
  CHECK(h.payloads == expect);

  REQUIRE(agent_history_since(b.get(), "audit", between, 0) == AGENT_OK);
  CHECK(read_history(b.get()).payloads == numbered("second", 0, 10));
  // From the end: nothing, and the end names where it stands.
  agent_position last = h.positions.back();
  REQUIRE(agent_history(b.get(), "audit", &last, 0) == AGENT_OK);
  History none = read_history(b.get());
  CHECK(none.payloads.empty());
  CHECK(none.end->history_count == 0);
  CHECK(none.end->position.ordinal == last.ordinal);
}

TEST_CASE("joining with history under a steady stream loses and repeats nothing at the hand-over",
          "[persist]") {
  Daemon d = persistent_daemon();
  Conn a = connect(d.socket_path(), "a");
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread sender;
  // Stops the sender on every way out of the test (a failed REQUIRE too).
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{stop, sender};
  sender = std::thread([&] {
    for (int i = 0; !stop && i < 200000; ++i) {
      std::string t = std::to_string(i);
      if (agent_multicast(a.get(), AGENT_AGREED, "log.s", 0, t.data(), t.size()) != AGENT_OK) break;
      sent = i + 1;
      if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  REQUIRE(await([&] { return sent >= 2000; }, 20000));  // until enough is history
  Conn b = connect(d.socket_path(), "b");
  REQUIRE(agent_history(b.get(), "log.s", nullptr, 1) == AGENT_OK);
  History h = read_history(b.get());
  Message view = receive(b.get());
  REQUIRE(view);
  CHECK(view->kind == AGENT_MSG_MEMBERSHIP);
  // Live messages continue exactly where the history ended.
  std::vector<std::string> got = h.payloads;
  size_t history = got.size();
  while (got.size() < history + 1000) {
    Message m = receive(b.get());
    REQUIRE(m);
    if (m->kind == AGENT_MSG_DATA) got.push_back(payload(*m));
  }
  stop = true;
  sender.join();
  INFO("history " << history << " then live " << got.size() - history);
  CHECK(history >= 2000);
  bool consecutive = true;
  for (size_t i = 0; i < got.size() && consecutive; ++i) consecutive = got[i] == std::to_string(i);
  CHECK(consecutive);
}

TEST_CASE("every daemon of a ring logs a persistent group with the same positions",
          "[persist][ring]") {
  Cluster ring(3, kPatientProfile, "127.0.0.1", kPersist);
  Conn a = connect(ring[0].socket_path(), "a");
  // The ring is formed once a's own message comes back... and the others see it too.
  for (int i = 0; i < 30; ++i) send(a.get(), "log.r", "r" + std::to_string(i), AGENT_SAFE);
  History h1 = await_logged(ring[0].socket_path(), "log.r", 30);
  History h3 = await_logged(ring[2].socket_path(), "log.r", 30);
  CHECK(h1.payloads == numbered("r", 0, 30));
  CHECK(h3.payloads == h1.payloads);
  REQUIRE(h3.positions.size() == h1.positions.size());
  for (size_t i = 0; i < h1.positions.size(); ++i) {
    CHECK(h3.positions[i].ring == h1.positions[i].ring);
    CHECK(h3.positions[i].ordinal == h1.positions[i].ordinal);
  }
  // A live receiver on d2 that asked for positions sees the same ones.
  agent_conn* raw = nullptr;
  REQUIRE(agent_connect(ring[1].socket_path().c_str(), "p", AGENT_WANT_MEMBERSHIP |
                        AGENT_WANT_POSITIONS, 5000, &raw) == AGENT_OK);
  Conn p(raw);
  REQUIRE(agent_join(p.get(), "log.r") == AGENT_OK);
  REQUIRE(receive_until(p.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP;
  }));
  send(a.get(), "log.r", "after");
  Message live = receive_until(p.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_DATA;
  });
  REQUIRE(live);
  CHECK(h1.positions.back() < live->position);
  History h2 = await_logged(ring[1].socket_path(), "log.r", 31);
  REQUIRE(h2.positions.size() == 31);
  CHECK(h2.positions.back().ring == live->position.ring);
  CHECK(h2.positions.back().ordinal == live->position.ordinal);
}

TEST_CASE("a daemon killed with SIGKILL keeps its log", "[persist]") {
  Daemon d = persistent_daemon("durability = \"always\"\n");
  {
    Conn a = connect(d.socket_path(), "a");
    for (int i = 0; i < 200; ++i) send(a.get(), "log.k", "k" + std::to_string(i), AGENT_SAFE);
    REQUIRE(await_logged(d.socket_path(), "log.k", 200).payloads.size() == 200);
  }
  d.kill9();
  d.restart();
  Conn b = connect(d.socket_path(), "b");
  REQUIRE(agent_history(b.get(), "log.k", nullptr, 0) == AGENT_OK);
  History h = read_history(b.get());
  CHECK(h.payloads == numbered("k", 0, 200));
  // New messages go on after the old ones (a new ring: greater positions).
  send(b.get(), "log.k", "new");
  History after = await_logged(d.socket_path(), "log.k", 201);
  REQUIRE(after.payloads.size() == 201);
  CHECK(after.payloads.back() == "new");
  CHECK(h.positions.back() < after.positions.back());
}

TEST_CASE("retention keeps the newest messages and a reader learns of the gap", "[persist]") {
  Daemon d = persistent_daemon("retain_messages = 10\n");
  Conn a = connect(d.socket_path(), "a");
  for (int i = 0; i < 30; ++i) send(a.get(), "log.t", "t" + std::to_string(i));
  // Expiry runs each second: wait until it has.
  History h = await_history(d.socket_path(), "log.t",
                            [](const History& x) { return x.payloads.size() == 10; });
  CHECK(h.payloads == numbered("t", 20, 30));
  REQUIRE(h.end);
  CHECK((h.end->history_flags & AGENT_HISTORY_GAP) != 0);
}

TEST_CASE("retention rules give groups limits of their own", "[persist]") {
  Daemon d = persistent_daemon("retain_messages = 20\n[[persist.retain]]\ngroups = [\"log.s*\"]\n"
                               "messages = 5\n");
  Conn a = connect(d.socket_path(), "a");
  for (int i = 0; i < 30; ++i) {
    send(a.get(), "log.short", "s" + std::to_string(i));
    send(a.get(), "log.long", "l" + std::to_string(i));
  }
  History s = await_history(d.socket_path(), "log.short",
                            [](const History& x) { return x.payloads.size() == 5; });
  History l = await_history(d.socket_path(), "log.long",
                            [](const History& x) { return x.payloads.size() == 20; });
  CHECK(s.payloads == numbered("s", 25, 30));
  CHECK(l.payloads == numbered("l", 10, 30));
}

TEST_CASE("history of a group without a log, or of a private group, is refused", "[persist]") {
  Daemon d = persistent_daemon();
  Conn b = connect(d.socket_path(), "b");
  CHECK(agent_history(b.get(), "#b#d1", nullptr, 0) == AGENT_ERR_ILLEGAL_GROUP);
  REQUIRE(agent_history(b.get(), "plain", nullptr, 1) == AGENT_OK);
  Message m = receive(b.get());
  REQUIRE(m);
  CHECK(m->kind == AGENT_MSG_ERROR);
  CHECK(m->error_code == 17);
  CHECK(std::string(m->sender) == "plain");
  CHECK(payload(*m).find("keeps no log of group plain") != std::string::npos);

  Daemon none;  // no [persist] at all
  Conn c = connect(none.socket_path(), "c");
  REQUIRE(agent_history(c.get(), "log.a", nullptr, 0) == AGENT_OK);
  Message n = receive(c.get());
  REQUIRE(n);
  CHECK(n->error_code == 17);
  CHECK(payload(*n).find("keeps no message log") != std::string::npos);
}

TEST_CASE("a log directory holding something else is refused at start and left alone",
          "[persist]") {
  char tmpl[] = "/tmp/agent-persist-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  ::mkdir((dir + "/log").c_str(), 0700);
  std::ofstream(dir + "/log/precious.txt") << "keep me";
  {
    std::ofstream f(dir + "/agentd.toml");
    f << "[daemon]\nname = \"x\"\nstate_dir = \"" << dir << "/state\"\n[clients]\nunix_socket = \""
      << dir << "/s.sock\"\ntcp = \"off\"\n[persist]\ngroups = [\"g\"]\ndir = \"" << dir
      << "/log\"\n";
  }
  RunResult r = run_agentd({"--config", dir + "/agentd.toml"});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("holds files but no message log") != std::string::npos);
  CHECK(std::ifstream(dir + "/log/precious.txt").good());
  std::system(("rm -rf '" + dir + "'").c_str());
}

TEST_CASE("a full disk stops the log with an error to the senders, the daemon serves on",
          "[persist]") {
  if (::geteuid() != 0) {
    WARN("needs root to mount a small tmpfs; not run");
    return;
  }
  char tmpl[] = "/tmp/agent-full-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string mnt = tmpl;
  REQUIRE(std::system(("mount -t tmpfs -o size=4m tmpfs '" + mnt + "'").c_str()) == 0);
  struct Unmount {
    std::string dir;
    ~Unmount() { std::system(("umount -l '" + dir + "' && rmdir '" + dir + "'").c_str()); }
  } unmount{mnt};
  {
    Daemon d = persistent_daemon("dir = \"" + mnt + "/log\"\nmin_free_bytes = 1048576\n");
    Conn a = connect(d.socket_path(), "a");
    std::string kb(1000, 'x');
    // 6 MB for a 4 MB filesystem: the log stops on the way.
    for (int i = 0; i < 6000; ++i) send(a.get(), "log.full", kb);
    Message err = receive_until(a.get(), [](const agent_message& m) {
      return m.kind == AGENT_MSG_ERROR;
    }, 20000);
    REQUIRE(err);
    CHECK(err->error_code == 18);
    CHECK(payload(*err).find("below persist.min_free_bytes") != std::string::npos);
    // Everything was delivered all the same, and plain groups go on.
    Conn b = connect(d.socket_path(), "b");
    REQUIRE(agent_join(b.get(), "plain") == AGENT_OK);
    REQUIRE(receive_until(b.get(), [](const agent_message& m) {
      return m.kind == AGENT_MSG_MEMBERSHIP;
    }));
    send(a.get(), "plain", "still here");
    Message m = receive_until(b.get(), [](const agent_message& x) {
      return x.kind == AGENT_MSG_DATA;
    });
    REQUIRE(m);
    CHECK(payload(*m) == "still here");
    // What the log holds can still be read.
    REQUIRE(agent_history(b.get(), "log.full", nullptr, 0) == AGENT_OK);
    History h = read_history(b.get());
    CHECK(h.payloads.size() > 0);
    CHECK(h.payloads.size() < 6000);
    CHECK(d.stop() == 0);
    CHECK(d.log().find("below persist.min_free_bytes") != std::string::npos);
  }
}

TEST_CASE("durability always: every SAFE message delivered before a daemon is killed is in its "
          "log after its restart",
          "[persist][ring]") {
  Cluster ring(3, kPatientProfile, "127.0.0.1", kPersist + "durability = \"always\"\n");
  Conn r = connect(ring[1].socket_path(), "r");
  REQUIRE(agent_join(r.get(), "log.d") == AGENT_OK);
  REQUIRE(receive_until(r.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP;
  }));
  // A sender on d1 streams SAFE messages as fast as it can; d3 is killed in the middle. (With
  // durability "none" this fails now and then: a run lost 1,600 of the 3,000 messages d2 had
  // delivered from d3's log, still queued for its log's thread.)
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    Conn s = connect(ring[0].socket_path(), "s");
    for (int i = 0; !stop; ++i) {
      std::string text = "m" + std::to_string(i);
      if (agent_multicast(s.get(), AGENT_SAFE, "log.d", 0, text.data(), text.size()) != AGENT_OK)
        break;
    }
  });
  std::vector<std::string> delivered;  // to the client on d2 before the kill
  while (delivered.size() < 3000) {
    Message m = receive(r.get(), 10000);
    if (!m) break;
    if (m->kind == AGENT_MSG_DATA) delivered.push_back(payload(*m));
  }
  ring[2].kill9();
  stop = true;
  sender.join();
  REQUIRE(delivered.size() == 3000);
  ring[2].restart();
  Conn b = probe(ring[2].socket_path());
  REQUIRE(agent_history(b.get(), "log.d", nullptr, 0) == AGENT_OK);
  History h = read_history(b.get(), 20000);
  std::set<std::string> logged(h.payloads.begin(), h.payloads.end());
  size_t missing = 0;
  std::string first_missing;
  for (auto& p : delivered)
    if (!logged.count(p) && missing++ == 0) first_missing = p;
  INFO(missing << " of " << delivered.size() << " delivered messages missing from d3's log, the "
               << "first " << first_missing << "; it holds " << h.payloads.size());
  CHECK(missing == 0);
}

namespace {

// d1's and the other daemon's history of the group hold the same messages at the same positions.
void check_same_history(const History& a, const History& b) {
  CHECK(b.payloads == a.payloads);
  REQUIRE(b.positions.size() == a.positions.size());
  for (size_t i = 0; i < a.positions.size(); ++i) {
    INFO("entry " << i);
    CHECK(b.positions[i].ring == a.positions[i].ring);
    CHECK(b.positions[i].ordinal == a.positions[i].ordinal);
  }
}

// Kills d3 of a 3-daemon ring after it logged 100 messages, sends 200 more, restarts it (after
// wipe(), which may empty its log) and returns d1's history and d3's once it holds 300.
std::pair<History, History> rejoin_after_missing(const std::function<void(Daemon&)>& wipe) {
  Cluster ring(3, kPatientProfile, "127.0.0.1", kPersist);
  Conn a = connect(ring[0].socket_path(), "a");
  for (int i = 0; i < 100; ++i) send(a.get(), "log.c", "c" + std::to_string(i), AGENT_SAFE);
  REQUIRE(await_logged(ring[2].socket_path(), "log.c", 100).payloads.size() == 100);
  ring[2].kill9();
  for (int i = 100; i < 300; ++i) send(a.get(), "log.c", "c" + std::to_string(i), AGENT_SAFE);
  History h1 = await_logged(ring[0].socket_path(), "log.c", 300);
  REQUIRE(await_logged(ring[1].socket_path(), "log.c", 300).payloads.size() == 300);
  wipe(ring[2]);
  ring[2].restart();
  // Its log gets the 200 (or all 300) from the others' logs once it is in their ring again.
  History h3 = await_logged(ring[2].socket_path(), "log.c", 300);
  INFO(ring[2].log());
  CHECK(ring[2].log().find("message log catch-up: done") != std::string::npos);
  return {std::move(h1), std::move(h3)};
}

}  // namespace

TEST_CASE("a daemon that was down gets the history it missed from the others when it rejoins",
          "[persist][ring][catch-up]") {
  auto [h1, h3] = rejoin_after_missing([](Daemon&) {});
  CHECK(h1.payloads == numbered("c", 0, 300));
  check_same_history(h1, h3);
}

TEST_CASE("a daemon whose log was lost gets the ring's whole history when it rejoins",
          "[persist][ring][catch-up]") {
  auto [h1, h3] = rejoin_after_missing([](Daemon& d) {
    REQUIRE(std::system(("rm -rf '" + d.dir() + "/state/log'").c_str()) == 0);
  });
  CHECK(h1.payloads == numbered("c", 0, 300));
  check_same_history(h1, h3);
}
