// The daemon's actor: a CAF broker whose thread runs the daemon's event loop. It owns the
// client sockets, the ring's socket and timer, and the daemon core, feeds the core what
// arrives and carries out what the core asks for (CoreIo).
#include "agentd/daemon.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <unordered_map>

#include <caf/io/all.hpp>
#include <openssl/rand.h>

#include "agentd/bridge_link.h"
#include "agentd/admin_actor.h"
#include "agentd/admin_snapshot.h"
#include "agentd/caf_adapter.h"
#include "agentd/client_sockets.h"
#include "agentd/daemon_core.h"
#include "agentd/log.h"
#include "agentd/log_actor.h"
#include "agentd/ring_socket.h"
#include "agentd/systemd_notify.h"
#include "persist/incarnation.h"

namespace agent::daemon {

namespace {

using ring_timer_atom = caf::atom_constant<caf::atom("ringtimer")>;
constexpr Time kNever = std::numeric_limits<Time>::max();

// Who connected: the kernel's peer credentials (Unix socket) or the peer's address (TCP).
// with_groups: also the user's supplementary groups (an account-database lookup, which may
// block on a directory service: done only when an access rule names a group).
Peer peer_of(int fd, bool with_groups) {
  Peer p;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return p;
  if (ss.ss_family == AF_UNIX) {
    ucred cred{};
    socklen_t cl = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) return p;
    p.kind = Peer::Kind::kUnix;
    p.uid = cred.uid;
    p.gid = cred.gid;
    p.pid = cred.pid;
    // Supplementary groups, as the account database lists them (group: principals).
    if (passwd* pw = with_groups ? ::getpwuid(cred.uid) : nullptr) {
      int n = 64;
      std::vector<gid_t> gs(static_cast<size_t>(n));
      if (::getgrouplist(pw->pw_name, cred.gid, gs.data(), &n) < 0 && n > 64) {
        gs.resize(static_cast<size_t>(n));
        ::getgrouplist(pw->pw_name, cred.gid, gs.data(), &n);
      }
      gs.resize(static_cast<size_t>(std::max(n, 0)));
      p.groups.assign(gs.begin(), gs.end());
    }
    return p;
  }
  len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return p;
  char host[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
  else if (ss.ss_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof host);
  else
    return p;
  p.kind = Peer::Kind::kTcp;
  p.address = host;
  return p;
}

static_assert(bridge::kNonceBytes == clientauth::kNonceBytes, "one nonce maker for both");

// A challenge's nonce: kNonceBytes from OpenSSL's generator; "" if it failed.
std::string fresh_nonce() {
  std::string n(clientauth::kNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size())) != 1)
    return {};
  return n;
}

Time now_us() {
  return static_cast<Time>(std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count());
}

// Everything the daemon actor owns. Lives as long as the actor's behavior.
struct DaemonState final : CoreIo {
  DaemonState(caf::io::broker* s, Config c)
      : self(s),
        cfg(std::move(c)),
        clients(s, cfg.client_socket_buffer_bytes,
                [this](ConnId id, uint64_t queued) { core.on_sent(id, queued); },
                [this](ConnId id, const char* data, size_t size) {
                  core.on_bytes(id, data, size, input_now);
                },
                [this](ConnId id) { core.on_closed(id); }),
        core(cfg, *this, now_us()) {}

  // CoreIo: the client side goes to the sockets' batches.
  void send(ConnId id, std::string_view bytes) override { clients.send(id, bytes); }
  void send(ConnId id, std::string_view head, std::string_view tail) override {
    clients.send(id, head, tail);
  }
  void send_view(ConnId id, std::string_view head, std::string_view tail) override {
    clients.send_view(id, head, tail);
  }
  void close(ConnId id) override { clients.close(id); }
  void abort(ConnId id) override { clients.abort(id); }
  void flush_clients() override { clients.flush(); }
  void set_client_input(bool on) override {
    clients.set_reading(on);
    // Other sites' traffic waits with the clients' while the ring's queue is full.
    for (auto& [id, link] : bridge_links) self->send(link, bridge_read_atom::value, on);
    bridge_reading = on;
  }
  void bridge_send(uint64_t link, std::string& bytes) override {
    auto it = bridge_links.find(link);
    if (it != bridge_links.end()) self->send(it->second, bridge_out_atom::value, std::move(bytes));
    bytes.clear();
  }
  void bridge_store(persist::BridgeChanges& changes) override {
    if (bridge_store_actor)
      self->send(bridge_store_actor, bridge_store_atom::value,
                 std::make_shared<persist::BridgeChanges>(std::move(changes)));
    changes = {};
  }
  void bridge_close(uint64_t link, const std::string& reason) override {
    (void)reason;  // the core logged it
    auto it = bridge_links.find(link);
    if (it != bridge_links.end()) self->send(it->second, bridge_close_atom::value);
  }
  void send_datagram(NodeId to, std::string_view bytes,
                     const std::vector<NodeId>& ring_members) override {
    ring.send(to, bytes, ring_members);
  }
  void flush_datagrams() override { ring.flush(); }
  // agentctl's requests: a fresh snapshot to the admin actor, which renders the answer
  // (admin_answer_atom); "leave" stops the daemon as SIGTERM does (main's signal loop).
  void admin(ConnId id, const proto::Admin& req) override {
    if (req.command == "leave") {
      AGENT_LOG(kInfo, "an operator asked this daemon to leave the ring (agentctl leave): stopping");
      core.admin_reply(id, req.command,
                       (req.flags & proto::kAdminJson) ? "{\"leaving\":true}"
                                                        : "daemon " + cfg.name + " leaves the ring and stops\n");
      ::kill(::getpid(), SIGTERM);
      return;
    }
    if (!admin_actor) {
      core.admin_error(id, proto::ErrorCode::kBadAdminRequest, req.command, "the admin service is not running");
      return;
    }
    // Bounded: a client asking faster than the actor renders is refused, not queued. A
    // snapshot per request (fresh: what the asker just did shows), but no more of them than
    // the actor renders, which costs more than the snapshot does.
    if (admin_pending_total >= kMaxAdminPending || admin_pending[id] >= kMaxAdminPendingPerClient) {
      core.admin_error(id, proto::ErrorCode::kBadAdminRequest, req.command,
                       "too many admin requests waiting for their answers; ask again after them");
      return;
    }
    ++admin_pending[id];
    ++admin_pending_total;
    self->send(admin_actor, admin_query_atom::value, uint64_t{id}, req.command, req.flags,
               snapshot());
  }
  void on_admin_answer(ConnId id, const std::string& command, const std::string& text) {
    auto it = admin_pending.find(id);
    if (it != admin_pending.end() && --it->second <= 0) admin_pending.erase(it);
    if (admin_pending_total > 0) --admin_pending_total;
    core.admin_reply(id, command, text);
  }
  SnapshotPtr snapshot() {
    ShellCounters sc;
    sc.bad_datagrams = ring.bad_datagrams() + ring.sealed_without_key() +
                       (ring.sealer() ? ring.sealer()->stats().dropped_total() : 0);
    sc.send_drops = ring.unicast().send_drops();
    sc.send_errors = ring.unicast().send_errors();
    sc.rotation = rotation;
    uint64_t wall_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::system_clock::now().time_since_epoch())
                                                 .count());
    return std::make_shared<const AdminSnapshot>(take_snapshot(core, cfg, sc, now_us(), wall_ms));
  }
  // Once a second: the admin actor's rates and the HTTP endpoint's pages.
  void on_admin_tick() {
    if (!admin_actor || stopped) return;
    self->send(admin_actor, admin_tick_atom::value, snapshot());
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), std::chrono::seconds(1),
                           admin_tick_atom::value);
  }
  std::string store_ring_seq(uint32_t seq) override {
    return persist::store_ring_seq(cfg.state_dir, seq);
  }
  // The message log's actor takes the records and reads, in order.
  void log_append(std::vector<persist::Record>& batch) override {
    if (log_actor)
      self->send(log_actor, log_append_atom::value, std::make_shared<std::vector<persist::Record>>(
                                                        std::move(batch)));
    batch.clear();
  }
  void log_read(const LogRead& read) override {
    if (log_actor) self->send(log_actor, log_read_atom::value, std::make_shared<LogRead>(read));
  }
  void log_read_ring(const FillRead& r, size_t max_bytes) override {
    if (log_actor)
      self->send(log_actor, log_read_ring_atom::value, r.config, r.ring, r.after, r.upto,
                 uint64_t{max_bytes});
  }
  void log_fill(std::vector<persist::Record>& records, uint64_t ring, uint64_t upto) override {
    if (log_actor)
      self->send(log_actor, log_fill_atom::value,
                 std::make_shared<std::vector<persist::Record>>(std::move(records)), ring, upto);
    records.clear();
  }

  // A write or sync of the message log failed: logged, at most one line per 10 s.
  void on_log_failed(const std::string& what) {
    ++log_failures;
    Time now = now_us();
    if (log_failure_logged_at != 0 && now - log_failure_logged_at < 10'000'000) return;
    AGENT_LOG(kError, "message log: " << what << " (" << log_failures
                                      << " failures so far; the daemon goes on, persistent "
                                         "groups' history is incomplete)");
    log_failure_logged_at = now;
  }

  // Handles one event: a broken invariant in a core (AGENT_CHECK) stops the daemon with its
  // message in the log, instead of going on with a broken order or escaping into CAF's loop.
  template <class F>
  void guarded(F&& f) {
    if (stopped) return;
    try {
      f();
    } catch (const std::exception& e) {
      AGENT_LOG(kError, "internal error: " << e.what() << "; the daemon stops");
      stopped = true;
      try {
        stop();
      } catch (const std::exception&) {
      }
      self->quit(caf::exit_reason::user_shutdown);
    }
  }

  // Runs the core after a batch of inputs; stops the daemon when the core cannot go on.
  void run() {
    Time now = now_us();
    core.run(now);
    // The token's visits here: the rotation histogram (a counter compare per event).
    if (uint64_t t = core.ring().stats().tokens_received; t != tokens_seen) {
      if (token_at != 0) rotation.observe(now - std::min(now, token_at));
      tokens_seen = t;
      token_at = now;
    }
    if (core.failed()) {
      stopped = true;
      stop();
      self->quit(caf::exit_reason::user_shutdown);
      return;
    }
    tell_systemd(now);
    arm_timer();
  }

  // systemd (Type=notify): READY=1 the first time the ring is operational (the client
  // listeners are open from the start), and WATCHDOG=1 from this loop, so that a loop that
  // stops running stops the pings and systemd restarts the daemon. Both cost nothing outside
  // systemd (no NOTIFY_SOCKET, no WATCHDOG_USEC).
  void tell_systemd(Time now) {
    if (!ready_sent && core.ring().state() == membership::RingState::kOperational) {
      ready_sent = true;
      size_t n = core.ring().members().size();
      systemd::notify_ready("daemon " + cfg.name + ": ring of " + std::to_string(n) +
                            (n == 1 ? " daemon" : " daemons") + " operational");
    }
    if (watchdog_us != 0 && now >= watchdog_at) {
      systemd::notify_watchdog();
      watchdog_at = now + watchdog_us / 2;
    }
  }

  // Clients are readable: one clock reading for the messages of these reads.
  void on_client_input() {
    input_now = now_us();
    clients.read_input();
    run();
  }

  // Either ring socket is readable. Bounded work per wake-up so clients get their turn.
  void on_ring_readable() {
    for (int batch = 0; batch < 8; ++batch) {
      Time now = now_us();
      bool more = ring.read([&](NodeId from, std::string_view bytes, const membership::Owner& o) {
        core.on_datagram(from, bytes, now, o);
      });
      run();
      // Short batches emptied the sockets; the multiplexer (level-triggered) calls again if
      // more arrives. Saves reads that would find nothing.
      if (!more) return;
    }
  }

  // The ring's timer: a timerfd in the multiplexer (one wake-up when it fires, none to arm it
  // again); CAF's delayed messages (a clock thread and a mailbox hop) where it cannot be had.
  std::string open_timer() {
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return std::string("timerfd_create: ") + std::strerror(errno);
    timer = watch_readable(self, fd, [this] { guarded([this] { on_timer_fd(); }); });
    return {};
  }
  void close_timer() { unwatch(timer); }

  void on_timer_fd() {
    uint64_t expirations;
    while (::read(fd_of(timer), &expirations, sizeof expirations) > 0) {
    }
    timer_at = kNever;
    run();
  }

  void arm_timer() {
    Time next = core.next_timeout();
    // An idle daemon's loop still runs, for the watchdog's ping.
    if (watchdog_us != 0) next = std::min(next, watchdog_at);
    if (next == kNever || next >= timer_at) return;
    timer_at = next;
    if (timer) {
      // now_us() is CLOCK_MONOTONIC (steady_clock): the timer takes the ring's times as they are.
      itimerspec its{};
      its.it_value.tv_sec = static_cast<time_t>(next / 1000000);
      its.it_value.tv_nsec = static_cast<long>(next % 1000000) * 1000 + 1;  // never 0 (disarms)
      if (::timerfd_settime(fd_of(timer), TFD_TIMER_ABSTIME, &its, nullptr) == 0) return;
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
    run();
  }

  void log_totals() {
    const auto& rs = core.ring().stats();
    const auto& hs = core.hub().stats();
    const auto& u = ring.unicast();
    // Dropped datagrams by reason: what an attack or a misconfigured daemon shows up as.
    std::string drops = "not from a configured daemon " + std::to_string(ring.bad_datagrams()) +
                        ", refused by the ring " + std::to_string(rs.bad_packets) +
                        " (ring seq past the limit " + std::to_string(rs.ring_seq_refused) + ")";
    uint64_t dropped = ring.bad_datagrams() + rs.bad_packets + ring.sealed_without_key();
    if (const auto* sealer = ring.sealer()) {
      const auto& ss = sealer->stats();
      for (size_t i = 0; i < ss.dropped.size(); ++i)
        drops += std::string(", ") + ringseal::to_string(static_cast<ringseal::Drop>(i)) + " " +
                 std::to_string(ss.dropped[i]);
      dropped += ss.dropped_total();
    } else if (ring.sealed_without_key() != 0) {
      drops += ", sealed (this daemon has no key) " + std::to_string(ring.sealed_without_key());
    }
    AGENT_LOG(kInfo, "totals: ring packets sent " << rs.packets_sent << ", retransmitted "
                         << rs.packets_retransmitted << ", duplicates " << rs.duplicate_packets
                         << "; tokens " << rs.tokens_received << ", retransmitted "
                         << rs.tokens_retransmitted << ", held " << rs.held_tokens
                         << ", wakes sent " << rs.wakes_sent << ", visits paced " << rs.paced_tokens
                         << "; configuration changes " << rs.gathers << "; messages ordered "
                         << rs.messages_delivered << ", handed to clients "
                         << hs.messages_delivered << "; bad datagrams " << dropped << " (" << drops
                         << "), bad client frames "
                         << hs.bad_frames << ", slow clients dropped "
                         << hs.slow_clients_dropped << ", client input paused "
                         << core.stats().input_pauses << " times, slow clients held the ring "
                         << core.stats().ring_holds << " times (" << hs.slow_holds
                         << " client holds, " << hs.slow_hold_timeouts
                         << " dropped at slow_timeout_ms); datagrams dropped on send "
                         << u.send_drops() << ", refused " << u.send_errors()
                         << "; offloaded sends " << u.offloaded_sends() << " carrying "
                         << u.offloaded_datagrams() << " datagrams");
    if (const auto* b = core.bridge()) {
      for (auto& [site, st] : b->stats())
        AGENT_LOG(kInfo, "totals: bridge link with site "
                             << site << ": " << (st.up ? "up" : "down") << ", up " << st.links
                             << " times; items sent " << st.items_sent << " ("
                             << st.raw_bytes_sent << " bytes, " << st.wire_bytes_sent
                             << " on the link" << ratio(st.raw_bytes_sent, st.wire_bytes_sent)
                             << "), acknowledged up to " << st.acked << "; received "
                             << st.items_received << ", duplicates dropped " << st.duplicates
                             << ", applied up to " << st.applied << "; gaps " << st.gaps << " ("
                             << st.gap_items << " items)");
      AGENT_LOG(kInfo, "totals: bridge queue " << b->queued_items() << " items, "
                                               << b->queued_bytes() << " bytes; newest item "
                                               << b->head());
    }
  }

  static std::string ratio(uint64_t raw, uint64_t wire) {
    if (wire == 0) return "";
    char buf[48];
    std::snprintf(buf, sizeof buf, ", compression %.2f:1", static_cast<double>(raw) / wire);
    return buf;
  }

  // Leaves the ring and closes everything.
  void stop() {
    log_totals();
    core.shutdown(now_us());
    // After the last records: the log syncs and closes (the actor system waits for it).
    if (log_actor) self->send(log_actor, log_stop_atom::value);
    for (auto& a : bridge_helpers) self->send_exit(a, caf::exit_reason::user_shutdown);
    // (The store's actor ends when the daemon does, after the changes already sent.)
    for (auto& [id, a] : bridge_links) self->send_exit(a, caf::exit_reason::user_shutdown);
    if (admin_actor) self->send_exit(admin_actor, caf::exit_reason::user_shutdown);
    clients.drain_now();  // what the sockets take now; the rest is lost with the daemon
    clients.stop();
    ring.close();
    close_timer();
  }

  caf::io::broker* self;
  Config cfg;
  ClientSockets clients;
  RingSocket ring;
  DaemonCore core;
  Time input_now = 0;  // while clients' reads are handled: when they were read
  bool stopped = false;  // the daemon has stopped; nothing more is handled
  Time timer_at = kNever;  // the timer is armed for then
  Watch* timer = nullptr;  // owns the timerfd
  caf::actor log_actor;    // the message log's (persistence on)
  caf::actor admin_actor;  // renders agentctl's answers and the HTTP pages
  static constexpr int kMaxAdminPending = 64, kMaxAdminPendingPerClient = 4;
  std::unordered_map<ConnId, int> admin_pending;  // requests at the admin actor, by client
  int admin_pending_total = 0;
  Histogram rotation;      // time between the token's visits
  uint64_t tokens_seen = 0;
  Time token_at = 0;
  // Whether an access rule names a group (group:, gid:): clients' supplementary groups are
  // then looked up when they connect.
  bool access_by_group = std::any_of(cfg.access.begin(), cfg.access.end(), [](const AccessRule& r) {
    auto by_group = [](const Principal& p) { return p.kind == Principal::Kind::kGid; };
    return std::any_of(r.join.begin(), r.join.end(), by_group) ||
           std::any_of(r.send.begin(), r.send.end(), by_group);
  });
  uint64_t log_failures = 0;
  Time log_failure_logged_at = 0;
  std::map<uint64_t, caf::actor> bridge_links;  // the WAN bridge's links, by id
  std::vector<caf::actor> bridge_helpers;        // its listener and dialers
  caf::actor bridge_store_actor;                 // writes its durable state
  bool bridge_reading = true;
  bool ready_sent = false;  // systemd has READY=1
  // WatchdogSec= of the unit (0: none): WATCHDOG=1 at least every half of it.
  uint64_t watchdog_us = systemd::watchdog_interval_us();
  Time watchdog_at = 0;     // the next WATCHDOG=1 is due then
};

}  // namespace

caf::behavior daemon_actor(caf::io::broker* self, Config cfg, int unix_fd, int tcp_fd,
                           std::shared_ptr<persist::MessageLog> log,
                           std::shared_ptr<AdminPublished> published) {
  auto st = std::make_shared<DaemonState>(self, std::move(cfg));
  // The ring first: it is what fails in practice (an address in use, a name that does not
  // resolve), and it watches nothing until it has succeeded. A watch started and stopped
  // before the multiplexer has run is never handed back to be deleted, so a failure after
  // other watches exist would leak them (and the state they hold).
  if (auto err = st->ring.open(st->cfg, self, [st] { st->guarded([&] { st->on_ring_readable(); }); });
      !err.empty()) {
    AGENT_LOG(kError, err);
    self->quit(caf::exit_reason::user_shutdown);
    return {};
  }
  // A slow client that read its queue may end a hold of the ring (back-pressure): the ring
  // learns it at once. The clients keep this hook, and the state keeps them: a raw pointer
  // (a shared one would keep the state, and the log actor it holds, alive for ever).
  DaemonState* state = st.get();
  if (auto err = st->clients.start([st] { st->guarded([&] { st->on_client_input(); }); },
                                   [state] {
                                     state->guarded([&] {
                                       if (state->core.wants_run()) state->run();
                                     });
                                   });
      !err.empty()) {
    AGENT_LOG(kError, "client I/O: " << err);
    st->ring.close();
    self->quit(caf::exit_reason::user_shutdown);
    return {};
  }
  if (auto err = st->open_timer(); !err.empty()) AGENT_LOG(kWarn, err << "; using CAF's timers");
  if (st->watchdog_us != 0)
    AGENT_LOG(kInfo, "systemd watchdog: WATCHDOG=1 from the event loop every "
                         << st->watchdog_us / 2000 << " ms (WatchdogSec=" << st->watchdog_us / 1000
                         << " ms)");
  // Last: an actor that is running keeps the actor system (and the daemon) up until it is told
  // to stop, which only a started daemon does.
  if (log) st->core.set_log_coverage(log->coverage());  // before the actor owns the log
  if (log)
    st->log_actor = self->spawn<caf::detached>(daemon::log_actor, std::move(log), st->cfg.persist,
                                               caf::actor_cast<caf::actor>(self));
  if (st->cfg.bridge.enabled()) {
    // Its queue and positions from the last run, before any link.
    persist::BridgeState bstate;
    std::string err;
    auto store = persist::BridgeStore::open(st->cfg.state_dir + "/bridge", bstate, err);
    if (!store) {
      AGENT_LOG(kError, "bridge: " << err);
      st->stopped = true;
      st->stop();
      self->quit(caf::exit_reason::user_shutdown);
      return {};
    }
    uint64_t epoch = st->core.bridge_restore(bstate);
    if (bstate.epoch == 0 && !(err = store->set_epoch(epoch)).empty())
      AGENT_LOG(kWarn, "bridge: cannot store its stream's epoch: " << err);
    if (!bstate.items.empty() || bstate.head != 0)
      AGENT_LOG(kInfo, "bridge: resuming stream " << epoch << " at item " << bstate.head << " with "
                                                   << bstate.items.size()
                                                   << " items not yet acknowledged by every site");
    st->bridge_store_actor = spawn_bridge_store(self, std::move(store));
    if (auto err = start_bridge(self, st->cfg.bridge, st->bridge_helpers); !err.empty()) {
      AGENT_LOG(kError, err);
      st->stopped = true;
      st->stop();
      self->quit(caf::exit_reason::user_shutdown);
      return {};
    }
    AGENT_LOG(kInfo, "bridge: site " << st->cfg.bridge.site << ", "
                                     << st->cfg.bridge.sites.size() << " other sites");
  }
  st->admin_actor = self->spawn(daemon::admin_actor, std::move(published));
  if (unix_fd >= 0) self->add_doorman(unix_fd);
  if (tcp_fd >= 0) self->add_doorman(tcp_fd);
  st->guarded([&] { st->run(); });  // the first token, if this daemon creates it
  st->on_admin_tick();
  return {
      [=](const caf::io::new_connection_msg& m) {
        // Read by the client sockets (never by CAF: the connection is not configured for
        // reading), while the ring's queue has room.
        st->guarded([&] {
          ConnId id = st->clients.add(m.handle);
          Peer peer = peer_of(static_cast<int>(id), st->access_by_group);
          std::string nonce;
          if (st->core.hub().needs_auth(peer) && (nonce = fresh_nonce()).empty()) {
            AGENT_LOG(kError, "refused TCP client " << peer.describe()
                                  << ": no random bytes for its challenge (RAND_bytes failed)");
            st->clients.close(id);
            st->clients.flush();
            return;
          }
          st->core.on_open(id, now_us(), std::move(peer), nonce);
          st->run();  // the welcome or refusal goes out; the hello's deadline is timed
        });
      },
      [=](const caf::io::connection_closed_msg& m) {
        st->guarded([&] {
          ConnId id = static_cast<ConnId>(socket_of(m.handle));
          st->clients.remove(id);
          st->core.on_closed(id);
          st->run();
        });
      },
      [=](const caf::io::acceptor_closed_msg&) {
        AGENT_LOG(kWarn, "a client listener closed");
      },
      [=](ring_timer_atom, uint64_t target) { st->guarded([&] { st->on_timer(target); }); },
      [=](bridge_open_atom, const caf::actor& link) {
        st->guarded([&] {
          std::string nonce = fresh_nonce();
          if (nonce.empty()) {
            AGENT_LOG(kError, "bridge: no random bytes for a link's nonce; closing it");
            self->send(link, bridge_close_atom::value);
            return;
          }
          st->bridge_links[link.id()] = link;
          if (!st->bridge_reading) self->send(link, bridge_read_atom::value, false);
          st->core.bridge_opened(link.id(), std::move(nonce), now_us());
          st->run();
        });
      },
      [=](bridge_in_atom, uint64_t link, const std::string& bytes) {
        st->guarded([&] {
          st->core.bridge_bytes(link, bytes.data(), bytes.size(), now_us());
          st->run();
        });
      },
      [=](bridge_closed_atom, uint64_t link) {
        st->guarded([&] {
          st->bridge_links.erase(link);
          st->core.bridge_closed(link, now_us());
          st->run();
        });
      },
      [=](admin_tick_atom) { st->guarded([&] { st->on_admin_tick(); }); },
      [=](admin_answer_atom, uint64_t conn, const std::string& command, const std::string& text) {
        st->guarded([&] {
          st->on_admin_answer(static_cast<ConnId>(conn), command, text);
          st->run();
        });
      },
      [=](history_atom, uint64_t conn, uint64_t read_id, const ReadAnswer& answer) {
        st->guarded([&] {
          st->core.on_history(conn, read_id, std::move(*answer));
          st->run();
        });
      },
      [=](log_failed_atom, const std::string& what, const std::vector<std::string>& senders) {
        st->guarded([&] {
          st->on_log_failed(what);
          st->core.on_log_failed(senders, what, now_us());
          st->run();
        });
      },
      [=](fill_read_atom, uint64_t config, uint64_t ring, uint64_t after, uint64_t upto,
          const RecordBatch& records, uint64_t reached, const std::string& error) {
        st->guarded([&] {
          st->core.on_fill_read(FillRead{config, ring, after, upto}, std::move(*records), reached,
                                error);
          st->run();
        });
      },
      [=](durable_atom, uint64_t ring, uint64_t ordinal) {
        // With durability "always", what is on disk here may let SAFE messages be delivered.
        st->guarded([&] {
          st->core.on_log_synced({ring, ordinal});
          st->run();
        });
      },
      [=](abort_atom, caf::io::connection_handle h) {
        // A dropped slow client still open after its grace period: unless the socket now
        // belongs to a new client, cut it.
        if (self->valid(h) && !st->core.hub().has_session(static_cast<ConnId>(socket_of(h)))) {
          AGENT_LOG(kInfo, "closing a dropped client that did not drain its queue");
          ::shutdown(socket_of(h), SHUT_RDWR);
        }
      },
      [=](rekey_atom, const std::string& bytes) {
        std::vector<ringseal::Key> keys(bytes.size() / ringseal::kKeyBytes);
        for (size_t i = 0; i < keys.size(); ++i)
          std::memcpy(keys[i].data(), bytes.data() + i * ringseal::kKeyBytes, ringseal::kKeyBytes);
        if (!keys.empty()) st->guarded([&] { st->ring.set_keys(std::move(keys)); });
      },
      [=](secrets_atom, const SecretsPtr& secrets) {
        st->guarded([&] { st->core.set_client_secrets(secrets); });
      },
      [=](shutdown_atom) {
        AGENT_LOG(kInfo, "shutting down: " << st->core.hub().client_count() << " clients connected");
        if (!st->stopped) {
          st->stopped = true;
          st->stop();
        }
        self->quit();
      },
  };
}

}  // namespace agent::daemon
