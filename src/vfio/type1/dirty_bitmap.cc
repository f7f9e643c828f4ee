#include "vfio/type1/dirty_bitmap.h"

#include <new>

#include "base/fail_point.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/user_memory.h"

namespace vfio::type1 {

vb::Result<std::unique_ptr<DirtyBitmap>> DirtyBitmap::Create(uint64_t mapping_size,
                                                             uint64_t pgsize) {
  if (pgsize == 0 || (pgsize & (pgsize - 1)) != 0 || mapping_size % pgsize != 0)
    return vb::Err(EINVAL, "dirty_bitmap: bad page size");
  uint64_t npages = mapping_size / pgsize;
  if (npages > kDirtyBitmapPagesMax) return vb::Err(EINVAL, "dirty_bitmap: more than INT_MAX pages");
  if (VB_FAIL_POINT("type1.dirty_bitmap_alloc")) return vb::Err(ENOMEM, "dirty_bitmap: alloc");
  uint64_t words = (npages + 63) / 64;
  std::unique_ptr<uint64_t[]> model(new (std::nothrow) uint64_t[words + 1]());
  std::unique_ptr<std::atomic<uint64_t>[]> pending(new (std::nothrow) std::atomic<uint64_t>[words]());
  if (!model || !pending) return vb::Err(ENOMEM, "dirty_bitmap: alloc");
  return std::unique_ptr<DirtyBitmap>(
      new DirtyBitmap(pgsize, npages, words + 1, std::move(model), std::move(pending)));
}

DirtyBitmap::DirtyBitmap(uint64_t pgsize, uint64_t npages, uint64_t model_words,
                         std::unique_ptr<uint64_t[]> model,
                         std::unique_ptr<std::atomic<uint64_t>[]> pending)
    : pgsize_(pgsize),
      npages_(npages),
      model_words_(model_words),
      model_(std::move(model)),
      pending_(std::move(pending)) {}

void DirtyBitmap::MarkDirty(uint64_t offset, uint64_t length) {
  if (length == 0 || npages_ == 0) return;
  uint64_t first = offset / pgsize_;
  if (first >= npages_) return;
  // Clip before adding so an offset near 2^64 cannot wrap.
  uint64_t span = npages_ * pgsize_ - offset;
  uint64_t last = (offset + (length < span ? length : span) - 1) / pgsize_;
  for (uint64_t w = first / 64; w <= last / 64; ++w) {
    uint64_t lo = (w == first / 64) ? first % 64 : 0;
    uint64_t hi = (w == last / 64) ? last % 64 : 63;
    uint64_t mask = (hi == 63 ? ~0ull : ((1ull << (hi + 1)) - 1)) & ~((1ull << lo) - 1);
    // Skip the RMW when already set: repeated writes to a hot page stay read-only cache traffic.
    if ((pending_[w].load(std::memory_order_relaxed) & mask) != mask)
      pending_[w].fetch_or(mask, std::memory_order_relaxed);
  }
}

void DirtyBitmap::DrainPending() {
  for (uint64_t w = 0; w < model_words_ - 1; ++w) {
    if (pending_[w].load(std::memory_order_relaxed) != 0)
      model_[w] |= pending_[w].exchange(0, std::memory_order_relaxed);
  }
}

static void SetBits(uint64_t* words, uint64_t nbits) {
  for (uint64_t w = 0; w < nbits / 64; ++w) words[w] = ~0ull;
  if (nbits % 64) words[nbits / 64] |= (1ull << (nbits % 64)) - 1;
}

vb::Result<void> DirtyBitmap::ReportToUser(uint64_t user_bitmap, uint64_t bit_offset,
                                           bool mark_all) {
  DrainPending();
  if (mark_all) SetBits(model_.get(), npages_);
  uint64_t shift = bit_offset % 64;
  uint64_t dst = user_bitmap + (bit_offset / 64) * 8;
  uint64_t nbits = npages_ + shift;
  uint64_t words = (nbits + 63) / 64;
  if (shift) {
    // The kernel shifts its own bitmap in place (no mask on the top word) and keeps the result:
    // that persistence is the §5.6 quirk, so it is modelled, not avoided.
    for (uint64_t k = words; k-- > 0;) {
      uint64_t lower = k > 0 ? model_[k - 1] >> (64 - shift) : 0;
      model_[k] = (model_[k] << shift) | lower;
    }
    uint64_t leftover = 0;
    TRY(UserMemory::CopyFromUser(&leftover, dst, sizeof(leftover)));
    model_[0] |= leftover;
  }
  TRY(UserMemory::CopyToUser(dst, model_.get(), words * 8));
  return vb::Ok();
}

void DirtyBitmap::ClearReported() {
  for (uint64_t w = 0; w < npages_ / 64; ++w) model_[w] = 0;
  if (npages_ % 64) model_[npages_ / 64] &= ~((1ull << (npages_ % 64)) - 1);
}

bool DirtyBitmap::IsReportedBitSet(uint64_t bit) const {
  if (bit >= model_words_ * 64) return false;
  return (model_[bit / 64] >> (bit % 64)) & 1;
}

void DirtyBitmap::SetReportedBit(uint64_t bit) {
  if (bit < npages_) model_[bit / 64] |= 1ull << (bit % 64);
}

vb::Result<void> VerifyBitmapSize(uint64_t npages, uint64_t bitmap_bytes) {
  if (npages == 0 || bitmap_bytes == 0) return vb::Err(EINVAL, "dirty bitmap: empty");
  if (bitmap_bytes > kDirtyBitmapBytesMax || npages > kDirtyBitmapPagesMax)
    return vb::Err(EINVAL, "dirty bitmap: too large");
  if (bitmap_bytes < DirtyBitmapBytes(npages)) return vb::Err(EINVAL, "dirty bitmap: too small");
  return vb::Ok();
}

}  // namespace vfio::type1
