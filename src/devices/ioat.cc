#include "devices/ioat.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "hw/machine.h"

namespace devices {

namespace {

// Little-endian fields of a 64-byte descriptor.
struct Descriptor {
  uint32_t size;
  uint32_t ctl;
  uint64_t src;
  uint64_t dst;
  uint64_t next;
};

Descriptor Decode(const uint8_t* raw) {
  Descriptor d;
  std::memcpy(&d.size, raw + 0, 4);
  std::memcpy(&d.ctl, raw + 4, 4);
  std::memcpy(&d.src, raw + 8, 8);
  std::memcpy(&d.dst, raw + 16, 8);
  std::memcpy(&d.next, raw + 24, 8);
  return d;
}

// The registers of BAR0 (offset, width in bytes), sorted by offset.
constexpr struct {
  uint32_t offset;
  unsigned width;
} kRegisters[] = {
    {Ioat::kRegChanCnt, 1},    {Ioat::kRegXferCap, 1},     {Ioat::kRegGenCtrl, 1},
    {Ioat::kRegIntrCtrl, 1},   {Ioat::kRegAttnStatus, 4},  {Ioat::kRegCbVer, 1},
    {Ioat::kRegIntrDelay, 2},  {Ioat::kRegCsStatus, 2},    {Ioat::kRegDmaCap, 4},
    {Ioat::kRegDcaOffset, 2},  {Ioat::kRegChanCtrl, 2},    {Ioat::kRegChanCmd, 1},
    {Ioat::kRegDmaCount, 2},   {Ioat::kRegChanSts, 8},     {Ioat::kRegChainAddr, 8},
    {Ioat::kRegChanCmp, 8},    {Ioat::kRegCdar, 8},        {Ioat::kRegChanErr, 4},
    {Ioat::kRegChanErrMask, 4}, {Ioat::kRegDcaCtrl, 4},
};

uint64_t Mask(unsigned bytes) { return bytes >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * bytes)) - 1; }

}  // namespace

Ioat::Ioat(hw::PciAddress address, const IoatOptions& options)
    : PciDevice(address, Identity{
                             .vendor_id = kVendorId,
                             .device_id = kDeviceId,
                             .class_code = kClassCode,
                             .header_type = 0,
                             .pcie_type = hw::PcieType::kEndpoint,
                             .multifunction = options.multifunction,
                             .revision = 0x04,
                             .subsystem_vendor_id = 0x8086,
                             .subsystem_id = 0x0000,
                             .interrupt_pin = 1,
                         }),
      options_(options),
      bounce_(new (std::nothrow) uint8_t[kChunkBytes]) {}

vb::Result<vb::RefPtr<Ioat>> Ioat::Create(hw::PciAddress address, const IoatOptions& options) {
  if (options.xfercap < 1 || options.xfercap > 31) return vb::Err(EINVAL, "ioat: xfercap must be 1..31");
  vb::RefPtr<Ioat> dev(new Ioat(address, options));
  if (!dev->bounce_) return vb::Err(ENOMEM, "ioat: bounce buffer");
  TRY(dev->DefineBar(0, hw::BarSpec{.kind = hw::BarKind::kMem64, .size = kBar0Size}, dev.get()));
  TRY(dev->AddPmCapability());
  TRY(dev->AddMsiCapability(hw::MsiSpec{.vectors = 1, .is_64bit = true, .per_vector_mask = false}));
  TRY(dev->AddMsixCapability(hw::MsixSpec{.table_size = 1,
                                          .table_bar = 0,
                                          .table_offset = kMsixTableOffset,
                                          .pba_bar = 0,
                                          .pba_offset = kMsixPbaOffset}));
  {
    vb::MutexLock l(dev->state_mu_);
    hw::ConfigSpace& cs = dev->config_locked();
    cs.SetW1c(kCfgDmaUncErrSts, 4, 0xffffffff);
    cs.SetWritable(kCfgDmaUncErrMsk, 4, 0xffffffff);
    cs.SetWritable(kCfgDmaUncErrSev, 4, 0xffffffff);
    cs.SetW1c(kCfgChanErrInt, 4, 0xffffffff);
    cs.SetWritable(kCfgChanErrMskInt, 4, 0xffffffff);
    cs.SetWritable(kCfgChanErrSevInt, 4, 0xffffffff);
    dev->SaveResetStateLocked();  // or an FLR would restore them read-only
  }
  return dev;
}

IoatStats Ioat::stats() const {
  vb::MutexLock l(state_mu_);
  return stats_;
}

// ---------------------------------------------------------------------------------------------
// Register access

uint64_t Ioat::MmioRead(int bar, uint64_t offset, unsigned size) {
  state_mu_.AssertHeld();
  // Each register the access overlaps contributes its bytes; reserved bytes read 0.
  uint64_t v = 0;
  for (const auto& r : kRegisters) {
    const uint64_t begin = std::max<uint64_t>(offset, r.offset);
    const uint64_t end = std::min<uint64_t>(offset + size, uint64_t{r.offset} + r.width);
    if (begin >= end) continue;
    const uint64_t reg = ReadRegisterLocked(r.offset) >> (8 * (begin - r.offset));
    v |= (reg & Mask(static_cast<unsigned>(end - begin))) << (8 * (begin - offset));
  }
  return v;
}

void Ioat::MmioWrite(int bar, uint64_t offset, unsigned size, uint64_t value) {
  state_mu_.AssertHeld();
  for (const auto& r : kRegisters) {
    const uint64_t begin = std::max<uint64_t>(offset, r.offset);
    const uint64_t end = std::min<uint64_t>(offset + size, uint64_t{r.offset} + r.width);
    if (begin >= end) continue;
    const unsigned shift = 8 * static_cast<unsigned>(begin - r.offset);
    const uint64_t written = Mask(static_cast<unsigned>(end - begin)) << shift;
    const uint64_t bytes = value >> (8 * (begin - offset));
    // Merge into the register's stored contents (not a read: ATTNSTATUS clears on read, and
    // read-only registers ignore writes anyway).
    uint64_t current = 0;
    switch (r.offset) {
      case kRegChainAddr: current = chainaddr_; break;
      case kRegChanCmp: current = chancmp_; break;
      case kRegIntrDelay: current = intrdelay_; break;
      case kRegChanCtrl: current = chanctrl_; break;
      case kRegDmaCount: current = dmacount_; break;
      case kRegChanErrMask: current = chanerr_mask_; break;
      case kRegDcaCtrl: current = dcactrl_; break;
      default: break;
    }
    WriteRegisterLocked(r.offset, (current & ~written) | ((bytes << shift) & written), written);
  }
}

uint64_t Ioat::ReadRegisterLocked(uint32_t reg) {
  switch (reg) {
    case kRegChanCnt: return 1;
    case kRegXferCap: return options_.xfercap;
    case kRegGenCtrl: return genctrl_;
    case kRegIntrCtrl: {
      uint8_t v = intrctrl_;
      if (attnstatus_) v |= kIntrIntStatus;
      if (attnstatus_ && (intrctrl_ & kIntrMasterIntEn)) v |= kIntrInt;
      return v;
    }
    case kRegAttnStatus: {
      const uint32_t v = attnstatus_;
      attnstatus_ = 0;  // read-to-clear; the INTx line drops with it
      LowerIntxLocked();
      return v;
    }
    case kRegCbVer: return kVersion;
    case kRegIntrDelay: return intrdelay_;
    case kRegCsStatus: return 0;
    case kRegDmaCap: return kCapFillBlock;
    case kRegDcaOffset: return 0;
    case kRegChanCtrl: return chanctrl_;
    case kRegChanCmd: return 0;  // commands complete at once
    case kRegDmaCount: return dmacount_;
    case kRegChanSts: return ChanStsLocked();
    case kRegChainAddr: return chainaddr_;
    case kRegChanCmp: return chancmp_;
    case kRegCdar: return cdar_;
    case kRegChanErr: return chanerr_;
    case kRegChanErrMask: return chanerr_mask_;
    case kRegDcaCtrl: return dcactrl_;
    default: return 0;
  }
}

void Ioat::WriteRegisterLocked(uint32_t reg, uint64_t value, uint64_t written) {
  switch (reg) {
    case kRegGenCtrl:
      genctrl_ = static_cast<uint8_t>(value);
      break;
    case kRegIntrCtrl:
      intrctrl_ = static_cast<uint8_t>(value) & (kIntrMasterIntEn | kIntrMsixVectorControl);
      break;
    case kRegIntrDelay:
      intrdelay_ = static_cast<uint16_t>(value) & 0x3fff;
      break;
    case kRegChanCtrl:
      chanctrl_ = static_cast<uint16_t>(value) & ~kChanCtrlIntRearm;
      break;
    case kRegChanCmd:
      CommandLocked(static_cast<uint8_t>(value));
      break;
    case kRegDmaCount:
      DoorbellLocked(static_cast<uint16_t>(value));
      break;
    case kRegChainAddr:
      if (status_ == kStsActive) break;  // the engine owns the chain while it runs
      SetChainAddrLocked(value);
      break;
    case kRegChanCmp:
      chancmp_ = value;
      break;
    case kRegChanErr:
      chanerr_ &= ~static_cast<uint32_t>(value & written);
      break;
    case kRegChanErrMask:
      chanerr_mask_ = static_cast<uint32_t>(value);
      break;
    case kRegDcaCtrl:
      dcactrl_ = static_cast<uint32_t>(value);
      break;
    default:
      break;  // read-only
  }
}

// ---------------------------------------------------------------------------------------------
// Channel state

void Ioat::CommandLocked(uint8_t cmd) {
  if (cmd & kCmdReset) {
    ResetChannelLocked();
    return;
  }
  if (cmd & kCmdAbort) {
    if (status_ != kStsHalted) {
      ++epoch_;
      scheduled_ = false;
      done_count_ = dmacount_;
      status_ = kStsHalted;
    }
    return;
  }
  if (cmd & kCmdSuspend) {
    if (status_ == kStsActive || status_ == kStsDone || status_ == kStsArmed) {
      ++epoch_;  // a queued slice does nothing; RESUME or a new chain schedules again
      scheduled_ = false;
      status_ = kStsSuspended;
    }
    return;
  }
  if (cmd & kCmdResume) {
    if (status_ == kStsSuspended) {
      status_ = WorkQueuedLocked() ? kStsActive : kStsDone;
      if (status_ == kStsActive) KickLocked();
    }
  }
}

void Ioat::ResetChannelLocked() {
  ++epoch_;
  scheduled_ = false;
  status_ = kStsHalted;
  completed_addr_ = 0;
  dmacount_ = done_count_ = 0;
  chainaddr_ = next_desc_ = 0;
  first_fetch_ = true;
  chancmp_ = 0;
  cdar_ = 0;
  chanctrl_ = 0;
  attnstatus_ = 0;
  LowerIntxLocked();
}

void Ioat::SetChainAddrLocked(uint64_t addr) {
  ++epoch_;
  scheduled_ = false;
  chainaddr_ = next_desc_ = addr;
  first_fetch_ = true;
  dmacount_ = done_count_ = 0;
  completed_addr_ = 0;
  status_ = kStsArmed;
}

void Ioat::DoorbellLocked(uint16_t count) {
  dmacount_ = count;
  if (status_ == kStsHalted || status_ == kStsSuspended) return;
  if (!WorkQueuedLocked()) return;
  status_ = kStsActive;
  KickLocked();
}

void Ioat::OnResetLocked() {
  // Function-level reset: config space is restored by PciDevice; every register to power-on.
  ResetChannelLocked();
  chanerr_ = 0;
  chanerr_mask_ = 0;
  dcactrl_ = 0;
  genctrl_ = 0;
  intrctrl_ = 0;
  intrdelay_ = 0;
}

void Ioat::OnSurpriseRemoval() {
  PciDevice::OnSurpriseRemoval();
  StateLock l(*this);
  ++epoch_;
  scheduled_ = false;
}

// ---------------------------------------------------------------------------------------------
// Engine

void Ioat::KickLocked() {
  if (scheduled_ || running_inline_) return;
  hw::Machine* machine = this->machine();
  if (!machine) {
    // Not plugged into a machine (a bare unit test): run to completion on this thread.
    running_inline_ = true;
    while (RunSliceLocked()) {
    }
    running_inline_ = false;
    return;
  }
  scheduled_ = true;
  vb::RefPtr<Ioat> self(this);
  const uint64_t epoch = epoch_;
  machine->executor().Post([self, epoch] {
    StateLock l(*self);
    if (self->epoch_ != epoch || !self->scheduled_ || self->disconnected()) return;
    if (self->RunSliceLocked()) {
      // More to do: queue behind whatever else the executor has, releasing the lock meanwhile.
      self->scheduled_ = false;
      self->KickLocked();
    } else {
      self->scheduled_ = false;
    }
  });
}

bool Ioat::RunSliceLocked() {
  ++stats_.slices;
  uint64_t bytes = 0;
  for (uint32_t n = 0; n < kSliceDescriptors && bytes < kSliceBytes; ++n) {
    if (status_ != kStsActive || !WorkQueuedLocked() || disconnected()) break;
    if (!ProcessDescriptorLocked(&bytes)) break;
  }
  return status_ == kStsActive && WorkQueuedLocked() && !disconnected();
}

bool Ioat::ProcessDescriptorLocked(uint64_t* cost) {
  const uint64_t addr = next_desc_;
  const uint32_t fetch_err = first_fetch_ ? kErrChainAddrValue : kErrNextAddr;
  cdar_ = addr;
  if (addr & (kDescSize - 1)) {
    HaltLocked(kErrNextDescAlign);
    return false;
  }
  uint8_t raw[kDescSize];
  if (!DmaReadLocked(addr, raw, sizeof raw).has_value()) {
    HaltLocked(fetch_err);
    return false;
  }
  const Descriptor d = Decode(raw);
  const uint8_t op = static_cast<uint8_t>(d.ctl >> 24);
  uint32_t err = 0;
  uint64_t moved = 0;
  if (!(d.ctl & kCtlNull)) {
    if (op != kOpCopy && op != kOpFill) err = kErrControl;
    else if (d.size > (uint64_t{1} << options_.xfercap)) err = kErrLength;
    else if (op == kOpCopy) err = CopyLocked(d.src, d.dst, d.size);
    else err = FillLocked(d.src, d.dst, d.size);
    if (!err) moved = d.size;
  }
  *cost += std::max<uint64_t>(moved, kDescSize);
  if (err) {
    HaltLocked(err);
    return false;
  }
  stats_.bytes += moved;
  ++stats_.descriptors;
  completed_addr_ = addr & kStsAddrMask;
  next_desc_ = d.next;
  first_fetch_ = false;
  ++done_count_;
  const uint64_t state = WorkQueuedLocked() ? kStsActive : kStsDone;
  if (d.ctl & kCtlComplWrite) {
    const uint64_t wb = completed_addr_ | state;
    if (!DmaWriteLocked(chancmp_, &wb, sizeof wb).has_value()) {
      HaltLocked(kErrCompletionAddr);
      return false;
    }
  }
  status_ = state;
  if (d.ctl & kCtlIntEn) ChannelInterruptLocked();
  return true;
}

uint32_t Ioat::CopyLocked(uint64_t src, uint64_t dst, uint64_t size) {
  for (uint64_t off = 0; off < size;) {
    const uint64_t n = std::min(size - off, kChunkBytes);
    hw::DmaAccess failed;
    auto r = DmaCopyLocked(src + off, dst + off, n, &failed);
    if (!r.has_value()) {
      if (r.error().errnum != ENOTSUP) return failed == hw::DmaAccess::kRead ? kErrReadData : kErrWriteData;
      // A source in many host pieces: through the bounce buffer.
      if (!DmaReadLocked(src + off, bounce_.get(), n).has_value()) return kErrReadData;
      if (!DmaWriteLocked(dst + off, bounce_.get(), n).has_value()) return kErrWriteData;
    }
    off += n;
  }
  return 0;
}

uint32_t Ioat::FillLocked(uint64_t pattern, uint64_t dst, uint64_t size) {
  // Byte j of the fill is byte j % 8 of the little-endian pattern; chunks are multiples of 8,
  // so every chunk starts at pattern byte 0.
  const uint64_t n0 = std::min(size, kChunkBytes);
  for (uint64_t i = 0; i < n0; i += 8) std::memcpy(bounce_.get() + i, &pattern, std::min<uint64_t>(8, n0 - i));
  for (uint64_t off = 0; off < size;) {
    const uint64_t n = std::min(size - off, kChunkBytes);
    if (!DmaWriteLocked(dst + off, bounce_.get(), n).has_value()) return kErrWriteData;
    off += n;
  }
  return 0;
}

void Ioat::HaltLocked(uint32_t err) {
  ++stats_.errors;
  chanerr_ |= err;
  hw::ConfigSpace& cs = config_locked();
  cs.Set32(kCfgChanErrInt, cs.Get32(kCfgChanErrInt) | (err & ~cs.Get32(kCfgChanErrMskInt)));
  status_ = kStsHalted;
  if ((chanctrl_ & kChanCtrlErrCompletionEn) && err != kErrCompletionAddr) {
    const uint64_t wb = ChanStsLocked();
    if (!DmaWriteLocked(chancmp_, &wb, sizeof wb).has_value()) chanerr_ |= kErrCompletionAddr;
  }
  if ((chanctrl_ & kChanCtrlErrIntEn) && (err & ~chanerr_mask_)) ChannelInterruptLocked();
}

void Ioat::ChannelInterruptLocked() {
  if (msix_enabled_locked()) {
    if (intrctrl_ & (kIntrMasterIntEn | kIntrMsixVectorControl)) SignalMsixLocked(0);
    return;
  }
  if (!(intrctrl_ & kIntrMasterIntEn)) return;
  attnstatus_ |= 1;
  if (msi_enabled_locked()) SignalMsiLocked(0);
  else RaiseIntxLocked();
}

}  // namespace devices
