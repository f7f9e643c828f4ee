// devices::Edu: a PCI function register-compatible with QEMU 7.2's `edu` teaching device
// (hw/misc/edu.c, docs/specs/edu.rst; facts in reference/clients.md, appendix). 1234:11e8, class
// 0x00ff00, conventional PCI, one MSI capability (1 vector, 64-bit), INTx pin A, BAR0: 1 MiB
// 32-bit non-prefetchable register BAR (not mappable).
//
// BAR0 registers. An access that is not 4 or 8 bytes wide, or not aligned to its width, is
// refused by QEMU's memory core before the edu sees it: it reads 0 and the write is dropped. Of
// the rest, 8-byte accesses below 0x80 and every access to an unimplemented offset read
// all-ones (and are dropped), as edu.c answers:
//   0x00 RO  id 0x010000ed          0x04 RW  liveness: reads ~(last value written)
//   0x08 RW  factorial: write n (ignored while busy); n! (mod 2^32) is computed on the machine's
//            executor and replaces it; status bit 0 is set meanwhile
//   0x20 RW  status: bit 0 busy (RO), bit 7 raise interrupt 0x001 when the factorial finishes
//   0x24 RO  interrupt status       0x60 WO raise (OR into status)   0x64 WO ack (clear bits)
//   0x80 src, 0x88 dst, 0x90 count (ignored while a DMA runs; a 4-byte write replaces the whole
//            register), 0x98 cmd: a write without bit 0 (start) is ignored, one with it is kept
//            whole; bit 0 is cleared when done, bit 1 direction (0: RAM → buffer, 1: buffer →
//            RAM), bit 2 raise interrupt 0x100 when done
//   The DMA buffer is 4 KiB at device address 0x40000 (reachable only by the DMA engine).
// Interrupts: while the interrupt status is non-zero the INTx pin is asserted, unless MSI is
// enabled, in which case every raise sends one MSI message (vector 0); an ack lowers the pin only
// while MSI is off, and (QEMU's msi_write_config) any config write to the MSI capability while
// MSI is enabled drops the pin, which then stays low until the next raise.
// DMA, page by page as QEMU translates: a page the IOMMU refuses (DmaPort records the fault) or
// any page while bus mastering is off reads as zeros into the buffer, and a write to it is
// dropped; the transfer still completes (start cleared, 0x100 raised if asked), as on QEMU.
// Resets: QEMU's edu has no reset handler, so a function or bus reset resets config space only;
// registers, the buffer and work in flight survive.
//
// Where we differ from QEMU (deliberately): QEMU 7.2 aborts the whole VM (hw_error) on a DMA
// whose device range lies outside the buffer or whose count is 0; here such a DMA copies nothing
// and completes (dma_errors() counts it). DMA addresses are not masked to 28 bits unless
// EduOptions::mask_dma_to_28_bits (QEMU's default dma_mask), so IOVAs above 256 MiB work.
//
// Locks: all registers and the buffer are guarded by PciDevice::state_mu_. Background work runs
// on the machine's executor (inline when the device is not plugged into a machine).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/mmio_handler.h"
#include "hw/pci_device.h"

namespace devices {

struct EduOptions {
  std::chrono::nanoseconds dma_delay{0};   // QEMU uses a 100 ms timer
  bool mask_dma_to_28_bits = false;        // QEMU's default dma_mask
};

class Edu final : public hw::PciDevice, private hw::MmioHandler {
 public:
  static constexpr uint16_t kVendorId = 0x1234;
  static constexpr uint16_t kDeviceId = 0x11e8;
  static constexpr uint32_t kClassCode = 0x00ff00;
  static constexpr uint64_t kBar0Size = 1 << 20;

  static constexpr uint32_t kRegId = 0x00;
  static constexpr uint32_t kRegLiveness = 0x04;
  static constexpr uint32_t kRegFactorial = 0x08;
  static constexpr uint32_t kRegStatus = 0x20;
  static constexpr uint32_t kRegIrqStatus = 0x24;
  static constexpr uint32_t kRegIrqRaise = 0x60;
  static constexpr uint32_t kRegIrqAck = 0x64;
  static constexpr uint32_t kRegDmaSrc = 0x80;
  static constexpr uint32_t kRegDmaDst = 0x88;
  static constexpr uint32_t kRegDmaCount = 0x90;
  static constexpr uint32_t kRegDmaCmd = 0x98;

  static constexpr uint32_t kId = 0x010000ed;
  static constexpr uint32_t kStatusComputing = 0x01;
  static constexpr uint32_t kStatusIrqFactorial = 0x80;
  static constexpr uint32_t kIrqFactorial = 0x001;
  static constexpr uint32_t kIrqDma = 0x100;
  static constexpr uint64_t kDmaCmdStart = 0x1;
  static constexpr uint64_t kDmaCmdToRam = 0x2;
  static constexpr uint64_t kDmaCmdIrq = 0x4;
  static constexpr uint64_t kDmaBufferAddr = 0x40000;
  static constexpr uint64_t kDmaBufferSize = 4096;

  // ENOMEM only (BAR set-up).
  static vb::Result<vb::RefPtr<Edu>> Create(hw::PciAddress address, const EduOptions& options = {});

  // Test access to the device's DMA buffer (QEMU offers none over MMIO).
  std::array<uint8_t, kDmaBufferSize> dma_buffer() const EXCLUDES(state_mu_);
  void set_dma_buffer(const std::array<uint8_t, kDmaBufferSize>& bytes) EXCLUDES(state_mu_);
  // DMAs that did not move every byte (a refused page, bus mastering off, a range outside the
  // buffer); a driver cannot see this, as on QEMU.
  uint64_t dma_errors() const EXCLUDES(state_mu_);
  uint64_t dma_completions() const EXCLUDES(state_mu_);

 private:
  Edu(hw::PciAddress address, const EduOptions& options);

  static bool AccessValid(uint64_t offset, unsigned size);
  uint64_t MmioRead(int bar, uint64_t offset, unsigned size) override;
  void MmioWrite(int bar, uint64_t offset, unsigned size, uint64_t value) override;
  void OnResetLocked() override REQUIRES(state_mu_);
  void OnConfigWriteLocked(uint32_t offset, unsigned size) override REQUIRES(state_mu_);
  void OnSurpriseRemoval() override;

  void RaiseLocked(uint32_t bits) REQUIRES(state_mu_);
  void AckLocked(uint32_t bits) REQUIRES(state_mu_);
  enum class Work : uint8_t { kFactorial, kDma };
  // Runs `work` on the executor after `delay` (under the state lock, if the epoch still matches),
  // or right away when the device is not plugged into a machine. Called with the lock held:
  // posting takes only the executor's lock, which ranks inside it.
  void ScheduleLocked(Work work, std::chrono::nanoseconds delay) REQUIRES(state_mu_);
  void DoWorkLocked(Work work) REQUIRES(state_mu_);
  void FinishFactorialLocked() REQUIRES(state_mu_);
  void RunDmaLocked() REQUIRES(state_mu_);

  const EduOptions options_;
  // Bumped by a surprise removal: background work started before it does nothing.
  uint64_t epoch_ GUARDED_BY(state_mu_) = 0;
  uint32_t liveness_ GUARDED_BY(state_mu_) = 0;
  uint32_t factorial_ GUARDED_BY(state_mu_) = 0;
  uint32_t status_ GUARDED_BY(state_mu_) = 0;
  uint32_t irq_status_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_src_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_dst_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_count_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_cmd_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_errors_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_completions_ GUARDED_BY(state_mu_) = 0;
  std::array<uint8_t, kDmaBufferSize> buffer_ GUARDED_BY(state_mu_) = {};
};

}  // namespace devices
