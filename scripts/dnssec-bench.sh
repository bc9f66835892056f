#!/usr/bin/env bash
# dnssec-bench.sh - CPU per cold resolution with DNSSEC validation off and on, labnet-dnsd beside
# Unbound, on a signed fake Internet (resolver-peers.sh has no DNSSEC mode).
#
# One private netns (removed on exit). NSD serves a root (127.0.0.2), com (127.0.0.11) and
# $N_ZONES leaf zones zNNN.com (127.0.1.1), each with $NAMES A names; every zone is signed
# (dnssec-keygen ECDSAP256SHA256, one key per zone, dnssec-signzone -z) with DS in its parent.
# Each resolver runs pinned to core 0, fresh, four ways: labnet off/on, unbound off/on (on = the
# root's DS as trust anchor). After ". SOA" is answered, every name is asked once with dnsperf
# (core 1, -n 1 -Q $QPS); CPU = utime+stime of the resolver process / names.
# Usage (root, from the workspace, binaries built): scripts/dnssec-bench.sh
# Output: a table; last line BENCH_SUMMARY {json}.
set -euo pipefail
export LC_ALL=C
N_ZONES=${N_ZONES:-200}
NAMES=${NAMES:-10}
QPS=${QPS:-1000}
DNSD=${DNSD:-$PWD/target/release/labnet-dnsd}
CTL=${CTL:-$PWD/target/release/labnetctl}
NS=dsbench-$$
D=$(mktemp -d /tmp/dsbench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
for t in nsd unbound dnsperf dig dnssec-keygen dnssec-signzone dnssec-dsfromkey; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
ip netns add "$NS"
ip -n "$NS" link set lo up
for a in 127.0.0.2 127.0.0.11 127.0.1.1 127.0.9.1; do ip -n "$NS" addr add "$a/32" dev lo; done
mkdir -p "$D/keys"
key() { dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -n ZONE -K "$D/keys" "$1"; }
ds() { dnssec-dsfromkey -2 "$D/keys/$1.key"; }
sign() { # zonefile origin key
  cat "$D/keys/$3.key" >> "$1"
  dnssec-signzone -q -z -d "$D" -K "$D/keys" -o "$2" -f "$1.signed" "$1" >/dev/null
}
echo "signing $N_ZONES zones..." >&2
RK=$(key .); CK=$(key com.)
{
  echo '$TTL 86400'
  echo '. SOA a.root-servers.net. h.root. 1 1800 900 604800 86400'
  echo '. NS a.root-servers.net.'
  echo 'a.root-servers.net. A 127.0.0.2'
  echo 'com. NS ns.nic.com.'
  echo 'ns.nic.com. A 127.0.0.11'
  ds "$CK"
} > "$D/root.zone"
{
  echo '$ORIGIN com.'
  echo '$TTL 86400'
  echo '@ SOA ns.nic.com. h.nic.com. 1 1800 900 604800 300'
  echo '@ NS ns.nic.com.'
  echo 'ns.nic A 127.0.0.11'
} > "$D/com.zone"
: > "$D/queries"
LEAVES=""
for i in $(seq -w 1 "$N_ZONES"); do
  z="z$i.com"
  k=$(key "$z.")
  { echo "z$i NS ns1.z$i"; echo "ns1.z$i A 127.0.1.1"; ds "$k"; } >> "$D/com.zone"
  {
    echo "\$ORIGIN $z."
    echo '$TTL 3600'
    echo "@ SOA ns1 h 1 3600 600 86400 300"
    echo "@ NS ns1"
    echo "ns1 A 127.0.1.1"
    for j in $(seq 1 "$NAMES"); do echo "h$j A 192.0.2.$j"; echo "h$j.$z. A" >> "$D/queries"; done
  } > "$D/$z.zone"
  sign "$D/$z.zone" "$z." "$k"
  LEAVES="$LEAVES $z"
done
sign "$D/com.zone" com. "$CK"
sign "$D/root.zone" . "$RK"
ds "$RK" > "$D/anchor.ds"
printf '. 3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A 127.0.0.2\n' > "$D/root.hints"
nsd_start() { # name addr zones...
  local n=$1 a=$2; shift 2
  mkdir -p "$D/$n"
  {
    printf 'server:\n  ip-address: %s\n  port: 53\n  username: ""\n  chroot: ""\n  zonesdir: "%s"\n' "$a" "$D"
    printf '  database: ""\n  zonelistfile: "%s/zl"\n  xfrdfile: "%s/xs"\n  xfrdir: "%s"\n  pidfile: "%s/pid"\n' "$D/$n" "$D/$n" "$D/$n" "$D/$n"
    printf '  server-count: 1\n  do-ip6: no\n  rrl-ratelimit: 0\nremote-control:\n  control-enable: no\n'
    for z in "$@"; do
      f=$z; [ "$z" = . ] && f=root
      printf 'zone:\n  name: "%s"\n  zonefile: "%s/%s.zone.signed"\n' "$z" "$D" "$f"
    done
  } > "$D/$n/nsd.conf"
  ip netns exec "$NS" taskset -c 1 nsd -d -c "$D/$n/nsd.conf" >"$D/$n/log" 2>&1 &
  PIDS+=($!)
}
nsd_start root 127.0.0.2 .
nsd_start com 127.0.0.11 com
# shellcheck disable=SC2086
nsd_start leaf 127.0.1.1 $LEAVES
sleep 2
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
N=$(wc -l < "$D/queries")
run() { # name validate(0/1)
  local name=$1 on=$2 pid
  rm -rf "$D/srv"; mkdir -p "$D/srv"
  case $name in
    labnet)
      local extra="dnssec = false"
      [ "$on" = 1 ] && extra="trust_anchors = \"$D/anchor.ds\""
      printf '[store]\nurl = "sqlite://%s/srv/l.db"\n[dns]\nlisten = ["127.0.9.1:53"]\nrecursion_allowed = ["127.0.0.0/8"]\nroot_hints = "%s/root.hints"\n%s\n' \
        "$D" "$D" "$extra" > "$D/srv/l.toml"
      "$CTL" --config "$D/srv/l.toml" zones list >/dev/null
      ip netns exec "$NS" taskset -c 0 "$DNSD" --config "$D/srv/l.toml" >"$D/srv/log" 2>&1 &
      pid=$!;;
    unbound)
      local mods="iterator" ta=""
      [ "$on" = 1 ] && { mods="validator iterator"; ta="  trust-anchor-file: \"$D/anchor.ds\""; }
      printf 'server:\n  interface: 127.0.9.1\n  num-threads: 1\n  username: ""\n  chroot: ""\n  directory: "%s/srv"\n  pidfile: ""\n  use-syslog: no\n  do-ip6: no\n  do-not-query-localhost: no\n  module-config: "%s"\n  root-hints: "%s/root.hints"\n%s\n  access-control: 127.0.0.0/8 allow\n  msg-cache-size: 64m\n  rrset-cache-size: 64m\nremote-control:\n  control-enable: no\n' \
        "$D" "$mods" "$D" "$ta" > "$D/srv/u.conf"
      ip netns exec "$NS" taskset -c 0 unbound -d -c "$D/srv/u.conf" >"$D/srv/log" 2>&1 &
      pid=$!;;
  esac
  for _ in $(seq 50); do
    ip netns exec "$NS" dig @127.0.9.1 +time=1 +tries=1 . SOA 2>/dev/null | grep -q NOERROR && break
    sleep 0.2
  done
  local c0 c1 perf
  c0=$(cpu "$pid")
  perf=$(ip netns exec "$NS" taskset -c 1 dnsperf -s 127.0.9.1 -d "$D/queries" -n 1 -Q "$QPS" -c 4 -q 500 -t 5 2>&1)
  c1=$(cpu "$pid")
  # One answer checked: AD when validating.
  local flags
  flags=$(ip netns exec "$NS" dig @127.0.9.1 +time=2 h1.z001.com A | grep -o 'flags:[^;]*' | head -1 || true)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local us lost sf noerr
  us=$(( (c1 - c0) * 1000000 / TICK / N ))
  lost=$(echo "$perf" | awk '/Queries lost:/{print $3}')
  noerr=$(echo "$perf" | grep -o 'NOERROR [0-9]*' | awk '{print $2}' | head -1 || true)
  sf=$(echo "$perf" | grep -o 'SERVFAIL [0-9]*' | awk '{print $2}' | head -1 || true)
  printf '%-8s %-4s %8s %8s %8s %8s  %s\n' "$name" "$([ "$on" = 1 ] && echo on || echo off)" "$us" "${noerr:-0}" "${sf:-0}" "${lost:-?}" "$flags"
  SUMMARY="$SUMMARY\"${name}_$([ "$on" = 1 ] && echo on || echo off)_us\":$us,"
}
SUMMARY=""
printf '%-8s %-4s %8s %8s %8s %8s  %s\n' server dnssec cpu_us noerror servfail lost "flags of h1.z001.com"
for r in labnet unbound; do for on in 0 1; do run "$r" "$on"; done; done
echo "BENCH_SUMMARY {${SUMMARY}\"names\":$N}"
