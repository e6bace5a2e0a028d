#!/bin/sh
# Installs everything libagent needs to build, test and benchmark, from Debian's packages only.
# Idempotent: when every package is already installed it does nothing (no network).
set -eu
PKGS="build-essential cmake ninja-build pkg-config git ca-certificates
      libcaf-dev liblz4-dev librocksdb-dev catch2 libtoml11-dev libssl-dev
      clang-14 libclang-rt-14-dev llvm-14
      python3 python3-pytest openjdk-17-jdk-headless junit5
      iproute2 procps nftables gnuplot-nox
      libsystemd-dev dpkg-dev debootstrap file
      libcivetweb-dev nlohmann-json3-dev chromium chromium-driver python3-selenium"
# Tests reach local servers by the name localhost (chromedriver reaches chromium so): a root
# made by debootstrap has no /etc/hosts, and then nothing resolves it. Only written when absent.
if [ ! -e /etc/hosts ] && [ "$(id -u)" -eq 0 ]; then
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
