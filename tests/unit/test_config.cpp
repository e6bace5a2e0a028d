#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "agentd/config.h"

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
