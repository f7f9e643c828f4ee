// iommu::IoPageTable: one IO page table, as a paging domain owns it. A 4-level radix tree over a
// 48-bit IOVA space (9 bits per level, 4 KiB granule) whose leaves are 4 KiB pages, 2 MiB or 1 GiB
// blocks. "Physical" addresses are host virtual addresses of this process (ARCHITECTURE.md, DMA
// memory model).
//
// Concurrency: writers (Map/Unmap) serialize on mu_ (LockRank::kDomain). Readers (Translate,
// IovaToPhys) take no lock: entries are atomics, and a reader runs inside an EpochReadSection.
// Unmap retires entries with atomic stores, bumps generation(), then Epoch::Synchronize()s before
// it returns or frees a table: when Unmap returns, no DMA can still use an old entry.
#pragma once

#include <atomic>
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
  // pgsize_bitmap: which leaf sizes may be used (a subset of 4K|2M|1G; 4K must be in it).
  // address_bits: IOVAs must be < 2^address_bits (<= 48).
  explicit IoPageTable(uint64_t pgsize_bitmap = kPage4K | kPage2M | kPage1G, unsigned address_bits = 48);
  ~IoPageTable() override;
  IoPageTable(const IoPageTable&) = delete;
  IoPageTable& operator=(const IoPageTable&) = delete;

  // Maps [iova, iova+size) to [phys, phys+size) with prot (non-zero). iova, phys and size must be
  // 4 KiB aligned (EINVAL), size non-zero (EINVAL), the range inside the address space and not
  // wrapping (EINVAL / ERANGE for beyond address_bits). A 2 MiB or 1 GiB leaf is used only where
  // iova and phys are both aligned to it and the rest of the range covers it. EEXIST if any page
  // of the range is already mapped; ENOMEM if a table cannot be allocated (fail point
  // "iopt.alloc_table"). All or nothing: on error the table is as before.
  vb::Result<void> Map(uint64_t iova, uint64_t phys, uint64_t size, uint32_t prot) EXCLUDES(mu_);

  // Unmaps whatever is mapped in [iova, iova+size) and returns the number of bytes that were
  // mapped there (0 if nothing). A large leaf that the range covers only partly is split first
  // (ENOMEM if the split's table cannot be allocated; then nothing changed). Strict: returns only
  // after no DMA can use a removed entry.
  vb::Result<uint64_t> Unmap(uint64_t iova, uint64_t size) EXCLUDES(mu_);

  // Lock-free lookup (call inside an EpochReadSection when racing writers).
  std::optional<IovaTranslation> IovaToPhys(uint64_t iova) const;

  // hw::DmaTranslation: lock-free, allocation-free.
  hw::DmaTranslateResult Translate(uint64_t iova, uint64_t length, hw::DmaAccess access) const override;
  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }
  uint64_t granule() const override { return kPage4K; }

  uint64_t pgsize_bitmap() const { return pgsize_bitmap_; }
  uint64_t mapped_bytes() const { return mapped_bytes_.load(std::memory_order_relaxed); }
  // Number of table pages allocated (tests: tables are freed when emptied / on destruction).
  uint64_t table_count() const { return table_count_.load(std::memory_order_relaxed); }

 private:
  struct Table;

  const uint64_t pgsize_bitmap_;
  const unsigned address_bits_;
  vb::Mutex mu_{vb::LockRank::kDomain};  // serializes writers; readers never take it
  Table* root_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> mapped_bytes_{0};
  std::atomic<uint64_t> table_count_{0};
};

}  // namespace iommu
