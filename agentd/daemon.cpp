#include "agentd/daemon.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include <algorithm>
#include <chrono>
#include <deque>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include <caf/io/all.hpp>

#include "agentd/client_hub.h"
#include "agentd/log.h"
#include "agentd/ring_link.h"
#include "groups/event_codec.h"
#include "membership/ring.h"
#include "persist/incarnation.h"
#include "transport/ring_wire.h"
#include "transport/udp_socket.h"

namespace agent::daemon {

using caf::io::connection_handle;
using membership::NodeId;
using membership::Time;

namespace {

using ring_timer_atom = caf::atom_constant<caf::atom("ringtimer")>;
using abort_atom = caf::atom_constant<caf::atom("abort")>;
constexpr Time kNever = std::numeric_limits<Time>::max();
constexpr uint32_t kAgreed = 0x10;

// The broker's I/O multiplexer, where the daemon hooks descriptors of its own (ReadableHook).
caf::io::network::default_multiplexer& multiplexer_of(caf::io::broker* self) {
  return static_cast<caf::io::network::default_multiplexer&>(self->system().middleman().backend());
}

// Watches fd (owned by the hook from now on) in the broker's multiplexer.
ReadableHook* watch_readable(caf::io::broker* self, int fd, std::function<void()> on_readable) {
  auto* h = new ReadableHook(multiplexer_of(self), fd, std::move(on_readable));
  h->start();
  return h;
}

// Stops watching (the hook deletes itself and closes its descriptor) and forgets the hook.
void unwatch(ReadableHook*& h) {
  if (h) h->stop();
  h = nullptr;
}

Time now_us() {
  return static_cast<Time>(std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count());
}

// Carries out the hub's reads and writes on the broker's connections, without CAF's buffers.
// CAF accepts a connection and names it; its socket is then read here: an epoll set of this
// class's own holds every connection that is read, and its descriptor sits in CAF's
// multiplexer like the ring's socket. A readable connection is read into one buffer of this
// class's, whose bytes go to the hub as they are (CAF's stream zero-filled its read buffer
// after every read and passed each read through the broker's mailbox machinery).
//
// Writes are collected per connection and flushed once per handled event. A connection with
// nothing queued gets its batch straight to the socket, with sendmsg() over the pieces: frame
// heads copied here and payloads from where they lie (send_view: the ring's packets, shared by
// every recipient); what the socket does not take is copied into a queue here and written
// with writev() when the socket is writable again. Writability comes from an epoll set of this
// class's own, whose descriptor sits in CAF's multiplexer like the ring's socket (CAF 0.17
// takes one handler per socket, and the connections' read side stays CAF's). Bytes leave in
// the order sent; the hub learns after every write how many bytes a connection still has
// queued (slow clients).
class BrokerIo final : public ClientIo {
 public:
  using Sent = std::function<void(ConnId, uint64_t queued)>;
  using Input = std::function<void(ConnId, const char* data, size_t size)>;
  using Closed = std::function<void(ConnId)>;
  // sent: after every write, what a connection still has queued. input: bytes read from a
  // connection. closed: a connection ended (the peer closed it, or it failed); it is gone.
  BrokerIo(caf::io::broker* self, uint32_t socket_buffer, Sent sent, Input input, Closed closed)
      : self_(self),
        socket_buffer_(static_cast<int>(socket_buffer)),
        sent_(std::move(sent)),
        input_(std::move(input)),
        closed_(std::move(closed)) {}

  // Hooks the writability and readability sets into the multiplexer; "" on success. ready is
  // called whenever some connection is readable; it calls read_input().
  std::string start(std::function<void()> ready) {
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
  void stop() {
    unwatch(hook_);
    unwatch(in_hook_);
    epoll_fd_ = in_fd_ = -1;
  }

  // Reads every readable connection (a bounded amount each), handing the bytes to input and
  // reporting ends to closed.
  void read_input() {
    epoll_event ev[64];
    int n = ::epoll_wait(in_fd_, ev, 64, 0);
    for (int i = 0; i < n; ++i) read_one(static_cast<ConnId>(ev[i].data.fd));
  }

  ConnId add(connection_handle h) {
    ConnId id = static_cast<ConnId>(h.id());
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
  void remove(ConnId id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    drop(it);
  }

  void send(ConnId id, std::string_view bytes) override {
    if (Conn* c = batch_of(id)) copy_in(*c, bytes);
  }
  void send(ConnId id, std::string_view head, std::string_view tail) override {
    if (Conn* c = batch_of(id)) {
      copy_in(*c, head);
      copy_in(*c, tail);
    }
  }
  void send_view(ConnId id, std::string_view head, std::string_view tail) override {
    if (Conn* c = batch_of(id)) {
      copy_in(*c, head);
      if (tail.empty()) return;
      c->pieces.push_back(Piece{tail.data(), 0, tail.size()});
      c->batch_bytes += tail.size();
    }
  }
  // Closes once what is queued has gone out (or the client is cut by abort's timer).
  void close(ConnId id) override {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    flush_one(id, c);
    c.closing = true;
    watch_input(id, c, false);  // nothing more is read from it
    finish_if_done(it);
  }
  void abort(ConnId id) override {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    connection_handle h = it->second.handle;
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
  void flush() {
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
  void set_reading(bool on) {
    reading_ = on;
    for (auto& [id, c] : conns_)
      if (!c.closing) watch_input(id, c, on);
  }
  // Writes what can be written of every queue now, without waiting (at shutdown).
  void drain_now() {
    for (auto it = conns_.begin(); it != conns_.end();) {
      auto next = std::next(it);
      write_queue(it->first, it->second);
      finish_if_done(it);
      it = next;
    }
  }

 private:
  // A piece of a connection's batch: bytes [off, off + len) of Conn::batch, or a view.
  struct Piece {
    const char* view;  // nullptr: in the batch
    size_t off;
    size_t len;
    const char* data(const std::string& batch) const { return view ? view : batch.data() + off; }
  };
  struct Conn {
    connection_handle handle;
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

  // The connection's batch to add to, or null (gone, or a write failed).
  Conn* batch_of(ConnId id) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.broken) return nullptr;
    Conn& c = it->second;
    if (c.pieces.empty()) dirty_.push_back(id);
    return &c;
  }

  static void copy_in(Conn& c, std::string_view bytes) {
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

  static void clear_batch(Conn& c) {
    c.pieces.clear();
    c.batch_bytes = 0;
    c.batch.clear();
    if (c.batch.capacity() > kKeptBatchBytes) std::string().swap(c.batch);
  }

  // Writes what the socket takes of iov[0..n) now, without waiting: the bytes written (0 when
  // the socket is full), or -1 when the write failed.
  static ssize_t write_some(ConnId id, iovec* iov, size_t n) {
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

  void flush_one(ConnId id, Conn& c) {
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
  void write_queue(ConnId id, Conn& c) {
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

  void on_writable() {
    epoll_event ev[64];
    int n = ::epoll_wait(epoll_fd_, ev, 64, 0);
    for (int i = 0; i < n; ++i) {
      auto it = conns_.find(static_cast<ConnId>(ev[i].data.fd));
      if (it == conns_.end()) continue;
      write_queue(it->first, it->second);
      finish_if_done(it);
    }
  }

  void read_one(ConnId id) {
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
      connection_handle h = it->second.handle;
      drop(it);
      self_->close(h);
      return;
    }
  }

  void watch_input(ConnId id, Conn& c, bool on) {
    if (c.reading == on || in_fd_ < 0) return;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = static_cast<int>(id);
    ::epoll_ctl(in_fd_, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, static_cast<int>(id), &ev);
    c.reading = on;
  }

  void watch(ConnId id, Conn& c, bool on) {
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
  void fail(ConnId id, Conn& c) {
    if (!c.closing) ::shutdown(static_cast<int>(id), SHUT_RDWR);
    c.broken = true;
    clear_batch(c);
    c.queue.clear();
    c.queued = 0;
    c.head_written = 0;
    watch(id, c, false);
  }

  void finish_if_done(Iter it) {
    Conn& c = it->second;
    if (!c.closing || !c.queue.empty()) return;
    connection_handle h = c.handle;
    drop(it);
    self_->close(h);
  }

  void drop(Iter it) {
    watch(it->first, it->second, false);
    watch_input(it->first, it->second, false);
    dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), it->first), dirty_.end());
    conns_.erase(it);
  }

  caf::io::broker* self_;
  int socket_buffer_;  // SO_SNDBUF of every connection; 0: the system's default
  Sent sent_;
  Input input_;
  Closed closed_;
  ReadableHook* hook_ = nullptr;  // writability
  int epoll_fd_ = -1;
  ReadableHook* in_hook_ = nullptr;  // readability
  int in_fd_ = -1;
  std::unique_ptr<char[]> in_buf_;
  bool reading_ = true;  // set_reading
  std::unordered_map<ConnId, Conn> conns_;
  std::vector<ConnId> dirty_;
  std::vector<ConnId> flushing_;
};

membership::RingConfig ring_config(const Config& cfg) {
  membership::RingConfig rc;
  const RingSettings& r = cfg.ring;
  if (r.daemons.empty())
    rc.members = {r.id};
  else
    for (auto& d : r.daemons) rc.members.push_back(d.id);
  rc.max_packet_bytes = r.packet_bytes;
  rc.global_window = r.global_window;
  rc.personal_window = r.personal_window;
  rc.accelerated_window = r.accelerated_window;
  rc.max_outstanding = r.max_outstanding;
  rc.max_pending_bytes = r.max_pending_bytes;
  rc.max_message_bytes = cfg.max_message_bytes + 4096;  // an encoded event: payload + names
  rc.token_retransmit_us = r.token_retransmit_us;
  rc.token_hold_us = token_hold_for(r);
  rc.min_rotation_us = r.min_rotation_us;
  rc.token_loss_us = r.token_loss_us;
  rc.join_timeout_us = r.join_timeout_us;
  rc.consensus_timeout_us = r.consensus_timeout_us;
  rc.incarnation = cfg.incarnation;
  rc.ring_seq_floor = cfg.ring_seq_floor;
  rc.store_ring_seq = [dir = cfg.state_dir](uint32_t seq) {
    auto err = persist::store_ring_seq(dir, seq);
    if (!err.empty()) AGENT_LOG(kError, "ring ids may repeat after a restart: " << err);
  };
  return rc;
}

// Everything the daemon actor owns. Lives as long as the actor's behavior.
struct DaemonState {
  DaemonState(caf::io::broker* s, Config c)
      : self(s),
        cfg(std::move(c)),
        io(s, cfg.client_socket_buffer_bytes,
           [this](ConnId id, uint64_t queued) { hub.on_sent(id, queued); },
           [this](ConnId id, const char* data, size_t size) { hub.on_bytes(id, data, size); },
           [this](ConnId id) { hub.on_closed(id); }),
        ring(cfg.ring.id, ring_config(cfg), now_us()),
        hub(cfg, io, [this](uint32_t service, std::string& ev) { submit(service, ev); }) {
  }

  // Opens the ring's UDP socket and resolves the peers; "" on success.
  std::string open_network() {
    if (cfg.ring.daemons.empty()) return {};
    for (auto& d : cfg.ring.daemons) {
      transport::UdpAddress a;
      auto err = transport::resolve_udp(d.address, d.port, a);
      if (!err.empty()) return "ring daemon " + std::to_string(d.id) + ": " + err;
      peers.emplace(d.id, a);
    }
    auto err = udp.open(peers.at(cfg.ring.id), 8u << 20, cfg.ring.udp_offload);
    if (!err.empty()) return err;
    if (!cfg.ring.multicast.host.empty()) {
      err = open_multicast();
      if (!err.empty()) return "ring.multicast: " + err;
    }
    hook = watch_readable(self, udp.disown(), [this] { on_readable(); });
    udp_fd = hook->fd();
    if (use_multicast) mcast_hook = watch_readable(self, mcast.disown(), [this] { on_readable(); });
    offload_on = udp.offloading();
    AGENT_LOG(kInfo, "ring: daemon " << cfg.ring.id << " on UDP "
                                     << peers.at(cfg.ring.id).to_string() << ", "
                                     << peers.size() << " daemons"
                                     << (use_multicast ? ", multicast " + group.to_string()
                                                       : std::string()));
    return {};
  }

  // Packets for every daemon go once to the group (from the ring's socket, so receivers know
  // the sender by its address); a second socket receives the group's packets.
  std::string open_multicast() {
    const auto& m = cfg.ring.multicast;
    auto err = transport::resolve_udp(m.host, m.port, group);
    if (!err.empty()) return err;
    if (!transport::is_ipv4_multicast(group))
      return group.to_string() + " is not an IPv4 multicast address (224.0.0.0/4)";
    const transport::UdpAddress& own = peers.at(cfg.ring.id);
    // Daemons on this same host (a test ring on one machine) hear the group only if it loops.
    bool loop = false;
    for (auto& [id, a] : peers)
      if (id != cfg.ring.id && same_host(a, own)) loop = true;
    err = udp.send_multicast_from(own, loop);
    if (!err.empty()) return err;
    err = mcast.open(group, 8u << 20, cfg.ring.udp_offload);
    if (!err.empty()) return err;
    err = mcast.join_multicast(group, own);
    if (!err.empty()) return err;
    use_multicast = true;
    return {};
  }

  static bool same_host(const transport::UdpAddress& a, const transport::UdpAddress& b) {
    if (a.addr.ss_family != AF_INET || b.addr.ss_family != AF_INET) return false;
    return reinterpret_cast<const sockaddr_in&>(a.addr).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b.addr).sin_addr.s_addr;
  }

  // Clients are readable: one clock reading for the messages of these reads.
  void on_client_input() {
    input_now = now_us();
    io.read_input();
    input_now = 0;
    drain();
  }

  // Takes event's bytes; leaves a spare buffer of the ring's in their place.
  void submit(uint32_t service, std::string& event) {
    std::string bytes = std::move(event);
    event = ring.spare_buffer();
    // ring.submit takes the bytes over only when it accepts them.
    Time now = input_now != 0 ? input_now : now_us();
    if (!backlog.empty() || !ring.submit(service, std::move(bytes), now)) {
      // The ring's queue is full: hold this one and stop reading clients until it drains.
      backlog.emplace_back(service, std::move(bytes));
      if (!throttled) {
        throttled = true;
        ++input_pauses;
        io.set_reading(false);
        AGENT_LOG(kDebug, "ring queue full: pausing client input");
      }
    }
    drain();
  }

  // Moves the ring's actions out: datagrams to peers, deliveries to the hub, warnings to the log.
  // Not re-entered: deliveries may cause submissions (a slow client's disconnect), whose
  // actions the loop picks up in order.
  void drain() {
    if (draining) return;
    draining = true;
    // A timeout that is due is handled here: the timer's, and one that another event meets
    // first (a paced token's visit goes with it, not with a wake-up later).
    if (Time now = now_us(); now >= ring.next_timeout()) ring.on_timeout(now);
    for (;;) {
      retry_backlog();
      ring.take_actions(actions);
      auto& a = actions;
      if (a.sends.empty() && a.deliveries.empty() && a.warnings.empty()) break;
      // The token and the data packets leave before the clients get their deliveries, so the
      // next daemon works while this one writes to its clients (and the token's round trip
      // does not grow with the local fan-out).
      for (auto& s : a.sends) send_datagram(s.to, s.view());
      if (udp_fd >= 0) flush_network();
      for (auto& w : a.warnings) AGENT_LOG(kWarn, "ring: " << w);
      for (auto& d : a.deliveries) {
        if (d.kind != membership::DeliveryKind::kMessage) {
          on_configuration(d);
          continue;
        }
        if (!hub.deliver_bytes(d.ordinal, d.payload, d.origin)) {
          ++bad_events;
          AGENT_LOG(kError, "ring delivered an undecodable group event from daemon " << d.origin
                                                                                   << "; skipped");
        }
        // The clients' batches view the payload: its packet lives until they are flushed.
        if (in_flight.empty() || in_flight.back() != d.payload_owner)
          in_flight.push_back(std::move(d.payload_owner));
      }
    }
    flush_clients();
    in_flight.clear();
    draining = false;
    arm_timer();
  }

  void flush_network() {
    udp.flush();
    if (offload_on && !udp.offloading()) {
      offload_on = false;
      AGENT_LOG(kWarn, "ring: UDP offload is off from now on (" << udp.offload_off_reason()
                                                              << "); packets go one by one");
    }
  }

  // Sends the clients' batches; the hub learns what each still has queued.
  void flush_clients() { io.flush(); }

  void on_configuration(const membership::Delivered& d) {
    std::string ids;
    for (auto m : d.members) ids += (ids.empty() ? "" : ",") + std::to_string(m);
    bool regular = d.kind == membership::DeliveryKind::kRegular;
    AGENT_LOG(kInfo, "ring: " << (regular ? "regular" : "transitional") << " configuration "
                              << (d.ring_id >> 32) << "." << (d.ring_id & 0xffffffff)
                              << " with daemons " << ids);
    // View ids are (ring, ordinal): the same at every daemon that delivers the same stream.
    if (!regular) {
      hub.on_transitional(d.ordinal, d.members, d.next_ring_id);
      return;
    }
    auto state = hub.on_regular(d.ordinal, d.ring_id, d.members);
    std::string bytes;
    groups::encode_event(bytes, state);
    if (!ring.submit(kAgreed, bytes, now_us()))
      backlog.emplace_front(kAgreed, std::move(bytes));  // first in line once there is room
  }

  void retry_backlog() {
    while (!backlog.empty() &&
           ring.submit(backlog.front().first, std::move(backlog.front().second), now_us()))
      backlog.pop_front();
    if (backlog.empty() && throttled) {
      throttled = false;
      io.set_reading(true);
    }
  }

  // Queues without copying: bytes must live until udp.flush().
  void send_datagram(NodeId to, std::string_view bytes) {
    if (udp_fd < 0) return;  // a ring of one has no one to send to
    // A datagram to one daemon (the token, a commit) leaves after every packet queued before
    // it: the token must not overtake the packets it announces.
    if (to != membership::kAllDaemons && to != membership::kBroadcast) udp.barrier();
    if (use_multicast && (to == membership::kAllDaemons || to == membership::kBroadcast)) {
      // Daemons outside the ring hear it too; to them it is a foreign ring's packet, which
      // is how they learn of it (as with joins).
      udp.queue_view(group, bytes);
    } else if (to == membership::kAllDaemons) {
      for (auto& [id, addr] : peers)
        if (id != cfg.ring.id) udp.queue_view(addr, bytes);
    } else if (to == membership::kBroadcast) {
      for (auto id : ring.members())
        if (id != cfg.ring.id) udp.queue_view(peers.at(id), bytes);
    } else if (auto it = peers.find(to); it != peers.end()) {
      udp.queue_view(it->second, bytes);
    }
  }

  // Either ring socket is readable: reads both, the group's first (with multicast, data
  // packets come by the group and the token by the unicast socket).
  void on_readable() {
    // Bounded work per wake-up so clients get their turn.
    for (int batch = 0; batch < 8; ++batch) {
      // A token read in the same batch as data packets is handled after them: the packets it
      // announces may be right behind it (they left other daemons before the token, but paths
      // through the network reorder), and handling it first would ask for them again.
      tokens.clear();
      // The unicast socket is read once the group's is empty: the token is not handled before
      // data packets that had arrived before it.
      size_t from_group = use_multicast ? read_batch(mcast) : 0;
      size_t from_peers = from_group < transport::UdpSocket::kBatch ? read_batch(udp) : 0;
      if (from_group + from_peers == 0) break;
      for (auto& [sender, bytes] : tokens) ring.on_packet(sender, bytes, now_us());
      drain();
      // Short batches emptied the sockets; the multiplexer (level-triggered) calls again if
      // more arrives. Saves reads that would find nothing.
      if (from_group < transport::UdpSocket::kBatch && from_peers < transport::UdpSocket::kBatch)
        return;
    }
    drain();
  }

  // Reads one batch; the tokens in it wait in `tokens` (their bytes stay valid until the
  // socket's next read).
  size_t read_batch(transport::UdpSocket& socket) {
    Time now = now_us();
    return socket.receive([&](const transport::UdpAddress& from, std::string_view bytes) {
      // The sender is whoever lives at the source address; the ring checks the rest.
      NodeId sender = 0;
      for (auto& [id, addr] : peers)
        if (addr == from) sender = id;
      if (sender == cfg.ring.id) return;  // its own multicast, looped back on this host
      if (sender == 0) {
        ++bad_datagrams;  // not from a configured daemon
        return;
      }
      auto h = ringwire::decode_header(bytes);
      if (h && h->type == ringwire::Type::kToken)
        tokens.emplace_back(sender, bytes);
      else if (h && h->type == ringwire::Type::kData)
        ring.on_packet(sender, bytes, now, socket.keep());  // kept in place, not copied
      else
        ring.on_packet(sender, bytes, now);
    });
  }

  // The ring's timer: a timerfd in the multiplexer (one wake-up when it fires, none to arm it
  // again); CAF's delayed messages (a clock thread and a mailbox hop) where it cannot be had.
  std::string open_timer() {
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return std::string("timerfd_create: ") + std::strerror(errno);
    timer_hook = watch_readable(self, fd, [this] { on_timer_fd(); });
    timer_fd = fd;
    return {};
  }
  void close_timer() {
    unwatch(timer_hook);
    timer_fd = -1;
  }

  // The timer fired: drain() handles the ring's timeout that is due.
  void on_timer_fd() {
    uint64_t expirations;
    while (::read(timer_fd, &expirations, sizeof expirations) > 0) {
    }
    timer_at = kNever;
    drain();
  }

  void arm_timer() {
    Time next = ring.next_timeout();
    if (next == kNever || next >= timer_at) return;
    timer_at = next;
    if (timer_fd >= 0) {
      // now_us() is CLOCK_MONOTONIC (steady_clock): the timer takes the ring's times as they are.
      itimerspec its{};
      its.it_value.tv_sec = static_cast<time_t>(next / 1000000);
      its.it_value.tv_nsec = static_cast<long>(next % 1000000) * 1000 + 1;  // never 0 (disarms)
      if (::timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, nullptr) == 0) return;
      AGENT_LOG(kWarn, "timerfd_settime: " << std::strerror(errno) << "; using CAF's timers");
      close_timer();
    }
    Time now = now_us();
    auto delay = std::chrono::microseconds(next > now ? next - now : 0);
    // Anonymous: a timer message pending at exit must not hold the broker (a reference cycle).
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), delay, ring_timer_atom::value,
                           static_cast<uint64_t>(next));
  }

  void on_timer(uint64_t target) {
    if (target == timer_at) timer_at = kNever;
    drain();
  }

  void shutdown() {
    const auto& rs = ring.stats();
    const auto& hs = hub.stats();
    AGENT_LOG(kInfo, "totals: ring packets sent " << rs.packets_sent << ", retransmitted "
                         << rs.packets_retransmitted << ", duplicates " << rs.duplicate_packets
                         << "; tokens " << rs.tokens_received << ", retransmitted "
                         << rs.tokens_retransmitted << ", held " << rs.held_tokens
                         << ", wakes sent " << rs.wakes_sent << ", visits paced " << rs.paced_tokens
                         << "; configuration changes " << rs.gathers << "; messages ordered "
                         << rs.messages_delivered << ", handed to clients "
                         << hs.messages_delivered << "; bad datagrams "
                         << bad_datagrams + rs.bad_packets << ", bad client frames "
                         << hs.bad_frames << ", slow clients dropped "
                         << hs.slow_clients_dropped << ", client input paused "
                         << input_pauses << " times; datagrams dropped on send "
                         << udp.send_drops() << ", refused " << udp.send_errors()
                         << "; offloaded sends " << udp.offloaded_sends() << " carrying "
                         << udp.offloaded_datagrams() << " datagrams");
    hub.shutdown();
    io.flush();
    io.drain_now();  // what the sockets take now; the rest is lost with the daemon
    io.stop();
    // Leave the ring: the others reform without this daemon at once.
    if (udp_fd >= 0) {
      ring.leave(now_us());
      auto a = ring.take_actions();  // the datagrams are queued as views: keep them until sent
      for (auto& s : a.sends) send_datagram(s.to, s.view());
      udp.flush();
    }
    unwatch(hook);
    unwatch(mcast_hook);
    udp_fd = -1;
    close_timer();
  }

  caf::io::broker* self;
  Config cfg;
  BrokerIo io;
  membership::Ring ring;
  ClientHub hub;
  std::unordered_map<NodeId, transport::UdpAddress> peers;
  transport::UdpSocket udp;       // the ring's socket; the hook owns (and closes) its fd
  ReadableHook* hook = nullptr;
  bool use_multicast = false;
  transport::UdpAddress group;    // ring.multicast, when used
  transport::UdpSocket mcast;     // bound to the group; mcast_hook owns its fd
  ReadableHook* mcast_hook = nullptr;
  int udp_fd = -1;
  bool offload_on = false;
  std::vector<std::pair<NodeId, std::string_view>> tokens;  // of the batch being read
  membership::Actions actions;  // drain's, kept for the lists' capacity
  std::deque<std::pair<uint32_t, std::string>> backlog;
  Time input_now = 0;  // while a client's read is handled: when it was read
  std::vector<membership::Owner> in_flight;  // delivered, not yet flushed
  bool throttled = false;
  uint64_t input_pauses = 0;  // times the ring's full queue paused client input
  bool draining = false;
  Time timer_at = kNever;        // the timer is armed for then
  ReadableHook* timer_hook = nullptr;  // owns timer_fd
  int timer_fd = -1;
  uint64_t bad_datagrams = 0;
  uint64_t bad_events = 0;
};

}  // namespace

caf::behavior daemon_actor(caf::io::broker* self, Config cfg, int unix_fd, int tcp_fd) {
  auto st = std::make_shared<DaemonState>(self, std::move(cfg));
  if (auto err = st->io.start([st] { st->on_client_input(); }); !err.empty()) {
    AGENT_LOG(kError, "client I/O: " << err);
    self->quit(caf::exit_reason::user_shutdown);
    return {};
  }
  if (auto err = st->open_timer(); !err.empty()) AGENT_LOG(kWarn, err << "; using CAF's timers");
  if (auto err = st->open_network(); !err.empty()) {
    AGENT_LOG(kError, err);
    st->io.stop();
    st->close_timer();
    self->quit(caf::exit_reason::user_shutdown);
    return {};
  }
  if (unix_fd >= 0) self->add_doorman(unix_fd);
  if (tcp_fd >= 0) self->add_doorman(tcp_fd);
  st->drain();  // the first token, if this daemon creates it
  return {
      [=](const caf::io::new_connection_msg& m) {
        // Read by io (never by CAF: the connection is not configured for reading), while
        // the ring's queue has room.
        ConnId id = st->io.add(m.handle);
        st->hub.on_open(id);
        st->flush_clients();
      },
      [=](const caf::io::connection_closed_msg& m) {
        ConnId id = static_cast<ConnId>(m.handle.id());
        st->io.remove(id);
        st->hub.on_closed(id);
        st->drain();
      },
      [=](const caf::io::acceptor_closed_msg&) {
        AGENT_LOG(kWarn, "a client listener closed");
      },
      [=](ring_timer_atom, uint64_t target) { st->on_timer(target); },
      [=](abort_atom, connection_handle h) {
        // A dropped slow client still open after its grace period: unless the socket now
        // belongs to a new client, cut it.
        if (self->valid(h) && !st->hub.has_session(static_cast<ConnId>(h.id()))) {
          AGENT_LOG(kInfo, "closing a dropped client that did not drain its queue");
          ::shutdown(static_cast<int>(h.id()), SHUT_RDWR);
        }
      },
      [=](shutdown_atom) {
        AGENT_LOG(kInfo, "shutting down: " << st->hub.client_count() << " clients connected");
        st->shutdown();
        self->quit();
      },
  };
}

}  // namespace agent::daemon
