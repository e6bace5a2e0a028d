// UdpSocket on loopback: every queued datagram arrives whole and, per peer, in queue order,
// whether runs leave offloaded (UDP GSO, read back coalesced with UDP GRO) or one by one, and
// when the kernel refuses segmentation.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "transport/udp_socket.h"

using agent::transport::UdpAddress;
using agent::transport::UdpSocket;

namespace {

// Binds a socket to an unused loopback port.
void open_loopback(UdpSocket& s, UdpAddress& addr, bool offload) {
  REQUIRE(agent::transport::resolve_udp("127.0.0.1", 0, addr).empty());
  REQUIRE(s.open(addr, 1u << 20, offload).empty());
  addr.len = sizeof addr.addr;
  REQUIRE(::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr.addr), &addr.len) == 0);
}

// Datagram i of a test: its number in the first bytes, then a fill of its own.
std::string datagram(size_t i, size_t size) {
  std::string d(size, static_cast<char>('a' + i % 26));
  std::string tag = std::to_string(i) + ":";
  d.replace(0, std::min(tag.size(), size), tag.substr(0, size));
  return d;
}

// Reads until `want` datagrams came or two seconds passed.
std::vector<std::string> read_all(UdpSocket& s, size_t want, size_t* reads = nullptr) {
  std::vector<std::string> got;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got.size() < want && std::chrono::steady_clock::now() < until) {
    pollfd p{s.fd(), POLLIN, 0};
    ::poll(&p, 1, 50);
    size_t n = s.receive([&](const UdpAddress&, std::string_view b) { got.emplace_back(b); });
    if (reads) *reads += n;
  }
  return got;
}

}  // namespace

TEST_CASE("offloaded runs arrive as the datagrams queued, in order, sizes kept", "[udp]") {
  bool offload = GENERATE(true, false);
  CAPTURE(offload);
  UdpSocket tx, rx;
  UdpAddress tx_addr, rx_addr;
  open_loopback(tx, tx_addr, offload);
  open_loopback(rx, rx_addr, offload);
  // Equal sizes (one run), a shorter one (ends it), a larger one (starts the next), empty.
  std::vector<size_t> sizes = {1200, 1200, 1200, 1200, 700, 1200, 1200, 3000, 3000, 10, 0, 500};
  for (int i = 0; i < 40; ++i) sizes.push_back(1400);  // longer than the 65,000-byte limit
  std::vector<std::string> sent;
  for (size_t i = 0; i < sizes.size(); ++i) sent.push_back(datagram(i, sizes[i]));
  for (auto& d : sent) tx.queue_view(rx_addr, d);
  tx.flush();
  size_t reads = 0;
  auto got = read_all(rx, sent.size(), &reads);
  CHECK(got == sent);
  CHECK(tx.send_drops() == 0);
  CHECK(tx.send_errors() == 0);
  if (offload) {
    REQUIRE(tx.offloading());  // loopback segments on every kernel with UDP GSO
    CHECK(tx.offloaded_sends() >= 3);
    CHECK(tx.offloaded_datagrams() >= 40);
    CHECK(reads < sent.size());  // arrived coalesced, cut apart by receive()
  } else {
    CHECK(tx.offloaded_sends() == 0);
    CHECK(reads == sent.size());
  }
}

TEST_CASE("datagrams for two peers interleaved: each peer gets its own in order", "[udp]") {
  UdpSocket tx, a, b;
  UdpAddress tx_addr, a_addr, b_addr;
  open_loopback(tx, tx_addr, true);
  open_loopback(a, a_addr, true);
  open_loopback(b, b_addr, true);
  std::vector<std::string> to_a, to_b;
  for (size_t i = 0; i < 20; ++i) {
    to_a.push_back(datagram(i, 2000));
    to_b.push_back(datagram(100 + i, 2000));
  }
  to_a.push_back(datagram(999, 90));  // a token-like tail, after a barrier
  for (size_t i = 0; i < 20; ++i) {
    tx.queue_view(a_addr, to_a[i]);
    tx.queue_view(b_addr, to_b[i]);
  }
  tx.barrier();
  tx.queue_view(a_addr, to_a.back());
  tx.flush();
  CHECK(read_all(a, to_a.size()) == to_a);
  CHECK(read_all(b, to_b.size()) == to_b);
  CHECK(tx.offloaded_sends() >= 2);
}

TEST_CASE("a kernel refusing segmentation turns offload off and loses nothing", "[udp]") {
  UdpSocket tx, rx;
  UdpAddress tx_addr, rx_addr;
  open_loopback(tx, tx_addr, true);
  open_loopback(rx, rx_addr, true);
  // Segmentation needs UDP checksums; without them the kernel refuses it (EINVAL).
  int one = 1;
  REQUIRE(::setsockopt(tx.fd(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) == 0);
  std::vector<std::string> sent;
  for (size_t i = 0; i < 10; ++i) sent.push_back(datagram(i, 1000));
  for (auto& d : sent) tx.queue_view(rx_addr, d);
  tx.flush();
  CHECK_FALSE(tx.offloading());
  CHECK(tx.offload_off_reason().find("refused") != std::string::npos);
  CHECK(read_all(rx, sent.size()) == sent);
  CHECK(tx.send_drops() + tx.send_errors() == 0);
}

TEST_CASE("a kept receive buffer stays intact while the socket reads on, then is reused",
          "[udp]") {
  UdpSocket tx, rx;
  UdpAddress tx_addr, rx_addr;
  open_loopback(tx, tx_addr, false);
  open_loopback(rx, rx_addr, false);
  std::string big = datagram(1, UdpSocket::kMaxDatagram / 2), small = datagram(2, 100);
  tx.queue_view(rx_addr, big);
  tx.queue_view(rx_addr, small);
  tx.flush();
  std::shared_ptr<const void> kept, kept_small;
  std::string_view kept_bytes;
  size_t got = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got < 2 && std::chrono::steady_clock::now() < until) {
    pollfd p{rx.fd(), POLLIN, 0};
    ::poll(&p, 1, 50);
    rx.receive([&](const UdpAddress&, std::string_view b) {
      if (++got == 1) {
        kept = rx.keep();
        kept_bytes = b;
      } else {
        kept_small = rx.keep();
      }
    });
  }
  REQUIRE(got == 2);
  REQUIRE(kept);
  CHECK_FALSE(kept_small);  // a quarter of the buffer or less: the caller copies instead
  CHECK(rx.kept_buffers() == 1);
  // Enough further datagrams to pass every receive buffer more than once.
  std::vector<std::string> more;
  for (size_t i = 0; i < 3 * UdpSocket::kBatch; ++i) more.push_back(datagram(i, 20000));
  for (size_t round = 0; round < 3; ++round) {
    for (size_t i = 0; i < UdpSocket::kBatch; ++i)
      tx.queue_view(rx_addr, more[round * UdpSocket::kBatch + i]);
    tx.flush();
    auto read = read_all(rx, UdpSocket::kBatch);
    CHECK(read.size() == UdpSocket::kBatch);
  }
  CHECK(kept_bytes == big);
  CHECK(rx.kept_buffers() == 1);
  kept.reset();
  CHECK(rx.kept_buffers() == 0);
}
