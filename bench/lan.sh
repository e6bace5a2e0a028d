#!/bin/bash
# The LAN benchmark, in one command: starts a cluster of agentd (each in its own network
# namespace on a bridge when run as root, else on loopback), runs agent-bench against it
# (receivers on every daemon, senders round-robin over the daemons), prints progress and one
# RESULT line, and stops everything it started. At full load it runs twice, with the batched
# client and with the flooder-shaped one (--senders-receive --batch 1), and prints a SUMMARY line
# comparing them. --sweep runs sizes 64 B..64 KB, offered loads 10..100 % and the daemons' CPU
# per message at 1k..100k msg/s and draws a plot; --rate-sweep runs only the last;
# --load PCT measures the maximum, then offers PCT % of it; --idle measures an idle ring.
# See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: bench/lan.sh [options]
  --daemons N          daemons in the ring (default 3, at most 9)
  --senders N          senders, round-robin over the daemons (default: one per daemon)
  --size BYTES         message size (default 1024; 24 .. 16777216, agentd's message limit;
                       the default window shrinks with the size so any size runs as it is)
  --service NAME       unreliable|reliable|fifo|causal|agreed|safe (default agreed)
  --count N            send N messages in total, then stop
  --duration SECONDS   send for this long (default 5; ignored with --count)
  --rate MSGS          offered load, msg/s over all senders (default: as fast as it goes)
  --load PCT           offered load as PCT % of the maximum, measured first by a full-load run
                       of the same length (e.g. --load 50: latency at half of the maximum)
  --window N           messages a sender may be ahead of the slowest receiver
  --tick US            with --rate: a sender wakes at most every US µs and sends what fell
                       due meanwhile (default 200; 0: wakes for each message)
  --priority P         the daemons' daemon.priority: high (default), realtime, normal
  --late MS            print a line for every delivery later than MS ms (where stalls are)
  --warmup S           leave messages sent in the first S seconds out of the latency figures
                       (default 0.5)
  --batch N            a sender writes up to N due messages at once (AGENT_MORE; default 16,
                       1 = one write per message, as Spread's flooder does)
  --senders-receive    senders join the group and count as receivers too
  --client SHAPE       batched (--batch 16), flooder (--senders-receive --batch 1, as
                       Spread's flooder) or both, one run after the other with a SUMMARY
                       line comparing them (default: both at full load, else batched;
                       --batch or --senders-receive: as given)
  --accelerated N      ring.accelerated_window (Accelerated Ring; default 0 = off)
  --multicast          ring packets for every daemon go once to an IPv4 multicast group
                       (ring.multicast) instead of once per daemon
  --persist LEVEL      log the benchmark's group in every daemon's message log with this
                       durability: none|batch|always (default: no log)
  --auth MODE          ring datagrams: encrypt (default: a cluster key, AES-256-GCM),
                       auth (authenticated only, ring.encrypt = false) or none
                       (ring.key_file = "none": no authentication)
  --ring KEY=VALUE     any other [ring] setting of agentd, e.g. --ring personal_window=128,
                       --ring udp_offload=false
                       (the benchmark sets token_loss_ms=1000 unless given here)
  --net MODE           auto|netns|loopback (default auto: netns when root)
  --mtu BYTES          MTU of the namespaces' links (default 9000); ring packets fit in it
  --sweep              sizes 64 B..64 KB at full load, then 10..100 % load at 1 KB, then the
                       daemons' CPU per message at --rates: CSV + PNG
  --rate-sweep         only the last part of --sweep: daemons' CPU per message at --rates
  --rates LIST         offered loads (msg/s) of the CPU sweep (default 1000,10000,50000,100000)
  --sweep-duration S   seconds per sweep point (default 3)
  --out DIR            where --sweep writes (default build/bench-sweep)
  --idle SECONDS       no traffic: report the daemons' CPU and memory over this long
  --perf FILE          record the daemons with perf (call graphs) into FILE during the run
  --keep-logs          keep the daemons' logs and configs (their directory is printed)
  --scrape MS          fetch every daemon's /metrics (admin endpoint) every MS ms during the
                       run, as a Prometheus server would (what scraping costs the ring)
  --build DIR          build directory (default build)
  --agentd PATH        the daemon binary (default DIR/agentd/agentd), e.g. to compare builds
  -h, --help           this text
Persistence is not benchmarked yet (agentd has no message log).
EOF
}

die() { echo "lan.sh: $*" >&2; exit 2; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_num() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }

daemons=3 senders="" size=1024 service=agreed count="" duration=5 rate="" window="" batch="" tick="" late="" warmup="" priority=high
senders_receive=0 multicast=0 accelerated=0 auth=encrypt net=auto mtu=9000 sweep=0 sweep_duration=3 out=""
load="" idle="" keep=0 B=build perf_out="" agentd="" client="" rate_sweep=0 rates=1000,10000,50000,100000 scrape=""
perf_pid=""
ring_extra=()
persist=""
while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    --senders-receive) senders_receive=1; shift; continue ;;
    --multicast) multicast=1; shift; continue ;;
    --sweep) sweep=1; shift; continue ;;
    --rate-sweep) rate_sweep=1; shift; continue ;;
    --keep-logs) keep=1; shift; continue ;;
  esac
  case "$opt" in
    --daemons|--senders|--size|--service|--count|--duration|--rate|--load|--window|--batch|--tick|--late|--warmup|--priority|--accelerated|--ring|--persist|--auth|\
    --net|--mtu|--sweep-duration|--out|--idle|--build|--agentd|--perf|--client|--rates|--scrape) ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
  [ $# -ge 2 ] || die "$opt needs a value (see --help)"
  val=$2
  case "$opt" in
    --daemons) is_uint "$val" && [ "$val" -ge 1 ] && [ "$val" -le 9 ] || die "--daemons must be 1..9, not '$val'"; daemons=$val ;;
    --senders) is_uint "$val" && [ "$val" -ge 1 ] || die "--senders must be a positive number, not '$val'"; senders=$val ;;
    --size) is_uint "$val" && [ "$val" -ge 24 ] && [ "$val" -le 16777216 ] ||
              die "--size must be a number of bytes, 24 .. 16777216 (agentd's clients.max_message_bytes), not '$val'"
            size=$val ;;
    --client) case "$val" in batched|flooder|both) client=$val ;; *) die "--client must be batched, flooder or both, not '$val'" ;; esac ;;
    --rates) [[ "$val" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--rates must be msg/s, comma-separated (e.g. 1000,10000), not '$val'"; rates=$val ;;
    --service) case "$val" in unreliable|reliable|fifo|causal|agreed|safe) service=$val ;;
                 *) die "--service must be unreliable, reliable, fifo, causal, agreed or safe, not '$val'" ;; esac ;;
    --count) is_uint "$val" && [ "$val" -ge 1 ] || die "--count must be a positive number, not '$val'"; count=$val ;;
    --duration) is_num "$val" || die "--duration must be seconds, not '$val'"; duration=$val ;;
    --rate) is_num "$val" || die "--rate must be messages per second, not '$val'"; rate=$val ;;
    --load) is_uint "$val" && [ "$val" -ge 1 ] && [ "$val" -le 100 ] || die "--load must be a percentage 1..100, not '$val'"; load=$val ;;
    --window) is_uint "$val" && [ "$val" -ge 1 ] || die "--window must be a positive number, not '$val'"; window=$val ;;
    --priority) case "$val" in high|realtime|normal) priority=$val ;; *) die "--priority must be high, realtime or normal, not '$val'" ;; esac ;;
    --late) is_num "$val" || die "--late must be milliseconds, not '$val'"; late=$val ;;
    --warmup) is_num "$val" || die "--warmup must be seconds, not '$val'"; warmup=$val ;;
    --tick) is_uint "$val" || die "--tick must be microseconds, not '$val'"; tick=$val ;;
    --batch) is_uint "$val" && [ "$val" -ge 1 ] || die "--batch must be a positive number, not '$val'"; batch=$val ;;
    --accelerated) is_uint "$val" || die "--accelerated must be a number of packets (0: off), not '$val'"; accelerated=$val ;;
    --persist) case "$val" in none|batch|always) persist=$val ;; *) die "--persist must be none, batch or always, not '$val'" ;; esac ;;
    --ring) [[ "$val" =~ ^[a-z_]+=([0-9]+([.][0-9]+)?|true|false)$ ]] || die "--ring takes KEY=NUMBER or KEY=true|false, not '$val'"; ring_extra+=("$val") ;;
    --auth) case "$val" in encrypt|auth|none) auth=$val ;; *) die "--auth must be encrypt, auth or none, not '$val'" ;; esac ;;
    --net) case "$val" in auto|netns|loopback) net=$val ;; *) die "--net must be auto, netns or loopback, not '$val'" ;; esac ;;
    --mtu) is_uint "$val" && [ "$val" -ge 576 ] && [ "$val" -le 65535 ] || die "--mtu must be 576..65535, not '$val'"; mtu=$val ;;
    --sweep-duration) is_num "$val" || die "--sweep-duration must be seconds, not '$val'"; sweep_duration=$val ;;
    --out) out=$val ;;
    --idle) is_num "$val" || die "--idle must be seconds, not '$val'"; idle=$val ;;
    --build) B=$val ;;
    --agentd) agentd=$val ;;
    --scrape) is_uint "$val" && [ "$val" -ge 10 ] || die "--scrape must be milliseconds (at least 10), not '$val'"; scrape=$val ;;
    --perf) perf_out=$val; command -v perf >/dev/null || die "--perf needs perf (apt-get install linux-perf)" ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
  shift 2
done
[ -n "$senders" ] || senders=$daemons
[ -n "$out" ] || out="$B/bench-sweep"
[ -n "$agentd" ] || agentd="$B/agentd/agentd"
for f in "$agentd" "$B/bench/agent-bench"; do
  [ -x "$f" ] || die "$f is missing: build first (cmake --preset default && cmake --build --preset default)"
done
if [ -n "$load" ]; then
  [ -z "$rate" ] || die "--load and --rate both set the offered load: give one"
  [ "$sweep" = 0 ] || die "--sweep chooses its own loads: --load does not go with it"
fi
if [ "$sweep" = 1 ] || [ "$rate_sweep" = 1 ]; then
  command -v gnuplot >/dev/null || die "--sweep and --rate-sweep need gnuplot (sh scripts/install-deps.sh)"
  [ "$sweep" = 0 ] || [ "$rate_sweep" = 0 ] || die "--sweep includes --rate-sweep: give one"
  [ -z "$rate" ] && [ -z "$load" ] || die "--sweep and --rate-sweep choose their own loads: no --rate or --load"
fi
# The client's shape: given explicitly, implied by --batch/--senders-receive, or the default.
if [ -n "$client" ]; then
  [ -z "$batch" ] && [ "$senders_receive" = 0 ] || die "--client sets --batch and --senders-receive: give one or the other"
  [ "$client" != both ] || { [ "$sweep" = 0 ] && [ "$rate_sweep" = 0 ]; } || die "a sweep runs one client shape: --client batched or flooder"
elif [ -n "$batch" ] || [ "$senders_receive" = 1 ]; then
  client=custom
elif [ "$sweep" = 0 ] && [ "$rate_sweep" = 0 ] && [ -z "$rate" ] && [ -z "$load" ]; then
  client=both
else
  client=batched
fi
# With the default window a receiver has up to one message per sender queued at its daemon,
# which drops a client past clients.client_queue_bytes (64 MiB); keep a margin.
if [ -z "$window" ] && [ $(( ${senders:-$daemons} * size )) -gt $(( 48 << 20 )) ]; then
  die "--size $size with ${senders:-$daemons} senders: more than 48 MiB in flight to a receiver, past what agentd's default client queue (64 MiB) takes; use fewer senders"
fi

# Everything this script starts or creates is recorded here and undone by cleanup.
dir=$(mktemp -d /tmp/agent-lan-XXXXXX)
pids=()          # daemons
bench_pid=""
netns=()
ns_prefix="agb$$"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null || true
  for p in "${scrapers[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null || true
  stop_daemons
  for ns in "${netns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "lan.sh: logs kept in $dir" >&2; else rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "lan.sh: interrupted" >&2; exit 130' INT TERM HUP

stop_daemons() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    # agentd stops within a second on SIGTERM; one that does not is killed.
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}

# The network: one namespace per daemon, each with a veth whose peer sits on a bridge in one
# more namespace, so nothing changes in the host's own network.
setup_netns() {
  local i br="${ns_prefix}br"
  ip netns add "$br" || return 1
  netns+=("$br")
  # No IGMP snooping: the bridge floods multicast (ring.multicast) to every port, as a plain
  # LAN switch does.
  ip -n "$br" link add br0 type bridge mcast_snooping 0 || return 1
  ip -n "$br" link set br0 mtu "$mtu" up || return 1
  for i in $(seq "$daemons"); do
    ip netns add "${ns_prefix}d$i" || return 1
    netns+=("${ns_prefix}d$i")
    ip -n "$br" link add "v$i" mtu "$mtu" type veth peer name eth0 netns "${ns_prefix}d$i" || return 1
    ip -n "$br" link set "v$i" master br0 up || return 1
    ip -n "${ns_prefix}d$i" link set lo up || return 1
    ip -n "${ns_prefix}d$i" link set eth0 mtu "$mtu" up || return 1
    ip -n "${ns_prefix}d$i" addr add "10.77.0.$i/24" dev eth0 || return 1
  done
}

mode=loopback
why=""
if [ "$net" != loopback ]; then
  if [ "$(id -u)" -ne 0 ]; then
    why="not root"
  elif ! command -v ip >/dev/null; then
    why="no ip command (iproute2)"
  elif setup_netns 2>"$dir/netns.err"; then
    mode=netns
  else
    why="network namespaces unavailable: $(head -1 "$dir/netns.err")"
    for ns in "${netns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    netns=()
  fi
  [ "$net" = netns ] && [ "$mode" != netns ] && { echo "lan.sh: --net netns: $why" >&2; exit 1; }
fi
if [ "$mode" = netns ]; then
  packet_bytes=$(( mtu - 28 < 8192 ? mtu - 28 : 8192 ))  # IPv4 + UDP headers; agentd's default
  echo "lan: $daemons daemons in network namespaces ${ns_prefix}d1..d$daemons on a bridge (10.77.0.0/24, MTU $mtu, ring packets $packet_bytes B$([ "$multicast" = 1 ] && echo ", multicast"), ring datagrams: $auth)" >&2
else
  packet_bytes=8192
  echo "lan: $daemons daemons on loopback (127.0.0.1, MTU 65536, ring packets $packet_bytes B$([ "$multicast" = 1 ] && echo ", multicast"), ring datagrams: $auth)${why:+; no namespaces: $why}" >&2
fi
# Below the kernel's ephemeral range (32768..), where clients' own ports land, 10 apart (up to 9
# daemons and the multicast port): two runs at once (ctest -j2) collide only when their PIDs
# agree modulo 1200.
base_port=$((20000 + ($$ % 1200) * 10))
# One cluster key for every daemon of the run (--auth encrypt or auth).
if [ "$auth" != none ]; then
  "$agentd" --keygen "$dir/ring.key" >/dev/null || die "agentd --keygen failed"
fi
bench_token_loss_ms=1000

write_config() {  # $1: daemon index
  local i=$1 j addr port kv
  printf '[daemon]\nname = "d%s"\nstate_dir = "%s/state%s"\nlog_level = "info"\npriority = "%s"\n' "$i" "$dir" "$i" "$priority"
  printf '[clients]\nunix_socket = "%s/d%s.sock"\ntcp = "off"\n' "$dir" "$i"
  if [ -n "$persist" ]; then
    printf '[persist]\ngroups = ["bench"]\ndurability = "%s"\ndir = "%s/log%s"\n' "$persist" "$dir" "$i"
  fi
  # Every daemon's admin endpoint (scraped with --scrape): its namespace's loopback, or a port
  # of its own on the host's (10000 below the ring's).
  printf '[admin]\nhttp = "127.0.0.1:%s"\n' "$(admin_port "$i")"
  printf '[ring]\nid = %s\npacket_bytes = %s\naccelerated_window = %s\n' "$i" "$packet_bytes" "$accelerated"
  case "$auth" in
    none) printf 'key_file = "none"\n' ;;
    auth) printf 'key_file = "%s"\nencrypt = false\n' "$dir/ring.key" ;;
    *) printf 'key_file = "%s"\n' "$dir/ring.key" ;;
  esac
  for kv in "${ring_extra[@]}"; do printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"; done
  if [ "$multicast" = 1 ]; then
    if [ "$mode" = netns ]; then printf 'multicast = "239.192.77.1:4811"\n'; else printf 'multicast = "239.192.77.1:%s"\n' "$base_port"; fi
  fi
  # agentd's 250 ms token-loss timeout reconfigures the ring when other work on a shared
  # machine stalls a daemon that long under full load; the benchmark measures normal operation.
  [[ " ${ring_extra[*]} " == *" token_loss_ms="* ]] || printf 'token_loss_ms = %s\n' "$bench_token_loss_ms"
  for j in $(seq "$daemons"); do
    if [ "$mode" = netns ]; then addr="10.77.0.$j" port=4810; else addr=127.0.0.1 port=$((base_port + j)); fi
    printf '[[ring.daemons]]\nid = %s\naddress = "%s"\nport = %s\n' "$j" "$addr" "$port"
  done
}

admin_port() { if [ "$mode" = netns ]; then echo 4804; else echo $((base_port - 10000 + $1)); fi; }

# --scrape: one scraper per daemon (in its namespace), GET /metrics every $scrape ms until killed.
scrapers=()
start_scrapers() {
  local i py
  [ -n "$scrape" ] || return 0
  # A plain socket per request (the endpoint closes each connection): urllib cost the scraper
  # about 5 ms of CPU a request, which on two cores is taken from the benchmark itself.
  py='import signal, socket, sys, time
host, port, period, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) / 1000, 0
req = b"GET /metrics HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n"
def done(*_):
    print(n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    t = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=2) as c:
            c.sendall(req)
            got = b""
            while True:
                b = c.recv(65536)
                if not b: break
                got += b
        if not got.startswith(b"HTTP/1.") or b" 200 " not in got[:16] or b"agentd_" not in got:
            raise RuntimeError(got[:80])
        n += 1
    except Exception as e:
        print("scrape failed:", e, file=sys.stderr, flush=True)
    time.sleep(max(0, period - (time.monotonic() - t)))'
  for i in $(seq "$daemons"); do
    if [ "$mode" = netns ]; then
      ip netns exec "${ns_prefix}d$i" python3 -c "$py" 127.0.0.1 4804 "$scrape" >>"$dir/scrapes" 2>>"$dir/scrape.log" &
    else
      python3 -c "$py" 127.0.0.1 "$(admin_port "$i")" "$scrape" >>"$dir/scrapes" 2>>"$dir/scrape.log" &
    fi
    scrapers+=("$!")
  done
}
stop_scrapers() {
  local p
  for p in "${scrapers[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${scrapers[@]}"; do wait "$p" 2>/dev/null || true; done
  scrapers=()
  [ -n "$scrape" ] && echo "scrape: /metrics fetched $(awk '{ n += $1 } END { print n + 0 }' "$dir/scrapes" 2>/dev/null) times (every $scrape ms from each of $daemons daemons)" >&2
  rm -f "$dir/scrapes"
  if [ -s "$dir/scrape.log" ]; then echo "lan.sh: scraping /metrics failed:" >&2; head -3 "$dir/scrape.log" >&2; fi
}

start_daemons() {
  local i n members
  for i in $(seq "$daemons"); do
    write_config "$i" >"$dir/d$i.toml"
    rm -f "$dir/d$i.sock"
    if [ "$mode" = netns ]; then
      ip netns exec "${ns_prefix}d$i" "$agentd" --config "$dir/d$i.toml" 2>"$dir/d$i.log" &
    else
      "$agentd" --config "$dir/d$i.toml" 2>"$dir/d$i.log" &
    fi
    pids+=("$!")
  done
  members=$(seq -s, "$daemons")
  for i in $(seq "$daemons"); do
    n=0
    until [ -S "$dir/d$i.sock" ] && grep -q "regular configuration .* with daemons $members\$" "$dir/d$i.log"; do
      n=$((n + 1))
      if [ $n -gt 300 ] || ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
        echo "lan.sh: daemon d$i did not join a ring of $daemons within 15 s; its log:" >&2
        tail -20 "$dir/d$i.log" >&2
        exit 1
      fi
      sleep 0.05
    done
  done
}

# Runs agent-bench once on a fresh cluster; the RESULT line (with " client=$result_tag" when
# that is set) goes to stdout and into $last_result.
last_result=""
result_tag=""
run_once() {  # extra agent-bench options
  local socks pidlist i rc=0 confs confs0
  start_daemons
  confs0=$(cat "$dir"/d*.log | grep -c "regular configuration" || true)
  socks=$(for i in $(seq "$daemons"); do printf '%s/d%s.sock,' "$dir" "$i"; done)
  pidlist=$(IFS=,; echo "${pids[*]}")
  if [ -n "$perf_out" ]; then
    perf record -q -F 499 --call-graph dwarf,16384 -p "$pidlist" -o "$perf_out" 2>"$dir/perf.log" &
    perf_pid=$!
    sleep 0.3
  fi
  start_scrapers
  "$B/bench/agent-bench" --daemons "${socks%,}" --pids "$pidlist" --senders "$senders" \
    --service "$service" "$@" >"$dir/result" &
  bench_pid=$!
  wait "$bench_pid" || rc=$?
  bench_pid=""
  stop_scrapers
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=""; fi
  confs=$(cat "$dir"/d*.log | grep -c "regular configuration" || true)
  if [ "$confs" -gt "$confs0" ]; then
    echo "lan.sh: warning: the ring changed configuration during the run (see the daemons' logs; --keep-logs keeps them)" >&2
  fi
  stop_daemons
  [ "$rc" -eq 0 ] || { echo "lan.sh: agent-bench failed (exit $rc)" >&2; exit 1; }
  last_result=$(grep '^RESULT ' "$dir/result" || true)
  [ -n "$last_result" ] || { echo "lan.sh: agent-bench printed no RESULT line" >&2; exit 1; }
  [ -z "$result_tag" ] || last_result="$last_result client=$result_tag"
  echo "$last_result"
}

field() { echo "$last_result" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

proc_ticks() {  # utime+stime of a process in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

if [ -n "$idle" ]; then
  start_daemons
  hz=$(getconf CLK_TCK)
  before=(); for p in "${pids[@]}"; do before+=("$(proc_ticks "$p")"); done
  sleep "$idle"
  per="" total=0 rss=0 peak=0
  for k in "${!pids[@]}"; do
    p=${pids[$k]}
    t=$(( $(proc_ticks "$p") - before[k] ))
    total=$((total + t))
    per="$per${per:+/}$(awk -v t="$t" -v hz="$hz" -v s="$idle" 'BEGIN { printf "%.2f", t / hz / s * 100 }')"
    r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status"); [ "$r" -gt "$rss" ] && rss=$r
    h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status"); [ "$h" -gt "$peak" ] && peak=$h
  done
  awk -v t="$total" -v hz="$hz" -v s="$idle" -v n="$daemons" -v per="$per" -v rss="$rss" -v peak="$peak" \
    'BEGIN { printf "IDLE daemons=%d seconds=%s cpu_pct=%.2f per_daemon_pct=%s rss_mb=%.1f peak_rss_mb=%.1f\n", n, s, t / hz / s * 100, per, rss / 1024, peak / 1024 }'
  exit 0
fi

common=()
[ -n "$window" ] && common+=(--window "$window")
[ -n "$batch" ] && common+=(--batch "$batch")
[ -n "$tick" ] && common+=(--tick "$tick")
[ -n "$late" ] && common+=(--late "$late")
[ -n "$warmup" ] && common+=(--warmup "$warmup")
[ "$senders_receive" = 1 ] && common+=(--senders-receive)

# agent-bench's options for a client shape.
shape_opts() {
  case "$1" in
    batched) echo "--batch 16" ;;
    flooder) echo "--senders-receive --batch 1" ;;
    *) echo "" ;;
  esac
}
shape_text() {
  case "$1" in
    batched) echo "batched client (up to 16 messages per write)" ;;
    flooder) echo "flooder-shaped client (--senders-receive --batch 1: a write per message, senders receive)" ;;
    *) echo "client as given" ;;
  esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "na" || b == "na" || b + 0 == 0) print "na"; else printf "%.2f", a / b }'; }

if [ "$sweep" = 0 ] && [ "$rate_sweep" = 0 ]; then
  shapes=("$client")
  [ "$client" = both ] && shapes=(batched flooder)
  declare -A got_rate got_cpu got_p99
  for shape in "${shapes[@]}"; do
    # shellcheck disable=SC2207
    sopts=($(shape_opts "$shape"))
    opts=(--size "$size" "${common[@]}" "${sopts[@]}")
    if [ -n "$count" ]; then opts+=(--count "$count"); else opts+=(--duration "$duration"); fi
    [ "$client" = both ] && result_tag=$shape && echo "== $(shape_text "$shape")" >&2
    shape_rate=$rate
    if [ -n "$load" ]; then
      # The maximum first, on a cluster of its own, then PCT % of it on a fresh one.
      echo "== full load, to find the maximum" >&2
      run_once "${opts[@]}" --quiet >/dev/null  # its RESULT line stays in last_result
      max_rate=$(field msgs_per_s)
      echo "full load: $last_result" >&2
      shape_rate=$(awk -v m="$max_rate" -v p="$load" 'BEGIN { printf "%d", m * p / 100 }')
      [ "$shape_rate" -ge 1 ] || die "the full-load run delivered nothing"
      echo "== $load % of $max_rate msg/s: $shape_rate msg/s" >&2
    fi
    [ -n "$shape_rate" ] && opts+=(--rate "$shape_rate")
    run_once "${opts[@]}"
    got_rate[$shape]=$(field msgs_per_s) got_cpu[$shape]=$(field cpu_us_per_msg) got_p99[$shape]=$(field p99_us)
  done
  if [ "$client" = both ]; then
    # One line with both figures and their ratios: what a Spread-style program gets of the
    # batched client's throughput, and what each of its messages costs the daemons.
    echo "SUMMARY batched_msgs_per_s=${got_rate[batched]} flooder_msgs_per_s=${got_rate[flooder]}" \
      "flooder_vs_batched=$(ratio "${got_rate[flooder]}" "${got_rate[batched]}")" \
      "batched_cpu_us_per_msg=${got_cpu[batched]} flooder_cpu_us_per_msg=${got_cpu[flooder]}" \
      "cpu_flooder_vs_batched=$(ratio "${got_cpu[flooder]}" "${got_cpu[batched]}")" \
      "batched_p99_us=${got_p99[batched]} flooder_p99_us=${got_p99[flooder]}"
  fi
  exit 0
fi

mkdir -p "$out"
title="$daemons daemons ($mode), $senders senders, $(echo "$service" | tr a-z A-Z)"
# shellcheck disable=SC2207
sopts=($(shape_opts "$client"))
# The daemons' CPU per message against the offered rate: what moderate loads cost (token visits
# and wake-ups rather than bytes).
rate_sweep_run() {
  local r summary_rates="" summary_cpu="" summary_p99=""
  rates_csv="$out/rates.csv"
  echo "offered_msgs_per_s,msgs_per_s,cpu_us_per_msg,cpu_pct,p50_us,p99_us" >"$rates_csv"
  for r in ${rates//,/ }; do
    echo "== sweep: size $size, $r msg/s offered" >&2
    run_once --size "$size" --duration "$sweep_duration" --rate "$r" --quiet "${common[@]}" "${sopts[@]}"
    echo "$r,$(field msgs_per_s),$(field cpu_us_per_msg),$(field cpu_pct),$(field p50_us),$(field p99_us)" >>"$rates_csv"
    summary_rates="$summary_rates${summary_rates:+,}$r"
    summary_cpu="$summary_cpu${summary_cpu:+,}$(field cpu_us_per_msg)"
    summary_p99="$summary_p99${summary_p99:+,}$(field p99_us)"
  done
  echo "CPU_SWEEP size=$size rates=$summary_rates cpu_us_per_msg=$summary_cpu p99_us=$summary_p99"
}

if [ "$rate_sweep" = 1 ]; then
  rate_sweep_run
  gnuplot -e "rates='$rates_csv'; out='$out/rates.png'; title='$title'; lsize='$size'" bench/sweep.gp
  echo "sweep: $rates_csv $out/rates.png" >&2
  exit 0
fi

# The sweep: throughput against size at full load, then latency against offered load at
# --size (1 KB by default), loads as fractions of the full-load rate measured for that size,
# then the daemons' CPU per message at fixed rates.
sizes_csv="$out/sizes.csv" load_csv="$out/load.csv"
echo "size,msgs_per_s,mb_per_s,p50_us,p99_us,cpu_pct,rss_mb" >"$sizes_csv"
max_rate=""
for s in 64 256 1024 4096 16384 65536; do
  echo "== sweep: size $s, full load" >&2
  run_once --size "$s" --duration "$sweep_duration" --quiet "${common[@]}" "${sopts[@]}"
  echo "$s,$(field msgs_per_s),$(field mb_per_s),$(field p50_us),$(field p99_us),$(field cpu_pct),$(field rss_mb)" >>"$sizes_csv"
  [ "$s" = "$size" ] && max_rate=$(field msgs_per_s)
done
if [ -z "$max_rate" ]; then
  echo "== sweep: size $size, full load" >&2
  run_once --size "$size" --duration "$sweep_duration" --quiet "${common[@]}" "${sopts[@]}"
  max_rate=$(field msgs_per_s)
fi
echo "load_pct,offered_msgs_per_s,msgs_per_s,p50_us,p99_us,cpu_pct" >"$load_csv"
for pct in 10 20 30 40 50 60 70 80 90 100; do
  offered=$((max_rate * pct / 100))
  echo "== sweep: size $size, $pct % of $max_rate msg/s" >&2
  run_once --size "$size" --duration "$sweep_duration" --rate "$offered" --quiet "${common[@]}" "${sopts[@]}"
  echo "$pct,$offered,$(field msgs_per_s),$(field p50_us),$(field p99_us),$(field cpu_pct)" >>"$load_csv"
done
rate_sweep_run
gnuplot -e "sizes='$sizes_csv'; load='$load_csv'; rates='$rates_csv'; out='$out/sweep.png'; title='$title'; lsize='$size'" bench/sweep.gp
echo "sweep: $sizes_csv $load_csv $rates_csv $out/sweep.png" >&2
