#include "transport/client_auth.h"

#include "transport/private_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <stdexcept>
#include <vector>

namespace agent::clientauth {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '@' || c == '-';
}

// The bytes the response authenticates (client_auth.h).
std::string transcript(std::string_view nonce, std::string_view hello_body,
                       std::string_view name) {
  std::string t;
  t.reserve(kLabel.size() + 1 + nonce.size() + 4 + hello_body.size() + 1 + name.size());
  t.append(kLabel);
  t.push_back(static_cast<char>(kClientToDaemon));
  t.append(nonce);
  uint32_t n = static_cast<uint32_t>(hello_body.size());
  for (int i = 0; i < 4; ++i) t.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  t.append(hello_body);
  t.push_back(static_cast<char>(name.size()));
  t.append(name);
  return t;
}

}  // namespace

Mac hmac_sha256(std::string_view key, std::string_view data) {
  Mac out{};
  unsigned int len = 0;
  // An empty key is legal for HMAC; OpenSSL wants a non-null pointer for it.
  static const char kEmpty = 0;
  if (!HMAC(EVP_sha256(), key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len) ||
      len != out.size())
    throw std::runtime_error("HMAC-SHA256 failed");  // OpenSSL broken: a bug, not input
  return out;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (char c : name)
    if (!name_char(c)) return false;
  return true;
}

std::string parse_secrets(std::string_view text, const std::string& path, Secrets& out) {
  out.by_name.clear();
  std::string problems;
  auto problem = [&](size_t line, const std::string& what) {
    problems += (problems.empty() ? "" : "\n") + path + ":" + std::to_string(line) + ": " + what;
  };
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? text.size() - pos
                                                                            : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Fields separated by blanks; '#' at the start of a field begins a comment only on a line
    // of its own (a secret may hold '#').
    std::vector<std::string_view> fields;
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      size_t start = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
      if (i > start) fields.push_back(line.substr(start, i - start));
    }
    if (fields.empty() || fields[0][0] == '#') continue;
    if (fields.size() != 2) {
      problem(line_no, "expected 'NAME SECRET' (two fields, the secret without spaces), found " +
                           std::to_string(fields.size()) + " field" +
                           (fields.size() == 1 ? "" : "s"));
      continue;
    }
    std::string name(fields[0]), secret(fields[1]);
    if (!valid_name(name)) {
      problem(line_no, "name '" + name + "': must be 1.." + std::to_string(kMaxNameBytes) +
                           " of A-Z a-z 0-9 . _ @ -");
      continue;
    }
    bool printable = true;
    for (char c : secret) printable &= c > 0x20 && c < 0x7f;
    if (!printable || secret.size() < kMinSecretBytes || secret.size() > kMaxSecretBytes) {
      // The secret itself is never repeated in a message.
      problem(line_no, "the secret of '" + name + "' has " + std::to_string(secret.size()) +
                           " bytes" + (printable ? "" : " with some not printable ASCII") +
                           ": must be " + std::to_string(kMinSecretBytes) + ".." +
                           std::to_string(kMaxSecretBytes) +
                           " printable ASCII bytes (make one with: openssl rand -hex 32)");
      continue;
    }
    if (!out.by_name.emplace(name, secret).second)
      problem(line_no, "name '" + name + "' is listed twice");
  }
  if (!problems.empty()) out.by_name.clear();
  return problems;
}

std::string load_secrets_file(const std::string& path, Secrets& out, bool private_only) {
  transport::PrivateFileRules rules;
  rules.owner_only = private_only;
  rules.contents = "the secrets";
  rules.max_bytes = kMaxFileBytes;
  rules.size_error = [](uint64_t size) -> std::string {
    if (size <= kMaxFileBytes) return {};
    return std::to_string(size) + " bytes, more than a secrets file may have (" +
           std::to_string(kMaxFileBytes) + ")";
  };
  std::string text;
  auto r = transport::read_private_file(path, rules, text);
  if (!r.error.empty()) return path + ": " + r.error;
  return parse_secrets(text, path, out);
}

Mac response(std::string_view secret, std::string_view nonce, std::string_view hello_body,
             std::string_view name) {
  return hmac_sha256(secret, transcript(nonce, hello_body, name));
}

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "ok";
    case Verdict::kUnknownName: return "unknown name";
    case Verdict::kWrongSecret: return "wrong secret";
    case Verdict::kMalformed: return "malformed response";
  }
  return "?";
}

Verdict verify(const Secrets& secrets, std::string_view name, std::string_view mac,
               std::string_view nonce, std::string_view hello_body) {
  if (mac.size() != kMacBytes || nonce.size() != kNonceBytes || name.size() > 255)
    return Verdict::kMalformed;
  auto it = secrets.by_name.find(std::string(name));
  bool known = it != secrets.by_name.end();
  // An unknown name is checked against a key nobody has: the same work as a known one.
  static const std::string kNobody(kMinSecretBytes * 2, '\0');
  Mac expected = response(known ? std::string_view(it->second) : kNobody, nonce, hello_body, name);
  bool same = CRYPTO_memcmp(expected.data(), mac.data(), kMacBytes) == 0;
  if (!known) return Verdict::kUnknownName;
  return same ? Verdict::kOk : Verdict::kWrongSecret;
}

}  // namespace agent::clientauth
