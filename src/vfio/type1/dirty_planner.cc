#include "vfio/type1/dirty_planner.h"

#include "base/checked.h"
#include "base/fail_point.h"
#include "vfio/type1/dirty_bitmap.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/user_memory.h"

namespace vfio::type1 {

vb::Result<DirtyPlan> PlanDirtyPages(const DirtyRequest& req, DmaTree& tree,
                                     const DirtyContext& ctx) {
  if (!ctx.v2) return vb::Err(EACCES, "type1.dirty: v1 container");
  if (req.flags & ~kDirtyFlagsKnown) return vb::Err(EINVAL, "type1.dirty: unknown flags");
  if (req.flags == 0 || (req.flags & (req.flags - 1)) != 0)
    return vb::Err(EINVAL, "type1.dirty: need exactly one of START/STOP/GET_BITMAP");
  DirtyPlan plan;
  if (req.flags == kDirtyFlagStart) {
    plan.op = DirtyPlan::Op::kStart;
    plan.noop = ctx.tracking;
    plan.pgsize = ctx.min_pgsize;
    return plan;
  }
  if (req.flags == kDirtyFlagStop) {
    plan.op = DirtyPlan::Op::kStop;
    plan.noop = !ctx.tracking;
    return plan;
  }
  plan.op = DirtyPlan::Op::kGetBitmap;
  uint64_t end;
  if (__builtin_add_overflow(req.iova, req.size, &end))
    return vb::Err(EINVAL, "type1.dirty: range overflow");
  if (!UserMemory::AccessOk(req.bitmap_data, req.bitmap_size))
    return vb::Err(EINVAL, "type1.dirty: bitmap not a user range");
  if (req.bitmap_pgsize == 0) return vb::Err(EINVAL, "type1.dirty: bitmap pgsize 0");
  TRY(VerifyBitmapSize(req.size >> __builtin_ctzll(req.bitmap_pgsize), req.bitmap_size));
  if (req.bitmap_pgsize != ctx.min_pgsize)
    return vb::Err(EINVAL, "type1.dirty: bitmap pgsize not the minimum page size");
  if (!vb::IsAligned(req.iova, ctx.min_pgsize)) return vb::Err(EINVAL, "type1.dirty: iova unaligned");
  if (req.size == 0 || !vb::IsAligned(req.size, ctx.min_pgsize))
    return vb::Err(EINVAL, "type1.dirty: size 0 or unaligned");
  if (!ctx.tracking) return vb::Err(EINVAL, "type1.dirty: tracking not started");
  uint64_t last = req.iova + (req.size - 1);
  if (tree.Bisects(req.iova, last)) return vb::Err(EINVAL, "type1.dirty: range bisects a mapping");
  auto range = tree.Overlapping(req.iova, last);
  plan.begin = range.begin();
  plan.end = range.end();
  plan.base_iova = req.iova;
  plan.pgsize = ctx.min_pgsize;
  return plan;
}

vb::Result<std::vector<std::unique_ptr<DirtyBitmap>>> AllocateDirtyBitmaps(const DmaTree& tree,
                                                                          uint64_t pgsize) {
  if (VB_FAIL_POINT("type1.dirty_bitmap_vector")) return vb::Err(ENOMEM, "type1.dirty: alloc");
  std::vector<std::unique_ptr<DirtyBitmap>> out;
  out.reserve(tree.Size());
  for (const auto& [iova, dma] : tree) out.push_back(TRY(DirtyBitmap::Create(dma.size, pgsize)));
  return out;
}

}  // namespace vfio::type1
