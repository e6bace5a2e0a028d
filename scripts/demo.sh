#!/bin/sh
# The main job: start a local cluster of three agentd on loopback (one ring), let two chat
# clients on different daemons exchange group and private messages, flood 1 KB messages
# through the ring, kill one daemon and watch the others' members see the network change,
# and stop. Ends by itself.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
dir=$(mktemp -d /tmp/agent-demo-XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

base=$((20000 + $$ % 20000))  # UDP ports for the ring
"$B/agentd/agentd" keygen "$dir/ring.key" >/dev/null  # the cluster key every daemon shares
for i in 1 2 3; do
  {
    printf '[daemon]\nname = "d%s"\nstate_dir = "%s/state%s"\n' "$i" "$dir" "$i"
    printf '[clients]\nunix_socket = "%s/d%s.sock"\ntcp = "off"\n' "$dir" "$i"
    printf '[ring]\nid = %s\ntoken_loss_ms = 100\nconsensus_timeout_ms = 60\njoin_timeout_ms = 10\ntoken_retransmit_ms = 10\n' "$i"
    printf 'key_file = "%s/ring.key"\n' "$dir"
    for j in 1 2 3; do
      printf '[[ring.daemons]]\nid = %s\naddress = "127.0.0.1"\nport = %s\n' "$j" $((base + j))
    done
  } >"$dir/d$i.toml"
  "$B/agentd/agentd" --config "$dir/d$i.toml" 2>"$dir/d$i.log" &
  pids="$pids $!"
done
d3pid=$(echo $pids | cut -d' ' -f3)
for i in 1 2 3; do
  n=0
  until [ -S "$dir/d$i.sock" ]; do
    n=$((n + 1)); [ $n -le 200 ] || { echo "agentd d$i did not start:"; cat "$dir/d$i.log"; exit 1; }
    sleep 0.05
  done
done
sleep 0.5  # let the three daemons settle in one ring
echo "== three daemons in one ring:"; grep -h "regular configuration" "$dir"/d*.log | tail -3

# bob (on d2) joins and listens; alice (on d1) joins, talks to the group and privately to bob;
# carol (on d3) joins; then daemon d3 is killed and bob sees the network change.
{ echo "j chat"; sleep 3; echo "s chat hi alice, bob here"; sleep 1; echo "q"; } |
  "$B/examples/chat/agent-chat" -d "$dir/d2.sock" -n bob >"$dir/bob.out" &
bob=$!
{ echo "j chat"; sleep 5; echo "q"; } | "$B/examples/chat/agent-chat" -d "$dir/d3.sock" -n carol >"$dir/carol.out" &
sleep 0.5
{ echo "j chat"; sleep 0.3; echo "s chat hello everyone"; echo "p #bob#d2 psst, bob";
  sleep 4; echo "l chat"; sleep 0.2; echo "q"; } |
  "$B/examples/chat/agent-chat" -d "$dir/d1.sock" -n alice >"$dir/alice.out" &
alice=$!
sleep 1.5
echo "== killing daemon d3 (kill -9)"
kill -9 "$d3pid"
wait "$bob" "$alice"
echo "== what bob (on d2) saw"; cat "$dir/bob.out"
echo "== what alice (on d1) saw"; cat "$dir/alice.out"

echo "== flooding 200000 messages of 1024 bytes (AGREED) from d1; receivers on d1 and d2"
"$B/examples/flood/agent-flood" -d "$dir/d2.sock" -r -g flood -c 200000 >"$dir/rx.out" &
rx=$!
sleep 0.3
"$B/examples/flood/agent-flood" -d "$dir/d1.sock" -g flood -c 200000 -s 1024 -S agreed
wait "$rx"
echo "receiver on d2: $(cat "$dir/rx.out")"
echo "== done"
