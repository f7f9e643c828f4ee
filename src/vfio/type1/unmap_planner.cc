#include "vfio/type1/unmap_planner.h"

#include "base/checked.h"
#include "vfio/type1/dirty_bitmap.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/user_memory.h"

namespace vfio::type1 {

vb::Result<UnmapPlan> PlanUnmap(const UnmapRequest& req, DmaTree& tree, const UnmapContext& ctx) {
  if (req.flags & ~kUnmapFlagsKnown) return vb::Err(EINVAL, "type1.unmap: unknown flags");
  bool get_dirty = req.flags & kUnmapFlagGetDirtyBitmap;
  bool all = req.flags & kUnmapFlagAll;
  bool vaddr = req.flags & kUnmapFlagVaddr;
  if (get_dirty && (all || vaddr))
    return vb::Err(EINVAL, "type1.unmap: GET_DIRTY_BITMAP with ALL or VADDR");
  if (get_dirty) {
    if (!UserMemory::AccessOk(req.bitmap_data, req.bitmap_size))
      return vb::Err(EINVAL, "type1.unmap: bitmap not a user range");
    if (req.bitmap_pgsize == 0) return vb::Err(EINVAL, "type1.unmap: bitmap pgsize 0");
    TRY(VerifyBitmapSize(req.size >> __builtin_ctzll(req.bitmap_pgsize), req.bitmap_size));
  }
  if (vaddr && ctx.has_emulated_groups)
    return vb::Err(EBUSY, "type1.unmap: VADDR with emulated groups attached");
  if (!vb::IsAligned(req.iova, ctx.min_pgsize))
    return vb::Err(EINVAL, "type1.unmap: iova not aligned to the minimum page size");
  uint64_t first = req.iova, last = UINT64_MAX;
  if (all) {
    if (req.iova || req.size) return vb::Err(EINVAL, "type1.unmap: ALL with iova or size");
  } else {
    if (req.size == 0 || !vb::IsAligned(req.size, ctx.min_pgsize))
      return vb::Err(EINVAL, "type1.unmap: size 0 or not aligned");
    last = TRY(vb::RangeLast(req.iova, req.size));
  }
  if (get_dirty && (!ctx.dirty_tracking || req.bitmap_pgsize != ctx.min_pgsize))
    return vb::Err(EINVAL, "type1.unmap: dirty tracking off or bitmap pgsize not the minimum");
  if (ctx.v2 && !all && tree.Bisects(first, last))
    return vb::Err(EINVAL, "type1.unmap: range bisects a mapping");

  UnmapPlan plan;
  plan.kind = vaddr ? UnmapPlan::Kind::kInvalidateVaddr : UnmapPlan::Kind::kRemove;
  plan.get_dirty_bitmap = get_dirty;
  plan.base_iova = first;
  auto range = tree.Overlapping(first, last);
  plan.begin = range.begin();
  plan.end = range.end();
  // v1 stops at a first record that starts below the request: nothing is unmapped.
  if (!ctx.v2 && plan.begin != plan.end && plan.begin->second.iova < first) plan.end = plan.begin;
  for (auto it = plan.begin; it != plan.end; ++it) {
    if (vaddr && it->second.vaddr_invalid)
      return vb::Err(EINVAL, "type1.unmap: vaddr already invalidated");
    plan.unmapped_bytes += it->second.size;
    ++plan.count;
  }
  return plan;
}

}  // namespace vfio::type1
