// The global lock order of vfiobox, written down once. Every Mutex is constructed with a LockRank;
// a thread may only acquire a lock whose rank is strictly greater than every rank it already
// holds (outer → inner = small → large). Debug builds (VB_LOCK_ORDER_CHECK) abort on a violation
// and print both ranks; release builds compile the check away.
//
// The order follows the seed's design 2 (docs/design/0001-attach-derives-ops-under-iommu-group-lock.md):
// the type1 backend reaches a group member only through iommu::Group::ForFirstDevice(), which holds
// the IOMMU group lock, so the IOMMU group lock nests *inside* the backend lock.
#pragma once

#include <cstdint>

namespace vb {

enum class LockRank : uint16_t {
  kPreloadRegenerate = 5,   // preload: serializes sysfs regeneration; outermost, held across
                            // Backend::Describe()
  kVfioGroupRegistry = 10,  // vfio: global list of vfio groups (find-or-create, final unlink)
  kVfioGroup = 20,          // vfio: one group's container pointer, open file, container users
  kVfioDeviceSet = 25,      // vfio: open counts and reset of a device set
  kVfioPciDevSet = 27,      // vfio-pci: a device set's members' open state, virtual config, IRQ setup
  kVfioContainer = 30,      // vfio: a container's group list and its backend pointer
  kVfioDeviceList = 40,     // vfio: one group's list of registered vfio devices
  kPinnedPages = 45,        // type1: the process's type1 instances, for keeping DMA-mapped pages
                            // alive across munmap/mremap/madvise (taken before any backend lock)
  kBackend = 50,            // type1: dma extents, domains, iova list, counters
  kBackendDeviceList = 55,  // type1: devices that want dma-unmap notification
  kIommuRegistry = 60,      // iommu: group id allocator and device → group assignment
  kHwBus = 65,              // hw: the PCI/platform device lists of a Machine (hot-plug)
  kIommuGroup = 70,         // iommu: one group's members, current domain, DMA owner
  kDomain = 80,             // iommu: one paging domain's page-table writers
  kDeviceDriver = 85,       // hw: the driver bound to one device
  kDeviceState = 90,        // hw: one device's registers, config space and interrupt state
  kIrq = 95,                // vfio-pci: interrupt masking state
  kFaultLog = 100,          // iommu: the fault log ring
  kExecutor = 110,          // hw: a machine executor's work queue
  kEpochRegistry = 120,     // base: epoch reader slot registration
  kFdTable = 150,           // uapi: the process's fd → FileObject table (never held across a call
                            // into a FileObject or a release; taken inside VFIO locks by Install)
  kLeaf = 200,              // anything that never takes another lock while held
};

const char* LockRankName(LockRank rank);

}  // namespace vb
