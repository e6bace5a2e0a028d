#include "agentd/daemon.h"

#include <sys/socket.h>
#include <sys/stat.h>

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
constexpr size_t kReadChunkBytes = 256 * 1024;
constexpr Time kNever = std::numeric_limits<Time>::max();
constexpr uint32_t kAgreed = 0x10;

Time now_us() {
  return static_cast<Time>(std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count());
}

// Carries out the hub's writes on the broker's connections. Writes are collected per
// connection and flushed once per handled event: a connection whose CAF write buffer is empty
// gets the batch with one send() straight to its socket (no copy into CAF's buffer, no
// write-event registration); whatever the socket does not take, and every batch while CAF still
// holds bytes for the connection, goes through CAF's buffer, so the byte order never changes.
// The broker runs in the multiplexer's thread, the same one that writes CAF's buffers.
class BrokerIo final : public ClientIo {
 public:
  explicit BrokerIo(caf::io::broker* self) : self_(self) {}

  ConnId add(connection_handle h) {
    ConnId id = static_cast<ConnId>(h.id());
    conns_[id].handle = h;
    return id;
  }
  void remove(ConnId id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    drop_dirty(id);
    conns_.erase(it);
  }

  void send(ConnId id, std::string_view bytes) override {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    if (c.batch.empty()) dirty_.push_back(id);
    c.batch.append(bytes.data(), bytes.size());
  }
  void close(ConnId id) override {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    to_caf(it->second);
    drop_dirty(id);
    self_->flush(it->second.handle);
    self_->close(it->second.handle);
    conns_.erase(it);
  }
  void abort(ConnId id) override {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    connection_handle h = it->second.handle;
    to_caf(it->second);
    drop_dirty(id);
    // CAF 0.17 names a connection by its socket. Stop reading it (a Unix client blocked in
    // a write gets EPIPE instead of waiting for us), let the queue and the error go out, and
    // cut the connection for good if it is still open after the grace period.
    int fd = static_cast<int>(h.id());
    struct stat sb;
    if (::fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode)) ::shutdown(fd, SHUT_RD);
    self_->flush(h);
    self_->close(h);
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self_), std::chrono::seconds(2), abort_atom::value,
                           h);
    conns_.erase(it);
  }
  // CAF wrote some of its buffer: `remaining` bytes of it are left (data_transferred_msg).
  void on_transferred(ConnId id, uint64_t remaining) {
    auto it = conns_.find(id);
    if (it != conns_.end()) it->second.in_caf = remaining;
  }
  // Sends every connection's batch; sent(id, bytes still queued in user space) follows each.
  template <class Sent>
  void flush(Sent&& sent) {
    for (ConnId id : dirty_) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      Conn& c = it->second;
      size_t sent_bytes = 0;
      if (c.in_caf == 0) {
        ssize_t n = ::send(static_cast<int>(id), c.batch.data(), c.batch.size(),
                           MSG_DONTWAIT | MSG_NOSIGNAL);
        // On EAGAIN or a failure the rest goes to CAF, which reports the failure.
        if (n > 0) sent_bytes = static_cast<size_t>(n);
      }
      if (sent_bytes < c.batch.size()) {
        to_caf(c, sent_bytes);
        self_->flush(c.handle);
      } else {
        clear_batch(c);
      }
      sent(id, c.in_caf);
    }
    dirty_.clear();
  }
  void flush() {
    flush([](ConnId, uint64_t) {});
  }
  // Stops or resumes reading from every client (back-pressure from the ring).
  void set_reading(bool on) {
    for (auto& [id, c] : conns_) {
      if (on)
        self_->trigger(c.handle);
      else
        self_->halt(c.handle);
    }
  }

 private:
  struct Conn {
    connection_handle handle;
    std::string batch;   // this event's bytes, not yet handed on
    uint64_t in_caf = 0;  // bytes in CAF's buffers for the connection
  };
  // Moves the batch from byte `from` on into CAF's buffer.
  void to_caf(Conn& c, size_t from = 0) {
    if (from < c.batch.size()) {
      auto& buf = self_->wr_buf(c.handle);
      buf.insert(buf.end(), c.batch.begin() + static_cast<ptrdiff_t>(from), c.batch.end());
      c.in_caf += c.batch.size() - from;
    }
    clear_batch(c);
  }
  void clear_batch(Conn& c) {
    c.batch.clear();
    // A huge batch's memory is not kept for ever.
    if (c.batch.capacity() > kKeptBatchBytes) std::string().swap(c.batch);
  }
  void drop_dirty(ConnId id) {
    dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), id), dirty_.end());
  }
  static constexpr size_t kKeptBatchBytes = 1 << 20;

  caf::io::broker* self_;
  std::unordered_map<ConnId, Conn> conns_;
  std::vector<ConnId> dirty_;
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
        io(s),
        ring(cfg.ring.id, ring_config(cfg), now_us()),
        hub(cfg, io, [this](uint32_t service, std::string&& ev) { submit(service, std::move(ev)); }) {
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
    auto err = udp.open(peers.at(cfg.ring.id));
    if (!err.empty()) return err;
    auto& mpx = static_cast<caf::io::network::default_multiplexer&>(
        self->system().middleman().backend());
    hook = new ReadableHook(mpx, udp.disown(), [this] { on_readable(); });
    hook->start();
    udp_fd = hook->fd();
    AGENT_LOG(kInfo, "ring: daemon " << cfg.ring.id << " on UDP "
                                     << peers.at(cfg.ring.id).to_string() << ", "
                                     << peers.size() << " daemons");
    return {};
  }

  void submit(uint32_t service, std::string&& bytes) {
    // ring.submit takes the bytes over only when it accepts them.
    if (!backlog.empty() || !ring.submit(service, std::move(bytes), now_us())) {
      // The ring's queue is full: hold this one and stop reading clients until it drains.
      backlog.emplace_back(service, std::move(bytes));
      if (!throttled) {
        throttled = true;
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
    for (;;) {
      retry_backlog();
      auto a = ring.take_actions();
      if (a.sends.empty() && a.deliveries.empty() && a.warnings.empty()) break;
      // The token and the data packets leave before the clients get their deliveries, so the
      // next daemon works while this one writes to its clients (and the token's round trip
      // does not grow with the local fan-out).
      for (auto& s : a.sends) send_datagram(s.to, s.bytes);
      if (udp_fd >= 0) udp.flush();
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
      }
    }
    flush_clients();
    draining = false;
    arm_timer();
  }

  // Sends the clients' batches; the hub learns what each still has queued.
  void flush_clients() {
    io.flush([this](ConnId id, uint64_t queued) { hub.on_sent(id, queued); });
  }

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
  void send_datagram(NodeId to, const std::string& bytes) {
    if (udp_fd < 0) return;  // a ring of one has no one to send to
    if (to == membership::kAllDaemons) {
      for (auto& [id, addr] : peers)
        if (id != cfg.ring.id) udp.queue_view(addr, bytes);
    } else if (to == membership::kBroadcast) {
      for (auto id : ring.members())
        if (id != cfg.ring.id) udp.queue_view(peers.at(id), bytes);
    } else if (auto it = peers.find(to); it != peers.end()) {
      udp.queue_view(it->second, bytes);
    }
  }

  void on_readable() {
    // Bounded work per wake-up so clients get their turn.
    for (int batch = 0; batch < 8; ++batch) {
      size_t n = udp.receive([&](const transport::UdpAddress& from,
                                                 std::string_view bytes) {
        // The sender is whoever lives at the source address; the ring checks the rest.
        NodeId sender = 0;
        for (auto& [id, addr] : peers)
          if (addr == from) sender = id;
        if (sender == 0) {
          ++bad_datagrams;  // not from a configured daemon
          return;
        }
        ring.on_packet(sender, bytes, now_us());
      });
      if (n == 0) break;
      drain();
      // A short batch emptied the socket; the multiplexer (level-triggered) calls again if
      // more arrives. Saves a read that would find nothing.
      if (n < transport::UdpSocket::kBatch) return;
    }
    drain();
  }

  void arm_timer() {
    Time next = ring.next_timeout();
    if (next == kNever || next >= timer_at) return;
    timer_at = next;
    Time now = now_us();
    auto delay = std::chrono::microseconds(next > now ? next - now : 0);
    // Anonymous: a timer message pending at exit must not hold the broker (a reference cycle).
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), delay, ring_timer_atom::value,
                           static_cast<uint64_t>(next));
  }

  void on_timer(uint64_t target) {
    if (target == timer_at) timer_at = kNever;
    Time now = now_us();
    if (now >= ring.next_timeout()) ring.on_timeout(now);
    drain();
  }

  void shutdown() {
    const auto& rs = ring.stats();
    const auto& hs = hub.stats();
    AGENT_LOG(kInfo, "totals: ring packets sent " << rs.packets_sent << ", retransmitted "
                         << rs.packets_retransmitted << ", duplicates " << rs.duplicate_packets
                         << "; tokens " << rs.tokens_received << ", retransmitted "
                         << rs.tokens_retransmitted << ", held " << rs.held_tokens
                         << "; configuration changes " << rs.gathers << "; messages ordered "
                         << rs.messages_delivered << ", handed to clients "
                         << hs.messages_delivered << "; bad datagrams "
                         << bad_datagrams + rs.bad_packets << ", bad client frames "
                         << hs.bad_frames << ", slow clients dropped "
                         << hs.slow_clients_dropped);
    hub.shutdown();
    io.flush();
    // Leave the ring: the others reform without this daemon at once.
    if (udp_fd >= 0) {
      ring.leave(now_us());
      auto a = ring.take_actions();  // the datagrams are queued as views: keep them until sent
      for (auto& s : a.sends) send_datagram(s.to, s.bytes);
      udp.flush();
    }
    if (hook) hook->stop();
    hook = nullptr;
    udp_fd = -1;
  }

  caf::io::broker* self;
  Config cfg;
  BrokerIo io;
  membership::Ring ring;
  ClientHub hub;
  std::unordered_map<NodeId, transport::UdpAddress> peers;
  transport::UdpSocket udp;       // the ring's socket; the hook owns (and closes) its fd
  ReadableHook* hook = nullptr;
  int udp_fd = -1;
  std::deque<std::pair<uint32_t, std::string>> backlog;
  bool throttled = false;
  bool draining = false;
  Time timer_at = kNever;
  uint64_t bad_datagrams = 0;
  uint64_t bad_events = 0;
};

}  // namespace

caf::behavior daemon_actor(caf::io::broker* self, Config cfg, int unix_fd, int tcp_fd) {
  auto st = std::make_shared<DaemonState>(self, std::move(cfg));
  if (auto err = st->open_network(); !err.empty()) {
    AGENT_LOG(kError, err);
    self->quit(caf::exit_reason::user_shutdown);
    return {};
  }
  if (unix_fd >= 0) self->add_doorman(unix_fd);
  if (tcp_fd >= 0) self->add_doorman(tcp_fd);
  st->drain();  // the first token, if this daemon creates it
  return {
      [=](const caf::io::new_connection_msg& m) {
        ConnId id = st->io.add(m.handle);
        if (st->hub.on_open(id)) {
          self->configure_read(m.handle, caf::io::receive_policy::at_most(kReadChunkBytes));
          self->ack_writes(m.handle, true);
          if (st->throttled) self->halt(m.handle);
        }
        st->flush_clients();
      },
      [=](const caf::io::new_data_msg& m) {
        st->hub.on_bytes(static_cast<ConnId>(m.handle.id()), m.buf.data(), m.buf.size());
        st->drain();
      },
      [=](const caf::io::data_transferred_msg& m) {
        st->io.on_transferred(static_cast<ConnId>(m.handle.id()), m.remaining);
        st->hub.on_sent(static_cast<ConnId>(m.handle.id()), m.remaining);
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
