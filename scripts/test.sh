#!/bin/sh
# Builds and runs every test: the optimised build, then the same tests under
# AddressSanitizer + UndefinedBehaviorSanitizer, then each libFuzzer target briefly from its
# corpus (tests/fuzz/README.md). Ends with ctest's summary; exits non-zero on any failure.
# Set AGENT_SKIP_ASAN=1 to skip the second pass, AGENT_SKIP_FUZZ=1 to skip the third.
set -eu
cd "$(dirname "$0")/.."
cmake --preset default >/dev/null
cmake --build --preset default
ctest --preset default
if [ "${AGENT_SKIP_ASAN:-0}" != 1 ]; then
  cmake --preset asan >/dev/null
  cmake --build --preset asan
  ctest --preset asan
fi
if [ "${AGENT_SKIP_FUZZ:-0}" != 1 ]; then
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz
  ctest --preset fuzz
fi
