#!/usr/bin/env bash
# The lab, end to end, on this machine: a network namespace `labnet-lab` with
# a bridge br0 = 10.77.0.1/24, labnet's daemons serving it from the embedded
# SQLite store with dist/labnet.toml exactly as shipped; a bare QEMU VM that
# PXE-boots from labnet alone (DHCP, pxelinux over TFTP, kernel, initramfs)
# and whose name then resolves through labnet-dnsd; and a udhcpc client.
#
#   scripts/lab.sh          # set up, run, show what happened, tear down
#   KEEP=1 scripts/lab.sh   # leave the lab running (stop: scripts/lab.sh stop)
# As root, or as a user with sudo (the script re-runs itself through it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NS=labnet-lab
RUN=/run/labnet-lab
CONFIG=$ROOT/dist/labnet.toml

. scripts/as-root.sh

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
  ip netns del "$NS-vm2" 2>/dev/null || true
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
echo "== boot files: loaders, a Debian kernel and a busybox initramfs into /srv/tftp"
scripts/pxe-assets.sh /var/cache/labnet-lab >/dev/null
mkdir -p /srv/tftp
cp -a /var/cache/labnet-lab/tftp/. /srv/tftp/
echo "== boot profile 'rescue' and a reservation for vm1 (52:54:00:77:00:10)"
# The store outlives the lab: a second run replaces what the first one made.
"$BIN/labnetctl" --config "$CONFIG" reservations remove 52:54:00:77:00:10 >/dev/null 2>&1 || true
"$BIN/labnetctl" --config "$CONFIG" profiles add rescue --replace --kernel vmlinuz --initrd initrd.img \
  --cmdline "console=ttyS0 panic=-1 labnet=rescue"
"$BIN/labnetctl" --config "$CONFIG" reservations add 52:54:00:77:00:10 10.77.0.10 \
  --hostname vm1 --profile rescue

echo "== daemons"
start labnet-dhcpd
start labnet-dnsd
start labnet-tftpd

echo "== vm1: a bare QEMU VM (BIOS, TCG) PXE-boots from labnet alone"
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" link set tap0 master br0
ip -n "$NS" link set tap0 up
T0=$(date +%s)
timeout 300 ip netns exec "$NS" qemu-system-x86_64 -accel tcg -m 512 -nographic -monitor none \
  -no-reboot -boot n -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:10 </dev/null >"$RUN/vm1.serial" 2>&1 || true
if ! grep -q LABNET-BOOT-OK "$RUN/vm1.serial"; then
  echo "lab.sh: vm1 did not boot; serial log:" >&2; tail -30 "$RUN/vm1.serial" >&2; exit 1
fi
echo "   vm1 booted in $(( $(date +%s) - T0 )) s; its kernel said:"
grep -A1 LABNET-BOOT-OK "$RUN/vm1.serial" | sed 's/^/     /'

echo "== a client on the bridge: udhcpc, hostname vm2"
ip netns add "$NS-vm2"
ip link add vm2 netns "$NS" type veth peer name eth0 netns "$NS-vm2"
ip -n "$NS" link set vm2 master br0
ip -n "$NS" link set vm2 up
ip -n "$NS-vm2" link set lo up
ip -n "$NS-vm2" link set eth0 address 52:54:00:77:00:02 up
cat >"$RUN/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew) ip addr replace "$ip/${mask:-24}" dev "$interface"
               echo "   client bound: ip=$ip router=$router dns=$dns domain=$domain lease=${lease}s" ;;
esac
exit 0
EOF
chmod +x "$RUN/udhcpc.script"
ip netns exec "$NS-vm2" udhcpc -q -f -i eth0 -s "$RUN/udhcpc.script" -x hostname:vm2 -t 10 -T 1 -n

echo "== leases in the store"
"$BIN/labnetctl" --config "$CONFIG" leases list

echo "== vm1's name and its PTR, from its lease, through labnet-dnsd"
for _ in $(seq 20); do
  ip netns exec "$NS" dig +short @10.77.0.1 vm1.lab.test A | grep -q . && break
  sleep 0.2
done
ip_vm1=$(ip netns exec "$NS" dig +short @10.77.0.1 vm1.lab.test A)
echo "   dig vm1.lab.test A -> ${ip_vm1:-NOTHING}"
[ -n "$ip_vm1" ] || { echo "lab.sh: vm1.lab.test does not resolve" >&2; exit 1; }
ptr=$(ip netns exec "$NS" dig +short @10.77.0.1 -x "$ip_vm1")
echo "   dig -x $ip_vm1 -> ${ptr:-NOTHING}"
[ "$ptr" = "vm1.lab.test." ] || { echo "lab.sh: no PTR for $ip_vm1" >&2; exit 1; }

if [ "${KEEP:-0}" = 1 ]; then
  echo "== the lab keeps running; stop it with: scripts/lab.sh stop"
else
  stop
  echo "== done"
fi
