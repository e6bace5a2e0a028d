// The message log's catch-up: the plan every member makes from the state events' summaries,
// its events' encoding, and the donor's and needers' steps.
#include <catch2/catch.hpp>

#include "agentd/catch_up.h"

using agent::daemon::CatchUp;
using agent::daemon::CatchUpTask;
using agent::daemon::FillEvent;
using agent::daemon::LogSummary;
using agent::persist::Coverage;
using agent::persist::RingCover;

namespace {

LogSummary log_of(Coverage c) { return LogSummary{true, std::move(c)}; }

std::string summary_bytes(const LogSummary& s) {
  std::string out;
  encode_log_summary(out, s);
  return out;
}

agent::persist::Record rec(uint64_t ring, uint64_t ordinal, std::string payload) {
  agent::persist::Record r;
  r.entry.pos = {ring, ordinal};
  r.entry.time_us = 1000 + ordinal;
  r.entry.service = 0x10;
  r.entry.sender = "#s#d1";
  r.entry.groups = {"log.a", "plain"};
  r.entry.payload = std::move(payload);
  r.log_groups = {"log.a"};
  return r;
}

}  // namespace

TEST_CASE("catch-up plan: the member holding most of each old ring gives the others the rest",
          "[catch-up]") {
  // d3 was down during ring 20 and lost the tail of ring 10; d2 has ring 10 up to 50 as d1 has.
  std::map<agent::membership::NodeId, LogSummary> all{
      {1, log_of({{10, {50, false}}, {20, {30, false}}})},
      {2, log_of({{10, {50, false}}, {20, {30, false}}})},
      {3, log_of({{10, {42, false}}})},
  };
  auto plan = plan_catch_up(30, all);
  REQUIRE(plan.size() == 2);
  CHECK(plan[0] == CatchUpTask{10, 1, 42, 50});  // the lowest id among equals donates
  CHECK(plan[1] == CatchUpTask{20, 1, 0, 30});
  // Nothing is missing: no plan. The current ring is never planned.
  all[3] = all[1];
  all[3].coverage[30] = {5, false};
  CHECK(plan_catch_up(30, all).empty());
}

TEST_CASE("catch-up plan: members past a gap, without a log, or beyond a horizon", "[catch-up]") {
  std::map<agent::membership::NodeId, LogSummary> all{
      {1, log_of({{10, {40, true}}})},   // delivered past a gap after 40: takes nothing above
      {2, log_of({{10, {45, false}}})},  // holds most: the donor
      {3, LogSummary{}},                 // keeps no log: neither gives nor takes
      {4, log_of({{10, {20, false}}})},
  };
  auto plan = plan_catch_up(30, all);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0] == CatchUpTask{10, 2, 20, 45});
  all.erase(4);
  CHECK(plan_catch_up(30, all).empty());  // the only one lacking it cannot take it
  // A member that describes as many rings as it keeps may hold older ones without saying so:
  // rings older than its oldest are not compared.
  Coverage full;
  for (uint64_t r = 100; r < 100 + agent::persist::kCoveredRings; ++r) full[r] = {1, false};
  all = {{1, log_of(full)}, {2, log_of({{50, {9, false}}, {150, {3, false}}})}};
  plan = plan_catch_up(1000, all);
  REQUIRE(plan.size() == agent::persist::kCoveredRings);  // ring 50 is not among them
  CHECK(plan[0] == CatchUpTask{100, 1, 0, 1});
  CHECK(plan[50] == CatchUpTask{150, 2, 1, 3});  // d2 holds more of ring 150
}

TEST_CASE("catch-up events encode and decode, damaged ones are refused", "[catch-up]") {
  LogSummary s = log_of({{10, {50, false}}, {20, {3, true}}});
  LogSummary back;
  REQUIRE(decode_log_summary(summary_bytes(s), back));
  CHECK(back.has_log);
  CHECK(back.coverage == s.coverage);
  CHECK_FALSE(decode_log_summary(summary_bytes(s).substr(0, 10), back));
  std::string no_log = summary_bytes(LogSummary{});
  REQUIRE(decode_log_summary(no_log, back));
  CHECK_FALSE(back.has_log);

  FillEvent f;
  f.config = 30;
  f.ring = 10;
  f.after = 42;
  f.reached = 50;
  f.final = true;
  f.records = {rec(10, 43, "x"), rec(10, 49, std::string(3000, 'y'))};
  std::string bytes;
  encode_fill(bytes, f);
  CHECK(agent::daemon::is_fill_event(bytes));
  FillEvent g;
  REQUIRE(decode_fill(bytes, g));
  CHECK(g.config == 30);
  CHECK(g.ring == 10);
  CHECK(g.after == 42);
  CHECK(g.reached == 50);
  CHECK(g.final);
  CHECK_FALSE(g.failed);
  REQUIRE(g.records.size() == 2);
  CHECK(g.records[1].entry.pos == agent::persist::Position{10, 49});
  CHECK(g.records[1].entry.payload == std::string(3000, 'y'));
  CHECK(g.records[0].entry.groups == f.records[0].entry.groups);
  CHECK(g.records[0].log_groups == f.records[0].log_groups);
  CHECK(g.records[0].entry.time_us == 1043);
  for (size_t cut = 0; cut < bytes.size(); cut += 7) CHECK_FALSE(decode_fill(bytes.substr(0, cut), g));
  // Records out of the range, or out of order, are refused.
  f.records = {rec(10, 49, "a"), rec(10, 43, "b")};
  bytes.clear();
  encode_fill(bytes, f);
  CHECK_FALSE(decode_fill(bytes, g));
  f.records = {rec(10, 51, "a")};
  bytes.clear();
  encode_fill(bytes, f);
  CHECK_FALSE(decode_fill(bytes, g));
}

TEST_CASE("catch-up: the donor sends a chunk at a time, the needer takes the donor's chunks",
          "[catch-up]") {
  const uint64_t config = 30;
  CatchUp donor(1), needer(3), other(2);
  std::vector<agent::membership::NodeId> members{1, 2, 3};
  std::string s1 = summary_bytes(log_of({{10, {50, false}}}));
  std::string s2 = summary_bytes(log_of({{10, {50, false}}}));
  std::string s3 = summary_bytes(log_of({{10, {42, false}}}));
  for (CatchUp* c : {&donor, &needer, &other}) {
    c->on_regular(config, members);
    CHECK(c->catching_up());  // until the plan is made
    c->on_state(1, config, s1);
    c->on_state(2, config, s2);
    CHECK_FALSE(c->planned());
    c->on_state(3, config, s3);
    CHECK(c->planned());
  }
  CHECK_FALSE(donor.catching_up());
  CHECK_FALSE(other.catching_up());
  CHECK(needer.catching_up());
  CHECK_FALSE(needer.next_read());
  auto r = donor.next_read();
  REQUIRE(r);
  CHECK(r->ring == 10);
  CHECK(r->after == 42);
  CHECK(r->upto == 50);
  CHECK_FALSE(donor.next_read());  // one chunk at a time
  auto f1 = donor.on_read(*r, {rec(10, 43, "a"), rec(10, 45, "b")}, 45, "");
  REQUIRE(f1);
  CHECK_FALSE(f1->final);
  // A chunk from another member than the plan's donor is not taken.
  CHECK_FALSE(needer.on_fill(2, *f1));
  CHECK_FALSE(donor.on_fill(1, *f1));  // the donor's own comes back: the next read may go
  CHECK_FALSE(other.on_fill(1, *f1));
  CHECK(needer.on_fill(1, *f1));
  CHECK(needer.catching_up());
  r = donor.next_read();
  REQUIRE(r);
  CHECK(r->after == 45);
  auto f2 = donor.on_read(*r, {rec(10, 50, "c")}, 50, "");
  REQUIRE(f2);
  CHECK(f2->final);
  CHECK_FALSE(donor.on_fill(1, *f2));
  CHECK(needer.on_fill(1, *f2));
  CHECK_FALSE(needer.catching_up());
  CHECK_FALSE(donor.next_read());
  CHECK(needer.stats().filled_messages == 3);

  // A configuration change ends the plan: a late answer or chunk of it is dropped.
  CatchUp d(1), n(3);
  for (CatchUp* c : {&d, &n}) {
    c->on_regular(config, members);
    c->on_state(1, config, s1);
    c->on_state(2, config, s2);
    c->on_state(3, config, s3);
  }
  r = d.next_read();
  REQUIRE(r);
  auto late = d.on_read(*r, {rec(10, 43, "a")}, 50, "");
  REQUIRE(late);
  for (CatchUp* c : {&d, &n}) c->on_transitional();
  for (CatchUp* c : {&d, &n}) c->on_regular(config + 1, {1, 3});
  CHECK_FALSE(n.on_fill(1, *late));
  CHECK_FALSE(d.on_read(*r, {}, 50, ""));
  CHECK(n.catching_up());  // until the new configuration's plan
  // A donor that cannot read its log ends the task: the needer stops waiting, takes nothing.
  for (CatchUp* c : {&d, &n}) {
    c->on_state(1, config + 1, s1);
    c->on_state(3, config + 1, s3);
  }
  r = d.next_read();
  REQUIRE(r);
  auto failed = d.on_read(*r, {}, 0, "I/O error");
  REQUIRE(failed);
  CHECK(failed->failed);
  CHECK_FALSE(n.on_fill(1, *failed));
  CHECK_FALSE(n.catching_up());
}
