#!/usr/bin/env bash
# Installs the Debian packages vfiobox needs (only those missing), then configures and builds one
# CMake preset. Usage: scripts/setup.sh [preset] (default: "default"). Idempotent and quick when
# everything is already there. Must run as root on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}

# help2man: the vfiobox(1) man page; dpkg-dev: dpkg-shlibdeps for the .deb (build-essential has it).
pkgs=(build-essential cmake ninja-build pkg-config libzydis-dev
      libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev help2man dpkg-dev)
case "$preset" in
  asan|tsan|thread-safety) pkgs+=(clang-19 libclang-rt-19-dev lld-19) ;;
  # The QEMU tests (tests/qemu): QEMU itself, and what the guest test builds its initramfs from;
  # clang-19 for the clang builds of tests/mmio/mmio_forms.c; dpdk-test (in dpdk-dev) and DPDK's
  # ioat PMD for tests/dpdk.
  default) pkgs+=(qemu-system-x86 busybox-static cpio xz-utils clang-19 dpdk-dev librte-dma-ioat23) ;;
esac

bash scripts/install-missing.sh "${pkgs[@]}"

cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
if [[ $preset == default ]]; then
  bash scripts/guest-kernel.sh build/guest-kernel
  # dmatest.ko for GuestIoatTest (that test skips without it).
  bash scripts/guest-dmatest.sh build/guest-kernel || echo "setup: dmatest.ko not built; GuestIoatTest will skip" >&2
fi
