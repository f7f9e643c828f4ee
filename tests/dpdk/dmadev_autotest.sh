#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ctest entry dpdk.dmadev_autotest: DPDK 22.11's own `dpdk-test dmadev_autotest` (Debian's dpdk-dev,
# with the librte-dma-ioat23 PMD) under `vfiobox run` against the default machine's I/OAT function
# 0000:09:00.0, driven by the PMD through the mapped, trapped BAR0 (design 0012). No hugepages:
# --no-huge -m 256, IOVA as VA, no shared runtime files (--no-shconf).
#
#   tests/dpdk/dmadev_autotest.sh VFIOBOX     run it and check the log
#   tests/dpdk/dmadev_autotest.sh --check LOG check a saved log only (the checker's own tests)
#
# Passing needs all of (the exit status of dpdk-test alone is not trusted):
#   - dpdk-test exits 0 (DPDK_TEST= makes it the test's result) and prints "Test OK";
#   - the API suite on the skeleton: 11 cases, "Passed : 11", "Failed : 0";
#   - instance 0 is the ioat at 0000:09:00.0 and ran copy, burst capacity and fill, and skipped
#     only error handling ("device does not report errors": CBVER 3.3); instance 1 (the skeleton)
#     ran copy and burst capacity and skipped only error handling and fill;
#   - on the ioat, the copy test completed 85,120 ops and burst capacity 65,536, every
#     "Errors:" figure is 0;
#   - vfiobox printed no IOMMU fault log.
# dpdk-test missing is a failure (scripts/setup.sh default installs it), not a skip.
set -uo pipefail
bdf=0000:09:00.0

check() {
  local log=$1 fail=0
  # The copy test redraws its progress line with \r.
  local text
  text=$(tr '\r' '\n' < "$log")
  bad() { echo "dmadev_autotest: FAIL: $*"; fail=1; }
  grep -qx 'Test OK' <<<"$text" || bad 'no "Test OK"'
  grep -q 'Test Failed' <<<"$text" && bad '"Test Failed"'
  grep -q 'IOMMU fault log' <<<"$text" && bad 'IOMMU faults logged'
  [[ $(grep -cE '^test_dma_[a-z_]+ Passed$' <<<"$text") == 11 ]] || bad 'not 11 API cases passed'
  grep -qE '^Total tests +: 11$' <<<"$text" || bad 'API suite total is not 11'
  grep -qE '^Passed +: 11$' <<<"$text" || bad 'API suite: not "Passed : 11"'
  grep -qE '^Failed +: 0$' <<<"$text" || bad 'API suite: not "Failed : 0"'
  grep -qF "### Test dmadev instance 0 [$bdf]" <<<"$text" || bad "instance 0 is not the ioat $bdf"
  grep -qF '### Test dmadev instance 1 [dma_skeleton]' <<<"$text" || bad 'instance 1 is not the skeleton'
  # Every "DMA Dev N:" line, in order, must be exactly the expected ones.
  local expected got
  expected=$(printf '%s\n' \
    'DMA Dev 0: Running copy Tests' \
    'DMA Dev 0: Running burst capacity Tests' \
    'DMA Dev 0: device does not report errors, skipping error handling tests' \
    'DMA Dev 0: Running fill Tests' \
    'DMA Dev 1: Running copy Tests' \
    'DMA Dev 1: Running burst capacity Tests' \
    'DMA Dev 1: device does not report errors, skipping error handling tests' \
    'DMA Dev 1: No device fill support, skipping fill tests')
  got=$(grep -E '^DMA Dev [0-9]+:' <<<"$text" | sed 's/ *$//')
  if [[ $got != "$expected" ]]; then
    bad 'subtests run/skipped differ from CBVER 3.3 expectations:'
    diff <(echo "$expected") <(echo "$got") | sed 's/^/  /'
  fi
  # The last progress line of each ioat phase: all ops completed, no errors.
  local ops
  ops=$(awk '/^DMA Dev /{ph=$0} /^### Test dmadev instance 1/{exit}
             /^Ops submitted:/{last[ph]=$0} END{for (p in last) print p " => " last[p]}' <<<"$text")
  grep -qE 'Running copy Tests *=> Ops submitted: 85120\s+Ops completed: 85120\s+Errors: 0$' <<<"$ops" ||
    bad "ioat copy: not 85120 ops completed without errors ($(grep copy <<<"$ops"))"
  grep -qE 'Running burst capacity Tests *=> Ops submitted: 65536\s+Ops completed: 65536\s+Errors: 0$' <<<"$ops" ||
    bad "ioat burst capacity: not 65536 ops completed without errors ($(grep burst <<<"$ops"))"
  grep -E '^Ops submitted:' <<<"$text" | grep -vqE 'Errors: 0$' && bad 'a progress line reports errors'
  return $fail
}

if [[ ${1:-} == --check ]]; then
  check "$2"
  exit
fi

vfiobox=${1:?usage: dmadev_autotest.sh VFIOBOX | --check LOG}
if ! command -v dpdk-test >/dev/null; then
  echo "dmadev_autotest: FAIL: no dpdk-test (Debian's dpdk-dev; scripts/setup.sh default installs it)"
  exit 1
fi
log=$(mktemp /tmp/vfiobox-dmadev.XXXXXX.log)
prefix=vfiobox-dmadev-$$
trap 'rm -f "$log"; rm -rf "/var/run/dpdk/$prefix"' EXIT
t0=$(date +%s%N)
DPDK_TEST=dmadev_autotest timeout --kill-after=10 300 "$vfiobox" run -- dpdk-test --no-huge -m 256 \
  --iova-mode=va -l 0 -a "$bdf" --file-prefix="$prefix" --no-shconf --no-telemetry </dev/null >"$log" 2>&1
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# The verdict lines, for the ctest log.
tr '\r' '\n' < "$log" | grep -E '^(###|DMA Dev|Total|Passed|Failed|Test OK|Test Failed|EAL: (Error|Cannot)|IOAT)' |
  grep -v '^IOAT.status'
echo "dmadev_autotest: dpdk-test exit $rc after $ms ms"
fail=0
((rc == 0)) || { echo "dmadev_autotest: FAIL: dpdk-test exit status $rc"; fail=1; }
check "$log" || fail=1
if ((fail)); then
  echo "---- full log (progress lines dropped) ----"
  tr '\r' '\n' < "$log" | grep -v '^Ops submitted' | tail -150
  exit 1
fi
echo "dmadev_autotest: PASS"
