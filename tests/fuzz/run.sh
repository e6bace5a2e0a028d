#!/bin/sh
# Runs one fuzz target for a while from its committed corpus, one process, and fails on any
# finding (crash, sanitizer report, leak, timeout, out-of-memory).
#   run.sh FUZZER SECONDS CORPUS_DIR WORK_DIR [DICT]
# New inputs go to WORK_DIR/corpus (not into the source tree; merge them in by hand with
# -merge=1 if they are worth keeping); a finding is written to WORK_DIR/ as crash-*, leak-*,
# timeout-* or oom-*, and the command that reproduces it is printed.
set -eu
fuzzer=$1 seconds=$2 corpus=$3 work=$4 dict=${5:-}
rm -rf "$work"
mkdir -p "$work/corpus"
set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/"
[ -n "$dict" ] && set -- "$@" -dict="$dict"
status=0
"$fuzzer" "$@" "$work/corpus" "$corpus" || status=$?
if [ "$status" -ne 0 ]; then
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$f" ] && echo "run.sh: finding $f; reproduce with: $fuzzer $f"
  done
fi
exit "$status"
