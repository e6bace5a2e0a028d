// Ring datagrams before authentication: what agentd's ring socket does with every datagram
// from a configured daemon's address (agentd/ring_socket.cpp): ringseal::Sealer::open (the
// envelope's header, key id, sender binding, AES-256-GCM tag, replay window and epochs) under
// a fixed cluster key, and what opens goes on to daemon 1's core in a ring of 3.
//
// Input: a trace (tests/fuzz/driver.h). Op 2 is a datagram as it arrives (raw bytes: the seeds
// hold datagrams sealed by the other daemons of a simulated ring, to be replayed, cut, flipped,
// reordered); op 7 is a ring packet the sender seals first with the key, so that fuzzed
// packets also get through the tag (from a later epoch of that sender than the seeds').
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/fuzz/driver.h"

using namespace agent;
using namespace agent::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Driver d(sealed_config(1, 3));
  ringseal::Sealer self({fuzz_key()}, 1, fuzz_epoch(1), true);
  std::unique_ptr<ringseal::Sealer> peers[2];
  std::string buf;
  d.set_receive([&](Driver& d, uint8_t from, std::string_view bytes, Op op) {
    membership::NodeId id = d.peer(from);
    if (op == kSealed) {
      auto& p = peers[id - 2];
      if (!p) p = std::make_unique<ringseal::Sealer>(std::vector<ringseal::Key>{fuzz_key()}, id,
                                                     fuzz_epoch(id) + 1, true);
      buf = p->seal(bytes);
    } else {
      buf.assign(bytes.data(), bytes.size());
    }
    auto o = self.open(buf.data(), buf.size(), id);
    if (o.ok) d.core().on_datagram(id, o.packet, d.now());
  });
  d.play({reinterpret_cast<const char*>(data), size});
  d.settle(1'000'000);
  return 0;
}
