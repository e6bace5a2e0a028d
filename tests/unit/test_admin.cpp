// The admin service's pure parts: the admin verb's codec and its handling in the client hub
// (who may do what), the snapshot of a daemon core, and its renderings (Prometheus text, JSON,
// terminal text), and the [admin] configuration keys.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agentd/admin_render.h"
#include "agentd/admin_snapshot.h"
#include "agentd/daemon_core.h"
#include "agentd/log.h"

using namespace agent;
using namespace agent::daemon;
using proto::ErrorCode;
using proto::Verb;
using nlohmann::json;

namespace {

const bool quiet = (agent::log::set_level(agent::log::Level::kError), true);

// Records what the core sends and the admin requests it passes on.
struct FakeIo : CoreIo {
  void send(ConnId id, std::string_view b) override { out[id].append(b.data(), b.size()); }
  void close(ConnId id) override { closed[id] = true; }
  void send_datagram(NodeId, std::string_view, const std::vector<NodeId>&) override {}
  void set_client_input(bool) override {}
  std::string store_ring_seq(uint32_t) override { return {}; }
  void admin(ConnId id, const proto::Admin& req) override { admins.emplace_back(id, req); }
  std::map<ConnId, std::string> out;
  std::map<ConnId, bool> closed;
  std::vector<std::pair<ConnId, proto::Admin>> admins;
};

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
std::vector<ErrorCode> errors(const std::string& bytes) {
  std::vector<ErrorCode> v;
  for (auto& f : frames(bytes))
    if (f.verb == Verb::kError) v.push_back(proto::decode_error(f.body)->code);
  return v;
}

std::string hello(const std::string& name) {
  std::string b;
  proto::encode(b, proto::Hello{proto::kMagic, proto::kVersion, proto::kHelloWantMembership, name});
  return b;
}
std::string admin(const std::string& command, const std::string& arg = "", uint8_t flags = 0) {
  std::string b;
  proto::encode(b, proto::Admin{command, arg, flags});
  return b;
}

Peer unix_peer(uint32_t uid) {
  Peer p;
  p.kind = Peer::Kind::kUnix;
  p.uid = uid;
  p.gid = uid;
  return p;
}

// A daemon alone, operational, in virtual time.
struct Alone {
  Alone() {
    cfg.name = "d1";
    cfg.ring.id = 1;
    cfg.ring.min_rotation_us = 0;
    cfg.daemon_uid = 1000;
    core = std::make_unique<DaemonCore>(cfg, io, now);
    settle();
  }
  void settle(Time for_us = 100000) {
    Time until = now + for_us;
    while (core->next_timeout() <= until) {
      now = std::max(now, core->next_timeout());
      core->run(now);
    }
    now = until;
    core->run(now);
  }
  void open(ConnId id, uint32_t uid, const std::string& name) {
    REQUIRE(core->on_open(id, now, unix_peer(uid)));
    input(id, hello(name));
  }
  void input(ConnId id, const std::string& bytes) {
    core->on_bytes(id, bytes.data(), bytes.size(), now);
    core->run(now);
  }
  Config cfg;
  FakeIo io;
  Time now = 0;
  std::unique_ptr<DaemonCore> core;
};

// Every series of a Prometheus text exposition: "name{labels}" -> value. Fails on a line that
// is neither a comment nor "series value".
std::map<std::string, double> parse_prometheus(const std::string& text) {
  std::map<std::string, double> v;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    REQUIRE(sp != std::string::npos);
    v[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return v;
}

}  // namespace

TEST_CASE("the admin frames round-trip, and unknown flags or trailing bytes do not decode",
          "[admin]") {
  std::string b = admin("disconnect", "#a#d1", proto::kAdminJson);
  auto f = frames(b);
  REQUIRE(f.size() == 1);
  CHECK(f[0].verb == Verb::kAdmin);
  auto a = proto::decode_admin(f[0].body);
  REQUIRE(a);
  CHECK(a->command == "disconnect");
  CHECK(a->argument == "#a#d1");
  CHECK(a->flags == proto::kAdminJson);
  std::string bad = f[0].body;
  bad.back() = 0x7f;  // flags beyond kAdminJson
  CHECK(!proto::decode_admin(bad));
  CHECK(!proto::decode_admin(f[0].body + "x"));

  std::string r;
  proto::encode(r, proto::AdminReply{"status", "{\"a\":1}"});
  auto rf = frames(r);
  REQUIRE(rf.size() == 1);
  CHECK(rf[0].verb == Verb::kAdminReply);
  auto reply = proto::decode_admin_reply(rf[0].body);
  REQUIRE(reply);
  CHECK(reply->command == "status");
  CHECK(reply->text == "{\"a\":1}");
  CHECK(!proto::decode_admin_reply(rf[0].body.substr(0, rf[0].body.size() - 1)));
}

TEST_CASE("admin views go to the daemon for any client, unknown commands are refused (22)",
          "[admin]") {
  Alone d;
  d.open(5, 4242, "viewer");
  d.input(5, admin("status") + admin("counters", "", proto::kAdminJson) + admin("frobnicate"));
  REQUIRE(d.io.admins.size() == 2);
  CHECK(d.io.admins[0].first == 5);
  CHECK(d.io.admins[0].second.command == "status");
  CHECK(d.io.admins[1].second.flags == proto::kAdminJson);
  CHECK(errors(d.io.out[5]) == std::vector<ErrorCode>{ErrorCode::kBadAdminRequest});
  CHECK(!d.io.closed[5]);
  // The daemon's answer reaches the client as an admin reply.
  d.core->admin_reply(5, "status", "daemon d1");
  d.core->run(d.now);
  auto f = frames(d.io.out[5]);
  REQUIRE(f.back().verb == Verb::kAdminReply);
  CHECK(proto::decode_admin_reply(f.back().body)->text == "daemon d1");
}

TEST_CASE("admin actions need an operator: others get error 21 and nothing happens", "[admin]") {
  Alone d;
  d.open(5, 4242, "mallory");
  d.open(6, 4243, "victim");
  d.input(5, admin("disconnect", "victim") + admin("leave"));
  CHECK(errors(d.io.out[5]) ==
        std::vector<ErrorCode>{ErrorCode::kNotPermitted, ErrorCode::kNotPermitted});
  CHECK(d.io.admins.empty());  // leave never reached the daemon
  CHECK(d.core->hub().has_session(6));
  CHECK(!d.io.closed[6]);
}

TEST_CASE("an operator disconnects a client by name: it gets error 23 and is closed",
          "[admin]") {
  Alone d;
  d.open(5, 1000, "op");  // the daemon's own user (cfg.daemon_uid)
  d.open(6, 4243, "victim");
  d.input(5, admin("disconnect", "victim"));
  CHECK(errors(d.io.out[6]) == std::vector<ErrorCode>{ErrorCode::kDisconnectedByOperator});
  CHECK(d.io.closed[6]);
  CHECK(!d.core->hub().has_session(6));
  auto f = frames(d.io.out[5]);
  REQUIRE(!f.empty());
  REQUIRE(f.back().verb == Verb::kAdminReply);
  CHECK(proto::decode_admin_reply(f.back().body)->text == "disconnected victim\n");
  CHECK(d.core->hub().stats().operator_disconnects == 1);
  // A name nobody has: refused with 22, nothing else happens.
  d.input(5, admin("disconnect", "#ghost#d1"));
  CHECK(errors(d.io.out[5]) == std::vector<ErrorCode>{ErrorCode::kBadAdminRequest});
  // leave is passed on to the daemon (it stops as on SIGTERM).
  d.input(5, admin("leave"));
  REQUIRE(d.io.admins.size() == 1);
  CHECK(d.io.admins[0].second.command == "leave");
}

TEST_CASE("root and the principals of admin.operators are operators, TCP clients are not by default",
          "[admin]") {
  Config cfg;
  cfg.daemon_uid = 1000;
  Principal p;
  REQUIRE(parse_principal("uid:77", p) == "");
  cfg.admin_operators.push_back(p);
  FakeIo io;
  ClientHub hub(cfg, io, [](uint32_t, std::string&) {});
  CHECK(hub.is_operator(unix_peer(0)));
  CHECK(hub.is_operator(unix_peer(1000)));
  CHECK(hub.is_operator(unix_peer(77)));
  CHECK(!hub.is_operator(unix_peer(78)));
  Peer tcp;
  tcp.kind = Peer::Kind::kTcp;
  tcp.address = "127.0.0.1";
  CHECK(!hub.is_operator(tcp));
}

TEST_CASE("a snapshot holds the ring, groups, clients, per-service counters and the latency "
          "of the clients' messages", "[admin]") {
  Alone d;
  d.open(5, 4242, "alice");
  std::string in;
  proto::encode_join(in, "chat");
  proto::encode(in, proto::Multicast{proto::service::kAgreed, 0, {"chat"}, "hello"});
  proto::encode(in, proto::Multicast{proto::service::kSafe, 0, {"chat"}, "there!"});
  d.input(5, in);
  d.settle();
  ShellCounters sc;
  sc.rotation.observe(700);
  auto s = take_snapshot(*d.core, d.cfg, sc, d.now, 1'000'000);
  CHECK(s.daemon == "d1");
  CHECK(s.ring_state == "operational");
  CHECK(s.ring_members == std::vector<uint32_t>{1});
  REQUIRE(s.groups.size() == 1);
  CHECK(s.groups[0].name == "chat");
  CHECK(s.groups[0].members == std::vector<std::string>{"#alice#d1"});
  REQUIRE(s.clients.size() == 1);
  CHECK(s.clients[0].name == "#alice#d1");
  CHECK(s.clients[0].groups == std::vector<std::string>{"chat"});
  CHECK(s.clients[0].sent[service_index(proto::service::kAgreed)] == 1);
  CHECK(s.clients[0].sent[service_index(proto::service::kSafe)] == 1);
  CHECK(metric_value(s, "agentd_client_messages_total", "service=\"agreed\"") == 1);
  CHECK(metric_value(s, "agentd_client_bytes_total", "service=\"safe\"") == 6);
  CHECK(metric_value(s, "agentd_delivered_messages_total") == 2);
  CHECK(metric_value(s, "agentd_clients") == 1);
  CHECK(s.latency.count == 2);  // both came back to this daemon
  CHECK(s.rotation.count == 1);
  REQUIRE(!s.changes.empty());
  CHECK(s.changes.back().regular);
  CHECK(s.daemons.size() == 1);
  CHECK(s.daemons[0].self);
  CHECK(s.daemons[0].members == 1);
}

TEST_CASE("/metrics text names every counter with HELP and TYPE, and histograms are cumulative",
          "[admin]") {
  AdminSnapshot s;
  s.daemon = "d1";
  s.ring_id = (uint64_t{5} << 32) | 1;
  s.ring_state = "operational";
  s.metrics.push_back({"agentd_client_messages_total", "by service", false, "service=\"agreed\"", 7});
  s.metrics.push_back({"agentd_client_messages_total", "by service", false, "service=\"safe\"", 2});
  s.metrics.push_back({"agentd_clients", "clients", true, "", 3});
  s.latency.observe(40);      // <= 50 µs
  s.latency.observe(3000);    // <= 5 ms
  s.latency.observe(20000000);  // beyond the last bound
  std::string text = render_prometheus(s);
  CHECK(text.find("# TYPE agentd_client_messages_total counter\n") != std::string::npos);
  CHECK(text.find("# TYPE agentd_clients gauge\n") != std::string::npos);
  CHECK(text.find("# TYPE agentd_delivery_latency_seconds histogram\n") != std::string::npos);
  // One HELP per family, not per labelled series.
  size_t helps = 0;
  for (size_t at = 0; (at = text.find("# HELP agentd_client_messages_total", at)) != std::string::npos; ++at)
    ++helps;
  CHECK(helps == 1);
  auto v = parse_prometheus(text);
  CHECK(v.at("agentd_client_messages_total{service=\"agreed\"}") == 7);
  CHECK(v.at("agentd_clients") == 3);
  CHECK(v.at("agentd_delivery_latency_seconds_bucket{le=\"5e-05\"}") == 1);
  CHECK(v.at("agentd_delivery_latency_seconds_bucket{le=\"0.005\"}") == 2);
  CHECK(v.at("agentd_delivery_latency_seconds_bucket{le=\"10\"}") == 2);
  CHECK(v.at("agentd_delivery_latency_seconds_bucket{le=\"+Inf\"}") == 3);
  CHECK(v.at("agentd_delivery_latency_seconds_count") == 3);
  CHECK(v.at("agentd_delivery_latency_seconds_sum") == Approx(20.00304));
  CHECK(v.at("agentd_token_rotation_seconds_count") == 0);
  CHECK(v.at("agentd_ring_info{daemon=\"d1\",ring=\"5.1\",state=\"operational\"}") == 1);
}

TEST_CASE("a daemon name with quotes or backslashes is escaped in /metrics labels", "[admin]") {
  AdminSnapshot s;
  s.daemon = "a\"b\\c";
  std::string text = render_prometheus(s);
  CHECK(text.find("daemon=\"a\\\"b\\\\c\"") != std::string::npos);
}

TEST_CASE("/status JSON holds the ring, daemons, groups, clients, counters and rates, "
          "rates come from successive snapshots", "[admin]") {
  AdminSnapshot a;
  a.daemon = "d1";
  a.id = 1;
  a.ring_state = "operational";
  a.ring_members = {1, 2};
  a.daemons = {{1, "d1", "127.0.0.1:1", true, true, 1}, {2, "d2", "127.0.0.1:2", true, false, 0},
               {3, "d3", "127.0.0.1:3", false, false, 0}};
  a.groups = {{"chat", {"#a#d1"}}};
  ClientInfo c;
  c.name = "#a#d1";
  c.groups = {"chat"};
  a.clients = {c};
  a.wall_ms = 10'000;
  a.metrics.push_back({"agentd_ring_messages_ordered_total", "", false, "", 100});
  a.metrics.push_back({"agentd_delivered_bytes_total", "", false, "", 1000});
  a.metrics.push_back({"agentd_client_messages_total", "", false, "service=\"agreed\"", 10});
  AdminHistory h;
  h.add(a);
  CHECK(h.points().empty());  // a rate needs two snapshots
  AdminSnapshot b = a;
  b.wall_ms = 12'000;
  b.metrics[0].value = 300;
  b.metrics[1].value = 5000;
  b.metrics[2].value = 30;
  h.add(b);
  REQUIRE(h.points().size() == 1);
  CHECK(h.latest().ordered_per_s == Approx(100));
  CHECK(h.latest().bytes_per_s == Approx(2000));
  CHECK(h.latest().sent_per_s == Approx(10));

  json j = json::parse(render_json(b, &h));
  CHECK(j["daemon"] == "d1");
  CHECK(j["ring"]["state"] == "operational");
  REQUIRE(j["daemons"].size() == 3);
  CHECK(j["daemons"][2]["in_ring"] == false);
  CHECK(j["groups"][0]["members"][0] == "#a#d1");
  CHECK(j["clients"][0]["groups"][0] == "chat");
  CHECK(j["counters"]["agentd_client_messages_total"]["agreed"] == 30);
  CHECK(j["rates"]["ordered_per_s"] == Approx(100));
  CHECK(j["history"].size() == 1);
  CHECK(j["histograms"]["delivery_latency"]["count"] == 0);

  json status = json::parse(render_json("status", b, h));
  CHECK(status["daemons"].size() == 3);
  json clients = json::parse(render_json("clients", b, h));
  CHECK(clients["clients"].size() == 1);
}

TEST_CASE("AdminHistory keeps at most kPoints rates", "[admin]") {
  AdminHistory h;
  AdminSnapshot s;
  for (size_t i = 0; i < AdminHistory::kPoints + 20; ++i) {
    s.wall_ms = 1000 * (i + 1);
    h.add(s);
  }
  CHECK(h.points().size() == AdminHistory::kPoints);
}

TEST_CASE("terminal views: status lists the daemons, members the groups' members, ring the "
          "configuration changes", "[admin]") {
  AdminSnapshot s;
  s.daemon = "d2";
  s.id = 2;
  s.incarnation = 4;
  s.uptime_us = 3723ull * 1000000;
  s.ring_id = (uint64_t{7} << 32) | 1;
  s.ring_state = "operational";
  s.ring_members = {1, 2};
  s.daemons = {{1, "d1", "127.0.0.1:1", true, false, 0}, {2, "d2", "127.0.0.1:2", true, true, 1},
               {3, "d3", "127.0.0.1:3", false, false, 0}};
  s.groups = {{"chat", {"#a#d2", "#b#d1"}}};
  s.wall_ms = 100'000;
  s.changes = {{95'000, true, s.ring_id, {1, 2}}};
  AdminHistory h;
  std::string status = render_text("status", s, h);
  CHECK(status.find("daemon d2 (id 2), incarnation 4, up 1h02m03s") != std::string::npos);
  CHECK(status.find("ring 7.1, operational, 2 of 3 daemons") != std::string::npos);
  CHECK(status.find("3  d3  127.0.0.1:3  not in ring") != std::string::npos);
  CHECK(status.find("(this daemon)") != std::string::npos);
  std::string members = render_text("members", s, h);
  CHECK(members.find("chat  2 members\n  #a#d2\n  #b#d1\n") != std::string::npos);
  std::string ring = render_text("ring", s, h);
  CHECK(ring.find("5 s ago  regular") != std::string::npos);
  CHECK(render_text("counters", s, h).find("rates:") == 0);
}

TEST_CASE("[admin] keys: http, http_threads (range-checked) and operators", "[admin][config]") {
  char path[] = "/tmp/agentd-admin-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "[admin]\nhttp = \"127.0.0.1:9100\"\nhttp_threads = 4\n"
                         "operators = [\"uid:77\", \"root\"]\n";
  Config c;
  std::string err = load_config_file(path, c);
  // "root" is not a principal: the error names the key and the value.
  CHECK(err.find("admin.operators: \"root\"") != std::string::npos);
  std::ofstream(path) << "[admin]\nhttp = \"127.0.0.1:9100\"\nhttp_threads = 4\n"
                         "operators = [\"uid:77\"]\n";
  Config ok;
  REQUIRE(load_config_file(path, ok) == "");
  CHECK(ok.admin_http.host == "127.0.0.1");
  CHECK(ok.admin_http.port == 9100);
  CHECK(ok.admin_http_threads == 4);
  REQUIRE(ok.admin_operators.size() == 1);
  CHECK(ok.admin_operators[0].id == 77);
  std::ofstream(path) << "[admin]\nhttp = \"off\"\nhttp_threads = 0\nport = 3\n";
  Config off;
  err = load_config_file(path, off);
  CHECK(err.find("admin.http_threads = 0: must be 1..64") != std::string::npos);
  CHECK(err.find("unknown key admin.port") != std::string::npos);
  CHECK(off.admin_http.host.empty());
  Config d;  // the default: on, loopback only
  CHECK(d.admin_http.host == "127.0.0.1");
  CHECK(d.admin_http.port == 4804);
  ::unlink(path);
}
