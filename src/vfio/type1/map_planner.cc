#include "vfio/type1/map_planner.h"

#include "base/checked.h"
#include "vfio/type1/flags.h"

namespace vfio::type1 {

vb::Result<MapPlan> PlanMap(const MapRequest& req, DmaTree& tree, const IovaList& iovas,
                            uint64_t min_pgsize) {
  if (req.flags & ~kMapFlagsKnown) return vb::Err(EINVAL, "type1.map: unknown flags");
  uint32_t prot = 0;
  if (req.flags & kMapFlagRead) prot |= kProtRead;
  if (req.flags & kMapFlagWrite) prot |= kProtWrite;
  bool set_vaddr = req.flags & kMapFlagVaddr;
  if ((prot != 0) == set_vaddr)
    return vb::Err(EINVAL, "type1.map: need exactly one of READ/WRITE and VADDR");
  if (req.size == 0) return vb::Err(EINVAL, "type1.map: size 0");
  if (!vb::IsAligned(req.size | req.iova | req.vaddr, min_pgsize))
    return vb::Err(EINVAL, "type1.map: not aligned to the minimum page size");
  uint64_t last = TRY(vb::RangeLast(req.iova, req.size));
  TRY(vb::RangeLast(req.vaddr, req.size));

  MapPlan plan{.iova = req.iova, .size = req.size, .last = last, .vaddr = req.vaddr, .prot = prot};
  Dma* dma = tree.FindFirstOverlapping(req.iova, last);
  if (set_vaddr) {
    if (!dma) return vb::Err(ENOENT, "type1.map: VADDR on an unmapped range");
    if (!dma->vaddr_invalid || dma->iova != req.iova || dma->size != req.size)
      return vb::Err(EINVAL, "type1.map: VADDR does not match an invalidated mapping");
    plan.kind = MapPlan::Kind::kUpdateVaddr;
    plan.target = dma;
    return plan;
  }
  if (dma) return vb::Err(EEXIST, "type1.map: overlaps a mapping");
  if (tree.Available() == 0) return vb::Err(ENOSPC, "type1.map: dma entry limit reached");
  if (!iovas.AcceptsRange(req.iova, last))
    return vb::Err(EINVAL, "type1.map: outside the valid iova ranges");
  return plan;
}

void CommitVaddrUpdate(const MapPlan& plan) {
  plan.target->vaddr = plan.vaddr;
  plan.target->vaddr_invalid = false;
}

}  // namespace vfio::type1
