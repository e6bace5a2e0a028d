// libspread: Spread's C API (sp.h) on libagent (agent.h).
//
// A mailbox is the socket descriptor of an agent_conn opened with AGENT_NO_READ_AHEAD, so that
// select/poll on it tells the truth. Sessions live in a table keyed by mailbox; callers hold a
// shared_ptr for the duration of a call, so SP_disconnect from one thread cannot free a
// connection another thread is blocked on (it shuts the socket down to wake that thread).
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "sp_common.h"
#include "transport/client_protocol.h"

namespace {

using namespace agent::spread;

constexpr size_t kName = MAX_GROUP_NAME;
// Membership body layout (Spread's): group id, vs-set count, offset of this member's vs-set
// from the first vs-set, then each vs-set as a count followed by that many names.
constexpr size_t kGidBytes = sizeof(group_id);
constexpr size_t kCountOffset = kGidBytes;
constexpr size_t kLocalOffset = kGidBytes + 4;
constexpr size_t kFirstSetOffset = kGidBytes + 8;

// One message as SP_receive hands it out, built once from an agent_message that the
// connection lends (agent_next): valid while no other message is taken from it.
struct Pending {
  const agent_message* m = nullptr;
  service type = 0;
  int16 mess_type = 0;
  const char* sender = "";
  const char (*groups)[AGENT_MAX_GROUP_NAME] = nullptr;
  size_t ngroups = 0;
  const char* body = nullptr;
  size_t body_len = 0;
  std::string built;  // membership bodies
  size_t bytes() const { return ngroups * kName + body_len; }
};

struct Session {
  agent_conn* conn = nullptr;
  mailbox mbox = -1;
  std::string private_group;
  std::mutex recv_mu;                // one SP_receive at a time; guards held
  std::unique_ptr<Pending> held;     // a message the caller's buffers were too small for
  std::atomic<size_t> held_bytes{0};  // for SP_poll, which must not wait for recv_mu
  std::atomic<bool> failed{false};   // the connection broke: NET_ERROR_ON_SESSION from now on
  std::atomic<bool> killed{false};   // SP_kill: close without a goodbye
  // Per group, the id of the last regular view this session got (under recv_mu): a
  // transitional membership carries it, as Spread's does (the id of the view being left).
  std::unordered_map<std::string, group_id> views;
  ~Session() {
    held.reset();
    if (killed) ::shutdown(agent_fd(conn), SHUT_RDWR);  // the goodbye cannot go out
    agent_disconnect(conn);
  }
};

std::mutex g_mu;
std::unordered_map<mailbox, std::shared_ptr<Session>> g_sessions;

std::shared_ptr<Session> find(mailbox mbox) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_sessions.find(mbox);
  return it == g_sessions.end() ? nullptr : it->second;
}

std::shared_ptr<Session> take(mailbox mbox) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_sessions.find(mbox);
  if (it == g_sessions.end()) return nullptr;
  auto s = std::move(it->second);
  g_sessions.erase(it);
  return s;
}

// Closes a session taken out of the table. If another thread still uses it (blocked in
// SP_receive, say), the socket is shut down to wake it; the last user closes it.
void close_session(std::shared_ptr<Session> s, bool goodbye) {
  if (!goodbye) s->killed = true;
  if (s.use_count() > 1) ::shutdown(s->mbox, SHUT_RDWR);
  s.reset();
}

// Errors of calls on an open session. A broken connection marks the session failed.
int map_session_error(Session& s, int rc) {
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

void put_u32(std::string& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }

// The membership body in Spread's layout, in this host's byte order.
std::string membership_body(const agent_message& m, const std::string& me, const group_id& g) {
  size_t nsets = m.nvs_sets;
  size_t total_names = 0;
  for (size_t i = 0; i < nsets; ++i) total_names += m.vs_set_sizes[i];
  // Always at least one vs-set, so that the offset of "my" set points inside the body.
  size_t body_sets = std::max<size_t>(nsets, 1);
  std::string b(kFirstSetOffset + body_sets * 4 + total_names * kName, '\0');
  std::memcpy(&b[0], &g, kGidBytes);
  put_u32(b, kCountOffset, static_cast<uint32_t>(body_sets));
  size_t at = kFirstSetOffset, name = 0, local = 0;
  bool found = false;
  for (size_t i = 0; i < nsets; ++i) {
    size_t n = m.vs_set_sizes[i];
    for (size_t k = 0; k < n && !found; ++k)
      if (me == m.vs_members[name + k]) {
        local = at - kFirstSetOffset;
        found = true;
      }
    put_u32(b, at, static_cast<uint32_t>(n));
    at += 4;
    for (size_t k = 0; k < n; ++k, ++name, at += kName)
      std::memcpy(&b[at], m.vs_members[name], std::strlen(m.vs_members[name]));
  }
  put_u32(b, kLocalOffset, static_cast<uint32_t>(local));
  return b;
}

// Turns an agent_message into what SP_receive returns. Takes ownership of m. views: the
// session's last regular view id per group (kept up to date here).
std::unique_ptr<Pending> make_pending(const agent_message* m, const std::string& me,
                                      std::unordered_map<std::string, group_id>& views) {
  auto p = std::make_unique<Pending>();
  p->m = m;
  p->sender = m->sender;
  switch (m->kind) {
    case AGENT_MSG_DATA:
      p->type = static_cast<service>(m->service);
      p->mess_type = m->msg_type;
      p->groups = m->groups;
      p->ngroups = m->ngroups;
      p->body = static_cast<const char*>(m->data);
      p->body_len = m->len;
      break;
    case AGENT_MSG_MEMBERSHIP: {
      group_id g = fold_view(m->view);
      p->type = static_cast<service>(m->service);
      if (m->service & AGENT_TRANSITION) {
        // As Spread: TRANSITION_MESS alone, with the id of the view being left.
        p->type = TRANSITION_MESS;
        if (auto v = views.find(m->sender); v != views.end()) g = v->second;
      } else if (m->service & AGENT_REG_MEMB) {
        views[m->sender] = g;
      } else {
        views.erase(m->sender);  // its own leave (or disconnect): no view of that group now
      }
      p->mess_type = -1;
      if (m->service & AGENT_REG_MEMB)
        for (size_t i = 0; i < m->ngroups; ++i)
          if (me == m->groups[i]) {
            p->mess_type = static_cast<int16>(i);
            break;
          }
      p->groups = m->groups;
      p->ngroups = m->ngroups;
      p->built = membership_body(*m, me, g);
      p->body = p->built.data();
      p->body_len = p->built.size();
      break;
    }
    default:  // AGENT_MSG_ERROR: a refused request, as Spread's REJECT_MESS
      p->type = REJECT_MESS;
      p->mess_type = static_cast<int16>(m->error_code);
      p->groups = m->sender[0] ? &m->sender : nullptr;
      p->ngroups = m->sender[0] ? 1 : 0;
      p->body = static_cast<const char*>(m->data);
      p->body_len = m->len;
      break;
  }
  return p;
}

int receive(mailbox mbox, service* service_type, char* sender, int max_groups, int* num_groups,
            char (*groups)[MAX_GROUP_NAME], int16* mess_type, int* endian_mismatch,
            scatter* scat) {
  auto s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  if (s->failed) return NET_ERROR_ON_SESSION;
  if (!service_type || !sender || !num_groups || !mess_type || !endian_mismatch ||
      !scatter_ok(scat) || (max_groups > 0 && !groups))
    return ILLEGAL_MESSAGE;
  const bool drop = (*service_type & DROP_RECV) != 0;
  const size_t max_g = max_groups > 0 ? static_cast<size_t>(max_groups) : 0;
  const size_t cap = scatter_capacity(*scat);

  std::lock_guard<std::mutex> lock(s->recv_mu);
  while (!s->held) {
    const agent_message* m = nullptr;
    int rc = agent_next(s->conn, &m, -1);
    if (rc != AGENT_OK) return map_session_error(*s, rc);
    if (m->kind == AGENT_MSG_ERROR && closes_connection(m->error_code)) {
      s->failed = true;
      return CONNECTION_CLOSED;
    }
    s->held = make_pending(m, s->private_group, s->views);
  }
  Pending& p = *s->held;
  const bool short_groups = p.ngroups > max_g;
  const bool short_body = p.body_len > cap;
  *service_type = p.type;
  std::memset(sender, 0, kName);
  std::strncpy(sender, p.sender, kName - 1);
  // Spread gives a member its index only when the member list fits.
  *mess_type = (short_groups && (p.type & REG_MEMB_MESS)) ? -1 : p.mess_type;
  *endian_mismatch = 0;
  if ((short_groups || short_body) && !drop) {
    *num_groups = short_groups ? -static_cast<int>(p.ngroups) : 0;
    *endian_mismatch = short_body ? -static_cast<int>(p.body_len) : 0;
    s->held_bytes = p.bytes();
    return short_groups ? GROUPS_TOO_SHORT : BUFFER_TOO_SHORT;
  }
  size_t ng = std::min(p.ngroups, max_g);
  for (size_t i = 0; i < ng; ++i) {
    std::memset(groups[i], 0, kName);
    std::strncpy(groups[i], p.groups[i], kName - 1);
  }
  scatter_write(*scat, p.body, std::min(p.body_len, cap));
  *num_groups = short_groups ? -static_cast<int>(p.ngroups) : static_cast<int>(p.ngroups);
  if (short_body) *endian_mismatch = -static_cast<int>(p.body_len);
  int len = static_cast<int>(p.body_len);
  s->held.reset();
  s->held_bytes = 0;
  if (short_body) return BUFFER_TOO_SHORT;
  if (short_groups) return GROUPS_TOO_SHORT;
  return len;
}

int multicast(mailbox mbox, service service_type, int num_groups,
              const char (*groups)[MAX_GROUP_NAME], int16 mess_type, const scatter* scat) {
  auto s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  if (s->failed) return NET_ERROR_ON_SESSION;
  if ((service_type & REGULAR_MESS) == 0 || (service_type & ~(REGULAR_MESS | SELF_DISCARD)))
    return ILLEGAL_SERVICE;
  // One service per message: the strongest a program asked for.
  uint32_t svc = static_cast<uint32_t>(service_type) & REGULAR_MESS;
  while (svc & (svc - 1)) svc &= svc - 1;
  svc |= static_cast<uint32_t>(service_type) & SELF_DISCARD;
  const char* names[agent::proto::kMaxGroupsPerMessage];
  if (!groups || num_groups <= 0 ||
      static_cast<size_t>(num_groups) > agent::proto::kMaxGroupsPerMessage)
    return ILLEGAL_GROUP;
  for (int i = 0; i < num_groups; ++i) {
    if (!std::memchr(groups[i], '\0', kName)) return ILLEGAL_GROUP;
    names[i] = groups[i];
  }
  if (!scatter_ok(scat)) return ILLEGAL_MESSAGE;
  size_t len = scatter_capacity(*scat);
  if (len > static_cast<size_t>(INT_MAX)) return MESSAGE_TOO_LONG;
  const char* data = scat->num_elements > 0 ? scat->elements[0].buf : nullptr;
  thread_local std::string joined;
  if (scat->num_elements > 1) {
    if (len > agent_max_message(s->conn)) return MESSAGE_TOO_LONG;
    joined.clear();
    for (size_t i = 0; i < scat->num_elements; ++i)
      joined.append(scat->elements[i].buf, scat->elements[i].len);
    data = joined.data();
  }
  int rc = agent_multicast_groups(s->conn, svc, names, static_cast<size_t>(num_groups), mess_type,
                                  data, len);
  if (rc != AGENT_OK) return map_session_error(*s, rc);
  return static_cast<int>(len);
}

// Copies one group name into a Spread-sized slot; false if it does not fit.
bool to_slot(const char* group, char (&slot)[MAX_GROUP_NAME]) {
  if (!group) return false;
  size_t n = strnlen(group, kName);
  if (n >= kName) return false;
  std::memset(slot, 0, kName);
  std::memcpy(slot, group, n);
  return true;
}

int group_request(mailbox mbox, const char* group, bool join) {
  auto s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  if (s->failed) return NET_ERROR_ON_SESSION;
  char slot[MAX_GROUP_NAME];
  if (!to_slot(group, slot)) return ILLEGAL_GROUP;
  int rc = join ? agent_join(s->conn, slot) : agent_leave(s->conn, slot);
  return rc == AGENT_OK ? 0 : map_session_error(*s, rc);
}

// Membership body parsing over a contiguous buffer or a scatter. read() fails past the end of
// a scatter (a plain buffer's length is not known, as in Spread's API).
template <typename Read>
int parse_memb_info(Read read, service service_type, membership_info* info) {
  if (!info || !Is_membership_mess(service_type)) return ILLEGAL_MESSAGE;
  std::memset(info, 0, sizeof *info);
  if (!read(0, &info->gid, kGidBytes)) return ILLEGAL_MESSAGE;
  if (!Is_reg_memb_mess(service_type)) return 1;  // transitional or self-leave: the id only
  uint32_t nsets = 0, local = 0, nmembers = 0;
  if (!read(kCountOffset, &nsets, 4) || !read(kLocalOffset, &local, 4)) return ILLEGAL_MESSAGE;
  if (service_type & (CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT)) {
    if (!read(kFirstSetOffset + 4, info->changed_member, kName)) return ILLEGAL_MESSAGE;
    info->changed_member[kName - 1] = '\0';
  }
  size_t mine = kFirstSetOffset + local;
  if (!read(mine, &nmembers, 4)) return ILLEGAL_MESSAGE;
  info->num_vs_sets = nsets;
  info->my_vs_set.num_members = nmembers;
  info->my_vs_set.members_offset = static_cast<unsigned>(mine + 4);
  return 1;
}

template <typename Read>
int parse_vs_sets_info(Read read, vs_set_info* vs_sets, int num_vs_sets, unsigned* my_index) {
  uint32_t nsets = 0, local = 0;
  if (!read(kCountOffset, &nsets, 4) || !read(kLocalOffset, &local, 4)) return ILLEGAL_MESSAGE;
  if (num_vs_sets < 0 || static_cast<uint32_t>(num_vs_sets) < nsets) return BUFFER_TOO_SHORT;
  if (nsets > 0 && !vs_sets) return ILLEGAL_MESSAGE;
  size_t at = kFirstSetOffset;
  for (uint32_t i = 0; i < nsets; ++i) {
    uint32_t n = 0;
    if (!read(at, &n, 4)) return ILLEGAL_MESSAGE;
    if (at == kFirstSetOffset + local && my_index) *my_index = i;
    vs_sets[i].num_members = n;
    vs_sets[i].members_offset = static_cast<unsigned>(at + 4);
    at += 4 + static_cast<size_t>(n) * kName;
  }
  return static_cast<int>(nsets);
}

template <typename Read>
int parse_vs_set_members(Read read, const vs_set_info* set, char (*names)[MAX_GROUP_NAME], int count) {
  if (!set) return ILLEGAL_MESSAGE;
  if (count < 0 || static_cast<unsigned>(count) < set->num_members) return BUFFER_TOO_SHORT;
  if (set->num_members > 0 && !names) return ILLEGAL_MESSAGE;
  for (unsigned i = 0; i < set->num_members; ++i) {
    if (!read(set->members_offset + static_cast<size_t>(i) * kName, names[i], kName))
      return ILLEGAL_MESSAGE;
    names[i][kName - 1] = '\0';
  }
  return static_cast<int>(set->num_members);
}

auto buffer_reader(const char* mess) {
  return [mess](size_t at, void* dst, size_t n) {
    if (!mess) return false;
    std::memcpy(dst, mess + at, n);
    return true;
  };
}

auto scatter_reader(const scatter* s) {
  return [s](size_t at, void* dst, size_t n) {
    if (!scatter_ok(s) || at + n > scatter_capacity(*s)) return false;
    char* out = static_cast<char*>(dst);
    for (size_t i = 0; i < s->num_elements && n > 0; ++i) {
      const scat_element& e = s->elements[i];
      if (at >= e.len) {
        at -= e.len;
        continue;
      }
      size_t k = std::min(n, e.len - at);
      std::memcpy(out, e.buf + at, k);
      out += k;
      n -= k;
      at = 0;
    }
    return n == 0;
  };
}

}  // namespace

extern "C" {

int SP_version(int* major_version, int* minor_version, int* patch_version) {
  if (!major_version || !minor_version || !patch_version) return 0;
  // The release whose API this is (SPREAD_VERSION, from its header, says 5.0.0).
  *major_version = 5;
  *minor_version = 0;
  *patch_version = 1;
  return 1;
}

int SP_set_auth_method(const char* auth_name, int (*auth_function)(int, void*), void*) {
  return auth_name && auth_function && std::strcmp(auth_name, "NULL") == 0 ? 1 : 0;
}

int SP_set_auth_methods(int num_methods, const char* auth_name[],
                        int (*auth_function[])(int, void*), void* auth_data[]) {
  if (num_methods < 1 || !auth_name || !auth_function) return 0;
  for (int i = 0; i < num_methods; ++i)
    if (!SP_set_auth_method(auth_name[i], auth_function[i], auth_data ? auth_data[i] : nullptr))
      return 0;
  return 1;
}

int SP_connect_timeout(const char* spread_name, const char* private_name, int priority,
                       int group_membership, mailbox* mbox, char* private_group,
                       sp_time time_out) {
  if (!mbox || !private_group) return ILLEGAL_SESSION;
  if (check_timeout(time_out) != 0) return ILLEGAL_TIME;
  const char* where = nullptr;  // libagent's default: $AGENT_DAEMON or /tmp/agentd.sock
  std::string daemon;
  if (spread_name && *spread_name) {
    daemon = spread_name;
    if (!valid_daemon_name(daemon)) return ILLEGAL_SPREAD;
    where = daemon.c_str();
  }
  bool generate = !private_name || !*private_name;
  std::string name = generate ? "" : std::string(private_name, strnlen(private_name, MAX_PRIVATE_NAME));
  long long ms = static_cast<long long>(time_out.sec) * 1000 + time_out.usec / 1000;
  int timeout_ms = (time_out.sec == 0 && time_out.usec == 0) ? -1
                   : ms <= 0                                 ? 1
                   : ms > INT_MAX                            ? INT_MAX
                                                             : static_cast<int>(ms);
  int flags = AGENT_NO_READ_AHEAD | (group_membership ? AGENT_WANT_MEMBERSHIP : 0) |
              (generate ? AGENT_GENERATE_NAME : 0);
  agent_conn* c = nullptr;
  int rc = agent_connect(where, name.c_str(), flags, timeout_ms, &c);
  if (rc != AGENT_OK) return map_connect_error(rc);
  auto s = std::make_shared<Session>();
  s->conn = c;
  s->mbox = agent_fd(c);
  s->private_group = agent_private_group(c);
  std::memset(private_group, 0, kName);
  std::strncpy(private_group, s->private_group.c_str(), kName - 1);
  *mbox = s->mbox;
  std::lock_guard<std::mutex> lock(g_mu);
  g_sessions[s->mbox] = std::move(s);
  return ACCEPT_SESSION;
}

int SP_connect(const char* spread_name, const char* private_name, int priority,
               int group_membership, mailbox* mbox, char* private_group) {
  return SP_connect_timeout(spread_name, private_name, priority, group_membership, mbox,
                            private_group, sp_time{0, 0});
}

int SP_disconnect(mailbox mbox) {
  auto s = take(mbox);
  if (!s) return ILLEGAL_SESSION;
  close_session(std::move(s), true);
  return 0;
}

void SP_kill(mailbox mbox) {
  if (auto s = take(mbox)) close_session(std::move(s), false);
}

int SP_join(mailbox mbox, const char* group) { return group_request(mbox, group, true); }
int SP_leave(mailbox mbox, const char* group) { return group_request(mbox, group, false); }

int SP_multigroup_scat_multicast(mailbox mbox, service service_type, int num_groups,
                                 const char groups[][MAX_GROUP_NAME], int16 mess_type,
                                 const scatter* scat_mess) {
  return multicast(mbox, service_type, num_groups, groups, mess_type, scat_mess);
}

int SP_multigroup_multicast(mailbox mbox, service service_type, int num_groups,
                            const char groups[][MAX_GROUP_NAME], int16 mess_type, int mess_len,
                            const char* mess) {
  if (mess_len < 0 || (!mess && mess_len > 0)) return ILLEGAL_MESSAGE;
  scatter one;
  one.num_elements = 1;
  one.elements[0].buf = const_cast<char*>(mess);
  one.elements[0].len = static_cast<size_t>(mess_len);
  return multicast(mbox, service_type, num_groups, groups, mess_type, &one);
}

int SP_scat_multicast(mailbox mbox, service service_type, const char* group, int16 mess_type,
                      const scatter* scat_mess) {
  char slot[1][MAX_GROUP_NAME];
  if (!to_slot(group, slot[0])) return find(mbox) ? ILLEGAL_GROUP : ILLEGAL_SESSION;
  return multicast(mbox, service_type, 1, slot, mess_type, scat_mess);
}

int SP_multicast(mailbox mbox, service service_type, const char* group, int16 mess_type,
                 int mess_len, const char* mess) {
  char slot[1][MAX_GROUP_NAME];
  if (!to_slot(group, slot[0])) return find(mbox) ? ILLEGAL_GROUP : ILLEGAL_SESSION;
  return SP_multigroup_multicast(mbox, service_type, 1, slot, mess_type, mess_len, mess);
}

int SP_scat_receive(mailbox mbox, service* service_type, char sender[MAX_GROUP_NAME],
                    int max_groups, int* num_groups, char groups[][MAX_GROUP_NAME],
                    int16* mess_type, int* endian_mismatch, scatter* scat_mess) {
  return receive(mbox, service_type, sender, max_groups, num_groups, groups, mess_type,
                 endian_mismatch, scat_mess);
}

int SP_receive(mailbox mbox, service* service_type, char sender[MAX_GROUP_NAME], int max_groups,
               int* num_groups, char groups[][MAX_GROUP_NAME], int16* mess_type,
               int* endian_mismatch, int max_mess_len, char* mess) {
  if (max_mess_len > 0 && !mess) return find(mbox) ? ILLEGAL_MESSAGE : ILLEGAL_SESSION;
  scatter one;
  one.num_elements = 1;
  one.elements[0].buf = mess;
  one.elements[0].len = max_mess_len > 0 ? static_cast<size_t>(max_mess_len) : 0;
  return receive(mbox, service_type, sender, max_groups, num_groups, groups, mess_type,
                 endian_mismatch, &one);
}

int SP_get_memb_info(const char* memb_mess, const service service_type,
                     membership_info* memb_info) {
  return parse_memb_info(buffer_reader(memb_mess), service_type, memb_info);
}

int SP_get_vs_sets_info(const char* memb_mess, vs_set_info* vs_sets, int num_vs_sets,
                        unsigned int* my_vs_set_index) {
  return parse_vs_sets_info(buffer_reader(memb_mess), vs_sets, num_vs_sets, my_vs_set_index);
}

int SP_get_vs_set_members(const char* memb_mess, const vs_set_info* vs_set,
                          char member_names[][MAX_GROUP_NAME], int member_names_count) {
  return parse_vs_set_members(buffer_reader(memb_mess), vs_set, member_names, member_names_count);
}

int SP_scat_get_memb_info(const scatter* memb_mess_scat, const service service_type,
                          membership_info* memb_info) {
  return parse_memb_info(scatter_reader(memb_mess_scat), service_type, memb_info);
}

int SP_scat_get_vs_sets_info(const scatter* memb_mess_scat, vs_set_info* vs_sets,
                             int num_vs_sets, unsigned int* my_vs_set_index) {
  return parse_vs_sets_info(scatter_reader(memb_mess_scat), vs_sets, num_vs_sets, my_vs_set_index);
}

int SP_scat_get_vs_set_members(const scatter* memb_mess_scat, const vs_set_info* vs_set,
                               char member_names[][MAX_GROUP_NAME], int member_names_count) {
  return parse_vs_set_members(scatter_reader(memb_mess_scat), vs_set, member_names,
                        member_names_count);
}

int SP_poll(mailbox mbox) {
  auto s = find(mbox);
  if (!s) return ILLEGAL_SESSION;
  int waiting = 0;
  if (::ioctl(mbox, FIONREAD, &waiting) < 0) return ILLEGAL_SESSION;
  size_t total = s->held_bytes + static_cast<size_t>(std::max(waiting, 0));
  return total > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(total);
}

int SP_equal_group_ids(group_id g1, group_id g2) {
  return g1.id[0] == g2.id[0] && g1.id[1] == g2.id[1] && g1.id[2] == g2.id[2];
}

const char* SP_strerror(int error) {
  switch (error) {
    case ACCEPT_SESSION: return "Session accepted";
    case ILLEGAL_SPREAD: return "Illegal daemon name (port, port@host, host:port or a socket path)";
    case COULD_NOT_CONNECT: return "Could not connect. Is agentd running?";
    case REJECT_QUOTA: return "Connection rejected: too many clients, or the daemon is stopping";
    case REJECT_NO_NAME: return "Connection rejected: no name was supplied";
    case REJECT_ILLEGAL_NAME: return "Connection rejected: illegal private name";
    case REJECT_NOT_UNIQUE: return "Connection rejected: private name already in use on that daemon";
    case REJECT_VERSION: return "Connection rejected: the daemon speaks another protocol version";
    case CONNECTION_CLOSED: return "Connection closed by the daemon";
    case REJECT_AUTH: return "Connection rejected: authentication failed";
    case ILLEGAL_SESSION: return "Illegal session (not connected, or already disconnected)";
    case ILLEGAL_SERVICE: return "Illegal service (one of UNRELIABLE_MESS..SAFE_MESS, optionally SELF_DISCARD)";
    case ILLEGAL_MESSAGE: return "Illegal message (NULL pointer, negative length, bad scatter, or not a membership message)";
    case ILLEGAL_GROUP: return "Illegal group (1-31 printable characters, no space or '#', or #name#daemon)";
    case BUFFER_TOO_SHORT: return "The supplied buffer was too short";
    case GROUPS_TOO_SHORT: return "The supplied groups list was too short";
    case MESSAGE_TOO_LONG: return "The message is larger than the daemon accepts";
    case NET_ERROR_ON_SESSION: return "The connection failed earlier; disconnect this mailbox and connect again";
    case SP_BUG: return "Internal error in the library";
    case ILLEGAL_TIME: return "Illegal time (sec and usec of different signs, or |usec| >= 1000000)";
  }
  return "Unrecognized error";
}

void SP_error(int error) {
  std::printf("SP_error: (%d) %s\n", error, SP_strerror(error));
  std::fflush(stdout);
}

}  // extern "C"
