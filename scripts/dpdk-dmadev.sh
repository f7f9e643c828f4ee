#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs DPDK's own dmadev_autotest (Debian's dpdk-test, DPDK 22.11) under `vfiobox run` against the
# default machine's I/OAT function 0000:09:00.0, by hand: the ctest entry dpdk.dmadev_autotest runs
# the same tests/dpdk/dmadev_autotest.sh, which says what passing means (the 11 API cases on the
# skeleton device, then copy, burst capacity and fill on the ioat; error handling is skipped by
# DPDK for CBVER 3.3, as on SKX hardware).
#   scripts/dpdk-dmadev.sh        (build vfiobox first: cmake --build --preset default)
# Installs dpdk-dev and librte-dma-ioat23 from Debian when missing (scripts/setup.sh default does too).
set -euo pipefail
cd "$(dirname "$0")/.."
vfiobox=${VB_VFIOBOX:-build/default/vfiobox}
[[ -x $vfiobox ]] || { echo "dpdk-dmadev: no $vfiobox (build vfiobox first)" >&2; exit 1; }
bash scripts/install-missing.sh --tag dpdk-dmadev dpdk-dev librte-dma-ioat23
exec bash tests/dpdk/dmadev_autotest.sh "$vfiobox"
