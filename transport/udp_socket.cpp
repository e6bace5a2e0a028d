#include "transport/udp_socket.h"

#include <atomic>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
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

bool is_ipv4_multicast(const UdpAddress& a) {
  if (a.addr.ss_family != AF_INET) return false;
  return IN_MULTICAST(ntohl(reinterpret_cast<const sockaddr_in&>(a.addr).sin_addr.s_addr));
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

std::string UdpSocket::open(const UdpAddress& local, size_t buffer_bytes, bool offload,
                            bool shared) {
  fd_ = ::socket(local.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return std::string("cannot create a UDP socket: ") + std::strerror(errno);
  int one = 1;
  if (shared) ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
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
  bufs_.clear();
  for (size_t i = 0; i < kBatch; ++i) bufs_.push_back(take_free_buffer());
  from_.resize(kBatch);
  lens_.resize(kBatch);
  segment_.assign(kBatch, 0);
  if (offload) {
    // Segmentation is asked for per send (a control message), so the kernel's support shows
    // only then; coalesced receiving is a socket option that old kernels refuse.
    gso_ = true;
    gro_ = ::setsockopt(fd_, IPPROTO_UDP, UDP_GRO, &one, sizeof one) == 0;
  } else {
    offload_off_reason_ = "turned off";
  }
  return {};
}

namespace {
constexpr size_t kControlBytes = CMSG_SPACE(sizeof(int));
}  // namespace

size_t UdpSocket::receive_batch() {
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  alignas(cmsghdr) char control[kBatch][kControlBytes];
  // A kept buffer's owners may let go on other threads (the message log's writes payloads
  // from where they were received): their reads happen before the buffer is filled again.
  std::atomic_thread_fence(std::memory_order_acquire);
  for (size_t i = 0; i < kBatch; ++i) {
    if (bufs_[i].use_count() > 1) {  // kept: lent out until its owners are gone
      lent_.push_back(std::move(bufs_[i]));
      bufs_[i] = take_free_buffer();
    }
    iov[i] = {bufs_[i].get(), kMaxDatagram};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from_[i].addr;
    msgs[i].msg_hdr.msg_namelen = sizeof from_[i].addr;
    if (gro_) {
      msgs[i].msg_hdr.msg_control = control[i];
      msgs[i].msg_hdr.msg_controllen = kControlBytes;
    }
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
    segment_[i] = 0;
    if (!gro_) continue;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
      if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
        int seg = 0;
        std::memcpy(&seg, CMSG_DATA(c), sizeof seg);
        if (seg > 0) segment_[i] = static_cast<size_t>(seg);
      }
    }
  }
  return static_cast<size_t>(n);
}

UdpSocket::Buffer UdpSocket::take_free_buffer() {
  // A lent buffer whose owners are all gone is taken again; a few more stay as spares, the
  // rest are freed (a burst of kept packets does not hold its memory for ever).
  Buffer found;
  size_t spares = 0;
  auto out = lent_.begin();
  for (auto& b : lent_) {
    if (b.use_count() == 1) {
      if (!found) {
        found = std::move(b);
        continue;
      }
      if (++spares > kBatch) continue;  // freed with the erase below
    }
    *out++ = std::move(b);
  }
  lent_.erase(out, lent_.end());
  if (found) std::atomic_thread_fence(std::memory_order_acquire);  // as in receive_batch
  if (found) return found;
  return Buffer(new char[kMaxDatagram], std::default_delete<char[]>());
}

std::shared_ptr<const void> UdpSocket::keep() {
  if (lens_[current_] < kMaxDatagram / 4) return nullptr;
  return bufs_[current_];
}

size_t UdpSocket::kept_buffers() const {
  size_t n = 0;
  for (auto& b : lent_) n += b.use_count() > 1;
  for (auto& b : bufs_) n += b.use_count() > 1;
  return n;
}

namespace {
const in_addr* ipv4(const UdpAddress& a) {
  if (a.addr.ss_family != AF_INET) return nullptr;
  return &reinterpret_cast<const sockaddr_in&>(a.addr).sin_addr;
}
}  // namespace

std::string UdpSocket::join_multicast(const UdpAddress& group, const UdpAddress& iface) {
  const in_addr* g = ipv4(group);
  const in_addr* i = ipv4(iface);
  if (!g || !i) return "multicast needs IPv4 addresses";
  if (!is_ipv4_multicast(group)) return group.to_string() + " is not a multicast address";
  ip_mreq m{};
  m.imr_multiaddr = *g;
  m.imr_interface = *i;
  if (::setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) != 0)
    return "cannot join multicast group " + group.to_string() + " on " + iface.to_string() +
           ": " + std::strerror(errno);
  return {};
}

std::string UdpSocket::send_multicast_from(const UdpAddress& iface, bool loop) {
  const in_addr* i = ipv4(iface);
  if (!i) return "multicast needs IPv4 addresses";
  unsigned char ttl = 1, lp = loop ? 1 : 0;
  if (::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, i, sizeof *i) != 0 ||
      ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) != 0 ||
      ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_LOOP, &lp, sizeof lp) != 0)
    return std::string("cannot send multicast from ") + iface.to_string() + ": " +
           std::strerror(errno);
  return {};
}

void UdpSocket::queue(const UdpAddress& to, std::string_view bytes) {
  copies_.emplace_back(bytes);
  out_.push_back(Out{&to, copies_.back()});
}

void UdpSocket::queue_view(const UdpAddress& to, std::string_view bytes) {
  out_.push_back(Out{&to, bytes});
}

void UdpSocket::barrier() {
  if (!out_.empty() && (barriers_.empty() || barriers_.back() != out_.size()))
    barriers_.push_back(out_.size());
}

// Cuts the queue into sends. Without offload, one per datagram, in queue order. With it, a
// datagram joins the open run of its peer when it has the run's size (or is shorter, which
// ends the run) and the kernel's limits allow; else it starts a run. Runs leave in the order
// of their first datagram, so a datagram may leave before ones queued earlier for other peers,
// never before one queued earlier for its own peer, nor before anything queued ahead of a
// barrier (runs end there).
void UdpSocket::plan_sends() {
  sends_.clear();
  run_of_.resize(out_.size());
  open_.clear();  // (peer, its open run) in this stretch between barriers
  size_t next_barrier = 0;
  constexpr size_t kNone = ~size_t{0};
  for (size_t i = 0; i < out_.size(); ++i) {
    while (next_barrier < barriers_.size() && barriers_[next_barrier] <= i) {
      open_.clear();
      ++next_barrier;
    }
    const Out& o = out_[i];
    size_t size = o.bytes.size();
    auto slot = std::find_if(open_.begin(), open_.end(), [&](const auto& e) {
      return e.first == o.to || *e.first == *o.to;
    });
    if (slot != open_.end() && slot->second != kNone) {
      Send& r = sends_[slot->second];
      if (size > 0 && size <= r.segment && r.count < kMaxSegments &&
          (r.count + 1) * r.segment <= kMaxOffloadBytes) {
        ++r.count;
        run_of_[i] = slot->second;
        if (size < r.segment) slot->second = kNone;  // a shorter one ends the run
        continue;
      }
    }
    size_t run = sends_.size();
    sends_.push_back(Send{0, 1, size});
    run_of_[i] = run;
    size_t open = gso_ && size > 0 ? run : kNone;
    if (slot != open_.end())
      slot->second = open;
    else
      open_.emplace_back(o.to, open);
  }
  // Lay the runs out one after the other (each in queue order) for the iovec array.
  size_t at = 0;
  for (Send& r : sends_) {
    r.first = at;
    at += r.count;
    if (r.count == 1) r.segment = 0;
  }
  order_.resize(out_.size());
  fill_.assign(sends_.size(), 0);
  for (size_t i = 0; i < out_.size(); ++i) {
    size_t r = run_of_[i];
    order_[sends_[r].first + fill_[r]++] = i;
  }
}

void UdpSocket::turn_offload_off(int err) {
  gso_ = false;
  offload_off_reason_ = std::string("the kernel refused a segmented send: ") + std::strerror(err);
}

void UdpSocket::flush() {
  if (out_.empty()) return;
  plan_sends();
  auto& iov = iov_;
  iov.resize(order_.size());
  for (size_t k = 0; k < order_.size(); ++k) {
    const Out& o = out_[order_[k]];
    iov[k] = {const_cast<char*>(o.bytes.data()), o.bytes.size()};
  }
  size_t done = 0;
  while (done < sends_.size()) {
    size_t n = std::min(kBatch, sends_.size() - done);
    mmsghdr msgs[kBatch];
    alignas(cmsghdr) char control[kBatch][CMSG_SPACE(sizeof(uint16_t))];
    for (size_t i = 0; i < n; ++i) {
      const Send& s = sends_[done + i];
      const Out& o = out_[order_[s.first]];
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[s.first];
      msgs[i].msg_hdr.msg_iovlen = s.count;
      msgs[i].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&o.to->addr);
      msgs[i].msg_hdr.msg_namelen = o.to->len;
      if (s.segment > 0) {
        msgs[i].msg_hdr.msg_control = control[i];
        msgs[i].msg_hdr.msg_controllen = sizeof control[i];
        cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
        c->cmsg_level = IPPROTO_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = static_cast<uint16_t>(s.segment);
        std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
      }
    }
    int sent = ::sendmmsg(fd_, msgs, static_cast<unsigned>(n), MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      Send& s = sends_[done];
      if (s.segment > 0 && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP ||
                            errno == ENOPROTOOPT)) {
        // No segmentation here: send the rest one datagram at a time.
        turn_offload_off(errno);
        std::vector<Send> rest(sends_.begin() + static_cast<long>(done), sends_.end());
        sends_.resize(done);
        for (const Send& r : rest)
          for (size_t k = 0; k < r.count; ++k) sends_.push_back(Send{r.first + k, 1, 0});
        continue;
      }
      // The first send failed (full buffer, peer port closed): drop it and go on.
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) send_drops_ += s.count;
      else send_errors_ += s.count;
      done += 1;
    } else {
      for (int i = 0; i < sent; ++i) {
        const Send& s = sends_[done + static_cast<size_t>(i)];
        if (s.segment == 0) continue;
        ++offloaded_sends_;
        offloaded_datagrams_ += s.count;
      }
      done += static_cast<size_t>(sent);
    }
  }
  out_.clear();
  copies_.clear();
  barriers_.clear();
}

}  // namespace agent::transport
