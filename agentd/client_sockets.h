// The clients' sockets: reads and writes the connections the broker accepted, without CAF's
// buffers, for the daemon core (as its ClientIo).
//
// CAF accepts a connection and names it; its socket is then read here: an epoll set of this
// class's own holds every connection that is read, and its descriptor sits in CAF's
// multiplexer like the ring's socket. A readable connection is read into one buffer of this
// class's, whose bytes go to the core as they are.
//
// Writes are collected per connection and flushed once per handled event. A connection with
// nothing queued gets its batch straight to the socket, with sendmsg() over the pieces: frame
// heads copied here and payloads from where they lie (send_view: the ring's packets, shared by
// every recipient); what the socket does not take is copied into a queue here and written
// with writev() when the socket is writable again. Writability comes from a second epoll set
// of this class's (CAF 0.17 takes one handler per socket). Bytes leave in the order sent; the
// core learns after every write how many bytes a connection still has queued (slow clients).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/io/broker.hpp>

#include "agentd/caf_adapter.h"
#include "agentd/client_hub.h"

namespace agent::daemon {

class ClientSockets : public ClientIo {
 public:
  using Sent = std::function<void(ConnId, uint64_t queued)>;
  using Input = std::function<void(ConnId, const char* data, size_t size)>;
  using Closed = std::function<void(ConnId)>;
  // sent: after every write, what a connection still has queued. input: bytes read from a
  // connection. closed: a connection ended (the peer closed it, or it failed); it is gone.
  ClientSockets(caf::io::broker* self, uint32_t socket_buffer, Sent sent, Input input,
                Closed closed);

  // Hooks the writability and readability sets into the multiplexer; "" on success. ready is
  // called whenever some connection is readable; it calls read_input(). written, when given,
  // after the queues that became writable were written (sent reported for each).
  std::string start(std::function<void()> ready, std::function<void()> written = {});
  void stop();
  // Reads every readable connection (a bounded amount each), handing the bytes to input and
  // reporting ends to closed.
  void read_input();
  // A connection the broker accepted: read from now on (while reading is on).
  ConnId add(caf::io::connection_handle h);
  // CAF says the connection is gone: forget its queue.
  void remove(ConnId id);

  void send(ConnId id, std::string_view bytes) override;
  void send(ConnId id, std::string_view head, std::string_view tail) override;
  void send_view(ConnId id, std::string_view head, std::string_view tail) override;
  // Closes once what is queued has gone out.
  void close(ConnId id) override;
  // Stops reading it, lets the queue go out, and cuts the connection if it is still open
  // after a grace period (the broker's abort message).
  void abort(ConnId id) override;
  // Sends every connection's batch.
  void flush();
  // Stops or resumes reading from every client (back-pressure from the ring).
  void set_reading(bool on);
  // Writes what can be written of every queue now, without waiting (at shutdown).
  void drain_now();

 private:
  // A piece of a connection's batch: bytes [off, off + len) of Conn::batch, or a view.
  struct Piece {
    const char* view;  // nullptr: in the batch
    size_t off;
    size_t len;
    const char* data(const std::string& batch) const { return view ? view : batch.data() + off; }
  };
  struct Conn {
    caf::io::connection_handle handle;
    std::string batch;             // this event's copied bytes (frames, frame heads)
    std::vector<Piece> pieces;     // this event's output in order, not yet handed on
    size_t batch_bytes = 0;        // bytes in pieces
    std::deque<std::string> queue;  // batches the socket did not take yet, in order
    size_t head_written = 0;        // bytes of queue.front() already written
    uint64_t queued = 0;            // bytes in queue not yet written
    bool watched = false;           // in the writability set
    bool reading = false;           // in the readability set
    bool closing = false;           // close once the queue is empty
    bool broken = false;            // a write failed: discard; the read side reports the end
  };
  using Iter = std::unordered_map<ConnId, Conn>::iterator;
  static constexpr size_t kKeptBatchBytes = 1 << 20;
  static constexpr size_t kIov = 256;  // pieces per sendmsg (the kernel takes up to 1024)
  // One read's most; a connection is read at most kReadsPerEvent times per readable event,
  // so that one busy client does not hold up the others.
  static constexpr size_t kReadBytes = 64 * 1024;
  static constexpr int kReadsPerEvent = 4;

  Conn* batch_of(ConnId id);
  static void copy_in(Conn& c, std::string_view bytes);
  static void clear_batch(Conn& c);
  static ssize_t write_some(ConnId id, iovec* iov, size_t n);
  void flush_one(ConnId id, Conn& c);
  void write_queue(ConnId id, Conn& c);
  void on_writable();
  void read_one(ConnId id);
  void watch_input(ConnId id, Conn& c, bool on);
  void watch(ConnId id, Conn& c, bool on);
  void fail(ConnId id, Conn& c);
  void finish_if_done(Iter it);
  void drop(Iter it);
  static void release_memory(uint64_t freed_bytes);

  caf::io::broker* self_;
  int socket_buffer_;  // SO_SNDBUF of every connection; 0: the system's default
  Sent sent_;
  Input input_;
  Closed closed_;
  Watch* hook_ = nullptr;  // writability
  std::function<void()> written_;
  int epoll_fd_ = -1;
  Watch* in_hook_ = nullptr;  // readability
  int in_fd_ = -1;
  std::unique_ptr<char[]> in_buf_;
  bool reading_ = true;  // set_reading
  std::unordered_map<ConnId, Conn> conns_;
  std::vector<ConnId> dirty_;
  std::vector<ConnId> flushing_;
};

// The broker's message that cuts an aborted connection still open after its grace period.
using abort_atom = caf::atom_constant<caf::atom("abort")>;

}  // namespace agent::daemon
