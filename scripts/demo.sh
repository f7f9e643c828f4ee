#!/usr/bin/env bash
# The main job: builds vfiobox and shows the built-in default machine: its PCI topology (like
# lspci -tv) and its IOMMU groups (like /sys/kernel/iommu_groups).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh default >/dev/null
echo "== vfiobox topology (built-in default machine)"
build/default/vfiobox topology
echo
echo "== vfiobox groups"
build/default/vfiobox groups
