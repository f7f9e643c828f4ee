// PinnedPages: keeps DMA-mapped user pages alive across the program's munmap, mremap and
// madvise(DONTNEED/FREE/REMOVE), as the kernel's pinned pages stay alive (ARCHITECTURE.md
// "Pinning"). Process-wide: every type1 Iommu registers itself for its lifetime. The preload
// library calls KeepAlive before it lets such a call through and Moved after an mremap; the C++
// API leaves this to the embedder (type1_iommu.h).
//
// KeepAlive moves the mapped pages of the range to an aside region (mremap with
// MREMAP_DONTUNMAP, so the old range stays mapped, empty, until the caller's own munmap: a DMA
// racing the move reads zeros or writes a discarded page, never faults the host), or copies them
// there (kCopy, or when the move is refused: several VMAs, special mappings), points every
// mapping record and IO page table entry at it (Iommu::RetargetHost), and waits one epoch grace
// period. The aside memory belongs to the records that use it and is unmapped when the last of
// them is unmapped.
//
// Locks: mu_ (LockRank::kPinnedPages) guards the instance list and serializes KeepAlive/Moved; it
// is taken before any Iommu's backend lock (kBackend) and never inside one. All memory calls here
// are raw syscalls, so the preload library's interposers never re-enter.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/result.h"

namespace vfio::type1 {

class Iommu;

class PinnedPages {
 public:
  enum class Keep {
    kMove,  // munmap, mremap's lost tail, MADV_DONTNEED/FREE: the pages themselves move aside
    kCopy,  // MADV_REMOVE: the device keeps a private copy (the file's pages are going away)
  };

  // Before the caller unmaps or discards [addr, addr + len): every IOMMU-mapped page there keeps
  // reaching the device from aside memory. Cheap when no type1 instance exists (one atomic load).
  // Errors: ENOMEM when aside memory or a page-table split cannot be had (the pages that could be
  // kept are kept).
  static vb::Result<void> KeepAlive(uint64_t addr, uint64_t len, Keep how);

  // After the caller's mremap moved [old_addr, old_addr + len) to new_addr: the mappings follow
  // the pages (device and program keep sharing them, as with pinned pages).
  static void Moved(uint64_t old_addr, uint64_t len, uint64_t new_addr);

  // Whether any type1 instance exists (a hint for callers' fast paths).
  static bool Any() { return instances_.load(std::memory_order_acquire) != 0; }

  static void Register(Iommu* iommu);
  static void Unregister(Iommu* iommu);

 private:
  static std::atomic<int> instances_;
};

}  // namespace vfio::type1
