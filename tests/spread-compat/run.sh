#!/usr/bin/env bash
# Builds every C program in Spread 5.0.1's examples/ unchanged against libspread's installed
# headers and libraries, and runs each one's basic path against a local ring of two agentd.
#
#   tests/spread-compat/run.sh SPREAD_SRC_DIR [BUILD_DIR]
#
# SPREAD_SRC_DIR is an unpacked spread-src-5.0.1 (or its examples/ directory); BUILD_DIR is a
# configured and built tree of this repository (default: build). Not part of CI: it needs
# Spread's sources, which this repository does not contain. Everything it makes goes to a
# temporary directory (removed when all passed, kept with the logs otherwise); the daemons and programs it starts are stopped by their PIDs, and every
# program runs under a time limit. Prints one line per example and exits non-zero if any
# example failed to build or to run its basic path.
set -u
[ $# -ge 1 ] || { echo "usage: $0 SPREAD_SRC_DIR [BUILD_DIR]" >&2; exit 2; }
SRC=$(cd "$1" && pwd) || exit 2
[ -f "$SRC/examples/user.c" ] && SRC="$SRC/examples"
[ -f "$SRC/user.c" ] || { echo "no Spread examples in $1" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${2:-$REPO/build}" && pwd) || exit 2
AGENTD="$B/agentd/agentd"
[ -x "$AGENTD" ] || { echo "no agentd in $B (build first)" >&2; exit 2; }

work=$(mktemp -d /tmp/spread-compat-XXXXXX)
pids=""
cleanup() {  # SIGTERM, up to 5 s to exit, then SIGKILL: only the PIDs started here
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in $pids; do
    kill -0 "$p" 2>/dev/null && { echo "note: pid $p did not stop within 5 s of SIGTERM; SIGKILL" >&2; kill -9 "$p"; }
  done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== installing libspread to $work/prefix"
cmake --install "$B" --prefix "$work/prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; exit 1; }
P="$work/prefix"
bin="$work/bin"
mkdir -p "$bin" "$work/logs"

# ---- Build: the link lines of Spread's examples/Makefile, with our libraries.
CC=${CC:-cc}
CFLAGS="-g -O2"
declare -A built run
build() {  # name "sources" "extra cflags" "libs"
  local name=$1 srcs=$2 extra=$3 libs=$4 files=""
  for f in $srcs; do files="$files $SRC/$f"; done
  # shellcheck disable=SC2086
  if $CC $CFLAGS $extra -I"$P/include" -o "$bin/$name" $files -L"$P/lib" $libs \
      -Wl,-rpath,"$P/lib" >"$work/logs/$name.build" 2>&1; then
    local w
    w=$(grep -c "warning:" "$work/logs/$name.build")
    built[$name]="builds ($w warnings, in Spread's code)"
    [ "$w" = 0 ] && built[$name]="builds"
  else
    built[$name]="FAILS: $(grep -m1 'error' "$work/logs/$name.build")"
  fi
}
echo "== building Spread's examples"
build spuser        "user.c"                ""            "-lspread-core"
build sptuser       "user.c"                "-D_REENTRANT" "-ltspread-core -lpthread"
build spflooder     "flooder.c"             ""            "-lspread-core"
build spsimple_user "simple_user.c"         ""            "-lspread-core"
build spping        "spping.c"              ""            "-lspread-core -lm"
build flush_user    "fl_user.c"             "-D_REENTRANT" "-lspread -lpthread"
build sp_time_memb  "sp_time_memb.c stats.c" ""           "-lspread -lm"
build fl_time_memb  "fl_time_memb.c stats.c" ""           "-lspread -lm"

# ---- A ring of two daemons on loopback; clients reach them as Spread's "port" form (TCP).
base=$((20000 + $$ % 20000))
port1=$((base + 11)); port2=$((base + 12))
"$AGENTD" keygen "$work/ring.key" >/dev/null  # the ring's cluster key
for i in 1 2; do
  {
    printf '[daemon]\nname = "d%s"\nstate_dir = "%s/state%s"\n' "$i" "$work" "$i"
    printf '[clients]\nunix_socket = "%s/d%s.sock"\ntcp = "127.0.0.1:%s"\n' "$work" "$i" $((base + 10 + i))
    # Spread's programs pass no credentials: a loopback listener without authentication, on
    # purpose (AGENT_SECRET_FILE would let them authenticate, bindings/README.md).
    printf 'tcp_auth = "none"\n'
    printf '[ring]\nid = %s\ntoken_loss_ms = 200\nconsensus_timeout_ms = 100\n' "$i"
    printf 'key_file = "%s/ring.key"\n' "$work"
    for j in 1 2; do
      printf '[[ring.daemons]]\nid = %s\naddress = "127.0.0.1"\nport = %s\n' "$j" $((base + j))
    done
  } >"$work/d$i.toml"
  "$AGENTD" --config "$work/d$i.toml" >"$work/logs/d$i.log" 2>&1 &
  pids="$pids $!"
done
for i in 1 2; do
  n=0
  until [ -S "$work/d$i.sock" ]; do
    n=$((n + 1)); [ $n -le 200 ] || { echo "agentd d$i did not start:"; cat "$work/logs/d$i.log"; exit 1; }
    sleep 0.05
  done
done
sleep 1  # one ring

# Feeds lines to a program's stdin with pauses ("@0.3" sleeps 0.3 s), as a person typing would:
# the examples read one line per readable event.
typer() { for l in "$@"; do case $l in @*) sleep "${l#@}" ;; *) printf '%s\n' "$l" ;; esac; done; }
ok() { grep -q -- "$2" "$work/logs/$1" || { echo "    $1: no '$2'"; return 1; }; }
T=20  # seconds any one program may run

echo "== running each example's basic path"
# spuser / sptuser: a listener on d1, a sender on d2; a group message crosses the ring.
run_user() {
  local prog=$1 tag=$2
  [ -x "$bin/$prog" ] || { run[$prog]="not built"; return; }
  typer "j compat$tag" @3 q | timeout $T "$bin/$prog" -u l$tag -s $port1 >"$work/logs/$prog.listener" 2>&1 &
  local l=$!
  typer @1 "j compat$tag" @0.3 "s compat$tag" @0.2 "hello from $prog" @1 q |
    timeout $T "$bin/$prog" -u s$tag -s $port2 >"$work/logs/$prog.sender" 2>&1
  local rs=$?
  wait $l; local rl=$?
  if [ $rs = 0 ] && [ $rl = 0 ] && ok $prog.listener "hello from $prog" &&
     ok $prog.listener "with 2 members" && ok $prog.sender "hello from $prog"; then
    run[$prog]="runs: join, SAFE multicast across two daemons, membership, quit"
  else
    run[$prog]="FAILS (exit $rs/$rl; logs/$prog.*)"
  fi
}
run_user spuser 1
run_user sptuser 2

# spflooder: a read-only receiver on d2, a sender on d1 (which also reads its own messages).
if [ -x "$bin/spflooder" ]; then
  timeout $T "$bin/spflooder" -u fr -ro -m 5000 -s $port2 >"$work/logs/spflooder.receiver" 2>&1 &
  r=$!
  sleep 0.5
  timeout $T "$bin/spflooder" -u fs -m 5000 -b 1000 -s $port1 >"$work/logs/spflooder.sender" 2>&1
  rs=$?
  wait $r; rr=$?
  if [ $rs = 0 ] && [ $rr = 0 ]; then run[spflooder]="runs: 5000 x 1000 B sent and received"
  else run[spflooder]="FAILS (exit $rs/$rr)"; fi
else run[spflooder]="not built"; fi

# spsimple_user: joins, multicasts one line, reads until it gets it back.
if [ -x "$bin/spsimple_user" ]; then
  echo "hello simple" | timeout $T "$bin/spsimple_user" -u su -s $port1 >"$work/logs/spsimple_user.out" 2>&1
  rs=$?
  if [ $rs = 0 ] && ok spsimple_user.out "received AGREED message" && ok spsimple_user.out "hello simple" &&
     ok spsimple_user.out "caused by JOIN"; then
    run[spsimple_user]="runs: join, AGREED multicast, own message back"
  else run[spsimple_user]="FAILS (exit $rs)"; fi
else run[spsimple_user]="not built"; fi

# spping: a reflector on d2 (ended by SIGINT: E_exit_events_async_safe), a pinger on d1.
if [ -x "$bin/spping" ]; then
  timeout $T "$bin/spping" -ro -u pr -s $port2 >"$work/logs/spping.reflector" 2>&1 &
  r=$!
  sleep 0.5
  timeout $T "$bin/spping" -m 5 -p 50 -u pp -s $port1 >"$work/logs/spping.pinger" 2>&1
  rs=$?
  kill -INT $r 2>/dev/null
  wait $r; rr=$?
  if [ $rs = 0 ] && [ $rr = 0 ] && ok spping.pinger "5 packets transmitted, 5 packets received" &&
     ok spping.reflector "packets transmitted"; then
    run[spping]="runs: 5 pings answered; SIGINT ends the reflector's event loop"
  else run[spping]="FAILS (exit $rs/$rr)"; fi
else run[spping]="not built"; fi

# sp_time_memb and fl_time_memb: a load member on d1; a delta member on d2 joins and leaves
# three times, then tells the load member to stop.
time_memb() {
  local prog=$1
  [ -x "$bin/$prog" ] || { run[$prog]="not built"; return; }
  timeout $T "$bin/$prog" -t 0 0 -S 1 -g tm$prog -s $port1 >"$work/logs/$prog.load" 2>&1 &
  local l=$!
  sleep 0.5
  timeout $T "$bin/$prog" -t 1 3 -S 2 -g tm$prog -s $port2 >"$work/logs/$prog.delta" 2>&1
  local rd=$?
  wait $l; local rl=$?
  if [ $rd = 0 ] && [ $rl = 0 ] && ok $prog.load "Success!" && ok $prog.delta "Join:"; then
    run[$prog]="runs: 3 timed joins and leaves, the load member stops on the last"
  else
    run[$prog]="FAILS (exit $rd/$rl)"
  fi
}
time_memb sp_time_memb
time_memb fl_time_memb

# flush_user: a on d1 and b on d2 in one Flush group: a's flush request and flush, the view,
# a multicast from b, a subgroupcast from a to b.
if [ -x "$bin/flush_user" ]; then
  typer "j fg" @0.3 r @0.9 r @0.2 "f fg" @0.3 r @0.8 r @0.2 "g fg" 1 "#fb#d2" "hello sub" @1 q |
    timeout $T "$bin/flush_user" -u fa -s $port1 >"$work/logs/flush_user.a" 2>&1 &
  a=$!
  typer @0.6 "j fg" @0.9 r @0.3 "s fg" "hello flush" @1 r @0.3 r @0.5 q |
    timeout $T "$bin/flush_user" -u fb -s $port2 >"$work/logs/flush_user.b" 2>&1
  rb=$?
  wait $a; ra=$?
  if [ $ra = 0 ] && [ $rb = 0 ] && ok flush_user.a "received a FLUSH_REQ message for group fg" &&
     ok flush_user.a "Received REGULAR membership for group fg with 2 members" &&
     ok flush_user.a "hello flush" && ok flush_user.b "Received REGULAR membership for group fg with 2 members" &&
     ok flush_user.b "Received a subgroupcast message to group fg"; then
    run[flush_user]="runs: join, flush request, FL_flush, one view at both, multicast, subgroupcast"
  else run[flush_user]="FAILS (exit $ra/$rb)"; fi
else run[flush_user]="not built"; fi

echo
echo "== Spread 5.0.1 examples against libspread"
printf '%-14s %-12s | %s | %s\n' program source build run
fail=0
for p in spuser sptuser spflooder spsimple_user spping flush_user sp_time_memb fl_time_memb; do
  case $p in
    spuser|sptuser) s=user.c ;; spflooder) s=flooder.c ;; spsimple_user) s=simple_user.c ;;
    spping) s=spping.c ;; flush_user) s=fl_user.c ;; sp_time_memb) s=sp_time_memb.c ;;
    fl_time_memb) s=fl_time_memb.c ;;
  esac
  printf '%-14s %-12s | %s | %s\n' "$p" "$s" "${built[$p]}" "${run[$p]}"
  case "${built[$p]} ${run[$p]}" in *FAILS*|*"not built"*) fail=1 ;; esac
done
if [ $fail = 0 ]; then rm -rf "$work"; else echo "logs: $work/logs"; fi
exit $fail
