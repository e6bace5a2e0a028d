// A non-blocking UDP socket that moves many datagrams per system call (recvmmsg / sendmmsg).
// Knows nothing of what the datagrams carry.
//
// With offload on (Linux UDP GSO/GRO), datagrams queued back to back for one peer whose sizes
// are equal (the last of a run may be shorter) leave as one buffer the kernel cuts into those
// datagrams (UDP_SEGMENT): one trip through the stack, the bridge or the NIC driver instead of
// one per datagram. Received datagrams the kernel coalesced (UDP_GRO) are cut apart here again.
// What the peers see on the wire is the same datagrams either way. A kernel or route that
// refuses segmentation (no checksum offload, a datagram larger than the path MTU) turns it off
// for this socket; the datagrams then go one by one.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace agent::transport {

struct UdpAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool operator==(const UdpAddress& o) const;
  std::string to_string() const;
};

// Whether a is an IPv4 multicast group address (224.0.0.0/4).
bool is_ipv4_multicast(const UdpAddress& a);

// Resolves "host" (literal or name) and port; "" on success, else why not.
std::string resolve_udp(const std::string& host, uint16_t port, UdpAddress& out);

class UdpSocket {
 public:
  static constexpr size_t kBatch = 32;            // datagrams per system call
  static constexpr size_t kMaxDatagram = 65536;
  static constexpr size_t kMaxSegments = 64;       // datagrams per offloaded send
  static constexpr size_t kMaxOffloadBytes = 65000;  // bytes per offloaded send

  UdpSocket() = default;
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Binds to local; "" on success. Asks the kernel for large buffers; offload: use UDP GSO/GRO
  // where the kernel has them. shared: other sockets may bind the same address and port
  // (SO_REUSEADDR: a multicast group that several daemons on one host receive); otherwise a
  // port in use is an error, so that two daemons cannot both take one ring address.
  std::string open(const UdpAddress& local, size_t buffer_bytes = 8u << 20, bool offload = true,
                   bool shared = false);
  int fd() const { return fd_; }
  // IPv4 multicast. Receiving: join group on the interface that has address iface (the socket
  // is bound to the group's address and port). Sending: datagrams to a group leave by the
  // interface of iface, go no further than the LAN (TTL 1), and come back to this host's
  // members of the group only if loop. "" on success, else why not.
  std::string join_multicast(const UdpAddress& group, const UdpAddress& iface);
  std::string send_multicast_from(const UdpAddress& iface, bool loop);
  // Hands the descriptor's ownership to the caller (who closes it); I/O through this object
  // goes on using it.
  int disown();

  // Reads up to one batch of waiting datagrams; calls f(from, bytes) for each (in the order
  // sent, also for a coalesced buffer). Returns how many reads the batch took (0: nothing was
  // waiting; kBatch: there may be more). Never blocks. bytes are valid until the next
  // receive(), unless f keeps them with keep().
  template <class F>
  size_t receive(F&& f) {
    size_t n = receive_batch();
    for (size_t i = 0; i < n; ++i) {
      current_ = i;
      std::string_view all(bufs_[i].get(), lens_[i]);
      size_t seg = segment_[i];
      if (seg == 0 || all.size() <= seg) {
        f(from_[i], all);
        continue;
      }
      for (size_t at = 0; at < all.size(); at += seg) f(from_[i], all.substr(at, seg));
    }
    return n;
  }

  // Inside receive()'s callback: keeps the bytes just given valid for as long as the returned
  // owner (or a copy of it) lives; the socket reads into other memory meanwhile. Null when the
  // read filled less than a quarter of its buffer: copying the bytes is then cheaper than
  // holding the whole buffer. Coalesced datagrams share one buffer and one owner.
  std::shared_ptr<const void> keep();
  // Buffers kept by callers and not yet released.
  size_t kept_buffers() const;

  // Queues a datagram; flush() sends everything queued. A full socket buffer or an unreachable
  // peer drops the datagram (the ring protocol recovers losses); counted in send_drops().
  void queue(const UdpAddress& to, std::string_view bytes);
  // Queues without copying: bytes (and to) must stay valid until flush() returns.
  void queue_view(const UdpAddress& to, std::string_view bytes);
  // What is queued after this leaves after everything queued before it. Without barriers,
  // offload may send a datagram before ones queued earlier for other peers (never before
  // those for its own peer).
  void barrier();
  void flush();
  uint64_t send_drops() const { return send_drops_; }
  uint64_t send_errors() const { return send_errors_; }
  // Whether sends are offloaded now; why offload was turned off ("" if it was not).
  bool offloading() const { return gso_; }
  const std::string& offload_off_reason() const { return offload_off_reason_; }
  // Datagrams sent within offloaded sends, and those sends (their ratio: datagrams per send).
  uint64_t offloaded_datagrams() const { return offloaded_datagrams_; }
  uint64_t offloaded_sends() const { return offloaded_sends_; }

 private:
  size_t receive_batch();
  // One sendmsg's worth: out_[first, first + count) to one peer; segment > 0: offloaded.
  struct Send {
    size_t first;
    size_t count;
    size_t segment;
  };
  void plan_sends();
  void turn_offload_off(int err);

  int fd_ = -1;
  bool owned_ = true;
  using Buffer = std::shared_ptr<char>;
  Buffer take_free_buffer();
  std::vector<Buffer> bufs_;  // one per datagram of a batch, kMaxDatagram bytes each
  std::vector<Buffer> lent_;  // given out by keep(): reused once their owners are all gone
  size_t current_ = 0;        // the buffer receive() is handing out
  std::vector<UdpAddress> from_;
  std::vector<size_t> lens_;
  std::vector<size_t> segment_;  // per received buffer: its datagram size if coalesced, else 0
  bool gso_ = false;
  bool gro_ = false;
  std::string offload_off_reason_;
  uint64_t offloaded_datagrams_ = 0;
  uint64_t offloaded_sends_ = 0;
  std::vector<Send> sends_;
  std::vector<size_t> order_;  // out_ indices, run after run, each run in queue order
  std::vector<size_t> barriers_;  // out_ sizes at barrier() calls
  std::vector<size_t> run_of_;    // per out_ index: its send
  std::vector<size_t> fill_;
  std::vector<std::pair<const UdpAddress*, size_t>> open_;
  std::vector<iovec> iov_;
  struct Out {
    const UdpAddress* to;
    std::string_view bytes;
  };
  std::vector<Out> out_;
  std::deque<std::string> copies_;  // made by queue(), kept until flush()
  uint64_t send_drops_ = 0;
  uint64_t send_errors_ = 0;
};

}  // namespace agent::transport
