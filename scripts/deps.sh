#!/usr/bin/env bash
# Install what labnet's tests and lab need on Debian: the stock clients the
# end-to-end tests drive, the peer servers the benchmarks compare with, QEMU
# and boot files for PXE. Idempotent; quick when everything is present.
set -euo pipefail

PACKAGES=(
  # the store's second backend (tests start their own server)
  postgresql
  # network plumbing for the test namespaces
  iproute2 iputils-ping procps
  # raw-packet probes in the abuse tests
  python3
  # DHCP clients and load (perfdhcp is in kea-admin)
  isc-dhcp-client udhcpc busybox-static kea-admin
  # DNS clients and the secondaries that AXFR from labnet
  bind9-dnsutils dnsperf nsd knot
  # the recursion tests: a peer resolver, drop rules for silent servers, a misbehaving server
  unbound nftables python3-dnspython
  # the DNSSEC test signs its fake Internet (dnssec-keygen, dnssec-signzone)
  bind9-utils
  # GSLB: real ISP prefix lists (IPFire location DB, offline) for `labnetctl gslb isp import`
  location libloc-database
  # TFTP clients; curl also scrapes the metrics endpoints
  tftp-hpa atftp curl
  # promtool, which checks the metrics text (its server is disabled below)
  prometheus
  # libFuzzer, which scripts/fuzz.sh builds from C++ source through libfuzzer-sys
  g++
  # PXE in QEMU
  qemu-system-x86 ipxe-qemu ipxe pxelinux syslinux-common ovmf cpio
  # the package test: cargo-deb strips with binutils and finds shared-library
  # dependencies with dpkg-shlibdeps (dpkg-dev); `man -w` finds the man pages;
  # systemd-analyze verifies the units
  binutils dpkg-dev man-db systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# cargo-deb builds the .deb (scripts/package.sh); a fixed version, built
# from crates.io once per machine.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "deps: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
# The daemons these packages ship must not hold our ports during tests.
for svc in nsd knot unbound kea-dhcp4-server prometheus postgresql; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
