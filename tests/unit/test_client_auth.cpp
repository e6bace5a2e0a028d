// The secrets file and the challenge-response of authenticated TCP clients
// (transport/client_auth.h).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "transport/client_auth.h"
#include "transport/client_protocol.h"

using namespace agent;
using namespace agent::clientauth;

namespace {

std::string hex(const Mac& m) {
  std::string s;
  char b[3];
  for (uint8_t x : m) {
    std::snprintf(b, sizeof b, "%02x", x);
    s += b;
  }
  return s;
}

std::string nonce_0_31() {
  std::string n;
  for (int i = 0; i < 32; ++i) n.push_back(static_cast<char>(i));
  return n;
}

std::string hello_body(const std::string& name) {
  std::string f;
  proto::encode(f, proto::Hello{proto::kMagic, proto::kVersion, proto::kHelloWantMembership, name});
  return f.substr(proto::kFrameHeaderBytes);
}

}  // namespace

TEST_CASE("a secrets file is NAME SECRET lines with comments and blank lines", "[tcpauth]") {
  Secrets s;
  REQUIRE(parse_secrets("# clients\n\nalice  0123456789abcdef0123\r\n\tbob\tsecret-of-bob-#1234\n"
                        "   # indented comment\nsvc.x@h-1 ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                        "f", s) == "");
  CHECK(s.by_name.size() == 3);
  CHECK(s.by_name.at("alice") == "0123456789abcdef0123");
  CHECK(s.by_name.at("bob") == "secret-of-bob-#1234");  // '#' inside a secret is the secret's
  CHECK(s.by_name.at("svc.x@h-1") == "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  Secrets empty;
  CHECK(parse_secrets("", "f", empty) == "");
  CHECK(empty.by_name.empty());
}

TEST_CASE("a secrets file with problems names each line and never shows a secret", "[tcpauth]") {
  Secrets s;
  std::string err = parse_secrets("alice\nbob short-secret\ncarol 0123456789abcdef extra\n"
                                  "d/e 0123456789abcdef\nalice2 0123456789abcdef\n"
                                  "alice2 fedcba9876543210\n",
                                  "clients.secrets", s);
  CHECK(err.find("clients.secrets:1: expected 'NAME SECRET' (two fields, the secret without "
                 "spaces), found 1 field") != std::string::npos);
  CHECK(err.find("clients.secrets:2: the secret of 'bob' has 12 bytes: must be 16..1024") !=
        std::string::npos);
  CHECK(err.find("clients.secrets:3: expected 'NAME SECRET'") != std::string::npos);
  CHECK(err.find("clients.secrets:4: name 'd/e': must be 1..64") != std::string::npos);
  CHECK(err.find("clients.secrets:6: name 'alice2' is listed twice") != std::string::npos);
  CHECK(err.find("short-secret") == std::string::npos);
  CHECK(err.find("fedcba") == std::string::npos);
  CHECK(s.by_name.empty());  // nothing half-loaded
  CHECK(parse_secrets("x " + std::string(1025, 'a') + "\n", "f", s) != "");
  CHECK(parse_secrets("x " + std::string(1024, 'a') + "\n", "f", s) == "");
  CHECK(parse_secrets(std::string(65, 'n') + " 0123456789abcdef\n", "f", s) != "");
  CHECK(parse_secrets("x 0123456789abcde\x01\n", "f", s).find("not printable") != std::string::npos);
}

TEST_CASE("a secrets file must be private to its owner", "[tcpauth]") {
  char tmpl[] = "/tmp/agent-secrets-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string file = std::string(tmpl) + "/s";
  std::ofstream(file) << "alice 0123456789abcdef\n";
  Secrets s;
  for (mode_t mode : {0604, 0620, 0640, 0660, 0644}) {
    REQUIRE(chmod(file.c_str(), mode) == 0);
    CHECK(load_secrets_file(file, s).find("lets group or others at the secrets: chmod 600") !=
          std::string::npos);
    CHECK(load_secrets_file(file, s, /*private_only=*/false) == "");
  }
  REQUIRE(chmod(file.c_str(), 0400) == 0);
  CHECK(load_secrets_file(file, s) == "");
  CHECK(s.by_name.count("alice") == 1);
  CHECK(load_secrets_file(tmpl, s) == std::string(tmpl) + ": not a regular file");
  std::remove(file.c_str());
  rmdir(tmpl);
}

TEST_CASE("the response is HMAC-SHA256 over the documented transcript", "[tcpauth]") {
  // The same vector is checked by the Python and Java bindings' tests (computed with Python's
  // hmac module from docs/client-protocol.md).
  Mac m = response("0123456789abcdef0123456789abcdef", nonce_0_31(), hello_body("alice"), "alice");
  CHECK(hex(m) == "be3c007d911ae898b42f545a1dc887541d0ba5c5bdd3e6ef72ea7591801e74e6");
}

TEST_CASE("verification accepts only the secret of the name, for this nonce and hello",
          "[tcpauth]") {
  Secrets s;
  REQUIRE(parse_secrets("alice 0123456789abcdef0123456789abcdef\nbob bbbbbbbbbbbbbbbbbbbb\n", "f",
                        s) == "");
  std::string nonce = nonce_0_31(), body = hello_body("alice");
  auto view = [](const Mac& m) { return std::string(reinterpret_cast<const char*>(m.data()), m.size()); };
  std::string good = view(response(s.by_name.at("alice"), nonce, body, "alice"));
  CHECK(verify(s, "alice", good, nonce, body) == Verdict::kOk);
  // Another name, secret, nonce (connection) or hello: refused.
  CHECK(verify(s, "bob", good, nonce, body) == Verdict::kWrongSecret);
  CHECK(verify(s, "carol", good, nonce, body) == Verdict::kUnknownName);
  CHECK(verify(s, "alice", view(response("bbbbbbbbbbbbbbbbbbbb", nonce, body, "alice")), nonce,
               body) == Verdict::kWrongSecret);
  std::string other_nonce = nonce;
  other_nonce[0] ^= 1;
  CHECK(verify(s, "alice", good, other_nonce, body) == Verdict::kWrongSecret);
  CHECK(verify(s, "alice", good, nonce, hello_body("mallory")) == Verdict::kWrongSecret);
  // Short or long answers and nonces are malformed, not compared.
  CHECK(verify(s, "alice", good.substr(1), nonce, body) == Verdict::kMalformed);
  CHECK(verify(s, "alice", good, nonce.substr(1), body) == Verdict::kMalformed);
  CHECK(verify(Secrets{}, "alice", good, nonce, body) == Verdict::kUnknownName);
}

TEST_CASE("challenge and auth frames round-trip and refuse trailing bytes", "[tcpauth]") {
  std::string f;
  proto::encode(f, proto::Challenge{kMethodSecret, nonce_0_31()});
  auto c = proto::decode_challenge(std::string_view(f).substr(proto::kFrameHeaderBytes));
  REQUIRE(c);
  CHECK(static_cast<uint8_t>(f[4]) == 0x87);
  CHECK(c->nonce == nonce_0_31());
  f.clear();
  proto::encode(f, proto::Auth{kMethodSecret, "alice", std::string(32, 'm')});
  CHECK(static_cast<uint8_t>(f[4]) == 0x07);
  auto a = proto::decode_auth(std::string_view(f).substr(proto::kFrameHeaderBytes));
  REQUIRE(a);
  CHECK(a->name == "alice");
  CHECK(a->mac == std::string(32, 'm'));
  CHECK_FALSE(proto::decode_auth(std::string_view(f).substr(proto::kFrameHeaderBytes).substr(0, 10)));
  CHECK_FALSE(proto::decode_auth(f.substr(proto::kFrameHeaderBytes) + "x"));
}
