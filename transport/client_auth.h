// Authentication of TCP clients by a shared secret (docs/client-protocol.md, "Authentication";
// docs/security.md): the pieces the daemon and the client libraries share.
//
// A secrets file names who may connect over TCP, one entry per line:
//
//   # comment
//   alice  3f0c9a...        name (1..64 of A-Z a-z 0-9 . _ @ -), whitespace, secret
//
// The secret is 16..1024 printable ASCII bytes without spaces; its bytes as written are the
// HMAC key (`openssl rand -hex 32` makes a good one). The daemon and a client both read this
// format; the daemon's file lists every name, a client's holds at least its own.
//
// The exchange: to a hello on a listener that requires it, the daemon answers with a
// challenge holding a fresh random nonce (kNonceBytes); the client answers with its name and
//
//   HMAC-SHA256(secret, kLabel | u8 kClientToDaemon | nonce | u32 len | hello body | str8 name)
//
// (integers little-endian; the hello body is the hello frame's body as the client sent it).
// The daemon computes the same and compares in constant time. The secret never travels; a
// response is good for one nonce, i.e. one connection, so a recorded one cannot be replayed.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace agent::clientauth {

constexpr size_t kNonceBytes = 32;
constexpr size_t kMacBytes = 32;  // HMAC-SHA256
constexpr size_t kMinSecretBytes = 16;
constexpr size_t kMaxSecretBytes = 1024;
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxFileBytes = 1u << 20;
constexpr uint8_t kMethodSecret = 1;     // the challenge's and the answer's method: HMAC-SHA256
constexpr uint8_t kClientToDaemon = 1;   // direction byte of the client's response
constexpr std::string_view kLabel = "libagent client auth v1";

using Mac = std::array<uint8_t, kMacBytes>;

// name -> secret.
struct Secrets {
  std::map<std::string, std::string> by_name;
  bool operator==(const Secrets& o) const { return by_name == o.by_name; }
  bool operator!=(const Secrets& o) const { return !(*this == o); }
};

// Whether name may name an entry.
bool valid_name(std::string_view name);

// Parses a secrets file's text. "" on success, else one line per problem ("path:LINE: ...").
std::string parse_secrets(std::string_view text, const std::string& path, Secrets& out);

// Reads a secrets file: a regular file of at most kMaxFileBytes that neither group nor others
// may read or write (private: true; a client may skip that check with false), then parses it.
// "" on success, else a message naming the file and what to do.
std::string load_secrets_file(const std::string& path, Secrets& out, bool private_only = true);

// HMAC-SHA256 of data under key.
Mac hmac_sha256(std::string_view key, std::string_view data);

// The client's response to nonce (see above).
Mac response(std::string_view secret, std::string_view nonce, std::string_view hello_body,
             std::string_view name);

enum class Verdict { kOk, kUnknownName, kWrongSecret, kMalformed };
const char* to_string(Verdict v);

// Checks a response: the same work whether or not the name is known (a wrong name takes as long
// as a wrong secret), the comparison in constant time.
Verdict verify(const Secrets& secrets, std::string_view name, std::string_view mac,
               std::string_view nonce, std::string_view hello_body);

}  // namespace agent::clientauth
