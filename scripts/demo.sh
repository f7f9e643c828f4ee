#!/usr/bin/env bash
# The main job: builds vfiobox, shows the built-in default machine (its PCI topology, like
# lspci -tv, and its IOMMU groups, like /sys/kernel/iommu_groups), then runs the unmodified
# example driver examples/edu-dma.c against it under `vfiobox run --trace`: VFIO container, group
# and device set-up, the edu's registers through an mmap of its BAR0, DMA through the IOMMU both ways with MSI completion on an eventfd, and a DMA
# after unmap that the IOMMU stops (printed in the fault log at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh default >/dev/null
echo "== vfiobox topology (built-in default machine)"
build/default/vfiobox topology
echo
echo "== vfiobox groups"
build/default/vfiobox groups
echo
echo "== vfiobox run --trace -- edu-dma"
build/default/vfiobox run --trace -- build/default/edu-dma
