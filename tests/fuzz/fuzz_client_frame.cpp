// Client frames as agentd reads them: a daemon alone (a ring of one) with up to 256
// connections, each fed bytes as a client stream (DaemonCore::on_bytes: the frame reader, the
// hello, join, leave, multicast, history and bye handlers, access rules, limits), with time
// moving on (hello timeouts) and the shell's reports of unsent bytes (slow clients). Every
// frame the daemon sends back must decode (FuzzIo's oracle).
//
// Input: a trace (tests/fuzz/driver.h) of client operations; seeds from fuzz_make_corpus.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/driver.h"

using namespace agent::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Driver d(fuzz_config(1, 1));
  constexpr uint32_t kClientOps = 1u << kAdvance | 1u << kRun | 1u << kOpen | 1u << kBytes |
                                  1u << kClosed | 1u << kSent;
  d.play({reinterpret_cast<const char*>(data), size}, kClientOps);
  d.settle(1'000'000);
  return 0;
}
