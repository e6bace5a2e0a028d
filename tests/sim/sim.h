// One simulation run from a seed: the parameters a run is reproduced from, the configuration
// derived from them, and the verdict. Shared by agent-sim and the Catch2 tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tests/sim/checker.h"
#include "tests/sim/cluster.h"

namespace agent::sim {

// What the command line sets. Everything else about a run is derived from the seed.
struct SimParams {
  uint64_t seed = 1;
  size_t nodes = 0;      // 0: derived from the seed (cycling 1..7)
  double loss = -1;      // < 0: derived from the seed (0, 0.05, 0.2 or 0.3)
  bool faults = false;   // crashes, restarts, partitions and heals (the mix derived from the seed)
  std::string fault;     // a ring fault switch: "", "skip-retransmit", "out-of-order",
                         // "safe-early", "skip-recovery", "deliver-past-gap" or
                         // "skip-durable-gate"
  NodeId fault_node = 0;  // the daemon the fault is set on; 0: every daemon
  // The message log: "" none, "always" (durability always: the gate; persistent groups, sync
  // times derived from the seed).
  std::string persist;
  bool verbose = false;
  bool trace = false;    // print every packet arrival, ring state change and configuration
};

// The parameters with every derived value filled in.
SimParams resolve(SimParams p);
// The full configuration of a resolved run.
ClusterConfig make_config(const SimParams& p);
// The command that reproduces the run exactly (all parameters explicit).
std::string repro_command(const SimParams& p, std::string_view program = "agent-sim");
bool valid_fault(std::string_view name);

struct SeedResult {
  SimParams params;  // resolved
  Verdict verdict;
  std::string summary;  // one line of what happened (sizes, counts, timing)
  double wall_ms = 0;
};

SeedResult run_seed(const SimParams& p);

}  // namespace agent::sim
