// Configuration-change packets: joins and commit tokens (transport/ring_wire.h decode_join,
// decode_commit) through daemon 1's ring protocol (membership/ring_membership.cpp: gather,
// consensus, commit, the ring sequence limits) in a ring of 3. Datagrams of other types are
// dropped here, so every mutation lands in a join or a commit; timers run between them.
//
// Input: a trace (tests/fuzz/driver.h); seeds are the joins and commits daemon 1 received
// while a simulated ring formed, partitioned and merged.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/driver.h"
#include "transport/ring_wire.h"

using namespace agent;
using namespace agent::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Driver d(fuzz_config(1, 3));
  d.set_receive([](Driver& d, uint8_t from, std::string_view bytes, Op) {
    auto h = ringwire::decode_header(bytes);
    if (!h || (h->type != ringwire::Type::kJoin && h->type != ringwire::Type::kCommit)) return;
    d.core().on_datagram(d.peer(from), bytes, d.now());
  });
  constexpr uint32_t kOps = 1u << kAdvance | 1u << kRun | 1u << kDatagram;
  d.play({reinterpret_cast<const char*>(data), size}, kOps);
  d.settle(1'000'000);
  return 0;
}
