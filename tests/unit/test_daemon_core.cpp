// The daemon core driven without sockets or clock: client bytes and datagrams in, frames,
// datagrams and durable writes out, in the order the core asks for them.
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <memory>

#include "agentd/daemon_core.h"
#include "agentd/log.h"
#include "transport/ring_wire.h"

using namespace agent;
using namespace agent::daemon;
using proto::ErrorCode;
using proto::Verb;
namespace svc = agent::proto::service;

namespace {

const bool quiet = (agent::log::set_level(agent::log::Level::kError), true);

// Records everything the core asks for, in order: "store N", "datagram <type> to <id>".
struct FakeIo : CoreIo {
  void send(ConnId id, std::string_view b) override { out[id].append(b.data(), b.size()); }
  void close(ConnId id) override { closed[id] = true; }
  void send_datagram(NodeId to, std::string_view bytes, const std::vector<NodeId>&) override {
    auto h = ringwire::decode_header(bytes);
    log.push_back("datagram " + std::to_string(h ? int(h->type) : -1) + " to " +
                  std::to_string(to));
    datagrams.emplace_back(to, std::string(bytes));
  }
  void set_client_input(bool on) override { input_switches.push_back(on); }
  void log_append(std::vector<persist::Record>& batch) override {
    for (auto& r : batch) {
      appended.push_back(r.entry);
      appended.back().payload = std::string(r.payload());  // maybe a view into the ring's bytes
    }
    batch.clear();
  }
  std::string store_ring_seq(uint32_t seq) override {
    log.push_back("store " + std::to_string(seq));
    if (!store_error.empty()) return store_error;
    stored = seq;
    return {};
  }

  std::map<ConnId, std::string> out;
  std::map<ConnId, bool> closed;
  std::vector<std::string> log;
  std::vector<std::pair<NodeId, std::string>> datagrams;  // not yet carried
  std::vector<bool> input_switches;
  std::string store_error;
  uint32_t stored = 0;
  std::vector<persist::Entry> appended;  // the message log's records
};

Config config(NodeId id, std::vector<NodeId> ring = {}) {
  Config c;
  c.name = "d" + std::to_string(id);
  c.ring.id = id;
  for (NodeId m : ring) c.ring.daemons.push_back(RingDaemon{m, "127.0.0.1", 0, ""});
  c.ring.min_rotation_us = 0;
  return c;
}

struct Frame {
  Verb verb;
  std::string body;
};
std::vector<Frame> frames(const std::string& bytes) {
  proto::FrameReader r(1 << 24);
  r.feed(bytes.data(), bytes.size());
  std::vector<Frame> v;
  proto::Frame f;
  while (r.next(f) == proto::FrameReader::Status::kFrame) v.push_back(Frame{f.verb, std::string(f.body)});
  return v;
}

std::string hello(const std::string& name) {
  std::string b;
  proto::encode(b, proto::Hello{proto::kMagic, proto::kVersion, proto::kHelloWantMembership, name});
  return b;
}
std::string join(const std::string& g) {
  std::string b;
  proto::encode_join(b, g);
  return b;
}
std::string mcast(const std::string& g, const std::string& payload, uint32_t service = svc::kAgreed) {
  std::string b;
  proto::encode(b, proto::Multicast{service, 0, {g}, payload});
  return b;
}

// Cores joined by a loss-free network in virtual time.
struct Cluster {
  // tweak: changes each daemon's configuration before its core starts.
  explicit Cluster(std::vector<NodeId> ids, uint64_t max_pending_bytes = 64u << 20,
                   const std::function<void(Config&)>& tweak = {}) {
    for (NodeId id : ids) {
      cfgs.push_back(config(id, ids.size() > 1 ? ids : std::vector<NodeId>{}));
      cfgs.back().ring.max_pending_bytes = max_pending_bytes;
      if (tweak) tweak(cfgs.back());
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      ios.push_back(std::make_unique<FakeIo>());
      cores.push_back(std::make_unique<DaemonCore>(cfgs[i], *ios[i], now));
    }
  }
  // Runs every core and carries datagrams until time `until`.
  void run_until(Time until) {
    for (;;) {
      bool moved = false;
      for (size_t i = 0; i < cores.size(); ++i) {
        if (cores[i]->failed()) continue;
        cores[i]->run(now);
        auto sent = std::move(ios[i]->datagrams);
        ios[i]->datagrams.clear();
        for (auto& [to, bytes] : sent)
          for (size_t j = 0; j < cores.size() && !cut; ++j)
            if (j != i && (to >= membership::kAllDaemons || to == cfgs[j].ring.id)) {
              cores[j]->on_datagram(cfgs[i].ring.id, bytes, now);
              moved = true;
            }
      }
      if (moved) continue;
      Time next = membership::Time(-1);
      for (auto& c : cores)
        if (!c->failed()) next = std::min(next, c->next_timeout());
      if (next > until) break;
      now = std::max(now, next);
    }
    now = until;
  }
  bool cut = false;  // datagrams are lost
  std::vector<Config> cfgs;
  std::vector<std::unique_ptr<FakeIo>> ios;
  std::vector<std::unique_ptr<DaemonCore>> cores;
  Time now = 0;
};

}  // namespace

TEST_CASE("a daemon alone: a client's multicast comes back to it in order, with its view",
          "[core]") {
  Cluster c({1});
  c.run_until(100000);
  DaemonCore& core = *c.cores[0];
  REQUIRE(core.ring().state() == membership::RingState::kOperational);
  REQUIRE(core.on_open(7, c.now));
  std::string in = hello("alice") + join("g") + mcast("g", "one") + mcast("g", "two");
  core.on_bytes(7, in.data(), in.size(), c.now);
  c.run_until(c.now + 100000);
  auto f = frames(c.ios[0]->out[7]);
  REQUIRE(f.size() == 4);
  CHECK(f[0].verb == Verb::kWelcome);
  REQUIRE(f[1].verb == Verb::kMembership);
  CHECK(proto::decode_membership(f[1].body)->members == std::vector<std::string>{"#alice#d1"});
  REQUIRE(f[2].verb == Verb::kData);
  CHECK(proto::decode_data(f[2].body)->payload == "one");
  CHECK(proto::decode_data(f[3].body)->payload == "two");
}

TEST_CASE("the ring sequence is stored before the commit token that hands it out leaves",
          "[core]") {
  Cluster c({1, 2});
  c.run_until(1000000);
  for (auto& core : c.cores) REQUIRE(core->ring().members() == std::vector<NodeId>{1, 2});
  // Daemon 1 is the representative: its commit token goes to daemon 2.
  auto& log = c.ios[0]->log;
  std::string commit = "datagram " + std::to_string(int(ringwire::Type::kCommit)) + " to 2";
  auto first_commit = std::find(log.begin(), log.end(), commit);
  REQUIRE(first_commit != log.end());
  auto first_store = std::find_if(log.begin(), log.end(),
                                  [](const std::string& e) { return e.rfind("store ", 0) == 0; });
  REQUIRE(first_store != log.end());
  CHECK(first_store < first_commit);
  CHECK(c.ios[0]->stored > c.cores[0]->ring().ring_id() >> 32);  // reserved beyond the one in use
}

TEST_CASE("a ring sequence that cannot be stored stops the daemon with a clear error", "[core]") {
  Cluster c({1, 2});
  c.ios[0]->store_error = "No space left on device";
  REQUIRE(c.cores[0]->on_open(3, 0));
  std::string in = hello("alice");
  c.cores[0]->on_bytes(3, in.data(), in.size(), 0);
  c.run_until(1000000);
  DaemonCore& core = *c.cores[0];
  REQUIRE(core.failed());
  CHECK(core.failure().find("No space left on device") != std::string::npos);
  CHECK(core.failure().find("ring ids could repeat") != std::string::npos);
  // No commit token left daemon 1: the ring id it would have handed out was never stored.
  for (auto& e : c.ios[0]->log)
    CHECK(e != "datagram " + std::to_string(int(ringwire::Type::kCommit)) + " to 2");
  // Its client was told, and daemon 2 formed a ring without it.
  auto f = frames(c.ios[0]->out[3]);
  REQUIRE(!f.empty());
  CHECK(f.back().verb == Verb::kError);
  CHECK(proto::decode_error(f.back().body)->code == ErrorCode::kShuttingDown);
  CHECK(c.ios[0]->closed[3]);
  CHECK(c.cores[1]->ring().state() == membership::RingState::kOperational);
  CHECK(c.cores[1]->ring().members() == std::vector<NodeId>{2});
}

TEST_CASE("client input pauses while the ring's queue is full and resumes once it drains, "
          "nothing is lost or reordered", "[core]") {
  Cluster c({1, 2}, 8192);  // room for a few messages
  c.run_until(1000000);
  REQUIRE(c.cores[0]->ring().members() == std::vector<NodeId>{1, 2});
  // The network fails: the ring is lost, and while no ring is installed nothing is sent, so
  // the ring's queue fills.
  c.cut = true;
  c.run_until(c.now + 300000);
  REQUIRE(c.cores[0]->ring().state() != membership::RingState::kOperational);
  DaemonCore& core = *c.cores[0];
  FakeIo& io = *c.ios[0];
  REQUIRE(core.on_open(1, c.now));
  std::string in = hello("alice") + join("g");
  for (int i = 0; i < 200; ++i) in += mcast("g", std::to_string(i) + std::string(1000, 'x'));
  core.on_bytes(1, in.data(), in.size(), c.now);
  c.run_until(c.now + 1000);
  CHECK(core.held() > 100);
  CHECK_FALSE(core.reading_clients());
  REQUIRE(io.input_switches == std::vector<bool>{false});
  c.cut = false;
  c.run_until(c.now + 3000000);
  CHECK(core.held() == 0);
  CHECK(core.reading_clients());
  CHECK(io.input_switches == std::vector<bool>{false, true});
  int expect = 0;
  for (auto& f : frames(io.out[1]))
    if (f.verb == Verb::kData) {
      auto d = proto::decode_data(f.body);
      CHECK(d->payload.substr(0, d->payload.find('x')) == std::to_string(expect));
      ++expect;
    }
  CHECK(expect == 200);
}

TEST_CASE("a connection that never says hello is closed after hello_timeout_ms", "[core]") {
  Cluster c({1});
  c.cfgs[0].hello_timeout_ms = 500;
  c.run_until(100000);
  DaemonCore& core = *c.cores[0];
  FakeIo& io = *c.ios[0];
  REQUIRE(core.on_open(1, c.now));  // says nothing
  REQUIRE(core.on_open(2, c.now));  // says hello in time
  std::string in = hello("bob");
  core.on_bytes(2, in.data(), in.size(), c.now + 100000);
  c.run_until(c.now + 499000);
  CHECK_FALSE(io.closed[1]);
  c.run_until(c.now + 2000);
  REQUIRE(io.closed[1]);
  auto f = frames(io.out[1]);
  REQUIRE(f.size() == 1);
  CHECK(f[0].verb == Verb::kError);
  CHECK(proto::decode_error(f[0].body)->code == ErrorCode::kNotConnected);
  CHECK_FALSE(io.closed[2]);
  CHECK(core.hub().client_count() == 1);
}

TEST_CASE("a hello that waited unread while client input was paused gets its full time "
          "from when input resumes", "[core]") {
  Cluster c({1, 2}, 8192);  // room for a few messages
  c.cfgs[0].hello_timeout_ms = 200;
  c.run_until(1000000);
  DaemonCore& core = *c.cores[0];
  // The network fails: the token does not come back, the ring's queue fills, client input
  // pauses, until daemon 1 forms a ring of its own (token loss + consensus: about 400 ms).
  c.cut = true;
  REQUIRE(core.on_open(1, c.now));
  std::string in = hello("alice") + join("g");
  for (int i = 0; i < 50; ++i) in += mcast("g", std::string(1000, 'x'));
  core.on_bytes(1, in.data(), in.size(), c.now);
  REQUIRE_FALSE(core.reading_clients());
  Time opened = c.now;
  REQUIRE(core.on_open(2, c.now));  // its hello would wait in the socket, unread
  while (!core.reading_clients() && c.now < opened + 5000000) c.run_until(c.now + 1000);
  REQUIRE(core.reading_clients());
  Time resumed = c.now;
  REQUIRE(resumed > opened + 200000);  // paused longer than the hello timeout
  c.run_until(resumed + 150000);
  CHECK_FALSE(c.ios[0]->closed[2]);  // timed from the resumption, not from the open
  c.run_until(resumed + 250000);
  CHECK(c.ios[0]->closed[2]);        // and then it is timed out
}

TEST_CASE("durability always: a SAFE message is logged when received and delivered once on disk",
          "[core][persist]") {
  Cluster c({1});
  c.cfgs[0].persist.groups = {"g"};
  c.cfgs[0].persist.durability = PersistSettings::Durability::kAlways;
  c.cores[0] = std::make_unique<DaemonCore>(c.cfgs[0], *c.ios[0], c.now);
  c.run_until(100000);
  DaemonCore& core = *c.cores[0];
  REQUIRE(core.ring().config().durable_gate);
  REQUIRE(core.on_open(7, c.now));
  std::string in = hello("alice") + join("g") + join("h") + mcast("h", "not kept", svc::kSafe) +
                   mcast("g", "kept", svc::kSafe);
  core.on_bytes(7, in.data(), in.size(), c.now);
  c.run_until(c.now + 100000);
  auto count_data = [&] {
    size_t n = 0;
    for (auto& f : frames(c.ios[0]->out[7])) n += f.verb == Verb::kData;
    return n;
  };
  // Logged on reception, once; the message of a group not kept is on disk at once (nothing to
  // write) and is delivered, the kept one waits for the disk.
  REQUIRE(c.ios[0]->appended.size() == 1);
  CHECK(c.ios[0]->appended[0].payload == "kept");
  CHECK(count_data() == 1);
  core.on_log_synced(c.ios[0]->appended[0].pos);
  c.run_until(c.now + 100000);
  REQUIRE(count_data() == 2);
  auto f = frames(c.ios[0]->out[7]);
  CHECK(proto::decode_data(f.back().body)->payload == "kept");
  CHECK(c.ios[0]->appended.size() == 1);  // not logged again at delivery
}

TEST_CASE("durability always: a log that fails does not hold SAFE delivery back for ever",
          "[core][persist]") {
  Cluster c({1});
  c.cfgs[0].persist.groups = {"g"};
  c.cfgs[0].persist.durability = PersistSettings::Durability::kAlways;
  c.cores[0] = std::make_unique<DaemonCore>(c.cfgs[0], *c.ios[0], c.now);
  c.run_until(100000);
  DaemonCore& core = *c.cores[0];
  REQUIRE(core.on_open(7, c.now));
  std::string in = hello("alice") + join("g") + mcast("g", "m", svc::kSafe);
  core.on_bytes(7, in.data(), in.size(), c.now);
  c.run_until(c.now + 100000);
  REQUIRE(c.ios[0]->appended.size() == 1);
  core.on_log_failed({"#alice#d1"}, "cannot write 1 messages to the message log: disk", c.now);
  c.run_until(c.now + 100000);
  auto f = frames(c.ios[0]->out[7]);
  bool data = false, error = false;
  for (auto& x : f) {
    data |= x.verb == Verb::kData;
    error |= x.verb == Verb::kError;
  }
  CHECK(data);
  CHECK(error);  // error 18: the sender is told it is missing from the history
}

TEST_CASE("a largest message to the most groups with the longest names goes through the ring",
          "[core]") {
  // The ring's message limit leaves room for the event's names around the payload: 256 group
  // names of 31 characters are 8 KiB (a limit 4 KiB above the payload's refused this for
  // ever, and the client's input stayed paused).
  Cluster c({1});
  c.cfgs[0].max_message_bytes = 4000;
  c.cores[0] = std::make_unique<DaemonCore>(c.cfgs[0], *c.ios[0], c.now);
  c.run_until(100000);
  DaemonCore& core = *c.cores[0];
  REQUIRE(core.on_open(7, c.now));
  proto::Multicast m;
  for (int i = 0; i < 256; ++i) {
    std::string g = "g" + std::to_string(i);
    m.groups.push_back(g + std::string(31 - g.size(), 'x'));
  }
  m.payload.assign(4000, 'p');
  std::string in = hello("alice") + join(m.groups[0]);
  proto::encode(in, m);
  core.on_bytes(7, in.data(), in.size(), c.now);
  c.run_until(c.now + 100000);
  size_t data = 0;
  for (auto& f : frames(c.ios[0]->out[7])) data += f.verb == Verb::kData;
  CHECK(data == 1);
  CHECK(core.held() == 0);
  CHECK(core.reading_clients());
}

TEST_CASE("joins stop before the daemon's memberships outgrow its state event", "[core]") {
  // Every local membership travels in the daemon's state event at each configuration change;
  // one the ring could not carry would stall the exchange for every group.
  Cluster c({1});
  c.cfgs[0].max_message_bytes = 1000;
  c.cores[0] = std::make_unique<DaemonCore>(c.cfgs[0], *c.ios[0], c.now);
  c.run_until(100000);
  DaemonCore& core = *c.cores[0];
  REQUIRE(core.on_open(7, c.now));
  std::string in = hello("alice");
  for (int i = 0; i < 200; ++i) in += join("group" + std::to_string(i));
  core.on_bytes(7, in.data(), in.size(), c.now);
  c.run_until(c.now + 100000);
  size_t refused = 0, views = 0;
  uint64_t bytes = 0;
  for (auto& f : frames(c.ios[0]->out[7])) {
    if (f.verb == Verb::kMembership) ++views;
    if (f.verb == Verb::kError) {
      auto e = proto::decode_error(f.body);
      REQUIRE(e);
      CHECK(e->code == ErrorCode::kTooManyGroups);
      ++refused;
    }
  }
  auto cost = [](size_t i) { return 2 + std::string("#alice#d1").size() + ("group" + std::to_string(i)).size(); };
  for (size_t i = 0; i < views; ++i) bytes += cost(i);
  CHECK(refused > 0);
  CHECK(views + refused == 200);
  CHECK(bytes <= 1000);
  CHECK(bytes + cost(views) > 1000);  // joins went on up to the bound
  // A leave makes room again.
  std::string more;
  proto::encode_leave(more, "group0");
  more += join("again");
  core.on_bytes(7, more.data(), more.size(), c.now);
  c.run_until(c.now + 100000);
  auto f = frames(c.ios[0]->out[7]);
  CHECK(f.back().verb == Verb::kMembership);
}

namespace {

// Two daemons: "slow" on daemon 1 joins g and never reads (the fake io reports nothing sent, so
// its queue only grows); "fast" on daemon 2 sends n messages of about 1000 bytes to g. Small
// packets and a small window: the ring stops 8 packets (16 KiB) beyond a held position, well
// within the quarter of the 128 KiB queue limit above the high-water mark.
struct SlowReader {
  static constexpr int kMessages = 300;
  explicit SlowReader(Config::SlowPolicy policy, uint32_t slow_timeout_ms = 10000)
      : c({1, 2}, 64u << 20, [&](Config& cfg) {
          cfg.slow_policy = policy;
          cfg.slow_timeout_ms = slow_timeout_ms;
          cfg.client_queue_bytes = 128u << 10;
          cfg.ring.packet_bytes = 2048;
          cfg.ring.max_outstanding = 8;
          // While held, the token goes round without news: paced, as in agentd by default
          // (else virtual time would stand still).
          cfg.ring.min_rotation_us = 500;
        }) {
    c.run_until(1000000);
    REQUIRE(c.cores[0]->ring().members() == std::vector<NodeId>{1, 2});
    REQUIRE(c.cores[0]->on_open(kSlow, c.now));
    std::string in = hello("slow") + join("g");
    c.cores[0]->on_bytes(kSlow, in.data(), in.size(), c.now);
    c.run_until(c.now + 100000);
    REQUIRE(c.cores[1]->on_open(kFast, c.now));
    in = hello("fast");
    for (int i = 0; i < kMessages; ++i) in += mcast("g", std::to_string(i) + std::string(1000, 'x'));
    c.cores[1]->on_bytes(kFast, in.data(), in.size(), c.now);
  }
  // The data messages the slow client was sent, checked to be 0, 1, 2... in order.
  int data_in_order() {
    int n = 0;
    for (auto& f : frames(c.ios[0]->out[kSlow]))
      if (f.verb == Verb::kData) {
        auto d = proto::decode_data(f.body);
        REQUIRE(d->payload.substr(0, d->payload.find('x')) == std::to_string(n));
        ++n;
      }
    return n;
  }
  std::vector<proto::Error> errors() {
    std::vector<proto::Error> v;
    for (auto& f : frames(c.ios[0]->out[kSlow]))
      if (f.verb == Verb::kError) v.push_back(*proto::decode_error(f.body));
    return v;
  }
  static constexpr ConnId kSlow = 5, kFast = 6;
  Cluster c;
};

}  // namespace

TEST_CASE("back-pressure: a client that stops reading is not dropped, it holds the ring "
          "until it reads, and then gets every message in order", "[core][slow]") {
  SlowReader t(Config::SlowPolicy::kBackpressure);
  DaemonCore& core = *t.c.cores[0];
  REQUIRE(core.ring().config().durable_gate);  // back-pressure turns the gate on
  t.c.run_until(t.c.now + 1000000);
  REQUIRE(core.holding_ring());
  CHECK(core.hub().holding_clients() == 1);
  CHECK(core.hub().stats().slow_holds == 1);
  // The reported position stays put and the ring stops within max_outstanding of it: the
  // sender is held back, nothing is dropped.
  uint64_t durable = core.ring().durable_seq();
  int got = t.data_in_order();
  t.c.run_until(t.c.now + 1000000);
  CHECK(core.ring().durable_seq() == durable);
  CHECK(core.ring().highest_seq() <= durable + 8);
  CHECK(t.data_in_order() == got);
  CHECK(got < SlowReader::kMessages);
  CHECK(t.c.cores[1]->ring().pending_bytes() > 0);  // the sender's messages wait
  CHECK_FALSE(t.c.ios[0]->closed[SlowReader::kSlow]);
  CHECK(t.errors().empty());
  // It reads (everything it was sent, each round): the hold ends and the ring goes on.
  for (int round = 0; round < 200 && t.data_in_order() < SlowReader::kMessages; ++round) {
    core.on_sent(SlowReader::kSlow, 0);
    t.c.run_until(t.c.now + 20000);
  }
  CHECK(t.data_in_order() == SlowReader::kMessages);
  CHECK(core.ring().durable_seq() > durable);
  CHECK(core.hub().stats().slow_clients_dropped == 0);
  CHECK(core.stats().ring_holds >= 1);
  CHECK(t.errors().empty());
  CHECK_FALSE(t.c.ios[0]->closed[SlowReader::kSlow]);
  core.on_sent(SlowReader::kSlow, 0);
  t.c.run_until(t.c.now + 100000);
  CHECK_FALSE(core.holding_ring());
}

TEST_CASE("disconnect policy: a client that stops reading is dropped with error 14 past "
          "queue_limit_bytes and the ring is never held", "[core][slow]") {
  SlowReader t(Config::SlowPolicy::kDisconnect);
  DaemonCore& core = *t.c.cores[0];
  CHECK_FALSE(core.ring().config().durable_gate);
  t.c.run_until(t.c.now + 2000000);
  REQUIRE(t.c.ios[0]->closed[SlowReader::kSlow]);
  auto e = t.errors();
  REQUIRE(e.size() == 1);
  CHECK(e[0].code == ErrorCode::kSlowClient);
  CHECK(e[0].text.find("queue passed 131072 bytes") != std::string::npos);
  CHECK(core.hub().stats().slow_clients_dropped == 1);
  CHECK(core.hub().stats().slow_holds == 0);
  CHECK(core.stats().ring_holds == 0);
  CHECK_FALSE(core.holding_ring());
  CHECK(t.c.cores[1]->ring().pending_bytes() == 0);  // the sender was never held back
}

TEST_CASE("back-pressure: a client that holds the ring longer than slow_timeout_ms is dropped "
          "with error 14 saying so, and the ring goes on", "[core][slow]") {
  SlowReader t(Config::SlowPolicy::kBackpressure, 500);
  DaemonCore& core = *t.c.cores[0];
  Time start = t.c.now;
  while (!core.holding_ring() && t.c.now < start + 1000000) t.c.run_until(t.c.now + 1000);
  REQUIRE(core.holding_ring());
  Time held = t.c.now;
  t.c.run_until(held + 450000);
  CHECK_FALSE(t.c.ios[0]->closed[SlowReader::kSlow]);
  CHECK(core.holding_ring());
  t.c.run_until(held + 550000);
  REQUIRE(t.c.ios[0]->closed[SlowReader::kSlow]);
  CHECK_FALSE(core.holding_ring());
  auto e = t.errors();
  REQUIRE(e.size() == 1);
  CHECK(e[0].code == ErrorCode::kSlowClient);
  CHECK(e[0].text.find("clients.slow_timeout_ms (500 ms)") != std::string::npos);
  CHECK(core.hub().stats().slow_hold_timeouts == 1);
  // Released: the sender's messages all go out.
  t.c.run_until(t.c.now + 2000000);
  CHECK(t.c.cores[1]->ring().pending_bytes() == 0);
  CHECK(core.ring().durable_seq() == core.ring().highest_seq());
}

TEST_CASE("back-pressure with durability always: the position reported is the lower of the "
          "disk's and the hold's", "[core][slow][persist]") {
  Cluster c({1}, 64u << 20, [](Config& cfg) {
    cfg.slow_policy = Config::SlowPolicy::kBackpressure;
    cfg.client_queue_bytes = 128u << 10;
    cfg.ring.packet_bytes = 2048;
    cfg.ring.max_outstanding = 8;
    cfg.persist.groups = {"g"};
    cfg.persist.durability = PersistSettings::Durability::kAlways;
  });
  c.run_until(100000);
  DaemonCore& core = *c.cores[0];
  FakeIo& io = *c.ios[0];
  REQUIRE(core.ring().config().durable_gate);
  REQUIRE(core.on_open(7, c.now));
  std::string in = hello("alice") + join("g");
  for (int i = 0; i < 200; ++i) in += mcast("g", std::to_string(i) + std::string(1000, 'x'));
  core.on_bytes(7, in.data(), in.size(), c.now);
  // The log syncs everything it is given: only the hold keeps the position back.
  auto sync = [&] {
    if (!io.appended.empty()) core.on_log_synced(io.appended.back().pos);
  };
  for (int i = 0; i < 100; ++i) {
    sync();
    c.run_until(c.now + 10000);
  }
  REQUIRE(core.holding_ring());
  uint64_t durable = core.ring().durable_seq();
  size_t logged = io.appended.size();
  for (int i = 0; i < 50; ++i) {
    sync();
    c.run_until(c.now + 10000);
  }
  CHECK(core.ring().durable_seq() == durable);
  CHECK(io.appended.size() <= logged + 8);  // the ring stopped within max_outstanding
  // Drained, but the disk has not synced the rest: the disk now holds the position.
  core.on_sent(7, 0);
  c.run_until(c.now + 10000);
  CHECK_FALSE(core.holding_ring());
  uint64_t unsynced = core.ring().durable_seq();
  CHECK(unsynced < core.ring().received_seq());
  sync();
  c.run_until(c.now + 10000);
  CHECK(core.ring().durable_seq() > unsynced);
  // Everything arrives, in order, once the client reads and the disk keeps up.
  for (int round = 0; round < 200 && !io.appended.empty() && io.appended.size() < 200; ++round) {
    core.on_sent(7, 0);
    sync();
    c.run_until(c.now + 10000);
  }
  core.on_sent(7, 0);
  sync();
  c.run_until(c.now + 100000);
  int n = 0;
  for (auto& f : frames(io.out[7]))
    if (f.verb == Verb::kData) {
      auto d = proto::decode_data(f.body);
      CHECK(d->payload.substr(0, d->payload.find('x')) == std::to_string(n));
      ++n;
    }
  CHECK(n == 200);
  CHECK(io.appended.size() == 200);
}
