// iommu::DmarDomainTranslationStruct: the text of intel-iommu's debugfs file
// /sys/kernel/debug/iommu/intel/domain_translation_struct, as Linux 6.1 prints it, read from
// vfiobox's own page tables (issue 14 item 7; docs/design/0010-iommu-driver-quirks.md).
//
// 6.1's layout: for every PCI device in bus order whose IOMMU is a dmar-kind unit, the current
// domain of its group, named after the group's first member ("Device <name> @0x<pgd>"; a group of
// two devices is therefore printed twice, as 6.1 does), a header line, one line per leaf:
// "0x<iova pfn, 13 digits> |" and five tab-separated 16-digit entries PML5E, PML4E, PDPE, PDE,
// PTE (the entry at each level on the walk, 0 below a superpage and above the table's top), and
// an empty line. Entries are VT-d second-level entries: a table entry is the 4 KiB frame holding
// the next table (ours are 64-byte aligned; VT-d's low 12 bits are flags) | read | write; a leaf is its address | read (6.1's present bit: always) | write if mapped
// writable | bit 7 for a 2 MiB / 1 GiB superpage | bit 11 (snoop) when the domain enforces
// cache coherency. "Addresses" are this process's host addresses (ARCHITECTURE, DMA memory
// model); the pgd shown is the frame of the top table. A unit of 39 address bits walks 3 levels (PML4E printed 0), 48 bits 4.
//
// (6.8 and later print one such file per device, /sys/kernel/debug/iommu/intel/<bdf>/, and omit
// the zero PDE/PTE columns below a superpage. vfiobox serves those per-device files too, with this
// text for the one device, because the kernel's VFIO selftests read them: a difference from 6.1
// that only root can see, in debugfs, never through VFIO.)
//
// Stateless. Takes each group's lock, then each page table's writer lock, while it prints that
// domain.
#pragma once

#include <string>
#include <vector>

#include "base/ref_counted.h"
#include "hw/pci_device.h"

namespace iommu {

class IommuCore;

// `devices`: the PCI functions in the order the PCI bus lists them.
std::string DmarDomainTranslationStruct(IommuCore& core, const std::vector<vb::RefPtr<hw::PciDevice>>& devices);

}  // namespace iommu
