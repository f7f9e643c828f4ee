// iommu::IoPageTable: one IO page table, as a paging domain owns it. A 4-level radix tree over a
// 48-bit IOVA space (9 bits per level, 4 KiB granule) whose leaves are 4 KiB pages, 2 MiB or 1 GiB
// blocks. "Physical" addresses are host virtual addresses of this process (ARCHITECTURE.md, DMA
// memory model); keeping the mapped memory alive is the caller's contract.
//
// Concurrency: writers (Map/Unmap) serialize on mu_ (LockRank::kDomain), which guards the tree's
// shape (tables' fill counts). Readers (Translate, IovaToPhys) take no lock: entries are atomics,
// and a reader runs inside an EpochReadSection. Unmap retires entries with atomic stores, bumps
// generation(), then Epoch::Synchronize()s (after dropping mu_) before it returns or frees a table:
// when Unmap returns, no DMA can still use an old entry. Map never makes a partial result visible
// when it fails: it plans and allocates every table first, then installs.
#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <optional>

#include "base/mutex.h"
#include "base/result.h"
#include "hw/dma.h"

namespace iommu {

enum Prot : uint32_t {
  kProtRead = 1u << 0,
  kProtWrite = 1u << 1,
};

inline constexpr uint64_t kPage4K = 1ull << 12;
inline constexpr uint64_t kPage2M = 1ull << 21;
inline constexpr uint64_t kPage1G = 1ull << 30;

struct IovaTranslation {
  uint64_t phys = 0;        // host address the iova maps to
  uint32_t prot = 0;
  uint64_t leaf_size = 0;   // size of the leaf that maps it (4K, 2M or 1G)
};

class IoPageTable final : public hw::DmaTranslation {
 public:
  // pgsize_bitmap: which leaf sizes Map may create (a subset of 4K|2M|1G; 4K must be in it, and
  // 1G needs 2M, as on all real hardware, because splitting a 1G leaf makes 2M leaves; a bitmap
  // breaking these rules aborts). address_bits: IOVAs must be < 2^address_bits (13..48).
  explicit IoPageTable(uint64_t pgsize_bitmap = kPage4K | kPage2M | kPage1G, unsigned address_bits = 48);
  // The owner must have made the table unreachable to readers (detached from every DmaPort, then
  // Epoch::Synchronize()) before destroying it: the tables are freed without another grace period.
  ~IoPageTable() override;
  IoPageTable(const IoPageTable&) = delete;
  IoPageTable& operator=(const IoPageTable&) = delete;

  // Maps [iova, iova+size) to [phys, phys+size) with prot. Errors, checked in this order:
  //   EINVAL  prot is zero or has bits other than kProtRead|kProtWrite; size is zero; iova, phys
  //           or size is not 4 KiB aligned; iova+size or phys+size wraps past 2^64.
  //   ERANGE  the range reaches at or beyond 2^address_bits.
  //   EEXIST  any page of the range is already mapped.
  //   ENOMEM  a table cannot be allocated (fail point "iopt.alloc_table").
  // A 2 MiB or 1 GiB leaf is used only where iova and phys are both aligned to it, the range
  // covers it and its size is in pgsize_bitmap. All or nothing: on error the table (including
  // table_count()) is exactly as before and no reader ever saw part of the range mapped.
  vb::Result<void> Map(uint64_t iova, uint64_t phys, uint64_t size, uint32_t prot) EXCLUDES(mu_);

  // Unmaps whatever is mapped in [iova, iova+size) and returns the number of bytes that were
  // mapped there (0 if nothing). A large leaf that the range covers only partly is split first
  // into leaves of the next level down (its other parts keep translating the same way). Errors:
  // EINVAL (zero size, unaligned, wraps), ERANGE (beyond address_bits), ENOMEM (a split's table
  // cannot be allocated; then nothing changed). Tables left empty leave the tree (a few are
  // kept zeroed for reuse, outside table_count()). Strict: when it
  // removed anything it bumps generation() and returns only after Epoch::Synchronize(), so no
  // DMA (other than one running on the calling thread) can still use a removed entry.
  vb::Result<uint64_t> Unmap(uint64_t iova, uint64_t size) EXCLUDES(mu_);

  // Bulk unmaps (UNMAP ALL, detach): like Unmap, but the grace period is the caller's. When it
  // returns the entries are unreachable for new translations, yet a DMA that translated earlier
  // may still be copying: call Sync() before the old memory may be reused. Emptied tables are
  // kept until Sync().
  vb::Result<uint64_t> UnmapDeferred(uint64_t iova, uint64_t size) EXCLUDES(mu_);
  // Epoch::Synchronize(), then frees the tables UnmapDeferred retired.
  void Sync() EXCLUDES(mu_);

  // Points every leaf of [iova, iova+size) at [new_phys, new_phys+size), keeping its prot and
  // dirty bits (the preload library moving DMA-mapped pages aside, ARCHITECTURE "Pinning"). Large
  // leaves that the range covers only partly, or whose new address is not aligned to their size,
  // are split first. Unmapped pages stay unmapped. Each entry changes with one atomic store, so a
  // reader sees the old or the new address, never a hole; generation() is bumped, and the grace
  // period is the caller's (Epoch::Synchronize() before the old memory goes). Errors: EINVAL
  // (zero size, unaligned, wraps), ERANGE (beyond address_bits), ENOMEM (split tables; then
  // nothing changed).
  vb::Result<void> Retarget(uint64_t iova, uint64_t size, uint64_t new_phys) EXCLUDES(mu_);

  // Dirty tracking (the hardware A/D-bit model, as iommufd's dirty tracking): while on, a write
  // translation sets the leaf's dirty bit. ReadAndClearDirty calls fn(iova, length) for every
  // dirty run of [iova, iova+size) (a whole large leaf is one run, clipped to the range) and
  // cleans it; cached write translations are invalidated so the next write dirties again.
  void SetDirtyTracking(bool on) EXCLUDES(mu_);
  bool dirty_tracking() const { return dirty_tracking_.load(std::memory_order_acquire); }
  void ReadAndClearDirty(uint64_t iova, uint64_t size, const std::function<void(uint64_t, uint64_t)>& fn)
      EXCLUDES(mu_);

  // Lock-free lookup (call inside an EpochReadSection when racing writers). nullopt when iova is
  // not mapped or out of the address space.
  std::optional<IovaTranslation> IovaToPhys(uint64_t iova) const;

  // hw::DmaTranslation: lock-free, allocation-free. The segment runs over following leaves while
  // their host addresses continue the run and allow `access`, up to `length`. Generations are
  // drawn from a process-wide counter, so (table, generation) never repeats even when a table is
  // freed and another is allocated at the same address.
  hw::DmaTranslateResult Translate(uint64_t iova, uint64_t length, hw::DmaAccess access) const override;
  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }
  uint64_t granule() const override { return kPage4K; }

  // One leaf as a walk from the root reaches it (debug dumps of the tables, e.g. intel-iommu's
  // debugfs): `level` 0 is a 4 KiB page, 1 a 2 MiB block, 2 a 1 GiB block; tables[l] is the host
  // address of the table at level l on the way (tables[3] the root, tables[level] the one
  // holding the leaf; the others are null).
  struct LeafVisit {
    uint64_t iova = 0;
    uint64_t size = 0;
    uint64_t phys = 0;
    uint32_t prot = 0;
    int level = 0;
    uintptr_t tables[4] = {};
  };
  // Calls fn for every leaf in iova order, under the writer lock (a consistent snapshot: no Map or
  // Unmap runs meanwhile; fn must not call back into this table).
  void ForEachLeaf(const std::function<void(const LeafVisit&)>& fn) EXCLUDES(mu_);
  uintptr_t root_address() const { return reinterpret_cast<uintptr_t>(root_); }

  uint64_t pgsize_bitmap() const { return pgsize_bitmap_; }
  uint64_t mapped_bytes() const { return mapped_bytes_.load(std::memory_order_relaxed); }
  // Number of table pages allocated (tests: tables are freed when emptied / on destruction).
  uint64_t table_count() const { return table_count_.load(std::memory_order_relaxed); }

 private:
  struct Table;
  struct Walk;

  // Removes the range under mu_ and links emptied tables onto `retired` (not yet freed), or, with
  // `defer`, onto deferred_ (in the same critical section).
  vb::Result<uint64_t> UnmapRetiring(uint64_t iova, uint64_t size, Table*& retired, bool defer) EXCLUDES(mu_);

  // A table for the tree: from the pool of freed tables when it has one (already zeroed), else
  // newly allocated. Null on allocation failure (fail point "iopt.alloc_table", checked first).
  Table* AllocTableLocked() REQUIRES(mu_);
  // Takes back a table that never entered the tree, or one unlinked and past its grace period
  // (`counted`: it was in table_count()). Keeps up to kPoolMax for reuse, frees the rest.
  void ReleaseTableLocked(Table* t, bool counted) REQUIRES(mu_);
  Walk WalkTo(uint64_t iova) const;
  bool UseLeaf(int level, uint64_t first, uint64_t last, uint64_t phys) const;
  bool PlanMapLocked(const Table* t, int level, uint64_t first, uint64_t last, uint64_t phys,
                     uint64_t& tables_needed) const REQUIRES(mu_);
  void InstallMapLocked(Table* t, int level, uint64_t first, uint64_t last, uint64_t phys,
                        uint64_t pte_bits, Table*& pool) REQUIRES(mu_);
  struct SplitBlock {
    int level;
    uint64_t base;
    friend bool operator==(const SplitBlock&, const SplitBlock&) = default;
  };
  void SplitsNeededLocked(uint64_t boundary, SplitBlock* blocks, int& count) const REQUIRES(mu_);
  void SplitAtLocked(uint64_t boundary, Table*& pool) REQUIRES(mu_);
  void ClearRangeLocked(Table* t, int level, uint64_t first, uint64_t last, uint64_t& unmapped,
                        Table*& retired) REQUIRES(mu_);
  void FreeTree(Table* t, int level);
  void VisitLocked(const Table* t, int level, uint64_t base, LeafVisit& v,
                   const std::function<void(const LeafVisit&)>& fn) const REQUIRES(mu_);

  const uint64_t pgsize_bitmap_;
  const unsigned address_bits_;
  vb::Mutex mu_{vb::LockRank::kDomain};  // serializes writers; readers never take it
  Table* const root_;  // level 3; never freed before destruction. Tables below change under mu_.
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> dirty_tracking_{false};
  // Retired by UnmapDeferred, freed by Sync(). Pushed under mu_; Sync() takes the whole list with
  // one exchange, without mu_, so a Sync costs one lock acquisition (to pool the tables).
  std::atomic<Table*> deferred_{nullptr};
  // Freed tables kept for the next Map (a 4 KiB map+unmap pair in an empty region would otherwise
  // allocate, zero and free three tables every time). All entries are zero; not in table_count().
  static constexpr unsigned kPoolMax = 8;
  Table* pool_ GUARDED_BY(mu_) = nullptr;
  unsigned pool_size_ GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> mapped_bytes_{0};
  std::atomic<uint64_t> table_count_{0};
};

}  // namespace iommu
