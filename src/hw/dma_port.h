// DmaPort: the only way a device touches memory. Each hw::Device owns one. It translates through
// the translation the IOMMU layer installed for the device (none installed = blocked), checks
// read/write permission, and copies. Every page of a transfer is translated and checked before
// any byte is copied, so a miss records one fault (first faulting iova) and aborts with nothing
// written. A transfer racing an unmap of its own pages may see either side of it; once Unmap has
// returned, none can reach the old pages (base/epoch.h).
//
// The hot path takes no lock and allocates nothing. A small per-port translation cache (direct
// mapped by 4 KiB iova page) serves transfers that stay within one page; each entry is tagged with
// the translation object, its generation() and the port's install count, so a removed or narrowed
// translation (generation bumped) or a replaced one (SetTranslation) never hits. Entries are
// per-entry seqlocks: any number of threads may DMA through one port at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/result.h"
#include "hw/dma.h"

namespace hw {

class Device;

class DmaPort {
 public:
  explicit DmaPort(Device& owner) : owner_(owner) {}
  DmaPort(const DmaPort&) = delete;
  DmaPort& operator=(const DmaPort&) = delete;

  // Device reads memory: [iova, iova+len) → dst. EFAULT (and one fault recorded) on a miss;
  // EINVAL if the range wraps.
  vb::Result<void> Read(uint64_t iova, void* dst, size_t len);
  // Device writes memory: src → [iova, iova+len). Same errors; nothing is written on a miss.
  vb::Result<void> Write(uint64_t iova, const void* src, size_t len);

  // Device copies memory to memory, [src, src+len) → [dst, dst+len), straight between the host
  // pages (no buffer in between; each host piece is moved with memmove). The source is translated
  // and checked first, then the destination, before any byte moves: on a miss EFAULT with one
  // fault recorded and nothing written, and *failed (if given) says which side missed. EINVAL if a
  // range wraps, ENODEV if disconnected. ENOTSUP, with nothing written, when the source lies in
  // more than kMaxSegments host pieces: the caller moves it with Read and Write instead.
  vb::Result<void> Copy(uint64_t src, uint64_t dst, size_t len, DmaAccess* failed = nullptr);

  // Installed by the IOMMU layer. Passing nullptr blocks all DMA. The caller must run
  // Epoch::Synchronize() before freeing the previous translation.
  void SetTranslation(const DmaTranslation* t) {
    translation_.store(t, std::memory_order_release);
    installs_.fetch_add(1, std::memory_order_release);  // read before translation_ (see Transfer)
  }
  const DmaTranslation* translation() const { return translation_.load(std::memory_order_acquire); }
  void SetFaultSink(FaultSink* sink) { fault_sink_.store(sink, std::memory_order_release); }

  uint64_t faults_for_test() const { return faults_.load(std::memory_order_relaxed); }
  // Cache hits since construction (tests, benchmarks; may undercount when threads race).
  uint64_t cache_hits_for_test() const { return cache_hits_.load(std::memory_order_relaxed); }

  static constexpr int kMaxSegments = 8;  // host pieces remembered between a transfer's passes
  static constexpr unsigned kCacheEntries = 32;
  static constexpr unsigned kCachePageShift = 12;

 private:
  // One cached page translation. All fields are atomics written under the entry's seqlock (`seq`
  // odd while a filler writes), so concurrent DMAs through this port are race-free.
  struct alignas(64) CacheEntry {
    std::atomic<uint32_t> seq{0};
    std::atomic<uint64_t> tag{0};        // (iova page << 2) | allowed DmaAccess bits; 0 = empty
    std::atomic<const DmaTranslation*> translation{nullptr};
    std::atomic<uint64_t> generation{0};
    std::atomic<uint64_t> installs{0};
    std::atomic<uintptr_t> host_page{0};  // host address of the page's first byte
  };
  // What a transfer snapshot of the port's translation is compared against.
  struct View {
    const DmaTranslation* t;
    uint64_t generation;
    uint64_t installs;
  };

  template <DmaAccess kAccess, typename CopyFn>
  vb::Result<void> Transfer(uint64_t iova, size_t len, CopyFn copy);
  // Translates [iova, iova+remaining) as far as one segment goes, through the cache when the
  // rest of the transfer lies in one page.
  DmaTranslateResult TranslateCached(const View& v, uint64_t iova, uint64_t remaining, DmaAccess access);
  bool CacheLookup(const View& v, uint64_t page, DmaAccess access, uintptr_t& host_page);
  void CacheFill(const View& v, uint64_t page, DmaAccess access, uintptr_t host_page);
  void Fault(uint64_t iova, DmaAccess access, DmaFaultReason reason);
  void Observe(DmaAccess access, uint64_t iova, uint64_t len, const uint8_t* host) const;

  Device& owner_;
  std::atomic<const DmaTranslation*> translation_{nullptr};
  std::atomic<FaultSink*> fault_sink_{nullptr};
  std::atomic<uint64_t> faults_{0};
  std::atomic<uint64_t> installs_{0};  // SetTranslation count: tags cache entries
  std::atomic<uint64_t> cache_hits_{0};
  CacheEntry cache_[kCacheEntries];
};

}  // namespace hw
