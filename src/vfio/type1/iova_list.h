// IovaList: the container's valid IOVA ranges (reference §4.3) — sorted, disjoint, inclusive
// [first, last] intervals: the intersection of every domain's aperture minus every non-relaxable
// reserved region of every attached IOMMU-backed group. An empty list means "no IOMMU domain":
// every IOVA is accepted. Owned by the type1 backend object and guarded by its backend lock; the
// object itself has no lock. Plans are computed on a copy and committed by assignment, so a failed
// attach or detach leaves the list as it was.
//
// Inputs are plain intervals: the IOMMU core's region types are mapped to ReservedKind by the
// caller, so this file does not depend on iommu/.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/checked.h"
#include "base/result.h"

namespace vfio::type1 {

class DmaTree;

enum class ReservedKind : uint8_t {
  kDirect,           // identity-mapped, must be kept (RMRR)
  kDirectRelaxable,  // RMRR that may be dropped while assigned: NOT excluded by type1
  kReserved,         // unusable
  kMsi,              // hardware MSI window
  kSwMsi,            // software-managed MSI window
};

struct ReservedRegion {
  vb::Interval range;  // inclusive
  ReservedKind kind = ReservedKind::kReserved;
};

class IovaList {
 public:
  IovaList() = default;  // empty: no IOMMU domain yet
  explicit IovaList(std::vector<vb::Interval> ranges) : ranges_(std::move(ranges)) {}

  bool empty() const { return ranges_.empty(); }
  // The ranges in ascending order: exactly the VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE entries
  // ({start, end} = {first, last}); GET_INFO omits the capability when the list is empty.
  std::span<const vb::Interval> ranges() const { return ranges_; }

  // MAP_DMA row 9 of §5.1: [first, last] lies inside one range, or the list is empty.
  bool AcceptsRange(uint64_t first, uint64_t last) const;

  // Attach of an IOMMU-backed group (§4.2 steps 7–9) against the current mappings. Returns the
  // candidate list to commit on success. Errors, in order:
  //   EINVAL — the list is non-empty and the aperture is disjoint from its outer bounds, or a
  //            mapping lies inside the current bounds but outside the new aperture (mappings made
  //            while the list was empty are not checked here — as in 6.1);
  //   EINVAL — a reserved region other than kDirectRelaxable overlaps an existing mapping;
  //   EINVAL — nothing is left after clipping to the aperture and subtracting the regions;
  //   ENOMEM — allocation (fail point "type1.iova_list_alloc").
  vb::Result<IovaList> PlanAttach(vb::Interval aperture, std::span<const ReservedRegion> reserved,
                                  const DmaTree& dmas) const;

  // Detach (§4.6 steps 3–4). `new_bounds`: when the detached group's domain went away, the
  // intersection of the remaining domains' apertures (ApertureIntersection); otherwise pass
  // nullptr to keep the current outer bounds. `remaining_reserved`: the reserved regions of every
  // group still attached. Returns the rebuilt list, or the current list unchanged when it is empty
  // or the rebuild would leave nothing (the kernel keeps the old list then). Never fails except
  // ENOMEM (fail point "type1.iova_list_rebuild"), which also means "keep the old list".
  vb::Result<IovaList> PlanDetach(const vb::Interval* new_bounds,
                                  std::span<const ReservedRegion> remaining_reserved) const;

  // Intersection of apertures; the whole 64-bit space when there are none. (An empty intersection
  // cannot arise once attach has refused disjoint apertures; it would yield the single address
  // max(first).)
  static vb::Interval ApertureIntersection(std::span<const vb::Interval> apertures);

  // ranges minus every non-relaxable region (interval subtraction, splitting as needed).
  static std::vector<vb::Interval> Subtract(std::vector<vb::Interval> ranges,
                                            std::span<const ReservedRegion> reserved);

  friend bool operator==(const IovaList&, const IovaList&) = default;

 private:
  std::vector<vb::Interval> ranges_;
};

}  // namespace vfio::type1
