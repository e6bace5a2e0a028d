#!/bin/sh
# `cmake --install BUILD --prefix P` into a scratch prefix, and what the tree must hold: the
# daemon, both libraries with their SONAMEs, headers, pkg-config files a program builds with,
# the unit naming P's agentd and configuration, a configuration the installed agentd accepts,
# the sysusers file, man pages and docs. Usage: install_tree.sh BUILD_DIR PKG_CLIENT_SOURCE
set -eu
build=$1
client_src=$2
prefix=$(mktemp -d /tmp/agent-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install tree: FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$prefix.log" 2>&1 || { cat "$prefix.log"; rm -f "$prefix.log"; fail "cmake --install failed"; }
rm -f "$prefix.log"
for f in bin/agentd lib/libagent.so lib/libagent.so.0 lib/libagent.a lib/libspread.so \
         lib/libspread.so.0 include/agent.h include/sp.h include/sp_func.h include/sp_events.h \
         include/fl.h lib/pkgconfig/libagent.pc lib/pkgconfig/libspread.pc \
         etc/agentd/agentd.toml lib/systemd/system/agentd.service lib/sysusers.d/agentd.conf \
         share/man/man8/agentd.8.gz share/man/man5/agentd.toml.5.gz \
         share/doc/libagent/agentd.md share/doc/libagent/README.md share/doc/libagent/bindings.md; do
  [ -e "$prefix/$f" ] || fail "missing $f"
done
readelf -d "$prefix/lib/libagent.so.0" | grep -q 'SONAME.*\[libagent\.so\.0\]' || fail "libagent SONAME"
readelf -d "$prefix/lib/libspread.so.0" | grep -q 'SONAME.*\[libspread\.so\.0\]' || fail "libspread SONAME"
for page in share/man/man8/agentd.8.gz share/man/man5/agentd.toml.5.gz; do
  gzip -t "$prefix/$page" || fail "$page is not gzip"
  zcat "$prefix/$page" | head -5 | grep -q '^\.TH ' || fail "$page has no .TH"
done

unit=$prefix/lib/systemd/system/agentd.service
grep -qx "ExecStartPre=$prefix/bin/agentd --check-config $prefix/etc/agentd/agentd.toml" "$unit" \
  || fail "the unit's ExecStartPre does not name $prefix's agentd and configuration"
grep -qx "ExecStart=$prefix/bin/agentd --config $prefix/etc/agentd/agentd.toml" "$unit" \
  || fail "the unit's ExecStart does not name $prefix's agentd and configuration"
grep -qx 'Type=notify' "$unit" || fail "the unit is not Type=notify"
grep -qx 'StateDirectory=agentd' "$unit" || fail "the unit has no StateDirectory=agentd"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify $unit"
else
  echo "install tree: note: systemd-analyze is not installed, the unit's syntax is not verified"
fi

# The installed configuration: the unit's paths, and the installed daemon accepts it.
check=$("$prefix/bin/agentd" --check-config "$prefix/etc/agentd/agentd.toml") \
  || fail "agentd --check-config refuses the installed configuration"
echo "$check" | grep -q 'clients on /run/agentd/agentd.sock.*state in /var/lib/agentd' \
  || fail "the installed configuration does not use the unit's directories: $check"

# pkg-config: a program builds against the installed tree alone, and runs with its library.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion libagent)" = "$(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/libagent.pc")" ] || fail "pkg-config libagent"
# shellcheck disable=SC2046
cc -o "$prefix/pkg-client" "$client_src" $(pkg-config --cflags --libs libagent) \
  || fail "a program does not build with pkg-config libagent"
LD_LIBRARY_PATH="$prefix/lib" "$prefix/pkg-client" --help | grep -q usage || fail "pkg-client does not run"
LD_LIBRARY_PATH="$prefix/lib" ldd "$prefix/pkg-client" | grep -q "$prefix/lib/libagent.so.0" \
  || fail "pkg-client does not use the installed libagent.so.0"
printf '#include <sp.h>\nint main(void) { int a, b, c; return SP_version(&a, &b, &c) ? 0 : 1; }\n' \
  >"$prefix/sp.c"
# shellcheck disable=SC2046
cc -o "$prefix/sp" "$prefix/sp.c" $(pkg-config --cflags --libs libspread) \
  || fail "a Spread program does not build with pkg-config libspread"
LD_LIBRARY_PATH="$prefix/lib" "$prefix/sp" || fail "SP_version failed"
echo "install tree: ok ($(find "$prefix" -type f | wc -l) files under the prefix)"
