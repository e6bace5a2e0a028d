// The client library's send queue (bindings/c/send_queue.h) over a socket pair whose far end
// the test reads or does not read: what a busy socket does to callers and to the bytes.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "bindings/c/agent.h"
#include "bindings/c/send_queue.h"

using agent::client::SendQueue;

namespace {

constexpr size_t kFrame = 1000;

// Frame i: kFrame bytes, its index in the first 8, then a pattern of it.
std::string frame(uint64_t i) {
  std::string f(kFrame, static_cast<char>('a' + i % 26));
  std::memcpy(&f[0], &i, sizeof i);
  return f;
}

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) == 0); }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  void close_reader() {
    ::close(fd[1]);
    fd[1] = -1;
  }
};

// Reads n frames from fd and checks that they are frames 0..n-1 in order; the count read in
// order.
uint64_t read_frames(int fd, uint64_t n) {
  std::string f(kFrame, '\0');
  for (uint64_t i = 0; i < n; ++i) {
    size_t got = 0;
    while (got < kFrame) {
      ssize_t r = ::read(fd, &f[got], kFrame - got);
      if (r <= 0) return i;
      got += static_cast<size_t>(r);
    }
    if (f != frame(i)) return i;
  }
  return n;
}

}  // namespace

TEST_CASE("a send queue writes at once while the socket takes bytes, queues while it is busy, "
          "and keeps the order", "[sendqueue]") {
  Pair p;
  SendQueue q(p.fd[0], 64 * 1024);
  // Nobody reads: the socket fills, and then the queue takes the rest without the caller
  // waiting, up to its bound.
  uint64_t sent = 0;
  while (q.queued_bytes() == 0 && sent < 100000) REQUIRE(q.submit(frame(sent++)) == AGENT_OK);
  REQUIRE(q.queued_bytes() > 0);
  CHECK(q.writer_started());
  uint64_t written_at_once = sent - 1;  // all but the last went straight to the socket
  CHECK(written_at_once > 0);
  while (q.queued_bytes() + kFrame <= 64 * 1024) REQUIRE(q.submit(frame(sent++)) == AGENT_OK);
  CHECK(q.queued_bytes() <= 64 * 1024);

  // The queue is full: the next submit waits until the writer has made room.
  std::atomic<bool> returned{false};
  std::thread late([&] {
    CHECK(q.submit(frame(sent)) == AGENT_OK);
    returned = true;
  });
  // Not a condition to await but its absence: it must not return while nobody reads.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK_FALSE(returned.load());
  uint64_t total = sent + 1;
  uint64_t in_order = 0;
  std::thread reader([&] { in_order = read_frames(p.fd[1], total); });
  late.join();
  CHECK(returned.load());
  CHECK(q.drain(10000) == AGENT_OK);
  CHECK(q.queued_bytes() == 0);
  reader.join();
  CHECK(in_order == total);
}

TEST_CASE("a frame larger than the send queue's bound goes alone, whole", "[sendqueue]") {
  Pair p;
  SendQueue q(p.fd[0], 16 * 1024);
  std::string big;
  for (uint64_t i = 0; i < 2048; ++i) big += frame(i);  // 2 MB: more than socket and bound
  uint64_t in_order = 0;
  std::thread reader([&] { in_order = read_frames(p.fd[1], 2049); });
  REQUIRE(q.submit(big) == AGENT_OK);
  REQUIRE(q.submit(frame(2048)) == AGENT_OK);
  CHECK(q.drain(10000) == AGENT_OK);
  reader.join();
  CHECK(in_order == 2049);
}

TEST_CASE("a send queue whose socket breaks says so to the next caller and to drain",
          "[sendqueue]") {
  Pair p;
  SendQueue q(p.fd[0], 64 * 1024);
  uint64_t sent = 0;
  while (q.queued_bytes() == 0 && sent < 100000) REQUIRE(q.submit(frame(sent++)) == AGENT_OK);
  REQUIRE(q.queued_bytes() > 0);
  p.close_reader();  // the daemon is gone, with bytes still queued here
  CHECK(q.drain(10000) == AGENT_ERR_CLOSED);
  CHECK(q.failed());
  CHECK(q.submit(frame(sent)) == AGENT_ERR_CLOSED);
  CHECK(q.queued_bytes() == 0);
}

TEST_CASE("a send queue with nothing to wait for starts no thread", "[sendqueue]") {
  Pair p;
  SendQueue q(p.fd[0]);
  REQUIRE(q.submit(frame(0)) == AGENT_OK);
  CHECK_FALSE(q.writer_started());
  CHECK(q.drain(0) == AGENT_OK);
  CHECK(read_frames(p.fd[1], 1) == 1);
}

TEST_CASE("a forked child that exits does not wait for its parent's send queues", "[sendqueue]") {
  // The child has a copy of the queued bytes but no writer thread: waiting for them at exit
  // would take the whole AGENT_DISCONNECT_WAIT_MS, and write nothing.
  Pair p;
  SendQueue q(p.fd[0], 64 * 1024);
  uint64_t sent = 0;
  while (q.queued_bytes() == 0 && sent < 100000) REQUIRE(q.submit(frame(sent++)) == AGENT_OK);
  REQUIRE(q.queued_bytes() > 0);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) std::exit(0);  // runs the exit handlers, as a program's exit does
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(WIFEXITED(status));
  CHECK(waited < std::chrono::milliseconds(AGENT_DISCONNECT_WAIT_MS / 2));
  p.close_reader();  // the parent's writer gives up; the queue reports it
  CHECK(q.drain(10000) == AGENT_ERR_CLOSED);
}
