// Ring packets after authentication: what reaches DaemonCore::on_datagram once the envelope is
// opened (agentd/ring_socket.cpp), i.e. the ring wire decoders (transport/ring_wire.h) and the
// ring protocol (membership::Ring: data, token, wake, held, join, commit) of daemon 1 in a
// ring of 3, with its clients and the group events (groups/event_codec.h) that ordered data
// carries. The seeds are what daemon 1 received while a simulated ring formed, carried client
// traffic and went through a partition and a merge, so mutations start from a live ring.
//
// Input: a trace (tests/fuzz/driver.h); op 2 is a datagram from daemon 2 or 3.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/driver.h"

using namespace agent::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Driver d(fuzz_config(1, 3));
  d.play({reinterpret_cast<const char*>(data), size}, ~(1u << kSealed));
  d.settle(1'000'000);
  return 0;
}
