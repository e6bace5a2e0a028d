#include "groups/event_codec.h"

#include "transport/client_protocol.h"
#include "transport/wire.h"

namespace agent::groups {

void encode_event(std::string& out, const Event& ev) {
  if (ev.kind == EventKind::kData) {  // one encoder of the data layout (the hot path's)
    std::vector<std::string_view> groups(ev.groups.begin(), ev.groups.end());
    encode_data_event(out, ev.member, ev.service, ev.msg_type, groups.data(), groups.size(),
                      ev.payload);
    return;
  }
  wire::Writer w(out);
  w.u8(kEventCodecVersion);
  w.u8(static_cast<uint8_t>(ev.kind));
  w.str8(ev.member);
  switch (ev.kind) {
    case EventKind::kJoin:
    case EventKind::kLeave:
      w.str8(ev.group);
      break;
    case EventKind::kDisconnect:
      break;
    case EventKind::kData:
      break;  // above
    case EventKind::kState:
      w.u64(ev.config);
      w.u64(ev.old_config);
      w.u32(static_cast<uint32_t>(ev.memberships.size()));
      for (auto& [m, g] : ev.memberships) {
        w.str8(m);
        w.str8(g);
      }
      if (!ev.log_summary.empty()) w.bytes32(ev.log_summary);
      break;
  }
}

void encode_data_event(std::string& out, std::string_view member, uint32_t service,
                       int16_t msg_type, const std::string_view* groups, size_t ngroups,
                       std::string_view payload) {
  wire::Writer w(out);
  w.u8(kEventCodecVersion);
  w.u8(static_cast<uint8_t>(EventKind::kData));
  w.str8(member);
  w.u32(service);
  w.i16(msg_type);
  w.u16(static_cast<uint16_t>(ngroups));
  for (size_t i = 0; i < ngroups; ++i) w.str8(groups[i]);
  w.bytes32(payload);
}

std::optional<Event> decode_event(std::string_view bytes, std::string_view* payload) {
  Event ev;
  if (!decode_event(bytes, ev, payload)) return std::nullopt;
  return ev;
}

bool decode_event(std::string_view bytes, Event& ev, std::string_view* payload) {
  wire::Reader r(bytes);
  if (r.u8() != kEventCodecVersion) return false;
  uint8_t kind = r.u8();
  if (kind < 1 || kind > 5) return false;
  ev.kind = static_cast<EventKind>(kind);
  ev.member.assign(r.str8());
  ev.group.clear();
  ev.service = 0;
  ev.msg_type = 0;
  if (ev.kind != EventKind::kData) ev.groups.clear();  // data reuses the names' strings
  ev.payload.clear();
  ev.config = ev.old_config = 0;
  ev.memberships.clear();
  ev.log_summary.clear();
  switch (ev.kind) {
    case EventKind::kJoin:
    case EventKind::kLeave:
      ev.group.assign(r.str8());
      break;
    case EventKind::kDisconnect:
      break;
    case EventKind::kData: {
      ev.service = r.u32();
      ev.msg_type = r.i16();
      size_t n = r.u16();
      if (n > proto::kMaxGroupsPerMessage) return false;
      ev.groups.resize(n);
      for (size_t i = 0; i < n && r.ok(); ++i) ev.groups[i].assign(r.str8());
      if (payload)
        *payload = r.bytes32();
      else
        ev.payload.assign(r.bytes32());
      break;
    }
    case EventKind::kState: {
      ev.config = r.u64();
      ev.old_config = r.u64();
      size_t n = r.u32();
      if (!r.ok() || n > r.remaining() / 2) return false;  // each pair takes >= 2 bytes
      for (size_t i = 0; i < n && r.ok(); ++i) {
        std::string m(r.str8());
        std::string g(r.str8());
        ev.memberships.emplace_back(std::move(m), std::move(g));
      }
      if (r.remaining()) ev.log_summary.assign(r.bytes32());
      break;
    }
  }
  return r.done();
}

}  // namespace agent::groups
