#include "devices/edu.h"

#include "hw/machine.h"

#include <algorithm>
#include <cstring>

namespace devices {

namespace {
constexpr uint64_t kAllOnes = ~uint64_t{0};
constexpr uint64_t kPage = 4096;
}

Edu::Edu(hw::PciAddress address, const EduOptions& options)
    : PciDevice(address, Identity{
                             .vendor_id = kVendorId,
                             .device_id = kDeviceId,
                             .class_code = kClassCode,
                             .header_type = 0,
                             .pcie_type = hw::PcieType::kConventional,
                             .revision = 0x10,
                             .subsystem_vendor_id = 0x1af4,
                             .subsystem_id = 0x1100,
                             .interrupt_pin = 1,
                         }),
      options_(options) {}

vb::Result<vb::RefPtr<Edu>> Edu::Create(hw::PciAddress address, const EduOptions& options) {
  vb::RefPtr<Edu> edu(new Edu(address, options));
  TRY(edu->DefineBar(0, hw::BarSpec{.kind = hw::BarKind::kMem32, .size = kBar0Size}, edu.get()));
  TRY(edu->AddMsiCapability(hw::MsiSpec{.vectors = 1, .is_64bit = true, .per_vector_mask = false}));
  return edu;
}

// QEMU's memory core refuses an access the edu's MemoryRegionOps do not declare valid (a width
// other than 4 or 8, or an address not aligned to the width) before the edu sees it: the read
// answers what unassigned memory answers, 0, and the write is dropped.
bool Edu::AccessValid(uint64_t offset, unsigned size) {
  return (size == 4 || size == 8) && offset % size == 0;
}

uint64_t Edu::MmioRead(int bar, uint64_t offset, unsigned size) {
  state_mu_.AssertHeld();
  if (!AccessValid(offset, size)) return 0;
  // The edu's own check: 8-byte accesses only at 0x80 and above.
  if (offset < 0x80 && size != 4) return kAllOnes;
  switch (offset) {
    case kRegId: return kId;
    case kRegLiveness: return liveness_;
    case kRegFactorial: return factorial_;
    case kRegStatus: return status_;
    case kRegIrqStatus: return irq_status_;
    case kRegDmaSrc: return dma_src_;
    case kRegDmaDst: return dma_dst_;
    case kRegDmaCount: return dma_count_;
    case kRegDmaCmd: return dma_cmd_;
    default: return kAllOnes;
  }
}

void Edu::MmioWrite(int bar, uint64_t offset, unsigned size, uint64_t value) {
  state_mu_.AssertHeld();
  if (!AccessValid(offset, size) || (offset < 0x80 && size != 4)) return;
  const uint32_t v32 = static_cast<uint32_t>(value);
  switch (offset) {
    case kRegLiveness:
      liveness_ = ~v32;
      break;
    case kRegFactorial:
      if (status_ & kStatusComputing) break;
      status_ |= kStatusComputing;
      factorial_ = v32;
      ScheduleLocked(Work::kFactorial, {});
      break;
    case kRegStatus:
      status_ = (status_ & ~kStatusIrqFactorial) | (v32 & kStatusIrqFactorial);
      break;
    case kRegIrqRaise:
      RaiseLocked(v32);
      break;
    case kRegIrqAck:
      AckLocked(v32);
      break;
    case kRegDmaSrc:
    case kRegDmaDst:
    case kRegDmaCount: {
      if (dma_cmd_ & kDmaCmdStart) break;  // the engine's registers are frozen while it runs
      uint64_t& reg = offset == kRegDmaSrc ? dma_src_ : offset == kRegDmaDst ? dma_dst_ : dma_count_;
      reg = value;
      break;
    }
    case kRegDmaCmd:
      if (!(value & kDmaCmdStart) || (dma_cmd_ & kDmaCmdStart)) break;
      dma_cmd_ = value;
      ScheduleLocked(Work::kDma, options_.dma_delay);
      break;
    default:
      break;
  }
}

void Edu::RaiseLocked(uint32_t bits) {
  irq_status_ |= bits;
  if (!irq_status_) return;
  if (msi_enabled_locked()) SignalMsiLocked(0);
  else RaiseIntxLocked();
}

void Edu::AckLocked(uint32_t bits) {
  irq_status_ &= ~bits;
  // As QEMU: the line is lowered only while MSI is off.
  if (!irq_status_ && !msi_enabled_locked()) LowerIntxLocked();
}

void Edu::ScheduleLocked(Work work, std::chrono::nanoseconds delay) {
  hw::Machine* machine = this->machine();
  if (!machine) {
    DoWorkLocked(work);
    return;
  }
  vb::RefPtr<Edu> self(this);
  const uint64_t epoch = epoch_;
  machine->executor().Post(
      [self, epoch, work] {
        StateLock l(*self);
        if (self->epoch_ != epoch || self->disconnected()) return;
        self->DoWorkLocked(work);
      },
      delay);
}

void Edu::DoWorkLocked(Work work) {
  if (work == Work::kFactorial) FinishFactorialLocked();
  else RunDmaLocked();
}

void Edu::FinishFactorialLocked() {
  // n! mod 2^32, as QEMU's uint32_t loop computes it. 34! holds 2^32 (17+8+4+2+1 factors of 2),
  // so every n >= 34 gives 0: answer that at once instead of looping up to 4 G times with the
  // device's state lock held (which stalled every BAR and config access of the device for
  // seconds; found by the UAPI fuzzer).
  uint32_t result = factorial_ >= 34 ? 0 : 1;
  for (uint32_t i = factorial_ >= 34 ? 0 : factorial_; i > 1; --i) result *= i;
  factorial_ = result;
  status_ &= ~kStatusComputing;
  if (status_ & kStatusIrqFactorial) RaiseLocked(kIrqFactorial);
}

void Edu::RunDmaLocked() {
  if (!(dma_cmd_ & kDmaCmdStart)) return;
  const bool to_ram = dma_cmd_ & kDmaCmdToRam;
  const uint64_t device_addr = to_ram ? dma_src_ : dma_dst_;
  uint64_t ram = to_ram ? dma_dst_ : dma_src_;
  if (options_.mask_dma_to_28_bits) ram &= (uint64_t{1} << 28) - 1;
  const uint64_t count = dma_count_;
  bool ok = device_addr >= kDmaBufferAddr && count <= kDmaBufferSize &&
            device_addr - kDmaBufferAddr <= kDmaBufferSize - count;
  if (ok && count > 0) {
    uint8_t* buf = buffer_.data() + (device_addr - kDmaBufferAddr);
    // Page by page, as QEMU's DMA translates: a page the IOMMU refuses (the fault is recorded),
    // or any page while bus mastering is off, reads as zeros into the buffer and drops a write;
    // the other pages move.
    for (uint64_t done = 0; done < count;) {
      const uint64_t at = ram + done;
      const uint64_t chunk = std::min<uint64_t>(count - done, kPage - (at & (kPage - 1)));
      auto r = to_ram ? DmaWriteLocked(at, buf + done, chunk) : DmaReadLocked(at, buf + done, chunk);
      if (!r) {
        ok = false;
        if (!to_ram) std::memset(buf + done, 0, chunk);
      }
      done += chunk;
    }
  }
  dma_cmd_ &= ~kDmaCmdStart;
  if (ok) ++dma_completions_;
  else ++dma_errors_;
  if (dma_cmd_ & kDmaCmdIrq) RaiseLocked(kIrqDma);
}

void Edu::OnResetLocked() {
  // QEMU's edu has no reset handler: a function or bus reset resets its config space (done by
  // PciDevice, which also drops the INTx line) but no register, the DMA buffer nor the work in
  // flight.
}

void Edu::OnConfigWriteLocked(uint32_t offset, unsigned size) {
  // QEMU's MSI code: a write touching the MSI capability while MSI is enabled deasserts INTx.
  constexpr uint32_t kMsiCapBytes = 14;  // 64-bit address, no per-vector masking
  const auto msi = msi_offset();
  if (msi && offset < *msi + kMsiCapBytes && *msi < offset + size && msi_enabled_locked()) LowerIntxLocked();
}

void Edu::OnSurpriseRemoval() {
  PciDevice::OnSurpriseRemoval();
  StateLock l(*this);
  ++epoch_;  // pending factorial / DMA never complete
}

std::array<uint8_t, Edu::kDmaBufferSize> Edu::dma_buffer() const {
  vb::MutexLock l(state_mu_);
  return buffer_;
}

void Edu::set_dma_buffer(const std::array<uint8_t, kDmaBufferSize>& bytes) {
  vb::MutexLock l(state_mu_);
  buffer_ = bytes;
}

uint64_t Edu::dma_errors() const {
  vb::MutexLock l(state_mu_);
  return dma_errors_;
}

uint64_t Edu::dma_completions() const {
  vb::MutexLock l(state_mu_);
  return dma_completions_;
}

}  // namespace devices
