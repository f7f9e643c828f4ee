// devices::TestEndpoint: a small generic PCIe endpoint for VFIO tests (1234:7e57, class 0xff0000,
// FLR capable, PM, MSI-X with 8 vectors, INTx pin A).
//   BAR0: 64 KiB, 64-bit prefetchable, mappable: plain memory in a memfd, so a user mmap of the
//         region and the device see the same bytes.
//   BAR2: 16 KiB, 32-bit register BAR (not mappable):
//     0x00 RO id 0x7e570001     0x04 RW scratch
//     0x08 WO doorbell: the written value is an MSI-X vector to signal (dropped if MSI-X is off)
//     0x0c RW INTx: write 1 asserts the pin, 0 deasserts it; reads the pin state
//     0x10 DMA src, 0x18 DMA dst, 0x20 DMA count (frozen while a DMA runs)
//     0x28 DMA cmd: bit 0 start (cleared when done), bit 1 direction (0: RAM → BAR0 at offset dst,
//          1: BAR0 at offset src → RAM at dst), bit 2 signal MSI-X vector cmd[15:8] when done,
//          bit 31 error (set when the DMA faulted, bus mastering was off or the BAR0 range was
//          bad; nothing copied then). Runs on the machine's executor.
//     0x30 RW access-log count: how many accesses the log holds; any write empties the log
//     0x100-0x1ff scratch window: plain bytes taking accesses of every width (1, 2, 4, 8), each
//          one recorded in the access log (so a test sees the device side of a CPU access)
//     0x200-0x2ff portal: 16/32/64-byte posted writes (SSE/AVX stores, MOVDIR64B) are taken whole,
//          logged as one access of that size whose value is the first 8 bytes; narrower
//          accesses there read all-ones and are dropped (logged, so a split write shows)
//     0x1000-0x1fff access log, read-only: entry i at 0x1000 + 16 * i (the first 256 accesses
//          since it was emptied) is {u64 offset | size << 32 | write << 40, u64 value}
//     0x2000 MSI-X table (8 entries), 0x3000 PBA.
// Registers take 4- and 8-byte accesses; other sizes read all-ones and drop writes (the scratch
// window excepted). Only scratch-window accesses are logged.
//
// Locks: registers are guarded by PciDevice::state_mu_.
#pragma once

#include <cstdint>

#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/mmio_handler.h"
#include "hw/pci_device.h"

namespace devices {

class TestEndpoint final : public hw::PciDevice, private hw::MmioHandler {
 public:
  static constexpr uint16_t kVendorId = 0x1234;
  static constexpr uint16_t kDeviceId = 0x7e57;
  static constexpr uint64_t kBar0Size = 64 << 10;
  static constexpr uint64_t kBar2Size = 16 << 10;
  static constexpr uint16_t kMsixVectors = 8;
  static constexpr uint32_t kMsixTableOffset = 0x2000;
  static constexpr uint32_t kMsixPbaOffset = 0x3000;

  static constexpr uint32_t kRegId = 0x00;
  static constexpr uint32_t kRegScratch = 0x04;
  static constexpr uint32_t kRegDoorbell = 0x08;
  static constexpr uint32_t kRegIntx = 0x0c;
  static constexpr uint32_t kRegDmaSrc = 0x10;
  static constexpr uint32_t kRegDmaDst = 0x18;
  static constexpr uint32_t kRegDmaCount = 0x20;
  static constexpr uint32_t kRegDmaCmd = 0x28;
  static constexpr uint32_t kRegLogCount = 0x30;
  static constexpr uint32_t kScratchWindow = 0x100;
  static constexpr uint32_t kScratchWindowSize = 0x100;
  static constexpr uint32_t kPortal = 0x200;
  static constexpr uint32_t kPortalSize = 0x100;
  static constexpr uint32_t kAccessLog = 0x1000;
  static constexpr uint32_t kAccessLogEntries = 256;
  static constexpr uint64_t kLogWrite = uint64_t{1} << 40;
  static constexpr uint32_t kId = 0x7e570001;
  static constexpr uint64_t kDmaCmdStart = 0x1;
  static constexpr uint64_t kDmaCmdToRam = 0x2;
  static constexpr uint64_t kDmaCmdIrq = 0x4;
  static constexpr uint64_t kDmaCmdError = 0x80000000;

  // ENOMEM if BAR memory cannot be made.
  static vb::Result<vb::RefPtr<TestEndpoint>> Create(hw::PciAddress address, bool multifunction = false);

 private:
  TestEndpoint(hw::PciAddress address, bool multifunction);

  uint64_t MmioRead(int bar, uint64_t offset, unsigned size) override;
  void MmioWrite(int bar, uint64_t offset, unsigned size, uint64_t value) override;
  bool MmioWriteWide(int bar, uint64_t offset, const uint8_t* data, unsigned size) override;
  void OnResetLocked() override REQUIRES(state_mu_);
  void RunDmaLocked() REQUIRES(state_mu_);
  // One access-log entry (dropped once the log is full).
  void LogLocked(uint64_t offset, unsigned size, bool write, uint64_t value) REQUIRES(state_mu_);

  uint64_t epoch_ GUARDED_BY(state_mu_) = 0;
  uint32_t scratch_ GUARDED_BY(state_mu_) = 0;
  uint32_t intx_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_src_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_dst_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_count_ GUARDED_BY(state_mu_) = 0;
  uint64_t dma_cmd_ GUARDED_BY(state_mu_) = 0;
  uint8_t window_[kScratchWindowSize] GUARDED_BY(state_mu_) = {};
  uint8_t portal_[kPortalSize] GUARDED_BY(state_mu_) = {};
  struct LogEntry {
    uint64_t what;
    uint64_t value;
  };
  LogEntry log_[kAccessLogEntries] GUARDED_BY(state_mu_) = {};
  uint32_t log_count_ GUARDED_BY(state_mu_) = 0;
};

}  // namespace devices
