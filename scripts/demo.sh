#!/bin/sh
# The main job: start a local agentd, let two chat clients exchange group and private messages,
# flood 1 KB messages through it, and stop. Ends by itself.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
dir=$(mktemp -d /tmp/agent-demo-XXXXXX)
sock=$dir/agentd.sock
"$B/agentd/agentd" --name demo --unix "$sock" --tcp off --state-dir "$dir/state" 2>"$dir/agentd.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
i=0
until [ -S "$sock" ]; do
  i=$((i + 1)); [ $i -le 200 ] || { echo "agentd did not start:"; cat "$dir/agentd.log"; exit 1; }
  sleep 0.05
done
echo "== agentd 'demo' is listening on $sock"

# bob joins and listens; alice joins, says hello to the group and privately to bob.
{ echo "j chat"; sleep 1.5; echo "s chat hi alice, bob here"; sleep 1; echo "q"; } |
  "$B/examples/chat/agent-chat" -d "$sock" -n bob >"$dir/bob.out" &
bob=$!
sleep 0.3
{ echo "j chat"; sleep 0.3; echo "s chat hello everyone"; echo "p #bob#demo psst, bob";
  sleep 1.5; echo "l chat"; sleep 0.2; echo "q"; } |
  "$B/examples/chat/agent-chat" -d "$sock" -n alice >"$dir/alice.out"
wait "$bob"
echo "== what bob saw"; cat "$dir/bob.out"
echo "== what alice saw"; cat "$dir/alice.out"

echo "== flooding 200000 messages of 1024 bytes (AGREED) through one daemon"
"$B/examples/flood/agent-flood" -d "$sock" -c 200000 -s 1024 -S agreed
echo "== done"
