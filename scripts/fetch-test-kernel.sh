#!/usr/bin/env bash
# Fetches the Linux kernel the vm executor tests boot: Debian's current
# linux-image-*-amd64, unpacked (not installed: no initramfs is generated,
# the host's boot is untouched) into DIR, default $DMS_TEST_KERNEL_DIR or
# /var/cache/dms-test/kernel:
#
#   DIR/vmlinuz         the compressed kernel, as Debian ships it
#   DIR/vmlinux         the same kernel uncompressed (boots via PVH, about
#                       twice as fast under TCG); the tests' default
#   DIR/modules/*.ko    virtio-mmio, 9p, virtio-blk and ext4 modules, for
#                       mounts and root filesystems; virtio_console, for exec;
#                       failover, net_failover and virtio_net, for the subnet
#   DIR/modules.order   the order to load them in
#   DIR/PACKAGE         the package it came from
#
# Idempotent: does nothing when DIR already holds the current package with
# every module below (a DIR from an older version of this script, without
# virtio_net, is fetched again).
# Needs apt (apt-get download, no root needed for that), dpkg-deb and xz.
set -euo pipefail
dir=${1:-${DMS_TEST_KERNEL_DIR:-/var/cache/dms-test/kernel}}

pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
name=$(pkg)
if [ -z "$name" ]; then
  apt-get update -qq
  name=$(pkg)
fi
[ -n "$name" ] || { echo "fetch-test-kernel: cannot tell which kernel package linux-image-amd64 depends on" >&2; exit 1; }
if [ -f "$dir/PACKAGE" ] && [ "$(cat "$dir/PACKAGE")" = "$name" ] && [ -s "$dir/vmlinux" ] &&
  grep -qx virtio_console.ko "$dir/modules.order" 2>/dev/null &&
  grep -qx virtio_net.ko "$dir/modules.order" 2>/dev/null; then
  echo "fetch-test-kernel: $name already in $dir"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$name" >/dev/null)

# Load order: dependencies first.
mods=(virtio_ring virtio virtio_mmio netfs fscache 9pnet 9pnet_virtio 9p
      virtio_blk crc16 mbcache jbd2 crc32c_generic ext4 virtio_console
      failover net_failover virtio_net)
patterns=("./boot/vmlinuz-*")
for m in "${mods[@]}"; do patterns+=("*/$m.ko"); done
mkdir -p "$tmp/x"
dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp/x" --wildcards "${patterns[@]}"

new="$dir.new"
rm -rf "$new"
mkdir -p "$new/modules"
cp "$tmp"/x/boot/vmlinuz-* "$new/vmlinuz"
: >"$new/modules.order"
for m in "${mods[@]}"; do
  f=$(find "$tmp/x/lib" -name "$m.ko" | head -1)
  [ -n "$f" ] || { echo "fetch-test-kernel: module $m not in $name" >&2; exit 1; }
  cp "$f" "$new/modules/"
  echo "$m.ko" >>"$new/modules.order"
done

# Uncompress: find the payload's magic in the bzImage (xz, zstd or gzip).
extract() { # magic-regex decompress-command...
  local off
  off=$(LC_ALL=C grep -obUaP "$1" "$new/vmlinuz" | head -1 | cut -d: -f1) || return 1
  [ -n "$off" ] || return 1
  shift
  tail -c +"$((off + 1))" "$new/vmlinuz" | "$@" >"$new/vmlinux" 2>/dev/null || true
  [ "$(head -c 4 "$new/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]
}
extract '\xfd7zXZ\x00' xz -dc || extract '\x28\xb5\x2f\xfd' zstd -dcq || extract '\x1f\x8b\x08' gzip -dc ||
  { echo "fetch-test-kernel: cannot uncompress $name's vmlinuz" >&2; exit 1; }

echo "$name" >"$new/PACKAGE"
rm -rf "$dir"
mv "$new" "$dir"
echo "fetch-test-kernel: $name in $dir ($(du -sh "$dir" | cut -f1))"
