// The ring's network side in agentd: the UDP socket every datagram to and from the other
// daemons goes through (and, with ring.multicast, the socket bound to the group), the
// configured daemons' addresses, and batched sends (sendmmsg, UDP GSO) and reads (recvmmsg).
// With a cluster key every datagram is sealed on its way out and opened (authenticated,
// decrypted in place, checked against replay) on its way in, before the ring sees it
// (transport/ring_seal.h); what does not open is dropped and counted by reason.
#pragma once

#include <cstdint>
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/io/broker.hpp>

#include "agentd/caf_adapter.h"
#include "agentd/config.h"
#include "membership/ring.h"
#include "transport/ring_seal.h"
#include "transport/udp_socket.h"

namespace agent::daemon {

class RingSocket {
 public:
  using NodeId = membership::NodeId;
  // A datagram from a configured daemon; owner, when set, keeps the bytes alive.
  using Deliver = std::function<void(NodeId from, std::string_view bytes,
                                     const membership::Owner& owner)>;

  // Opens the sockets and resolves the daemons' addresses; "" on success. A ring of one (no
  // daemons configured) opens nothing. on_readable runs whenever a socket is readable.
  std::string open(const Config& cfg, caf::io::broker* self, std::function<void()> on_readable);
  // Closes the sockets.
  void close();
  bool is_open() const { return fd_of(hook_) >= 0; }

  // Queues a datagram to `to` (a daemon, membership::kBroadcast: every other member of
  // ring_members, membership::kAllDaemons: every other configured daemon), without copying:
  // bytes must live until flush().
  void send(NodeId to, std::string_view bytes, const std::vector<NodeId>& ring_members);
  void flush();

  // Reads one batch from each socket. Data packets go to deliver at once; tokens after them
  // (the packets a token announces may be in the same batch, behind it). True when a socket
  // gave a full batch (more may be waiting).
  bool read(const Deliver& deliver);

  // Datagrams from addresses of no configured daemon.
  uint64_t bad_datagrams() const { return bad_datagrams_; }
  // Sealing and opening, null when the ring runs without a key.
  const ringseal::Sealer* sealer() const { return sealer_.get(); }
  // Datagrams that came sealed while this daemon has no key.
  uint64_t sealed_without_key() const { return sealed_without_key_; }
  // Replaces the keys (SIGHUP with new key files): the first seals from now on.
  void set_keys(std::vector<ringseal::Key> keys);
  const transport::UdpSocket& unicast() const { return udp_; }

 private:
  std::string open_multicast(const Config& cfg);
  size_t read_batch(transport::UdpSocket& socket, const Deliver& deliver);
  // Sealed copies of the datagrams queued since the last flush.
  std::string_view seal(std::string_view packet);
  // Logs a dropped datagram's reason, at most once per 10 s per reason.
  void note_drop(const char* why, NodeId from, const transport::UdpAddress& addr);

  NodeId self_id_ = 0;
  std::unordered_map<NodeId, transport::UdpAddress> peers_;
  transport::UdpSocket udp_;  // the ring's socket; hook_ owns (and closes) its fd
  Watch* hook_ = nullptr;
  bool use_multicast_ = false;
  transport::UdpAddress group_;  // ring.multicast, when used
  transport::UdpSocket mcast_;   // bound to the group; mcast_hook_ owns its fd
  Watch* mcast_hook_ = nullptr;
  bool offload_on_ = false;
  std::vector<std::pair<NodeId, std::string_view>> tokens_;  // of the batch being read
  uint64_t bad_datagrams_ = 0;
  uint64_t sealed_without_key_ = 0;
  std::unique_ptr<ringseal::Sealer> sealer_;
  // Memory for sealed datagrams until flush(): slabs reused from flush to flush.
  static constexpr size_t kSlabBytes = 1u << 20;
  std::vector<std::unique_ptr<char[]>> slabs_;
  size_t slab_ = 0, slab_used_ = 0;
  struct DropLog {
    uint64_t last_us = 0;
    uint64_t suppressed = 0;
  };
  std::array<DropLog, static_cast<size_t>(ringseal::Drop::kCount) + 1> drop_log_{};
};

}  // namespace agent::daemon
