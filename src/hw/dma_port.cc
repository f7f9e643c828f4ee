#include "hw/dma_port.h"

#include <cstring>

#include "base/checked.h"
#include "base/epoch.h"
#include "hw/device.h"

namespace hw {

void DmaPort::Fault(uint64_t iova, DmaAccess access, DmaFaultReason reason) {
  faults_.fetch_add(1, std::memory_order_relaxed);
  if (FaultSink* sink = fault_sink_.load(std::memory_order_acquire)) {
    sink->RecordFault(DmaFault{owner_.name(), owner_.requester_id(), iova, access, reason});
  }
}

template <DmaAccess kAccess, typename CopyFn>
vb::Result<void> DmaPort::Transfer(uint64_t iova, size_t len, CopyFn copy) {
  if (len == 0) return vb::Ok();
  if (!vb::CheckedAdd(iova, len - 1)) return vb::Err(EINVAL, "dma: range wraps");
  if (owner_.disconnected()) return vb::Err(ENODEV, "dma: device disconnected");
  vb::EpochReadSection section;
  const DmaTranslation* t = translation_.load(std::memory_order_acquire);
  if (!t) {
    Fault(iova, kAccess, DmaFaultReason::kBlocked);
    return vb::Err(EFAULT, "dma: blocked");
  }
  // Pass 1: translate and check every page; nothing is copied if any page misses.
  for (uint64_t off = 0; off < len;) {
    DmaTranslateResult r = t->Translate(iova + off, len - off, kAccess);
    if (!r.ok) {
      Fault(iova + off, kAccess, r.reason);
      return vb::Err(EFAULT, "dma: translation fault");
    }
    off += r.segment.length;
  }
  // Pass 2: copy. An unmap racing this transfer may retire entries between the passes (it cannot
  // return before this section ends); the transfer then stops with a fault after a partial copy,
  // as a real device racing an unmap would.
  for (uint64_t off = 0; off < len;) {
    DmaTranslateResult r = t->Translate(iova + off, len - off, kAccess);
    if (!r.ok) {
      Fault(iova + off, kAccess, r.reason);
      return vb::Err(EFAULT, "dma: translation fault");
    }
    copy(r.segment.host, off, r.segment.length);
    off += r.segment.length;
  }
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

}  // namespace hw
