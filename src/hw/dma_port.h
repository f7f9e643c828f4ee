// DmaPort: the only way a device touches memory. Each hw::Device owns one. It translates through
// the translation the IOMMU layer installed for the device (none installed = blocked), checks
// read/write permission, and copies. Every page of a transfer is translated and checked before
// any byte is copied, so a miss records one fault (first faulting iova) and aborts with nothing
// written. A transfer racing an unmap of its own pages may see either side of it; once Unmap has
// returned, none can reach the old pages (base/epoch.h).
//
// The hot path takes no lock and allocates nothing. A small per-port translation cache is tagged
// with the translation's generation so that invalidation is exact.
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

  // Installed by the IOMMU layer. Passing nullptr blocks all DMA. The caller must run
  // Epoch::Synchronize() before freeing the previous translation.
  void SetTranslation(const DmaTranslation* t) { translation_.store(t, std::memory_order_release); }
  const DmaTranslation* translation() const { return translation_.load(std::memory_order_acquire); }
  void SetFaultSink(FaultSink* sink) { fault_sink_.store(sink, std::memory_order_release); }

  uint64_t faults_for_test() const { return faults_.load(std::memory_order_relaxed); }

 private:
  template <DmaAccess kAccess, typename CopyFn>
  vb::Result<void> Transfer(uint64_t iova, size_t len, CopyFn copy);
  void Fault(uint64_t iova, DmaAccess access, DmaFaultReason reason);

  Device& owner_;
  std::atomic<const DmaTranslation*> translation_{nullptr};
  std::atomic<FaultSink*> fault_sink_{nullptr};
  std::atomic<uint64_t> faults_{0};
};

}  // namespace hw
