// DmaTree: the user mappings of one type1 container (the kernel's dma_list of vfio_dma), stored as
// extents — one record per MAP_DMA however large (a 1 GiB map is one record) — non-overlapping,
// never merged, ordered by iova. Owned by the type1 backend object; guarded by the backend lock
// (LockRank::kBackend) of that owner — DmaTree itself has no lock and is not thread-safe.
//
// Lookups are O(log n); a walk over the k records of a range is O(log n + k). Insertion can be
// split into Prepare (allocates, may fail) and Commit (cannot fail), so MAP can fail nothing
// half-done. Records keep their address while in the tree (std::map nodes never move), so a
// Dma* stays valid until that record is removed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <ranges>
#include <vector>

#include "base/result.h"
#include "vfio/type1/dirty_bitmap.h"
#include "vfio/type1/flags.h"

namespace vfio::type1 {

class LockedMemory;

// Part of a mapping whose pages no longer sit at `pinned + offset` (ARCHITECTURE "Pinning"):
// the preload library moved them aside before the program unmapped or discarded them (`keep`
// holds that aside memory and frees it when the last record using it goes), or followed them to
// where the program's mremap put them (`keep` null: the pages are the program's again, at `host`).
struct Relocation {
  uint64_t offset = 0;  // from iova; page aligned
  uint64_t size = 0;
  uint64_t host = 0;
  std::shared_ptr<const void> keep;
};

// One MAP_DMA record (the kernel's struct vfio_dma).
struct Dma {
  uint64_t iova = 0;
  uint64_t size = 0;             // > 0; iova + size - 1 does not wrap
  uint64_t vaddr = 0;            // user virtual address of iova (stale while vaddr_invalid)
  uint64_t pinned = 0;           // host address the IOMMU translates iova to (the pages pinned at
                                 // MAP time; a VADDR update does not re-pin, as on 6.1)
  uint32_t prot = 0;             // kProtRead | kProtWrite
  bool vaddr_invalid = false;    // UNMAP_DMA(VADDR) done, MAP_DMA(VADDR) not yet (§5.4)
  bool iommu_mapped = false;     // pinned and mapped into the domains (false: created while the
                                 // container had only emulated groups)
  uint64_t locked_bytes = 0;     // what this record charged to `account`
  LockedMemory* account = nullptr;  // where locked_bytes were charged (the mapping's "mm")
  std::unique_ptr<DirtyBitmap> dirty;  // while DIRTY_PAGES tracking is on
  std::vector<Relocation> relocated;   // sorted by offset, disjoint; usually empty

  // Calls fn(offset, size, host, keep) for consecutive pieces covering [0, size): the pages the
  // IOMMU translates iova + offset to.
  template <typename F>
  void ForEachPiece(F&& fn) const {
    static const std::shared_ptr<const void> kUser;
    uint64_t off = 0;
    for (const Relocation& r : relocated) {
      if (r.offset > off) fn(off, r.offset - off, pinned + off, kUser);
      fn(r.offset, r.size, r.host, r.keep);
      off = r.offset + r.size;
    }
    if (off < size) fn(off, size - off, pinned + off, kUser);
  }

  uint64_t last() const { return iova + (size - 1); }  // inclusive
  bool Contains(uint64_t a) const { return a >= iova && a <= last(); }
};

class DmaTree {
  using Map = std::map<uint64_t, Dma>;

 public:
  using iterator = Map::iterator;
  using const_iterator = Map::const_iterator;

  // A record allocated but not yet in any tree (see Prepare/Commit).
  class Prepared {
   public:
    Prepared() = default;
    Dma& dma() { return node_.mapped(); }
    bool empty() const { return node_.empty(); }

   private:
    friend class DmaTree;
    explicit Prepared(Map::node_type node) : node_(std::move(node)) {}
    Map::node_type node_;
  };

  explicit DmaTree(uint64_t entry_limit = kDefaultDmaEntryLimit) : entry_limit_(entry_limit) {}
  DmaTree(const DmaTree&) = delete;
  DmaTree& operator=(const DmaTree&) = delete;

  // Allocates the record for `dma`. Errors: EINVAL if size is 0 or iova + size - 1 wraps; ENOMEM
  // (fail point "type1.dma_alloc") — row 10 of §5.1. Does not look at the tree.
  static vb::Result<Prepared> Prepare(Dma dma);
  // Links a prepared record in. Never fails; the caller has already checked (PlanMap) that it
  // overlaps nothing and that an entry is available. Returns the record in the tree.
  Dma& Commit(Prepared&& prepared);

  // Prepare + the two tree checks + Commit. Errors, in the kernel's order: EINVAL (size 0 /
  // wrap), EEXIST (overlaps any existing record by any byte), ENOSPC (no entry available), ENOMEM.
  vb::Result<Dma*> Insert(Dma dma);

  // The record holding `iova`, or nullptr.
  Dma* FindContaining(uint64_t iova);
  const Dma* FindContaining(uint64_t iova) const;
  // The record starting exactly at `iova`, or nullptr.
  Dma* FindExact(uint64_t iova);
  // The lowest-iova record intersecting [first, last] (first <= last), or nullptr.
  Dma* FindFirstOverlapping(uint64_t first, uint64_t last);
  const Dma* FindFirstOverlapping(uint64_t first, uint64_t last) const;
  bool Overlaps(uint64_t first, uint64_t last) const {
    return FindFirstOverlapping(first, last) != nullptr;
  }
  // The records intersecting [first, last], in iova order, as an iterator range [begin, end).
  std::ranges::subrange<iterator> Overlapping(uint64_t first, uint64_t last);
  std::ranges::subrange<const_iterator> Overlapping(uint64_t first, uint64_t last) const;
  // True when a record contains `first` but starts below it, or contains `last` but ends above
  // it: the "no bisection" rule of v2 UNMAP and DIRTY GET_BITMAP.
  bool Bisects(uint64_t first, uint64_t last) const;

  // Unlinks and returns the record at `it` / starting at `iova` (which must exist).
  Dma Extract(iterator it);
  Dma Extract(uint64_t iova);
  // Unlinks [begin, end) (e.g. a planned unmap range). Returns the number removed.
  size_t Remove(iterator begin, iterator end);
  void Clear() { map_.clear(); }

  size_t Size() const { return map_.size(); }
  bool Empty() const { return map_.empty(); }
  // dma_avail of the kernel: entries MAP_DMA may still create (reported by GET_INFO's DMA_AVAIL).
  uint64_t entry_limit() const { return entry_limit_; }
  uint64_t Available() const {
    return map_.size() >= entry_limit_ ? 0 : entry_limit_ - map_.size();
  }

  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  const_iterator begin() const { return map_.begin(); }
  const_iterator end() const { return map_.end(); }

 private:
  template <typename It, typename M>
  static It FirstOverlapping(M& map, uint64_t first, uint64_t last);

  Map map_;
  const uint64_t entry_limit_;
};

}  // namespace vfio::type1
