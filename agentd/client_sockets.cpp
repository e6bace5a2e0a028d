#include "agentd/client_sockets.h"

#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace agent::daemon {

ClientSockets::ClientSockets(caf::io::broker* self, uint32_t socket_buffer, Sent sent,
                             Input input, Closed closed)
    : self_(self),
      socket_buffer_(static_cast<int>(socket_buffer)),
      sent_(std::move(sent)),
      input_(std::move(input)),
      closed_(std::move(closed)) {}

std::string ClientSockets::start(std::function<void()> ready, std::function<void()> written) {
  written_ = std::move(written);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return std::string("epoll_create1: ") + std::strerror(errno);
  int in = ::epoll_create1(EPOLL_CLOEXEC);
  if (in < 0) {
    ::close(ep);
    return std::string("epoll_create1: ") + std::strerror(errno);
  }
  hook_ = watch_readable(self_, ep, [this] { on_writable(); });
  epoll_fd_ = ep;
  in_hook_ = watch_readable(self_, in, std::move(ready));
  in_fd_ = in;
  in_buf_.reset(new char[kReadBytes]);
  return {};
}

void ClientSockets::stop() {
  unwatch(hook_);
  unwatch(in_hook_);
  epoll_fd_ = in_fd_ = -1;
}

// Reads every readable connection (a bounded amount each), handing the bytes to input and
// reporting ends to closed.
void ClientSockets::read_input() {
  epoll_event ev[64];
  int n = ::epoll_wait(in_fd_, ev, 64, 0);
  for (int i = 0; i < n; ++i) read_one(static_cast<ConnId>(ev[i].data.fd));
}

ConnId ClientSockets::add(caf::io::connection_handle h) {
  ConnId id = static_cast<ConnId>(socket_of(h));
  Conn& c = conns_[id];
  c.handle = h;
  watch_input(id, c, reading_);
  if (socket_buffer_ > 0) {
    // CAF 0.17 names a connection by its socket. Beyond net.core.wmem_max only a privileged
    // daemon gets the size asked for; others get the system's cap.
    int fd = static_cast<int>(id);
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &socket_buffer_, sizeof socket_buffer_) != 0)
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &socket_buffer_, sizeof socket_buffer_);
  }
  return id;
}

// CAF says the connection is gone: forget its queue.
void ClientSockets::remove(ConnId id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  drop(it);
}

void ClientSockets::send(ConnId id, std::string_view bytes) {
  if (Conn* c = batch_of(id)) copy_in(*c, bytes);
}

void ClientSockets::send(ConnId id, std::string_view head, std::string_view tail) {
  if (Conn* c = batch_of(id)) {
    copy_in(*c, head);
    copy_in(*c, tail);
  }
}

void ClientSockets::send_view(ConnId id, std::string_view head, std::string_view tail) {
  if (Conn* c = batch_of(id)) {
    copy_in(*c, head);
    if (tail.empty()) return;
    c->pieces.push_back(Piece{tail.data(), 0, tail.size()});
    c->batch_bytes += tail.size();
  }
}

// Closes once what is queued has gone out (or the client is cut by abort's timer).
void ClientSockets::close(ConnId id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  flush_one(id, c);
  c.closing = true;
  watch_input(id, c, false);  // nothing more is read from it
  finish_if_done(it);
}

void ClientSockets::abort(ConnId id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  caf::io::connection_handle h = it->second.handle;
  // CAF 0.17 names a connection by its socket. Stop reading it (a Unix client blocked in
  // a write gets EPIPE instead of waiting for us), let the queue and the error go out, and
  // cut the connection for good if it is still open after the grace period.
  int fd = static_cast<int>(id);
  struct stat sb;
  if (::fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode)) ::shutdown(fd, SHUT_RD);
  close(id);
  if (conns_.count(id))
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self_), std::chrono::seconds(2),
                           abort_atom::value, h);
}

// Sends every connection's batch.
void ClientSockets::flush() {
  flushing_.swap(dirty_);  // finish_if_done may erase from dirty_ while this runs
  for (ConnId id : flushing_) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    flush_one(id, it->second);
    finish_if_done(it);
  }
  flushing_.clear();  // both lists keep their capacity: no allocation per event
}

// Stops or resumes reading from every client (back-pressure from the ring).
void ClientSockets::set_reading(bool on) {
  reading_ = on;
  for (auto& [id, c] : conns_)
    if (!c.closing) watch_input(id, c, on);
}

// Writes what can be written of every queue now, without waiting (at shutdown).
void ClientSockets::drain_now() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto next = std::next(it);
    write_queue(it->first, it->second);
    finish_if_done(it);
    it = next;
  }
}

// A piece of a connection's batch: bytes [off, off + len) of Conn::batch, or a view.
// One read's most; a connection is read at most kReadsPerEvent times per readable event,
// so that one busy client does not hold up the others.
// The connection's batch to add to, or null (gone, or a write failed).
ClientSockets::Conn* ClientSockets::batch_of(ConnId id) {
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second.broken) return nullptr;
  Conn& c = it->second;
  if (c.pieces.empty()) dirty_.push_back(id);
  return &c;
}

void ClientSockets::copy_in(Conn& c, std::string_view bytes) {
  if (bytes.empty()) return;
  size_t off = c.batch.size();
  c.batch.append(bytes.data(), bytes.size());
  c.batch_bytes += bytes.size();
  Piece* last = c.pieces.empty() ? nullptr : &c.pieces.back();
  if (last && !last->view && last->off + last->len == off)
    last->len += bytes.size();  // follows the previous copied piece: one piece
  else
    c.pieces.push_back(Piece{nullptr, off, bytes.size()});
}

void ClientSockets::clear_batch(Conn& c) {
  c.pieces.clear();
  c.batch_bytes = 0;
  c.batch.clear();
  if (c.batch.capacity() > kKeptBatchBytes) std::string().swap(c.batch);
}

// Writes what the socket takes of iov[0..n) now, without waiting: the bytes written (0 when
// the socket is full), or -1 when the write failed.
ssize_t ClientSockets::write_some(ConnId id, iovec* iov, size_t n) {
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = n;
  for (;;) {
    ssize_t w = ::sendmsg(static_cast<int>(id), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w >= 0) return w;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
}

void ClientSockets::flush_one(ConnId id, Conn& c) {
  if (c.pieces.empty()) return;
  if (c.broken) {
    clear_batch(c);
    return;
  }
  size_t done = 0;  // bytes of the batch the socket took
  if (c.queue.empty()) {
    for (size_t i = 0; i < c.pieces.size();) {
      iovec iov[kIov];
      size_t n = 0, want = 0;
      for (; i + n < c.pieces.size() && n < kIov; ++n) {
        const Piece& p = c.pieces[i + n];
        iov[n] = {const_cast<char*>(p.data(c.batch)), p.len};
        want += p.len;
      }
      ssize_t w = write_some(id, iov, n);
      if (w < 0) {
        fail(id, c);
        return;
      }
      done += static_cast<size_t>(w);
      if (static_cast<size_t>(w) < want) break;
      i += n;
    }
  }
  if (done < c.batch_bytes) {
    // The rest is copied (views into packets are not kept past the flush).
    std::string rest;
    rest.reserve(c.batch_bytes - done);
    size_t skip = done;
    for (const Piece& p : c.pieces) {
      if (skip >= p.len) {
        skip -= p.len;
        continue;
      }
      rest.append(p.data(c.batch) + skip, p.len - skip);
      skip = 0;
    }
    if (c.queue.empty()) c.head_written = 0;
    c.queued += rest.size();
    c.queue.push_back(std::move(rest));
    watch(id, c, true);
  }
  clear_batch(c);
  sent_(id, c.queued);
}

// Writes as much of the queue as the socket takes.
void ClientSockets::write_queue(ConnId id, Conn& c) {
  for (int round = 0; round < 16 && !c.queue.empty() && !c.broken; ++round) {
    iovec iov[kIov];
    size_t n = 0;
    for (auto q = c.queue.begin(); q != c.queue.end() && n < kIov; ++q, ++n) {
      size_t skip = n == 0 ? c.head_written : 0;
      iov[n] = {const_cast<char*>(q->data()) + skip, q->size() - skip};
    }
    ssize_t w = write_some(id, iov, n);
    if (w < 0) {
      fail(id, c);
      break;
    }
    if (w == 0) break;  // the socket is full
    size_t left = static_cast<size_t>(w);
    c.queued -= left;
    while (left > 0) {
      size_t rest = c.queue.front().size() - c.head_written;
      if (left < rest) {
        c.head_written += left;
        left = 0;
      } else {
        left -= rest;
        c.queue.pop_front();
        c.head_written = 0;
      }
    }
  }
  if (c.queue.empty()) watch(id, c, false);
  sent_(id, c.queued);
}

void ClientSockets::on_writable() {
  epoll_event ev[64];
  int n = ::epoll_wait(epoll_fd_, ev, 64, 0);
  for (int i = 0; i < n; ++i) {
    auto it = conns_.find(static_cast<ConnId>(ev[i].data.fd));
    if (it == conns_.end()) continue;
    write_queue(it->first, it->second);
    finish_if_done(it);
  }
  if (n > 0 && written_) written_();
}

void ClientSockets::read_one(ConnId id) {
  int fd = static_cast<int>(id);
  for (int round = 0; round < kReadsPerEvent; ++round) {
    // The hub may have closed the connection or paused reading while handling the last bytes.
    auto it = conns_.find(id);
    if (it == conns_.end() || !it->second.reading) return;
    ssize_t n = ::recv(fd, in_buf_.get(), kReadBytes, MSG_DONTWAIT);
    if (n > 0) {
      input_(id, in_buf_.get(), static_cast<size_t>(n));
      if (static_cast<size_t>(n) < kReadBytes) return;  // emptied the socket
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // The end, or an error (ECONNRESET): the client is gone. The hub forgets it first (so
    // its name is free before the socket number can be reused), then CAF frees the socket.
    closed_(id);
    it = conns_.find(id);
    if (it == conns_.end()) return;
    caf::io::connection_handle h = it->second.handle;
    drop(it);
    self_->close(h);
    return;
  }
}

void ClientSockets::watch_input(ConnId id, Conn& c, bool on) {
  if (c.reading == on || in_fd_ < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = static_cast<int>(id);
  ::epoll_ctl(in_fd_, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, static_cast<int>(id), &ev);
  c.reading = on;
}

void ClientSockets::watch(ConnId id, Conn& c, bool on) {
  if (c.watched == on || epoll_fd_ < 0) return;
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.fd = static_cast<int>(id);
  ::epoll_ctl(epoll_fd_, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, static_cast<int>(id), &ev);
  c.watched = on;
}

// A write failed (the client is gone, or stopped reading for good): nothing more goes to
// it. Shutting the socket down makes the read side (read_one) see the end and report the
// closed connection (the hub then orders the member's disconnect); the descriptor stays
// open until then, so its number is not reused meanwhile.
// A connection already closing is closed by the caller once its queue is empty.
void ClientSockets::fail(ConnId id, Conn& c) {
  if (!c.closing) ::shutdown(static_cast<int>(id), SHUT_RDWR);
  c.broken = true;
  clear_batch(c);
  uint64_t freed = c.queued;
  c.queue.clear();
  c.queued = 0;
  c.head_written = 0;
  watch(id, c, false);
  release_memory(freed);
}

// main() keeps freed memory in the process (the next burst needs it again); a large queue
// of a client that is gone goes back to the system.
void ClientSockets::release_memory(uint64_t freed_bytes) {
  constexpr uint64_t kTrimBytes = 16u << 20;
  if (freed_bytes >= kTrimBytes) ::malloc_trim(0);
}

void ClientSockets::finish_if_done(Iter it) {
  Conn& c = it->second;
  if (!c.closing || !c.queue.empty()) return;
  caf::io::connection_handle h = c.handle;
  drop(it);
  self_->close(h);
}

void ClientSockets::drop(Iter it) {
  watch(it->first, it->second, false);
  watch_input(it->first, it->second, false);
  dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), it->first), dirty_.end());
  uint64_t freed = it->second.queued + it->second.batch.capacity();
  conns_.erase(it);
  release_memory(freed);
}

}  // namespace agent::daemon
