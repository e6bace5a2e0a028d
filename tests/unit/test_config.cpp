#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#include "agentd/config.h"
#include "persist/state_lock.h"

using namespace agent::daemon;

namespace {
std::string write_temp(const std::string& text) {
  char path[] = "/tmp/agentd-config-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("a config file sets every documented key", "[config]") {
  auto path = write_temp(R"(
[daemon]
name = "alpha"
log_level = "debug"
state_dir = "/tmp/x"
priority = "realtime"
[clients]
unix_socket = "/tmp/a.sock"
tcp = "[::1]:5000"
max_clients = 7
max_message_bytes = 1000
queue_limit_bytes = 5000
socket_buffer_bytes = 65536
)");
  Config c;
  CHECK(load_config_file(path, c) == "");
  CHECK(c.name == "alpha");
  CHECK(c.log_level == agent::log::Level::kDebug);
  CHECK(c.priority == Config::Priority::kRealtime);
  CHECK(c.tcp.host == "::1");
  CHECK(c.tcp.port == 5000);
  CHECK(c.max_clients == 7);
  CHECK(c.client_queue_bytes == 5000);
  CHECK(c.client_socket_buffer_bytes == 65536);
  CHECK(validate(c) == "");
  c.client_socket_buffer_bytes = (1u << 30) + 1;
  CHECK(validate(c).find("clients.socket_buffer_bytes") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("ring timeouts take whole or fractional milliseconds", "[config]") {
  auto path = write_temp(R"(
[ring]
id = 2
token_loss_ms = 100
token_hold_ms = 0.5
min_rotation_ms = 1.5
udp_offload = false
multicast = "239.192.0.9:4900"
key_file = "/etc/agentd/ring.key"
encrypt = false
[[ring.daemons]]
id = 1
address = "127.0.0.1"
port = 4810
[[ring.daemons]]
id = 2
address = "127.0.0.1"
port = 4811
)");
  Config c;
  c.name = "x";
  REQUIRE(load_config_file(path, c) == "");
  CHECK(c.ring.token_loss_us == 100000);
  CHECK(c.ring.token_hold_us == 500);
  CHECK(c.ring.min_rotation_us == 1500);
  CHECK(c.ring.daemons.size() == 2);
  CHECK_FALSE(c.ring.udp_offload);
  CHECK(c.ring.multicast.host == "239.192.0.9");
  CHECK(c.ring.multicast.port == 4900);
  CHECK(c.ring.key_file == "/etc/agentd/ring.key");
  CHECK_FALSE(c.ring.encrypt);
  CHECK(validate(c) == "");
  c.ring.min_rotation_us = c.ring.token_retransmit_us;  // the predecessor would resend it
  CHECK(validate(c).find("ring.min_rotation_ms") != std::string::npos);
  c.ring.min_rotation_us = 500;
  c.ring.id = 3;
  CHECK(validate(c).find("not among ring.daemons") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("the example configuration is accepted and says what the defaults are", "[config]") {
  Config c;
  REQUIRE(load_config_file(AGENT_EXAMPLE_CONFIG, c) == "");
  if (c.name.empty()) c.name = "example";  // agentd takes the host name
  CHECK(validate(c) == "");
  Config d;  // every value the file sets is the built-in default
  d.name = c.name;
  CHECK(c.client_socket_buffer_bytes == d.client_socket_buffer_bytes);
  CHECK(c.client_queue_bytes == d.client_queue_bytes);
  CHECK(c.ring.min_rotation_us == d.ring.min_rotation_us);
  CHECK(c.ring.token_loss_us == d.ring.token_loss_us);
  CHECK(c.ring.personal_window == d.ring.personal_window);
  CHECK(c.tcp_auth == d.tcp_auth);
  CHECK(c.secrets_file == d.secrets_file);
  CHECK(c.slow_policy == d.slow_policy);
  CHECK(c.slow_timeout_ms == d.slow_timeout_ms);
}

TEST_CASE("config errors name the key", "[config]") {
  Config c;
  auto p1 = write_temp("[daemon]\nnmae = \"x\"\n");
  CHECK(load_config_file(p1, c).find("daemon.nmae") != std::string::npos);
  auto p2 = write_temp("[clients]\ntcp = \"host:99999\"\n");
  CHECK(load_config_file(p2, c).find("clients.tcp") != std::string::npos);
  auto p3 = write_temp("[daemon]\nname = 5\n");
  CHECK_FALSE(load_config_file(p3, c).empty());
  auto p4 = write_temp("[daemon]\npriority = \"urgent\"\n");
  CHECK(load_config_file(p4, c).find("daemon.priority") != std::string::npos);
  std::remove(p4.c_str());
  auto p5 = write_temp("[ring]\nmulticast = \"239.1.1.1\"\n");  // no port
  CHECK(load_config_file(p5, c).find("ring.multicast") != std::string::npos);
  std::remove(p5.c_str());
  CHECK_FALSE(load_config_file("/nonexistent/agentd.toml", c).empty());
  for (auto* p : {&p1, &p2, &p3}) std::remove(p->c_str());
}

TEST_CASE("validation refuses unusable settings", "[config]") {
  Config c;
  c.name = "has space";
  CHECK_FALSE(validate(c).empty());
  c.name = "ok";
  CHECK(validate(c) == "");
  c.unix_socket = "";
  c.tcp.host = "";
  CHECK(validate(c).find("no client listener") != std::string::npos);
}

TEST_CASE("ring timeouts that cannot work are refused", "[config]") {
  Config c;
  c.name = "ok";
  c.ring.id = 1;
  for (uint32_t i = 1; i <= 8; ++i) c.ring.daemons.push_back({i, "127.0.0.1", uint16_t(4800 + i), ""});
  c.ring.key_file = kNoKey;
  CHECK(validate(c) == "");
  // 8 daemons holding an idle token 20 ms each: a quiet rotation takes 160 ms.
  c.ring.token_hold_us = 20000;
  c.ring.token_loss_us = 250000;
  CHECK(validate(c).find("token_loss_ms") != std::string::npos);
  c.ring.token_loss_us = 400000;
  CHECK(validate(c) == "");
  c.ring.token_retransmit_us = 300000;
  CHECK(validate(c).find("token_retransmit_ms") != std::string::npos);
  c.ring.token_retransmit_us = 20000;
  c.ring.join_timeout_us = 100000;
  c.ring.consensus_timeout_us = 150000;
  CHECK(validate(c).find("consensus_timeout_ms") != std::string::npos);
  c.ring.join_timeout_us = 0;
  CHECK(validate(c).find("ring.join_timeout_ms = 0: must be 0.001..") != std::string::npos);
}

TEST_CASE("an idle token's hold follows the token loss time and the ring's size", "[config]") {
  RingSettings r;
  for (uint32_t i = 1; i <= 3; ++i) r.daemons.push_back({i, "127.0.0.1", uint16_t(4800 + i), ""});
  CHECK(token_hold_for(r) == 250000 / 12);  // a quiet rotation: a quarter of token_loss
  r.token_loss_us = 2000000;
  CHECK(token_hold_for(r) == 50000);  // at most 50 ms
  r.token_loss_us = 6000;
  CHECK(token_hold_for(r) == 1000);   // at least 1 ms
  r.token_hold_us = 300;
  CHECK(token_hold_for(r) == 300);    // as set
}

TEST_CASE("endpoints parse in all documented forms", "[config]") {
  Endpoint e;
  CHECK(parse_endpoint("4803", e) == "");
  CHECK((e.host == "127.0.0.1" && e.port == 4803));
  CHECK(parse_endpoint("0.0.0.0:1", e) == "");
  CHECK(e.host == "0.0.0.0");
  CHECK(parse_endpoint("[::1]:80", e) == "");
  CHECK(e.host == "::1");
  CHECK(parse_endpoint("off", e) == "");
  CHECK(e.host.empty());
  CHECK_FALSE(parse_endpoint("host:", e).empty());
  CHECK_FALSE(parse_endpoint("host:0", e).empty());
  CHECK_FALSE(parse_endpoint("[::1]80", e).empty());
}

namespace {
// Loads text as a config file over the defaults (name "ok"): the problems, "" if none.
std::string load(const std::string& text, Config* out = nullptr) {
  auto path = write_temp(text);
  Config c;
  c.name = "ok";
  auto err = load_config_file(path, c);
  std::remove(path.c_str());
  if (out) *out = c;
  return err;
}
// The problems of a file that loads, found by validate().
std::string check(const std::string& text) {
  Config c;
  auto err = load(text, &c);
  REQUIRE(err == "");
  return validate(c);
}
bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
}  // namespace

TEST_CASE("negative sizes and counts are refused, not wrapped", "[config]") {
  CHECK(has(load("[clients]\nqueue_limit_bytes = -5\n"), ":2: clients.queue_limit_bytes = -5: must be 1.."));
  CHECK(has(load("[clients]\nmax_clients = -1\n"), "clients.max_clients = -1: must be 1..1048576"));
  CHECK(has(load("[clients]\nqueue_total_bytes = -1\n"), "clients.queue_total_bytes = -1"));
  CHECK(has(load("[clients]\nmax_groups = -3\n"), "clients.max_groups = -3"));
  CHECK(has(load("[clients]\nsocket_buffer_bytes = -1\n"), "clients.socket_buffer_bytes = -1"));
  CHECK(has(load("[ring]\nglobal_window = -1\n"), "ring.global_window = -1"));
  CHECK(has(load("[ring]\nmax_pending_bytes = -1\n"), "ring.max_pending_bytes = -1"));
  CHECK(has(load("[ring]\naccelerated_window = -1\n"), "ring.accelerated_window = -1"));
}

TEST_CASE("values above a key's maximum are refused, not truncated", "[config]") {
  CHECK(has(load("[clients]\nmax_clients = 4294967297\n"), "clients.max_clients = 4294967297: must be 1..1048576"));
  CHECK(has(load("[clients]\nmax_message_bytes = 16777217\n"), "clients.max_message_bytes = 16777217: must be 1..16777216 bytes (16 MiB)"));
  CHECK(has(load("[clients]\nqueue_limit_bytes = 68719476737\n"), "clients.queue_limit_bytes"));
  CHECK(has(load("[clients]\nsocket_buffer_bytes = 1073741825\n"), "(0: the system's default)"));
  CHECK(has(load("[clients]\nhello_timeout_ms = 3600001\n"), "clients.hello_timeout_ms = 3600001: must be 1..3600000 ms"));
  CHECK(has(load("[ring]\npacket_bytes = 100\n"), "ring.packet_bytes = 100: must be 512..65000"));
  CHECK(has(load("[ring]\nmax_outstanding = 0\n"), "ring.max_outstanding = 0: must be 1.."));
  CHECK(has(load("[ring]\npersonal_window = 2000000\n"), "ring.personal_window = 2000000: must be 1..1048576 packets"));
}

TEST_CASE("ports must be 1..65535 wherever they are given", "[config]") {
  CHECK(has(load("[clients]\ntcp = \"70000\"\n"), "clients.tcp = \"70000\": port in '70000' must be 1..65535"));
  CHECK(has(load("[ring]\nmulticast = \"239.1.1.1:0\"\n"), "ring.multicast"));
  auto err = load("[[ring.daemons]]\nid = 1\naddress = \"a\"\nport = 70000\n"
                  "[[ring.daemons]]\nid = 2\naddress = \"a\"\nport = -1\n");
  CHECK(has(err, ":4: ring.daemons[1].port = 70000: must be 1..65535"));
  CHECK(has(err, ":8: ring.daemons[2].port = -1: must be 1..65535"));
  Endpoint e;
  CHECK(has(parse_endpoint("127.0.0.1:70000", e), "must be 1..65535"));
}

TEST_CASE("ids are 1 up to the largest a daemon id may be", "[config]") {
  CHECK(has(load("[ring]\nid = -1\n"), "ring.id = -1: must be 1..4294967293"));
  CHECK(has(load("[ring]\nid = 0\n"), "ring.id = 0: must be 1.."));
  CHECK(has(load("[ring]\nid = 4294967295\n"), "ring.id = 4294967295"));  // kBroadcast
  CHECK(has(load("[[ring.daemons]]\nid = 4294967296\naddress = \"a\"\nport = 1\n"),
            "ring.daemons[1].id = 4294967296: must be 1..4294967293"));
  Config c;
  c.name = "ok";
  c.ring.id = 0;  // set by code, not by a file: validate checks the range too
  CHECK(has(validate(c), "ring.id = 0: must be 1.."));
}

TEST_CASE("timeouts must be above 0 and at most an hour, as numbers", "[config]") {
  CHECK(has(load("[ring]\ntoken_loss_ms = 0\n"), "ring.token_loss_ms = 0: must be 0.001..3600000 ms"));
  CHECK(has(load("[ring]\njoin_timeout_ms = -2.5\n"), "ring.join_timeout_ms = -2.5"));
  CHECK(has(load("[ring]\nconsensus_timeout_ms = nan\n"), "ring.consensus_timeout_ms = nan"));
  CHECK(has(load("[ring]\ntoken_retransmit_ms = inf\n"), "ring.token_retransmit_ms = inf"));
  CHECK(has(load("[ring]\ntoken_retransmit_ms = 0.0001\n"), "ring.token_retransmit_ms = 0.0001"));
  CHECK(has(load("[ring]\ntoken_hold_ms = 3600000.5\n"), "ring.token_hold_ms = 3.6e+06"));
  CHECK(has(load("[clients]\nhello_timeout_ms = 0\n"), "clients.hello_timeout_ms = 0: must be 1.."));
  CHECK(has(load("[clients]\nhello_timeout_ms = 1.5\n"), "clients.hello_timeout_ms = 1.5: must be an integer, not a number"));
  // 0 where it means something: off, automatic.
  CHECK(load("[ring]\nmin_rotation_ms = 0\ntoken_hold_ms = 0\naccelerated_window = 0\n") == "");
}

TEST_CASE("a value of the wrong type names the key", "[config]") {
  CHECK(has(load("[daemon]\nname = 5\n"), ":2: daemon.name = 5: must be a string, not an integer"));
  CHECK(has(load("[clients]\nmax_clients = \"10\"\n"), "clients.max_clients = \"10\": must be an integer, not a string"));
  CHECK(has(load("[ring]\nudp_offload = 1\n"), "ring.udp_offload = 1: must be true or false"));
  CHECK(has(load("[ring]\ndaemons = 3\n"), "ring.daemons must be [[ring.daemons]] tables"));
  CHECK(has(load("clients = 3\n"), "clients = 3: must be a table [clients]"));
  CHECK(has(load("[daemon]\nlog_level = \"loud\"\n"), "daemon.log_level = \"loud\": must be error, warn, info or debug"));
}

TEST_CASE("unknown keys and sections are refused by name, with the likely one", "[config]") {
  CHECK(has(load("[clients]\nmax_clinets = 3\n"), ":2: unknown key clients.max_clinets (did you mean clients.max_clients?)"));
  CHECK(has(load("[ring]\ntoken_los_ms = 3\n"), "unknown key ring.token_los_ms (did you mean ring.token_loss_ms?)"));
  CHECK(load("[ring]\nzzz = 3\n").find("did you mean") == std::string::npos);
  CHECK(has(load("[cleints]\n"), "unknown section [cleints] (did you mean clients?)"));
  CHECK(has(load("[[ring.daemons]]\nid = 1\naddress = \"a\"\nport = 1\nprot = 2\n"),
            "unknown key ring.daemons[1].prot (did you mean port?)"));
  CHECK(has(load("[[ring.daemons]]\nid = 1\n"), "ring.daemons[1] lacks address, port"));
}

TEST_CASE("every problem of a file is reported, in the file's order", "[config]") {
  auto err = load("[clients]\nmax_clients = -1\nmax_groups = 0\n[ring]\nid = -1\n");
  CHECK(err == err.substr(0, err.find('\n')) + err.substr(err.find('\n')));
  auto l1 = err.find(":2: clients.max_clients"), l2 = err.find(":3: clients.max_groups"),
       l3 = err.find(":5: ring.id");
  REQUIRE(l1 != std::string::npos);
  REQUIRE(l2 != std::string::npos);
  REQUIRE(l3 != std::string::npos);
  CHECK((l1 < l2 && l2 < l3));
}

TEST_CASE("ring daemons with the same id, name or address and port are refused", "[config]") {
  const std::string head = "[daemon]\nname = \"a\"\n[ring]\nid = 1\nkey_file = \"k\"\n";
  auto entry = [](int id, const char* addr, int port, const char* name = nullptr) {
    std::string s = "[[ring.daemons]]\nid = " + std::to_string(id) + "\naddress = \"" + addr +
                    "\"\nport = " + std::to_string(port) + "\n";
    if (name) s += "name = \"" + std::string(name) + "\"\n";
    return s;
  };
  CHECK(check(head + entry(1, "10.0.0.1", 4810) + entry(2, "10.0.0.2", 4810)) == "");
  CHECK(has(check(head + entry(1, "10.0.0.1", 4810) + entry(1, "10.0.0.2", 4810)),
            "ring.daemons[2].id = 1: ring.daemons[1] has this id too"));
  CHECK(has(check(head + entry(1, "10.0.0.1", 4810, "a") + entry(2, "10.0.0.2", 4810, "a")),
            "ring.daemons[2].name = \"a\": ring.daemons[1] has this name too"));
  auto same = check(head + entry(1, "::1", 4810) + entry(2, "0:0::1", 4810));
  CHECK(has(same, ":10: ring.daemons[2] = 0:0::1:4810: ring.daemons[1] (id 1) has this address and port too"));
  CHECK(check(head + entry(1, "::1", 4810) + entry(2, "::1", 4811)) == "");
  // This daemon's own entry names another daemon.
  CHECK(has(check(head + entry(1, "10.0.0.1", 4810, "b")),
            "ring.daemons[1].name = \"b\": this daemon (ring.id 1) is named \"a\" (daemon.name)"));
  CHECK(has(check(head + entry(2, "10.0.0.1", 4810)), "ring.id = 1: not among ring.daemons (ids 2)"));
}

TEST_CASE("rules between keys name both keys and the values", "[config]") {
  CHECK(has(check("[clients]\nmax_message_bytes = 1000\nqueue_limit_bytes = 1500\n"),
            ":3: clients.queue_limit_bytes = 1500: must be at least twice clients.max_message_bytes (1000)"));
  CHECK(has(check("[clients]\nqueue_total_bytes = 1000\n"),
            "clients.queue_total_bytes = 1000: must be at least clients.queue_limit_bytes (67108864)"));
  CHECK(has(check("[ring]\npersonal_window = 10\naccelerated_window = 11\n"),
            "ring.accelerated_window = 11: must be at most ring.personal_window (10)"));
  CHECK(has(check("[ring]\nmulticast = \"10.0.0.1:4900\"\n"),
            "ring.multicast = \"10.0.0.1:4900\": must be an IPv4 multicast address"));
  CHECK(has(check("[clients]\nunix_socket = \"\"\ntcp = \"off\"\n"), "no client listener"));
}

TEST_CASE("a config path that cannot be read says why", "[config]") {
  Config c;
  CHECK(load_config_file("/tmp", c) == "cannot read configuration file /tmp: Is a directory");
  CHECK(load_config_file("/nonexistent/agentd.toml", c) ==
        "cannot read configuration file /nonexistent/agentd.toml: No such file or directory");
  auto syntax = load("[daemon]\nname = \n");
  CHECK(has(syntax, ":2: syntax error: missing value"));
}

TEST_CASE("each daemon has a state directory of its own by default", "[config]") {
  CHECK(default_state_dir("d1") == "/tmp/agentd-state/d1");
  CHECK(default_state_dir("a.b-c_d") == "/tmp/agentd-state/a.b-c_d");
  CHECK(default_state_dir("..") == "/tmp/agentd-state/%2E.");   // cannot leave the base
  CHECK(default_state_dir("a/b") == "/tmp/agentd-state/a%2Fb");
}

TEST_CASE("a reload tells which keys changed", "[config]") {
  Config a, b;
  CHECK(changed_keys(a, b).empty());
  b.log_level = agent::log::Level::kDebug;
  b.ring.token_loss_us = 1000;
  b.ring.daemons.push_back({1, "x", 1, ""});
  CHECK(changed_keys(a, b) ==
        std::vector<std::string>{"daemon.log_level", "ring.token_loss_ms", "ring.daemons"});
}

TEST_CASE("a state directory is locked by one holder at a time", "[config]") {
  char tmpl[] = "/tmp/agent-lock-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string dir = std::string(tmpl) + "/sub/state";  // missing parents are made
  {
    agent::persist::StateLock first, second;
    REQUIRE(first.acquire(dir) == "");
    auto err = second.acquire(dir);
    CHECK(err == "state directory " + dir + " is in use by another daemon (pid " +
                     std::to_string(getpid()) + "): each daemon needs its own (daemon.state_dir "
                     "or --state-dir)");
    CHECK_FALSE(second.held());
  }
  agent::persist::StateLock again;  // released with its holder
  CHECK(again.acquire(dir) == "");
  std::string cmd = "rm -rf '" + std::string(tmpl) + "'";
  CHECK(std::system(cmd.c_str()) == 0);
}

TEST_CASE("access rules name groups and who may join and send", "[config][access]") {
  Config c;
  REQUIRE(load(R"([clients]
unix_mode = "0600"
[[access]]
groups = ["payroll*", "hr"]
join = ["user:root", "gid:0", "tcp:127.0.0.1"]
send = ["uid:0"]
[[access]]
groups = ["*"]
send = ["tcp:*"]
)",
               &c) == "");
  CHECK(c.unix_mode == 0600);
  REQUIRE(c.access.size() == 2);
  CHECK(c.access[0].groups == std::vector<std::string>{"payroll*", "hr"});
  REQUIRE(c.access[0].join.size() == 3);
  CHECK(c.access[0].join[0].kind == Principal::Kind::kUid);
  CHECK(c.access[0].join[0].id == 0);
  CHECK(c.access[0].join[1].kind == Principal::Kind::kGid);
  CHECK(c.access[0].join[2].kind == Principal::Kind::kTcpAddress);
  CHECK(c.access[0].join[2].address == "127.0.0.1");
  CHECK(c.access[0].join_listed);
  CHECK_FALSE(c.access[1].join_listed);  // absent: anyone may join
  CHECK(c.access[1].send[0].kind == Principal::Kind::kTcpAny);

  std::string err = load("[[access]]\ngroups = [\"g\"]\njoin = [\"user:no-such-user-here\"]\n");
  CHECK(err.find("access[1].join") != std::string::npos);
  CHECK(err.find("no such user") != std::string::npos);
  err = load("[[access]]\ngroups = [\"g\"]\nsend = [\"everyone\"]\n");
  CHECK(err.find("access[1].send") != std::string::npos);
  err = load("[[access]]\njoin = [\"*\"]\n");
  CHECK(err.find("access[1] needs groups") != std::string::npos);
  err = load("[[access]]\ngroups = [\"g\"]\nread = [\"*\"]\n");
  CHECK(err.find("unknown key access[1].read") != std::string::npos);
  err = load("[clients]\nunix_mode = \"0777x\"\n");
  CHECK(err.find("clients.unix_mode") != std::string::npos);
  err = load("[clients]\nunix_mode = \"0066\"\n");  // the daemon's own user must read and write
  CHECK(err.find("clients.unix_mode") != std::string::npos);
  err = load("[clients]\nunix_group = \"no-such-group-here\"\n");
  CHECK(err.find("no such group") != std::string::npos);
}

TEST_CASE("a ring of several daemons needs a key file or key_file = \"none\" said outright",
          "[config]") {
  Config c;
  c.name = "a";
  c.ring.id = 1;
  c.ring.daemons = {{1, "127.0.0.1", 4810, ""}, {2, "127.0.0.1", 4811, ""}};
  auto err = validate(c);
  CHECK(err.find("ring.key_file = \"\" (not set): a ring of 2 daemons needs a cluster key") !=
        std::string::npos);
  CHECK(err.find("agentd keygen FILE") != std::string::npos);
  c.ring.key_file = kNoKey;
  CHECK(validate(c) == "");
  CHECK_FALSE(ring_sealed(c));
  c.ring.key_file = "/etc/agentd/ring.key";
  CHECK(validate(c) == "");
  CHECK(ring_sealed(c));
  c.ring.key_file = kNoKey;
  c.ring.accept_key_file = "/etc/agentd/new.key";
  CHECK(validate(c).find("ring.accept_key_file") != std::string::npos);
  // A ring of one sends nothing: no key needed.
  Config one;
  one.name = "a";
  CHECK(validate(one) == "");
  // Unknown spellings are caught as usual.
  auto path = write_temp("[ring]\nkeyfile = \"x\"\n");
  Config t;
  CHECK(load_config_file(path, t).find("did you mean ring.key_file?") != std::string::npos);
}

TEST_CASE("TCP authentication keys: tcp_auth is secret or none, secrets_file a file of its own",
          "[config][tcpauth]") {
  Config c;
  CHECK(c.tcp_auth == Config::TcpAuth::kSecret);  // the default: TCP clients authenticate
  CHECK_FALSE(tcp_listening(c));                  // ... and without a secrets file, no TCP
  REQUIRE(load("[clients]\ntcp_auth = \"none\"\n", &c) == "");
  CHECK(c.tcp_auth == Config::TcpAuth::kNone);
  CHECK(tcp_listening(c));
  REQUIRE(load("[clients]\nsecrets_file = \"/etc/agentd/clients.secrets\"\n", &c) == "");
  CHECK(c.secrets_file == "/etc/agentd/clients.secrets");
  CHECK(tcp_listening(c));
  CHECK(has(load("[clients]\ntcp_auth = \"tls\"\n"),
            ":2: clients.tcp_auth = \"tls\": must be \"secret\""));
  CHECK(has(load("[clients]\ntcp_auth = true\n"), "clients.tcp_auth = true: must be a string"));
  CHECK(has(load("[clients]\nsecrets_file = \"\"\n"), "clients.secrets_file = \"\": must name"));
  CHECK(has(load("[clients]\ntcp_aut = \"none\"\n"), "did you mean clients.tcp_auth?"));
  // Rules between keys.
  CHECK(has(check("[clients]\ntcp_auth = \"none\"\nsecrets_file = \"/x\"\n"),
            "clients.secrets_file = \"/x\": clients.tcp_auth = \"none\" asks TCP clients for no "
            "secret"));
  CHECK(has(check("[clients]\nunix_socket = \"\"\n"),
            "clients.tcp stays closed without clients.secrets_file"));
  CHECK(check("[clients]\nunix_socket = \"\"\ntcp_auth = \"none\"\n") == "");
  // tcpuser: principals.
  REQUIRE(load("[[access]]\ngroups = [\"g\"]\njoin = [\"tcpuser:alice\", \"tcpuser:*\"]\n", &c) ==
          "");
  CHECK(c.access[0].join[0].kind == Principal::Kind::kTcpUser);
  CHECK(c.access[0].join[0].address == "alice");
  CHECK(c.access[0].join[1].kind == Principal::Kind::kTcpUserAny);
  CHECK(has(load("[[access]]\ngroups = [\"g\"]\njoin = [\"tcpuser:\"]\n"),
            "must be tcpuser:* or tcpuser:NAME"));
  CHECK(has(load("[[access]]\ngroups = [\"g\"]\njoin = [\"tcpuser:a b\"]\n"),
            "must be tcpuser:* or tcpuser:NAME"));
}

TEST_CASE("the secrets file is loaded with the configuration and compared on reload",
          "[config][tcpauth]") {
  char tmpl[] = "/tmp/agent-secrets-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string file = std::string(tmpl) + "/clients.secrets";
  std::ofstream(file) << "alice 0123456789abcdef0123\n";
  REQUIRE(chmod(file.c_str(), 0600) == 0);
  Config a;
  a.secrets_file = file;
  a.origin["clients.secrets_file"] = "agentd.toml:3";
  REQUIRE(load_client_secrets(a) == "");
  REQUIRE(a.tcp_secrets);
  CHECK(a.tcp_secrets->by_name.at("alice") == "0123456789abcdef0123");
  Config b = a;
  std::ofstream(file) << "alice 0123456789abcdef0124\n";
  REQUIRE(load_client_secrets(b) == "");
  CHECK(changed_keys(a, b) == std::vector<std::string>{"clients.secrets_file"});
  std::ofstream(file) << "alice short\n";
  CHECK(load_client_secrets(b) ==
        "clients.secrets_file: " + file + ":1: the secret of 'alice' has 5 bytes: must be "
        "16..1024 printable ASCII bytes (make one with: openssl rand -hex 32)");
  CHECK_FALSE(b.tcp_secrets);
  REQUIRE(chmod(file.c_str(), 0640) == 0);
  CHECK(load_client_secrets(b) == "agentd.toml:3: clients.secrets_file " + file +
                                      ": mode 0640 lets group or others at the secrets: chmod 600 " +
                                      file);
  b.secrets_file = std::string(tmpl) + "/none";
  CHECK(has(load_client_secrets(b), "none: No such file or directory"));
  // With tcp_auth = "none" the file is not read.
  b.tcp_auth = Config::TcpAuth::kNone;
  CHECK(load_client_secrets(b) == "");
  std::remove(file.c_str());
  rmdir(tmpl);
}

TEST_CASE("per-group retention: the first rule naming a group, over [persist]'s limits",
          "[config][persist]") {
  Config c;
  REQUIRE(load("[persist]\ngroups = [\"log.*\", \"audit\"]\nretain_seconds = 3600\n"
               "retain_messages = 1000\n"
               "[[persist.retain]]\ngroups = [\"audit\"]\nseconds = 2592000\n"
               "[[persist.retain]]\ngroups = [\"log.big*\", \"log.b?\"]\nmessages = 0\nbytes = 1000000\n"
               "[[persist.retain]]\ngroups = [\"log.*\"]\nmessages = 5\n",
               &c) == "");
  REQUIRE(c.persist.retain.size() == 3);
  CHECK(check("[persist]\ngroups = [\"x\"]\n[[persist.retain]]\ngroups = [\"x\"]\nmessages = 1\n") == "");
  auto audit = retention_for(c.persist, "audit");
  CHECK(audit.seconds == 2592000);
  CHECK(audit.messages == 1000);  // unset in the rule: [persist]'s
  auto big = retention_for(c.persist, "log.bigger");
  CHECK(big.messages == 0);  // set to no limit
  CHECK(big.bytes == 1000000);
  CHECK(big.seconds == 3600);
  CHECK(retention_for(c.persist, "log.bx").bytes == 1000000);
  CHECK(retention_for(c.persist, "log.other").messages == 5);  // the first rule that names it
  CHECK(retention_for(c.persist, "elsewhere").messages == 1000);
  CHECK(c.persist.retains());
  Config none;
  REQUIRE(load("[persist]\ngroups = [\"a\"]\n[[persist.retain]]\ngroups = [\"a\"]\nmessages = 0\n",
               &none) == "");
  CHECK_FALSE(none.persist.retains());

  CHECK(has(load("[persist]\ngroups = [\"a\"]\n[[persist.retain]]\nmessages = 5\n"),
            "persist.retain[1] names no groups"));
  CHECK(has(load("[persist]\ngroups = [\"a\"]\n[[persist.retain]]\ngroups = [\"a\"]\ncount = 5\n"),
            "unknown key persist.retain[1].count"));
  CHECK(has(load("[persist]\ngroups = [\"a\"]\n[[persist.retain]]\ngroups = [\"a\"]\nbytes = -1\n"),
            "out of range"));
  CHECK(has(load("[persist]\ngroups = [\"a\"]\nretain = 5\n"), "persist.retain must be tables"));
  CHECK(has(check("[persist]\ngroups = [\"a\"]\n[[persist.retain]]\ngroups = [\"bad name\"]\n"),
            "persist.retain[1].groups: 'bad name' is not a group name or pattern"));
}

// Found by fuzz_config: toml11 read past its buffer while reporting invalid UTF-8 inside a
// multi-line literal string (ASan: heap-buffer-overflow in toml::detail::location::reset).
TEST_CASE("a config file that is not UTF-8 is refused before it is parsed, naming the line",
          "[config]") {
  std::string bad = "[daemon]\nname = '''\nab\xff\xfe'''\n";
  auto path = write_temp(bad);
  Config cfg;
  auto err = load_config_file(path, cfg);
  CHECK(err.find(path + ":3: not UTF-8 text") == 0);
  CHECK(first_invalid_utf8("plain ascii") == std::string::npos);
  CHECK(first_invalid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80") == std::string::npos);
  CHECK(first_invalid_utf8("a\xc0\xafz") == 1);          // overlong '/'
  CHECK(first_invalid_utf8("ab\xed\xa0\x80") == 2);      // a surrogate
  CHECK(first_invalid_utf8("abc\xf4\x90\x80\x80") == 3); // past U+10FFFF
  CHECK(first_invalid_utf8("abcd\xe2\x82") == 4);        // cut short
}

TEST_CASE("slow-client keys: slow_policy is disconnect or backpressure, slow_timeout_ms in range",
          "[config][slow]") {
  Config c;
  CHECK(c.slow_policy == Config::SlowPolicy::kDisconnect);  // the default: error 14
  CHECK(c.slow_timeout_ms == 10000);
  REQUIRE(load("[clients]\nslow_policy = \"backpressure\"\nslow_timeout_ms = 2500\n", &c) == "");
  CHECK(c.slow_policy == Config::SlowPolicy::kBackpressure);
  CHECK(c.slow_timeout_ms == 2500);
  CHECK(std::string(slow_policy_name(c.slow_policy)) == "backpressure");
  REQUIRE(load("[clients]\nslow_policy = \"disconnect\"\n", &c) == "");
  CHECK(c.slow_policy == Config::SlowPolicy::kDisconnect);
  CHECK(has(load("[clients]\nslow_policy = \"drop\"\n"),
            ":2: clients.slow_policy = \"drop\": must be \"disconnect\""));
  CHECK(has(load("[clients]\nslow_policy = 1\n"), "clients.slow_policy = 1: must be a string"));
  CHECK(has(load("[clients]\nslow_timeout_ms = 0\n"),
            ":2: clients.slow_timeout_ms = 0: must be 1..3600000 ms"));
  CHECK(has(load("[clients]\nslow_timeout_ms = 3600001\n"), "must be 1..3600000 ms"));
  CHECK(has(load("[clients]\nslow_polcy = \"backpressure\"\n"),
            "did you mean clients.slow_policy?"));
  // The ring's durable gate follows the policy (a reload that changes it needs a restart).
  Config b = c;
  b.slow_policy = Config::SlowPolicy::kBackpressure;
  auto changed = changed_keys(c, b);
  CHECK(std::find(changed.begin(), changed.end(), "clients.slow_policy") != changed.end());
}

TEST_CASE("bridge keys: a site, its key, the other sites, each refusal names the key",
          "[config][bridge]") {
  const std::string ring = R"(
[daemon]
name = "e1"
[ring]
id = 1
key_file = "none"
[[ring.daemons]]
id = 1
address = "127.0.0.1"
port = 4901
[[ring.daemons]]
id = 2
address = "127.0.0.1"
port = 4902
name = "e2"
)";
  auto load = [&](const std::string& bridge, std::string& err) {
    Config c;
    err = load_config_file(write_temp(ring + bridge), c);
    if (err.empty()) err = validate(c);
    return c;
  };
  std::string err;
  Config c = load(R"(
[bridge]
site = "east"
key_file = "/k"
groups = ["chat", "orders.*"]
compress = false
encrypt = false
queue_bytes = 2097152
heartbeat_ms = 100
link_timeout_ms = 1000
[[bridge.sites]]
name = "west"
address = "10.1.1.1:4920"
)", err);
  REQUIRE(err == "");
  CHECK(c.bridge.enabled());
  CHECK(c.bridge.sites.size() == 1);
  CHECK(c.bridge.sites[0].address.port == 4920);
  CHECK(!c.bridge.compress);
  CHECK(!c.bridge.encrypt);
  CHECK(c.bridge.queue_bytes == 2097152);
  CHECK(site_daemons(c) == std::vector<std::string>{"e1", "e2"});

  load("[bridge]\nsite = \"east\"\nkey_file = \"/k\"\n", err);
  CHECK(err.find("bridge.sites lists no other site") != std::string::npos);
  load("[bridge]\nsite = \"east\"\n[[bridge.sites]]\nname = \"west\"\naddress = \"1.2.3.4:1\"\n", err);
  CHECK(err.find("bridge.key_file is not set") != std::string::npos);
  load("[bridge]\nsite = \"east\"\nkey_file = \"/k\"\n[[bridge.sites]]\nname = \"west\"\n", err);
  CHECK(err.find("needs an address") != std::string::npos);
  load("[bridge]\nsite = \"west\"\nkey_file = \"/k\"\n[[bridge.sites]]\nname = \"east\"\n", err);
  CHECK(err == "");  // west is dialed by east: no address needed
  load("[bridge]\nsite = \"east\"\nkey_file = \"/k\"\n[[bridge.sites]]\nname = \"east\"\n", err);
  CHECK(err.find("names this site") != std::string::npos);
  load("[bridge]\nsite = \"east\"\nkey_file = \"/k\"\nqueue_bytes = -1\n", err);
  CHECK(err.find("bridge.queue_bytes") != std::string::npos);
  load("[bridge]\nsite = \"east\"\nkey_file = \"/k\"\ncolour = 1\n", err);
  CHECK(err.find("unknown key bridge.colour") != std::string::npos);
  load("[bridge]\nsite = \"has space\"\n", err);
  CHECK(err.find("bridge.site") != std::string::npos);
  // A daemon without a name: remote members could not be told apart.
  Config d;
  std::string text = ring;
  text.replace(text.find("name = \"e2\"\n"), 12, "");
  err = load_config_file(write_temp(text + "[bridge]\nsite = \"west\"\nkey_file = \"/k\"\n[[bridge.sites]]\nname = \"east\"\n"), d);
  REQUIRE(err == "");
  CHECK(validate(d).find("has no name") != std::string::npos);
}
