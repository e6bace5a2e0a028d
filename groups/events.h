// The ordered events the group layer consumes. Whatever orders them (one daemon alone, or the
// daemon ring) hands every daemon the same sequence; each daemon's GroupState then reaches the
// same table and derives the same views, and delivers to the members it hosts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace agent::groups {

enum class EventKind : uint8_t {
  kJoin = 1,        // member joins group
  kLeave = 2,       // member leaves group
  kDisconnect = 3,  // member's connection ended: it leaves every group
  kData = 4,        // member multicasts to groups
  kState = 5,       // after a configuration change: the sending daemon's local memberships
  // 6 is the message log's catch-up (agentd/catch_up.h): the daemon core takes those events,
  // the group layer never sees them.
};

struct Event {
  EventKind kind = EventKind::kData;
  std::string member;  // private group "#name#daemon" of the client concerned / the sender
  std::string group;   // kJoin, kLeave
  // kData
  uint32_t service = 0;
  int16_t msg_type = 0;
  std::vector<std::string> groups;
  std::string payload;
  // kState
  uint64_t config = 0;      // the configuration the state is for
  uint64_t old_config = 0;  // the configuration the sending daemon comes from
  std::vector<std::pair<std::string, std::string>> memberships;  // (member, group)
  // What the daemon's message log holds (agentd/catch_up.h), opaque here; may be empty.
  std::string log_summary;
};

}  // namespace agent::groups
