#!/usr/bin/env bash
# Wall time of one BIOS PXE boot in QEMU (TCG, Debian's iPXE NIC ROM), from
# starting QEMU to the guest printing LABNET-BOOT-OK, served by:
#
#   labnet       labnet-dhcpd + labnet-tftpd: pxelinux, kernel + initrd over TFTP
#   labnet-http  the same daemons with [http]: the ROM gets labnet's generated
#                iPXE script (TFTP), which loads kernel + initrd over HTTP
#   dnsmasq      dnsmasq: pxelinux, kernel + initrd over TFTP
#
# The same kernel and busybox initramfs (scripts/pxe-assets.sh) each time.
#
# Usage: scripts/pxe-boot-time.sh labnet|labnet-http|dnsmasq [RUNS]
# Needs root. labnet binaries: $LABNET_BIN_DIR, else target/release.
set -euo pipefail
cd "$(dirname "$0")/.."

server=${1:?usage: pxe-boot-time.sh labnet|labnet-http|dnsmasq [RUNS]}
runs=${2:-1}
[ "$(id -u)" = 0 ] || { echo "pxe-boot-time: run as root" >&2; exit 1; }
bindir=${LABNET_BIN_DIR:-$PWD/target/release}
root=$(scripts/pxe-assets.sh "${LABNET_PXE_ASSETS:-/var/tmp/labnet-pxe-assets}")
work=$(mktemp -d)
ns=ln-boottime-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cmdline="console=ttyS0 panic=-1 labnet.profile=bench"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" addr add 10.77.0.1/24 dev br0
ip -n "$ns" link set br0 up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" link set tap0 master br0
ip -n "$ns" link set tap0 up

case $server in
  labnet|labnet-http)
    if [ "$server" = labnet-http ]; then
      # An iPXE loader for BIOS: a client already running iPXE (Debian's
      # NIC ROM) then gets its generated script instead of pxelinux.
      http=$'[http]\nlisten = ["10.77.0.1:80"]'
      bios='bios_boot_file = "undionly.kpxe"'
    else
      http=
      bios=
    fi
    cat > "$work/labnet.toml" <<EOF
[store]
url = "sqlite://$work/labnet.db"
[dhcp]
interfaces = ["br0"]
ping_check = false
[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.199"]
lease_time = "1h"
[tftp]
listen = ["10.77.0.1:69"]
root = "$root"
$http
[pxe]
tftp_server = "10.77.0.1"
default_profile = "bench"
$bios
EOF
    "$bindir/labnetctl" -c "$work/labnet.toml" profiles add bench --kernel vmlinuz \
      --initrd initrd.img --cmdline "$cmdline" >/dev/null
    RUST_LOG=warn ip netns exec "$ns" "$bindir/labnet-dhcpd" --config "$work/labnet.toml" 2>"$work/dhcpd.log" &
    pids+=($!)
    RUST_LOG=warn ip netns exec "$ns" "$bindir/labnet-tftpd" --config "$work/labnet.toml" 2>"$work/tftpd.log" &
    pids+=($!)
    ;;
  dnsmasq)
    # dnsmasq serves the same files; the pxelinux config is written out.
    cp -r "$root" "$work/tftp"
    mkdir -p "$work/tftp/pxelinux.cfg"
    printf 'DEFAULT labnet\nPROMPT 0\nTIMEOUT 0\nLABEL labnet\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND %s\n' \
      "$cmdline" > "$work/tftp/pxelinux.cfg/default"
    ip netns exec "$ns" dnsmasq --no-daemon --port=0 --interface=br0 --bind-interfaces \
      --dhcp-range=10.77.0.100,10.77.0.199,1h --dhcp-boot=pxelinux.0 \
      --enable-tftp --tftp-root="$work/tftp" 2>"$work/dnsmasq.log" &
    pids+=($!)
    ;;
  *) echo "pxe-boot-time: server is labnet, labnet-http or dnsmasq" >&2; exit 2 ;;
esac
sleep 1

for i in $(seq "$runs"); do
  serial=$work/serial-$i.log
  : > "$serial"
  start=$(date +%s.%N)
  ip netns exec "$ns" qemu-system-x86_64 -accel tcg -m 512 -nographic -monitor none -no-reboot \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:77:99:0$i -boot n </dev/null >"$serial" 2>&1 &
  qemu=$!
  until grep -aq LABNET-BOOT-OK "$serial"; do
    if ! kill -0 "$qemu" 2>/dev/null || (( $(date +%s) - ${start%.*} > 240 )); then
      kill "$qemu" 2>/dev/null || true
      echo "pxe-boot-time: $server run $i failed; serial log:" >&2
      tail -20 "$serial" >&2
      exit 1
    fi
    sleep 0.1
  done
  end=$(date +%s.%N)
  wait "$qemu" || true
  grep -aq "labnet.profile=bench" "$serial" || { echo "pxe-boot-time: wrong command line" >&2; exit 1; }
  printf '%s run %d: %.1f s\n' "$server" "$i" "$(echo "$end - $start" | bc)"
done
