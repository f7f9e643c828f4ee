// PlanMap: the decision half of VFIO_IOMMU_MAP_DMA (reference §5.1) — every check that needs no
// IOMMU domain, in the kernel's order, with 6.1's errno for each row. It reads the tree and the
// IOVA list and modifies nothing: the caller (the type1 backend, under its backend lock) then
// prepares what can fail (DmaTree::Prepare, LockedMemory::Charge, UserMemory::CheckRange, pin and
// map into the domains, DirtyBitmap::Create while tracking) and commits what cannot.
//
// Rows decided elsewhere: argsz (row 1's size half) and field truncation (row 2, 32-bit hosts
// only) at the UAPI layer; rows 10–12 (allocation, pin/EFAULT/ENOMEM accounting, dirty bitmap)
// by the caller; the account transfer of row 6c by the caller (same process: nothing moves).
#pragma once

#include <cstdint>

#include "base/result.h"
#include "vfio/type1/dma_tree.h"
#include "vfio/type1/iova_list.h"

namespace vfio::type1 {

struct MapRequest {
  uint32_t flags = 0;  // kMapFlag*
  uint64_t vaddr = 0;
  uint64_t iova = 0;
  uint64_t size = 0;
};

struct MapPlan {
  enum class Kind : uint8_t {
    kNewMapping,   // create a Dma {iova, size, vaddr, prot}
    kUpdateVaddr,  // row 6c: give `target` the new vaddr and clear its vaddr_invalid
  };
  Kind kind = Kind::kNewMapping;
  uint64_t iova = 0;
  uint64_t size = 0;
  uint64_t last = 0;   // iova + size - 1
  uint64_t vaddr = 0;
  uint32_t prot = 0;   // kProtRead | kProtWrite (0 for kUpdateVaddr)
  Dma* target = nullptr;  // kUpdateVaddr only
};

// `min_pgsize`: the lowest set bit of the container's pgsize_bitmap (§4.5), a power of two.
// Errors, in order (§5.1 rows):
//   EINVAL  1: flags outside READ|WRITE|VADDR
//   EINVAL  3: READ/WRITE together with VADDR, or none of them
//   EINVAL  4: size 0, or size / iova / vaddr not aligned to min_pgsize
//   EINVAL  5: iova + size - 1 or vaddr + size - 1 wraps (ending exactly at 2^64 - 1 is fine)
//   ENOENT  6: VADDR and no mapping overlaps [iova, iova + size)
//   EINVAL 6b: VADDR and the overlapping mapping is not vaddr-invalid or differs in iova/size
//   EEXIST  7: no VADDR and any byte overlaps a mapping
//   ENOSPC  8: no entry available (DmaTree::Available() == 0)
//   EINVAL  9: [iova, last] not inside one range of the IOVA list (an empty list accepts all)
// The tree is taken non-const only so a plan can name a mutable target; it is not modified.
vb::Result<MapPlan> PlanMap(const MapRequest& req, DmaTree& tree, const IovaList& iovas,
                            uint64_t min_pgsize);

// Row 6c's commit for one process: records the new vaddr and makes the mapping valid again. The
// caller decrements its vaddr_invalid count (and moves the charge first if the account differs).
void CommitVaddrUpdate(const MapPlan& plan);

}  // namespace vfio::type1
