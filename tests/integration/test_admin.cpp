// The admin service end to end: agentctl against a real ring of three agentd on loopback, an
// operator's action and another user's refusal, and the HTTP endpoint's /metrics (parsed,
// named series checked) and /status (parsed JSON).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/daemon_fixture.h"
#include "transport/client_protocol.h"

using namespace agent::testing;
using nlohmann::json;

namespace {

struct ToolResult {
  int status = -1;
  std::string out, err;
};

// Runs agentctl with args (as uid, when not -1) to its end, killed after 20 s.
ToolResult agentctl(const std::vector<std::string>& args, int uid = -1) {
  char tmpl[] = "/tmp/agentctl-run-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl, out = dir + "/out", err = dir + "/err";
  // Another user may not reach the build tree (under /root, say): it runs a copy from here.
  std::string tool = AGENTCTL_PATH;
  if (uid >= 0) {
    tool = dir + "/agentctl";
    std::ifstream src(AGENTCTL_PATH, std::ios::binary);
    std::ofstream dst(tool, std::ios::binary);
    dst << src.rdbuf();
    dst.close();
    REQUIRE(::chmod(tool.c_str(), 0755) == 0);
  }
  ::chmod(dir.c_str(), 0777);  // a child running as another user writes its output here
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr))
      std::_Exit(126);
    if (uid >= 0 && (::setgid(static_cast<gid_t>(uid)) != 0 || ::setuid(static_cast<uid_t>(uid)) != 0))
      std::_Exit(125);
    std::vector<char*> argv{const_cast<char*>("agentctl")};
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(tool.c_str(), argv.data());
    std::_Exit(127);
  }
  int st = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ToolResult r;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream o(out), e(err);
  std::stringstream so, se;
  so << o.rdbuf();
  se << e.rdbuf();
  r.out = so.str();
  r.err = se.str();
  std::system(("rm -rf " + dir).c_str());
  return r;
}

json agentctl_json(const Daemon& d, const std::string& command) {
  auto r = agentctl({"-s", d.socket_path(), "--json", command});
  INFO("agentctl " << command << ": " << r.err);
  REQUIRE(r.status == 0);
  return json::parse(r.out);
}

// GET path from 127.0.0.1:port: the status code and body ("" and 0 when nothing answers).
std::pair<int, std::string> http_get(uint16_t port, const std::string& path,
                                     std::string* content_type = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return {0, ""};
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {0, ""};
  }
  std::string resp;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto head_end = resp.find("\r\n\r\n");
  if (resp.compare(0, 7, "HTTP/1.") != 0 || head_end == std::string::npos) return {0, resp};
  if (content_type) {
    auto ct = resp.find("Content-Type: ");
    if (ct != std::string::npos && ct < head_end)
      *content_type = resp.substr(ct + 14, resp.find("\r\n", ct) - ct - 14);
  }
  return {std::stoi(resp.substr(9, 3)), resp.substr(head_end + 4)};
}

// Every sample of a Prometheus text exposition, "name{labels}" -> value. A line that is not a
// comment and not "series value" fails the test.
std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> v;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    INFO(line);
    REQUIRE(sp != std::string::npos);
    size_t used = 0;
    double value = std::stod(line.substr(sp + 1), &used);
    REQUIRE(used == line.size() - sp - 1);
    v[line.substr(0, sp)] = value;
  }
  return v;
}

// Three daemons d1..d3 in a ring on loopback, each with its admin endpoint on a port of its own.
struct AdminRing {
  AdminRing() {
    auto ring_ports = free_udp_ports(3);
    http_ports = free_tcp_ports(3);
    for (uint32_t id = 1; id <= 3; ++id) {
      DaemonOptions o;
      o.name = "d" + std::to_string(id);
      o.extra_config = ring_section(id, ring_ports, kPatientProfile);
      o.admin_http = "127.0.0.1:" + std::to_string(http_ports[id - 1]);
      daemons.push_back(std::make_unique<Daemon>(o));
    }
    // Every daemon in one ring, as d1's agentctl sees it.
    REQUIRE(await(
        [&] {
          auto r = agentctl({"-s", daemons[0]->socket_path(), "--json", "status"});
          return r.status == 0 && json::parse(r.out)["ring"]["members"].size() == 3;
        },
        20000));
  }
  Daemon& operator[](size_t i) { return *daemons[i]; }
  std::vector<std::unique_ptr<Daemon>> daemons;
  std::vector<uint16_t> http_ports;
};

constexpr int kMessages = 20;

}  // namespace

TEST_CASE("agentctl against a ring of three: status, members, groups, clients, counters, ring, "
          "watch", "[agentd][admin]") {
  AdminRing ring;
  Conn alice = connect(ring[0].socket_path(), "alice");
  Conn bob = connect(ring[1].socket_path(), "bob");
  REQUIRE(agent_join(alice.get(), "chat") == AGENT_OK);
  REQUIRE(agent_join(bob.get(), "chat") == AGENT_OK);
  REQUIRE(receive_until(alice.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && members(m).size() == 2;
  }));
  for (int i = 0; i < kMessages; ++i)
    REQUIRE(agent_multicast(alice.get(), AGENT_AGREED, "chat", 0, "hello", 5) == AGENT_OK);
  REQUIRE(agent_multicast(alice.get(), AGENT_SAFE, "chat", 0, "safe!", 5) == AGENT_OK);
  int got = 0;
  while (got < kMessages + 1 && receive_until(bob.get(), [](const agent_message& m) {
           return m.kind == AGENT_MSG_DATA;
         }))
    ++got;
  REQUIRE(got == kMessages + 1);

  std::string sock = ring[0].socket_path();
  auto status = agentctl({"-s", sock, "status"});
  INFO(status.err);
  REQUIRE(status.status == 0);
  CHECK(status.out.find("daemon d1 (id 1)") != std::string::npos);
  CHECK(status.out.find("operational, 3 of 3 daemons") != std::string::npos);
  CHECK(status.out.find("(this daemon)") != std::string::npos);
  json st = agentctl_json(ring[0], "status");
  CHECK(st["ring"]["state"] == "operational");
  CHECK(st["daemons"].size() == 3);
  for (auto& d : st["daemons"]) CHECK(d["in_ring"] == true);

  // Groups are the ring's: d3, which has no member, sees both.
  json members = agentctl_json(ring[2], "members");
  REQUIRE(members["groups"].size() == 1);
  CHECK(members["groups"][0]["name"] == "chat");
  CHECK(members["groups"][0]["members"] == json::array({"#alice#d1", "#bob#d2"}));
  auto groups = agentctl({"-s", ring[2].socket_path(), "groups"});
  CHECK(groups.out.find("chat  2 members") != std::string::npos);

  json clients = agentctl_json(ring[0], "clients");
  bool found = false;
  for (auto& c : clients["clients"]) {
    if (c["name"] != "#alice#d1") continue;
    found = true;
    CHECK(c["groups"] == json::array({"chat"}));
    CHECK(c["sent"]["agreed"] == kMessages);
    CHECK(c["sent"]["safe"] == 1);
    CHECK(c["queued_bytes"].is_number());
  }
  CHECK(found);
  auto clients_text = agentctl({"-s", sock, "clients"});
  CHECK(clients_text.out.find("sent: agreed 20 safe 1") != std::string::npos);

  json counters = agentctl_json(ring[0], "counters");
  CHECK(counters["counters"]["agentd_client_messages_total"]["agreed"] == kMessages);
  CHECK(counters["counters"]["agentd_client_bytes_total"]["agreed"] == 5 * kMessages);
  CHECK(counters["counters"]["agentd_ring_members"] == 3);
  CHECK(counters["histograms"]["delivery_latency"]["count"] == kMessages + 1);
  CHECK(counters["rates"].contains("rotations_per_s"));
  auto counters_text = agentctl({"-s", sock, "counters"});
  CHECK(counters_text.out.find("token rotations/s") != std::string::npos);
  CHECK(counters_text.out.find("client_messages_total{agreed}") != std::string::npos);

  json r = agentctl_json(ring[1], "ring");
  REQUIRE(r["daemons"].size() == 3);
  CHECK(r["daemons"][1]["self"] == true);
  CHECK(r["daemons"][1]["members"] == 1);  // bob
  CHECK(!r["changes"].empty());
  CHECK(r["changes"].back()["kind"] == "regular");

  auto watch = agentctl({"-s", sock, "watch", "-n", "2", "-i", "0.1"});
  REQUIRE(watch.status == 0);
  size_t views = 0;
  for (size_t at = 0; (at = watch.out.find("daemon d1 (id 1)", at)) != std::string::npos; ++at)
    ++views;
  CHECK(views == 2);
}

TEST_CASE("agentctl: bad usage, an unknown command and a missing daemon have their own status",
          "[agentd][admin]") {
  CHECK(agentctl({"frobnicate"}).status == 2);
  CHECK(agentctl({"disconnect"}).status == 2);
  auto none = agentctl({"-s", "/tmp/no-such-agentd.sock", "status"});
  CHECK(none.status == 3);
  CHECK(none.err.find("cannot connect to /tmp/no-such-agentd.sock") != std::string::npos);
  auto help = agentctl({"--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("Usage: agentctl") != std::string::npos);
}

TEST_CASE("an operator disconnects a client and makes the daemon leave, another user may look "
          "but not act", "[agentd][admin]") {
  DaemonOptions o;
  o.extra_config = "unix_mode = \"0666\"\n";  // into [clients]: nobody may connect too
  Daemon d(o);
  ::chmod(d.dir().c_str(), 0755);  // the fixture's directory holds the socket
  Conn alice = connect(d.socket_path(), "alice");
  REQUIRE(agent_join(alice.get(), "chat") == AGENT_OK);

  if (::geteuid() == 0) {
    auto look = agentctl({"-s", d.socket_path(), "status"}, 65534);
    INFO(look.err);
    CHECK(look.status == 0);
    auto refused = agentctl({"-s", d.socket_path(), "disconnect", "alice"}, 65534);
    CHECK(refused.status == 1);
    CHECK(refused.err.find("not permitted") != std::string::npos);
    auto no_leave = agentctl({"-s", d.socket_path(), "leave"}, 65534);
    CHECK(no_leave.status == 1);
    CHECK(d.log().find("refused admin action leave") != std::string::npos);
  } else {
    WARN("needs root to act as another user: the refusal is not checked here");
  }

  auto gone = agentctl({"-s", d.socket_path(), "disconnect", "alice"});
  INFO(gone.err);
  REQUIRE(gone.status == 0);
  CHECK(gone.out == "disconnected alice\n");
  auto m = receive_until(alice.get(), [](const agent_message& x) { return x.kind == AGENT_MSG_ERROR; });
  REQUIRE(m);
  CHECK(m->error_code == 23);
  CHECK(d.log().find("client #alice#d1 disconnected by operator") != std::string::npos);
  auto again = agentctl({"-s", d.socket_path(), "disconnect", "alice"});
  CHECK(again.status == 1);
  CHECK(again.err.find("no client 'alice'") != std::string::npos);

  auto leave = agentctl({"-s", d.socket_path(), "leave"});
  CHECK(leave.status == 0);
  CHECK(d.wait_exit(10000) == 0);
}

TEST_CASE("/metrics of a ring daemon is Prometheus text with the named series, /status is JSON",
          "[agentd][admin]") {
  AdminRing ring;
  Conn alice = connect(ring[0].socket_path(), "alice");
  REQUIRE(agent_join(alice.get(), "chat") == AGENT_OK);
  for (int i = 0; i < kMessages; ++i)
    REQUIRE(agent_multicast(alice.get(), AGENT_AGREED, "chat", 0, "hello", 5) == AGENT_OK);
  int got = 0;
  while (got < kMessages && receive_until(alice.get(), [](const agent_message& m) {
           return m.kind == AGENT_MSG_DATA;
         }))
    ++got;
  REQUIRE(got == kMessages);

  // The pages follow the daemon's snapshots (one a second): wait for one with the messages.
  uint16_t port = ring.http_ports[0];
  std::map<std::string, double> v;
  std::string type;
  REQUIRE(await(
      [&] {
        auto [code, body] = http_get(port, "/metrics", &type);
        if (code != 200) return false;
        v = parse_metrics(body);
        return v["agentd_delivery_latency_seconds_count"] >= kMessages;
      },
      10000));
  CHECK(type.rfind("text/plain; version=0.0.4", 0) == 0);
  const char* named[] = {
      "agentd_client_messages_total{service=\"agreed\"}", "agentd_client_bytes_total{service=\"safe\"}",
      "agentd_delivered_messages_total", "agentd_delivered_bytes_total",
      "agentd_ring_packets_sent_total", "agentd_ring_packets_retransmitted_total",
      "agentd_ring_tokens_total", "agentd_ring_configuration_changes_total",
      "agentd_bad_datagrams_total", "agentd_slow_clients_dropped_total",
      "agentd_clients", "agentd_groups", "agentd_ring_members", "agentd_uptime_seconds",
      "agentd_delivery_latency_seconds_bucket{le=\"+Inf\"}", "agentd_delivery_latency_seconds_sum",
      "agentd_token_rotation_seconds_bucket{le=\"0.001\"}", "agentd_token_rotation_seconds_count"};
  for (auto* n : named) {
    INFO(n);
    CHECK(v.count(n) == 1);
  }
  CHECK(v["agentd_client_messages_total{service=\"agreed\"}"] == kMessages);
  CHECK(v["agentd_ring_members"] == 3);
  CHECK(v["agentd_groups"] == 1);
  CHECK(v["agentd_token_rotation_seconds_count"] > 0);
  CHECK(v["agentd_delivery_latency_seconds_bucket{le=\"+Inf\"}"] ==
        v["agentd_delivery_latency_seconds_count"]);
  CHECK(v["agentd_ring_info{daemon=\"d1\",ring=\"" + agentctl_json(ring[0], "status")["ring"]["id"].get<std::string>() +
          "\",state=\"operational\"}"] == 1);

  // /status from another daemon of the ring: the same ring, its own view (a page is at most a
  // second old: wait for one that has the group).
  json s;
  REQUIRE(await(
      [&] {
        auto [code, body] = http_get(ring.http_ports[2], "/status", &type);
        if (code != 200) return false;
        s = json::parse(body);
        return s["groups"].size() == 1;
      },
      10000));
  CHECK(type == "application/json");
  CHECK(s["daemon"] == "d3");
  CHECK(s["ring"]["state"] == "operational");
  REQUIRE(s["daemons"].size() == 3);
  for (auto& d : s["daemons"]) CHECK(d["in_ring"] == true);
  REQUIRE(s["groups"].size() == 1);
  CHECK(s["groups"][0]["members"] == json::array({"#alice#d1"}));
  CHECK(s.contains("history"));
  CHECK(s["changes"].size() >= 1);

  // The page itself, and an unknown path.
  auto [page_code, page] = http_get(port, "/", &type);
  CHECK(page_code == 200);
  CHECK(type.rfind("text/html", 0) == 0);
  CHECK(page.find("<canvas id=\"chart\"") != std::string::npos);
  CHECK(http_get(port, "/nothing").first == 404);
}

TEST_CASE("admin.http set to an address in use stops the start with a clear error, off opens "
          "nothing", "[agentd][admin]") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t taken = ntohs(a.sin_port);
  char tmpl[] = "/tmp/agent-admin-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl;
  std::ofstream(dir + "/a.toml") << "[daemon]\nname = \"x\"\nstate_dir = \"" << dir
                                 << "/state\"\n[clients]\nunix_socket = \"" << dir
                                 << "/s\"\ntcp = \"off\"\n[admin]\nhttp = \"127.0.0.1:" << taken
                                 << "\"\n";
  auto r = run_agentd({"--config", dir + "/a.toml"});
  ::close(fd);
  CHECK(r.status == 1);
  CHECK(r.err.find("admin.http 127.0.0.1:" + std::to_string(taken) + ": cannot listen") !=
        std::string::npos);
  CHECK(r.err.find("a.toml:8") != std::string::npos);  // where admin.http was set
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("a client may have 4 admin requests waiting: more in one write are refused (22), "
          "the 4 answered", "[agentd][admin]") {
  Daemon d;
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, d.socket_path().c_str(), sizeof a.sun_path - 1);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  std::string out;
  agent::proto::encode(out, agent::proto::Hello{agent::proto::kMagic, agent::proto::kVersion,
                                                agent::proto::kHelloGenerateName, ""});
  for (int i = 0; i < 10; ++i) agent::proto::encode(out, agent::proto::Admin{"status", "", 0});
  REQUIRE(::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size()));
  agent::proto::FrameReader reader(1 << 24);
  int replies = 0, refused = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (replies + refused < 10 && std::chrono::steady_clock::now() < deadline) {
    agent::proto::Frame f;
    while (reader.next(f) == agent::proto::FrameReader::Status::kFrame) {
      if (f.verb == agent::proto::Verb::kAdminReply) ++replies;
      if (f.verb == agent::proto::Verb::kError) {
        auto e = agent::proto::decode_error(f.body);
        REQUIRE(e);
        CHECK(e->code == agent::proto::ErrorCode::kBadAdminRequest);
        CHECK(e->text.find("too many admin requests") != std::string::npos);
        ++refused;
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reader.feed(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  CHECK(replies == 4);
  CHECK(refused == 6);
}
