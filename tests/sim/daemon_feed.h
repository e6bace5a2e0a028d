// How the daemon core (agentd/daemon_core.cpp run() and on_configuration(), through ClientHub)
// hands the ring's deliveries to the group layer, for the checker's replay and model, which
// feed a fresh GroupState from the recorded streams. The simulated daemons themselves run the
// core; this file is the checker's statement of the same three calls.
#pragma once

#include <cstdint>
#include <vector>

#include "groups/group_state.h"
#include "membership/ring.h"

namespace agent::sim {

// A message: apply(ordinal, origin).
inline void feed_message(groups::GroupState& gs, uint64_t ring_id, uint64_t ordinal, uint32_t origin,
                         const groups::Event& ev, std::vector<groups::Delivery>& out) {
  (void)ring_id;
  gs.apply(ordinal, origin, ev, out);
}

// A transitional configuration: its views are named by the ring being installed.
inline void feed_transitional(groups::GroupState& gs, uint64_t ring_id, uint64_t ordinal,
                              const std::vector<uint32_t>& members, uint64_t next_ring_id,
                              std::vector<groups::Delivery>& out) {
  (void)ring_id;
  gs.on_transitional(ordinal, members, out, next_ring_id);
}

// A regular configuration: returns the state event to submit to the ring (AGREED) at once.
inline groups::Event feed_regular(groups::GroupState& gs, uint64_t ring_id, uint64_t ordinal,
                                  const std::vector<uint32_t>& members, std::vector<groups::Delivery>& out) {
  return gs.on_regular(ordinal, ring_id, members, out);
}

}  // namespace agent::sim
