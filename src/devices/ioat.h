// devices::Ioat: one function of an Intel I/OAT DMA engine ("Crystal Beach DMA", CBDMA v3.3, as
// on Skylake-SP: PCI 8086:2021), register-compatible with what Linux's ioatdma, the kernel's VFIO
// selftest ioat driver and DPDK's ioat PMD program (facts: /work/shared/reference/ioat.md). One
// channel per function, as on SKX; a multi-function device is one Ioat per function.
//
// Config space: PCIe endpoint (4 KiB), class 0x088000, PM, MSI (1 vector), MSI-X (1 vector per
// channel, table at BAR0 + 0x2000, PBA at + 0x3000: outside the first page, for DPDK), INTx pin A.
// Device-specific error registers in extended config space (no capability around them, as the
// drivers only use fixed offsets): 0x148 DMAUNCERRSTS (RW1C, never set), 0x14c DMAUNCERRMSK,
// 0x150 DMAUNCERRSEV (RW), 0x180 CHANERR_INT (RW1C: every channel error is latched here too,
// unless masked by 0x184), 0x184 CHANERRMSK_INT, 0x188 CHANERRSEV_INT (RW).
//
// BAR0 (16 KiB, 64-bit, register BAR). Accesses of any size; an access spanning several registers
// acts on each (in offset order); reserved bytes read 0 and drop writes. Power-on / channel-reset values:
//   0x00 CHANCNT 1 (RO)   0x01 XFERCAP log2(max bytes per descriptor), default 16 (RO)
//   0x02 GENCTRL 0 (RW, no effect)
//   0x03 INTRCTRL 0: bit 0 MASTER_INT_EN and bit 3 MSIX_VECTOR_CONTROL (RW), bit 1 INT_STATUS
//        (RO: ATTNSTATUS != 0), bit 2 INT (RO: INT_STATUS && MASTER_INT_EN)
//   0x04 ATTNSTATUS (RO, clears on read): bit 0 = the channel raised an MSI/INTx interrupt
//   0x08 CBVER 0x33 (RO)   0x0c INTRDELAY 0 (RW bits 13:0, stored; no coalescing, bit 15 = 0)
//   0x0e CSSTATUS 0 (RO)   0x10 DMACAPABILITY 0x40 = FILL_BLOCK only (RO): copy, null and fill
//        are implemented; no DCA, CRC, XOR, PQ, DPS (so drivers never touch DRSCTL/LTR)
//   0x14 DCAOFFSET 0 (RO: no DCA)
// Channel 0 at 0x80 (offsets below relative to it):
//   +0x00 CHANCTRL 0 (RW, 16-bit; INT_REARM 0x1 reads back 0, see "Interrupts")
//   +0x04 CHANCMD (8-bit) commands take effect at once, so it always reads 0:
//         RESET 0x20: stop, drop outstanding work; CHANSTS = HALTED, DMACOUNT/CHAINADDR/CHANCMP/
//         CHANCTRL/CDAR = 0. CHANERR is kept (drivers clear it before the reset).
//         SUSPEND 0x04: ACTIVE/DONE/ARMED → SUSPENDED (outstanding descriptors stay queued).
//         RESUME 0x10: SUSPENDED → ACTIVE (work queued) or DONE.
//         ABORT 0x08: stop, drop outstanding descriptors; → HALTED with CHANERR unchanged.
//   +0x06 DMACOUNT (16-bit RW): the doorbell, the count of descriptors appended since CHAINADDR
//         was written (mod 2^16). Ahead of the device's own count: CHANSTS = ACTIVE at once and
//         the engine is scheduled (ignored while HALTED; kept while SUSPENDED).
//   +0x08 CHANSTS (64-bit RO): bits 63:6 the last completed descriptor, bits 2:0 the state:
//         0 ACTIVE, 1 DONE, 2 SUSPENDED, 3 HALTED (power-on and after reset), 4 ARMED
//   +0x10 CHAINADDR (64-bit RW; 32-bit halves too): unless ACTIVE, a write sets where the next
//         descriptor is fetched, restarts the device's count and DMACOUNT at 0 and sets CHANSTS
//         to exactly ARMED (4). Ignored while ACTIVE.
//   +0x18 CHANCMP (64-bit RW): completion write-back address (8 bytes, written as is)
//   +0x20 CDAR (64-bit RO): the descriptor being (or last) processed
//   +0x28 CHANERR (32-bit RW1C)   +0x2c CHANERRMSK (32-bit RW)   +0x30 DCACTRL (RW, ignored)
// 0x2000 MSI-X table, 0x3000 PBA (emulated by PciDevice).
//
// Descriptors (64 bytes, little endian): u32 size, u32 ctl, u64 src, u64 dst, u64 next, 32 bytes
// ignored. ctl bit 0 int_en, bit 3 compl_write, bit 5 null, bits 31:24 op: 0x00 copy (size bytes
// src → dst), 0x01 fill (size bytes at dst, byte j = byte j % 8 of the 64-bit pattern in src).
// null moves nothing. Snoop, fence, break, bundle, DCA and hint bits are accepted and ignored
// (the engine completes each descriptor before the next, so every fence holds). The device
// follows `next`; it never assumes descriptors are contiguous.
//
// Engine: the doorbell only marks the channel ACTIVE and posts a task to the machine's executor
// (one at a time per channel). The task processes descriptors under the state lock, in slices of
// at most kSliceBytes of data (or kSliceDescriptors descriptors), then releases the lock and
// posts itself again, so register polls, resets and other devices' work interleave with a long
// storm. Per descriptor: fetch (DMA read), check, move the data in chunks of kChunkBytes, each
// straight from host page to host page (DmaPort::Copy: source then destination checked before a
// byte moves; through the bounce buffer only for a source in many host pieces; fill always
// through it), write back CHANCMP if compl_write (address | state: ACTIVE if
// more is queued, else DONE), update CHANSTS, then raise the interrupt if int_en. A reset, abort,
// FLR or surprise removal bumps the channel epoch: a queued task of an older epoch does nothing.
//
// Errors (each halts the channel: CHANSTS HALTED with the last *completed* descriptor's address,
// the bit latched in CHANERR and CHANERR_INT, nothing more processed, and the failing descriptor
// raises no completion interrupt; the IOMMU fault itself is recorded by the DmaPort):
//   descriptor fetch from CHAINADDR faults        CHAIN_ADDR_VALUE_ERR 0x0010
//   descriptor fetch from a `next` pointer faults NEXT_ADDR_ERR        0x0004
//   descriptor address not 64-byte aligned       NEXT_DESC_ALIGN_ERR  0x0008
//   source read faults (copy)                    READ_DATA_ERR        0x0100
//   destination write faults (copy, fill)        WRITE_DATA_ERR       0x0200
//   unknown op                                   CONTROL_ERR          0x0400
//   size above 2^XFERCAP                         LENGTH_ERR           0x0800
//   completion write-back faults                 COMPLETION_ADDR_ERR  0x1000 (data was moved)
// Bus mastering off makes every DMA fail (no fault logged): the fetch error bits above. With
// CHANCTRL.ERR_COMPLETION_EN the halted state is also written back to CHANCMP; with
// CHANCTRL.ERR_INT_EN (and the bits not masked in CHANERRMSK) the channel interrupt is raised.
// READ/WRITE_DATA_ERR are what Linux's ioat_eh recovers from; copy data may be partly written
// when a destination faults after the first chunk, as on hardware.
//
// Interrupts: with MSI-X enabled, vector 0 (the channel) when INTRCTRL has MASTER_INT_EN or
// MSIX_VECTOR_CONTROL. Otherwise, with MASTER_INT_EN: ATTNSTATUS bit 0 is set and MSI vector 0
// is sent, or the INTx pin is asserted until ATTNSTATUS is read. The channel is never disarmed
// (hardware disarms until CHANCTRL.INT_REARM): extra interrupts are harmless to every driver.
//
// Locks: every register and the bounce buffer are guarded by PciDevice::state_mu_ (kDeviceState);
// DMA runs under it on the executor, as in the other models. Posting to the executor under it is
// fine (kExecutor ranks inside).
#pragma once

#include <cstdint>
#include <memory>

#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/mmio_handler.h"
#include "hw/pci_device.h"

namespace devices {

struct IoatOptions {
  uint8_t xfercap = 16;          // log2 of the largest descriptor (1..31): 64 KiB
  bool multifunction = false;    // header type bit 7 (one function of a multi-function CBDMA)
};

// Counters since power-on (tests, traces).
struct IoatStats {
  uint64_t descriptors = 0;   // completed descriptors, null ones included
  uint64_t bytes = 0;         // data bytes moved (copied or filled)
  uint64_t errors = 0;        // halts on error
  uint64_t slices = 0;        // executor tasks that ran the engine
};

class Ioat final : public hw::PciDevice, private hw::MmioHandler {
 public:
  static constexpr uint16_t kVendorId = 0x8086;
  static constexpr uint16_t kDeviceId = 0x2021;
  static constexpr uint32_t kClassCode = 0x088000;
  static constexpr uint64_t kBar0Size = 16 << 10;
  static constexpr uint32_t kMsixTableOffset = 0x2000;
  static constexpr uint32_t kMsixPbaOffset = 0x3000;
  static constexpr uint8_t kVersion = 0x33;

  // General registers.
  static constexpr uint32_t kRegChanCnt = 0x00;
  static constexpr uint32_t kRegXferCap = 0x01;
  static constexpr uint32_t kRegGenCtrl = 0x02;
  static constexpr uint32_t kRegIntrCtrl = 0x03;
  static constexpr uint32_t kRegAttnStatus = 0x04;
  static constexpr uint32_t kRegCbVer = 0x08;
  static constexpr uint32_t kRegIntrDelay = 0x0c;
  static constexpr uint32_t kRegCsStatus = 0x0e;
  static constexpr uint32_t kRegDmaCap = 0x10;
  static constexpr uint32_t kRegDcaOffset = 0x14;
  // Channel 0 registers (absolute BAR0 offsets).
  static constexpr uint32_t kChan = 0x80;
  static constexpr uint32_t kRegChanCtrl = kChan + 0x00;
  static constexpr uint32_t kRegChanCmd = kChan + 0x04;
  static constexpr uint32_t kRegDmaCount = kChan + 0x06;
  static constexpr uint32_t kRegChanSts = kChan + 0x08;
  static constexpr uint32_t kRegChainAddr = kChan + 0x10;
  static constexpr uint32_t kRegChanCmp = kChan + 0x18;
  static constexpr uint32_t kRegCdar = kChan + 0x20;
  static constexpr uint32_t kRegChanErr = kChan + 0x28;
  static constexpr uint32_t kRegChanErrMask = kChan + 0x2c;
  static constexpr uint32_t kRegDcaCtrl = kChan + 0x30;
  // Config space.
  static constexpr uint32_t kCfgDmaUncErrSts = 0x148;
  static constexpr uint32_t kCfgDmaUncErrMsk = 0x14c;
  static constexpr uint32_t kCfgDmaUncErrSev = 0x150;
  static constexpr uint32_t kCfgChanErrInt = 0x180;
  static constexpr uint32_t kCfgChanErrMskInt = 0x184;
  static constexpr uint32_t kCfgChanErrSevInt = 0x188;

  static constexpr uint8_t kIntrMasterIntEn = 0x01;
  static constexpr uint8_t kIntrIntStatus = 0x02;
  static constexpr uint8_t kIntrInt = 0x04;
  static constexpr uint8_t kIntrMsixVectorControl = 0x08;
  static constexpr uint32_t kCapFillBlock = 0x40;

  static constexpr uint16_t kChanCtrlIntRearm = 0x0001;
  static constexpr uint16_t kChanCtrlErrCompletionEn = 0x0004;
  static constexpr uint16_t kChanCtrlAnyErrAbortEn = 0x0008;
  static constexpr uint16_t kChanCtrlErrIntEn = 0x0010;

  static constexpr uint8_t kCmdSuspend = 0x04;
  static constexpr uint8_t kCmdAbort = 0x08;
  static constexpr uint8_t kCmdResume = 0x10;
  static constexpr uint8_t kCmdReset = 0x20;

  static constexpr uint64_t kStsActive = 0;
  static constexpr uint64_t kStsDone = 1;
  static constexpr uint64_t kStsSuspended = 2;
  static constexpr uint64_t kStsHalted = 3;
  static constexpr uint64_t kStsArmed = 4;
  static constexpr uint64_t kStsStateMask = 0x7;
  static constexpr uint64_t kStsAddrMask = ~uint64_t{0x3f};

  static constexpr uint32_t kErrNextAddr = 0x0004;
  static constexpr uint32_t kErrNextDescAlign = 0x0008;
  static constexpr uint32_t kErrChainAddrValue = 0x0010;
  static constexpr uint32_t kErrReadData = 0x0100;
  static constexpr uint32_t kErrWriteData = 0x0200;
  static constexpr uint32_t kErrControl = 0x0400;
  static constexpr uint32_t kErrLength = 0x0800;
  static constexpr uint32_t kErrCompletionAddr = 0x1000;

  // Descriptor format.
  static constexpr uint32_t kDescSize = 64;
  static constexpr uint32_t kCtlIntEn = 1u << 0;
  static constexpr uint32_t kCtlComplWrite = 1u << 3;
  static constexpr uint32_t kCtlFence = 1u << 4;
  static constexpr uint32_t kCtlNull = 1u << 5;
  static constexpr uint8_t kOpCopy = 0x00;
  static constexpr uint8_t kOpFill = 0x01;

  // Engine slicing (see the header comment).
  static constexpr uint64_t kChunkBytes = 64 << 10;
  static constexpr uint64_t kSliceBytes = 512 << 10;
  static constexpr uint32_t kSliceDescriptors = 256;

  // EINVAL: xfercap outside 1..31. ENOMEM: BAR or bounce buffer set-up.
  static vb::Result<vb::RefPtr<Ioat>> Create(hw::PciAddress address, const IoatOptions& options = {});

  IoatStats stats() const EXCLUDES(state_mu_);

 private:
  Ioat(hw::PciAddress address, const IoatOptions& options);

  uint64_t MmioRead(int bar, uint64_t offset, unsigned size) override;
  void MmioWrite(int bar, uint64_t offset, unsigned size, uint64_t value) override;
  void OnResetLocked() override REQUIRES(state_mu_);
  void OnSurpriseRemoval() override;

  uint64_t ReadRegisterLocked(uint32_t reg) REQUIRES(state_mu_);
  // `value` is the whole register after merging the written bytes; `written` has 1s in the bits
  // the access covered.
  void WriteRegisterLocked(uint32_t reg, uint64_t value, uint64_t written) REQUIRES(state_mu_);

  void CommandLocked(uint8_t cmd) REQUIRES(state_mu_);
  void ResetChannelLocked() REQUIRES(state_mu_);
  void SetChainAddrLocked(uint64_t addr) REQUIRES(state_mu_);
  void DoorbellLocked(uint16_t count) REQUIRES(state_mu_);
  bool WorkQueuedLocked() const REQUIRES(state_mu_) { return done_count_ != dmacount_; }
  // Posts the engine task unless one is queued (runs it inline without a machine).
  void KickLocked() REQUIRES(state_mu_);
  // One slice of work; true if the channel still has work and stayed ACTIVE.
  bool RunSliceLocked() REQUIRES(state_mu_);
  // Processes the descriptor at next_desc_; false when the channel halted.
  bool ProcessDescriptorLocked(uint64_t* cost) REQUIRES(state_mu_);
  // Moves the data of one descriptor; returns 0 or the CHANERR bit of the failure.
  uint32_t CopyLocked(uint64_t src, uint64_t dst, uint64_t size) REQUIRES(state_mu_);
  uint32_t FillLocked(uint64_t pattern, uint64_t dst, uint64_t size) REQUIRES(state_mu_);
  void HaltLocked(uint32_t err) REQUIRES(state_mu_);
  void ChannelInterruptLocked() REQUIRES(state_mu_);
  uint64_t ChanStsLocked() const REQUIRES(state_mu_) { return completed_addr_ | status_; }

  const IoatOptions options_;
  const std::unique_ptr<uint8_t[]> bounce_;  // kChunkBytes; contents guarded by state_mu_

  // ---- general registers ----
  uint8_t genctrl_ GUARDED_BY(state_mu_) = 0;
  uint8_t intrctrl_ GUARDED_BY(state_mu_) = 0;   // RW bits only
  uint32_t attnstatus_ GUARDED_BY(state_mu_) = 0;
  uint16_t intrdelay_ GUARDED_BY(state_mu_) = 0;
  // ---- channel 0 ----
  uint16_t chanctrl_ GUARDED_BY(state_mu_) = 0;
  uint16_t dmacount_ GUARDED_BY(state_mu_) = 0;     // the driver's count (register)
  uint16_t done_count_ GUARDED_BY(state_mu_) = 0;   // descriptors finished since CHAINADDR
  uint64_t status_ GUARDED_BY(state_mu_) = kStsHalted;
  uint64_t completed_addr_ GUARDED_BY(state_mu_) = 0;  // CHANSTS bits 63:6
  uint64_t chainaddr_ GUARDED_BY(state_mu_) = 0;
  uint64_t next_desc_ GUARDED_BY(state_mu_) = 0;    // where the engine fetches next
  bool first_fetch_ GUARDED_BY(state_mu_) = true;   // next_desc_ came from CHAINADDR
  uint64_t chancmp_ GUARDED_BY(state_mu_) = 0;
  uint64_t cdar_ GUARDED_BY(state_mu_) = 0;
  uint32_t chanerr_ GUARDED_BY(state_mu_) = 0;
  uint32_t chanerr_mask_ GUARDED_BY(state_mu_) = 0;
  uint32_t dcactrl_ GUARDED_BY(state_mu_) = 0;
  // ---- engine ----
  uint64_t epoch_ GUARDED_BY(state_mu_) = 0;     // bumped when queued work must be dropped
  bool scheduled_ GUARDED_BY(state_mu_) = false; // an engine task is queued for this epoch
  bool running_inline_ GUARDED_BY(state_mu_) = false;
  IoatStats stats_ GUARDED_BY(state_mu_);
};

}  // namespace devices
