// The client side of a daemon, independent of how bytes move: it parses client frames, enforces
// the protocol's rules and limits, submits joins/leaves/messages for ordering, and routes the
// ordered results to the local clients. The daemon core (agentd/daemon_core.h) feeds it bytes
// and carries out its writes and closes through ClientIo.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agentd/config.h"
#include "groups/group_state.h"
#include "persist/entry.h"
#include "transport/client_protocol.h"

namespace agent::daemon {

using ConnId = uint64_t;

// Who is at the other end of a connection, as the kernel tells the daemon: the peer
// credentials of a Unix-socket client, the address of a TCP one. Access rules and the
// per-user connection limit go by it.
struct Peer {
  enum class Kind { kUnknown, kUnix, kTcp };
  Kind kind = Kind::kUnknown;
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups (Unix)
  int32_t pid = 0;
  std::string address;  // TCP
  // A TCP client that authenticated: its name in clients.secrets_file (tcpuser: principals).
  std::string tcp_user;
  // "uid 1000 (pid 42)", "127.0.0.1", "127.0.0.1 (tcpuser alice)": for messages.
  std::string describe() const;
  // The key the per-user limit counts by ("" for unknown peers: not counted).
  std::string user_key() const;
  bool matches(const Principal& p) const;
};

// A read of the message log for a client's history request.
struct LogRead {
  ConnId conn = 0;
  uint64_t id = 0;  // the session's request number: the answer names it
  std::string group;
  persist::Position after;  // entries after this,
  uint64_t since_us = 0;    // or (when set) from the first one delivered at or after this time,
  persist::Position before = persist::kEnd;  // and before this (a join's position)
};

class ClientIo {
 public:
  virtual ~ClientIo() = default;
  // Queues bytes for the connection; they go out when the shell flushes.
  virtual void send(ConnId id, std::string_view bytes) = 0;
  // Queues head and then tail (one frame in two pieces, so the tail is copied only once).
  virtual void send(ConnId id, std::string_view head, std::string_view tail) {
    std::string both;
    both.reserve(head.size() + tail.size());
    both.append(head).append(tail);
    send(id, both);
  }
  // The same, where tail stays valid until the shell's next flush: the shell may send it from
  // where it lies, without copying it (a payload in a ring packet, to many clients).
  virtual void send_view(ConnId id, std::string_view head, std::string_view tail) {
    send(id, head, tail);
  }
  // Sends what is queued, then closes. The hub forgets the connection itself.
  virtual void close(ConnId id) = 0;
  // Closes a client that does not read: its input stops at once; what is queued goes out if
  // the client drains it within a grace period, else the connection is cut.
  virtual void abort(ConnId id) { close(id); }
  // A member's disconnect took effect in the group layer (the notice no session gets): its
  // name is free again. For observers; agentd does nothing with it.
  virtual void session_ended(const std::string& member, const proto::Membership& notice) {
    (void)member;
    (void)notice;
  }
  // The message log (persistence on): delivered messages of persistent groups, in the order
  // of the total order; takes the records. A read follows every append handed over before it;
  // its answer comes back through ClientHub::on_history.
  virtual void log_append(std::vector<persist::Record>& batch) { batch.clear(); }
  virtual void log_read(const LogRead& read) { (void)read; }
  // An operator's request the hub cannot answer itself (status, counters, leave...: what the
  // daemon around it knows), checked and allowed. The answer goes back through
  // ClientHub::admin_reply or admin_error, now or later. Drivers without one: never answered.
  virtual void admin(ConnId id, const proto::Admin& request) {
    (void)id;
    (void)request;
  }
};

// What the admin verb (agentctl) shows of one client session.
struct ClientInfo {
  std::string name;  // private group; "" before the welcome
  std::string peer;  // Peer::describe()
  uint64_t queued_bytes = 0;
  std::vector<std::string> groups;
  std::array<uint64_t, 6> sent{};  // multicasts by service: unreliable .. safe
  bool holding = false;             // holds the ring back (back-pressure)
};

struct HubStats {
  uint64_t frames_in = 0;
  uint64_t bad_frames = 0;
  uint64_t messages_delivered = 0;  // data messages handed to clients (per recipient)
  uint64_t slow_clients_dropped = 0;
  // clients.slow_policy = "backpressure": times a client's queue passed the high-water mark
  // and it began to hold the ring back, and holds that ended in its drop (slow_timeout_ms).
  uint64_t slow_holds = 0;
  uint64_t slow_hold_timeouts = 0;
  uint64_t logged = 0;            // messages handed to the message log
  uint64_t history_entries = 0;   // logged messages sent to clients as history
  // Multicasts taken from clients, and their payload bytes, by service (unreliable .. safe).
  std::array<uint64_t, 6> sent{}, sent_bytes{};
  uint64_t bytes_delivered = 0;  // payload bytes of messages handed to clients
  uint64_t admin_requests = 0, admin_refused = 0, operator_disconnects = 0;
};

// The index of a regular service bit (0 unreliable .. 5 safe); 6 when not exactly one.
size_t service_index(uint32_t service);
extern const char* const kServiceNames[6];  // "unreliable" .. "safe"

class ClientHub {
 public:
  // submit: hands an encoded event (groups/event_codec.h) and the service to order it with to
  // the ordering layer, which calls deliver_bytes() once it is ordered (possibly before submit
  // returns). It takes the bytes and may leave an empty string with capacity in their place,
  // for the hub's next event.
  using Submit = std::function<void(uint32_t service, std::string& event)>;
  ClientHub(const Config& cfg, ClientIo& io, Submit submit);

  // False when the connection is refused (too many clients); the hub has then closed it.
  // now_us: when (microseconds, any fixed origin): the hello is due hello_timeout_ms later.
  // nonce: clientauth::kNonceBytes fresh random bytes for a client that must authenticate
  // (needs_auth(peer)): the challenge its hello gets. Ignored for others.
  bool on_open(ConnId id, uint64_t now_us = 0, Peer peer = {}, std::string_view nonce = {});
  // Whether a client connecting from peer must authenticate before its welcome: a TCP client
  // while clients.tcp_auth = "secret".
  bool needs_auth(const Peer& peer) const;
  // The secrets TCP clients authenticate against (clients.secrets_file, reloaded on SIGHUP);
  // connections already authenticated keep their name. Null: none (every name is unknown).
  void set_secrets(std::shared_ptr<const clientauth::Secrets> secrets);
  // Back-pressure (clients.slow_policy = "backpressure"): a session whose queue passes half of
  // clients.queue_limit_bytes holds the ring back until it has read down to a quarter. The
  // daemon core keeps the ring's senders from getting further ahead while any session holds.
  bool holding_ring() const { return !holding_.empty(); }
  size_t holding_clients() const { return holding_.size(); }
  // When the oldest hold passes clients.slow_timeout_ms (~0: none held).
  uint64_t hold_deadline() const;
  // Drops (error 14) the sessions that have held the ring back longer than slow_timeout_ms at
  // now_us. Called whether or not client input is paused (it is, while the ring is held).
  void expire_holds(uint64_t now_us);
  // Queue marks of the back-pressure policy, in bytes.
  uint64_t hold_high_bytes() const { return cfg_.client_queue_bytes / 2; }
  uint64_t hold_low_bytes() const { return cfg_.client_queue_bytes / 4; }
  // Closes connections whose hello is overdue at now_us (error 12).
  void expire(uint64_t now_us);
  // When the next hello falls due (~0: none waiting).
  uint64_t next_hello_deadline() const;
  // The daemon did not read clients for a while: every waiting hello is due hello_timeout_ms
  // from now_us.
  void restart_hello_clock(uint64_t now_us);
  void on_bytes(ConnId id, const char* data, size_t size);
  // The connection ended (peer closed or failed); not called for closes the hub asked for.
  void on_closed(ConnId id);
  // The shell reports how many bytes are still unsent for the connection.
  void on_sent(ConnId id, uint64_t remaining);
  // The event at position seq of the total order (what submit was given), submitted by daemon
  // origin: applies it and routes the deliveries. A data event's payload goes from
  // these bytes to the clients' frames without an intermediate copy. The bytes must stay
  // valid until the io's next flush (it may send the payload from where it lies). False when
  // the bytes do not decode (nothing is delivered).
  // ring: the ring that ordered it (with seq, the message's position, for the message log).
  // past_gap: membership::Delivered::past_gap (the message log keeps it with the entry).
  // owner: keeps the event's bytes alive (immutable): the message log's record then views the
  // payload instead of copying it.
  bool deliver_bytes(uint64_t seq, std::string_view event, groups::DaemonId origin = 0,
                     uint64_t ring = 0, bool past_gap = false,
                     const std::shared_ptr<const void>& owner = nullptr);
  // Hands the messages collected for the message log to the io (before a read, and at the end
  // of each round of work).
  void flush_log();
  // Logging at reception (the durability gate): messages go to the log when the ring hands
  // them out as received (log_received), not when they are delivered.
  void log_on_receipt(bool on) { log_on_receipt_ = on; }
  // A received message (ring, ordinal: the position its delivery will have; event: what
  // deliver_bytes will get): logged when it is data for a persistent group. True when logged.
  bool log_received(uint64_t ring, uint64_t ordinal, std::string_view event,
                    bool past_gap = false, const std::shared_ptr<const void>& owner = nullptr);
  // What the message log holds of recent rings: the hub notes there every record it hands to
  // the log (persist::cover). Null: not kept.
  void track_coverage(persist::Coverage* c) { coverage_ = c; }
  // While held, history reads wait (the log is still catching up); released, they go on.
  void hold_reads(bool held);
  bool reads_held() const { return reads_held_; }
  // Whether the daemon logs the group (persist.groups names it).
  bool persistent(const std::string& group);
  // The message log's answer to read `id` of connection conn: part of a history.
  void on_history(ConnId conn, uint64_t id, persist::ReadResult&& chunk);
  // The message log lost messages of these senders: each local one gets error 18 (at most one
  // per second; now_us as for on_open).
  void on_log_failed(const std::vector<std::string>& senders, const std::string& what,
                     uint64_t now_us);
  // Configuration changes from the ring (see groups::GroupState). The regular one returns the
  // state event to submit for the exchange.
  void on_transitional(uint64_t ordinal, const std::vector<groups::DaemonId>& daemons,
                       uint64_t next_ring = 0);
  groups::Event on_regular(uint64_t seq, uint64_t config,
                           const std::vector<groups::DaemonId>& daemons);
  // Tells every client the daemon is stopping, and closes them.
  void shutdown();

  size_t client_count() const { return sessions_.size(); }
  bool has_session(ConnId id) const { return sessions_.count(id) != 0; }
  const HubStats& stats() const { return stats_; }
  // Unsent bytes of all sessions together (as the shell last reported, plus what was sent).
  uint64_t queued_total() const { return queued_total_; }
  const groups::GroupState& group_state() const { return state_; }
  groups::GroupState& group_state() { return state_; }
  // The event deliver_bytes() last decoded, and its payload (a view while it lives in the
  // delivered bytes; else in the event): valid until the next call.
  const groups::Event& last_event() const { return event_; }
  std::string_view last_payload() const {
    return last_payload_.empty() ? std::string_view(event_.payload) : last_payload_;
  }
  // The sessions, for operators (agentd/admin_snapshot.h).
  std::vector<ClientInfo> clients() const;
  // The answer to an admin request passed to ClientIo::admin, or its refusal; nothing when the
  // client has gone meanwhile.
  void admin_reply(ConnId id, const std::string& command, std::string_view text);
  void admin_error(ConnId id, proto::ErrorCode code, const std::string& command,
                   const std::string& text);
  // Whether a client from peer may take admin actions (disconnect a client, make the daemon
  // leave): root, the daemon's own user, or a principal of admin.operators.
  bool is_operator(const Peer& peer) const;
  // Disconnects the local client with this private group (or private name), telling it
  // error 23; false when there is none.
  bool disconnect_client(const std::string& name, const std::string& by);

 private:
  struct Session {
    explicit Session(uint32_t max_frame) : reader(max_frame) {}
    proto::FrameReader reader;
    bool connected = false;  // hello accepted
    bool want_membership = true;
    std::string private_group;
    std::set<std::string> groups;  // joined or join submitted
    uint64_t queued_bytes = 0;
    bool closing = false;  // no more input is read and nothing more is sent
    bool hold_logged = false;  // its hold's start was logged (so its end is too)
    uint64_t opened_due = 0;  // when its hello is due (its entry in hello_due_)
    bool positions = false;  // data frames carry their position
    // History. Joins that asked for it wait for their own view; reads are served in order,
    // the front one at the log or waiting for the client to drain. While any read is queued,
    // everything else for the client is held back (in held) and follows the history.
    std::unordered_map<std::string, proto::History> history_joins;
    std::deque<LogRead> reads;
    bool read_out = false;    // the front read is at the log
    bool read_waits = false;  // its next chunk waits until the client has read what it has
    bool read_parked = false;  // its front read waits for the log's catch-up (hold_reads)
    uint64_t read_count = 0;  // entries sent for the front read
    bool read_gap = false;
    uint64_t next_read = 0;
    std::string held;
    uint64_t log_error_at = 0;  // when it was last told the log lost its messages
    Peer peer;
    // Authentication (TCP with clients.tcp_auth = "secret"): the nonce of its challenge, and
    // the hello that waits for the answer (its body, as the response covers it).
    std::string nonce;
    bool challenged = false;  // the challenge went out; only auth may follow
    proto::Hello hello;
    std::string hello_body;
    std::array<uint64_t, 6> sent{};  // multicasts by service (admin's client list)
  };

  void handle_frame(ConnId id, Session& s, const proto::Frame& f);
  void handle_hello(ConnId id, Session& s, std::string_view body);
  // The hello is accepted (after authentication where needed): the welcome, or why not.
  void finish_hello(ConnId id, Session& s, const proto::Hello& h);
  void handle_auth(ConnId id, Session& s, std::string_view body);
  // Refuses a client that did not authenticate (error 20, closed); log_line: what the daemon
  // logs (rate-limited), "" for nothing.
  void refuse_auth(ConnId id, Session& s, const std::string& to_client,
                   const std::string& log_line);
  void handle_multicast(ConnId id, Session& s, std::string_view body);
  void handle_history(ConnId id, Session& s, std::string_view body);
  void handle_admin(ConnId id, Session& s, std::string_view body);  // client_hub_admin.cpp
  // Checks and submits a join; false (an error sent) when refused.
  bool request_join(ConnId id, Session& s, const std::string& group);
  // Whether the session may join (send: send to) group by the access rules; when not, it is
  // told (error 19) and the daemon logs it.
  bool allowed(ConnId id, Session& s, const std::string& group, bool send);
  // Queues a history read for the session (held output starts with the first).
  void start_read(ConnId id, Session& s, const proto::History& h, persist::Position before);
  void issue_read(Session& s);
  // The front read is over: its end frame, then the next read or the held output.
  void end_read(ConnId id, Session& s, uint8_t flags);
  // Queues bytes for the session outside the hold (history); false when that dropped it.
  bool send_direct(ConnId id, Session& s, std::string_view bytes);
  // owner: keeps payload's bytes alive (the record views them), or null (it copies them).
  void log_message(uint64_t ring, uint64_t seq, const groups::Event& ev, std::string_view payload,
                   bool past_gap, const std::shared_ptr<const void>& owner);
  void send_error(ConnId id, proto::ErrorCode code, std::string subject, std::string text);
  // The session's queue passed the high-water mark / fell to the low-water mark
  // (back-pressure). end_hold: also when it leaves or is dropped (drained: it read its queue).
  void start_hold(ConnId id, Session& s);
  void end_hold(ConnId id, Session& s, bool drained);
  // Drops a session that does not read (error 14 with why), closing it without waiting for
  // its queue.
  void drop_slow(ConnId id, Session& s, const std::string& why);
  // Removes a session; a connected one has its disconnect ordered. close: ask the shell to close.
  void forget(ConnId id, bool close);
  std::vector<ConnId> to_abort_;  // slow clients: closed without flushing
  // Ends the sessions marked for dropping, unless called from inside a handler (depth_ > 0).
  void process_drops();
  // Queues the frame head + tail for a local member.
  // A session that asked for positions gets positioned_head instead of head (when given).
  void send_to(const std::string& member, std::string_view head, std::string_view tail,
               bool membership, bool tail_lives = false,
               std::string_view positioned_head = {});
  // Whether the session's queue is over a limit (then it is dropped as slow). With
  // back-pressure, a queue past the high-water mark starts the session's hold of the ring.
  bool check_queue(ConnId id, Session& s);
  std::string generate_name();
  // Sends deliveries_ to the local clients. A data delivery of event `viewed` takes its payload
  // from `payload` (the event was decoded without copying it).
  void route(const groups::Event* viewed = nullptr, std::string_view payload = {});
  void submit_event(const groups::Event& ev);

  const Config& cfg_;
  ClientIo& io_;
  Submit submit_;
  groups::GroupState state_;
  std::unordered_map<ConnId, Session> sessions_;
  std::unordered_map<std::string, ConnId> by_group_;  // private group -> connection
  // Private groups of closed sessions whose disconnect is not delivered yet: the name stays taken
  // until then, or that disconnect would end a new session's memberships.
  std::unordered_set<std::string> departing_;
  std::vector<ConnId> to_drop_;  // slow clients found while routing
  // Connections without hello, oldest first: (deadline, id). Entries of sessions that said
  // hello or ended meanwhile are skipped when they come up.
  std::deque<std::pair<uint64_t, ConnId>> hello_due_;
  // Refusals at the client limit: logged once, then one line per interval with the count.
  uint64_t refused_ = 0;          // not yet logged
  uint64_t refusal_logged_at_ = 0;
  bool refusal_logged_ = false;
  std::vector<groups::Delivery> deliveries_;
  groups::Event event_;  // the event deliver_bytes decodes into (reused)
  std::string_view last_payload_;  // its payload, viewed in the delivered bytes
  proto::MulticastView multicast_;  // the multicast handle_multicast decodes into (reused)
  std::string frame_;  // scratch buffer for encoding
  std::string positioned_frame_;
  size_t positions_sessions_ = 0;  // sessions that asked for positions
  std::vector<persist::Record> log_batch_;  // for the message log, not yet handed over
  bool log_on_receipt_ = false;
  // The local memberships' size in a state event (groups::encode_event: two names each).
  uint64_t state_bytes_ = 0;
  static uint64_t membership_bytes(const Session& s, const std::string& group) {
    return 2 + s.private_group.size() + group.size();
  }
  persist::Coverage* coverage_ = nullptr;
  bool reads_held_ = false;
  groups::Event received_event_;  // log_received decodes into it (reused)
  // Logged at reception, not yet delivered here: history reads stop before the first (the log
  // holds them, the clients have not had them).
  std::deque<persist::Position> undelivered_;
  std::unordered_map<std::string, bool> persistent_;  // persistent_group(), remembered
  std::unordered_map<std::string, uint32_t> per_user_;  // connections by Peer::user_key()
  uint64_t now_us_ = 0;  // the latest time given (on_open, expire): for rate-limited log lines
  uint64_t denials_ = 0, denials_logged_at_ = 0;
  uint64_t auth_failures_ = 0, auth_failures_logged_at_ = 0;  // refused authentications
  std::shared_ptr<const clientauth::Secrets> secrets_;
  uint64_t user_refusals_ = 0, user_refusals_logged_at_ = 0;  // clients.max_clients_per_user  // access refusals not logged yet / last line
  std::string multicast_event_;  // handle_multicast encodes here; submit_ leaves a spare
  uint64_t generated_names_ = 0;
  uint64_t queued_total_ = 0;  // the sessions' queued_bytes, summed
  // Sessions holding the ring back: since when (µs, as now_us_). Holds logged: one start line
  // per 10 s at most (with the count of those not logged), and the end of each logged one.
  std::unordered_map<ConnId, uint64_t> holding_;
  uint64_t holds_unlogged_ = 0, hold_logged_at_ = 0;
  int depth_ = 0;  // > 0 while handling; drops wait until the outermost handler finishes
  HubStats stats_;
};

}  // namespace agent::daemon
