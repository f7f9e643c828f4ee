// The PCI isolation predicates of IOMMU group formation (reference §7.2), as free functions over
// hw::PciDevice topology (Linux: pci_acs_enabled, pci_acs_path_enabled). Stateless; they read
// topology fields that are fixed while a device is plugged in, so they take no lock.
#pragma once

#include <cstdint>

#include "hw/pci_device.h"

namespace iommu {

// Does `dev` isolate with the ACS flags `flags` (kAcsIsolationFlags for grouping)? A quirk
// answers first; conventional PCI and PCIe<->PCI bridges and RC event collectors never do; root
// and downstream ports need an ACS capability whose implemented flags of `flags` (plus EC if
// asked) are all enabled; endpoints and upstream ports need that only when multifunction;
// everything else is isolated.
bool PciAcsEnabled(const hw::PciDevice& dev, uint16_t flags);

// Does every device from `start` up to and including the one on the root bus pass PciAcsEnabled?
bool PciAcsPathEnabled(const hw::PciDevice& start, uint16_t flags);

// Are a and b (on one bus) DMA aliases of each other: either lists the other's devfn as an extra
// DMA alias?
bool PciDevsAreDmaAliases(const hw::PciDevice& a, const hw::PciDevice& b);

}  // namespace iommu
