#include "tests/sim/records.h"

namespace agent::sim {

namespace svc = proto::service;

std::string service_name(uint32_t s) {
  static const std::pair<uint32_t, const char*> kNames[] = {
      {svc::kUnreliable, "UNRELIABLE"},   {svc::kReliable, "RELIABLE"},
      {svc::kFifo, "FIFO"},               {svc::kCausal, "CAUSAL"},
      {svc::kAgreed, "AGREED"},           {svc::kSafe, "SAFE"},
      {svc::kSelfDiscard, "SELF_DISCARD"}, {svc::kRegularMembership, "REG_MEMB"},
      {svc::kTransitional, "TRANSITION"}, {svc::kCausedByJoin, "JOIN"},
      {svc::kCausedByLeave, "LEAVE"},     {svc::kCausedByDisconnect, "DISCONNECT"},
      {svc::kCausedByNetwork, "NETWORK"}};
  std::string out;
  for (auto& [bit, name] : kNames) {
    if (!(s & bit)) continue;
    if (!out.empty()) out += '|';
    out += name;
    s &= ~bit;
  }
  if (s != 0) out += (out.empty() ? "" : "|") + std::string("0x") + std::to_string(s);
  return out.empty() ? "0" : out;
}

namespace {
std::string list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out + "]";
}
}  // namespace

bool ClientRecord::operator==(const ClientRecord& o) const {
  if (index != o.index || data != o.data) return false;
  if (data)
    return id == o.id && service == o.service && groups == o.groups &&
           payload_fingerprint == o.payload_fingerprint && payload_bytes == o.payload_bytes;
  const auto& a = membership;
  const auto& b = o.membership;
  return a.service == b.service && a.group == b.group && a.view == b.view &&
         a.members == b.members && a.changed == b.changed && a.vs_sets == b.vs_sets;
}

std::string ClientRecord::str() const {
  if (data)
    return "data " + id.str() + " " + service_name(service) + " to " + list(groups) + " (" +
           std::to_string(payload_bytes) + " bytes) at index " + std::to_string(index);
  const auto& m = membership;
  return "membership " + service_name(m.service) + " of " + m.group + " " + list(m.members) +
         " changed " + m.changed + " view (" + ring_name(m.view.config) + "," +
         ((m.view.seq >> 63) ? "T" + std::to_string((m.view.seq >> 32) & 0x7fffffff) + ":" +
                                  std::to_string(m.view.seq & 0xffffffff)
                            : std::to_string(m.view.seq)) +
         ") at index " + std::to_string(index);
}

std::string ring_name(uint64_t ring_id) {
  return std::to_string(ring_id >> 32) + "." + std::to_string(ring_id & 0xffffffffu);
}

std::string id_list(const std::vector<NodeId>& ids) {
  std::string out = "{";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "}";
}

bool Records::without_session(const std::string& client, uint64_t index) const {
  auto it = sessionless.find(client);
  if (it == sessionless.end()) return false;
  for (auto& [after, until] : it->second)
    if (index > after && index <= until) return true;
  return false;
}

bool Records::without_session_within(const std::string& client, uint64_t from, uint64_t to) const {
  auto it = sessionless.find(client);
  if (it == sessionless.end()) return false;
  for (auto& [after, until] : it->second)
    if (after < to && until > from) return true;
  return false;
}

}  // namespace agent::sim
