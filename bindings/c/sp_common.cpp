// What sp.cpp and fl.cpp share (sp_common.h).
#include "sp_common.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "transport/client_protocol.h"

namespace agent::spread {

bool valid_daemon_name(const std::string& n) {
  if (n[0] == '/' || n[0] == '.') return n.size() < 108;  // sockaddr_un.sun_path
  auto port_ok = [](const std::string& p) {
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
      return false;
    long v = std::strtol(p.c_str(), nullptr, 10);
    return v >= 1 && v <= 65535;
  };
  if (auto at = n.find('@'); at != std::string::npos)
    return port_ok(n.substr(0, at)) && at + 1 < n.size();
  if (auto colon = n.rfind(':'); colon != std::string::npos)
    return colon > 0 && port_ok(n.substr(colon + 1));
  return port_ok(n);
}

int map_connect_error(int rc) {
  switch (rc) {
    case AGENT_ERR_CONNECT: return COULD_NOT_CONNECT;
    case AGENT_ERR_ILLEGAL_NAME: return REJECT_ILLEGAL_NAME;
    case AGENT_ERR_NAME_TAKEN: return REJECT_NOT_UNIQUE;
    case AGENT_ERR_VERSION: return REJECT_VERSION;
    case AGENT_ERR_REJECTED: return REJECT_QUOTA;
    case AGENT_ERR_AUTH: return REJECT_AUTH;
    case AGENT_ERR_INVALID: return ILLEGAL_SPREAD;
    case AGENT_ERR_NOMEM: return COULD_NOT_CONNECT;
    default: return CONNECTION_CLOSED;
  }
}

// The ring's representative, the ring's sequence number, and the event's position (its two
// halves xor-ed).
int check_timeout(sp_time t) {
  if ((t.sec < 0 && t.usec > 0) || (t.sec > 0 && t.usec < 0) || t.usec <= -1000000 ||
      t.usec >= 1000000)
    return ILLEGAL_TIME;
  return 0;
}

group_id fold_view(const agent_view_id& v) {
  group_id g;
  g.id[0] = static_cast<int32>(static_cast<uint32_t>(v.config));
  g.id[1] = static_cast<int32>(static_cast<uint32_t>(v.config >> 32));
  g.id[2] = static_cast<int32>(static_cast<uint32_t>(v.seq) ^ static_cast<uint32_t>(v.seq >> 32));
  return g;
}

// docs/client-protocol.md lists them.
bool closes_connection(int code) {
  using E = agent::proto::ErrorCode;
  switch (static_cast<E>(code)) {
    case E::kFrameTooLarge:
    case E::kVersionMismatch:
    case E::kIllegalName:
    case E::kNameTaken:
    case E::kSlowClient:
    case E::kShuttingDown:
    case E::kTooManyClients:
      return true;
    default:
      return false;
  }
}

size_t scatter_capacity(const scatter& s) {
  size_t total = 0;
  for (size_t i = 0; i < s.num_elements; ++i) total += s.elements[i].len;
  return total;
}

bool scatter_ok(const scatter* s, size_t max_elements) {
  if (!s || s->num_elements > max_elements) return false;
  for (size_t i = 0; i < s->num_elements; ++i)
    if (!s->elements[i].buf && s->elements[i].len > 0) return false;
  return true;
}

void scatter_write(scatter& s, const char* src, size_t n) {
  for (size_t i = 0; i < s.num_elements && n > 0; ++i) {
    size_t k = std::min(n, s.elements[i].len);
    std::memcpy(s.elements[i].buf, src, k);
    src += k;
    n -= k;
  }
}

}  // namespace agent::spread
