// TCP clients prove a shared secret (clients.secrets_file) before their welcome; without a
// secrets file the daemon opens no TCP listener unless clients.tcp_auth = "none" says so.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "daemon_fixture.h"
#include "transport/client_auth.h"
#include "transport/client_protocol.h"

using namespace agent::testing;
namespace proto = agent::proto;
namespace clientauth = agent::clientauth;

namespace {

const std::string kAliceSecret = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const std::string kBobSecret = "bob-secret-0123456789abcdef";
const std::string kSecrets = "# who may connect over TCP\nalice " + kAliceSecret + "\nbob   " +
                             kBobSecret + "\n";

DaemonOptions with_secrets(const std::string& extra = "") {
  DaemonOptions o;
  o.tcp = true;
  o.tcp_secrets = kSecrets;
  o.extra_config = extra;
  return o;
}

// agent_connect_auth, or the error it returned.
int connect_as(const Daemon& d, const char* name, const std::string& user,
               const std::string& secret, agent_conn** out) {
  return agent_connect_auth(d.tcp_address().c_str(), name, AGENT_WANT_MEMBERSHIP, 5000,
                            user.c_str(), secret.data(), secret.size(), out);
}

Conn connect_ok(const Daemon& d, const char* name, const std::string& user,
                const std::string& secret) {
  agent_conn* c = nullptr;
  int rc = connect_as(d, name, user, secret, &c);
  INFO("agent_connect_auth as " << user << ": " << agent_strerror(rc) << "\n" << d.log());
  REQUIRE(rc == AGENT_OK);
  return Conn(c);
}

// A client that speaks the protocol by hand over TCP (bounded waits, closed at the end).
class RawClient {
 public:
  explicit RawClient(const Daemon& d) {
    auto addr = d.tcp_address();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1))));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  }
  ~RawClient() { ::close(fd_); }
  void send(const std::string& bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // The hello's body (what a response covers) after sending it.
  std::string hello(const std::string& name) {
    proto::Hello h;
    h.name = name;
    std::string frame;
    proto::encode(frame, h);
    send(frame);
    return frame.substr(proto::kFrameHeaderBytes);
  }
  // The next frame within 5 s: false when the daemon closed (or nothing came).
  bool next(proto::Verb& verb, std::string& body) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      if (buf_.size() >= 4) {
        uint32_t len = static_cast<uint8_t>(buf_[0]) | static_cast<uint8_t>(buf_[1]) << 8 |
                       static_cast<uint8_t>(buf_[2]) << 16 |
                       static_cast<uint32_t>(static_cast<uint8_t>(buf_[3])) << 24;
        if (buf_.size() >= 4 + size_t{len}) {
          verb = static_cast<proto::Verb>(static_cast<uint8_t>(buf_[4]));
          body = buf_.substr(5, len - 1);
          buf_.erase(0, 4 + size_t{len});
          return true;
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
      char tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }
  // The next frame must be a challenge: its nonce.
  std::string challenge() {
    proto::Verb verb;
    std::string body;
    REQUIRE(next(verb, body));
    REQUIRE(verb == proto::Verb::kChallenge);
    auto c = proto::decode_challenge(body);
    REQUIRE(c);
    CHECK(c->method == clientauth::kMethodSecret);
    REQUIRE(c->nonce.size() == clientauth::kNonceBytes);
    return c->nonce;
  }
  // The next frame must be an error: its code; and then the daemon closes.
  int error_then_closed() {
    proto::Verb verb;
    std::string body;
    REQUIRE(next(verb, body));
    REQUIRE(verb == proto::Verb::kError);
    auto e = proto::decode_error(body);
    REQUIRE(e);
    INFO(e->text);
    CHECK(!next(verb, body));  // closed
    return static_cast<int>(e->code);
  }
  bool welcomed() {
    proto::Verb verb;
    std::string body;
    return next(verb, body) && verb == proto::Verb::kWelcome;
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

std::string auth_frame(const std::string& user, const std::string& secret,
                       const std::string& nonce, const std::string& hello_body) {
  auto mac = clientauth::response(secret, nonce, hello_body, user);
  proto::Auth a;
  a.name = user;
  a.mac.assign(reinterpret_cast<const char*>(mac.data()), mac.size());
  std::string frame;
  proto::encode(frame, a);
  return frame;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The environment's credentials (agent_connect reads them) must not leak in from outside.
struct CleanEnv {
  CleanEnv() {
    ::unsetenv("AGENT_SECRET_FILE");
    ::unsetenv("AGENT_USER");
  }
  ~CleanEnv() {
    ::unsetenv("AGENT_SECRET_FILE");
    ::unsetenv("AGENT_USER");
  }
};

}  // namespace

TEST_CASE("an authenticated TCP client joins and exchanges messages", "[agentd][tcpauth]") {
  Daemon d(with_secrets());
  Conn t = connect_ok(d, "tcp", "alice", kAliceSecret);
  CHECK(std::string(agent_private_group(t.get())) == "#tcp#d1");
  Conn u = connect(d.socket_path(), "unix");
  REQUIRE(agent_join(t.get(), "chat") == AGENT_OK);
  REQUIRE(agent_join(u.get(), "chat") == AGENT_OK);
  REQUIRE(receive_until(t.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 2;
  }));
  REQUIRE(agent_multicast(t.get(), AGENT_AGREED | AGENT_SELF_DISCARD, "chat", 0, "from tcp", 8) ==
          AGENT_OK);
  Message m = receive_until(u.get(), [](const agent_message& x) { return x.kind == AGENT_MSG_DATA; });
  REQUIRE(m);
  CHECK(payload(*m) == "from tcp");
  CHECK(std::string(m->sender) == "#tcp#d1");
  REQUIRE(agent_multicast(u.get(), AGENT_AGREED | AGENT_SELF_DISCARD, "chat", 0, "from unix", 9) ==
          AGENT_OK);
  m = receive_until(t.get(), [](const agent_message& x) { return x.kind == AGENT_MSG_DATA; });
  REQUIRE(m);
  CHECK(payload(*m) == "from unix");
  CHECK(await([&] { return d.log().find("client #tcp#d1 connected (tcpuser alice)") != std::string::npos; }));
}

TEST_CASE("an unauthenticated TCP client is refused with error 20", "[agentd][tcpauth]") {
  CleanEnv env;
  Daemon d(with_secrets());
  agent_conn* c = nullptr;
  // libagent without credentials: the daemon's challenge cannot be answered.
  CHECK(agent_connect(d.tcp_address().c_str(), "anon", 0, 5000, &c) == AGENT_ERR_AUTH);
  CHECK(c == nullptr);
  // A client that goes on without answering the challenge.
  RawClient raw(d);
  raw.hello("anon");
  raw.challenge();
  std::string join;
  proto::encode_join(join, "chat");
  raw.send(join);
  CHECK(raw.error_then_closed() == static_cast<int>(proto::ErrorCode::kAuthFailed));
  CHECK(await([&] { return d.log().find("did not authenticate") != std::string::npos; }));
  // The Unix socket asks nothing.
  Conn u = connect(d.socket_path(), "unix");
}

TEST_CASE("a wrong secret or an unknown name is refused with error 20, logged at a bounded rate",
          "[agentd][tcpauth]") {
  Daemon d(with_secrets());
  agent_conn* c = nullptr;
  CHECK(connect_as(d, "x", "alice", kBobSecret, &c) == AGENT_ERR_AUTH);
  CHECK(connect_as(d, "x", "carol", kAliceSecret, &c) == AGENT_ERR_AUTH);
  CHECK(connect_as(d, "x", "bob", kAliceSecret, &c) == AGENT_ERR_AUTH);
  CHECK(c == nullptr);
  // Only the first refusal is logged within 10 s; the next line counts the rest.
  REQUIRE(await([&] { return d.log().find("failed to authenticate as 'alice': wrong secret") !=
                             std::string::npos; }));
  CHECK(count(d.log(), "refused TCP client") == 1);
  // The right one still gets in.
  Conn ok = connect_ok(d, "x", "bob", kBobSecret);
}

TEST_CASE("a replayed authentication is refused: each connection has a fresh nonce",
          "[agentd][tcpauth]") {
  Daemon d(with_secrets());
  std::string recorded, first_nonce;
  {
    RawClient a(d);
    std::string body = a.hello("rec");
    first_nonce = a.challenge();
    recorded = auth_frame("alice", kAliceSecret, first_nonce, body);
    a.send(recorded);
    REQUIRE(a.welcomed());
  }
  RawClient b(d);
  b.hello("rec");  // the same hello as the recorded connection's
  CHECK(b.challenge() != first_nonce);
  b.send(recorded);
  CHECK(b.error_then_closed() == static_cast<int>(proto::ErrorCode::kAuthFailed));
  // A second answer on an accepted connection is refused too (and changes nothing).
  RawClient c(d);
  std::string body = c.hello("again");
  c.send(auth_frame("alice", kAliceSecret, c.challenge(), body));
  REQUIRE(c.welcomed());
  c.send(recorded);
  proto::Verb verb;
  std::string reply;
  REQUIRE(c.next(verb, reply));
  REQUIRE(verb == proto::Verb::kError);
  CHECK(proto::decode_error(reply)->code == proto::ErrorCode::kAuthFailed);
}

TEST_CASE("tcpuser: access rules grant and deny by the authenticated name", "[agentd][tcpauth]") {
  Daemon d(with_secrets("[[access]]\ngroups = [\"ops*\"]\njoin = [\"tcpuser:alice\"]\n"
                        "send = [\"tcpuser:*\"]\n"));
  Conn alice = connect_ok(d, "alice", "alice", kAliceSecret);
  Conn bob = connect_ok(d, "bob", "bob", kBobSecret);
  Conn local = connect(d.socket_path(), "local");
  REQUIRE(agent_join(alice.get(), "ops") == AGENT_OK);
  REQUIRE(receive_until(alice.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP && m.ngroups == 1;
  }));
  auto error_of = [](agent_conn* c) {
    Message m = receive_until(c, [](const agent_message& x) { return x.kind == AGENT_MSG_ERROR; },
                              3000);
    return m ? m->error_code : 0;
  };
  REQUIRE(agent_join(bob.get(), "ops") == AGENT_OK);
  CHECK(error_of(bob.get()) == 19);
  REQUIRE(agent_join(local.get(), "ops") == AGENT_OK);
  CHECK(error_of(local.get()) == 19);
  // Any authenticated TCP client may send; the Unix client may not.
  REQUIRE(agent_multicast(bob.get(), AGENT_AGREED, "ops", 0, "hi", 2) == AGENT_OK);
  Message m = receive_until(alice.get(), [](const agent_message& x) { return x.kind == AGENT_MSG_DATA; });
  REQUIRE(m);
  CHECK(std::string(m->sender) == "#bob#d1");
  REQUIRE(agent_multicast(local.get(), AGENT_AGREED, "ops", 0, "hi", 2) == AGENT_OK);
  CHECK(error_of(local.get()) == 19);
  CHECK(await([&] { return d.log().find("(127.0.0.1 (tcpuser bob)) may not join ops") !=
                           std::string::npos; }));
}

TEST_CASE("without a secrets file the daemon opens no TCP listener and says why",
          "[agentd][tcpauth]") {
  DaemonOptions o;
  o.tcp = true;
  o.tcp_auth_default = true;  // clients.tcp set, neither tcp_auth nor secrets_file
  Daemon d(o);
  CHECK(d.log().find("not listening for clients on TCP " + d.tcp_address() +
                     ": TCP clients must authenticate") != std::string::npos);
  CHECK(d.log().find("clients.tcp_auth = \"none\"") != std::string::npos);
  agent_conn* c = nullptr;
  CHECK(agent_connect(d.tcp_address().c_str(), "x", 0, 2000, &c) == AGENT_ERR_CONNECT);
  Conn u = connect(d.socket_path(), "unix");  // the Unix socket is open
}

TEST_CASE("tcp_auth = none: the TCP listener takes clients unauthenticated, with a warning",
          "[agentd][tcpauth]") {
  CleanEnv env;
  DaemonOptions o;
  o.tcp = true;  // the fixture sets tcp_auth = "none" without secrets
  Daemon d(o);
  CHECK(d.log().find("NOT authenticated (clients.tcp_auth = \"none\")") != std::string::npos);
  Conn t = connect(d.tcp_address(), "plain");
  CHECK(std::string(agent_private_group(t.get())) == "#plain#d1");
}

TEST_CASE("agent_connect authenticates with AGENT_SECRET_FILE and AGENT_USER",
          "[agentd][tcpauth]") {
  CleanEnv env;
  Daemon d(with_secrets());
  std::string file = d.dir() + "/my.secrets";
  write_private_file(file, "alice " + kAliceSecret + "\nbob " + kBobSecret + "\n");
  ::setenv("AGENT_SECRET_FILE", file.c_str(), 1);
  agent_conn* c = nullptr;
  // Two entries and no AGENT_USER: which one is not said.
  CHECK(agent_connect(d.tcp_address().c_str(), "e1", 0, 5000, &c) == AGENT_ERR_AUTH);
  ::setenv("AGENT_USER", "bob", 1);
  REQUIRE(agent_connect(d.tcp_address().c_str(), "e2", 0, 5000, &c) == AGENT_OK);
  agent_disconnect(c);
  // A file of one entry needs no AGENT_USER.
  ::unsetenv("AGENT_USER");
  write_private_file(file, "alice " + kAliceSecret + "\n");
  REQUIRE(agent_connect(d.tcp_address().c_str(), "e3", 0, 5000, &c) == AGENT_OK);
  agent_disconnect(c);
  // A wrong secret in the file.
  write_private_file(file, "alice " + kBobSecret + "\n");
  CHECK(agent_connect(d.tcp_address().c_str(), "e4", 0, 5000, &c) == AGENT_ERR_AUTH);
  CHECK(std::string(agent_strerror(AGENT_ERR_AUTH)).find("AGENT_SECRET_FILE") != std::string::npos);
}

TEST_CASE("SIGHUP reloads the secrets file: new secrets count at once", "[agentd][tcpauth]") {
  Daemon d(with_secrets());
  Conn before = connect_ok(d, "before", "alice", kAliceSecret);
  const std::string fresh = "alice-has-a-new-secret-now";
  write_private_file(d.secrets_path(), "alice " + fresh + "\n");
  d.signal(SIGHUP);
  REQUIRE(await([&] { return d.log().find("client secrets reloaded from") != std::string::npos; }));
  agent_conn* c = nullptr;
  CHECK(connect_as(d, "old", "alice", kAliceSecret, &c) == AGENT_ERR_AUTH);
  CHECK(connect_as(d, "bob", "bob", kBobSecret, &c) == AGENT_ERR_AUTH);  // removed
  Conn after = connect_ok(d, "new", "alice", fresh);
  // The connection made before keeps working.
  CHECK(agent_join(before.get(), "still") == AGENT_OK);
  CHECK(receive_until(before.get(), [](const agent_message& m) {
    return m.kind == AGENT_MSG_MEMBERSHIP;
  }));
  // A bad file changes nothing.
  write_private_file(d.secrets_path(), "alice short\n");
  d.signal(SIGHUP);
  REQUIRE(await([&] { return d.log().find("keeping the running configuration") != std::string::npos; }));
  Conn again = connect_ok(d, "again", "alice", fresh);
}

TEST_CASE("a secrets file group or others may read is refused at start", "[agentd][tcpauth]") {
  char tmpl[] = "/tmp/agent-secrets-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl, secrets = dir + "/clients.secrets", config = dir + "/agentd.toml";
  write_private_file(secrets, kSecrets);
  REQUIRE(::chmod(secrets.c_str(), 0644) == 0);
  write_private_file(config, "[clients]\nunix_socket = \"" + dir + "/s.sock\"\nsecrets_file = \"" +
                                 secrets + "\"\n");
  auto r = run_agentd({"--check-config", config});
  CHECK(r.status == 2);
  CHECK(r.err.find("clients.secrets_file " + secrets + ": mode 0644 lets group or others at the "
                   "secrets: chmod 600 " + secrets) != std::string::npos);
  REQUIRE(::chmod(secrets.c_str(), 0600) == 0);
  r = run_agentd({"--check-config", config});
  CHECK(r.status == 0);
  CHECK(r.out.find("TCP 127.0.0.1:4803 (authenticated, 2 names)") != std::string::npos);
  std::string cmd = "rm -rf '" + dir + "'";
  CHECK(std::system(cmd.c_str()) == 0);
}
