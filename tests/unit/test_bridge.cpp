// The WAN bridge's pure core (bridge/site_bridge.h) and its wire (bridge/bridge_wire.h): two
// sites' bridges wired back to back through an in-memory link that can be cut, each with a
// stand-in for its ring that orders what the bridge submits in submission order.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <random>

#include "bridge/bridge_wire.h"
#include "bridge/site_bridge.h"
#include "groups/event_codec.h"
#include "transport/client_protocol.h"

using namespace agent;
using namespace agent::bridge;

namespace {

const std::string kKey(32, 'k');

std::string nonce(char c) { return std::string(kNonceBytes, c); }

groups::Event data(const std::string& sender, std::vector<std::string> groups, std::string payload,
                   uint32_t service = proto::service::kAgreed) {
  groups::Event ev;
  ev.kind = groups::EventKind::kData;
  ev.member = sender;
  ev.groups = std::move(groups);
  ev.payload = std::move(payload);
  ev.service = service;
  return ev;
}

SiteSettings settings(const std::string& site, std::vector<std::string> daemons,
                      std::vector<std::string> others) {
  SiteSettings s;
  s.site = site;
  s.daemons = std::move(daemons);
  s.sites = std::move(others);
  s.key = kKey;
  s.queue_bytes = 1u << 20;
  s.window_bytes = 64u << 10;
  s.batch_bytes = 8u << 10;
  return s;
}

// One site: its bridge and what its ring ordered of the bridge's submissions.
struct Site {
  Site(SiteSettings s, uint64_t epoch) : b(std::move(s), epoch) {}
  // The site anew (other settings, a restart): a new bridge, nothing recorded yet.
  void reset(SiteSettings s, uint64_t epoch) {
    this->~Site();
    new (this) Site(std::move(s), epoch);
  }
  SiteBridge b;
  std::vector<groups::Event> ordered;  // events the ring delivered (unwrapped)
  std::vector<std::string> origins;    // "site/seq" of each remote one, "" for plain ones
  std::set<std::string> proxies;
  std::vector<std::string> log;
  std::vector<LinkId> closed;

  // The ring orders every submission, in order; remote ones are acknowledged.
  void order() {
    auto& out = b.output();
    for (auto& m : out.proxies_added) proxies.insert(m);
    out.proxies_added.clear();
    for (auto& [service, bytes] : out.submissions) {
      RemoteTag tag;
      std::string_view inner = bytes;
      if (is_remote_event(bytes)) {
        REQUIRE(decode_remote(bytes, tag, inner));
        b.on_remote_delivered(tag);
        origins.push_back(std::string(tag.site) + "/" + std::to_string(tag.seq));
      } else {
        origins.push_back("");
      }
      auto ev = groups::decode_event(inner);
      REQUIRE(ev);
      ordered.push_back(*ev);
    }
    out.submissions.clear();
    for (auto& m : out.proxies_dropped) proxies.erase(m);
    out.proxies_dropped.clear();
    for (auto& l : out.log) log.push_back(l);
    out.log.clear();
  }
  std::vector<std::string> payloads() const {
    std::vector<std::string> v;
    for (auto& e : ordered)
      if (e.kind == groups::EventKind::kData) v.push_back(e.payload);
    return v;
  }
};

// Two sites and the link between them (ids 1 at a, 2 at b), moved by hand.
struct Pair {
  Site a{settings("east", {"e1", "e2"}, {"west"}), 100};
  Site b{settings("west", {"w1", "w2"}, {"east"}), 200};
  bool up = false;
  LinkId la = 1, lb = 2;
  uint64_t t = 1000;

  void open() {
    la += 2;
    lb += 2;
    a.b.link_opened(la, nonce('a'), t);
    b.b.link_opened(lb, nonce('b'), t);
    up = true;
  }
  void cut() {
    if (!up) return;
    up = false;
    a.b.output().frames.clear();
    b.b.output().frames.clear();
    a.b.link_closed(la, t);
    b.b.link_closed(lb, t);
  }
  // Moves frames both ways until quiet (or max rounds); drop_after: cut after that many
  // frames from a (mid-stream), -1: never.
  void run(int rounds = 200, int drop_after = -1) {
    int from_a = 0;
    for (int i = 0; i < rounds; ++i) {
      t += 1000;
      a.order();
      b.order();
      a.b.pump();
      b.b.pump();
      auto fa = std::move(a.b.output().frames);
      auto fb = std::move(b.b.output().frames);
      a.b.output().frames.clear();
      b.b.output().frames.clear();
      auto ca = std::move(a.b.output().close), cb = std::move(b.b.output().close);
      a.b.output().close.clear();
      b.b.output().close.clear();
      if (fa.empty() && fb.empty() && ca.empty() && cb.empty()) return;
      if (!up) continue;
      for (auto& [id, bytes] : fa) {
        REQUIRE(id == la);
        if (drop_after >= 0 && from_a++ == drop_after) {
          cut();
          break;
        }
        b.b.on_bytes(lb, bytes.data(), bytes.size(), t);
      }
      if (!up) continue;
      for (auto& [id, bytes] : fb) {
        REQUIRE(id == lb);
        a.b.on_bytes(la, bytes.data(), bytes.size(), t);
      }
      if (!ca.empty() || !cb.empty()) {
        for (auto& c : ca) a.closed.push_back(c.first);
        for (auto& c : cb) b.closed.push_back(c.first);
        cut();
      }
    }
  }
};

std::map<std::string, std::set<std::string>> table(
    std::initializer_list<std::pair<const char*, std::vector<std::string>>> rows) {
  std::map<std::string, std::set<std::string>> t;
  for (auto& [m, gs] : rows) t[m].insert(gs.begin(), gs.end());
  return t;
}

void members(Site& s, const std::map<std::string, std::set<std::string>>& t) {
  std::unordered_map<std::string, std::set<std::string>> u(t.begin(), t.end());
  s.b.on_members(u);
}

}  // namespace

TEST_CASE("bridge wire: frames round-trip and malformed ones are refused", "[bridge]") {
  Hello h{kLinkVersion, true, "east", 7, {"e1", "e2"}, nonce('x')};
  std::string bytes;
  encode_hello(bytes, h);
  Item i1{1, "hello"}, i2{2, std::string(5000, 'z')};
  encode_batch(bytes, {&i1, &i2}, true);
  encode_ack(bytes, 42);
  FrameReader r;
  // Byte by byte: frames come out whole and only then.
  size_t frames = 0;
  for (char c : bytes) {
    r.feed(&c, 1);
    while (auto f = r.next()) {
      ++frames;
      if (f->first == FrameType::kHello) {
        Hello back;
        REQUIRE(decode_hello(f->second, back));
        CHECK(back.site == "east");
        CHECK(back.epoch == 7);
        CHECK(back.daemons == std::vector<std::string>{"e1", "e2"});
      } else if (f->first == FrameType::kBatch) {
        std::vector<Item> items;
        REQUIRE(decode_batch(f->second, items));
        REQUIRE(items.size() == 2);
        CHECK(items[1].event == i2.event);
        CHECK(f->second.size() < 1000);  // 5000 equal bytes compress
      } else {
        uint64_t v = 0;
        REQUIRE(decode_u64(f->second, v));
        CHECK(v == 42);
      }
    }
  }
  CHECK(frames == 3);
  CHECK(r.error().empty());

  // Random bytes do not compress: the batch goes raw.
  std::mt19937 rng(5);
  Item rnd{3, std::string(4000, '\0')};
  for (auto& c : rnd.event) c = static_cast<char>(rng());
  std::string raw;
  size_t before = encode_batch(raw, {&rnd}, true);
  CHECK(raw.size() < before + 16);
  CHECK(raw[5] == 0);  // flags: not compressed

  // Damaged: a compressed batch cut short, a length past the limit, an unknown type.
  std::string cut = bytes.substr(0, bytes.size() - 20);
  std::vector<Item> items;
  FrameReader r2;
  std::string huge = std::string("\xff\xff\xff\x7f\x04", 5);
  r2.feed(huge.data(), huge.size());
  CHECK(!r2.next());
  CHECK(!r2.error().empty());
  std::string body = std::string("\x01\x10\x00\x00\x00\x01\x00\x00\x00", 9) + "garbage";
  CHECK(!decode_batch(body, items));
  FrameReader r3;
  std::string unknown = std::string("\x01\x00\x00\x00\x63", 5);
  r3.feed(unknown.data(), unknown.size());
  CHECK(!r3.next());
  CHECK(!r3.error().empty());
}

TEST_CASE("bridge: a site's own traffic reaches the other site in order, acknowledged",
          "[bridge]") {
  Pair p;
  p.open();
  p.run();
  REQUIRE(p.a.b.stats().at("west").up);
  REQUIRE(p.b.b.stats().at("east").up);
  for (int i = 0; i < 500; ++i)
    p.a.b.on_local_data(data("#alice#e1", {"chat"}, "m" + std::to_string(i)), {});
  // Another site's member's message, and one of a member of no site: not sent on.
  p.a.b.on_local_data(data("#bob#w1", {"chat"}, "from-west"), {});
  p.a.b.on_local_data(data("#carol#x9", {"chat"}, "unknown"), {});
  p.run(2000);
  auto got = p.b.payloads();
  REQUIRE(got.size() == 500);
  for (int i = 0; i < 500; ++i) CHECK(got[i] == "m" + std::to_string(i));
  CHECK(p.b.ordered[0].member == "#alice#e1");
  // Acknowledged once ordered: the queue is empty.
  CHECK(p.a.b.stats().at("west").acked == 500);
  CHECK(p.a.b.queued_items() == 0);
  // The window bounded each round: many batches, not one.
  CHECK(p.a.b.stats().at("west").items_sent == 500);
}

TEST_CASE("bridge: members of the other site appear as proxies, leave when the link goes, "
          "return with it", "[bridge]") {
  Pair p;
  p.open();
  p.run();
  members(p.a, table({{"#alice#e1", {"chat", "ops"}}, {"#bob#e2", {"chat"}}}));
  p.run();
  CHECK(p.b.proxies == std::set<std::string>{"#alice#e1", "#bob#e2"});
  size_t joins = 0;
  for (auto& e : p.b.ordered) joins += e.kind == groups::EventKind::kJoin;
  CHECK(joins == 3);
  // bob leaves chat: a leave; his last group, so no longer a proxy.
  members(p.a, table({{"#alice#e1", {"chat", "ops"}}}));
  p.run();
  CHECK(p.b.proxies == std::set<std::string>{"#alice#e1"});
  CHECK(p.b.ordered.back().kind == groups::EventKind::kLeave);
  CHECK(p.b.ordered.back().member == "#bob#e2");
  // The link goes: alice disconnects at west.
  p.cut();
  p.b.order();
  CHECK(p.b.proxies.empty());
  CHECK(p.b.ordered.back().kind == groups::EventKind::kDisconnect);
  // Meanwhile dave joins at east; the next link's snapshot brings both.
  members(p.a, table({{"#alice#e1", {"chat", "ops"}}, {"#dave#e2", {"ops"}}}));
  p.open();
  p.run();
  CHECK(p.b.proxies == std::set<std::string>{"#alice#e1", "#dave#e2"});
  // Membership items older than the snapshot are not applied twice.
  std::map<std::pair<std::string, std::string>, int> net;
  for (auto& e : p.b.ordered) {
    if (e.kind == groups::EventKind::kJoin) ++net[{e.member, e.group}];
    if (e.kind == groups::EventKind::kLeave) --net[{e.member, e.group}];
    if (e.kind == groups::EventKind::kDisconnect)
      for (auto& [k, v] : net)
        if (k.first == e.member) v = 0;
  }
  for (auto& [k, v] : net) CHECK((v == 0 || v == 1));
  CHECK(net[{"#alice#e1", "ops"}] == 1);
  CHECK(net[{"#dave#e2", "ops"}] == 1);
  CHECK(net[{"#bob#e2", "chat"}] == 0);
}

TEST_CASE("bridge: a link cut mid-stream resumes without loss or duplicates", "[bridge]") {
  for (int cut_at : {0, 1, 2}) {
    Pair p;
    p.open();
    p.run();
    for (int i = 0; i < 400; ++i)
      p.a.b.on_local_data(data("#alice#e1", {"chat"}, std::string(300, 'x') + std::to_string(i)),
                          {});
    p.run(2000, cut_at);
    REQUIRE(!p.up);
    p.open();
    p.run(2000);
    auto got = p.b.payloads();
    REQUIRE(got.size() == 400);
    for (int i = 0; i < 400; ++i) CHECK(got[i] == std::string(300, 'x') + std::to_string(i));
    CHECK(p.a.b.queued_items() == 0);
  }
}

TEST_CASE("bridge: items resent after a reconnect are dropped as duplicates", "[bridge]") {
  Pair p;
  p.open();
  p.run();
  for (int i = 0; i < 50; ++i) p.a.b.on_local_data(data("#alice#e1", {"chat"}, std::to_string(i)), {});
  // West receives and submits, but its ring has not ordered them when the link goes.
  p.a.b.pump();
  auto frames = std::move(p.a.b.output().frames);
  p.a.b.output().frames.clear();
  for (auto& [id, bytes] : frames) p.b.b.on_bytes(p.lb, bytes.data(), bytes.size(), p.t);
  auto pending = std::move(p.b.b.output().submissions);
  p.b.b.output().submissions.clear();
  REQUIRE(pending.size() == 50);
  p.cut();
  // Reconnect while they are still in west's ring: east resends from west's last applied
  // (0); west drops what it already handed to its ring.
  p.open();
  p.run(2000);
  CHECK(p.b.b.stats().at("east").duplicates == 50);
  CHECK(p.b.payloads().empty());
  // Now the ring orders them: once each, and east learns they are applied.
  p.b.b.output().submissions.insert(p.b.b.output().submissions.begin(), pending.begin(),
                                    pending.end());
  p.run(2000);
  auto got = p.b.payloads();
  REQUIRE(got.size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(got[i] == std::to_string(i));
  CHECK(p.a.b.stats().at("west").acked == 50);
}

TEST_CASE("bridge: links with the wrong key, an unknown site or shared daemon names are refused",
          "[bridge]") {
  SECTION("wrong key") {
    Pair p;
    auto s = settings("west", {"w1"}, {"east"});
    s.key = std::string(32, 'q');
    p.b.reset(s, 200);
    p.open();
    p.run();
    CHECK(!p.a.b.stats().at("west").up);
    CHECK(!p.a.closed.empty());
    bool said = false;
    for (auto& l : p.a.log) said |= l.find("wrong link key") != std::string::npos;
    for (auto& l : p.b.log) said |= l.find("wrong link key") != std::string::npos;
    CHECK(said);
  }
  SECTION("unknown site") {
    Pair p;
    p.b.reset(settings("north", {"n1"}, {"east"}), 200);
    p.open();
    p.run();
    bool said = false;
    for (auto& l : p.a.log) said |= l.find("not among bridge.sites") != std::string::npos;
    CHECK(said);
    CHECK(!p.a.closed.empty());
  }
  SECTION("a daemon name in both sites") {
    Pair p;
    p.b.reset(settings("west", {"e2"}, {"east"}), 200);
    p.open();
    p.run();
    bool said = false;
    for (auto& l : p.a.log) said |= l.find("used by both sites") != std::string::npos;
    CHECK(said);
  }
}

TEST_CASE("bridge: the queue bound drops the oldest and the other site is told", "[bridge]") {
  Pair p;
  // West is not linked yet: east's traffic queues, 1 MiB at most.
  for (int i = 0; i < 3000; ++i)
    p.a.b.on_local_data(data("#alice#e1", {"chat"}, std::string(1000, 'y') + std::to_string(i)), {});
  CHECK(p.a.b.queued_bytes() <= (1u << 20));
  size_t kept = p.a.b.queued_items();
  CHECK(kept < 3000);
  p.open();
  p.run(4000);
  auto got = p.b.payloads();
  CHECK(got.size() == kept);
  CHECK(got.back() == std::string(1000, 'y') + "2999");
  CHECK(p.b.b.stats().at("east").gaps == 1);
  CHECK(p.b.b.stats().at("east").gap_items == 3000 - kept);
}

TEST_CASE("bridge: only bridged groups and other sites' private names are sent", "[bridge]") {
  auto s = settings("east", {"e1"}, {"west"});
  s.groups = {"orders.*"};
  SiteBridge b(s, 9);
  b.on_local_data(data("#a#e1", {"chat"}, "no"), {});
  CHECK(b.head() == 0);
  b.on_local_data(data("#a#e1", {"orders.eu"}, "yes"), {});
  b.on_local_data(data("#a#e1", {"#bob#w1"}, "p2p"), {});
  b.on_local_data(data("#a#e1", {"#carl#e1"}, "local p2p"), {});
  CHECK(b.head() == 2);
}

TEST_CASE("bridge: unsealed links work too, mixed settings are refused, an altered sealed frame "
          "ends the link", "[bridge]") {
  SECTION("both unsealed") {
    Pair p;
    auto a = settings("east", {"e1", "e2"}, {"west"}), b = settings("west", {"w1", "w2"}, {"east"});
    a.encrypt = b.encrypt = false;
    p.a.reset(a, 100);
    p.b.reset(b, 200);
    p.open();
    p.run();
    for (int i = 0; i < 20; ++i) p.a.b.on_local_data(data("#x#e1", {"g"}, std::to_string(i)), {});
    p.run();
    CHECK(p.b.payloads().size() == 20);
  }
  SECTION("one side unsealed") {
    Pair p;
    auto b = settings("west", {"w1", "w2"}, {"east"});
    b.encrypt = false;
    p.b.reset(b, 200);
    p.open();
    p.run();
    CHECK(!p.a.b.stats().at("west").up);
    bool said = false;
    for (auto& l : p.a.log) said |= l.find("bridge.encrypt") != std::string::npos;
    for (auto& l : p.b.log) said |= l.find("bridge.encrypt") != std::string::npos;
    CHECK(said);
  }
  SECTION("a flipped bit") {
    Pair p;
    p.open();
    p.run();
    REQUIRE(p.b.b.stats().at("east").up);
    p.a.b.on_local_data(data("#x#e1", {"g"}, "secret payload"), {});
    p.a.b.pump();
    auto frames = std::move(p.a.b.output().frames);
    p.a.b.output().frames.clear();
    REQUIRE(frames.size() == 1);
    std::string bytes = frames[0].second;
    // The payload does not travel in the clear.
    CHECK(bytes.find("secret payload") == std::string::npos);
    bytes[bytes.size() - 20] ^= 1;
    p.b.b.on_bytes(p.lb, bytes.data(), bytes.size(), p.t);
    p.b.order();
    CHECK(p.b.payloads().empty());
    REQUIRE(!p.b.b.output().close.empty());
    CHECK(p.b.b.output().close[0].second.find("does not open") != std::string::npos);
  }
}

TEST_CASE("bridge: a triangle of three sites neither loops nor duplicates", "[bridge]") {
  // Each site's stand-in for its daemon core: the ring orders the bridge's submissions and
  // hands every ordered event back as the core does (remote ones acknowledged, data offered
  // to be sent on, membership read off the group table, proxies included).
  struct Node {
    Node(std::string site, std::vector<std::string> daemons, std::vector<std::string> others,
         uint64_t epoch)
        : b(settings(site, daemons, others), epoch), daemon(daemons[0]) {}
    SiteBridge b;
    std::string daemon;
    std::unordered_map<std::string, std::set<std::string>> table;
    std::vector<groups::Event> data;
    void local(const groups::Event& ev) {
      b.on_local_data(ev, {});
      data.push_back(ev);
    }
    void order() {
      auto& out = b.output();
      out.proxies_added.clear();
      out.proxies_dropped.clear();
      auto subs = std::move(out.submissions);
      out.submissions.clear();
      bool changed = false;
      for (auto& [service, bytes] : subs) {
        RemoteTag tag;
        std::string_view inner = bytes;
        bool remote = decode_remote(bytes, tag, inner);
        auto ev = groups::decode_event(inner);
        REQUIRE(ev);
        if (ev->kind == groups::EventKind::kData) {
          data.push_back(*ev);
          // Offered whether or not it came from another site: the bridge itself must not
          // send on what is not its site's own.
          b.on_local_data(*ev, {});
        } else if (ev->kind == groups::EventKind::kJoin) {
          changed |= table[ev->member].insert(ev->group).second;
        } else if (ev->kind == groups::EventKind::kLeave) {
          changed |= table[ev->member].erase(ev->group) > 0;
        } else if (ev->kind == groups::EventKind::kDisconnect) {
          changed |= table.erase(ev->member) > 0;
        }
        if (remote) b.on_remote_delivered(tag);
      }
      if (changed) b.on_members(table);
      out.log.clear();
    }
  };
  std::vector<std::unique_ptr<Node>> n;
  n.push_back(std::make_unique<Node>("a", std::vector<std::string>{"a1"},
                                     std::vector<std::string>{"b", "c"}, 1));
  n.push_back(std::make_unique<Node>("b", std::vector<std::string>{"b1"},
                                     std::vector<std::string>{"a", "c"}, 2));
  n.push_back(std::make_unique<Node>("c", std::vector<std::string>{"c1"},
                                     std::vector<std::string>{"a", "b"}, 3));
  // Links: id 10*i+j at node i talks to node j.
  uint64_t t = 0;
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j)
      if (i != j) n[i]->b.link_opened(10 * i + j, nonce(static_cast<char>('0' + i)), t);
  auto run = [&] {
    for (int round = 0; round < 500; ++round) {
      t += 1000;
      bool any = false;
      for (auto& x : n) x->order();
      for (auto& x : n) x->b.pump();
      for (size_t i = 0; i < 3; ++i) {
        auto frames = std::move(n[i]->b.output().frames);
        n[i]->b.output().frames.clear();
        REQUIRE(n[i]->b.output().close.empty());
        for (auto& [id, bytes] : frames) {
          size_t j = id % 10;
          n[j]->b.on_bytes(10 * j + i, bytes.data(), bytes.size(), t);
          any = true;
        }
      }
      if (!any) return;
    }
  };
  run();
  const char* who[] = {"#alice#a1", "#bob#b1", "#carol#c1"};
  for (size_t i = 0; i < 3; ++i) {
    n[i]->table[who[i]].insert("g");
    n[i]->b.on_members(n[i]->table);
  }
  run();
  for (size_t i = 0; i < 3; ++i)
    CHECK(n[i]->b.remote_members().size() == 2);  // the two other sites' members, as proxies
  for (int k = 0; k < 100; ++k)
    for (size_t i = 0; i < 3; ++i) n[i]->local(data(who[i], {"g"}, std::to_string(k)));
  run();
  for (size_t i = 0; i < 3; ++i) {
    std::map<std::string, std::vector<std::string>> by;
    for (auto& e : n[i]->data) by[e.member].push_back(e.payload);
    REQUIRE(by.size() == 3);
    for (auto& [sender, list] : by) {
      REQUIRE(list.size() == 100);  // once each
      for (int k = 0; k < 100; ++k) CHECK(list[k] == std::to_string(k));  // in the sender's order
    }
    // Each site sent its own 100 messages and one join on each link, nothing of others'.
    for (auto& [site, st] : n[i]->b.stats()) CHECK(st.items_sent == 101);
  }
}

namespace {
// Applies what a bridge recorded to its store (as agentd's store actor does).
void flush_store(SiteBridge& b, persist::BridgeStore& store) {
  REQUIRE(store.write(b.changes()) == "");
  b.changes() = {};
}
}  // namespace

TEST_CASE("bridge: a bridge that restarts goes on with its stream: queued items are sent, "
          "the other site's stream resumes where it was applied", "[bridge]") {
  char tmpl[] = "/tmp/agent-bridge-store-XXXXXX";
  std::string root = mkdtemp(tmpl);
  std::string east_dir = root + "/east", west_dir = root + "/west";
  persist::BridgeState es, ws;
  std::string err;
  auto east_store = persist::BridgeStore::open(east_dir, es, err);
  auto west_store = persist::BridgeStore::open(west_dir, ws, err);
  REQUIRE(east_store);
  REQUIRE(west_store);
  CHECK(es.epoch == 0);

  auto start = [&](Pair& p, bool first) {
    persist::BridgeState a, b;
    if (!first) {
      east_store.reset();
      west_store.reset();
      east_store = persist::BridgeStore::open(east_dir, a, err);
      west_store = persist::BridgeStore::open(west_dir, b, err);
      REQUIRE(east_store);
      REQUIRE(west_store);
    }
    p.a.b.restore(a);
    p.b.b.restore(b);
    p.a.b.record_changes(true);
    p.b.b.record_changes(true);
    if (a.epoch == 0) REQUIRE(east_store->set_epoch(p.a.b.epoch()) == "");
    if (b.epoch == 0) REQUIRE(west_store->set_epoch(p.b.b.epoch()) == "");
  };
  std::vector<std::string> got;
  {
    Pair p;
    start(p, true);
    p.open();
    p.run();
    for (int i = 0; i < 100; ++i) p.a.b.on_local_data(data("#alice#e1", {"chat"}, std::to_string(i)), {});
    p.run(2000);
    flush_store(p.a.b, *east_store);
    flush_store(p.b.b, *west_store);
    for (auto& s : p.b.payloads()) got.push_back(s);
    REQUIRE(got.size() == 100);
    // The link goes; east queues 50 more, stored; then both bridges stop.
    p.cut();
    for (int i = 100; i < 150; ++i) p.a.b.on_local_data(data("#alice#e1", {"chat"}, std::to_string(i)), {});
    flush_store(p.a.b, *east_store);
    flush_store(p.b.b, *west_store);
  }
  {
    // Both restart (new objects, new incarnations): same streams.
    Pair p;
    p.a.reset(settings("east", {"e1", "e2"}, {"west"}), 101);
    p.b.reset(settings("west", {"w1", "w2"}, {"east"}), 201);
    start(p, false);
    CHECK(p.a.b.epoch() == 100);  // the stored epoch, not the new incarnation
    CHECK(p.a.b.queued_items() == 50);
    p.open();
    p.run(2000);
    for (auto& s : p.b.payloads()) got.push_back(s);
    REQUIRE(got.size() == 150);
    for (int i = 0; i < 150; ++i) CHECK(got[i] == std::to_string(i));
    CHECK(p.b.b.stats().at("east").duplicates == 0);
    flush_store(p.a.b, *east_store);
  }
  // Acknowledged everywhere: nothing left in east's store.
  persist::BridgeState after;
  east_store.reset();
  east_store = persist::BridgeStore::open(east_dir, after, err);
  CHECK(after.items.empty());
  CHECK(after.head == 150);
  CHECK(after.acked["west"] == 150);
  std::string cmd = "rm -rf " + root;
  CHECK(std::system(cmd.c_str()) == 0);
}

TEST_CASE("bridge store: refuses a directory that is not its own", "[bridge]") {
  char tmpl[] = "/tmp/agent-bridge-store-XXXXXX";
  std::string root = mkdtemp(tmpl);
  std::ofstream(root + "/notes.txt") << "mine";
  persist::BridgeState st;
  std::string err;
  CHECK(!persist::BridgeStore::open(root, st, err));
  CHECK(err.find("cannot open") != std::string::npos);
  std::ifstream f(root + "/notes.txt");
  std::string text;
  f >> text;
  CHECK(text == "mine");  // nothing wiped
  std::string cmd = "rm -rf " + root;
  CHECK(std::system(cmd.c_str()) == 0);
}

namespace {
// What persist::BridgeStore keeps, kept in memory: the changes applied as the store does.
void apply(persist::BridgeState& st, const persist::BridgeChanges& c) {
  for (auto& it : c.items) st.items.push_back(it);
  if (c.head) st.head = c.head;
  uint64_t gone = std::max(c.trim_through, c.dropped_through);
  st.items.erase(std::remove_if(st.items.begin(), st.items.end(),
                                [&](auto& it) { return it.seq <= gone; }),
                 st.items.end());
  if (c.dropped_through) st.dropped_through = c.dropped_through;
  for (auto& [s, v] : c.acked) st.acked[s] = v;
  for (auto& [s, v] : c.applied) st.applied[s] = v;
}
}  // namespace

TEST_CASE("bridge: random cuts, split and delayed bytes, late ordering and restarts lose and "
          "duplicate nothing (200 seeds)", "[bridge]") {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    auto chance = [&](int pct) { return static_cast<int>(rng() % 100) < pct; };
    struct Side {
      std::unique_ptr<SiteBridge> b;
      persist::BridgeState stored;
      std::deque<std::pair<uint32_t, std::string>> ring;  // submitted, not yet ordered
      std::vector<std::string> got;                        // the other site's data, in order
      std::string sender, site, other;
      std::vector<std::string> daemons;
      uint64_t incarnation = 0;
      std::string inbox;  // bytes sent to this side, not yet read
    };
    Side s[2];
    s[0].site = "east", s[0].other = "west", s[0].daemons = {"e1"}, s[0].sender = "#a#e1";
    s[1].site = "west", s[1].other = "east", s[1].daemons = {"w1"}, s[1].sender = "#b#w1";
    auto start = [&](Side& x) {
      auto st = settings(x.site, x.daemons, {x.other});
      st.window_bytes = 4096 + rng() % 65536;
      st.batch_bytes = 512 + rng() % 8192;
      x.b = std::make_unique<SiteBridge>(st, ++x.incarnation + 1000 * (&x == &s[1]));
      x.b->restore(x.stored);
      x.b->record_changes(true);
      if (x.stored.epoch == 0) x.stored.epoch = x.b->epoch();  // as agentd stores it
      x.ring.clear();
      x.inbox.clear();
    };
    start(s[0]);
    start(s[1]);
    LinkId link = 1;
    bool up = false;
    uint64_t t = 0;
    int sent[2] = {0, 0};
    auto open = [&] {
      ++link;
      for (auto& x : s) x.b->link_opened(link, nonce(static_cast<char>('a' + (&x - s))), t);
      up = true;
    };
    auto cut = [&] {
      if (!up) return;
      up = false;
      for (auto& x : s) {
        x.b->link_closed(link, t);
        x.inbox.clear();
      }
    };
    open();
    for (int step = 0; step < 600; ++step) {
      t += 1000 + rng() % 5000;
      for (int i = 0; i < 2; ++i) {
        Side& x = s[i];
        if (chance(30))
          for (int k = rng() % 5; k >= 0; --k)
            x.b->on_local_data(data(x.sender, {"g"}, std::to_string(sent[i]++)), {});
        // The ring orders some of what was submitted (in order).
        auto& out = x.b->output();
        for (auto& m : out.submissions) x.ring.push_back(std::move(m));
        out.submissions.clear();
        out.proxies_added.clear();
        out.proxies_dropped.clear();
        out.log.clear();
        size_t n = chance(70) ? x.ring.size() : rng() % (x.ring.size() + 1);
        for (size_t k = 0; k < n; ++k) {
          auto [service, bytes] = std::move(x.ring.front());
          x.ring.pop_front();
          RemoteTag tag;
          std::string_view inner;
          if (!decode_remote(bytes, tag, inner)) continue;
          auto ev = groups::decode_event(inner);
          REQUIRE(ev);
          if (ev->kind == groups::EventKind::kData) x.got.push_back(ev->payload);
          x.b->on_remote_delivered(tag);
        }
        x.b->tick(t);
        x.b->pump();
        apply(x.stored, x.b->changes());
        x.b->changes() = {};
      }
      // Bytes cross, split at random points; closes end the link.
      bool closing = false;
      for (int i = 0; i < 2; ++i) {
        auto& out = s[i].b->output();
        for (auto& [id, bytes] : out.frames)
          if (up && id == link) s[1 - i].inbox += bytes;
        out.frames.clear();
        closing |= !out.close.empty();
        out.close.clear();
      }
      if (closing) cut();
      for (auto& x : s) {
        if (!up || x.inbox.empty()) continue;
        size_t n = chance(50) ? x.inbox.size() : rng() % (x.inbox.size() + 1);
        x.b->on_bytes(link, x.inbox.data(), n, t);
        x.inbox.erase(0, n);
      }
      if (chance(3)) cut();
      if (!up && chance(20)) open();
      if (chance(1)) {
        // A bridge restarts: what its ring had not ordered is lost with it (its clients' sends
        // of the moment); the link ends.
        Side& x = s[rng() % 2];
        cut();
        start(x);
      }
    }
    // Quiet: the link up, what is on its way read, everything ordered and sent.
    if (!up) open();
    for (auto& x : s) {
      std::string bytes = std::move(x.inbox);
      x.inbox.clear();
      x.b->on_bytes(link, bytes.data(), bytes.size(), t);
    }
    for (int round = 0; round < 3000; ++round) {
      t += 2000;
      bool busy = false;
      for (int i = 0; i < 2; ++i) {
        Side& x = s[i];
        auto& out = x.b->output();
        for (auto& m : out.submissions) x.ring.push_back(std::move(m));
        out.submissions.clear();
        out.proxies_added.clear();
        out.proxies_dropped.clear();
        out.log.clear();
        while (!x.ring.empty()) {
          auto [service, bytes] = std::move(x.ring.front());
          x.ring.pop_front();
          RemoteTag tag;
          std::string_view inner;
          if (!decode_remote(bytes, tag, inner)) continue;
          auto ev = groups::decode_event(inner);
          if (ev->kind == groups::EventKind::kData) x.got.push_back(ev->payload);
          x.b->on_remote_delivered(tag);
        }
        x.b->tick(t);
        x.b->pump();
        apply(x.stored, x.b->changes());
        x.b->changes() = {};
        REQUIRE(out.close.empty());
        for (auto& [id, bytes] : out.frames) {
          s[1 - i].b->on_bytes(link, bytes.data(), bytes.size(), t);
          busy = true;
        }
        out.frames.clear();
      }
      if (!busy) break;
    }
    for (int i = 0; i < 2; ++i) {
      INFO("seed " << seed << ", site " << s[1 - i].site << " receiving");
      auto& got = s[1 - i].got;
      if (got.size() != static_cast<size_t>(sent[i])) {
        auto& from = *s[i].b;
        auto& to = *s[1 - i].b;
        WARN("sender head " << from.head() << " queued " << from.queued_items() << " acked "
                            << from.stats().at(s[1 - i].site).acked << " up "
                            << from.stats().at(s[1 - i].site).up << "; receiver applied "
                            << to.stats().at(s[i].site).applied << " received "
                            << to.stats().at(s[i].site).items_received << " dups "
                            << to.stats().at(s[i].site).duplicates << " gaps "
                            << to.stats().at(s[i].site).gaps << " up " << to.stats().at(s[i].site).up);
      }
      if (got.size() != static_cast<size_t>(sent[i]))
        for (size_t k = 1; k < got.size(); ++k)
          if (std::stoi(got[k]) != std::stoi(got[k - 1]) + 1)
            WARN("after " << got[k - 1] << " came " << got[k] << " at " << k);
      // Each message of the other site once, in order (the queue bound is not reached).
      REQUIRE(got.size() == static_cast<size_t>(sent[i]));
      for (int k = 0; k < sent[i]; ++k) REQUIRE(got[k] == std::to_string(k));
    }
  }
}
