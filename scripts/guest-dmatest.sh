#!/usr/bin/env bash
# Builds dmatest.ko for the guest kernel of scripts/guest-kernel.sh (Debian's 6.1 kernel ships no
# dmatest module: CONFIG_DMATEST is off). Downloads (never installs) linux-source-6.1,
# linux-headers-<release> (+ -common) and linux-kbuild-6.1 at the guest kernel's exact Debian
# version, extracts them under DIR/dmatest-build, and compiles only drivers/dma/dmatest.c out of
# tree with `make M=`. Needs gcc-12 (the compiler Debian built the kernel with).
# Idempotent: does nothing when DIR/dmatest.ko is there.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/guest-kernel}
if [[ -s $dir/dmatest.ko ]]; then exit 0; fi
[[ -s $dir/release ]] || scripts/guest-kernel.sh "$dir"
release=$(sed -n 1p "$dir/release")   # e.g. 6.1.0-57-amd64
version=$(sed -n 2p "$dir/release")   # e.g. 6.1.192-3
common=${release%-amd64}-common
work=$(realpath -m "$dir/dmatest-build")
rm -rf "$work"
mkdir -p "$work/root" "$work/m"
trap 'rm -rf "$work"' EXIT
echo "guest-dmatest: fetching the $version source, headers and kbuild"
(cd "$work" && apt-get download -qq "linux-source-6.1=$version" "linux-headers-$release=$version" \
  "linux-headers-$common=$version" "linux-kbuild-6.1=$version" 2>/dev/null)
for deb in "$work"/linux-headers-*.deb "$work"/linux-kbuild-*.deb; do dpkg-deb -x "$deb" "$work/root"; done
dpkg-deb --fsys-tarfile "$work"/linux-source-6.1_*.deb | tar -xO ./usr/src/linux-source-6.1.tar.xz | xz -dc |
  tar -xO linux-source-6.1/drivers/dma/dmatest.c > "$work/m/dmatest.c"
hdr=$work/root/usr/src/linux-headers-$release
# The arch headers' Makefile includes the common tree's by absolute path (/usr/src/...).
echo "include $work/root/usr/src/linux-headers-$common/Makefile" > "$hdr/Makefile"
echo 'obj-m := dmatest.o' > "$work/m/Kbuild"
make -s -C "$hdr" M="$work/m" modules
cp "$work/m/dmatest.ko" "$dir/dmatest.ko"
echo "guest-dmatest: $dir/dmatest.ko for $release ($version)"
