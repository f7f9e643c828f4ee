#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs DPDK's own dmadev_autotest (Debian's dpdk-test, DPDK 22.11) under `vfiobox run` against the
# default machine's I/OAT function 0000:09:00.0, driven by DPDK's ioat PMD through the mapped,
# trapped BAR0 (docs/design/0012-ioat-engine.md). Opt-in, not part of ctest.
#   scripts/dpdk-dmadev.sh        (build vfiobox first: cmake --build --preset default)
# Installs dpdk-dev and librte-dma-ioat23 from Debian when missing. Exits 0 when the test says
# "Test OK": the 11 API cases on the skeleton device, then copy, burst capacity and fill on the
# ioat (error handling is skipped by DPDK for CBVER 3.3, as on SKX hardware).
set -euo pipefail
cd "$(dirname "$0")/.."
vfiobox=${VB_VFIOBOX:-build/default/vfiobox}
[[ -x $vfiobox ]] || { echo "dpdk-dmadev: no $vfiobox (build vfiobox first)" >&2; exit 1; }
if ! command -v dpdk-test >/dev/null || ! dpkg-query -W -f='${Status}' librte-dma-ioat23 2>/dev/null | grep -q "ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends dpdk-dev librte-dma-ioat23 >/dev/null
fi
log=${VB_DPDK_LOG:-build/dpdk-dmadev.log}
mkdir -p "$(dirname "$log")"
t0=$SECONDS
set +e
echo dmadev_autotest | timeout --kill-after=10 600 "$vfiobox" run -- dpdk-test --no-huge -m 256 --iova-mode=va -l 0 \
  -a 0000:09:00.0 --file-prefix=vfiobox-dmadev --no-telemetry > "$log" 2>&1
rc=$?
set -e
# The copy test redraws its progress line with \r: keep only the verdict lines.
tr '\r' '\n' < "$log" | grep -E '^(###|DMA Dev|Total|Passed|Failed|Test OK|Test Failed)' || true
echo "dpdk-dmadev: exit $rc after $((SECONDS - t0)) s (log: $log)"
((rc == 0)) && grep -q '^Test OK' <(tr '\r' '\n' < "$log")
