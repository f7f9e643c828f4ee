#include "iommu/domain.h"

#include <cstdio>
#include <cstdlib>

#include "iommu/iommu.h"

namespace iommu {
namespace {

// iova == host address, every access allowed. Stateless, so one instance serves every identity
// domain; its generation never changes.
class IdentityTranslation final : public hw::DmaTranslation {
 public:
  hw::DmaTranslateResult Translate(uint64_t iova, uint64_t length, hw::DmaAccess) const override {
    hw::DmaTranslateResult r;
    r.ok = true;
    r.segment.host = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(iova));
    r.segment.length = length;
    return r;
  }
  uint64_t generation() const override { return 0; }
  uint64_t granule() const override { return kPage4K; }
};

const IdentityTranslation kIdentity;

}  // namespace

const char* DomainTypeName(DomainType t) {
  switch (t) {
    case DomainType::kBlocked: return "blocked";
    case DomainType::kIdentity: return "identity";
    case DomainType::kPaging: return "paging";
  }
  return "?";
}

Domain::Domain(Iommu& iommu, DomainType type) : iommu_(iommu), type_(type) {
  if (type == DomainType::kPaging)
    page_table_ = std::make_unique<IoPageTable>(iommu.caps().pgsize_bitmap, iommu.address_bits());
}

Domain::~Domain() {
  if (int n = attached_groups_.load(std::memory_order_acquire); n != 0) {
    // A device could still DMA through the page table we are about to free.
    std::fprintf(stderr, "vfiobox: iommu domain destroyed while attached to %d group(s)\n", n);
    std::abort();
  }
}

uint64_t Domain::pgsize_bitmap() const { return iommu_.caps().pgsize_bitmap; }

vb::Interval Domain::aperture() const {
  return vb::Interval{iommu_.caps().aperture_first, iommu_.caps().aperture_last};
}

bool Domain::EnforceCacheCoherency() {
  if (type_ != DomainType::kPaging || !iommu_.caps().cache_coherent ||
      !iommu_.caps().enforce_cache_coherency)
    return enforce_cache_coherency();
  enforce_cache_coherency_.store(true, std::memory_order_release);
  return true;
}

vb::Result<void> Domain::CheckRange(uint64_t iova, uint64_t size) const {
  if (type_ != DomainType::kPaging) return vb::Err(EINVAL, "domain: not a paging domain");
  uint64_t last = TRY(vb::RangeLast(iova, size));
  if (!aperture().Contains(vb::Interval{iova, last})) return vb::Err(ERANGE, "domain: outside the aperture");
  return vb::Ok();
}

uint32_t Domain::TableProt(uint32_t prot) const {
  // intel-iommu's quirk (6.1): the present bit it always sets is the read permission. A prot the
  // table refuses (0, unknown bits) stays refused.
  if (iommu_.caps().kind == IommuKind::kDmar && prot != 0 && !(prot & ~(kProtRead | kProtWrite)))
    prot |= kProtRead;
  return prot;
}

vb::Result<void> Domain::Map(uint64_t iova, uint64_t phys, uint64_t size, uint32_t prot) {
  TRY(CheckRange(iova, size));
  return page_table_->Map(iova, phys, size, TableProt(prot));
}

vb::Result<uint64_t> Domain::Unmap(uint64_t iova, uint64_t size) {
  TRY(CheckRange(iova, size));
  return page_table_->Unmap(iova, size);
}

std::optional<IovaTranslation> Domain::IovaToPhys(uint64_t iova) const {
  switch (type_) {
    case DomainType::kBlocked: return std::nullopt;
    case DomainType::kIdentity: return IovaTranslation{iova, kProtRead | kProtWrite, kPage4K};
    case DomainType::kPaging: return page_table_->IovaToPhys(iova);
  }
  return std::nullopt;
}

const hw::DmaTranslation* Domain::translation() const {
  switch (type_) {
    case DomainType::kBlocked: return nullptr;
    case DomainType::kIdentity: return &kIdentity;
    case DomainType::kPaging: return page_table_.get();
  }
  return nullptr;
}

}  // namespace iommu
