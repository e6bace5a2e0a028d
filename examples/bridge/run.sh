#!/bin/bash
# Two sites of two daemons each on this machine, linked by their bridges (e1 and w1): alice at
# east (on e2) and bob at west (on w2) join "chat", see each other in its view, and talk.
# Ends by itself and stops what it started. Usage: examples/bridge/run.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
agentd=$build/agentd/agentd chat=$build/examples/chat/agent-chat
[ -x "$agentd" ] && [ -x "$chat" ] || { echo "build first: cmake --build --preset default" >&2; exit 2; }
dir=/tmp/agent-example-bridge
rm -rf "$dir" && mkdir -p "$dir"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; true' EXIT
# Each site's ring has its own key; the link between the sites has a third.
for k in ring-east ring-west link; do "$agentd" keygen "$dir/$k.key" >/dev/null; done
for d in e1 e2 w1 w2; do
  "$agentd" --config "$here/$d.toml" 2>"$dir/$d.log" &
  pids+=($!)
done
for _ in $(seq 100); do
  grep -q "bridge link with site west up" "$dir/e1.log" 2>/dev/null && break
  sleep 0.1
done
grep -h "bridge link" "$dir/e1.log" "$dir/w1.log" | sed 's/^/  /'
# alice and bob: join, wait for the other, say hello, read, leave.
talk() {  # daemon name line
  { sleep 1; echo "j chat"; sleep 2; echo "s chat $3"; sleep 2; echo q; } |
    "$chat" -d "$dir/$1.sock" -n "$2" 2>&1 | sed "s/^/  [$2@$1] /"
}
talk e2 alice "hello from the east" &
talk w2 bob "hello from the west" &
wait %1 %2 2>/dev/null || true
kill -TERM "${pids[@]}" 2>/dev/null || true
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
grep -h "totals: bridge link" "$dir/e1.log" "$dir/w1.log" | sed 's/^.*totals: /  /'
