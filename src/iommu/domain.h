// iommu::Domain: one IO address space a group can be attached to (Linux: iommu_domain).
//   kBlocked  — no DMA at all (the group's blocking domain while a user owns it);
//   kIdentity — iova == host address (the default domain of a passthrough instance);
//   kPaging   — an IoPageTable filled by Map/Unmap (type1's domains).
// A domain belongs to the Iommu that allocated it ("same ops" == same Iommu instance) and is owned
// by whoever allocated it (a Group for its default and blocking domains, type1 for its own). It
// must be detached from every group before it is destroyed (checked: the destructor aborts).
//
// Locks: none of its own. Map/Unmap serialize on the page table's writer lock (kDomain); readers
// (IovaToPhys, DMA through translation()) are lock-free inside an epoch read section.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "base/checked.h"
#include "base/live_count.h"
#include "base/result.h"
#include "hw/dma.h"
#include "iommu/io_page_table.h"

namespace iommu {

class Iommu;

enum class DomainType : uint8_t { kBlocked, kIdentity, kPaging };
const char* DomainTypeName(DomainType t);

class Domain {
 public:
  ~Domain();
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  DomainType type() const { return type_; }
  Iommu& iommu() const { return iommu_; }
  uint64_t pgsize_bitmap() const;
  vb::Interval aperture() const;  // inclusive [first, last]

  // Asks the domain to block no-snoop DMA (Linux ops->enforce_cache_coherency). Returns whether
  // the domain now enforces it: only paging domains of an instance with cache_coherent and
  // enforce_cache_coherency can. Sticky once set.
  bool EnforceCacheCoherency();
  bool enforce_cache_coherency() const { return enforce_cache_coherency_.load(std::memory_order_acquire); }

  // Paging domains only (EINVAL otherwise). Maps [iova, iova+size) → [phys, phys+size).
  // EINVAL: size 0, the range wraps, misaligned (4 KiB), prot 0; ERANGE: any part outside the
  // aperture; EEXIST: already mapped; ENOMEM: table allocation failed. All or nothing. On a
  // kDmar instance every mapping is also readable (intel-iommu's present bit; IommuKind).
  // The permissions the page table really records for a mapping asked with `prot`: the driver's
  // quirks applied (intel-iommu 6.1: every mapping is readable, design 0010).
  uint32_t TableProt(uint32_t prot) const;
  vb::Result<void> Map(uint64_t iova, uint64_t phys, uint64_t size, uint32_t prot);
  // Paging domains only (EINVAL otherwise). Returns the bytes that were mapped in the range.
  // EINVAL: size 0, wraps, misaligned; ERANGE: outside the aperture. Strict: when it returns no
  // DMA can use a removed entry.
  vb::Result<uint64_t> Unmap(uint64_t iova, uint64_t size);
  // Paging: the page table's answer; identity: the iova itself (rw); blocked: nullopt.
  std::optional<IovaTranslation> IovaToPhys(uint64_t iova) const;

  // What a device's DmaPort translates through while its group is attached here: null for a
  // blocked domain, an identity translation, or the page table. Valid for the domain's lifetime.
  const hw::DmaTranslation* translation() const;
  // The page table of a paging domain; null otherwise.
  IoPageTable* page_table() const { return page_table_.get(); }

  // Number of groups currently attached (maintained by Group).
  int attached_groups() const { return attached_groups_.load(std::memory_order_acquire); }

 private:
  friend class Iommu;
  friend class Group;
  Domain(Iommu& iommu, DomainType type);
  vb::Result<void> CheckRange(uint64_t iova, uint64_t size) const;

  Iommu& iommu_;
  const DomainType type_;
  std::unique_ptr<IoPageTable> page_table_;  // kPaging only
  std::atomic<bool> enforce_cache_coherency_{false};
  std::atomic<int> attached_groups_{0};
  [[no_unique_address]] vb::LiveCount<Domain> live_;
};

}  // namespace iommu
