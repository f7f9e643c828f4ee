#include "vfio/type1/iova_list.h"

#include <algorithm>

#include "base/fail_point.h"
#include "vfio/type1/dma_tree.h"

namespace vfio::type1 {

bool IovaList::AcceptsRange(uint64_t first, uint64_t last) const {
  if (ranges_.empty()) return true;
  // The last range starting at or below `first` is the only one that can hold it.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), first,
                             [](uint64_t a, const vb::Interval& r) { return a < r.first; });
  if (it == ranges_.begin()) return false;
  --it;
  return it->Contains(vb::Interval{first, last});
}

std::vector<vb::Interval> IovaList::Subtract(std::vector<vb::Interval> ranges,
                                             std::span<const ReservedRegion> reserved) {
  for (const ReservedRegion& r : reserved) {
    if (r.kind == ReservedKind::kDirectRelaxable) continue;
    std::vector<vb::Interval> out;
    out.reserve(ranges.size() + 1);
    for (const vb::Interval& n : ranges) {
      if (!n.Overlaps(r.range)) {
        out.push_back(n);
        continue;
      }
      if (r.range.first > n.first) out.push_back({n.first, r.range.first - 1});
      if (r.range.last < n.last) out.push_back({r.range.last + 1, n.last});
    }
    ranges = std::move(out);
  }
  return ranges;
}

vb::Interval IovaList::ApertureIntersection(std::span<const vb::Interval> apertures) {
  vb::Interval out{0, UINT64_MAX};
  for (const vb::Interval& a : apertures) {
    out.first = std::max(out.first, a.first);
    out.last = std::min(out.last, a.last);
  }
  if (out.first > out.last) out.last = out.first;
  return out;
}

vb::Result<IovaList> IovaList::PlanAttach(vb::Interval aperture,
                                          std::span<const ReservedRegion> reserved,
                                          const DmaTree& dmas) const {
  if (!ranges_.empty()) {
    uint64_t lo = ranges_.front().first, hi = ranges_.back().last;
    if (aperture.first > hi || aperture.last < lo)
      return vb::Err(EINVAL, "type1.attach: aperture disjoint from the iova list");
    if (aperture.first > lo && dmas.Overlaps(lo, aperture.first - 1))
      return vb::Err(EINVAL, "type1.attach: a mapping lies below the new aperture");
    if (aperture.last < hi && dmas.Overlaps(aperture.last + 1, hi))
      return vb::Err(EINVAL, "type1.attach: a mapping lies above the new aperture");
  }
  for (const ReservedRegion& r : reserved) {
    if (r.kind == ReservedKind::kDirectRelaxable) continue;
    if (dmas.Overlaps(r.range.first, r.range.last))
      return vb::Err(EINVAL, "type1.attach: a reserved region overlaps a mapping");
  }
  if (VB_FAIL_POINT("type1.iova_list_alloc")) return vb::Err(ENOMEM, "type1.iova_list: alloc");
  std::vector<vb::Interval> clipped;
  if (ranges_.empty()) {
    clipped.push_back(aperture);
  } else {
    for (const vb::Interval& n : ranges_) {
      if (!n.Overlaps(aperture)) continue;
      clipped.push_back({std::max(n.first, aperture.first), std::min(n.last, aperture.last)});
    }
  }
  std::vector<vb::Interval> out = Subtract(std::move(clipped), reserved);
  if (out.empty()) return vb::Err(EINVAL, "type1.attach: no usable iova range left");
  return IovaList(std::move(out));
}

vb::Result<IovaList> IovaList::PlanDetach(const vb::Interval* new_bounds,
                                          std::span<const ReservedRegion> remaining_reserved) const {
  if (ranges_.empty()) return IovaList(*this);
  // Its own name: detach absorbs this failure (keeps the old list), so injection tests must not
  // expect it to surface as the call's errno.
  if (VB_FAIL_POINT("type1.iova_list_rebuild")) return vb::Err(ENOMEM, "type1.iova_list: alloc");
  vb::Interval bounds{ranges_.front().first, ranges_.back().last};
  if (new_bounds) bounds = *new_bounds;
  std::vector<vb::Interval> out = Subtract({bounds}, remaining_reserved);
  if (out.empty()) return IovaList(*this);
  return IovaList(std::move(out));
}

}  // namespace vfio::type1
