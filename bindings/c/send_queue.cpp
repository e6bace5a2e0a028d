#include "send_queue.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <set>

#include "agent.h"

namespace agent::client {
namespace {

using Clock = std::chrono::steady_clock;

// Every queue alive, so that exit() can write what they hold: a program that sends and
// returns from main without agent_disconnect loses nothing that a call accepted. Never
// destroyed (queues may outlive static destruction).
struct Registry {
  std::mutex mu;
  std::set<SendQueue*> live;
  pid_t pid = ::getpid();  // a forked child has the queues' bytes but not their writers
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

void drain_all_at_exit() {
  Registry& r = registry();
  if (::getpid() != r.pid) return;  // a forked child exiting: its parent writes its queues
  std::lock_guard<std::mutex> lock(r.mu);  // no queue is destroyed meanwhile
  auto deadline = Clock::now() + std::chrono::milliseconds(AGENT_DISCONNECT_WAIT_MS);
  for (SendQueue* q : r.live) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return;
    q->drain(static_cast<int>(left.count()));
  }
}

}  // namespace

SendQueue::SendQueue(int fd, size_t max_queued_bytes) : fd_(fd), max_queued_bytes_(max_queued_bytes) {
  static bool hooked = (std::atexit(drain_all_at_exit), true);
  (void)hooked;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.live.insert(this);
}

SendQueue::~SendQueue() {
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.live.erase(this);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    // A writer still in send() (not drained: the daemon stopped reading) is woken by ending
    // the connection's send side; the connection is being closed anyway.
    if (writing_ > 0) ::shutdown(fd_, SHUT_WR);
  }
  wake_writer_.notify_all();
  if (writer_.joinable()) writer_.join();
}

int SendQueue::submit(std::string_view b) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failed_) return AGENT_ERR_CLOSED;
  size_t done = 0;
  if (queue_.empty() && writing_ == 0) {
    // Nothing queued: the socket takes what it has room for, now, without waiting.
    while (done < b.size()) {
      ssize_t n = ::send(fd_, b.data() + done, b.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        failed_ = true;
        progress_.notify_all();
        return AGENT_ERR_CLOSED;
      }
    }
    if (done == b.size()) return AGENT_OK;
  }
  // The socket is busy: the rest waits for the writer. A full queue makes the caller wait, as
  // a full socket would; a frame larger than the bound waits until the queue is empty.
  size_t rest = b.size() - done;
  progress_.wait(lock, [&] {
    size_t queued = queue_.size() + writing_;
    return failed_ || queued == 0 || queued + rest <= max_queued_bytes_;
  });
  if (failed_) return AGENT_ERR_CLOSED;
  queue_.append(b.data() + done, rest);
  if (!writer_.joinable()) writer_ = std::thread([this] { writer_loop(); });
  wake_writer_.notify_one();
  return AGENT_OK;
}

void SendQueue::writer_loop() {
  std::string w;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_writer_.wait(lock, [&] { return stop_ || failed_ || !queue_.empty(); });
    if (failed_ || queue_.empty()) return;  // failed, or stopped with nothing left
    w.swap(queue_);  // callers append to the (cleared) buffer w had
    writing_ = w.size();
    lock.unlock();
    // The socket blocks for writes: send returns when the daemon has read enough.
    bool ok = true;
    size_t done = 0;
    while (done < w.size()) {
      ssize_t n = ::send(fd_, w.data() + done, w.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, -1);
      } else {
        ok = false;
        break;
      }
    }
    w.clear();
    if (w.capacity() > 4 * max_queued_bytes_) w.shrink_to_fit();  // after a large message
    lock.lock();
    writing_ = 0;
    if (!ok) {
      failed_ = true;
      queue_.clear();
    }
    progress_.notify_all();
  }
}

int SendQueue::drain(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto done = [&] { return failed_ || (queue_.empty() && writing_ == 0); };
  if (timeout_ms < 0) {
    progress_.wait(lock, done);
  } else if (!progress_.wait_for(lock, std::chrono::milliseconds(timeout_ms), done)) {
    return AGENT_ERR_TIMEOUT;
  }
  return failed_ ? AGENT_ERR_CLOSED : AGENT_OK;
}

void SendQueue::fail() {
  std::lock_guard<std::mutex> lock(mu_);
  failed_ = true;
  queue_.clear();
  progress_.notify_all();
  wake_writer_.notify_all();
}

bool SendQueue::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

size_t SendQueue::queued_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() + writing_;
}

bool SendQueue::writer_started() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writer_.joinable();
}

}  // namespace agent::client
