// A non-blocking UDP socket that moves many datagrams per system call (recvmmsg / sendmmsg).
// Knows nothing of what the datagrams carry.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
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

// Resolves "host" (literal or name) and port; "" on success, else why not.
std::string resolve_udp(const std::string& host, uint16_t port, UdpAddress& out);

class UdpSocket {
 public:
  static constexpr size_t kBatch = 32;            // datagrams per system call
  static constexpr size_t kMaxDatagram = 65536;

  UdpSocket() = default;
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Binds to local; "" on success. Asks the kernel for large buffers.
  std::string open(const UdpAddress& local, size_t buffer_bytes = 8u << 20);
  int fd() const { return fd_; }
  // Hands the descriptor's ownership to the caller (who closes it); I/O through this object
  // goes on using it.
  int disown();

  // Reads up to one batch of waiting datagrams; calls f(from, bytes) for each. Returns how many
  // were read (0: none waiting). Never blocks.
  template <class F>
  size_t receive(F&& f) {
    size_t n = receive_batch();
    for (size_t i = 0; i < n; ++i) f(from_[i], std::string_view(bufs_[i].data(), lens_[i]));
    return n;
  }

  // Queues a datagram; flush() sends everything queued. A full socket buffer or an unreachable
  // peer drops the datagram (the ring protocol recovers losses); counted in send_drops().
  void queue(const UdpAddress& to, std::string_view bytes);
  // Queues without copying: bytes (and to) must stay valid until flush() returns.
  void queue_view(const UdpAddress& to, std::string_view bytes);
  void flush();
  uint64_t send_drops() const { return send_drops_; }
  uint64_t send_errors() const { return send_errors_; }

 private:
  size_t receive_batch();

  int fd_ = -1;
  bool owned_ = true;
  std::vector<std::vector<char>> bufs_;
  std::vector<UdpAddress> from_;
  std::vector<size_t> lens_;
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
