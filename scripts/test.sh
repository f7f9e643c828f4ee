#!/usr/bin/env bash
# Runs the whole test suite on the default (GCC) build. Usage: scripts/test.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
bash scripts/setup.sh "$preset"
ctest --preset "$preset" -j"$(nproc)"
