#include "agentd/ring_socket.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "agentd/log.h"
#include "transport/ring_wire.h"

namespace agent::daemon {

namespace {
bool same_host(const transport::UdpAddress& a, const transport::UdpAddress& b) {
  if (a.addr.ss_family != AF_INET || b.addr.ss_family != AF_INET) return false;
  return reinterpret_cast<const sockaddr_in&>(a.addr).sin_addr.s_addr ==
         reinterpret_cast<const sockaddr_in&>(b.addr).sin_addr.s_addr;
}
}  // namespace

std::string RingSocket::open(const Config& cfg, caf::io::broker* self,
                             std::function<void()> on_readable) {
  self_id_ = cfg.ring.id;
  if (cfg.ring.daemons.empty()) return {};
  for (auto& d : cfg.ring.daemons) {
    transport::UdpAddress a;
    auto err = transport::resolve_udp(d.address, d.port, a);
    if (!err.empty()) return "ring daemon " + std::to_string(d.id) + ": " + err;
    peers_.emplace(d.id, a);
  }
  auto err = udp_.open(peers_.at(self_id_), 8u << 20, cfg.ring.udp_offload);
  if (!err.empty())
    return "ring.id " + std::to_string(self_id_) + ": " + err +
           (err.find(std::strerror(EADDRINUSE)) != std::string::npos
                ? " (another daemon has this ring address: is ring.id right?)"
                : "");
  if (!cfg.ring.multicast.host.empty()) {
    err = open_multicast(cfg);
    if (!err.empty()) return "ring.multicast: " + err;
  }
  if (ring_sealed(cfg)) {
    if (cfg.ring_keys.empty()) return "ring.key_file " + cfg.ring.key_file + ": no key loaded";
    sealer_ = std::make_unique<ringseal::Sealer>(cfg.ring_keys, self_id_, cfg.ring_epoch,
                                                 cfg.ring.encrypt);
  }
  hook_ = watch_readable(self, udp_.disown(), on_readable);
  if (use_multicast_) mcast_hook_ = watch_readable(self, mcast_.disown(), on_readable);
  offload_on_ = udp_.offloading();
  AGENT_LOG(kInfo, "ring: daemon " << self_id_ << " on UDP " << peers_.at(self_id_).to_string()
                                   << ", " << peers_.size() << " daemons"
                                   << (use_multicast_ ? ", multicast " + group_.to_string()
                                                      : std::string())
                                   << (sealer_ ? (cfg.ring.encrypt
                                                      ? ", datagrams authenticated and encrypted"
                                                      : ", datagrams authenticated (not "
                                                        "encrypted: ring.encrypt = false)")
                                               : ", datagrams NOT authenticated "
                                                 "(ring.key_file = \"none\")"));
  return {};
}

// Packets for every daemon go once to the group (from the ring's socket, so receivers know the
// sender by its address); a second socket receives the group's packets.
std::string RingSocket::open_multicast(const Config& cfg) {
  const auto& m = cfg.ring.multicast;
  auto err = transport::resolve_udp(m.host, m.port, group_);
  if (!err.empty()) return err;
  if (!transport::is_ipv4_multicast(group_))
    return group_.to_string() + " is not an IPv4 multicast address (224.0.0.0/4)";
  const transport::UdpAddress& own = peers_.at(self_id_);
  // Daemons on this same host (a test ring on one machine) hear the group only if it loops.
  bool loop = false;
  for (auto& [id, a] : peers_)
    if (id != self_id_ && same_host(a, own)) loop = true;
  err = udp_.send_multicast_from(own, loop);
  if (!err.empty()) return err;
  err = mcast_.open(group_, 8u << 20, cfg.ring.udp_offload, /*shared=*/true);
  if (!err.empty()) return err;
  err = mcast_.join_multicast(group_, own);
  if (!err.empty()) return err;
  use_multicast_ = true;
  return {};
}

void RingSocket::close() {
  unwatch(hook_);
  unwatch(mcast_hook_);
}

void RingSocket::set_keys(std::vector<ringseal::Key> keys) {
  if (sealer_) sealer_->set_keys(std::move(keys));
}

std::string_view RingSocket::seal(std::string_view packet) {
  size_t need = packet.size() + ringseal::kOverheadBytes;
  if (slab_used_ + need > kSlabBytes) {
    ++slab_;
    slab_used_ = 0;
  }
  if (slab_ == slabs_.size()) slabs_.push_back(std::make_unique<char[]>(kSlabBytes));
  char* out = slabs_[slab_].get() + slab_used_;
  size_t n = sealer_->seal(packet, out);
  slab_used_ += n;
  return {out, n};
}

void RingSocket::note_drop(const char* why, NodeId from, const transport::UdpAddress& addr) {
  size_t slot = 0;
  for (size_t i = 0; i < static_cast<size_t>(ringseal::Drop::kCount); ++i)
    if (why == ringseal::to_string(static_cast<ringseal::Drop>(i))) slot = i + 1;
  DropLog& l = drop_log_[slot];
  uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                           std::chrono::steady_clock::now().time_since_epoch())
                                           .count());
  if (l.last_us != 0 && now - l.last_us < 10'000'000) {
    ++l.suppressed;
    return;
  }
  std::string hint;
  std::string_view w = why;
  if (w == "other key") hint = ": is ring.key_file the same on every daemon?";
  else if (w == "unauthenticated") hint = ": a daemon without a key (ring.key_file = \"none\"), or a forgery";
  else if (w == "other encryption setting") hint = ": is ring.encrypt the same on every daemon?";
  else if (w == "sealed without key") hint = ": that daemon has a key, this one runs with ring.key_file = \"none\"";
  AGENT_LOG(kWarn, "ring: dropped a datagram from daemon " << from << " (" << addr.to_string() << "): "
                       << why << hint
                       << (l.suppressed ? " (" + std::to_string(l.suppressed) +
                                              " more of this kind since the last such line)"
                                        : std::string()));
  l.last_us = now;
  l.suppressed = 0;
}

void RingSocket::send(NodeId to, std::string_view bytes, const std::vector<NodeId>& ring_members) {
  if (!is_open()) return;  // a ring of one has no one to send to
  // Sealed once, whatever the number of receivers: they all see one counter.
  if (sealer_) bytes = seal(bytes);
  // A datagram to one daemon (the token, a commit) leaves after every packet queued before
  // it: the token must not overtake the packets it announces.
  if (to != membership::kAllDaemons && to != membership::kBroadcast) udp_.barrier();
  if (use_multicast_ && (to == membership::kAllDaemons || to == membership::kBroadcast)) {
    // Daemons outside the ring hear it too; to them it is a foreign ring's packet, which is
    // how they learn of it (as with joins).
    udp_.queue_view(group_, bytes);
  } else if (to == membership::kAllDaemons) {
    for (auto& [id, addr] : peers_)
      if (id != self_id_) udp_.queue_view(addr, bytes);
  } else if (to == membership::kBroadcast) {
    for (auto id : ring_members)
      if (id != self_id_) udp_.queue_view(peers_.at(id), bytes);
  } else if (auto it = peers_.find(to); it != peers_.end()) {
    udp_.queue_view(it->second, bytes);
  }
}

void RingSocket::flush() {
  if (!is_open()) return;
  udp_.flush();
  slab_ = 0;
  slab_used_ = 0;
  if (offload_on_ && !udp_.offloading()) {
    offload_on_ = false;
    AGENT_LOG(kWarn, "ring: UDP offload is off from now on (" << udp_.offload_off_reason()
                                                            << "); packets go one by one");
  }
}

bool RingSocket::read(const Deliver& deliver) {
  tokens_.clear();
  // The unicast socket is read once the group's is empty: the token is not handled before
  // data packets that had arrived before it.
  size_t from_group = use_multicast_ ? read_batch(mcast_, deliver) : 0;
  size_t from_peers = from_group < transport::UdpSocket::kBatch ? read_batch(udp_, deliver) : 0;
  for (auto& [sender, bytes] : tokens_) deliver(sender, bytes, nullptr);
  return from_group >= transport::UdpSocket::kBatch || from_peers >= transport::UdpSocket::kBatch;
}

// Reads one batch; the tokens in it wait in tokens_ (their bytes stay valid until the socket's
// next read).
size_t RingSocket::read_batch(transport::UdpSocket& socket, const Deliver& deliver) {
  return socket.receive([&](const transport::UdpAddress& from, std::string_view bytes) {
    // The sender is whoever lives at the source address; the ring checks the rest.
    NodeId sender = 0;
    for (auto& [id, addr] : peers_)
      if (addr == from) sender = id;
    if (sender == self_id_) return;  // its own multicast, looped back on this host
    if (sender == 0) {
      ++bad_datagrams_;  // not from a configured daemon
      return;
    }
    if (sealer_) {
      // The socket's buffer is this process's memory: opened (decrypted) where it lies.
      auto o = sealer_->open(const_cast<char*>(bytes.data()), bytes.size(), sender);
      if (!o.ok) {
        note_drop(ringseal::to_string(o.why), sender, from);
        return;
      }
      bytes = o.packet;
    } else if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == (ringseal::kMagic & 0xff) &&
               static_cast<uint8_t>(bytes[1]) == (ringseal::kMagic >> 8)) {
      ++sealed_without_key_;
      note_drop("sealed without key", sender, from);
      return;
    }
    auto h = ringwire::decode_header(bytes);
    if (h && h->type == ringwire::Type::kToken)
      tokens_.emplace_back(sender, bytes);
    else if (h && h->type == ringwire::Type::kData)
      deliver(sender, bytes, socket.keep());  // kept in place, not copied
    else
      deliver(sender, bytes, nullptr);
  });
}

}  // namespace agent::daemon
