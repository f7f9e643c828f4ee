#include "iommu/iommu.h"

#include "base/fail_point.h"
#include "iommu/domain.h"

namespace iommu {

const char* ReservedRegionTypeName(ReservedRegionType t) {
  switch (t) {
    case ReservedRegionType::kMsi: return "msi";
    case ReservedRegionType::kDirect: return "direct";
    case ReservedRegionType::kReserved: return "reserved";
    case ReservedRegionType::kSwMsi: return "msi";  // sysfs prints both MSI kinds as "msi"
    case ReservedRegionType::kDirectRelaxable: return "direct-relaxable";
  }
  return "?";
}

const char* IommuKindName(IommuKind k) {
  switch (k) {
    case IommuKind::kDmar: return "dmar";
    case IommuKind::kSmmu: return "smmu";
  }
  return "?";
}

IommuCaps IommuCaps::X86() {
  IommuCaps caps;
  caps.kind = IommuKind::kDmar;
  caps.reserved.push_back(kX86MsiWindow);
  return caps;
}

Iommu::Iommu(std::string name, IommuCaps caps, unsigned address_bits)
    : name_(std::move(name)), caps_(std::move(caps)), address_bits_(address_bits) {}

Iommu::~Iommu() = default;

vb::Result<std::unique_ptr<Iommu>> Iommu::Create(std::string name, IommuCaps caps) {
  constexpr uint64_t kSupported = kPage4K | kPage2M | kPage1G;
  if (!(caps.pgsize_bitmap & kPage4K) || (caps.pgsize_bitmap & ~kSupported))
    return vb::Err(EINVAL, "iommu: page sizes must be 4K plus optionally 2M/1G");
  if (caps.aperture_first > caps.aperture_last) return vb::Err(EINVAL, "iommu: empty aperture");
  if (caps.aperture_last >= (1ull << 48)) return vb::Err(EINVAL, "iommu: aperture beyond 48 bits");
  for (const ReservedRegion& r : caps.reserved)
    if (r.first > r.last) return vb::Err(EINVAL, "iommu: reserved region first > last");
  // The page table must reach aperture_last; it never needs fewer than 12 bits (one page).
  unsigned bits = 12;
  while (bits < 48 && (caps.aperture_last >> bits) != 0) ++bits;
  return std::unique_ptr<Iommu>(new Iommu(std::move(name), std::move(caps), bits));
}

vb::Result<std::unique_ptr<Domain>> Iommu::AllocDomain(DomainType type) {
  if (VB_FAIL_POINT("iommu.alloc_domain")) return vb::Err(ENOMEM, "iommu: domain allocation failed");
  return std::unique_ptr<Domain>(new Domain(*this, type));
}

}  // namespace iommu
