// The simulator's checker: fault-free runs pass, every fault switch of the ring is caught, runs
// replay exactly from their seed, and hand-damaged records of a good run are rejected.
#include <catch2/catch.hpp>

#include <algorithm>

#include "tests/sim/sim.h"

using namespace agent::sim;

namespace {

SimParams params(uint64_t seed, size_t nodes = 0, double loss = -1, std::string fault = {}) {
  SimParams p;
  p.seed = seed;
  p.nodes = nodes;
  p.loss = loss;
  p.fault = std::move(fault);
  return p;
}

// Runs seeds 1..n with the fault; returns the failure reasons.
std::vector<std::string> failures_with(const std::string& fault, size_t nodes, double loss, uint64_t n) {
  std::vector<std::string> reasons;
  for (uint64_t seed = 1; seed <= n; ++seed) {
    SeedResult r = run_seed(params(seed, nodes, loss, fault));
    if (!r.verdict.ok) reasons.push_back(r.verdict.reason);
  }
  return reasons;
}

bool any_contains(const std::vector<std::string>& v, const std::string& what) {
  return std::any_of(v.begin(), v.end(), [&](auto& s) { return s.find(what) != std::string::npos; });
}

// A good run's records, for damaging by hand.
Records good_records(uint64_t seed, size_t nodes, double loss) {
  Cluster c(make_config(resolve(params(seed, nodes, loss))));
  c.run();
  REQUIRE(check(c.records()).ok);
  return c.records();
}

// The first client that received at least n data messages.
std::string busy_client(const Records& r, size_t n) {
  for (auto& [client, recs] : r.received)
    if (std::count_if(recs.begin(), recs.end(), [](auto& x) { return x.data; }) >= static_cast<long>(n))
      return client;
  return {};
}

}  // namespace

TEST_CASE("fault-free seeds pass the checker, with and without loss", "[sim]") {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SeedResult r = run_seed(params(seed));
    INFO("seed " << seed << ": " << r.verdict.reason << "\n" << repro_command(r.params));
    CHECK(r.verdict.ok);
  }
  for (double loss : {0.0, 0.3}) {
    SeedResult r = run_seed(params(11, 5, loss));
    INFO(r.verdict.reason << "\n" << repro_command(r.params));
    CHECK(r.verdict.ok);
  }
}

TEST_CASE("a run replays exactly from its seed", "[sim]") {
  SeedResult a = run_seed(params(5, 4, 0.2));
  SeedResult b = run_seed(params(5, 4, 0.2));
  CHECK(a.summary == b.summary);
  CHECK(a.verdict.ok == b.verdict.ok);
  CHECK(a.verdict.reason == b.verdict.reason);
}

TEST_CASE("the checker catches a ring that never retransmits", "[sim][fault]") {
  auto reasons = failures_with("skip-retransmit", 3, 0.2, 5);
  CHECK(!reasons.empty());
  CHECK(any_contains(reasons, "liveness"));
}

TEST_CASE("the checker catches a ring that delivers out of order", "[sim][fault]") {
  auto reasons = failures_with("out-of-order", 3, 0, 5);
  CHECK(!reasons.empty());
  CHECK(any_contains(reasons, "ring:"));
}

TEST_CASE("the checker catches a ring that delivers SAFE messages early", "[sim][fault]") {
  auto reasons = failures_with("safe-early", 3, 0, 5);
  CHECK(!reasons.empty());
  CHECK(any_contains(reasons, "SAFE delivered early"));
}

TEST_CASE("the checker rejects a duplicated client delivery", "[sim][checker]") {
  Records r = good_records(3, 3, 0);
  std::string c = busy_client(r, 1);
  REQUIRE(!c.empty());
  auto& recs = r.received[c];
  auto it = std::find_if(recs.begin(), recs.end(), [](auto& x) { return x.data; });
  recs.insert(it + 1, *it);
  Verdict v = check(r);
  CHECK_FALSE(v.ok);
  CHECK(v.reason.find("duplication") != std::string::npos);
}

TEST_CASE("the checker rejects two clients that disagree on order", "[sim][checker]") {
  Records r = good_records(3, 3, 0);
  std::string c = busy_client(r, 2);
  REQUIRE(!c.empty());
  auto& recs = r.received[c];
  std::vector<size_t> data;
  for (size_t i = 0; i < recs.size(); ++i)
    if (recs[i].data) data.push_back(i);
  // Swap two messages from different senders, so FIFO still holds and only the order is wrong.
  bool swapped = false;
  for (size_t a = 0; a < data.size() && !swapped; ++a)
    for (size_t b = a + 1; b < data.size() && !swapped; ++b)
      if (recs[data[a]].id.sender != recs[data[b]].id.sender) {
        std::swap(recs[data[a]].id, recs[data[b]].id);
        swapped = true;
      }
  REQUIRE(swapped);
  CHECK_FALSE(check(r).ok);
}

TEST_CASE("the checker rejects a lost self-delivery", "[sim][checker]") {
  Records r = good_records(3, 3, 0);
  bool removed = false;
  for (auto& [client, recs] : r.received) {
    auto it = std::find_if(recs.begin(), recs.end(), [&](auto& x) { return x.data && x.id.sender == client; });
    if (it == recs.end()) continue;
    recs.erase(it);
    removed = true;
    break;
  }
  REQUIRE(removed);
  Verdict v = check(r);
  CHECK_FALSE(v.ok);
  CHECK(v.reason.find("self-delivery") != std::string::npos);
}

TEST_CASE("the checker rejects a ring delivery that was never submitted", "[sim][checker]") {
  Records r = good_records(3, 3, 0);
  auto& ring = r.ring.begin()->second;
  REQUIRE(!ring.empty());
  ring.back().fingerprint ^= 1;
  Verdict v = check(r);
  CHECK_FALSE(v.ok);
  CHECK(v.reason.find("ring:") != std::string::npos);
}

TEST_CASE("the checker reports messages a daemon never delivered", "[sim][checker]") {
  Records r = good_records(3, 3, 0);
  auto& ring = r.ring.rbegin()->second;
  REQUIRE(!ring.empty());
  ring.pop_back();
  Verdict v = check(r);
  CHECK_FALSE(v.ok);
  CHECK(any_contains(v.failures, "liveness"));
}
