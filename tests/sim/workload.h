// The random client workload: joins, leaves and disconnects interleaved with multicasts of every
// service, to one or several groups (sometimes to another client's private group), with payloads
// from 0 bytes to many packets. Each data message carries (sender, counter) in its msg_type so
// the checker can identify it. Pure: the cluster asks for the next action and carries it out.
// Clients come and go (a crashed daemon's clients are gone; a restarted one gets new ones): the
// cluster registers every client and says which are alive when it asks for an action.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "groups/events.h"
#include "tests/sim/rng.h"
#include "tests/sim/scheduler.h"

namespace agent::sim {

struct WorkloadConfig {
  size_t actions = 100;          // client actions in the whole run
  size_t groups = 3;             // public groups "g0".."g{groups-1}"
  Time mean_gap_us = 500;        // between two actions (uniform 0..2*mean)
  size_t max_packet_bytes = 1024;  // payload sizes are drawn relative to this
  size_t max_payload_bytes = 16384;  // the largest payload ever drawn
  double p_join = 0.2;
  double p_leave = 0.1;
  double p_disconnect = 0.01;    // leaves every group; the client then carries on (reconnects)
  double p_self_discard = 0.2;
  double p_private = 0.1;        // a destination is another client's private group
};

struct ClientAction {
  size_t client = 0;     // index into the client list
  groups::Event event;
  uint32_t service = 0;  // what to give ring.submit(): the data's service, AGREED for the rest
};

class Workload {
 public:
  Workload(WorkloadConfig cfg, uint64_t seed);

  // Registers a client; returns its index (clients are numbered in registration order).
  size_t add_client(std::string name);
  // The first action comes shortly after now.
  void start(Time now);
  bool done() const { return generated_ >= cfg_.actions; }
  Time next_at() const { return next_at_; }
  // The action due at next_at(), by one of the alive clients (none when alive is empty: the
  // turn passes); then schedules the following one.
  std::optional<ClientAction> next(const std::vector<size_t>& alive);
  // A data message of client to one of its groups (or any group): the final round's probes.
  ClientAction probe(size_t client);

 private:
  std::string payload_for(const std::string& sender, int16_t counter);
  size_t payload_size();
  void make_data(ClientAction& a, const std::vector<size_t>& alive);

  std::vector<std::string> clients_;
  WorkloadConfig cfg_;
  Rng rng_;
  std::vector<std::string> group_names_;
  std::vector<std::set<std::string>> joined_;  // per client: groups it asked to be in
  std::vector<int16_t> counters_;
  size_t generated_ = 0;
  Time next_at_ = 0;
};

}  // namespace agent::sim
