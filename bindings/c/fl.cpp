// libspread: the Flush library (fl.h) on libagent. The protocol is flush_core.h's; this file is
// the shell: sessions, the wire format of Flush messages, and the C calls.
//
// Flush messages travel as ordinary agentd messages whose body starts with a header (below).
// Application data goes to the group (or, for FL_subgroupcast/FL_unicast, to the receivers'
// private groups) as AGREED at least, so that it is in the total order with the flush-oks;
// flush-oks use a message type below FL_MIN_LEGAL_MESS_TYPE, which applications cannot send.
//
// Threads: one thread may receive while others send. Sends hold send_mu from the state check to
// the write, so no data of the old view can follow this member's flush-ok. The protocol state
// and the ready queue are under mu, which no call holds while it blocks.
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/check.h"
#include "flush_core.h"
#include "sp_common.h"
#include "transport/client_protocol.h"
// After sp_common.h (sp.h defines int16 and int32 as macros).
#include "fl.h"

namespace {

using namespace agent::spread;
using agent::flush::Actions;
using agent::flush::Cause;
using agent::flush::Verdict;
using agent::flush::ViewId;

constexpr size_t kName = MAX_GROUP_NAME;

// ---- Wire format of a Flush message body (version 1, little-endian):
//   0  u8  magic 0xF1         1  u8 version 1      2  u8 kind      3  u8 0
//   4  u32 service as the application asked (one service bit, maybe SELF_DISCARD)
//   8  u64 view config        16 u64 view seq  (data: the sender's view; flush-ok: the proposal)
//   24 char[32] group (NUL-padded): the group, or the private group of a private message
//   56 u16 receivers          58 receivers x char[32] (subgroup data only)
//   then the application's payload.
constexpr uint8_t kMagic = 0xF1;
constexpr uint8_t kVersion = 1;
enum Kind : uint8_t { kGroupData = 1, kSubgroupData = 2, kFlushOk = 3, kPrivateData = 4 };
constexpr size_t kHeaderBytes = 58;
constexpr int16_t kFlushOkType = -32768;  // below FL_MIN_LEGAL_MESS_TYPE
static_assert(kFlushOkType < FL_MIN_LEGAL_MESS_TYPE, "reserved for the library");

struct Header {
  Kind kind = kGroupData;
  uint32_t service = 0;
  ViewId view;
  std::string group;
  std::vector<std::string> receivers;
  size_t bytes = 0;  // header length, where the payload starts
};

void put_le(std::string& b, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

void put_name(std::string& b, const std::string& name) {
  AGENT_CHECK(name.size() < kName);
  b.append(name);
  b.append(kName - name.size(), '\0');
}

void encode_header(std::string& b, const Header& h) {
  b.clear();
  put_le(b, kMagic, 1);
  put_le(b, kVersion, 1);
  put_le(b, h.kind, 1);
  put_le(b, 0, 1);
  put_le(b, h.service, 4);
  put_le(b, h.view.config, 8);
  put_le(b, h.view.seq, 8);
  put_name(b, h.group);
  put_le(b, h.receivers.size(), 2);
  for (const auto& r : h.receivers) put_name(b, r);
  AGENT_CHECK(b.size() == kHeaderBytes + h.receivers.size() * kName);
}

// A name field: NUL-terminated within its 32 bytes, not empty.
bool get_name(const unsigned char* p, std::string* out) {
  const char* c = reinterpret_cast<const char*>(p);
  size_t n = strnlen(c, kName);
  if (n == 0 || n == kName) return false;
  out->assign(c, n);
  return true;
}

// false: not a Flush message this library understands.
bool decode_header(const void* data, size_t len, Header* h) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (len < kHeaderBytes || p[0] != kMagic || p[1] != kVersion) return false;
  if (p[2] < kGroupData || p[2] > kPrivateData) return false;
  h->kind = static_cast<Kind>(p[2]);
  h->service = static_cast<uint32_t>(get_le(p + 4, 4));
  h->view.config = get_le(p + 8, 8);
  h->view.seq = get_le(p + 16, 8);
  if (!get_name(p + 24, &h->group)) return false;
  size_t n = static_cast<size_t>(get_le(p + 56, 2));
  if (n > (len - kHeaderBytes) / kName) return false;
  if ((h->kind == kSubgroupData) != (n > 0)) return false;
  h->receivers.resize(n);
  for (size_t i = 0; i < n; ++i)
    if (!get_name(p + kHeaderBytes + i * kName, &h->receivers[i])) return false;
  h->bytes = kHeaderBytes + n * kName;
  return true;
}

// ---- Sessions

// One message as FL_receive hands it out.
struct Delivery {
  service type = 0;
  std::string sender;
  std::vector<std::string> groups;
  int16_t mess_type = 0;
  std::string body;
  size_t bytes() const { return groups.size() * kName + body.size(); }
};

// One underlying message yields at most two deliveries (a transitional signal and a view), and
// the library reads from the daemon only when none are waiting.
constexpr size_t kMaxReady = 2;

struct FlSession {
  agent_conn* conn = nullptr;
  mailbox mbox = -1;
  std::string me;
  std::mutex recv_mu;  // one FL_receive at a time
  std::mutex send_mu;  // state check and write of one send, or of a flush-ok
  std::mutex mu;       // groups, ready
  std::map<std::string, agent::flush::Group> groups;
  std::deque<Delivery> ready;
  std::atomic<size_t> ready_bytes{0};
  std::atomic<bool> failed{false};
  ~FlSession() { agent_disconnect(conn); }
};

std::mutex g_mu;
std::unordered_map<mailbox, std::shared_ptr<FlSession>> g_sessions;

std::shared_ptr<FlSession> find(mailbox mbox) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_sessions.find(mbox);
  return it == g_sessions.end() ? nullptr : it->second;
}

int session_error(FlSession& s, int rc) {
  switch (rc) {
    case AGENT_ERR_ILLEGAL_GROUP: return ILLEGAL_GROUP;
    case AGENT_ERR_ILLEGAL_SERVICE: return ILLEGAL_SERVICE;
    case AGENT_ERR_TOO_LARGE: return MESSAGE_TOO_LONG;
    case AGENT_ERR_INVALID: return ILLEGAL_MESSAGE;
    case AGENT_ERR_CLOSED:
    case AGENT_ERR_PROTOCOL:
      s.failed = true;
      return CONNECTION_CLOSED;
    default: return SP_BUG;
  }
}

int verdict_error(Verdict v) {
  switch (v) {
    case Verdict::kOk: return 0;
    case Verdict::kIllegalGroup: return ILLEGAL_GROUP;
    case Verdict::kIllegalState: return ILLEGAL_STATE;
    case Verdict::kIllegalReceivers: return ILLEGAL_RECEIVERS;
  }
  return SP_BUG;
}

// A group name as the application passed it: NUL within MAX_GROUP_NAME bytes, not empty.
bool parse_group(const char* g, std::string* out) {
  if (!g) return false;
  size_t n = strnlen(g, kName);
  if (n == 0 || n == kName) return false;
  out->assign(g, n);
  return true;
}

bool is_private(const std::string& g) { return g[0] == '#'; }

int send_flush_ok(FlSession& s, const std::string& group, const ViewId& proposed) {
  Header h;
  h.kind = kFlushOk;
  h.service = AGREED_MESS;
  h.view = proposed;
  h.group = group;
  std::string b;
  encode_header(b, h);
  int rc = agent_multicast(s.conn, AGENT_AGREED, group.c_str(), kFlushOkType, b.data(), b.size());
  return rc == AGENT_OK ? 0 : session_error(s, rc);
}

uint32_t spread_cause(Cause c) {
  switch (c) {
    case Cause::kJoin: return CAUSED_BY_JOIN;
    case Cause::kLeave: return CAUSED_BY_LEAVE;
    case Cause::kDisconnect: return CAUSED_BY_DISCONNECT;
    case Cause::kNetwork: return CAUSED_BY_NETWORK;
  }
  return CAUSED_BY_NETWORK;
}

Cause core_cause(uint32_t service) {
  if (service & AGENT_CAUSED_BY_JOIN) return Cause::kJoin;
  if (service & AGENT_CAUSED_BY_LEAVE) return Cause::kLeave;
  if (service & AGENT_CAUSED_BY_DISCONNECT) return Cause::kDisconnect;
  return Cause::kNetwork;
}

// Turns what the core decided into deliveries (under s.mu); flush-oks to send go to oks.
void apply(FlSession& s, const std::string& group, const Actions& a,
           std::vector<std::pair<std::string, ViewId>>* oks) {
  if (a.flush_request) s.ready.push_back(Delivery{FLUSH_REQ_MESS, group, {}, 0, {}});
  if (a.send_flush_ok) oks->emplace_back(group, *a.send_flush_ok);
  if (a.transition) s.ready.push_back(Delivery{TRANSITION_MESS, group, {}, 0, {}});
  if (a.install) {
    const auto& v = *a.install;
    Delivery d{static_cast<service>(REG_MEMB_MESS | spread_cause(v.cause)), group, v.members, -1, {}};
    for (size_t i = 0; i < v.members.size(); ++i)
      if (v.members[i] == s.me) d.mess_type = static_cast<int16_t>(i);
    // Body: group id, count, names (FL_get_*_offset_memb_mess).
    group_id gid = fold_view(agent_view_id{v.id.config, v.id.seq});
    d.body.assign(reinterpret_cast<const char*>(&gid), sizeof gid);
    int32_t n = static_cast<int32_t>(v.vs_set.size());
    d.body.append(reinterpret_cast<const char*>(&n), sizeof n);
    for (const auto& m : v.vs_set) {
      d.body.append(m);
      d.body.append(kName - m.size(), '\0');
    }
    s.ready.push_back(std::move(d));
  }
  if (a.self_leave)
    s.ready.push_back(Delivery{CAUSED_BY_LEAVE, group, {}, 0, {}});
  AGENT_CHECK(s.ready.size() <= kMaxReady);
}

// One message from the daemon (under s.mu). Returns CONNECTION_CLOSED if the daemon is closing
// the connection, else 0.
int process(FlSession& s, const agent_message& m,
            std::vector<std::pair<std::string, ViewId>>* oks) {
  switch (m.kind) {
    case AGENT_MSG_DATA: {
      Header h;
      if (!decode_header(m.data, m.len, &h)) return 0;  // not a Flush message: closed groups
      const char* payload = static_cast<const char*>(m.data) + h.bytes;
      const size_t payload_len = m.len - h.bytes;
      if (h.kind == kPrivateData) {
        s.ready.push_back(Delivery{static_cast<service>(h.service), m.sender, {h.group},
                                   m.msg_type, std::string(payload, payload_len)});
        return 0;
      }
      auto g = s.groups.find(h.group);
      if (g == s.groups.end()) return 0;
      if (h.kind == kFlushOk) {
        if (m.msg_type == kFlushOkType) apply(s, h.group, g->second.on_flush_ok(m.sender, h.view), oks);
        return 0;
      }
      if (!g->second.accepts(h.view)) return 0;  // sent in a view this member is not in
      Delivery d{static_cast<service>(h.service), m.sender, {}, m.msg_type,
                 std::string(payload, payload_len)};
      if (h.kind == kSubgroupData) {
        d.type |= SUBGROUP_CAST;
        d.groups = h.receivers;
      }
      d.groups.push_back(h.group);
      s.ready.push_back(std::move(d));
      return 0;
    }
    case AGENT_MSG_MEMBERSHIP: {
      auto g = s.groups.find(m.sender);
      if (g == s.groups.end()) return 0;
      if (m.service & AGENT_REG_MEMB) {
        agent::flush::Membership mm;
        mm.id = ViewId{m.view.config, m.view.seq};
        for (size_t i = 0; i < m.ngroups; ++i) mm.members.emplace_back(m.groups[i]);
        mm.cause = core_cause(m.service);
        mm.changed = m.changed;
        apply(s, g->first, g->second.on_membership(mm), oks);
      } else if (!(m.service & AGENT_TRANSITION)) {  // our own leave took effect
        apply(s, g->first, g->second.on_self_leave(), oks);
        s.groups.erase(g);
      }
      // Transitional memberships: the flush layer signals its own, before the view it installs.
      return 0;
    }
    default: {  // a refused request
      if (closes_connection(m.error_code)) return CONNECTION_CLOSED;
      std::string group = m.sender;
      auto g = s.groups.find(group);
      if (g != s.groups.end() && !g->second.view()) s.groups.erase(g);  // a refused join
      Delivery d{REJECT_MESS, group, {}, static_cast<int16_t>(m.error_code),
                 std::string(static_cast<const char*>(m.data), m.len)};
      if (!group.empty()) d.groups.push_back(group);
      s.ready.push_back(std::move(d));
      return 0;
    }
  }
}

size_t count_ready_bytes(const FlSession& s) {
  size_t n = 0;
  for (const auto& d : s.ready) n += d.bytes();
  return n;
}

// Hands the first ready message to the caller (under s.mu), as SP_receive does.
int hand_out(FlSession& s, bool drop, service* service_type, char* sender, int max_groups,
             int* num_groups, char (*groups)[MAX_GROUP_NAME], int16* mess_type,
             int* endian_mismatch, scatter* scat, int* more_msgs) {
  AGENT_CHECK(!s.ready.empty());
  Delivery& d = s.ready.front();
  const size_t max_g = max_groups > 0 ? static_cast<size_t>(max_groups) : 0;
  const size_t cap = scatter_capacity(*scat);
  const bool short_groups = d.groups.size() > max_g;
  const bool short_body = d.body.size() > cap;
  *service_type = d.type;
  std::memset(sender, 0, kName);
  std::strncpy(sender, d.sender.c_str(), kName - 1);
  *mess_type = (short_groups && (d.type & REG_MEMB_MESS)) ? -1 : d.mess_type;
  *endian_mismatch = 0;
  if (more_msgs) *more_msgs = static_cast<int>(s.ready.size() - 1);
  if ((short_groups || short_body) && !drop) {
    *num_groups = short_groups ? -static_cast<int>(d.groups.size()) : 0;
    *endian_mismatch = short_body ? -static_cast<int>(d.body.size()) : 0;
    if (more_msgs) *more_msgs = static_cast<int>(s.ready.size());
    return short_groups ? GROUPS_TOO_SHORT : BUFFER_TOO_SHORT;
  }
  // A subgroup message cut short still names its group, last (as Spread's Flush does).
  size_t ng = std::min(d.groups.size(), max_g);
  for (size_t i = 0; i < ng; ++i) {
    const std::string& name = (short_groups && i == ng - 1) ? d.groups.back() : d.groups[i];
    std::memset(groups[i], 0, kName);
    std::strncpy(groups[i], name.c_str(), kName - 1);
  }
  scatter_write(*scat, d.body.data(), std::min(d.body.size(), cap));
  *num_groups = short_groups ? -static_cast<int>(d.groups.size()) : static_cast<int>(d.groups.size());
  if (short_body) *endian_mismatch = -static_cast<int>(d.body.size());
  int len = static_cast<int>(d.body.size());
  s.ready.pop_front();
  s.ready_bytes = count_ready_bytes(s);
  if (short_body) return BUFFER_TOO_SHORT;
  if (short_groups) return GROUPS_TOO_SHORT;
  return len;
}

int receive(mailbox mbox, service* service_type, char* sender, int max_groups, int* num_groups,
            char (*groups)[MAX_GROUP_NAME], int16* mess_type, int* endian_mismatch,
            scatter* scat, int* more_msgs) {
  auto s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  if (!service_type || !sender || !num_groups || !mess_type || !endian_mismatch ||
      max_groups < 0 || (max_groups > 0 && !groups))
    return ILLEGAL_PARAM;
  if (!scatter_ok(scat)) return ILLEGAL_MESSAGE;
  const bool drop = (*service_type & DROP_RECV) != 0;
  const bool dont_block = (*service_type & DONT_BLOCK) != 0;

  std::lock_guard<std::mutex> rlock(s->recv_mu);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (!s->ready.empty())
        return hand_out(*s, drop, service_type, sender, max_groups, num_groups, groups,
                        mess_type, endian_mismatch, scat, more_msgs);
    }
    if (s->failed) return NET_ERROR_ON_SESSION;
    const agent_message* m = nullptr;
    int rc = agent_next(s->conn, &m, dont_block ? 0 : -1);
    if (rc == AGENT_ERR_TIMEOUT) return WOULD_BLOCK;
    if (rc != AGENT_OK) return session_error(*s, rc);
    std::vector<std::pair<std::string, ViewId>> oks;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (process(*s, *m, &oks) != 0) {
        s->failed = true;
        return CONNECTION_CLOSED;
      }
      s->ready_bytes = count_ready_bytes(*s);
    }
    // The core asks for a flush-ok only where this member may not send data meanwhile
    // (joining, or already flushed), so it need not hold send_mu across process().
    for (const auto& [group, proposed] : oks) {
      std::lock_guard<std::mutex> slock(s->send_mu);
      if (int err = send_flush_ok(*s, group, proposed); err < 0) return err;
    }
  }
}

// The start of every call on a group: the session (one that has not failed) and the group's
// name; 0, or the error to return.
int open_call(mailbox mbox, const char* group_name, std::shared_ptr<FlSession>& s,
              std::string& group) {
  s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  if (s->failed) return NET_ERROR_ON_SESSION;
  if (!parse_group(group_name, &group)) return ILLEGAL_GROUP;
  return 0;
}

// Checks and sends one application message. receivers: empty for FL_multicast.
int send(mailbox mbox, service serv_type, const char* group_name, bool subgroup,
         const std::vector<std::string>& receivers, int16 mess_type, const scatter* scat) {
  std::shared_ptr<FlSession> s;
  std::string group;
  if (int err = open_call(mbox, group_name, s, group); err < 0) return err;
  if ((serv_type & REGULAR_MESS) == 0 || (serv_type & ~(REGULAR_MESS | SELF_DISCARD)))
    return ILLEGAL_SERVICE;
  if (mess_type < FL_MIN_LEGAL_MESS_TYPE) return ILLEGAL_MESSAGE_TYPE;
  if (!scatter_ok(scat, FL_MAX_SCATTER_ELEMENTS)) return ILLEGAL_MESSAGE;
  size_t len = scatter_capacity(*scat);
  if (len > static_cast<size_t>(INT_MAX) || len > agent_max_message(s->conn)) return MESSAGE_TOO_LONG;

  // One service, the strongest asked for, and AGREED at least (see the top of the file).
  uint32_t svc = static_cast<uint32_t>(serv_type) & REGULAR_MESS;
  while (svc & (svc - 1)) svc &= svc - 1;
  const uint32_t asked = svc | (static_cast<uint32_t>(serv_type) & SELF_DISCARD);
  uint32_t wire = std::max<uint32_t>(svc, AGENT_AGREED) | (asked & SELF_DISCARD);

  Header h;
  h.service = asked;
  h.group = group;
  std::vector<std::string> dest;
  std::lock_guard<std::mutex> slock(s->send_mu);
  if (is_private(group)) {
    if (subgroup) return ILLEGAL_GROUP;
    h.kind = kPrivateData;
    wire = asked;  // no view to keep: as the application asked
    dest.push_back(group);
  } else {
    std::lock_guard<std::mutex> lock(s->mu);
    auto g = s->groups.find(group);
    if (g == s->groups.end()) return ILLEGAL_GROUP;
    if (int err = verdict_error(g->second.can_send()); err < 0) return err;
    if (subgroup) {
      if (int err = verdict_error(g->second.check_receivers(receivers)); err < 0) return err;
      for (const auto& r : receivers)
        if (std::find(dest.begin(), dest.end(), r) == dest.end()) dest.push_back(r);
      h.kind = kSubgroupData;
      h.receivers = dest;
    } else {
      h.kind = kGroupData;
      dest.push_back(group);
    }
    h.view = g->second.view()->id;
  }
  if (dest.size() > agent::proto::kMaxGroupsPerMessage) return ILLEGAL_RECEIVERS;
  thread_local std::string body;
  encode_header(body, h);
  for (size_t i = 0; i < scat->num_elements; ++i)
    body.append(scat->elements[i].buf, scat->elements[i].len);
  std::vector<const char*> names;
  for (const auto& d : dest) names.push_back(d.c_str());
  int rc = agent_multicast_groups(s->conn, wire, names.data(), names.size(), mess_type,
                                  body.data(), body.size());
  if (rc != AGENT_OK) return session_error(*s, rc);
  return static_cast<int>(len);
}

// The receivers of FL_subgroupcast, checked.
int receivers_of(int num_recvrs, char (*names)[MAX_GROUP_NAME], std::vector<std::string>* out) {
  if (num_recvrs < 1 || !names) return ILLEGAL_PARAM;
  if (static_cast<size_t>(num_recvrs) > agent::proto::kMaxGroupsPerMessage) return ILLEGAL_RECEIVERS;
  for (int i = 0; i < num_recvrs; ++i) {
    std::string r;
    if (!parse_group(names[i], &r) || !is_private(r)) return ILLEGAL_RECEIVERS;
    out->push_back(std::move(r));
  }
  return 0;
}

scatter one_buffer(int mess_len, const char* mess) {
  scatter one;
  one.num_elements = 1;
  one.elements[0].buf = const_cast<char*>(mess);
  one.elements[0].len = static_cast<size_t>(mess_len);
  return one;
}

}  // namespace

extern "C" {

int FL_lib_init(void) { return 0; }

void FL_version(int* major_ver, int* minor_ver, int* patch_ver) {
  if (major_ver) *major_ver = 2;
  if (minor_ver) *minor_ver = 0;
  if (patch_ver) *patch_ver = 0;
}

int FL_connect(const char* daemon_name, const char* user_name, int priority, mailbox* mbox,
               char* private_name) {
  (void)priority;
  if (!mbox || !private_name) return ILLEGAL_PARAM;
  const char* where = nullptr;  // libagent's default: $AGENT_DAEMON or /tmp/agentd.sock
  std::string daemon;
  if (daemon_name && *daemon_name) {
    daemon = daemon_name;
    if (!valid_daemon_name(daemon)) return ILLEGAL_SPREAD;
    where = daemon.c_str();
  }
  bool generate = !user_name || !*user_name;
  std::string name = generate ? "" : std::string(user_name, strnlen(user_name, MAX_PRIVATE_NAME));
  int flags = AGENT_NO_READ_AHEAD | AGENT_WANT_MEMBERSHIP | (generate ? AGENT_GENERATE_NAME : 0);
  agent_conn* c = nullptr;
  int rc = agent_connect(where, name.c_str(), flags, -1, &c);
  if (rc != AGENT_OK) return map_connect_error(rc);
  auto s = std::make_shared<FlSession>();
  s->conn = c;
  s->mbox = agent_fd(c);
  s->me = agent_private_group(c);
  std::memset(private_name, 0, kName);
  std::strncpy(private_name, s->me.c_str(), kName - 1);
  *mbox = s->mbox;
  std::lock_guard<std::mutex> lock(g_mu);
  g_sessions[s->mbox] = std::move(s);
  return ACCEPT_SESSION;
}

int FL_disconnect(mailbox mbox) {
  std::shared_ptr<FlSession> s;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_sessions.find(mbox);
    if (it == g_sessions.end()) return ILLEGAL_SESSION;
    s = std::move(it->second);
    g_sessions.erase(it);
  }
  // Another thread blocked in FL_receive holds a reference: wake it; the last user closes.
  if (s.use_count() > 1) ::shutdown(s->mbox, SHUT_RDWR);
  return 0;
}

int FL_join(mailbox mbox, const char* group_name_) {
  std::shared_ptr<FlSession> s;
  std::string group;
  if (int err = open_call(mbox, group_name_, s, group); err < 0) return err;
  if (is_private(group)) return ILLEGAL_GROUP;
  std::lock_guard<std::mutex> slock(s->send_mu);
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->groups.count(group)) return ILLEGAL_GROUP;  // joined, joining or leaving
    s->groups.emplace(group, agent::flush::Group(s->me));
  }
  int rc = agent_join(s->conn, group.c_str());
  if (rc == AGENT_OK) return 0;
  std::lock_guard<std::mutex> lock(s->mu);
  s->groups.erase(group);
  return session_error(*s, rc);
}

int FL_leave(mailbox mbox, const char* group_name_) {
  std::shared_ptr<FlSession> s;
  std::string group;
  if (int err = open_call(mbox, group_name_, s, group); err < 0) return err;
  std::lock_guard<std::mutex> slock(s->send_mu);
  {
    std::lock_guard<std::mutex> lock(s->mu);
    auto g = s->groups.find(group);
    if (g == s->groups.end()) return ILLEGAL_GROUP;
    if (int err = verdict_error(g->second.leave()); err < 0) return err;
  }
  int rc = agent_leave(s->conn, group.c_str());
  return rc == AGENT_OK ? 0 : session_error(*s, rc);
}

int FL_flush(mailbox mbox, const char* group_name_) {
  std::shared_ptr<FlSession> s;
  std::string group;
  if (int err = open_call(mbox, group_name_, s, group); err < 0) return err;
  std::lock_guard<std::mutex> slock(s->send_mu);
  Actions a;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    auto g = s->groups.find(group);
    if (g == s->groups.end()) return ILLEGAL_GROUP;
    if (int err = verdict_error(g->second.flush(&a)); err < 0) return err;
  }
  AGENT_CHECK(a.send_flush_ok);
  return send_flush_ok(*s, group, *a.send_flush_ok);
}

int FL_scat_multicast(mailbox mbox, service serv_type, const char* group_name_, int16 mess_type,
                      const scatter* scat_mess) {
  return send(mbox, serv_type, group_name_, false, {}, mess_type, scat_mess);
}

int FL_multicast(mailbox mbox, service serv_type, const char* group_name_, int16 mess_type,
                 int mess_len, const char* mess) {
  if (mess_len < 0 || (!mess && mess_len > 0)) return ILLEGAL_MESSAGE;
  scatter one = one_buffer(mess_len, mess);
  return send(mbox, serv_type, group_name_, false, {}, mess_type, &one);
}

int FL_scat_subgroupcast(mailbox mbox, service serv_type, const char* group_name_,
                         int num_recvrs, char recvr_names[][MAX_GROUP_NAME], int16 mess_type,
                         const scatter* scat) {
  std::vector<std::string> receivers;
  if (int err = receivers_of(num_recvrs, recvr_names, &receivers); err < 0) return err;
  return send(mbox, serv_type, group_name_, true, receivers, mess_type, scat);
}

int FL_subgroupcast(mailbox mbox, service serv_type, const char* group_name_, int num_recvrs,
                    char recvr_names[][MAX_GROUP_NAME], int16 mess_type, int mess_len,
                    const char* mess) {
  if (mess_len < 0 || (!mess && mess_len > 0)) return ILLEGAL_MESSAGE;
  scatter one = one_buffer(mess_len, mess);
  return FL_scat_subgroupcast(mbox, serv_type, group_name_, num_recvrs, recvr_names, mess_type,
                              &one);
}

int FL_scat_unicast(mailbox mbox, service serv_type, const char* group_name_,
                    const char* recvr_name, int16 mess_type, const scatter* scat) {
  char one[1][MAX_GROUP_NAME] = {};
  if (!recvr_name || strnlen(recvr_name, kName) == kName) return ILLEGAL_RECEIVERS;
  std::strncpy(one[0], recvr_name, kName - 1);
  return FL_scat_subgroupcast(mbox, serv_type, group_name_, 1, one, mess_type, scat);
}

int FL_unicast(mailbox mbox, service serv_type, const char* group_name_, const char* recvr_name,
               int16 mess_type, int mess_len, const char* mess) {
  if (mess_len < 0 || (!mess && mess_len > 0)) return ILLEGAL_MESSAGE;
  scatter one = one_buffer(mess_len, mess);
  return FL_scat_unicast(mbox, serv_type, group_name_, recvr_name, mess_type, &one);
}

int FL_scat_receive(mailbox mbox, service* serv_type, char* sender_name, int max_groups,
                    int* num_groups, char group_names[][MAX_GROUP_NAME], int16* mess_type,
                    int* endian_mismatch, scatter* scat_mess, int* more_msgs) {
  return receive(mbox, serv_type, sender_name, max_groups, num_groups, group_names, mess_type,
                 endian_mismatch, scat_mess, more_msgs);
}

int FL_receive(mailbox mbox, service* serv_type, char* sender_name, int max_groups,
               int* num_groups, char group_names[][MAX_GROUP_NAME], int16* mess_type,
               int* endian_mismatch, int max_mess_len, char* mess, int* more_msgs) {
  if (max_mess_len < 0 || (max_mess_len > 0 && !mess)) return ILLEGAL_PARAM;
  scatter one = one_buffer(max_mess_len, mess);
  return receive(mbox, serv_type, sender_name, max_groups, num_groups, group_names, mess_type,
                 endian_mismatch, &one, more_msgs);
}

int FL_more_msgs(mailbox mbox) {
  auto s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  std::lock_guard<std::mutex> lock(s->mu);
  return static_cast<int>(s->ready.size());
}

int FL_poll(mailbox mbox) {
  auto s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  int waiting = 0;
  if (::ioctl(mbox, FIONREAD, &waiting) < 0) return ILLEGAL_SESSION;
  size_t total = s->ready_bytes + static_cast<size_t>(std::max(waiting, 0));
  return total > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(total);
}

void FL_error(int error_code) {
  const char* text = nullptr;
  switch (error_code) {
    case ILLEGAL_PARAM: text = "Illegal parameter (a negative count or size, or a NULL pointer)"; break;
    case WOULD_BLOCK: text = "No message is ready (DONT_BLOCK)"; break;
    case ILLEGAL_MESSAGE_TYPE: text = "Illegal message type (below FL_MIN_LEGAL_MESS_TYPE)"; break;
    case ILLEGAL_STATE: text = "Illegal state: flushed and waiting for the next view, or no flush request to answer"; break;
    case ILLEGAL_RECEIVERS: text = "Illegal receivers: not all are members of the group's current view"; break;
    default: text = SP_strerror(error_code);
  }
  std::printf("FL_error: (%d) %s\n", error_code, text);
  std::fflush(stdout);
}

int FL_get_gid_offset_memb_mess(void) { return 0; }
int FL_get_num_vs_offset_memb_mess(void) { return static_cast<int>(sizeof(group_id)); }
int FL_get_vs_set_offset_memb_mess(void) { return static_cast<int>(sizeof(group_id) + sizeof(int32)); }

}  // extern "C"
