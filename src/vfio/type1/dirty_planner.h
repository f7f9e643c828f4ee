// PlanDirtyPages: the decision half of VFIO_IOMMU_DIRTY_PAGES (reference §5.6) — START, STOP and
// GET_BITMAP argument checks with 6.1's errno for each, computed without modifying the tree. For
// GET_BITMAP the plan is the iterator range of the records to report (each wholly inside the
// request); the caller then calls DirtyBitmap::ReportToUser (+ ClearReported) per record under
// the backend lock. AllocateDirtyBitmaps is START's prepare step (all or nothing).
//
// Rows decided elsewhere: argsz (< 8, or GET_BITMAP payload not fitting) and copying the payload
// in, at the UAPI layer.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "vfio/type1/dma_tree.h"

namespace vfio::type1 {

struct DirtyRequest {
  uint32_t flags = 0;  // kDirtyFlag*
  // struct vfio_iommu_type1_dirty_bitmap_get, meaningful with kDirtyFlagGetBitmap only.
  uint64_t iova = 0;
  uint64_t size = 0;
  uint64_t bitmap_pgsize = 0;
  uint64_t bitmap_size = 0;  // bytes
  uint64_t bitmap_data = 0;  // user address of the u64 words
};

struct DirtyContext {
  bool v2 = true;
  uint64_t min_pgsize = 4096;
  bool tracking = false;  // START in effect
};

struct DirtyPlan {
  enum class Op : uint8_t { kStart, kStop, kGetBitmap };
  Op op = Op::kStart;
  bool noop = false;  // START while started / STOP while stopped: success, nothing to do
  // kGetBitmap: the records to report, in order; bit 0 of the user bitmap is base_iova's page.
  DmaTree::iterator begin;
  DmaTree::iterator end;
  uint64_t base_iova = 0;
  uint64_t pgsize = 0;

  uint64_t BitOffsetOf(const Dma& dma) const { return (dma.iova - base_iova) / pgsize; }
};

// Errors, in order:
//   EACCES: v1 container (before anything else, any flags)
//   EINVAL: flags outside START|STOP|GET_BITMAP, or not exactly one of them (0 included)
//   GET_BITMAP:
//     EINVAL: iova + size wraps past 2^64 (6.1: a range ending exactly at 2^64 - 1 is refused)
//     EINVAL: bitmap not a user range (access_ok)
//     EINVAL: VerifyBitmapSize(size / bitmap_pgsize, bitmap_size) fails (pgsize 0 included)
//     EINVAL: bitmap_pgsize != min_pgsize
//     EINVAL: iova not aligned; size 0 or not aligned
//     EINVAL: tracking not started
//     EINVAL: the range bisects a mapping
vb::Result<DirtyPlan> PlanDirtyPages(const DirtyRequest& req, DmaTree& tree,
                                     const DirtyContext& ctx);

// START's prepare: one bitmap per record, in tree order, at `pgsize`. Errors: EINVAL (a mapping
// of more than INT_MAX pages), ENOMEM (allocation) — then none is kept. Commit by moving
// bitmaps[i] into the i-th record's Dma::dirty (the caller pre-sets emulated-pinned pages).
vb::Result<std::vector<std::unique_ptr<DirtyBitmap>>> AllocateDirtyBitmaps(const DmaTree& tree,
                                                                          uint64_t pgsize);

}  // namespace vfio::type1
