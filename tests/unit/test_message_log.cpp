// The message log: append, ranges, time lookups, retention, reopening, refusals.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "persist/message_log.h"

using agent::persist::Entry;
using agent::persist::MessageLog;
using agent::persist::Position;
using agent::persist::Record;
using agent::persist::Retention;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/agent-log-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

Record record(uint64_t ring, uint64_t ordinal, std::vector<std::string> log_groups,
              std::string payload, uint64_t time_us = 0) {
  Record r;
  r.entry.pos = {ring, ordinal};
  r.entry.time_us = time_us ? time_us : ordinal * 1000;
  r.entry.service = 0x10;
  r.entry.msg_type = -3;
  r.entry.sender = "#alice#d1";
  r.entry.groups = log_groups;
  r.entry.groups.push_back("other");
  r.entry.payload = std::move(payload);
  r.log_groups = std::move(log_groups);
  return r;
}

std::unique_ptr<MessageLog> open_ok(const std::string& dir) {
  std::string err;
  auto log = MessageLog::open(dir, err);
  INFO(err);
  REQUIRE(log);
  REQUIRE(err.empty());
  return log;
}

std::vector<uint64_t> ordinals(const std::vector<Entry>& es) {
  std::vector<uint64_t> out;
  for (auto& e : es) out.push_back(e.pos.ordinal);
  return out;
}

}  // namespace

TEST_CASE("message log: an entry encodes and decodes to itself", "[persist]") {
  Entry e = record(7ull << 32 | 2, 99, {"g"}, std::string("pay\0load", 8)).entry;
  Entry d;
  REQUIRE(agent::persist::decode_entry(agent::persist::entry_key("g", e.pos),
                                       agent::persist::encode_entry(e), d));
  CHECK(d.pos == e.pos);
  CHECK(d.time_us == e.time_us);
  CHECK(d.service == e.service);
  CHECK(d.msg_type == e.msg_type);
  CHECK(d.sender == e.sender);
  CHECK(d.groups == e.groups);
  CHECK(d.payload == e.payload);
  std::string cut = agent::persist::encode_entry(e);
  cut.pop_back();
  CHECK_FALSE(agent::persist::decode_entry(agent::persist::entry_key("g", e.pos), cut, d));
}

TEST_CASE("message log: groups are separate ranges in position order", "[persist]") {
  TempDir dir;
  auto log = open_ok(dir.path + "/log");
  uint64_t r1 = 1ull << 32 | 1, r2 = 3ull << 32 | 2;
  std::vector<Record> batch = {record(r1, 1, {"a"}, "a1"), record(r1, 2, {"ab"}, "ab2"),
                               record(r1, 3, {"a", "ab"}, "both3"), record(r2, 1, {"a"}, "a4")};
  REQUIRE(log->append(batch, true).empty());
  auto a = log->read("a", {});
  CHECK(a.error.empty());
  CHECK_FALSE(a.more);
  REQUIRE(a.entries.size() == 3);
  CHECK(a.entries[0].payload == "a1");
  CHECK(a.entries[1].payload == "both3");
  CHECK(a.entries[2].pos == Position{r2, 1});
  auto ab = log->read("ab", {});
  CHECK(ordinals(ab.entries) == std::vector<uint64_t>{2, 3});
  CHECK(log->read("b", {}).entries.empty());
  // After a position, before another, and by pages.
  CHECK(ordinals(log->read("a", {r1, 1}).entries) == std::vector<uint64_t>{3, 1});
  CHECK(ordinals(log->read("a", {}, {r1, 3}).entries) == std::vector<uint64_t>{1});
  auto page = log->read("a", {}, agent::persist::kEnd, 2);
  CHECK(page.more);
  CHECK(ordinals(page.entries) == std::vector<uint64_t>{1, 3});
  REQUIRE(log->info("a"));
  CHECK(log->info("a")->count == 3);
  CHECK(log->info("a")->first == Position{r1, 1});
  CHECK(log->info("a")->last == Position{r2, 1});
  // A repeat of a logged position is skipped.
  REQUIRE(log->append({record(r1, 3, {"a"}, "again")}, false).empty());
  CHECK(log->info("a")->count == 3);
}

TEST_CASE("message log: what was appended is there after reopening", "[persist]") {
  TempDir dir;
  std::string path = dir.path + "/log";
  {
    auto log = open_ok(path);
    for (uint64_t i = 1; i <= 500; ++i)
      REQUIRE(log->append({record(5, i, {"g"}, std::string(100, 'x'))}, false).empty());
    REQUIRE(log->put_value("incarnation", "7").empty());
  }
  auto log = open_ok(path);
  REQUIRE(log->info("g"));
  CHECK(log->info("g")->count == 500);
  CHECK(log->info("g")->bytes == 50000);
  CHECK(log->read("g", {5, 250}, agent::persist::kEnd, 10000).entries.size() == 250);
  std::string v;
  CHECK(log->get_value("incarnation", v));
  CHECK(v == "7");
  CHECK_FALSE(log->get_value("nothing", v));
}

TEST_CASE("message log: replay from a time starts at the first entry at or after it",
          "[persist]") {
  TempDir dir;
  auto log = open_ok(dir.path + "/log");
  REQUIRE(log->append({record(9, 1, {"g"}, "1", 1000), record(9, 2, {"g"}, "2", 2000),
                       record(9, 3, {"g"}, "3", 3000)},
                      false)
              .empty());
  CHECK(ordinals(log->read("g", log->before_time("g", 2000)).entries) ==
        std::vector<uint64_t>{2, 3});
  CHECK(ordinals(log->read("g", log->before_time("g", 1500)).entries) ==
        std::vector<uint64_t>{2, 3});
  CHECK(log->read("g", log->before_time("g", 9000)).entries.empty());
  CHECK(log->read("g", log->before_time("g", 0)).entries.size() == 3);
}

TEST_CASE("message log: retention removes the oldest by count, bytes and age", "[persist]") {
  TempDir dir;
  auto log = open_ok(dir.path + "/log");
  std::vector<Record> batch;
  for (uint64_t i = 1; i <= 100; ++i) batch.push_back(record(4, i, {"g"}, std::string(10, 'p')));
  REQUIRE(log->append(batch, false).empty());
  std::string err;
  Retention by_count;
  by_count.max_messages = 60;
  CHECK(log->expire("g", by_count, 0, err) == 40);
  CHECK(err.empty());
  CHECK(log->info("g")->count == 60);
  CHECK(log->info("g")->first == Position{4, 41});
  CHECK(log->info("g")->removed_upto == Position{4, 40});
  auto all = log->read("g", {}, agent::persist::kEnd, 1000);
  CHECK(all.gap);  // the reader learns that entries it asked for are gone
  CHECK(all.entries.size() == 60);
  CHECK(all.entries.front().pos.ordinal == 41);
  CHECK_FALSE(log->read("g", {4, 40}).gap);

  Retention by_bytes;
  by_bytes.max_bytes = 250;
  CHECK(log->expire("g", by_bytes, 0, err) == 35);
  CHECK(log->info("g")->bytes == 250);

  Retention by_age;
  by_age.max_age_us = 10'000;
  // Entry i was delivered at i ms; at 95 ms, entries older than 85 ms go.
  CHECK(log->expire("g", by_age, 95'000, err) == 84 - 75);
  CHECK(log->info("g")->first == Position{4, 85});
  // Bounded per call.
  Retention all_of_it;
  all_of_it.max_messages = 1;
  CHECK(log->expire("g", all_of_it, 0, err, 5) == 5);
  CHECK(log->expire("g", all_of_it, 0, err) == 10);
  CHECK(log->info("g")->count == 1);
  CHECK(log->info("g")->first == Position{4, 100});
  // New entries after everything was nearly removed go on as before.
  REQUIRE(log->append({record(4, 101, {"g"}, "new")}, true).empty());
  CHECK(ordinals(log->read("g", {4, 99}).entries) == std::vector<uint64_t>{100, 101});
}

TEST_CASE("message log: a foreign or damaged directory is refused and left as it is",
          "[persist]") {
  TempDir dir;
  std::string err;
  std::string foreign = dir.path + "/foreign";
  mkdir(foreign.c_str(), 0700);
  std::ofstream(foreign + "/notes.txt") << "mine";
  CHECK_FALSE(MessageLog::open(foreign, err));
  CHECK(err.find("no message log") != std::string::npos);
  CHECK(std::ifstream(foreign + "/notes.txt").good());

  std::string damaged = dir.path + "/damaged";
  { open_ok(damaged); }
  std::ofstream(damaged + "/CURRENT", std::ios::trunc) << "garbage-that-names-nothing\n";
  err.clear();
  CHECK_FALSE(MessageLog::open(damaged, err));
  CHECK(err.find("cannot open the message log") != std::string::npos);
  CHECK(err.find("nothing was repaired") != std::string::npos);

  std::string regular_file = dir.path + "/file";
  std::ofstream(regular_file) << "x";
  err.clear();
  CHECK_FALSE(MessageLog::open(regular_file, err));
  CHECK_FALSE(err.empty());
}

TEST_CASE("message log: group patterns", "[persist]") {
  using agent::persist::glob_match;
  CHECK(glob_match("orders", "orders"));
  CHECK_FALSE(glob_match("orders", "orders2"));
  CHECK(glob_match("audit.*", "audit.eu"));
  CHECK(glob_match("audit.*", "audit."));
  CHECK_FALSE(glob_match("audit.*", "audit"));
  CHECK(glob_match("*", "anything"));
  CHECK(glob_match("a?c*z", "abcxyz"));
  CHECK_FALSE(glob_match("a?c*z", "acxyz"));
}

TEST_CASE("message log: the newest logged ring's sequence survives reopening (a restarted "
          "daemon's rings come after it)",
          "[persist]") {
  TempDir d;
  {
    auto log = open_ok(d.path);
    CHECK(log->last_ring_seq() == 0);
    uint64_t newer = (131080ull << 32) | 1, older = (131076ull << 32) | 4;
    REQUIRE(log->append({record(newer, 1, {"a"}, "x")}, true).empty());
    REQUIRE(log->append({record(older, 5, {"b"}, "y")}, true).empty());
    CHECK(log->last_ring_seq() == 131080);
  }
  CHECK(open_ok(d.path)->last_ring_seq() == 131080);
}

TEST_CASE("message log: a time shared by a batch is found, also after retention cut the batch",
          "[persist]") {
  TempDir dir;
  auto log = open_ok(dir.path + "/log");
  // Two batches, each delivered at one time.
  std::vector<Record> b1, b2;
  for (uint64_t i = 1; i <= 5; ++i) b1.push_back(record(8, i, {"g"}, "a", 1000));
  for (uint64_t i = 6; i <= 10; ++i) b2.push_back(record(8, i, {"g"}, "b", 2000));
  REQUIRE(log->append(b1, false).empty());
  REQUIRE(log->append(b2, false).empty());
  CHECK(ordinals(log->read("g", log->before_time("g", 2000)).entries) ==
        std::vector<uint64_t>{6, 7, 8, 9, 10});
  CHECK(log->read("g", log->before_time("g", 1000)).entries.size() == 10);
  // Retention removes the first batch and two entries of the second (which held the second
  // batch's index key): the rest of the second batch is still found from its time.
  std::string err;
  Retention r;
  r.max_messages = 3;
  CHECK(log->expire("g", r, 0, err) == 7);
  CHECK(ordinals(log->read("g", log->before_time("g", 2000)).entries) ==
        std::vector<uint64_t>{8, 9, 10});
  CHECK(ordinals(log->read("g", log->before_time("g", 500)).entries) ==
        std::vector<uint64_t>{8, 9, 10});
}

TEST_CASE("message log: what it holds of each ring is kept with the entries and survives "
          "reopening",
          "[persist][catch-up]") {
  TempDir dir;
  std::string path = dir.path + "/log";
  {
    auto log = open_ok(path);
    REQUIRE(log->append({record(5, 1, {"g"}, "a"), record(5, 4, {"h"}, "b")}, false).empty());
    Record late = record(5, 6, {"g"}, "past a gap");
    late.past_gap = true;
    REQUIRE(log->append({record(9, 2, {"g"}, "c"), late}, false).empty());
    REQUIRE(log->coverage().size() == 2);
    CHECK(log->coverage().at(5).through == 4);
    CHECK(log->coverage().at(5).past_gap);
    CHECK(log->coverage().at(9).through == 2);
    CHECK_FALSE(log->coverage().at(9).past_gap);
  }
  auto log = open_ok(path);
  REQUIRE(log->coverage().size() == 2);
  CHECK(log->coverage().at(5).through == 4);
  CHECK(log->coverage().at(5).past_gap);
  CHECK(log->coverage().at(9).through == 2);
  // Only the newest rings are described.
  for (uint64_t ring = 100; ring < 100 + agent::persist::kCoveredRings; ++ring)
    REQUIRE(log->append({record(ring, 1, {"g"}, "x")}, false).empty());
  CHECK(log->coverage().size() == agent::persist::kCoveredRings);
  CHECK(log->coverage().begin()->first == 100);
  auto reopened = std::move(log);
  reopened.reset();
  CHECK(open_ok(path)->coverage().size() == agent::persist::kCoveredRings);
}

TEST_CASE("message log: a ring is read across groups in ordinal order, a chunk at a time",
          "[persist][catch-up]") {
  TempDir dir;
  auto log = open_ok(dir.path + "/log");
  std::vector<Record> batch;
  for (uint64_t i = 1; i <= 40; ++i)
    batch.push_back(record(7, i, i % 3 == 0 ? std::vector<std::string>{"g", "h"}
                                            : std::vector<std::string>{i % 3 == 1 ? "g" : "h"},
                           std::string(1000, 'a' + i % 26)));
  REQUIRE(log->append(batch, false).empty());
  REQUIRE(log->append({record(8, 1, {"g"}, "next ring")}, false).empty());
  uint64_t reached = 0;
  std::string err;
  auto all = log->read_ring(7, 10, 40, 1 << 20, reached, err);
  REQUIRE(err.empty());
  CHECK(reached == 40);
  REQUIRE(all.size() == 30);
  for (size_t i = 0; i < all.size(); ++i) {
    uint64_t o = 11 + i;
    CHECK(all[i].entry.pos.ordinal == o);
    CHECK(all[i].log_groups.size() == (o % 3 == 0 ? 2u : 1u));  // one record per message
    CHECK(all[i].entry.payload == std::string(1000, 'a' + o % 26));
  }
  // Chunks of about 5 KB cover the range with nothing lost or repeated.
  std::vector<uint64_t> seen;
  for (uint64_t after = 0; after < 40;) {
    auto chunk = log->read_ring(7, after, 40, 5000, reached, err);
    REQUIRE(err.empty());
    REQUIRE(reached > after);
    REQUIRE(!chunk.empty());
    CHECK(chunk.size() <= 5);
    for (auto& r : chunk) {
      CHECK(r.entry.pos.ordinal > after);
      CHECK(r.entry.pos.ordinal <= reached);
      seen.push_back(r.entry.pos.ordinal);
    }
    after = reached;
  }
  CHECK(seen.size() == 40);
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == i + 1);
  // Up to an ordinal only.
  CHECK(log->read_ring(7, 0, 3, 1 << 20, reached, err).size() == 3);
  CHECK(reached == 3);
}

TEST_CASE("message log: a fill writes only what the log lacks and then holds the ring",
          "[persist][catch-up]") {
  TempDir dir;
  auto log = open_ok(dir.path + "/log");
  REQUIRE(log->append({record(7, 1, {"g"}, "one"), record(7, 2, {"g"}, "two")}, false).empty());
  REQUIRE(log->append({record(9, 1, {"g"}, "later ring")}, false).empty());
  std::vector<Record> fill;
  for (uint64_t i = 1; i <= 6; ++i)
    fill.push_back(record(7, i, {"g"}, i <= 2 ? "changed" : "filled " + std::to_string(i),
                          5000 + i));
  REQUIRE(log->fill(fill, 7, 8).empty());
  CHECK(log->coverage().at(7).through == 8);
  auto r = log->read("g", {});
  REQUIRE(r.entries.size() == 7);
  CHECK(r.entries[0].payload == "one");  // held entries are kept as they were
  CHECK(r.entries[1].payload == "two");
  CHECK(r.entries[2].payload == "filled 3");
  CHECK(r.entries[2].time_us == 5003);  // under their own time
  CHECK(r.entries[6].payload == "later ring");
  CHECK(log->info("g")->count == 7);
  CHECK(log->info("g")->first == Position{7, 1});
  CHECK(log->info("g")->last == Position{9, 1});
  // Replay from a time finds a filled entry.
  CHECK(log->before_time("g", 5004) == Position{7, 3});
  // A second fill of the same messages changes nothing.
  REQUIRE(log->fill(fill, 7, 8).empty());
  CHECK(log->info("g")->count == 7);
  // A log holding messages delivered past a gap in the ring takes nothing above its own.
  Record late = record(11, 3, {"g"}, "mine past a gap");
  late.past_gap = true;
  REQUIRE(log->append({record(11, 1, {"g"}, "a"), late}, false).empty());
  CHECK_FALSE(log->fill({record(11, 2, {"g"}, "theirs")}, 11, 4).empty());
  CHECK(log->info("g")->count == 9);
}
