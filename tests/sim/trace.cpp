#include "tests/sim/trace.h"

#include "tests/sim/records.h"
#include "transport/ring_wire.h"

namespace agent::sim {

namespace rw = ringwire;

namespace {
std::string ids(const std::vector<uint32_t>& v) { return id_list(std::vector<NodeId>(v.begin(), v.end())); }
}  // namespace

std::string describe_packet(std::string_view bytes) {
  auto h = rw::decode_header(bytes);
  if (!h) return "undecodable";
  std::string_view body = bytes.substr(rw::kHeaderBytes);
  std::string s = "ring " + ring_name(h->ring_id) + " ";
  switch (h->type) {
    case rw::Type::kData: {
      auto d = rw::decode_data(body);
      if (!d) return s + "data ?";
      s += "data seq " + std::to_string(d->seq) + " hop " + std::to_string(d->hop) + " chunks " +
           std::to_string(d->chunks.size());
      for (auto& c : d->chunks)
        if (c.flags & rw::kRecovery) {
          auto oh = rw::decode_header(c.data);
          auto od = oh ? rw::decode_data(c.data.substr(rw::kHeaderBytes)) : std::nullopt;
          s += " [old " + (oh ? ring_name(oh->ring_id) : "?") + " seq " + (od ? std::to_string(od->seq) : "?") + "]";
        }
      return s;
    }
    case rw::Type::kToken: {
      auto t = rw::decode_token(body, 64, 100000);
      if (!t) return s + "token ?";
      s += "token hop " + std::to_string(t->hop) + " seq " + std::to_string(t->seq) + " rend " +
           std::to_string(t->recovery_end) + " arus";
      for (auto& e : t->arus)
        s += " " + std::to_string(e.member) + ":" + std::to_string(e.aru) + (e.flags ? "*" : "");
      s += " rtr " + std::to_string(t->rtr.size());
      return s;
    }
    case rw::Type::kWake: return s + "wake";
    case rw::Type::kHeld: return s + "held";
    case rw::Type::kJoin: {
      auto j = rw::decode_join(body, 64);
      if (!j) return s + "join ?";
      return s + "join seq " + std::to_string(j->ring_seq) + " inc " + std::to_string(j->incarnation) + " proc " +
             ids(j->proc) + " fail " + ids(j->fail);
    }
    case rw::Type::kCommit: {
      auto c = rw::decode_commit(body, 64);
      if (!c) return s + "commit ?";
      s += "commit " + ring_name(c->ring_id) + " hop " + std::to_string(c->hop);
      for (auto& e : c->members)
        s += " " + std::to_string(e.member) + (e.filled ? "(inc " + std::to_string(e.incarnation) + " old " +
                                                              ring_name(e.old_ring) + " aru " + std::to_string(e.old_aru) +
                                                              " high " + std::to_string(e.old_high) + ")"
                                                        : "()");
      return s;
    }
  }
  return s + "?";
}

std::string describe_event(const groups::Event& e) {
  using groups::EventKind;
  switch (e.kind) {
    case EventKind::kJoin: return "join " + e.member + " " + e.group;
    case EventKind::kLeave: return "leave " + e.member + " " + e.group;
    case EventKind::kDisconnect: return "disconnect " + e.member;
    case EventKind::kData: {
      std::string g;
      for (auto& x : e.groups) g += (g.empty() ? "" : ",") + x;
      return "data " + e.member + "/" + std::to_string(e.msg_type) + " to [" + g + "]";
    }
    case EventKind::kState: {
      std::string m;
      for (auto& [member, group] : e.memberships) m += (m.empty() ? "" : " ") + member + ":" + group;
      return "state for " + ring_name(e.config) + " from " + ring_name(e.old_config) + " [" + m + "]";
    }
  }
  return "?";
}

}  // namespace agent::sim
