#include "hw/dma_port.h"

#include "faults/trap_map.h"

#include <algorithm>
#include <cstring>

#include "base/checked.h"
#include "base/epoch.h"
#include "hw/device.h"

namespace hw {
namespace {

constexpr uint64_t kCachePage = 1ull << DmaPort::kCachePageShift;
constexpr uint64_t AccessBit(DmaAccess a) { return static_cast<uint64_t>(a); }
// Segments remembered between the check pass and the copy pass; longer transfers re-translate.

}  // namespace

void DmaPort::Fault(uint64_t iova, DmaAccess access, DmaFaultReason reason) {
  faults_.fetch_add(1, std::memory_order_relaxed);
  if (FaultSink* sink = fault_sink_.load(std::memory_order_acquire)) {
    sink->RecordFault(DmaFault{owner_.name(), owner_.requester_id(), iova, access, reason});
  }
}

bool DmaPort::CacheLookup(const View& v, uint64_t page, DmaAccess access, uintptr_t& host_page) {
  const CacheEntry& c = cache_[page % kCacheEntries];
  const uint32_t s1 = c.seq.load(std::memory_order_acquire);
  if (s1 & 1) return false;
  const uint64_t tag = c.tag.load(std::memory_order_relaxed);
  const DmaTranslation* t = c.translation.load(std::memory_order_relaxed);
  const uint64_t gen = c.generation.load(std::memory_order_relaxed);
  const uint64_t installs = c.installs.load(std::memory_order_relaxed);
  const uintptr_t host = c.host_page.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (c.seq.load(std::memory_order_relaxed) != s1) return false;
  if ((tag >> 2) != page || !(tag & AccessBit(access)) || t != v.t || gen != v.generation ||
      installs != v.installs)
    return false;
  host_page = host;
  return true;
}

void DmaPort::CacheFill(const View& v, uint64_t page, DmaAccess access, uintptr_t host_page) {
  CacheEntry& c = cache_[page % kCacheEntries];
  uint32_t s = c.seq.load(std::memory_order_relaxed);
  // Another thread is filling this entry: skip rather than wait.
  if ((s & 1) || !c.seq.compare_exchange_strong(s, s + 1, std::memory_order_relaxed)) return;
  std::atomic_thread_fence(std::memory_order_release);
  // Keep the other access bit when the entry already holds this very page translation.
  uint64_t allowed = AccessBit(access);
  const uint64_t old_tag = c.tag.load(std::memory_order_relaxed);
  if ((old_tag >> 2) == page && c.translation.load(std::memory_order_relaxed) == v.t &&
      c.generation.load(std::memory_order_relaxed) == v.generation &&
      c.installs.load(std::memory_order_relaxed) == v.installs &&
      c.host_page.load(std::memory_order_relaxed) == host_page)
    allowed |= old_tag & 3;
  c.tag.store((page << 2) | allowed, std::memory_order_relaxed);
  c.translation.store(v.t, std::memory_order_relaxed);
  c.generation.store(v.generation, std::memory_order_relaxed);
  c.installs.store(v.installs, std::memory_order_relaxed);
  c.host_page.store(host_page, std::memory_order_relaxed);
  c.seq.store(s + 2, std::memory_order_release);
}

DmaTranslateResult DmaPort::TranslateCached(const View& v, uint64_t iova, uint64_t remaining,
                                            DmaAccess access) {
  const uint64_t page = iova >> kCachePageShift;
  const uint64_t in_page = iova & (kCachePage - 1);
  // Only a transfer (rest) within one page uses the cache: longer runs come from Translate in
  // one go, which extends over contiguous leaves and is cheaper than page-by-page hits.
  const bool fits = remaining <= kCachePage - in_page;
  uintptr_t host_page;
  if (fits && CacheLookup(v, page, access, host_page)) {
    cache_hits_.store(cache_hits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return {true, DmaFaultReason::kNotMapped, {reinterpret_cast<uint8_t*>(host_page + in_page), remaining}};
  }
  DmaTranslateResult r = v.t->Translate(iova, remaining, access);
  // Cache only what a later lookup would use (a rest within one page), and only when the whole
  // page translates uniformly (a translation with a granule below 4 KiB may not).
  if (fits && r.ok && v.t->granule() >= kCachePage)
    CacheFill(v, page, access, reinterpret_cast<uintptr_t>(r.segment.host) - in_page);
  return r;
}

namespace {
std::atomic<DmaObserver*> g_dma_observer{nullptr};
}  // namespace

void SetDmaObserver(DmaObserver* observer) { g_dma_observer.store(observer, std::memory_order_release); }

void DmaPort::Observe(DmaAccess access, uint64_t iova, uint64_t len, const uint8_t* host) const {
  if (DmaObserver* o = g_dma_observer.load(std::memory_order_acquire)) o->OnDma(owner_.name(), access, iova, len, host);
}

template <DmaAccess kAccess, typename CopyFn>
vb::Result<void> DmaPort::Transfer(uint64_t iova, size_t len, CopyFn copy) {
  if (len == 0) return vb::Ok();
  if (!vb::CheckedAdd(iova, len - 1)) return vb::Err(EINVAL, "dma: range wraps");
  if (owner_.disconnected()) return vb::Err(ENODEV, "dma: device disconnected");
  vb::EpochReadSection section;
  // installs_ before translation_: SetTranslation stores them in the other order, so a tag
  // (translation, installs) can only name a translation current at that install count.
  const uint64_t installs = installs_.load(std::memory_order_acquire);
  const DmaTranslation* t = translation_.load(std::memory_order_acquire);
  if (!t) {
    Fault(iova, kAccess, DmaFaultReason::kBlocked);
    return vb::Err(EFAULT, "dma: blocked");
  }
  const View v{t, t->generation(), installs};
  // Pass 1: translate and check every page; nothing is copied if any page misses.
  struct {
    uint8_t* host;
    uint64_t length;
  } segs[kMaxSegments];  // deliberately uninitialized: only [0, nsegs) is read
  int nsegs = 0;
  bool all_recorded = true;
  for (uint64_t off = 0; off < len;) {
    DmaTranslateResult r = TranslateCached(v, iova + off, len - off, kAccess);
    if (!r.ok) {
      Fault(iova + off, kAccess, r.reason);
      return vb::Err(EFAULT, "dma: translation fault");
    }
    // Register pages of a BAR mapping (peer-to-peer): never touched from here (the device model
    // behind them may be the one doing this DMA, under its own state lock).
    if (!faults::TrapMap::Global().empty() && faults::TrapMap::Global().Find(reinterpret_cast<uint64_t>(r.segment.host))) {
      Fault(iova + off, kAccess, DmaFaultReason::kPeerToPeer);
      return vb::Err(EFAULT, "dma: peer-to-peer to register pages");
    }
    if (nsegs < kMaxSegments) {
      segs[nsegs].host = r.segment.host;
      segs[nsegs].length = r.segment.length;
      ++nsegs;
    } else {
      all_recorded = false;
    }
    off += r.segment.length;
  }
  if (all_recorded) {
    uint64_t off = 0;
    for (int i = 0; i < nsegs; ++i) {
      copy(segs[i].host, off, segs[i].length);
      off += segs[i].length;
    }
    Observe(kAccess, iova, len, segs[0].host);
    return vb::Ok();
  }
  const uint8_t* first_host = nullptr;
  // Pass 2 (many segments): translate again while copying. An unmap racing this transfer may
  // retire entries between the passes (it cannot return before this section ends); the transfer
  // then stops with a fault after a partial copy, as a real device racing an unmap would.
  for (uint64_t off = 0; off < len;) {
    DmaTranslateResult r = TranslateCached(v, iova + off, len - off, kAccess);
    if (!r.ok) {
      Fault(iova + off, kAccess, r.reason);
      return vb::Err(EFAULT, "dma: translation fault");
    }
    copy(r.segment.host, off, r.segment.length);
    if (off == 0) first_host = r.segment.host;
    off += r.segment.length;
  }
  Observe(kAccess, iova, len, first_host);
  return vb::Ok();
}

vb::Result<void> DmaPort::Read(uint64_t iova, void* dst, size_t len) {
  auto* out = static_cast<uint8_t*>(dst);
  return Transfer<DmaAccess::kRead>(iova, len, [out](uint8_t* host, uint64_t off, uint64_t n) {
    std::memcpy(out + off, host, n);
  });
}

vb::Result<void> DmaPort::Write(uint64_t iova, const void* src, size_t len) {
  auto* in = static_cast<const uint8_t*>(src);
  return Transfer<DmaAccess::kWrite>(iova, len, [in](uint8_t* host, uint64_t off, uint64_t n) {
    std::memcpy(host, in + off, n);
  });
}

vb::Result<void> DmaPort::Copy(uint64_t src, uint64_t dst, size_t len, DmaAccess* failed) {
  if (failed) *failed = DmaAccess::kRead;
  if (len == 0) return vb::Ok();
  if (!vb::CheckedAdd(src, len - 1) || !vb::CheckedAdd(dst, len - 1)) return vb::Err(EINVAL, "dma: range wraps");
  // One read section over both transfers: the source's host pages stay valid until the
  // destination's copy has used them.
  vb::EpochReadSection section;
  struct {
    const uint8_t* host;
    uint64_t length;
  } segs[kMaxSegments];  // deliberately uninitialized: only [0, nsegs) is read
  int nsegs = 0;
  bool overflow = false;
  // The read transfer checks every source page before calling back; the callback only records.
  TRY(Transfer<DmaAccess::kRead>(src, len, [&](uint8_t* host, uint64_t, uint64_t n) {
    if (nsegs < kMaxSegments) segs[nsegs++] = {host, n};
    else overflow = true;
  }));
  if (overflow) return vb::Err(ENOTSUP, "dma: copy source in too many pieces");
  if (failed) *failed = DmaAccess::kWrite;
  int si = 0;
  uint64_t in_seg = 0;
  return Transfer<DmaAccess::kWrite>(dst, len, [&](uint8_t* host, uint64_t, uint64_t n) {
    // Destination pieces come in order; walk the source pieces alongside.
    for (uint64_t done = 0; done < n;) {
      const uint64_t k = std::min(n - done, segs[si].length - in_seg);
      std::memmove(host + done, segs[si].host + in_seg, k);
      done += k;
      in_seg += k;
      if (in_seg == segs[si].length) {
        ++si;
        in_seg = 0;
      }
    }
  });
}

}  // namespace hw
