#!/usr/bin/env bash
# The lab, end to end, on this machine: a network namespace `labnet-lab` with
# a bridge br0 = 10.77.0.1/24, labnet's daemons serving it from the embedded
# SQLite store with dist/labnet.toml exactly as shipped, and a client on the
# bridge that gets its address from labnet-dhcpd.
#
#   sudo scripts/lab.sh          # set up, run, show what happened, tear down
#   KEEP=1 sudo scripts/lab.sh   # leave the lab running (stop: scripts/lab.sh stop)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NS=labnet-lab
RUN=/run/labnet-lab
CONFIG=$ROOT/dist/labnet.toml

[ "$(id -u)" = 0 ] || { echo "lab.sh: run as root (namespaces, ports 53/67/69)" >&2; exit 1; }

stop() {
  if [ -d "$RUN" ]; then
    for f in "$RUN"/*.pid; do
      [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
  fi
  if ip netns list | grep -qw "^$NS"; then
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    ip netns del "$NS" 2>/dev/null || true
  fi
  ip netns del "$NS-vm1" 2>/dev/null || true
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

scripts/deps.sh
echo "== building labnet (release)"
cargo build --release --bins --locked
BIN=$ROOT/target/release

stop
mkdir -p "$RUN"
echo "== lab network: namespace $NS, bridge br0 10.77.0.1/24"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add 10.77.0.1/24 dev br0
ip -n "$NS" link set br0 up

echo "== store: $(grep -m1 '^url' "$CONFIG")"
"$BIN/labnetctl" --config "$CONFIG" init

start() { # name
  ip netns exec "$NS" "$BIN/$1" --config "$CONFIG" >"$RUN/$1.log" 2>&1 &
  echo $! >"$RUN/$1.pid"
  for _ in $(seq 100); do
    grep -q serving "$RUN/$1.log" && { echo "   $1 is serving (log: $RUN/$1.log)"; return 0; }
    kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "$1 did not start:" >&2; cat "$RUN/$1.log" >&2; exit 1
}
echo "== daemons"
start labnet-dhcpd

echo "== a client on the bridge: udhcpc, hostname vm1"
ip netns add "$NS-vm1"
ip link add vm1 netns "$NS" type veth peer name eth0 netns "$NS-vm1"
ip -n "$NS" link set vm1 master br0
ip -n "$NS" link set vm1 up
ip -n "$NS-vm1" link set lo up
ip -n "$NS-vm1" link set eth0 address 52:54:00:77:00:01 up
cat >"$RUN/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew) ip addr replace "$ip/${mask:-24}" dev "$interface"
               echo "   client bound: ip=$ip router=$router dns=$dns domain=$domain lease=${lease}s" ;;
esac
exit 0
EOF
chmod +x "$RUN/udhcpc.script"
ip netns exec "$NS-vm1" udhcpc -q -f -i eth0 -s "$RUN/udhcpc.script" -x hostname:vm1 -t 10 -T 1 -n

echo "== leases in the store"
"$BIN/labnetctl" --config "$CONFIG" leases list

if [ "${KEEP:-0}" = 1 ]; then
  echo "== the lab keeps running; stop it with: sudo scripts/lab.sh stop"
else
  stop
  echo "== done"
fi
