// PlanUnmap: the decision half of VFIO_IOMMU_UNMAP_DMA (reference §5.3) for v1 and v2 containers —
// which mappings the call removes (or, with VADDR, invalidates), what `size` reports, or the errno
// — computed without modifying the tree. Because the records a single UNMAP touches are always
// consecutive in iova order, the plan is an iterator range of the DmaTree, valid until the tree is
// next modified. The caller (type1 backend, under its backend lock) commits: per record, write the
// dirty bits (GET_DIRTY_BITMAP; an EFAULT stops the walk there, earlier records stay removed, as in
// 6.1), notify emulated pinners, unmap from the domains, Epoch::Synchronize, unpin, uncharge,
// erase; or for VADDR mark each record invalid. VADDR's "already invalid" EINVAL is found here up
// front, so no undo is ever needed.
//
// Rows decided elsewhere: argsz (rows 1 and 3) and copying the vfio_bitmap in (row 3's EFAULT) at
// the UAPI layer; the emulated-pin notify/retry (§4.8) and the bitmap write EFAULT by the caller.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "vfio/type1/dma_tree.h"

namespace vfio::type1 {

struct UnmapRequest {
  uint32_t flags = 0;  // kUnmapFlag*
  uint64_t iova = 0;
  uint64_t size = 0;
  // struct vfio_bitmap, meaningful with kUnmapFlagGetDirtyBitmap only.
  uint64_t bitmap_pgsize = 0;
  uint64_t bitmap_size = 0;  // bytes
  uint64_t bitmap_data = 0;  // user address of the u64 words
};

struct UnmapContext {
  bool v2 = true;                    // VFIO_TYPE1v2_IOMMU (false: VFIO_TYPE1_IOMMU)
  uint64_t min_pgsize = 4096;        // lowest set bit of pgsize_bitmap
  bool has_emulated_groups = false;  // any emulated (mdev-like) group attached
  bool dirty_tracking = false;       // DIRTY_PAGES START in effect
};

struct UnmapPlan {
  enum class Kind : uint8_t { kRemove, kInvalidateVaddr };
  Kind kind = Kind::kRemove;
  bool get_dirty_bitmap = false;
  // The records, in walk order; empty when nothing is unmapped (success, size 0).
  DmaTree::iterator begin;
  DmaTree::iterator end;
  size_t count = 0;
  uint64_t unmapped_bytes = 0;  // written back to `size` on success: whole records, summed
  uint64_t base_iova = 0;       // bit 0 of the user's dirty bitmap is the page at base_iova

  // For GET_DIRTY_BITMAP: the bit of the user's bitmap where `dma`'s first page goes.
  uint64_t BitOffsetOf(const Dma& dma, uint64_t pgsize) const {
    return (dma.iova - base_iova) / pgsize;
  }
};

// Errors, in order (§5.3 rows):
//   EINVAL 1: flags outside GET_DIRTY_BITMAP|ALL|VADDR
//   EINVAL 2: GET_DIRTY_BITMAP with ALL or VADDR
//   EINVAL 3: GET_DIRTY_BITMAP and the bitmap is not a user range (access_ok) or fails
//             VerifyBitmapSize(size / bitmap_pgsize, bitmap_size) (bitmap_pgsize 0 included)
//   EBUSY  4: VADDR while emulated groups are attached
//   EINVAL 5: iova not aligned to min_pgsize
//   EINVAL 6: ALL with iova or size non-zero; otherwise size 0, size misaligned, or
//             iova + size - 1 wraps
//   EINVAL 7: GET_DIRTY_BITMAP without tracking, or bitmap_pgsize != min_pgsize
//   EINVAL 8: v2, not ALL: the range bisects a mapping at either end
//   EINVAL 9: VADDR and a record of the walk is already vaddr-invalid
// Walk: ALL covers every record. v2: every record in [iova, iova + size) (each lies wholly
// inside, by row 8). v1: if the first record reaching past iova starts below iova, nothing
// (success, size 0); else every record whose first byte is in range, removed entirely even when
// it extends past the end (the reported size may exceed the request).
vb::Result<UnmapPlan> PlanUnmap(const UnmapRequest& req, DmaTree& tree, const UnmapContext& ctx);

}  // namespace vfio::type1
