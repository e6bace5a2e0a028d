#include "bridge/link_seal.h"

#include <openssl/evp.h>

#include <stdexcept>

#include "bridge/bridge_wire.h"
#include "transport/client_auth.h"
#include "transport/wire.h"

namespace agent::bridge {

namespace {
constexpr size_t kTagBytes = 16;
}

struct LinkSeal::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  ~Impl() { EVP_CIPHER_CTX_free(ctx); }
};

LinkSeal::LinkSeal(std::string_view key, std::string_view sender_site,
                   std::string_view sender_nonce, std::string_view receiver_nonce, bool sealing)
    : impl_(std::make_unique<Impl>()) {
  std::string label = "agent-bridge-stream";
  label.push_back(static_cast<char>(sender_site.size()));
  label.append(sender_site).append(sender_nonce).append(receiver_nonce);
  auto k = clientauth::hmac_sha256(key, label);
  impl_->ctx = EVP_CIPHER_CTX_new();
  bool ok = impl_->ctx &&
            (sealing ? EVP_EncryptInit_ex(impl_->ctx, EVP_aes_256_gcm(), nullptr, k.data(), nullptr)
                     : EVP_DecryptInit_ex(impl_->ctx, EVP_aes_256_gcm(), nullptr, k.data(), nullptr)) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM is not available");  // OpenSSL broken: a bug
}

LinkSeal::~LinkSeal() = default;

void LinkSeal::seal(std::string& out, std::string_view plain) {
  unsigned char nonce[12] = {0};
  uint64_t n = counter_++;
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<unsigned char>(n >> (8 * i));
  size_t at = out.size();
  wire::Writer w(out);
  w.u32(static_cast<uint32_t>(1 + plain.size() + kTagBytes));
  w.u8(static_cast<uint8_t>(FrameType::kSealed));
  out.resize(at + 5 + plain.size() + kTagBytes);
  auto* body = reinterpret_cast<unsigned char*>(out.data() + at + 5);
  EVP_CIPHER_CTX* c = impl_->ctx;
  int len = 0;
  bool ok = EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_EncryptUpdate(c, body, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(c, body + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                                body + plain.size()) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM sealing failed");
}

bool LinkSeal::open(std::string_view body, std::string& plain) {
  if (body.size() < kTagBytes) return false;
  unsigned char nonce[12] = {0};
  uint64_t n = counter_;
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<unsigned char>(n >> (8 * i));
  size_t size = body.size() - kTagBytes;
  plain.resize(size);
  EVP_CIPHER_CTX* c = impl_->ctx;
  int len = 0;
  std::string tag(body.substr(size));
  bool ok = EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_DecryptUpdate(c, reinterpret_cast<unsigned char*>(plain.data()), &len,
                              reinterpret_cast<const unsigned char*>(body.data()),
                              static_cast<int>(size)) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                                tag.data()) == 1 &&
            EVP_DecryptFinal_ex(c, reinterpret_cast<unsigned char*>(plain.data()) + len, &len) == 1;
  if (!ok) return false;
  ++counter_;
  return true;
}

}  // namespace agent::bridge
