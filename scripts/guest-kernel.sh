#!/usr/bin/env bash
# Fetches the guest kernel for the QEMU guest test into DIR (default build/guest-kernel): Debian's
# linux-image-amd64 package is downloaded (not installed: the host's /boot is left alone), and
# from it we keep the uncompressed vmlinux (QEMU boots it directly through its PVH entry, which
# skips ~3 s of decompression under TCG), the uio/uio_pci_generic modules of the same build, and
# for the I/OAT guest test ioatdma.ko and dca.ko; `release` names the kernel's version
# (scripts/guest-dmatest.sh builds dmatest.ko for it). Idempotent: does nothing when all are there.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/guest-kernel}
if [[ -s $dir/vmlinux && -s $dir/uio.ko && -s $dir/uio_pci_generic.ko && -s $dir/ioatdma.ko && -s $dir/dca.ko &&
      -s $dir/release ]]; then exit 0; fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [[ -z $pkg ]]; then
  apt-get update -qq
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
echo "guest-kernel: fetching $pkg"
(cd "$tmp" && { apt-get download -qq "$pkg" 2>/dev/null || { apt-get update -qq && apt-get download -qq "$pkg" 2>/dev/null; }; })
(cd "$tmp" && dpkg-deb --fsys-tarfile ./*.deb | tar -x --wildcards './boot/vmlinuz-*' \
  './lib/modules/*/kernel/drivers/uio/uio.ko' './lib/modules/*/kernel/drivers/uio/uio_pci_generic.ko' \
  './lib/modules/*/kernel/drivers/dma/ioat/ioatdma.ko' './lib/modules/*/kernel/drivers/dca/dca.ko')
vmlinuz=$(ls "$tmp"/boot/vmlinuz-*)
# The bzImage carries the kernel as an XZ stream; xz stops with an error at the trailing bytes.
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
tail -c +$((off + 1)) "$vmlinuz" | xz -dc > "$tmp/vmlinux" 2>/dev/null || true
[[ $(head -c 4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] || { echo "guest-kernel: no ELF vmlinux in $vmlinuz" >&2; exit 1; }
cp "$tmp"/lib/modules/*/kernel/drivers/uio/uio.ko "$tmp"/lib/modules/*/kernel/drivers/uio/uio_pci_generic.ko \
  "$tmp"/lib/modules/*/kernel/drivers/dma/ioat/ioatdma.ko "$tmp"/lib/modules/*/kernel/drivers/dca/dca.ko "$dir/"
# The kernel release (e.g. 6.1.0-57-amd64) and the Debian version of its package.
(basename "$(ls -d "$tmp"/lib/modules/*)"; dpkg-deb -f "$tmp"/*.deb Version) > "$dir/release"
mv "$tmp/vmlinux" "$dir/vmlinux"
echo "guest-kernel: $dir/vmlinux ($(du -m "$dir/vmlinux" | cut -f1) MB) from $pkg"
