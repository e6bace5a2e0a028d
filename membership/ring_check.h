// Invariant checks of the protocol cores. They stay on in every build: a broken core must stop,
// not corrupt the order.
#pragma once

#include <stdexcept>

#define RING_CHECK(cond)                                                  \
  do {                                                                    \
    if (!(cond)) throw std::logic_error("ring invariant failed: " #cond); \
  } while (0)
