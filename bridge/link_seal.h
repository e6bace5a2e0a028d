// Sealing of a bridge link's frames (bridge.encrypt, on by default): AES-256-GCM with a key per
// direction derived from the link key and both sides' nonces of this link, and a counter as
// the GCM nonce. A frame that was altered, replayed, dropped from the middle or reordered fails
// to open, and the link is closed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace agent::bridge {

class LinkSeal {
 public:
  // key: the link key; the stream sent by sender_site, whose nonce is sender_nonce, to the
  // side whose nonce is receiver_nonce.
  LinkSeal(std::string_view key, std::string_view sender_site, std::string_view sender_nonce,
           std::string_view receiver_nonce, bool sealing);
  ~LinkSeal();
  LinkSeal(const LinkSeal&) = delete;
  LinkSeal& operator=(const LinkSeal&) = delete;

  // Appends plain (one whole frame) sealed: a frame of type kSealed.
  void seal(std::string& out, std::string_view plain);
  // The plain frame a kSealed frame's body holds: false when it does not open.
  bool open(std::string_view body, std::string& plain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t counter_ = 0;
};

}  // namespace agent::bridge
