#!/usr/bin/env bash
# Build what a QEMU guest needs to PXE-boot from labnet, from Debian packages
# only (no internet beyond the package registries):
#
#   DIR/tftp/pxelinux.0 ldlinux.c32     BIOS loader (pxelinux) and its core module
#   DIR/tftp/ipxe.efi undionly.kpxe     iPXE for x64 UEFI and for BIOS PXE ROMs
#   DIR/tftp/vmlinuz                    a Debian kernel (extracted, not installed)
#   DIR/tftp/initrd.img                 busybox initramfs whose /init prints
#                                       LABNET-BOOT-OK, then /proc/cmdline, then
#                                       powers off
#
# Usage: scripts/pxe-assets.sh DIR
# Reruns are quick: DIR/.stamp records the inputs; if they have not changed,
# nothing is rebuilt. Needs root only for installing missing packages.
set -euo pipefail

DIR=${1:?usage: pxe-assets.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
TFTP=$DIR/tftp

need_pkgs=(pxelinux syslinux-common ipxe busybox-static cpio)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "pxe-assets: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The versioned kernel package the `linux-image-amd64` metapackage points at.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg=$(kernel_pkg)
# A machine whose package lists were cleaned knows no kernel package yet.
[ -n "$kpkg" ] || { apt-get update -qq && kpkg=$(kernel_pkg); }
[ -n "$kpkg" ] || { echo "pxe-assets: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
busybox_ver=$(dpkg-query -W -f='${Version}' busybox-static)
# Bump the recipe number whenever this script changes what it builds.
stamp="recipe=2 kernel=$kpkg busybox=$busybox_ver"

if [ -f "$DIR/.stamp" ] && [ "$(cat "$DIR/.stamp")" = "$stamp" ] \
   && [ -s "$TFTP/vmlinuz" ] && [ -s "$TFTP/initrd.img" ]; then
  echo "$TFTP"
  exit 0
fi

rm -rf "$TFTP" "$DIR/work"
mkdir -p "$TFTP" "$DIR/work"
work=$DIR/work

# Kernel: `apt-get download` + `dpkg-deb -x` takes seconds; installing
# linux-image-amd64 would also build an initramfs we do not want.
# The sandbox user cannot write into DIR; download as root.
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$kpkg" >/dev/null)
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$TFTP/vmlinuz"

# Initramfs: static busybox and an /init that proves the boot reached
# userspace and shows which command line the kernel was given.
root=$work/initramfs
mkdir -p "$root"/{bin,proc,sys,dev}
cp /bin/busybox "$root/bin/busybox"
for app in sh mount cat echo poweroff sleep; do
  ln -s busybox "$root/bin/$app"
done
cat > "$root/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
echo
echo "LABNET-BOOT-OK"
echo "LABNET-CMDLINE: $(cat /proc/cmdline)"
echo
poweroff -f
EOF
chmod 755 "$root/init"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) > "$TFTP/initrd.img"

# Loaders.
cp /usr/lib/PXELINUX/pxelinux.0 "$TFTP/"
cp /usr/lib/syslinux/modules/bios/ldlinux.c32 "$TFTP/"
cp /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/undionly.kpxe "$TFTP/"

rm -rf "$work"
echo "$stamp" > "$DIR/.stamp"
echo "$TFTP"
