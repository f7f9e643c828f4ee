// vfio::type1::Iommu: the type1 backend instance of one container (Linux: struct vfio_iommu) and
// vfio::type1::Type1Backend, the backend that opens it (vfio_iommu_driver_ops for type1 v1/v2).
//
// It owns the container's user mappings (DmaTree: one extent record per MAP_DMA), the paging
// domains its groups are attached to (reused across groups of the same IOMMU instance and
// coherency setting), the valid IOVA list, and the dirty-tracking state. Attach derives the
// domain from one member of the IOMMU group *inside* iommu::Group::ForFirstDevice, which holds the
// IOMMU group's lock for the callback; no device or bus pointer is kept afterwards (reference §9,
// docs/design/0001).
//
// Mapped memory model: "physical" = the host address of the user's buffer at MAP time. The pages
// must stay alive while mapped (the embedder's contract through the C++ API; the preload library
// keeps them alive for unmodified programs through PinnedPages, which may retarget a record's
// pieces to aside memory: Dma::relocated). Every instance is registered with PinnedPages for its
// lifetime.
//
// Locks: mu_ (kBackend) guards everything below. The container's lock is held around every call
// (read for MAP/UNMAP/INFO/DIRTY, write for attach/detach/release).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/live_count.h"
#include "base/mutex.h"
#include "iommu/domain.h"
#include "iommu/group.h"
#include "vfio/iommu_backend.h"
#include "vfio/type1/dirty_planner.h"
#include "vfio/type1/dma_tree.h"
#include "vfio/type1/iova_list.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/map_planner.h"
#include "vfio/type1/unmap_planner.h"

namespace vfio::type1 {

// VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU numbers (<linux/vfio.h>).
inline constexpr unsigned long kExtType1 = 1;
inline constexpr unsigned long kExtType1v2 = 3;
inline constexpr unsigned long kExtDmaCc = 4;
inline constexpr unsigned long kExtType1Nesting = 6;
inline constexpr unsigned long kExtUnmapAll = 9;
inline constexpr unsigned long kExtUpdateVaddr = 10;

struct Options {
  bool allow_unsafe_interrupts = false;           // module parameter
  uint64_t dma_entry_limit = kDefaultDmaEntryLimit;  // module parameter
  // Dirty pages are the pages devices wrote through their DmaPort, instead of the kernel's
  // "every mapped page of an IOMMU-backed group is dirty" (ARCHITECTURE.md: two truths).
  bool precise_dirty = false;
  // Account charged by MAP_DMA (null: the process account).
  LockedMemory* account = nullptr;
};

// VFIO_IOMMU_GET_INFO data.
struct Info {
  uint64_t iova_pgsizes = 0;
  uint64_t migration_pgsize_bitmap = 0;  // CAP_MIGRATION: the minimum page size
  uint64_t max_dirty_bitmap_size = 0;
  uint32_t dma_avail = 0;                // CAP_DMA_AVAIL
  std::vector<vb::Interval> iova_ranges;  // CAP_IOVA_RANGE (omitted when empty)
};

class Iommu final : public BackendInstance {
 public:
  Iommu(bool v2, const Options& options);
  ~Iommu() override;  // release: every domain detached and freed, every mapping gone

  // BackendInstance
  vb::Result<void> AttachGroup(iommu::Group& group, GroupType type) override EXCLUDES(mu_);
  void DetachGroup(iommu::Group& group) override EXCLUDES(mu_);
  long CheckExtension(unsigned long ext) override EXCLUDES(mu_);

  // VFIO_IOMMU_MAP_DMA (§5.1): every errno row of PlanMap, then EFAULT (vaddr not mapped readable,
  // or writable for a WRITE mapping), ENOMEM (RLIMIT_MEMLOCK, or an allocation). All or nothing.
  vb::Result<void> MapDma(const MapRequest& req) EXCLUDES(mu_);
  // VFIO_IOMMU_UNMAP_DMA (§5.3): returns the bytes unmapped (what the kernel writes back to size).
  vb::Result<uint64_t> UnmapDma(const UnmapRequest& req) EXCLUDES(mu_);
  // VFIO_IOMMU_DIRTY_PAGES (§5.6).
  vb::Result<void> DirtyPages(const DirtyRequest& req) EXCLUDES(mu_);
  Info GetInfo() EXCLUDES(mu_);

  bool v2() const { return v2_; }
  size_t mapping_count() const EXCLUDES(mu_);
  size_t domain_count() const EXCLUDES(mu_);
  uint64_t locked_bytes() const EXCLUDES(mu_);  // what this container's mappings charged
  uint64_t pgsize_bitmap() const EXCLUDES(mu_);
  // The paging domain a group is attached to (tests); null if none.
  iommu::Domain* DomainOf(const iommu::Group& group) const EXCLUDES(mu_);

  // PinnedPages hooks (pinned_pages.h; called with its lock held, never with mu_ held).
  // Appends the host runs inside [first, last] that this container's IOMMU-mapped records
  // translate to and that are still the program's memory (not aside memory).
  void CollectUserHostRuns(uint64_t first, uint64_t last, std::vector<vb::Interval>* out) EXCLUDES(mu_);
  // Points every such piece inside [host, host + len) at new_host + (piece - host), in the records
  // and in every domain's page table; `keep` is the aside memory (null: the program's memory,
  // after an mremap). Keeps iova, size, prot and the locked-memory charge. No grace period (the
  // caller's). Errors: ENOMEM from a page-table split (that domain keeps the old address).
  vb::Result<void> RetargetHost(uint64_t host, uint64_t len, uint64_t new_host, std::shared_ptr<const void> keep)
      EXCLUDES(mu_);

  // ---- Introspection for tests, the fuzzer and the fail-nth snapshots ----
  // One record as type1 holds it.
  struct MappingView {
    uint64_t iova = 0, size = 0, vaddr = 0, pinned = 0;
    uint32_t prot = 0;
    bool vaddr_invalid = false, iommu_mapped = false, has_dirty_bitmap = false;
    uint64_t locked_bytes = 0;
    friend bool operator==(const MappingView&, const MappingView&) = default;
  };
  std::vector<MappingView> MappingsForTest() const EXCLUDES(mu_);
  bool dirty_tracking() const EXCLUDES(mu_);
  // Cross-checks the records against the hardware state and the counters, under the backend lock:
  // records ordered and disjoint; every record of a container with a domain is pinned and charged
  // exactly its size (none charged without one); every page of every record translates, in every
  // domain, to pinned + offset with the record's permissions, and a domain maps no byte that no
  // record covers (mapped_bytes equals the records' total); every group of a domain has it as its
  // current domain; the VADDR-invalid, dirty-bitmap, group and page-size counters agree with the
  // records. Returns "" when consistent, else a description of the first violation. Cost: one
  // page-table lookup per leaf of every mapping.
  std::string CheckInvariantsForTest() const EXCLUDES(mu_);

  // Test hook: called inside ForFirstDevice with the member the domain is derived from (the IOMMU
  // group's lock held). Null to clear.
  static void SetAttachHookForTest(std::function<void(hw::Device&)> hook);

 private:
  struct DomainRec {
    std::unique_ptr<iommu::Domain> domain;
    std::vector<iommu::Group*> groups;
    bool enforce_cc = false;
  };

  uint64_t MinPgsizeLocked() const REQUIRES(mu_) { return pgsize_bitmap_ & -pgsize_bitmap_; }
  void RecomputePgsizeLocked() REQUIRES(mu_);
  DomainRec* FindDomainLocked(const iommu::Group& group) REQUIRES(mu_);
  // Pins (checks and charges) and maps one record into every domain; all or nothing.
  vb::Result<void> PinAndMapLocked(Dma& dma) REQUIRES(mu_);
  // What pinning `dma` charges: its size, or for a mapping without WRITE the pages that are not
  // the zero page (UserMemory::ReadOnlyPinChargeBytes).
  static uint64_t PinChargeBytes(const Dma& dma);
  // Maps every record into a new domain (pinning those never pinned); all or nothing.
  vb::Result<void> ReplayLocked(iommu::Domain& domain) REQUIRES(mu_);
  // Unmaps [begin, end) from every domain, unpins and erases them; one epoch grace period for the
  // whole batch.
  void RemoveRecordsLocked(DmaTree::iterator begin, DmaTree::iterator end) REQUIRES(mu_);
  void RemoveAllLocked() REQUIRES(mu_);
  void UnpinLocked(Dma& dma) REQUIRES(mu_);
  // Precise dirty mode: moves page-table dirty bits of [dma] into its bitmap.
  void HarvestDirtyLocked(Dma& dma) REQUIRES(mu_);
  bool MarkAllDirtyLocked(const Dma& dma) const REQUIRES(mu_) {
    return !options_.precise_dirty && num_non_pinned_groups_ > 0 && dma.iommu_mapped;
  }
  std::vector<ReservedRegion> ReservedOfLocked(const iommu::Group& group) const REQUIRES(mu_);
  std::vector<ReservedRegion> AllReservedLocked() const REQUIRES(mu_);

  const bool v2_;
  const Options options_;
  LockedMemory& account_;

  mutable vb::Mutex mu_{vb::LockRank::kBackend};  // guards everything below
  std::vector<DomainRec> domains_ GUARDED_BY(mu_);
  std::vector<iommu::Group*> emulated_groups_ GUARDED_BY(mu_);
  DmaTree dmas_ GUARDED_BY(mu_);
  IovaList iovas_ GUARDED_BY(mu_);
  uint64_t pgsize_bitmap_ GUARDED_BY(mu_);
  uint64_t vaddr_invalid_count_ GUARDED_BY(mu_) = 0;
  int num_non_pinned_groups_ GUARDED_BY(mu_) = 0;
  bool dirty_tracking_ GUARDED_BY(mu_) = false;
  [[no_unique_address]] vb::LiveCount<Iommu> live_;
};

class Type1Backend final : public IommuBackend {
 public:
  explicit Type1Backend(Options options = {}) : options_(options) {}
  std::string_view name() const override { return "vfio-iommu-type1"; }
  long CheckExtension(unsigned long ext) const override;
  // TYPE1 → v1; TYPE1v2 and TYPE1_NESTING (6.1: accepted, behaves as v2 here) → v2; else EINVAL.
  vb::Result<std::unique_ptr<BackendInstance>> Open(unsigned long type) override;
  Options& options() { return options_; }

 private:
  Options options_;
};

}  // namespace vfio::type1
