#!/bin/bash
# The Debian package in a fresh Debian 12: builds the .deb (cpack -G DEB in BUILD_DIR), checks
# its control data (computed dependencies, conffiles, maintainer scripts), installs it with apt
# into a minbase root (which pulls its dependencies from the Debian mirror), then in that root
# (in_root.sh) starts the installed agentd as the user agentd with the installed configuration
# and has a client join a group through it.
#   deb_test.sh BUILD_DIR PKG_CLIENT
# PKG_CLIENT: tests/package/pkg_client.c built against libagent; in the root it runs against
# the installed libagent.so.0.
# Needs root (chroot) and the Debian mirror. Without the mirror it FAILS, saying so: it never
# passes without having run. AGENT_SKIP_PACKAGE_TEST=1 skips it on purpose (exit 77, which
# ctest reports as skipped).
# The minbase root is made once with debootstrap (a few minutes) and cached as a tarball in
# $AGENT_PACKAGE_TEST_CACHE (default /var/cache/libagent-package-test); then the test takes
# about a minute, most of it apt fetching the dependencies.
set -euo pipefail
build=$(cd "$1" && pwd)
client=$2
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "package test: FAIL: $*"; exit 1; }
say() { echo "package test: $*"; }

if [ "${AGENT_SKIP_PACKAGE_TEST:-0}" = 1 ]; then
  echo "package test: SKIPPED (AGENT_SKIP_PACKAGE_TEST=1): the Debian package was NOT tested"
  exit 77
fi
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, mount)"
for tool in cpack debootstrap dpkg-shlibdeps unshare chroot flock; do
  command -v "$tool" >/dev/null || fail "needs $tool (sh scripts/install-deps.sh)"
done
# The host's mirror: deb822 sources (a Debian 12 install) or a sources.list (debootstrap's).
mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
cache=${AGENT_PACKAGE_TEST_CACHE:-/var/cache/libagent-package-test}
work=$(mktemp -d /tmp/agent-deb-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)

# 1. The package.
(cd "$build" && cpack -G DEB -B "$work/deb") >"$work/cpack.log" 2>&1 \
  || { cat "$work/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$work"/deb/libagent_*.deb)
say "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $(( $(date +%s) - t0 )) s"
depends=$(dpkg-deb -f "$deb" Depends)
say "Depends: $depends"
for lib in libcaf-core libcaf-io liblz4 libssl libsystemd0 libstdc++6 passwd; do
  [[ $depends == *"$lib"* ]] || fail "Depends does not name $lib (dpkg-shlibdeps)"
done
control=$(dpkg-deb -I "$deb")
for f in postinst prerm postrm conffiles shlibs triggers; do
  [[ $control == *" $f"* ]] || fail "the package has no $f"
done
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
[ "$conffiles" = /etc/agentd/agentd.toml ] \
  || fail "/etc/agentd/agentd.toml is not a conffile"

# 2. A fresh Debian 12 (minbase), cached: made once, one writer at a time.
mkdir -p "$cache"
tarball=$cache/bookworm-minbase.tar
(
  flock 9
  if [ ! -s "$tarball" ]; then
    say "making the minbase root once (debootstrap from $mirror, a few minutes); cached in $tarball"
    debootstrap --variant=minbase bookworm "$work/boot" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log"; fail "debootstrap from $mirror failed (no network to the Debian mirror?): the package was NOT tested"; }
    tar -C "$work/boot" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$work/boot"
  fi
) 9>"$cache/lock"
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$tarball"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
cp "$client" "$root/tmp/pkg-client"
cp "$here/in_root.sh" "$root/tmp/in_root.sh"

# 3. In the root: apt installs the package, the daemon starts, a client joins. Its own mount
# namespace: /proc is mounted there and goes with it, whatever ends the test.
say "installing into a fresh Debian 12 root and starting agentd there"
# (Inside a chroot whose / is no mount point, / cannot be made private: the root is then
# bound onto itself and that mount made private.)
unshare --mount --propagation unchanged --fork \
  bash -c '{ mount --make-rprivate / 2>/dev/null || { mount --bind "$1" "$1" && mount --make-private "$1"; }; } &&
           mount -t proc proc "$1/proc" && exec chroot "$1" /usr/bin/env -i \
             PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root /bin/bash /tmp/in_root.sh' _ "$root" \
  || fail "in the fresh root (above)"
say "ok in $(( $(date +%s) - t0 )) s"
