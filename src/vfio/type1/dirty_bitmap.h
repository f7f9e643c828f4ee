// DirtyBitmap: the dirty-page state of one type1 mapping (one Dma) while DIRTY_PAGES tracking is
// on, one bit per page of the minimum IOMMU page size, bit k = page k of the mapping. Owned by its
// Dma (Dma::dirty), created at DIRTY_PAGES START (or at MAP while tracking), freed at STOP/unmap.
//
// Two halves, because two kinds of caller touch it:
//  * MarkDirty() is the DMA path (DmaPort writes, dma_rw): lock-free and allocation-free; it ORs
//    into an atomic "pending" word array. The caller must keep the bitmap alive across the call
//    (it reads Dma::dirty inside an epoch read section; STOP retires bitmaps after Synchronize).
//  * ReportToUser()/ClearReported() run under the backend lock and model the kernel's per-mapping
//    bitmap exactly as Linux 6.1 keeps it, including the in-place shift quirk of reference §5.6
//    (bits shifted past the mapping's end by a mid-word report are never cleared and show up in
//    later reports; STOP + START clears them). Pending bits are drained into it at each report.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/result.h"

namespace vfio::type1 {

class DirtyBitmap {
 public:
  // A bitmap for a mapping of `mapping_size` bytes at page size `pgsize` (a power of two that
  // divides mapping_size). Errors: EINVAL when the mapping has more than INT_MAX pages (6.1's
  // DIRTY_PAGES START refusal); ENOMEM when the allocation fails (fail point
  // "type1.dirty_bitmap_alloc").
  static vb::Result<std::unique_ptr<DirtyBitmap>> Create(uint64_t mapping_size, uint64_t pgsize);

  DirtyBitmap(const DirtyBitmap&) = delete;
  DirtyBitmap& operator=(const DirtyBitmap&) = delete;

  uint64_t pgsize() const { return pgsize_; }
  uint64_t npages() const { return npages_; }

  // DMA path. Marks every page touched by [offset, offset + length) of the mapping (offsets in
  // bytes from the mapping's iova); the part beyond the mapping is ignored. length 0 marks
  // nothing. Thread-safe against itself and against reports.
  void MarkDirty(uint64_t offset, uint64_t length);

  // Writes this mapping's bits into the user's bitmap at `user_bitmap` (a user virtual address of
  // u64 words) starting at bit `bit_offset` (= (dma.iova - request.iova) / pgsize), by the 6.1
  // word rules of §5.6: the words from the one holding bit_offset through the one holding the
  // mapping's last bit are written; if bit_offset is mid-word, the user's first word is read and
  // OR'ed in whole. With `mark_all` (an IOMMU-backed group without pinned-page scope, on an
  // IOMMU-mapped Dma) every page of the mapping is set first — the kernel's default answer.
  // Errors: EFAULT when the user's words cannot be read or written (state changes made before the
  // fault stay, as in the kernel).
  vb::Result<void> ReportToUser(uint64_t user_bitmap, uint64_t bit_offset, bool mark_all);

  // After a successful GET_BITMAP report: clears bits [0, npages) of the reported state (bits past
  // the end left there by a shifted report stay — the 6.1 quirk). The caller re-marks pages still
  // pinned by emulated devices afterwards.
  void ClearReported();

  // For tests and for the caller's "pinned pages stay dirty" re-population.
  bool IsReportedBitSet(uint64_t bit) const;
  void SetReportedBit(uint64_t bit);

 private:
  DirtyBitmap(uint64_t pgsize, uint64_t npages, uint64_t model_words,
              std::unique_ptr<uint64_t[]> model, std::unique_ptr<std::atomic<uint64_t>[]> pending);
  void DrainPending();

  const uint64_t pgsize_;
  const uint64_t npages_;
  const uint64_t model_words_;  // ceil(npages/64) + 1: room for a shift of up to 63 bits
  // The kernel-modelled bitmap; touched only under the backend lock.
  std::unique_ptr<uint64_t[]> model_;
  // Pages written by DMA since the last report; ceil(npages/64) words.
  std::unique_ptr<std::atomic<uint64_t>[]> pending_;
};

// The bitmap-size rule shared by UNMAP|GET_DIRTY_BITMAP and DIRTY_PAGES GET_BITMAP (6.1's
// verify_bitmap_size): EINVAL unless 0 < npages <= INT_MAX, 0 < bitmap_bytes <= 256 MiB and
// bitmap_bytes >= DirtyBitmapBytes(npages).
vb::Result<void> VerifyBitmapSize(uint64_t npages, uint64_t bitmap_bytes);

}  // namespace vfio::type1
