// Judges one simulation run from its records. Every property is defined precisely in
// tests/sim/README.md ("What the checker proves"); the verdict's reason is the first failure,
// in this order:
//   ring      each daemon instance's stream on its own (indices 1, 2, 3...; regular,
//             transitional, regular...; messages of the ring in force, in packet order; no
//             creation, no duplication, FIFO per sending instance without unexcused gaps),
//             what was seen during the run (SAFE delivered before a member had the packet, a
//             core that threw, a storm);
//             without faults every daemon's stream is the same; with or without: agreement on
//             configurations (a), one order per ring without gaps before the transitional
//             configuration (f), the same messages for daemons that move together (b), SAFE (c)
//   clients   no creation, no duplication, FIFO per sender without unexcused gaps, causal
//             (a predecessor the receiver's daemon lacks needs an excuse), one order among
//             clients; membership consistent with data, views within the configuration (d);
//             the same messages for clients that move from one view to the next together (b);
//             one view per view id
//   routing   the checker's own group table, replayed over each daemon's stream, says who gets
//             which data and membership notice (self-delivery included) and what every table
//             holds at the end (e); a fresh GroupState replayed the same way reproduces every
//             client's stream
//   liveness  (e) after the final heal: every daemon runs, all end in one regular
//             configuration of every daemon, everything submitted once it was reached is
//             delivered everywhere, every daemon delivered its own messages (without faults:
//             every daemon delivered everything); no client was left with messages its ring
//             never accepted
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
