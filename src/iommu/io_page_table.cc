// TEMPORARY stand-in for the IO page table, written by the IOMMU-core helper only so that the
// core's tests can run before the real 4-level radix tree (another helper's work) lands; it is
// replaced by that implementation at merge. A std::map of 4 KiB pages under a plain lock: same
// contract and errors as io_page_table.h, except that readers take the lock and every leaf is
// reported as 4 KiB.
#include "iommu/io_page_table.h"

#include <map>
#include <mutex>

#include "base/checked.h"
#include "base/epoch.h"
#include "base/fail_point.h"

namespace iommu {

struct IoPageTable::Table {
  struct Page {
    uint64_t phys;
    uint32_t prot;
  };
  mutable std::mutex mu;            // guards pages (the stand-in's readers lock too)
  std::map<uint64_t, Page> pages;   // 4 KiB page iova → page
};

IoPageTable::IoPageTable(uint64_t pgsize_bitmap, unsigned address_bits)
    : pgsize_bitmap_(pgsize_bitmap), address_bits_(address_bits), root_(new Table) {
  table_count_.store(1, std::memory_order_relaxed);
}

IoPageTable::~IoPageTable() { delete root_; }

vb::Result<void> IoPageTable::Map(uint64_t iova, uint64_t phys, uint64_t size, uint32_t prot) {
  if (size == 0 || prot == 0) return vb::Err(EINVAL, "iopt.map: empty");
  if (!vb::IsAligned(iova, kPage4K) || !vb::IsAligned(phys, kPage4K) || !vb::IsAligned(size, kPage4K))
    return vb::Err(EINVAL, "iopt.map: unaligned");
  uint64_t last = TRY(vb::RangeLast(iova, size));
  TRY(vb::RangeLast(phys, size));
  if (address_bits_ < 64 && (last >> address_bits_) != 0) return vb::Err(ERANGE, "iopt.map: beyond address bits");
  vb::MutexLock w(mu_);
  std::lock_guard l(root_->mu);
  auto it = root_->pages.lower_bound(iova);
  if (it != root_->pages.end() && it->first <= last) return vb::Err(EEXIST, "iopt.map: already mapped");
  if (VB_FAIL_POINT("iopt.alloc_table")) return vb::Err(ENOMEM, "iopt.map: table allocation");
  for (uint64_t off = 0; off < size; off += kPage4K) root_->pages[iova + off] = Table::Page{phys + off, prot};
  mapped_bytes_.fetch_add(size, std::memory_order_relaxed);
  return vb::Ok();
}

vb::Result<uint64_t> IoPageTable::Unmap(uint64_t iova, uint64_t size) {
  if (size == 0) return vb::Err(EINVAL, "iopt.unmap: empty");
  if (!vb::IsAligned(iova, kPage4K) || !vb::IsAligned(size, kPage4K)) return vb::Err(EINVAL, "iopt.unmap: unaligned");
  uint64_t last = TRY(vb::RangeLast(iova, size));
  uint64_t removed = 0;
  {
    vb::MutexLock w(mu_);
    std::lock_guard l(root_->mu);
    auto it = root_->pages.lower_bound(iova);
    while (it != root_->pages.end() && it->first <= last) {
      it = root_->pages.erase(it);
      removed += kPage4K;
    }
    mapped_bytes_.fetch_sub(removed, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  vb::Epoch::Synchronize();
  return removed;
}

std::optional<IovaTranslation> IoPageTable::IovaToPhys(uint64_t iova) const {
  std::lock_guard l(root_->mu);
  auto it = root_->pages.find(vb::AlignDown(iova, kPage4K));
  if (it == root_->pages.end()) return std::nullopt;
  return IovaTranslation{it->second.phys + (iova & (kPage4K - 1)), it->second.prot, kPage4K};
}

hw::DmaTranslateResult IoPageTable::Translate(uint64_t iova, uint64_t length, hw::DmaAccess access) const {
  hw::DmaTranslateResult r;
  std::lock_guard l(root_->mu);
  auto it = root_->pages.find(vb::AlignDown(iova, kPage4K));
  if (it == root_->pages.end()) {
    r.reason = hw::DmaFaultReason::kNotMapped;
    return r;
  }
  const uint32_t need = access == hw::DmaAccess::kRead ? kProtRead : kProtWrite;
  if (!(it->second.prot & need)) {
    r.reason = hw::DmaFaultReason::kPermission;
    return r;
  }
  const uint64_t in_page = iova & (kPage4K - 1);
  r.ok = true;
  r.segment.host = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(it->second.phys + in_page));
  r.segment.length = std::min(length, kPage4K - in_page);
  return r;
}

}  // namespace iommu
