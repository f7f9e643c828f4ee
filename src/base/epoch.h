// Epoch-based read sections: how the DMA path reads page tables without taking a lock, and how
// unmap stays strict. A DMA (translation + copy) runs inside an EpochReadSection. A writer that
// retires translations (unmap, detach) first makes them unreachable with atomic stores, then calls
// Epoch::Synchronize(), which returns only when every read section that began before it has
// ended. After that no DMA can still reach the old pages, and retired table memory may be freed.
//
// Synchronize() ignores the calling thread's own read section: an MMIO handler doing synchronous
// DMA that ends up unmapping must not wait on itself (the DMA already in progress on this very
// thread is ordered by program order, not by the epoch).
//
// Reader cost: a seq_cst store on entry and a release store on exit (per section, not per page).
// Sections nest. Each thread takes one slot of a fixed table on first use (kMaxThreads); the
// registry lock is taken only then and at thread exit.
#pragma once

#include <cstdint>

namespace vb {

class Epoch {
 public:
  static constexpr int kMaxThreads = 1024;

  static void EnterRead();
  static void ExitRead();
  // Waits for all read sections of other threads that began before this call.
  static void Synchronize();
  // Number of threads currently inside a read section (tests).
  static int ActiveReadersForTest();
};

class EpochReadSection {
 public:
  EpochReadSection() { Epoch::EnterRead(); }
  ~EpochReadSection() { Epoch::ExitRead(); }
  EpochReadSection(const EpochReadSection&) = delete;
  EpochReadSection& operator=(const EpochReadSection&) = delete;
};

}  // namespace vb
