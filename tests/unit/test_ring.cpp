// The ring core on a tiny in-process network: every send is delivered in order unless a test's
// filter drops it. Time advances only when a test says so.
#include <algorithm>
#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <memory>

#include "membership/ring.h"
#include "transport/ring_wire.h"

using namespace agent::membership;
namespace rw = agent::ringwire;

namespace {

struct Wire {
  NodeId from, to;
  std::string bytes;
};

struct Net {
  explicit Net(size_t n, RingConfig base = {}) {
    for (NodeId i = 1; i <= n; ++i) base.members.push_back(i);
    cfg = base;
    for (NodeId i = 1; i <= n; ++i) rings.push_back(std::make_unique<Ring>(i, base, now));
    collect_all();
    // Daemons start by agreeing on a ring: run until every one is operational.
    for (int i = 0; i < 1000 && !all_operational(); ++i) run(100);
    REQUIRE(all_operational());
    for (auto& r : rings) REQUIRE(r->members().size() == n);
    sent_log.clear();
  }
  bool all_operational() {
    for (auto& r : rings)
      if (r->state() != RingState::kOperational) return false;
    return true;
  }
  Ring& r(NodeId id) { return *rings[id - 1]; }
  static rw::Type type_of(const std::string& b) { return rw::decode_header(b)->type; }
  void collect(NodeId id) {
    auto a = r(id).take_actions();
    for (auto& s : a.sends) {
      if (s.to == kBroadcast || s.to == kAllDaemons) {
        for (NodeId j = 1; j <= rings.size(); ++j)
          if (j != id) queue.push_back({id, j, std::string(s.view())});
      } else {
        queue.push_back({id, s.to, std::string(s.view())});
      }
      sent_log.push_back({id, s.to, std::string(s.view())});
    }
    for (auto& d : a.deliveries) {
      if (d.kind == DeliveryKind::kMessage)
        delivered[id].push_back(d);
      else
        configs[id].push_back(d);
    }
    for (auto& w : a.warnings) warnings.push_back(w);
  }
  void collect_all() {
    for (NodeId i = 1; i <= rings.size(); ++i) collect(i);
  }
  // Delivers queued packets until none is left (or max steps), firing due timers when idle.
  void run(size_t max_steps = 100000) {
    for (size_t step = 0; step < max_steps; ++step) {
      if (queue.empty()) {
        if (!advance_to_next_timer(now + 50000)) return;
        continue;
      }
      Wire w = std::move(queue.front());
      queue.pop_front();
      if (drop && drop(w)) continue;
      if (share) {
        // As agentd gives packets it read: with the buffer's owner, for the ring to keep.
        auto owner = std::make_shared<const std::string>(std::move(w.bytes));
        owners.push_back(owner);
        r(w.to).on_packet(w.from, *owner, now, owner);
      } else {
        r(w.to).on_packet(w.from, w.bytes, now);
      }
      collect(w.to);
    }
  }
  // Fires the earliest timer if it is due before limit; false if none is.
  bool advance_to_next_timer(Time limit) {
    Time next = limit;
    for (auto& x : rings) next = std::min(next, x->next_timeout());
    if (next >= limit) return false;
    now = std::max(now, next);
    for (NodeId i = 1; i <= rings.size(); ++i)
      if (r(i).next_timeout() <= now) {
        r(i).on_timeout(now);
        collect(i);
      }
    return true;
  }
  void submit(NodeId id, uint32_t service, const std::string& p) {
    REQUIRE(r(id).submit(service, p, now));
    collect(id);
  }
  std::vector<std::string> payloads(NodeId id) {
    std::vector<std::string> v;
    for (auto& d : delivered[id]) v.emplace_back(d.payload);
    return v;
  }

  RingConfig cfg;
  std::vector<std::unique_ptr<Ring>> rings;
  std::deque<Wire> queue;
  std::vector<Wire> sent_log;
  std::map<NodeId, std::vector<Delivered>> delivered;
  std::map<NodeId, std::vector<Delivered>> configs;
  std::vector<std::string> warnings;
  std::function<bool(const Wire&)> drop;
  bool share = false;                                         // run(): give owners
  std::vector<std::shared_ptr<const std::string>> owners;     // the ones given
  Time now = 1000;
};

constexpr uint32_t kAgreed = 0x10, kSafe = 0x20;

}  // namespace

TEST_CASE("a ring of one orders and delivers at once", "[ring]") {
  Net n(1);
  n.submit(1, kAgreed, "a");
  n.submit(1, kSafe, "b");
  CHECK(n.payloads(1) == std::vector<std::string>{"a", "b"});
  CHECK(n.delivered[1][1].index == n.delivered[1][0].index + 1);
  REQUIRE(n.configs[1].size() == 1);  // the regular configuration came first
  CHECK(n.configs[1][0].kind == DeliveryKind::kRegular);
  CHECK(n.configs[1][0].index < n.delivered[1][0].index);
  CHECK(n.sent_log.empty() == false);  // broadcasts to no one are still reported
}

TEST_CASE("three members deliver one identical order, SAFE included", "[ring]") {
  Net n(3);
  for (int i = 0; i < 30; ++i)
    n.submit(1 + i % 3, i % 2 ? kSafe : kAgreed, "m" + std::to_string(i));
  n.run();
  REQUIRE(n.delivered[1].size() == 30);
  CHECK(n.payloads(2) == n.payloads(1));
  CHECK(n.payloads(3) == n.payloads(1));
  for (NodeId i = 1; i <= 3; ++i) CHECK(n.r(i).buffered_packets() <= 3);  // stable ones discarded
}

TEST_CASE("a packet given with its owner is kept in place and released once stable", "[ring]") {
  Net n(3);
  n.share = true;
  std::vector<std::string> sent;
  for (int i = 0; i < 40; ++i) {
    sent.push_back("message " + std::to_string(i) + std::string(10 + 20 * i, 'x'));  // unsplit
    n.submit(1 + i % 3, i % 4 ? kAgreed : kSafe, sent.back());
  }
  n.run();
  auto order = n.payloads(1);
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::sort(sent.begin(), sent.end());
  CHECK(sorted == sent);
  for (NodeId id = 1; id <= 3; ++id) {
    CHECK(n.payloads(id) == order);
    // Another member's message is delivered from the bytes that came with the packet.
    for (auto& d : n.delivered[id]) {
      if (d.origin == id) continue;
      auto* owner = static_cast<const std::string*>(d.payload_owner.get());
      bool given = std::any_of(n.owners.begin(), n.owners.end(),
                               [&](auto& o) { return o.get() == owner; });
      CHECK(given);
      CHECK(d.payload.data() >= owner->data());
      CHECK(d.payload.data() + d.payload.size() <= owner->data() + owner->size());
    }
  }
  // Once stable, the ring lets go of every buffer (the deliveries above still hold theirs).
  n.delivered.clear();
  for (auto& o : n.owners) CHECK(o.use_count() == 1);
}

TEST_CASE("the buffers of sent messages are handed back for the next ones", "[ring]") {
  Net n(3);
  CHECK(n.r(1).spare_buffer().capacity() < 1000);  // nothing sent yet
  std::string m(1000, 'a');
  const char* at = m.data();
  REQUIRE(n.r(1).submit(kAgreed, std::move(m), n.now));
  n.collect(1);
  n.run();
  std::string spare = n.r(1).spare_buffer();
  CHECK(spare.empty());
  CHECK(spare.capacity() >= 1000);
  CHECK(spare.data() == at);  // the very buffer, not a new one
  CHECK(n.r(1).spare_buffer().capacity() < 1000);  // handed out once
  // Large buffers are not kept.
  REQUIRE(n.r(1).submit(kAgreed, std::string(100000, 'b'), n.now));
  n.collect(1);
  n.run();
  CHECK(n.r(1).spare_buffer().capacity() < 100000);
  REQUIRE(n.payloads(2).size() == 2);
  CHECK(n.payloads(2)[0] == std::string(1000, 'a'));
}

TEST_CASE("small messages are packed many to a packet", "[ring]") {
  RingConfig c;
  c.max_packet_bytes = 1400;
  Net n(2, c);
  for (int i = 0; i < 200; ++i) n.submit(1, kAgreed, std::string(20, 'x'));
  n.run();
  CHECK(n.delivered[2].size() == 200);
  CHECK(n.r(1).stats().packets_sent <= 200 * 29 / 1350 + 2);
}

TEST_CASE("large messages are fragmented and reassembled", "[ring]") {
  RingConfig c;
  c.max_packet_bytes = 1024;
  Net n(3, c);
  std::string big(100000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  n.submit(2, kAgreed, "before");
  n.submit(2, kSafe, big);
  n.submit(3, kAgreed, "");
  n.run();
  for (NodeId i = 1; i <= 3; ++i) {
    auto p = n.payloads(i);
    REQUIRE(p.size() == 3);
    CHECK(p == n.payloads(1));  // one order everywhere
    // Daemon 2's two in the order sent; daemon 3's (which may rest with the token and so go
    // first) anywhere.
    auto before = std::find(p.begin(), p.end(), "before");
    auto after = std::find(p.begin(), p.end(), big);
    REQUIRE(before != p.end());
    REQUIRE(after != p.end());
    CHECK(before < after);
    CHECK(std::count(p.begin(), p.end(), std::string()) == 1);
  }
  CHECK(n.r(2).stats().packets_sent >= 100);
}

TEST_CASE("a packet lost to one member is resent by another that has it", "[ring]") {
  Net n(3);
  bool dropped = false;
  // Member 1's packet reaches 2 but not 3; 1 never resends, so only 2 can answer 3's request.
  static RingFaults no_retransmissions;
  no_retransmissions.skip_retransmissions = true;
  n.r(1).set_faults(&no_retransmissions);
  n.drop = [&](const Wire& w) {
    if (!dropped && w.from == 1 && w.to == 3 && Net::type_of(w.bytes) == rw::Type::kData)
      return dropped = true;
    return false;
  };
  n.submit(1, kAgreed, "via 2");
  n.run();
  CHECK(dropped);
  CHECK(n.payloads(3) == std::vector<std::string>{"via 2"});
  CHECK(n.r(2).stats().packets_retransmitted >= 1);
}

TEST_CASE("a lost data packet is requested and retransmitted", "[ring]") {
  Net n(3);
  int dropped = 0;
  n.drop = [&](const Wire& w) {
    if (w.to == 3 && Net::type_of(w.bytes) == rw::Type::kData && dropped == 0) {
      ++dropped;
      return true;
    }
    return false;
  };
  n.submit(1, kAgreed, "lost once");
  n.submit(1, kAgreed, "second");
  n.run();
  CHECK(dropped == 1);
  CHECK(n.payloads(3) == std::vector<std::string>{"lost once", "second"});
  uint64_t re = 0;
  for (NodeId i = 1; i <= 3; ++i) re += n.r(i).stats().packets_retransmitted;
  CHECK(re >= 1);
}

TEST_CASE("without retransmission a lost packet is never delivered", "[ring]") {
  Net n(3);
  static RingFaults no_retransmissions;
  no_retransmissions.skip_retransmissions = true;
  for (NodeId i = 1; i <= 3; ++i) n.r(i).set_faults(&no_retransmissions);
  bool dropped = false;
  n.drop = [&](const Wire& w) {
    if (!dropped && w.to == 3 && Net::type_of(w.bytes) == rw::Type::kData) return dropped = true;
    return false;
  };
  n.submit(1, kAgreed, "x");
  n.run(2000);
  CHECK(n.payloads(3).empty());
}

TEST_CASE("a lost token is retransmitted and duplicates are ignored", "[ring]") {
  Net n(3);
  int tokens_dropped = 0;
  n.drop = [&](const Wire& w) {
    if (Net::type_of(w.bytes) == rw::Type::kToken && tokens_dropped < 1 && w.to == 2) {
      ++tokens_dropped;
      return true;
    }
    return false;
  };
  n.submit(1, kAgreed, "a");
  n.run();
  n.submit(3, kAgreed, "b");
  n.run();
  CHECK(n.payloads(2) == std::vector<std::string>{"a", "b"});
  uint64_t retx = 0;
  for (NodeId i = 1; i <= 3; ++i) retx += n.r(i).stats().tokens_retransmitted;
  CHECK(retx >= 1);
  // Replaying an old token changes nothing.
  for (auto& w : n.sent_log)
    if (Net::type_of(w.bytes) == rw::Type::kToken && w.to == 2) {
      n.r(2).on_packet(w.from, w.bytes, n.now);
      break;
    }
  CHECK(n.r(2).stats().duplicate_tokens >= 1);
}

TEST_CASE("the personal window caps packets per token visit", "[ring]") {
  RingConfig c;
  c.max_packet_bytes = 256;
  c.personal_window = 3;
  Net n(2, c);
  for (int i = 0; i < 40; ++i) n.submit(1, kAgreed, std::string(200, 'x'));
  n.run();
  CHECK(n.delivered[2].size() == 40);
  // Between two tokens sent by member 1, at most 3 new data packets from it.
  int run = 0, worst = 0;
  for (auto& w : n.sent_log) {
    if (w.from != 1) continue;
    if (Net::type_of(w.bytes) == rw::Type::kToken) run = 0;
    else if (Net::type_of(w.bytes) == rw::Type::kData) worst = std::max(worst, ++run);
  }
  CHECK(worst <= 3);
  CHECK(worst >= 1);
}

TEST_CASE("accelerated ring sends part of a visit's packets after the token", "[ring]") {
  RingConfig c;
  c.max_packet_bytes = 256;
  c.personal_window = 4;
  c.accelerated_window = 2;
  Net n(2, c);
  for (int i = 0; i < 8; ++i) n.submit(2, kAgreed, std::string(200, 'y'));
  n.run();
  CHECK(n.delivered[1].size() == 8);
  // Find a visit by member 2 with 4 new packets: the token must sit before the last 2.
  bool seen = false;
  for (size_t i = 0; i + 4 < n.sent_log.size(); ++i) {
    auto t = [&](size_t k) { return Net::type_of(n.sent_log[k].bytes); };
    if (n.sent_log[i].from == 2 && t(i) == rw::Type::kData && t(i + 1) == rw::Type::kData &&
        t(i + 2) == rw::Type::kToken && t(i + 3) == rw::Type::kData)
      seen = true;
  }
  CHECK(seen);
}

TEST_CASE("SAFE waits until every member has the packet, AGREED does not", "[ring]") {
  Net n(3);
  bool block = true;
  n.drop = [&](const Wire& w) {
    return block && w.to == 3 && Net::type_of(w.bytes) == rw::Type::kData;
  };
  // Separately: a packet that holds a SAFE message is delivered as a whole once safe, so an
  // AGREED message packed with it would wait too.
  n.submit(1, kAgreed, "agreed");
  n.run(300);
  CHECK(n.payloads(2) == std::vector<std::string>{"agreed"});
  n.submit(1, kSafe, "safe");
  n.run(300);
  CHECK(n.payloads(2) == std::vector<std::string>{"agreed"});
  block = false;
  n.run();
  CHECK(n.payloads(2) == std::vector<std::string>{"agreed", "safe"});
  CHECK(n.payloads(3) == std::vector<std::string>{"agreed", "safe"});
}

TEST_CASE("back-pressure: a full pending queue refuses submissions", "[ring]") {
  RingConfig c;
  c.max_pending_bytes = 1000;
  c.max_message_bytes = 600;
  Net n(2, c);
  // A member that does not hold the token: its submissions wait.
  NodeId m = n.r(2).holds_token() ? 1 : 2;
  REQUIRE_FALSE(n.r(m).holds_token());
  CHECK(n.r(m).submit(kAgreed, std::string(600, 'a'), n.now));
  CHECK_FALSE(n.r(m).submit(kAgreed, std::string(600, 'b'), n.now));
  CHECK_FALSE(n.r(m).submit(kAgreed, std::string(601, 'c'), n.now));
  n.collect_all();
  n.run();
  CHECK(n.r(m).pending_bytes() == 0);
  CHECK(n.r(m).submit(kAgreed, std::string(600, 'b'), n.now));
}

TEST_CASE("malformed, spoofed and stale packets are dropped", "[ring]") {
  Net n(2);
  auto& r = n.r(2);
  uint64_t ring = r.ring_id();
  r.on_packet(1, "", n.now);
  r.on_packet(1, "garbage that is long enough to have a header", n.now);
  auto data = [&](uint64_t ring_id, NodeId sender) {
    std::string b;
    rw::encode_header(b, rw::Header{rw::Type::kData, ring_id, sender});
    rw::begin_data(b, 1, 1);
    rw::add_chunk(b, kAgreed, rw::kFirst | rw::kLast, "x");
    return b;
  };
  r.on_packet(2, data(ring, 2), n.now);                  // claims to come from itself
  r.on_packet(9, data(ring, 9), n.now);                  // not a configured daemon
  std::string whole = data(ring, 1);
  r.on_packet(1, whole.substr(0, whole.size() - 1), n.now);  // truncated
  std::string token;
  rw::encode_token(token, ring, 1, rw::Token{});
  r.on_packet(2, token, n.now);  // a token must come from the member it names
  CHECK(r.stats().bad_packets == 6);
  r.on_packet(1, data(1, 1), n.now);  // an older ring of a member: stale, ignored
  n.collect_all();
  CHECK(n.delivered[2].empty());
  CHECK(r.state() == RingState::kOperational);
  CHECK(r.ring_id() == ring);
}

TEST_CASE("an idle ring holds the token and wakes on demand", "[ring]") {
  RingConfig c;
  c.token_hold_us = 5000;
  Net n(3, c);
  n.run();  // settle (the step limit may stop it with the token in flight between holds)
  while (!n.queue.empty()) n.run(1);
  size_t before = n.sent_log.size();
  // Within one hold period nothing moves.
  n.advance_to_next_timer(n.now + 1000);
  CHECK(n.sent_log.size() == before);
  uint64_t held = 0;
  for (NodeId i = 1; i <= 3; ++i) held += n.r(i).stats().held_tokens;
  CHECK(held >= 1);
  // A submission anywhere is delivered without waiting out the holds.
  Time t0 = n.now;
  NodeId holder = 0;
  for (NodeId i = 1; i <= 3; ++i)
    if (n.r(i).holds_token()) holder = i;
  REQUIRE(holder != 0);
  NodeId sender = holder % 3 + 1;
  n.submit(sender, kAgreed, "wake");
  while (!n.queue.empty()) n.run(1);
  CHECK(n.payloads(sender).size() == 1);
  CHECK(n.now == t0);  // no timer had to fire
}

TEST_CASE("a member whose last visit sent packets asks for no wake", "[ring]") {
  Net n(3);
  n.run();
  while (!n.queue.empty()) n.run(1);
  NodeId m = 0;  // a member without the token
  for (NodeId i = 1; i <= 3 && m == 0; ++i)
    if (!n.r(i).holds_token()) m = i;
  REQUIRE(m != 0);
  n.submit(m, kAgreed, "a");  // its last visit sent nothing: the token may rest, so it asks
  CHECK(n.r(m).stats().wakes_sent == 1);
  uint64_t sent = n.r(m).stats().packets_sent;
  for (int i = 0; i < 1000 && (n.r(m).stats().packets_sent == sent || n.r(m).holds_token()); ++i)
    n.run(1);
  REQUIRE(n.r(m).stats().packets_sent > sent);
  REQUIRE_FALSE(n.r(m).holds_token());
  // Its packet moves the seq before the token is back: nobody can rest the token meanwhile.
  n.submit(m, kAgreed, "b");
  CHECK(n.r(m).stats().wakes_sent == 1);
  n.run(1000);
  for (NodeId i = 1; i <= 3; ++i) CHECK(n.payloads(i) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("a paced token waits for min_rotation, what arrives meanwhile leaves with its visit",
          "[ring]") {
  RingConfig c;
  c.min_rotation_us = 1000;
  Net n(3, c);
  Time t0 = n.now;
  uint64_t tokens0 = n.r(1).stats().tokens_received;
  for (int i = 0; i < 30; ++i) {
    n.submit(static_cast<NodeId>(1 + i % 3), kAgreed, "m" + std::to_string(i));
    n.run(20);
  }
  // A member held a token back (the network here takes no time: unpaced, it would spin).
  uint64_t paced = 0;
  for (NodeId i = 1; i <= 3; ++i) paced += n.r(i).stats().paced_tokens;
  CHECK(paced > 0);
  // Catch a member that has just put off a visit (the ring kept busy meanwhile), and give it
  // a message.
  NodeId holder = 0;
  for (int i = 0; i < 300 && holder == 0; ++i) {
    if (i % 10 == 0) n.submit(static_cast<NodeId>(1 + i / 10 % 3), kAgreed, "x");
    uint64_t before[4] = {0, n.r(1).stats().paced_tokens, n.r(2).stats().paced_tokens,
                          n.r(3).stats().paced_tokens};
    n.run(1);
    for (NodeId k = 1; k <= 3; ++k)
      if (n.r(k).stats().paced_tokens > before[k] && n.r(k).holds_token()) holder = k;
  }
  REQUIRE(holder != 0);
  size_t log_before = n.sent_log.size();
  n.submit(holder, kAgreed, "late");
  for (size_t i = log_before; i < n.sent_log.size(); ++i)
    CHECK(n.sent_log[i].from != holder);  // nothing leaves before the paced visit
  n.run(100000);
  for (NodeId i = 1; i <= 3; ++i) {
    INFO("member " << i);
    auto got = n.payloads(i);
    CHECK(got == n.payloads(1));
    REQUIRE(!got.empty());
    CHECK(got.back() == "late");
    CHECK(std::count(got.begin(), got.end(), "m29") == 1);
  }
  // Visits of one member are at least min_rotation apart.
  uint64_t visits = n.r(1).stats().tokens_received - tokens0;
  CHECK(visits <= (n.now - t0) / c.min_rotation_us + 2);
}

TEST_CASE("a resting token is not resent to its holder, also when the word of it is lost",
          "[ring]") {
  // Holds far longer than the retransmission time: without word from the holder, the
  // predecessor would resend the token every token_retransmit until it came round again.
  RingConfig c;
  c.token_hold_us = 100000;
  c.token_retransmit_us = 10000;
  c.token_loss_us = 2000000;
  bool lose_held = GENERATE(false, true);
  CAPTURE(lose_held);
  Net n(3, c);
  bool lost_one = false;
  n.drop = [&](const Wire& w) {
    if (!lose_held || lost_one || Net::type_of(w.bytes) != rw::Type::kHeld) return false;
    lost_one = true;
    return true;
  };
  auto retransmitted = [&] {
    uint64_t x = 0;
    for (NodeId i = 1; i <= 3; ++i) x += n.r(i).stats().tokens_retransmitted;
    return x;
  };
  uint64_t before = retransmitted();
  Time t0 = n.now;
  while (n.now < t0 + 2000000) {  // about seven quiet rotations
    while (!n.queue.empty()) n.run(1);
    if (!n.advance_to_next_timer(t0 + 2000000)) break;
  }
  uint64_t held = 0;
  for (NodeId i = 1; i <= 3; ++i) held += n.r(i).stats().held_tokens;
  CHECK(held >= 15);
  // One resend when the word was lost (the holder answers the duplicate), else none.
  CHECK(retransmitted() - before == (lose_held ? 1u : 0u));
  CHECK(lost_one == lose_held);
  for (NodeId i = 1; i <= 3; ++i) CHECK(n.r(i).state() == RingState::kOperational);
}

TEST_CASE("a daemon whose peers never answer forms a ring without them and says so", "[ring]") {
  RingConfig c;
  c.members = {1, 2, 3};
  Ring r(1, c, 0);
  std::vector<std::string> warnings;
  Time now = 0;
  for (int i = 0; i < 100 && r.state() != RingState::kOperational; ++i) {
    now = r.next_timeout();
    r.on_timeout(now);
    for (auto& w : r.take_actions().warnings) warnings.push_back(w);
  }
  REQUIRE(r.state() == RingState::kOperational);
  CHECK(r.members() == std::vector<NodeId>{1});
  CHECK(now <= c.consensus_timeout_us + c.join_timeout_us);
  REQUIRE_FALSE(warnings.empty());
  CHECK(warnings.back().find("daemons 2,3 do not answer") != std::string::npos);
}

TEST_CASE("a token entry carries a durable position only when its member gates on it", "[ring][wire]") {
  rw::Token t;
  t.hop = 4;
  t.seq = 9;
  t.arus.push_back(rw::TokenEntry{1, 9, rw::kTokenDurable, 5});
  t.arus.push_back(rw::TokenEntry{2, 7, 0, 0});
  std::string gated, plain;
  rw::encode_token(gated, 1, 1, t);
  t.arus[0].flags = 0;
  rw::encode_token(plain, 1, 1, t);
  CHECK(gated.size() == plain.size() + 8);  // no cost without the gate
  auto d = rw::decode_token(std::string_view(gated).substr(rw::kHeaderBytes), 16, 16);
  REQUIRE(d);
  CHECK(d->arus[0].durable == 5);
  CHECK(d->arus[1].durable == 7);  // without the flag: its aru
  // Nobody has on disk what it has not received.
  t.arus[0] = rw::TokenEntry{1, 4, rw::kTokenDurable, 5};
  std::string bad;
  rw::encode_token(bad, 1, 1, t);
  CHECK(!rw::decode_token(std::string_view(bad).substr(rw::kHeaderBytes), 16, 16));
}

TEST_CASE("with the durability gate, SAFE waits until every member has it on disk", "[ring]") {
  RingConfig c;
  c.durable_gate = true;
  Net n(3, c);
  std::map<NodeId, std::vector<Delivered>> received;
  auto take = [&] {
    for (NodeId i = 1; i <= 3; ++i) {
      std::vector<Delivered> v;
      n.r(i).take_received(v);
      received[i].insert(received[i].end(), v.begin(), v.end());
    }
  };
  n.submit(1, kAgreed, "agreed");
  n.run(300);
  take();
  // Received everywhere with the position its delivery has; AGREED needs no disk.
  CHECK(n.payloads(2) == std::vector<std::string>{"agreed"});
  for (NodeId i = 1; i <= 3; ++i) {
    REQUIRE(received[i].size() == 1);
    CHECK(received[i][0].ordinal == n.delivered[2][0].ordinal);
    CHECK(received[i][0].ring_id == n.delivered[2][0].ring_id);
    n.r(i).set_durable(received[i][0].ring_id, received[i][0].ordinal, n.now);
  }
  n.submit(1, kSafe, "safe");
  n.run(300);
  take();
  for (NodeId i = 1; i <= 3; ++i) {
    REQUIRE(received[i].size() == 2);
    CHECK(std::string(received[i][1].payload) == "safe");
  }
  // Every member has it, none has it on disk: not delivered. Two of three: still not.
  CHECK(n.payloads(2) == std::vector<std::string>{"agreed"});
  uint64_t ring = received[1][1].ring_id, ordinal = received[1][1].ordinal;
  n.r(1).set_durable(ring, ordinal, n.now);
  n.r(2).set_durable(ring, ordinal, n.now);
  n.run(300);
  for (NodeId i = 1; i <= 3; ++i) CHECK(n.payloads(i).size() == 1);
  CHECK(n.r(1).buffered_packets() >= 1);  // kept until safe
  n.r(3).set_durable(ring, ordinal, n.now);
  n.run(300);
  for (NodeId i = 1; i <= 3; ++i) {
    CHECK(n.payloads(i) == std::vector<std::string>{"agreed", "safe"});
    CHECK(n.delivered[i][1].ordinal == ordinal);
  }
  // A stale report (another ring's) changes nothing.
  n.r(1).set_durable(ring + 1, 99, n.now);
}

TEST_CASE("a ring of one with the durability gate holds its token until its disk catches up",
          "[ring]") {
  RingConfig c;
  c.durable_gate = true;
  Net n(1, c);
  n.submit(1, kSafe, "b");
  CHECK(n.payloads(1).empty());
  CHECK(n.r(1).holds_token());
  CHECK(n.r(1).next_timeout() > n.now + 1000000);  // no spinning
  std::vector<Delivered> v;
  n.r(1).take_received(v);
  REQUIRE(v.size() == 1);
  n.r(1).set_durable(v[0].ring_id, v[0].ordinal, n.now);
  n.collect(1);
  CHECK(n.payloads(1) == std::vector<std::string>{"b"});
}
