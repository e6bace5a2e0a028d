#include "transport/udp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace agent::transport {

bool UdpAddress::operator==(const UdpAddress& o) const {
  if (addr.ss_family != o.addr.ss_family) return false;
  if (addr.ss_family == AF_INET) {
    auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    auto& b = reinterpret_cast<const sockaddr_in&>(o.addr);
    return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
  }
  if (addr.ss_family == AF_INET6) {
    auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
    auto& b = reinterpret_cast<const sockaddr_in6&>(o.addr);
    return a.sin6_port == b.sin6_port &&
           std::memcmp(&a.sin6_addr, &b.sin6_addr, sizeof a.sin6_addr) == 0;
  }
  return false;
}

std::string UdpAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
    port = ntohs(a.sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
  inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
  port = ntohs(a.sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

std::string resolve_udp(const std::string& host, uint16_t port, UdpAddress& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return "cannot resolve " + host + ": " + gai_strerror(rc);
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return {};
}

UdpSocket::~UdpSocket() {
  if (fd_ >= 0 && owned_) ::close(fd_);
}

int UdpSocket::disown() {
  owned_ = false;
  return fd_;
}

std::string UdpSocket::open(const UdpAddress& local, size_t buffer_bytes) {
  fd_ = ::socket(local.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return std::string("cannot create a UDP socket: ") + std::strerror(errno);
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int size = static_cast<int>(buffer_bytes);
  // FORCE variants pass the system limit when running as root; otherwise take what is allowed.
  if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (::setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&local.addr), local.len) != 0) {
    std::string err = "cannot bind UDP " + local.to_string() + ": " + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    return err;
  }
  bufs_.assign(kBatch, std::vector<char>(kMaxDatagram));
  from_.resize(kBatch);
  lens_.resize(kBatch);
  return {};
}

size_t UdpSocket::receive_batch() {
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  for (size_t i = 0; i < kBatch; ++i) {
    iov[i] = {bufs_[i].data(), bufs_[i].size()};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from_[i].addr;
    msgs[i].msg_hdr.msg_namelen = sizeof from_[i].addr;
  }
  int n;
  do {
    n = ::recvmmsg(fd_, msgs, kBatch, MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return 0;
  for (int i = 0; i < n; ++i) {
    from_[i].len = msgs[i].msg_hdr.msg_namelen;
    // A datagram cut short by the buffer is reported at its real size: make it undecodable.
    lens_[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : msgs[i].msg_len;
  }
  return static_cast<size_t>(n);
}

void UdpSocket::queue(const UdpAddress& to, std::string_view bytes) {
  copies_.emplace_back(bytes);
  out_.push_back(Out{&to, copies_.back()});
}

void UdpSocket::queue_view(const UdpAddress& to, std::string_view bytes) {
  out_.push_back(Out{&to, bytes});
}

void UdpSocket::flush() {
  size_t done = 0;
  while (done < out_.size()) {
    size_t n = std::min(kBatch, out_.size() - done);
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    for (size_t i = 0; i < n; ++i) {
      Out& o = out_[done + i];
      iov[i] = {const_cast<char*>(o.bytes.data()), o.bytes.size()};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&o.to->addr);
      msgs[i].msg_hdr.msg_namelen = o.to->len;
    }
    int sent = ::sendmmsg(fd_, msgs, static_cast<unsigned>(n), MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      // The first datagram failed (full buffer, peer port closed): drop it and go on.
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) ++send_drops_;
      else ++send_errors_;
      done += 1;
    } else {
      done += static_cast<size_t>(sent);
    }
  }
  out_.clear();
  copies_.clear();
}

}  // namespace agent::transport
