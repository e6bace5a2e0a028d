// The send side of a connection: frames go to the socket in the order given, and a caller does
// not wait for a busy socket. While the socket takes bytes, submit writes them at once (the
// caller's system call, as before). When it is full, what it did not take is queued in the
// library, and a writer thread (started then) writes the queue as the daemon reads; callers
// append to the queue meanwhile without a system call, so a program that sends one message per
// call gets its messages written many per system call exactly when the daemon is behind.
//
// Nothing submitted is lost short of the process being killed: drain() (agent_disconnect)
// writes the queue first, and at exit() every queue is written (up to AGENT_DISCONNECT_WAIT_MS
// in all; a forked child that exits leaves its parent's queues to the parent, whose writers
// they are). A write that fails closes the queue: the next submit says so (AGENT_ERR_CLOSED).
// Bounded: at most max_queued_bytes wait (or one frame larger than that, alone); a caller that
// finds the queue full waits, as it would for a full socket.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace agent::client {

class SendQueue {
 public:
  static constexpr size_t kDefaultMaxQueuedBytes = 256 * 1024;

  explicit SendQueue(int fd, size_t max_queued_bytes = kDefaultMaxQueuedBytes);
  ~SendQueue();  // stops the writer; what is still queued is dropped (drain first)
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  // AGENT_OK when the bytes are written or queued; AGENT_ERR_CLOSED after a failed write.
  int submit(std::string_view bytes);
  // Waits until everything submitted is written: AGENT_OK, AGENT_ERR_CLOSED (a write failed),
  // or AGENT_ERR_TIMEOUT (timeout_ms < 0: no limit).
  int drain(int timeout_ms);
  // Marks the queue failed (the socket is being shut down): nothing more is written.
  void fail();
  bool failed() const;
  size_t queued_bytes() const;  // waiting for the writer, including what it is writing
  bool writer_started() const;

 private:
  void writer_loop();

  const int fd_;
  const size_t max_queued_bytes_;
  mutable std::mutex mu_;
  std::condition_variable wake_writer_, progress_;
  std::string queue_;       // bytes for the writer, after the ones it is writing
  size_t writing_ = 0;      // bytes the writer took and has not finished
  bool failed_ = false;
  bool stop_ = false;
  std::thread writer_;
};

}  // namespace agent::client
