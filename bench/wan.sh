#!/bin/bash
# The WAN bridge benchmark: two sites of one daemon each on loopback, their bridges linked
# through bench/wan_relay (a TCP relay with a rate limit and a one-way delay: this kernel has
# no netem). A sender at east floods a group with members at both sites; the RESULT line gives
# what the west member received, in messages and payload bytes per second, against the link's
# rate. --heal instead cuts the link for 3 s under a steady load and reports how long after
# the heal traffic crossed again. See bench/README.md, "WAN bridge".
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'USAGE'
usage: bench/wan.sh [options]
  --rate-mbit R       the link's rate (default 100)
  --delay-ms D        one-way delay (default 25: 50 ms round trip)
  --size BYTES        message size (default 1024)
  --duration S        seconds of sending (default 10)
  --payload KIND      zeros (compressible, default) or random
  --compress on|off   LZ4 on the link's batches (bridge.compress; default on)
  --heal              cut the link for 3 s under a steady 2,000 msg/s and time the recovery
  --build DIR         build directory (default build)
USAGE
}

rate=100 delay=25 size=1024 duration=10 payload=zeros compress=on heal=0 build=build
while [ $# -gt 0 ]; do
  case $1 in
    --rate-mbit) rate=$2; shift 2;;
    --delay-ms) delay=$2; shift 2;;
    --size) size=$2; shift 2;;
    --duration) duration=$2; shift 2;;
    --payload) payload=$2; shift 2;;
    --compress) compress=$2; shift 2;;
    --heal) heal=1; shift;;
    --build) build=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) usage >&2; exit 2;;
  esac
done
agentd=$build/agentd/agentd bench=$build/bench/agent-bench relay=$build/bench/wan-relay
for b in "$agentd" "$bench" "$relay"; do
  [ -x "$b" ] || { echo "wan.sh: $b is missing (cmake --build --preset default)" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/agent-wan-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

base=$((30000 + ($$ % 1000) * 10))
west_port=$base relay_port=$((base + 1))
"$agentd" keygen "$dir/link.key" >/dev/null
zip=$([ "$compress" = on ] && echo true || echo false)
site() {  # name other listen dial
  cat > "$dir/$1.toml" <<CONF
[daemon]
name = "$1"
state_dir = "$dir/$1-state"
log_level = "info"
[clients]
unix_socket = "$dir/$1.sock"
tcp = "off"
[bridge]
site = "$1"
key_file = "$dir/link.key"
compress = $zip
$([ -n "$3" ] && echo "listen = \"127.0.0.1:$3\"")
[[bridge.sites]]
name = "$2"
$([ -n "$4" ] && echo "address = \"127.0.0.1:$4\"")
CONF
  "$agentd" --config "$dir/$1.toml" 2>"$dir/$1.log" &
  pids+=($!)
}
"$relay" --listen "$relay_port" --to "$west_port" --rate-mbit "$rate" --delay-ms "$delay" \
  >"$dir/relay.log" 2>&1 &
relay_pid=$!
pids+=($relay_pid)
site west east "$west_port" ""
site east west "" "$relay_port"
for s in east west; do
  for _ in $(seq 100); do [ -S "$dir/$s.sock" ] && break; sleep 0.1; done
done
for _ in $(seq 100); do grep -q "bridge link with site west up" "$dir/east.log" && break; sleep 0.1; done
grep -q "bridge link with site west up" "$dir/east.log" || { echo "wan.sh: the link did not come up"; cat "$dir/east.log"; exit 1; }

extra=()
[ "$payload" = random ] && extra+=(--random-payload)
if [ "$heal" = 1 ]; then
  "$bench" -d "$dir/east.sock,$dir/west.sock" -S 1 -s "$size" -r 2000 -D 12 -w 8192 -q \
    "${extra[@]}" >"$dir/bench.out" 2>&1 &
  bpid=$!
  sleep 3
  kill -USR1 $relay_pid
  sleep 3
  kill -USR2 $relay_pid
  wait $bpid || true
  heal_ms=$(sed -n 's/^first bytes \(.*\) ms after the heal/\1/p' "$dir/relay.log" | head -1)
  up=$(grep -o "bridge link with site west up.*" "$dir/east.log" | tail -1)
  echo "RESULT wan_heal link_mbit=$rate delay_ms=$delay first_bytes_after_heal_ms=${heal_ms:-none} backoff_max_ms=5000"
  echo "  east: $up"
  grep RESULT "$dir/bench.out" | sed 's/^/  /'
  exit 0
fi
"$bench" -d "$dir/east.sock,$dir/west.sock" -S 1 -s "$size" -D "$duration" -w 8192 -q \
  "${extra[@]}" >"$dir/bench.out" 2>&1 || { cat "$dir/bench.out"; exit 1; }
kill -TERM "${pids[1]}" "${pids[2]}" 2>/dev/null || true
wait "${pids[1]}" "${pids[2]}" 2>/dev/null || true
res=$(grep RESULT "$dir/bench.out" | tail -1)
msgs=$(echo "$res" | grep -o 'msgs_per_s=[0-9.]*' | cut -d= -f2)
link=$(grep -o "totals: bridge link with site west: .*" "$dir/east.log" | head -1)
raw=$(echo "$link" | sed -n 's/.*items sent [0-9]* (\([0-9]*\) bytes, \([0-9]*\) on the link.*/\1 \2/p')
echo "RESULT wan link_mbit=$rate delay_ms=$delay size=$size payload=$payload compress=$compress" \
  "msgs_per_s=${msgs:-0} payload_mbit=$(awk -v m="${msgs:-0}" -v s="$size" 'BEGIN{printf "%.1f", m*s*8/1e6}')" \
  "of_link=$(awk -v m="${msgs:-0}" -v s="$size" -v r="$rate" 'BEGIN{printf "%.2f", m*s*8/1e6/r}')" \
  "bytes_raw_wire=${raw// /\/}"
echo "  $res"
echo "  east: $link"
