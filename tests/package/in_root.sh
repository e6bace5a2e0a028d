#!/bin/bash
# Run by deb_test.sh inside the fresh Debian 12 root: installs /tmp/libagent_*.deb with apt,
# checks what it installed, runs the unit's ExecStartPre, starts agentd as the unit would
# (user agentd, the installed configuration) with a scratch state directory and socket, and
# has pkg-client (against the installed libagent.so.0) join a group and get its message back.
set -euo pipefail
fail() { echo "package test (in the root): FAIL: $*"; exit 1; }
say() { echo "package test (in the root): $*"; }
export DEBIAN_FRONTEND=noninteractive

# apt-get update exits 0 when it could not fetch an index (a warning): its log says.
offline="cannot reach the Debian mirror (no network?): the package was NOT tested"
if ! apt-get update -qq >/tmp/apt-update.log 2>&1 ||
   grep -Eq 'Failed to fetch|Temporary failure|Could not resolve|Some index files failed' /tmp/apt-update.log; then
  cat /tmp/apt-update.log
  fail "apt-get update: $offline"
fi
if ! apt-get install -y -qq --no-install-recommends /tmp/libagent_*.deb >/tmp/apt-install.log 2>&1; then
  cat /tmp/apt-install.log
  grep -Eq 'Failed to fetch|Temporary failure|Could not resolve' /tmp/apt-install.log &&
    fail "apt-get install: $offline"
  fail "apt-get install of the package failed"
fi
say "installed: $(dpkg-query -W -f='${Package} ${Version} ${Status}' libagent)"
for f in /usr/bin/agentd /usr/lib/libagent.so.0 /usr/lib/libspread.so.0 /usr/include/agent.h \
         /usr/include/sp.h /usr/lib/pkgconfig/libagent.pc /etc/agentd/agentd.toml \
         /usr/lib/systemd/system/agentd.service /usr/lib/sysusers.d/agentd.conf \
         /usr/share/man/man8/agentd.8.gz /usr/share/man/man5/agentd.toml.5.gz; do
  [ -e "$f" ] || fail "the package did not install $f"
done
getent passwd agentd >/dev/null || fail "the postinst did not create the user agentd"
grep -qx 'ExecStart=/usr/bin/agentd --config /etc/agentd/agentd.toml' \
  /usr/lib/systemd/system/agentd.service || fail "the unit does not start /usr/bin/agentd"
# (/lib is /usr/lib: merged /usr)
libs=$(ldd /tmp/pkg-client)
grep -Eq 'libagent\.so\.0 => (/usr)?/lib/libagent\.so\.0 ' <<<"$libs" \
  || fail "pkg-client does not load the installed libagent.so.0: $libs"
agentd --version

# The unit's ExecStartPre, as its user.
setpriv --reuid=agentd --regid=agentd --init-groups \
  agentd --check-config /etc/agentd/agentd.toml || fail "agentd --check-config /etc/agentd/agentd.toml"

# The unit's ExecStart with a scratch state directory and socket (no systemd here to make
# /var/lib/agentd and /run/agentd).
run=/tmp/agentd-run
install -d -o agentd -g agentd -m 0750 "$run"
setpriv --reuid=agentd --regid=agentd --init-groups \
  agentd --config /etc/agentd/agentd.toml --state-dir "$run/state" --unix "$run/agentd.sock" \
  2>"$run/agentd.log" &
pid=$!
for _ in $(seq 100); do
  [ -S "$run/agentd.sock" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$run/agentd.log"; fail "agentd exited at start"; }
  sleep 0.1
done
[ -S "$run/agentd.sock" ] || { cat "$run/agentd.log"; fail "agentd did not listen within 10 s"; }
client_rc=0
/tmp/pkg-client "$run/agentd.sock" || client_rc=$?
kill -TERM "$pid"
daemon_rc=0
wait "$pid" || daemon_rc=$?
sed 's/^/  agentd: /' "$run/agentd.log"
[ "$client_rc" = 0 ] || fail "the client could not join and multicast through the installed agentd"
[ "$daemon_rc" = 0 ] || fail "agentd exited with status $daemon_rc after SIGTERM"
grep -q 'INFO  stopped' "$run/agentd.log" || fail "agentd did not log a clean stop"
say "ok: $(agentd --version | head -1) ran as the user agentd; a client joined and multicast through it"
