// agentd's configuration: a TOML file (documented in docs/agentd.md and etc/agentd.toml)
// with command-line overrides.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentd/log.h"
#include "transport/client_auth.h"
#include "transport/ring_seal.h"

namespace agent::daemon {

struct Endpoint {
  std::string host;  // "" when disabled
  uint16_t port = 0;
};

struct RingDaemon {
  uint32_t id = 0;
  std::string address;  // IPv4 or IPv6 literal or host name
  uint16_t port = 0;
  // Optional: the daemon's name (daemon.name there), so that a file listing every daemon can
  // be checked for names used twice; this daemon's own entry must then name it.
  std::string name;
};

struct RingSettings {
  uint32_t id = 1;  // this daemon's member id; must be listed in daemons (if any)
  std::vector<RingDaemon> daemons;  // empty: a ring of one, no network
  uint32_t packet_bytes = 8192;     // data packet size (UDP payload)
  bool udp_offload = true;          // send runs of packets as one segmented buffer (UDP GSO/GRO)
  // IPv4 multicast group and port for packets to every daemon (one send instead of one per
  // daemon); host "" (default): unicast to each daemon's address.
  Endpoint multicast;
  uint32_t global_window = 512;     // packets per token rotation, whole ring
  uint32_t personal_window = 256;   // packets per token visit
  uint32_t accelerated_window = 0;  // packets sent after passing the token (0: off)
  uint32_t max_outstanding = 8192;  // packets in flight before every daemon has them
  uint64_t token_retransmit_us = 20000;
  uint64_t token_hold_us = 0;           // 0: automatic (token_hold_for)
  uint64_t min_rotation_us = 500;       // a token back sooner waits here until then; 0: off
  uint64_t token_loss_us = 250000;      // no token this long: configuration change
  uint64_t join_timeout_us = 30000;     // resend joins while gathering
  uint64_t consensus_timeout_us = 150000;  // give up on silent daemons after this
  uint64_t max_pending_bytes = 64u << 20;
  // The cluster key (docs/security.md): every ring datagram is sealed with it. "" (default):
  // none set, which a ring of several daemons refuses; kNoKey: explicitly none (insecure).
  std::string key_file;
  // Optional second key accepted besides key_file's (key rotation; SIGHUP reloads both).
  std::string accept_key_file;
  bool encrypt = true;  // false: authenticate only
};
// ring.key_file = "none": the ring runs without authentication, by choice.
constexpr const char* kNoKey = "none";

// How long an idle ring's holder keeps the token: as set, or by default an eighth of the
// token-loss time per daemon (a quiet rotation takes a quarter of token_loss), at most 50 ms
// and at least 1 ms. Daemons waiting to send wake the holder, so the hold costs no latency.
uint64_t token_hold_for(const RingSettings& r);

// The message log (persist/message_log.h): which groups' messages this daemon keeps, where, how
// durably and for how long. Off while groups is empty.
// Retention for the groups a rule names ([[persist.retain]]); an unset limit is [persist]'s.
struct RetainRule {
  std::vector<std::string> groups;  // names or patterns
  std::optional<uint64_t> messages, bytes, seconds;
};

struct PersistSettings {
  std::vector<std::string> groups;  // names or patterns ('*', '?') of persistent groups
  std::string dir;                  // "" : <state_dir>/log
  // none: writes go to the OS (a killed daemon keeps them, a crashed host may not); batch: on
  // disk within batch_ms (group commit); always: on disk before the daemon acknowledges.
  enum class Durability { kNone, kBatch, kAlways };
  Durability durability = Durability::kBatch;
  uint32_t batch_ms = 10;
  uint64_t retain_messages = 0;  // per group; 0: no limit
  uint64_t retain_bytes = 0;     // payload bytes per group; 0: no limit
  uint64_t retain_seconds = 0;   // 0: no limit
  // Writes stop (and are reported) while the log's filesystem has less free: a full disk
  // would stop the log until a restart.
  uint64_t min_free_bytes = 64u << 20;
  std::vector<RetainRule> retain;  // the first rule naming a group gives its retention
  bool enabled() const { return !groups.empty(); }
  // Whether any group has a retention limit.
  bool retains() const;
};
// The retention of one group: its first [[persist.retain]] rule over [persist]'s limits.
struct GroupRetention {
  uint64_t messages = 0, bytes = 0, seconds = 0;  // 0: no limit
};
GroupRetention retention_for(const PersistSettings& p, const std::string& group);
const char* durability_name(PersistSettings::Durability d);

// The WAN bridge ([bridge]; docs/bridge.md). One daemon of a site runs it; it links the site
// with the other sites listed, each site's bridge linked to every other's (a full mesh).
struct BridgeSite {
  std::string name;
  Endpoint address;  // where its bridge listens; dialed only by the site whose name sorts first
};
struct BridgeSettings {
  std::string site;      // this site's name; "" : no bridge
  Endpoint listen;       // where this bridge accepts links ("" : accepts none)
  std::vector<BridgeSite> sites;
  std::vector<std::string> groups;  // bridged groups, names or patterns; empty: every group
  std::string key_file;  // the link key, shared by the sites (agentd keygen makes one)
  bool compress = true;  // LZ4 on batches
  bool encrypt = true;   // AES-256-GCM on the link after the handshake
  uint64_t queue_bytes = 256u << 20;   // this site's traffic kept until every site has it
  uint64_t window_bytes = 8u << 20;    // unacknowledged bytes per link
  uint32_t heartbeat_ms = 1000;
  uint32_t link_timeout_ms = 5000;
  uint32_t backoff_min_ms = 100;   // reconnect delays, doubling up to backoff_max_ms
  uint32_t backoff_max_ms = 5000;
  std::string key;  // read from key_file at start
  bool enabled() const { return !site.empty(); }
};

// Who may join and send to groups (the [[access]] rules). A principal is "*" (anyone),
// "user:NAME", "uid:N", "group:NAME", "gid:N" (Unix-socket clients, by the peer credentials
// the kernel gives), "tcp:*" or "tcp:ADDRESS" (TCP clients, by address), "tcpuser:*" or
// "tcpuser:NAME" (TCP clients that authenticated, by their name in clients.secrets_file).
// User and group names are resolved when the configuration is loaded; tcpuser names are the
// secrets file's, a namespace of their own (a secrets entry "root" is not the Unix root).
struct Principal {
  enum class Kind { kAnyone, kUid, kGid, kTcpAny, kTcpAddress, kTcpUserAny, kTcpUser };
  Kind kind = Kind::kAnyone;
  uint32_t id = 0;      // kUid, kGid
  std::string address;  // kTcpAddress; kTcpUser: the name
  std::string text;     // as written, for messages
};
struct AccessRule {
  std::vector<std::string> groups;  // names or patterns ('*', '?') the rule is for
  bool join_listed = false, send_listed = false;  // absent: anyone may
  std::vector<Principal> join, send;  // who may join (and read the history); who may send
  std::string origin;  // "agentd.toml:12", for log lines
};

constexpr uint32_t kNoUid = 0xffffffff;
constexpr uint32_t kMaxAdminHttpThreads = 64;

struct Config {
  uint64_t incarnation = 1;  // set at start from the state directory
  uint32_t ring_seq_floor = 0;  // set at start from the state directory
  uint64_t ring_epoch = 0;      // set at start: this start's epoch for sealing ring datagrams
  // Read from ring.key_file (first: seals) and ring.accept_key_file; empty: no sealing.
  std::vector<ringseal::Key> ring_keys;
  std::string name;  // this daemon's name: private groups are "#client#name"
  log::Level log_level = log::Level::kInfo;
  // Durable identity (incarnation, ring sequence floor) and the lock that keeps two daemons
  // from sharing it. "" (default): default_state_dir(name).
  std::string state_dir;
  // CPU priority of the daemon's threads: a daemon that other processes keep off the CPU
  // holds the token, and the whole ring waits. kHigh: nice -10; kRealtime: SCHED_RR (as
  // Corosync does); kNormal: unchanged. Needs CAP_SYS_NICE (root); without it the daemon
  // says so and runs at normal priority.
  enum class Priority { kNormal, kHigh, kRealtime };
  Priority priority = Priority::kHigh;
  // Clients
  std::string unix_socket = "/tmp/agentd.sock";  // "" disables
  // The socket file's permissions and group: who may connect at all. Not world-writable
  // by default.
  uint32_t unix_mode = 0660;
  std::string unix_group;  // "" : the daemon's group
  // Connections per user (Unix socket: uid) or per address (TCP); 0: no limit.
  uint32_t max_clients_per_user = 256;
  std::vector<AccessRule> access;  // first rule whose groups match a group decides
  Endpoint tcp{"127.0.0.1", 4803};               // host "" disables
  // How TCP clients prove who they are (docs/security.md). kSecret: by a challenge-response
  // over a shared secret of clients.secrets_file; without that file the TCP listener stays
  // closed. kNone: not at all (known by address only), by explicit choice.
  enum class TcpAuth { kSecret, kNone };
  TcpAuth tcp_auth = TcpAuth::kSecret;
  std::string secrets_file;  // "" : none (no authenticated TCP)
  // Read from secrets_file at start and on SIGHUP; null without one.
  std::shared_ptr<const clientauth::Secrets> tcp_secrets;
  uint32_t max_clients = 1024;
  // A connection that has not said hello by then is closed (error 12): idle connections
  // cannot hold the client slots. Time the daemon does not read clients (the ring's queue is
  // full) does not count.
  uint32_t hello_timeout_ms = 10000;
  uint32_t max_message_bytes = 16u << 20;
  uint64_t client_queue_bytes = 64u << 20;  // unsent bytes per client before it is dropped
  // Unsent bytes of all clients together: beyond this the client with the most is dropped as
  // slow, so that clients that stop reading cannot take the daemon's memory (the per-client
  // limit alone allows max_clients times it).
  uint64_t client_queue_total_bytes = 256u << 20;
  uint32_t max_groups_per_client = 4096;  // joins beyond this are refused (error 13)
  // What happens to a client that does not read its messages (docs/agentd.md, "Slow clients").
  // kDisconnect: past client_queue_bytes it is dropped (error 14). kBackpressure: past half of
  // client_queue_bytes it holds the whole ring back (no sender gets further ahead) until it has
  // read down to a quarter; one that holds the ring longer than slow_timeout_ms is dropped
  // (error 14). client_queue_bytes and client_queue_total_bytes stay hard bounds in both.
  enum class SlowPolicy { kDisconnect, kBackpressure };
  SlowPolicy slow_policy = SlowPolicy::kDisconnect;
  uint32_t slow_timeout_ms = 10000;
  // Kernel send buffer of each client connection (SO_SNDBUF; 0 keeps the system's default).
  // A receiver that reads in bursts then finds its messages in the socket instead of the
  // daemon copying what the socket did not take into its own queue.
  uint32_t client_socket_buffer_bytes = 4u << 20;
  RingSettings ring;
  PersistSettings persist;
  BridgeSettings bridge;
  // The admin service ([admin], docs/agentd.md "Operating a daemon"): an HTTP endpoint with
  // /metrics, /status and the status page (host "": off), served by admin_http_threads
  // threads; and who may take admin actions besides root and the daemon's own user.
  Endpoint admin_http{"127.0.0.1", 4804};
  uint32_t admin_http_threads = 2;
  std::vector<Principal> admin_operators;
  uint32_t daemon_uid = kNoUid;  // set at start: the daemon's effective uid
  // Where each setting came from ("agentd.toml:12", "--tcp"), by key ("clients.tcp",
  // "ring.daemons[2]"), so that messages about them can say so.
  std::map<std::string, std::string> origin;
};

// Limits of the integer settings, in the units of the file (ms for *_ms keys).
constexpr uint32_t kMaxClients = 1u << 20;
constexpr uint32_t kMaxGroupsPerClient = 1u << 20;
constexpr uint64_t kMaxQueueBytes = 64ull << 30;         // per client, all clients, ring queue
constexpr uint32_t kMaxSocketBufferBytes = 1u << 30;
constexpr uint32_t kMinPacketBytes = 512, kMaxPacketBytes = 65000;
constexpr uint32_t kMaxWindow = 1u << 20;                  // ring windows, packets
constexpr uint32_t kMaxNodeId = 0xfffffffd;                // above: reserved (membership::kAllDaemons)
constexpr size_t kMaxRingDaemons = 256;
constexpr uint64_t kMaxTimeoutUs = 3600ull * 1000 * 1000;  // one hour
constexpr uint64_t kMaxConfigFileBytes = 1u << 20;

// Where a daemon keeps its state unless daemon.state_dir says otherwise: a directory of its
// own under kStateBase, named after the daemon (characters other than letters, digits, '-',
// '_' and a '.' not in front are written %XX), so daemons on one host do not share one.
constexpr const char* kStateBase = "/tmp/agentd-state";
std::string default_state_dir(const std::string& daemon_name);

// Parses an access rule's principal ("user:alice", "tcp:*", ...); "" or why not.
std::string parse_principal(const std::string& text, Principal& p);

// The default daemon name: the short host name, cut to the name limit.
std::string default_daemon_name();

// Reads a TOML file over the defaults in cfg. Returns "" on success, else one line per problem
// ("file:line: key = value: what is wrong"); a file that cannot be read is one line with the
// path and the system's reason. Values are checked against their ranges here; checks between
// keys are validate()'s.
std::string load_config_file(const std::string& path, Config& cfg);
// The offset of the first byte of s that does not belong to valid UTF-8 (npos: none).
size_t first_invalid_utf8(std::string_view s);

// Parses "host:port", "[v6addr]:port" or "port" (host 127.0.0.1). "" or "off" disables.
std::string parse_endpoint(const std::string& text, Endpoint& out);

// The [persist] section (agentd/config_persist.cpp); "" or what is wrong, naming the key.
std::string load_persist_section(const void* toml_table, PersistSettings& p);
std::string validate_persist(const Config& cfg);
// The [bridge] section (agentd/config_bridge.cpp), its checks, and its key file read into
// cfg.bridge.key.
std::string load_bridge_section(const void* toml_table, BridgeSettings& b);
std::string validate_bridge(const Config& cfg);
std::string load_bridge_key(Config& cfg);
// The names of this site's daemons (the ring's, or this daemon's alone).
std::vector<std::string> site_daemons(const Config& cfg);
// Whether group is persistent under these settings.
bool persistent_group(const PersistSettings& p, const std::string& group);

// Checks every value's range and the rules between keys (ring.daemons without duplicate ids,
// names or address:port; timeouts that fit together...). "" when valid, else one line per
// problem, each naming the key, its value and where it was set.
std::string validate(const Config& cfg);

// Reads the key files the ring settings name into cfg.ring_keys: "" or one line per problem.
std::string load_ring_keys(Config& cfg);
// Whether the ring's datagrams are sealed (a key is configured and the ring has peers).
bool ring_sealed(const Config& cfg);
// Reads clients.secrets_file into cfg.tcp_secrets (when set): "" or what is wrong, naming
// where the key was set and the file.
std::string load_client_secrets(Config& cfg);
// Whether the daemon opens its TCP listener: clients.tcp is on, and TCP clients either
// authenticate against a secrets file or (tcp_auth = "none") need not.
bool tcp_listening(const Config& cfg);
const char* tcp_auth_name(Config::TcpAuth a);
const char* slow_policy_name(Config::SlowPolicy p);

// The settings that differ between a and b, by key, for a reload: which of them take effect.
std::vector<std::string> changed_keys(const Config& a, const Config& b);

}  // namespace agent::daemon
