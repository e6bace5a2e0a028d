// libagent: the C client library. Implements agent.h over the client protocol
// (docs/client-protocol.md) with the codec in transport/.
#include "agent.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <mutex>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "send_queue.h"
#include "transport/client_auth.h"
#include "transport/client_protocol.h"
#include "transport/names.h"
#include "transport/wire.h"

#ifndef AGENT_VERSION_STRING
#define AGENT_VERSION_STRING "0.0.0"
#endif

namespace proto = agent::proto;
namespace names = agent::names;

namespace {
struct FreeMessage {
  void operator()(agent_message* m) const { std::free(m); }
};
}  // namespace

struct agent_conn {
  int fd = -1;
  std::string private_group;
  std::string daemon;
  size_t max_message = proto::kDefaultMaxMessageBytes;
  uint32_t max_frame = proto::kDefaultMaxMessageBytes + proto::kFrameOverheadBytes;
  std::mutex send_mu, recv_mu;
  // What was read from the socket, under recv_mu: bytes [in_pos, in_len) of `in` are not
  // returned yet; `frames` complete frames start at in_pos and end at scan_pos, a partial one
  // may follow. A frame is decoded when it is returned, from where it lies.
  std::vector<char> in;
  size_t in_pos = 0, in_len = 0, scan_pos = 0, frames = 0;
  bool bad_frame = false;  // a length past max_frame follows the counted frames
  bool read_first = false;  // the last read took all it asked for: more is likely waiting
  bool closed = false;
  bool no_read_ahead = false;  // AGENT_NO_READ_AHEAD
  // agent_next's message: a data message points into `in` and names[]; other kinds are
  // decoded into `owned`. Valid until the next receive on the connection.
  agent_message borrowed{};
  std::unique_ptr<char[][AGENT_MAX_GROUP_NAME]> names;
  std::unique_ptr<agent_message, FreeMessage> owned;
  std::string out;  // frames not yet written (AGENT_MORE), under send_mu
  // After the handshake: writes frames in order without making callers wait for a busy socket.
  std::unique_ptr<agent::client::SendQueue> sendq;
};

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline, int timeout_ms) {
  if (timeout_ms < 0) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Writes everything or fails (AGENT_ERR_CLOSED). The socket is blocking for writes.
int write_all(int fd, const std::string& b) {
  size_t done = 0;
  while (done < b.size()) {
    ssize_t n = ::send(fd, b.data() + done, b.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      return AGENT_ERR_CLOSED;
    }
    done += static_cast<size_t>(n);
  }
  return AGENT_OK;
}

// Splits "host:port", "port", "port@host", "[v6]:port".
bool parse_tcp(const std::string& s, std::string& host, std::string& port) {
  host = "127.0.0.1";
  if (auto at = s.find('@'); at != std::string::npos) {
    port = s.substr(0, at);
    host = s.substr(at + 1);
  } else if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 2 > s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else if (auto colon = s.rfind(':'); colon != std::string::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  } else {
    port = s;
  }
  return !port.empty() && port.find_first_not_of("0123456789") == std::string::npos && !host.empty();
}

int wait_connected(int fd, int timeout_ms) {
  pollfd p{fd, POLLOUT, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r <= 0) {
    errno = r == 0 ? ETIMEDOUT : errno;
    return -1;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) errno = err;
  return err == 0 ? 0 : -1;
}

// Closes fd without changing errno (which says why connecting failed).
void close_keeping_errno(int fd) {
  int saved = errno;
  ::close(fd);
  errno = saved;
}

int open_socket(const std::string& daemon, int timeout_ms) {
  if (!daemon.empty() && (daemon[0] == '/' || daemon[0] == '.')) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (daemon.size() >= sizeof a.sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    std::memcpy(a.sun_path, daemon.c_str(), daemon.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close_keeping_errno(fd);
      return -1;
    }
    return fd;
  }
  std::string host, port;
  if (!parse_tcp(daemon, host, port)) {
    errno = EINVAL;
    return -1;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) {
    errno = ENXIO;  // the name does not resolve to an address
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc == 0 || (errno == EINPROGRESS && wait_connected(fd, timeout_ms) == 0)) {
      int flags = ::fcntl(fd, F_GETFL);
      ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      break;
    }
    close_keeping_errno(fd);
    fd = -1;
  }
  int saved = errno;
  ::freeaddrinfo(res);
  errno = saved;
  return fd;
}

int decode_frame(proto::Verb verb, std::string_view body, agent_message** out);

constexpr size_t kReadBytes = 256 * 1024;  // read at once (unless AGENT_NO_READ_AHEAD)

uint32_t frame_length(const char* p) {
  auto* u = reinterpret_cast<const unsigned char*>(p);
  return u[0] | u[1] << 8 | u[2] << 16 | static_cast<uint32_t>(u[3]) << 24;
}

// Counts the complete frames that the last read added.
void scan(agent_conn* c) {
  while (!c->bad_frame && c->scan_pos + 4 <= c->in_len) {
    uint32_t len = frame_length(c->in.data() + c->scan_pos);
    if (len == 0 || len > c->max_frame) {
      c->bad_frame = true;
      break;
    }
    if (c->in_len - c->scan_pos - 4 < len) break;
    c->scan_pos += 4 + len;
    ++c->frames;
  }
}

// Makes sure at least one complete frame is buffered: reads what the socket has, waiting up to
// timeout_ms for something. Returns AGENT_OK, or an error, or AGENT_ERR_TIMEOUT. Moves the
// buffered bytes: messages agent_next handed out are no longer valid afterwards.
// AGENT_NO_READ_AHEAD reads no byte of the next frame's body (the length prefix first, then the
// rest and the next frame's length prefix in one system call), so that the socket stays
// readable while another complete frame waits: a frame has at least one byte after its prefix.
int fill(agent_conn* c, int timeout_ms) {
  if (c->frames > 0) return AGENT_OK;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    if (c->bad_frame) {
      c->closed = true;
      return AGENT_ERR_PROTOCOL;
    }
    if (c->closed) return AGENT_ERR_CLOSED;
    // Only a partial frame is left: move it to the front.
    if (c->in_pos > 0) {
      std::memmove(c->in.data(), c->in.data() + c->in_pos, c->in_len - c->in_pos);
      c->in_len -= c->in_pos;
      c->scan_pos -= c->in_pos;
      c->in_pos = 0;
    }
    size_t frame_end = c->in_len >= 4 ? 4 + size_t{frame_length(c->in.data())} : 4;
    size_t need = c->no_read_ahead ? (c->in_len >= 4 ? frame_end + 4 : 4)
                                   : std::max(kReadBytes, frame_end);
    if (c->in.size() < need) {
      c->in.resize(need);
    } else if (c->in.size() > 4 * kReadBytes && need <= kReadBytes) {
      c->in.resize(kReadBytes);  // after a large message
      c->in.shrink_to_fit();
    }
    // A reader that keeps up finds the socket empty: it waits first, and reads once woken. One
    // that is behind reads first (poll would only say what the last full read implies).
    if (!c->read_first) {
      pollfd p{c->fd, POLLIN, 0};
      int r = ::poll(&p, 1, remaining_ms(deadline, timeout_ms));
      if (r < 0 && errno != EINTR) return AGENT_ERR_CLOSED;
      if (r == 0) return AGENT_ERR_TIMEOUT;
      if (r < 0) continue;
    }
    size_t want = (c->no_read_ahead ? need : c->in.size()) - c->in_len;
    ssize_t n = ::recv(c->fd, c->in.data() + c->in_len, want, MSG_DONTWAIT);
    c->read_first = n > 0 && static_cast<size_t>(n) == want;
    if (n > 0) {
      c->in_len += static_cast<size_t>(n);
      scan(c);
      if (c->frames > 0) return AGENT_OK;
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    c->closed = true;
    return AGENT_ERR_CLOSED;
  }
}

// Takes the next buffered frame (fill said there is one).
void next_frame(agent_conn* c, proto::Verb& verb, std::string_view& body) {
  const char* p = c->in.data() + c->in_pos;
  uint32_t len = frame_length(p);
  verb = static_cast<proto::Verb>(static_cast<uint8_t>(p[4]));
  body = std::string_view(p + 5, len - 1);
  c->in_pos += 4 + len;
  --c->frames;
  if (c->in_pos == c->in_len) c->in_pos = c->in_len = c->scan_pos = 0;  // nothing to move
}

int map_error(proto::ErrorCode code) {
  switch (code) {
    case proto::ErrorCode::kIllegalName: return AGENT_ERR_ILLEGAL_NAME;
    case proto::ErrorCode::kNameTaken: return AGENT_ERR_NAME_TAKEN;
    case proto::ErrorCode::kVersionMismatch: return AGENT_ERR_VERSION;
    case proto::ErrorCode::kAuthFailed: return AGENT_ERR_AUTH;
    default: return AGENT_ERR_REJECTED;
  }
}


// One allocation holds the message, its name arrays and its payload.
agent_message* make_message(size_t nnames, size_t nsets, size_t payload) {
  size_t names_off = (sizeof(agent_message) + 15) & ~size_t{15};
  size_t sets_off = names_off + nnames * AGENT_MAX_GROUP_NAME;
  sets_off = (sets_off + 7) & ~size_t{7};
  size_t data_off = sets_off + nsets * sizeof(size_t);
  size_t total = data_off + payload + 1;
  char* block = static_cast<char*>(std::malloc(total));
  if (!block) return nullptr;
  std::memset(block, 0, data_off);  // the payload is written by the caller
  block[data_off + payload] = '\0';
  auto* m = reinterpret_cast<agent_message*>(block);
  m->groups = reinterpret_cast<char(*)[AGENT_MAX_GROUP_NAME]>(block + names_off);
  m->vs_set_sizes = reinterpret_cast<size_t*>(block + sets_off);
  m->data = block + data_off;
  return m;
}

void copy_name(char* dst, std::string_view s) {
  size_t n = std::min(s.size(), static_cast<size_t>(AGENT_MAX_GROUP_NAME - 1));
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

// A data frame's parts, as views into its body: the same checks as proto::decode_data. The
// group names stay in their encoded form (each a length byte and the name) until copied.
struct DataParts {
  uint32_t service = 0;
  int16_t msg_type = 0;
  std::string_view sender;
  size_t ngroups = 0;
  std::string_view group_bytes;
  std::string_view payload;
};
bool parse_data(std::string_view body, DataParts& d) {
  agent::wire::Reader r(body);
  d.service = r.u32();
  d.msg_type = r.i16();
  d.sender = r.str8();
  d.ngroups = r.u16();
  if (!r.ok() || d.ngroups > proto::kMaxGroupsPerMessage || d.ngroups > r.remaining()) return false;
  size_t before = r.remaining();
  const char* groups = body.data() + (body.size() - before);
  for (size_t i = 0; i < d.ngroups; ++i) r.str8();
  d.group_bytes = std::string_view(groups, before - r.remaining());
  d.payload = r.bytes32();
  return r.done();
}

// Fills a message's data fields but the payload; its groups array holds d.ngroups names.
void set_data(agent_message* m, const DataParts& d) {
  m->kind = AGENT_MSG_DATA;
  m->service = d.service;
  copy_name(m->sender, d.sender);
  m->msg_type = d.msg_type;
  m->ngroups = d.ngroups;
  agent::wire::Reader r(d.group_bytes);
  for (size_t i = 0; i < d.ngroups; ++i) copy_name(m->groups[i], r.str8());
  m->len = d.payload.size();
}

// A data frame into a message of its own: one copy of the payload.
int decode_data_message(std::string_view body, agent_message** out) {
  DataParts d;
  if (!parse_data(body, d)) return AGENT_ERR_PROTOCOL;
  agent_message* m = make_message(d.ngroups, 0, d.payload.size());
  if (!m) return AGENT_ERR_NOMEM;
  set_data(m, d);
  std::memcpy(const_cast<void*>(m->data), d.payload.data(), d.payload.size());
  *out = m;
  return AGENT_OK;
}

// A positioned data frame's position, taken off the front of its body (the rest is a data
// frame's body); false when the body is too short.
bool take_position(std::string_view& body, agent_position& pos) {
  if (body.size() < 16) return false;
  agent::wire::Reader r(body.substr(0, 16));
  pos.ring = r.u64();
  pos.ordinal = r.u64();
  body.remove_prefix(16);
  return true;
}

int decode_frame(proto::Verb verb, std::string_view body, agent_message** out) {
  switch (verb) {
    case proto::Verb::kData:
      return decode_data_message(body, out);
    case proto::Verb::kPositionedData: {
      agent_position pos{0, 0};
      if (!take_position(body, pos)) return AGENT_ERR_PROTOCOL;
      int rc = decode_data_message(body, out);
      if (rc == AGENT_OK) (*out)->position = pos;
      return rc;
    }
    case proto::Verb::kHistoryEnd: {
      auto d = proto::decode_history_end(body);
      if (!d) return AGENT_ERR_PROTOCOL;
      agent_message* m = make_message(0, 0, 0);
      if (!m) return AGENT_ERR_NOMEM;
      m->kind = AGENT_MSG_HISTORY_END;
      copy_name(m->sender, d->group);
      m->position = {d->ring, d->ordinal};
      m->history_count = d->count;
      m->history_flags = d->flags;
      m->data = nullptr;
      *out = m;
      return AGENT_OK;
    }
    case proto::Verb::kMembership: {
      auto d = proto::decode_membership(body);
      if (!d) return AGENT_ERR_PROTOCOL;
      size_t in_sets = 0;
      for (auto& s : d->vs_sets) in_sets += s.size();
      // Members first, then every vs-set's members, in one name array.
      agent_message* m = make_message(d->members.size() + in_sets, d->vs_sets.size(), 0);
      if (!m) return AGENT_ERR_NOMEM;
      m->kind = AGENT_MSG_MEMBERSHIP;
      m->service = d->service;
      copy_name(m->sender, d->group);
      m->ngroups = d->members.size();
      for (size_t i = 0; i < d->members.size(); ++i) copy_name(m->groups[i], d->members[i]);
      m->vs_members = m->groups + d->members.size();
      size_t k = 0;
      for (size_t i = 0; i < d->vs_sets.size(); ++i) {
        m->vs_set_sizes[i] = d->vs_sets[i].size();
        for (auto& n : d->vs_sets[i]) copy_name(m->vs_members[k++], n);
      }
      m->nvs_sets = d->vs_sets.size();
      m->view.config = d->view.config;
      m->view.seq = d->view.seq;
      copy_name(m->changed, d->changed);
      m->data = nullptr;
      m->len = 0;
      *out = m;
      return AGENT_OK;
    }
    case proto::Verb::kError: {
      auto d = proto::decode_error(body);
      if (!d) return AGENT_ERR_PROTOCOL;
      agent_message* m = make_message(0, 0, d->text.size());
      if (!m) return AGENT_ERR_NOMEM;
      m->kind = AGENT_MSG_ERROR;
      m->error_code = static_cast<int>(d->code);
      copy_name(m->sender, d->subject);
      std::memcpy(const_cast<void*>(m->data), d->text.data(), d->text.size());
      m->len = d->text.size();
      *out = m;
      return AGENT_OK;
    }
    default:
      return AGENT_ERR_PROTOCOL;
  }
}

int send_frame(agent_conn* c, std::string& frame) {
  if (c->closed) return AGENT_ERR_CLOSED;
  int rc = write_all(c->fd, frame);
  if (rc != AGENT_OK) c->closed = true;
  return rc;
}

// Reads and discards until the peer closes (or fails), for at most wait_ms.
void drain_until_closed(int fd, int wait_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  char scratch[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    ssize_t n = ::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
    if (n == 0) return;  // the daemon closed: it has read everything
    if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return;
  }
}

// Hands the frames c->out holds to the send queue (under send_mu): written now, or by the
// queue's writer while the socket is busy. A failed write, now or earlier, closes.
int flush_out(agent_conn* c) {
  if (c->closed || c->sendq->failed()) {
    c->closed = true;
    c->out.clear();
    return AGENT_ERR_CLOSED;
  }
  if (c->out.empty()) return AGENT_OK;
  int rc = c->sendq->submit(c->out);
  if (rc != AGENT_OK) c->closed = true;
  c->out.clear();
  if (c->out.capacity() > 4 * AGENT_SEND_BUFFER) c->out.shrink_to_fit();
  return rc;
}


// Who the client is where a daemon asks (TCP with authentication).
struct Credentials {
  std::string user, secret;
};

// The credentials of the environment: $AGENT_SECRET_FILE (lines "NAME SECRET", mode 0600) and
// $AGENT_USER (the line to use; may be left out when the file has one). False when there are
// none that can be used.
bool credentials_from_env(Credentials& out) {
  const char* file = std::getenv("AGENT_SECRET_FILE");
  if (!file || !*file) return false;
  agent::clientauth::Secrets secrets;
  if (!agent::clientauth::load_secrets_file(file, secrets).empty()) return false;
  const char* user = std::getenv("AGENT_USER");
  if (user && *user) {
    auto it = secrets.by_name.find(user);
    if (it == secrets.by_name.end()) return false;
    out = {it->first, it->second};
    return true;
  }
  if (secrets.by_name.size() != 1) return false;
  out = {secrets.by_name.begin()->first, secrets.by_name.begin()->second};
  return true;
}

// The first frame after hello is buffered: a welcome fills in c, an error says why not.
int take_welcome(agent_conn* c) {
  proto::Verb verb;
  std::string_view body;
  next_frame(c, verb, body);
  if (verb == proto::Verb::kWelcome) {
    auto w = proto::decode_welcome(body);
    if (!w) return AGENT_ERR_PROTOCOL;
    c->private_group = w->private_group;
    c->daemon = w->daemon;
    c->max_message = w->max_message_bytes;
    c->max_frame = w->max_message_bytes + proto::kFrameOverheadBytes;
    return AGENT_OK;
  }
  if (verb == proto::Verb::kError) {
    auto e = proto::decode_error(body);
    return e ? map_error(e->code) : AGENT_ERR_PROTOCOL;
  }
  return AGENT_ERR_PROTOCOL;
}

int connect_with(const char* daemon, const char* name, int flags, int timeout_ms,
                 const Credentials* given, agent_conn** out) {
  if (!out) return AGENT_ERR_INVALID;
  *out = nullptr;
  bool generate = (flags & AGENT_GENERATE_NAME) != 0;
  std::string nm = name ? name : "";
  if (!generate && !names::valid_private_name(nm)) return AGENT_ERR_ILLEGAL_NAME;
  std::string where;
  if (daemon && *daemon) where = daemon;
  else if (const char* env = std::getenv("AGENT_DAEMON"); env && *env) where = env;
  else where = "/tmp/agentd.sock";
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  int fd = open_socket(where, timeout_ms);
  if (fd < 0) return AGENT_ERR_CONNECT;
  auto* c = new (std::nothrow) agent_conn;
  if (!c) {
    ::close(fd);
    return AGENT_ERR_NOMEM;
  }
  c->fd = fd;
  c->no_read_ahead = (flags & AGENT_NO_READ_AHEAD) != 0;
  proto::Hello h;
  h.flags = static_cast<uint8_t>(((flags & AGENT_WANT_MEMBERSHIP) ? proto::kHelloWantMembership : 0) |
                                 (generate ? proto::kHelloGenerateName : 0) |
                                 ((flags & AGENT_WANT_POSITIONS) ? proto::kHelloPositions : 0));
  h.name = generate ? "" : nm;
  std::string frame;
  proto::encode(frame, h);
  // The hello's body: an authentication's response covers it.
  std::string hello_body = frame.substr(proto::kFrameHeaderBytes);
  int rc = send_frame(c, frame);
  if (rc != AGENT_OK) {
    // A daemon that refuses the connection (too many clients) says why and closes, maybe
    // before the hello got there: read what it said.
    c->closed = false;
    int left = remaining_ms(deadline, timeout_ms);
    if (fill(c, left < 0 || left > 1000 ? 1000 : left) == AGENT_OK)
      rc = AGENT_OK;
    else
      rc = AGENT_ERR_CLOSED;
  } else {
    rc = fill(c, remaining_ms(deadline, timeout_ms));
  }
  if (rc == AGENT_OK && c->in_len > proto::kFrameHeaderBytes &&
      static_cast<proto::Verb>(static_cast<uint8_t>(c->in[c->in_pos + 4])) ==
          proto::Verb::kChallenge) {
    // The daemon wants to know who this is: prove the secret of a name, then the welcome.
    proto::Verb verb;
    std::string_view body;
    next_frame(c, verb, body);
    auto ch = proto::decode_challenge(body);
    Credentials env;
    const Credentials* cred = given ? given : credentials_from_env(env) ? &env : nullptr;
    if (!ch || ch->method != agent::clientauth::kMethodSecret ||
        ch->nonce.size() != agent::clientauth::kNonceBytes) {
      rc = AGENT_ERR_PROTOCOL;
    } else if (!cred) {
      rc = AGENT_ERR_AUTH;  // nothing to answer with
    } else {
      auto mac = agent::clientauth::response(cred->secret, ch->nonce, hello_body, cred->user);
      proto::Auth a;
      a.name = cred->user;
      a.mac.assign(reinterpret_cast<const char*>(mac.data()), mac.size());
      frame.clear();
      proto::encode(frame, a);
      rc = send_frame(c, frame);
      if (rc != AGENT_OK) c->closed = false;  // the daemon's refusal may still be readable
      rc = fill(c, remaining_ms(deadline, timeout_ms));
    }
  }
  if (rc == AGENT_ERR_TIMEOUT) {
    rc = AGENT_ERR_CONNECT;
    errno = ETIMEDOUT;  // no welcome in time
  }
  if (rc == AGENT_OK) rc = take_welcome(c);
  if (rc == AGENT_OK) {
    c->sendq.reset(new (std::nothrow) agent::client::SendQueue(c->fd));
    if (!c->sendq) rc = AGENT_ERR_NOMEM;
  }
  if (rc != AGENT_OK) {
    ::close(c->fd);
    delete c;
    return rc;
  }
  *out = c;
  return AGENT_OK;
}

}  // namespace

extern "C" {

int agent_connect(const char* daemon, const char* name, int flags, int timeout_ms,
                  agent_conn** out) {
  return connect_with(daemon, name, flags, timeout_ms, nullptr, out);
}

int agent_connect_auth(const char* daemon, const char* name, int flags, int timeout_ms,
                       const char* user, const void* secret, size_t secret_len,
                       agent_conn** out) {
  if (!user || !secret) return AGENT_ERR_INVALID;
  Credentials cred{user, std::string(static_cast<const char*>(secret), secret_len)};
  if (!agent::clientauth::valid_name(cred.user) ||
      cred.secret.size() < agent::clientauth::kMinSecretBytes ||
      cred.secret.size() > agent::clientauth::kMaxSecretBytes)
    return AGENT_ERR_INVALID;
  return connect_with(daemon, name, flags, timeout_ms, &cred, out);
}

void agent_disconnect(agent_conn* c) {
  if (!c) return;
  if (!c->closed) {
    std::lock_guard<std::mutex> lock(c->send_mu);
    proto::encode_bye(c->out);  // after whatever AGENT_MORE sends still hold
    // After what the send queue still holds, which its writer writes as the daemon reads.
    if (flush_out(c) == AGENT_OK && c->sendq->drain(-1) == AGENT_OK) {
      // The daemon may not have read everything yet (it pauses reading while the ring's queue
      // is full). Closing now, with deliveries unread here, would make the kernel reset the
      // connection (TCP), and the daemon's kernel would drop what it had not read: half-close
      // instead, and read (discarding) until the daemon, having read up to the goodbye, closes
      // its end. Bounded: a daemon that does not answer is given up on.
      ::shutdown(c->fd, SHUT_WR);
      drain_until_closed(c->fd, AGENT_DISCONNECT_WAIT_MS);
    }
  }
  c->sendq.reset();  // its writer is done (drained) or failed
  ::close(c->fd);
  delete c;
}

const char* agent_private_group(const agent_conn* c) { return c ? c->private_group.c_str() : ""; }
size_t agent_max_message(const agent_conn* c) { return c ? c->max_message : 0; }
int agent_fd(const agent_conn* c) { return c ? c->fd : -1; }

static int group_request(agent_conn* c, const char* group, bool join) {
  if (!c || !group) return AGENT_ERR_INVALID;
  if (!names::valid_group(group)) return AGENT_ERR_ILLEGAL_GROUP;
  std::lock_guard<std::mutex> lock(c->send_mu);
  if (join)
    proto::encode_join(c->out, group);
  else
    proto::encode_leave(c->out, group);
  return flush_out(c);
}

int agent_join(agent_conn* c, const char* group) { return group_request(c, group, true); }
int agent_leave(agent_conn* c, const char* group) { return group_request(c, group, false); }

static int history_request(agent_conn* c, const char* group, proto::History h) {
  if (!c || !group) return AGENT_ERR_INVALID;
  if (!names::valid_group(group) || names::is_private_group(group)) return AGENT_ERR_ILLEGAL_GROUP;
  h.group = group;
  std::lock_guard<std::mutex> lock(c->send_mu);
  proto::encode(c->out, h);
  return flush_out(c);
}

int agent_history(agent_conn* c, const char* group, const agent_position* after, int join) {
  proto::History h;
  h.flags = join ? proto::kHistoryJoin : 0;
  if (after) {
    h.ring = after->ring;
    h.ordinal = after->ordinal;
  }
  return history_request(c, group, h);
}

int agent_history_since(agent_conn* c, const char* group, int64_t unix_ms, int join) {
  if (unix_ms < 0) return AGENT_ERR_INVALID;
  proto::History h;
  h.flags = static_cast<uint8_t>(proto::kHistorySince | (join ? proto::kHistoryJoin : 0));
  h.since_us = static_cast<uint64_t>(unix_ms) * 1000;
  return history_request(c, group, h);
}

int agent_multicast_groups(agent_conn* c, uint32_t service, const char* const* groups,
                           size_t ngroups, int16_t msg_type, const void* data, size_t len) {
  if (!c || !groups || (!data && len > 0)) return AGENT_ERR_INVALID;
  if (ngroups == 0 || ngroups > proto::kMaxGroupsPerMessage) return AGENT_ERR_INVALID;
  const bool more = (service & AGENT_MORE) != 0;
  service &= ~AGENT_MORE;
  if (!proto::service::valid_multicast(service)) return AGENT_ERR_ILLEGAL_SERVICE;
  if (len > c->max_message) return AGENT_ERR_TOO_LARGE;
  // One group (the usual case) needs no list: a list of kMaxGroupsPerMessage views set up for
  // every message was 5 % of a sender's CPU.
  std::string_view one;
  std::vector<std::string_view> many;
  for (size_t i = 0; i < ngroups; ++i)
    if (!groups[i] || !names::valid_destination(groups[i])) return AGENT_ERR_ILLEGAL_GROUP;
  const std::string_view* views = &one;
  if (ngroups == 1) {
    one = groups[0];
  } else {
    many.assign(groups, groups + ngroups);
    views = many.data();
  }
  std::lock_guard<std::mutex> lock(c->send_mu);
  if (c->closed || c->sendq->failed()) return AGENT_ERR_CLOSED;  // e.g. a queued write failed
  // A held buffer that this message would push past the limit goes out first.
  if (!c->out.empty() && c->out.size() + len + 64 * (ngroups + 1) > AGENT_SEND_BUFFER) {
    int rc = flush_out(c);
    if (rc != AGENT_OK) return rc;
  }
  proto::encode_multicast(c->out, service, msg_type, views, ngroups,
                          std::string_view(static_cast<const char*>(data), len));
  if (more && c->out.size() < AGENT_SEND_BUFFER) return AGENT_OK;
  return flush_out(c);
}

int agent_flush(agent_conn* c) {
  if (!c) return AGENT_ERR_INVALID;
  std::lock_guard<std::mutex> lock(c->send_mu);
  return flush_out(c);
}

int agent_multicast(agent_conn* c, uint32_t service, const char* group, int16_t msg_type,
                    const void* data, size_t len) {
  return agent_multicast_groups(c, service, &group, 1, msg_type, data, len);
}

int agent_send_private(agent_conn* c, uint32_t service, const char* private_group,
                       int16_t msg_type, const void* data, size_t len) {
  if (!private_group || !names::is_private_group(private_group)) return AGENT_ERR_ILLEGAL_GROUP;
  return agent_multicast_groups(c, service, &private_group, 1, msg_type, data, len);
}

// The next frame for agent_receive / agent_next, under recv_mu: what agent_next lent before
// is released (its bytes may move while the socket is read).
static int take_frame(agent_conn* c, int timeout_ms, proto::Verb& verb, std::string_view& body) {
  c->owned.reset();
  int rc = fill(c, timeout_ms);
  if (rc == AGENT_OK) next_frame(c, verb, body);
  return rc;
}

int agent_receive(agent_conn* c, agent_message** out, int timeout_ms) {
  if (!c || !out) return AGENT_ERR_INVALID;
  *out = nullptr;
  std::lock_guard<std::mutex> lock(c->recv_mu);
  proto::Verb verb;
  std::string_view body;
  int rc = take_frame(c, timeout_ms, verb, body);
  return rc == AGENT_OK ? decode_frame(verb, body, out) : rc;
}

int agent_next(agent_conn* c, const agent_message** out, int timeout_ms) {
  if (!c || !out) return AGENT_ERR_INVALID;
  *out = nullptr;
  std::lock_guard<std::mutex> lock(c->recv_mu);
  proto::Verb verb;
  std::string_view body;
  int rc = take_frame(c, timeout_ms, verb, body);
  if (rc != AGENT_OK) return rc;
  if (verb != proto::Verb::kData && verb != proto::Verb::kPositionedData) {
    agent_message* m = nullptr;
    rc = decode_frame(verb, body, &m);
    c->owned.reset(m);
    *out = m;
    return rc;
  }
  agent_position pos{0, 0};
  if (verb == proto::Verb::kPositionedData && !take_position(body, pos)) return AGENT_ERR_PROTOCOL;
  DataParts d;
  if (!parse_data(body, d)) return AGENT_ERR_PROTOCOL;
  c->borrowed.position = pos;
  if (!c->names) {
    c->names.reset(new (std::nothrow) char[proto::kMaxGroupsPerMessage][AGENT_MAX_GROUP_NAME]);
    if (!c->names) return AGENT_ERR_NOMEM;
    c->borrowed.groups = c->names.get();
  }
  set_data(&c->borrowed, d);
  c->borrowed.data = d.payload.data();
  *out = &c->borrowed;
  return AGENT_OK;
}

void agent_message_free(agent_message* m) { std::free(m); }

size_t agent_pending(agent_conn* c) {
  if (!c) return 0;
  std::lock_guard<std::mutex> lock(c->recv_mu);
  return c->frames;
}

const char* agent_strerror(int err) {
  switch (err) {
    case AGENT_OK: return "success";
    case AGENT_ERR_CONNECT: return "could not connect to the daemon";
    case AGENT_ERR_CLOSED: return "the connection is closed";
    case AGENT_ERR_TIMEOUT: return "timed out";
    case AGENT_ERR_ILLEGAL_NAME: return "illegal private name (1-10 printable characters, no space or '#')";
    case AGENT_ERR_NAME_TAKEN: return "private name already connected to that daemon";
    case AGENT_ERR_ILLEGAL_GROUP: return "illegal group name (1-31 printable characters, no space or '#', or #name#daemon)";
    case AGENT_ERR_ILLEGAL_SERVICE: return "illegal service (exactly one service, optionally with SELF_DISCARD)";
    case AGENT_ERR_TOO_LARGE: return "message larger than the daemon accepts";
    case AGENT_ERR_PROTOCOL: return "the daemon sent something this library cannot read";
    case AGENT_ERR_VERSION: return "the daemon does not speak this protocol version";
    case AGENT_ERR_INVALID: return "invalid argument";
    case AGENT_ERR_NOMEM: return "out of memory";
    case AGENT_ERR_REJECTED: return "the daemon refused the connection";
    case AGENT_ERR_AUTH:
      return "authentication failed: the daemon refused the name or secret, or it asked for "
             "them and none were given (agent_connect_auth, or AGENT_SECRET_FILE and AGENT_USER)";
  }
  return "unknown error";
}

const char* agent_version(void) { return AGENT_VERSION_STRING; }

}  // extern "C"
