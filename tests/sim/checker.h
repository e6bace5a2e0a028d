// Judges one simulation run from its records. Each check states the guarantee it proves; the
// verdict's reason is the first failure, in this order:
//   ring      identical message at each index on every daemon (prefix-consistent, no gaps);
//             per origin exactly its submissions, once each, in submission order (no creation,
//             no duplication); plus what was seen during the run (SAFE delivered before every
//             ring had the packet, a core that threw)
//   clients   no creation, no duplication, FIFO per sender, causal (never before what its sender
//             had seen), one order: any two clients get their common messages in the same order
//   routing   an independent model of the group table, replayed over the agreed order, says who
//             gets which data and membership notice (self-delivery included); and a fresh
//             GroupState per daemon replayed over the agreed order reproduces every client stream
//   liveness  after the heal, every daemon delivered everything submitted; no client was left
//             with messages its ring never accepted
#pragma once

#include <string>
#include <vector>

#include "tests/sim/records.h"

namespace agent::sim {

struct Verdict {
  bool ok = true;
  std::string reason;                  // the first failure ("" when ok)
  std::vector<std::string> failures;   // all of them (bounded)
};

Verdict check(const Records& r);

}  // namespace agent::sim
