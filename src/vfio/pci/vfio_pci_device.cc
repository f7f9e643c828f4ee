#include "vfio/pci/vfio_pci_device.h"

#include <linux/vfio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "hw/pci_regs.h"

namespace vfio::pci {

namespace p = hw::pci;

namespace {
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kOffsetMask = (uint64_t{1} << kOffsetShift) - 1;

bool Overlaps(uint32_t off, unsigned size, uint32_t reg, unsigned reg_size) {
  return off < reg + reg_size && reg < off + size;
}

uint32_t LoadLe(const uint8_t* b, unsigned n) {
  uint32_t v = 0;
  for (unsigned i = 0; i < n; ++i) v |= uint32_t{b[i]} << (8 * i);
  return v;
}
void StoreLe(uint8_t* b, unsigned n, uint32_t v) {
  for (unsigned i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
}

// The largest naturally aligned access of at most 4 bytes at `pos` with `left` bytes to go.
unsigned PieceSize(uint64_t pos, size_t left) {
  if (left >= 4 && pos % 4 == 0) return 4;
  if (left >= 2 && pos % 2 == 0) return 2;
  return 1;
}

uint32_t CeilLog2(uint32_t n) {
  uint32_t l = 0;
  while ((1u << l) < n) ++l;
  return l;
}
}  // namespace

VfioPciDevice::VfioPciDevice(hw::PciDevice& hw, vb::RefPtr<DevSet> set, const VfioPciOptions& options)
    : hw_(&hw), set_(std::move(set)), options_(options), router_(hw) {}

VfioPciDevice::~VfioPciDevice() = default;

// ---------------------------------------------------------------------------------------------
// Hardware state

void VfioPciDevice::WriteHw(uint32_t off, unsigned size, uint32_t value) {
  // Config writes within the function's config space cannot fail.
  (void)hw_->ConfigWrite(off, size, value);
}

std::vector<uint8_t> VfioPciDevice::SaveHardware() const { return hw_->ConfigSnapshot(); }

void VfioPciDevice::RestoreHardwareLocked(const std::vector<uint8_t>& s) {
  auto get = [&](uint32_t off, unsigned n) { return LoadLe(s.data() + off, n); };
  for (uint32_t off = p::kBar0; off < p::kBar0 + 4 * p::kType0Bars; off += 4) WriteHw(off, 4, get(off, 4));
  WriteHw(p::kCacheLineSize, 2, get(p::kCacheLineSize, 2));
  WriteHw(p::kInterruptLine, 1, get(p::kInterruptLine, 1));
  if (auto e = hw_->pcie_offset()) {
    WriteHw(*e + p::kExpDevCtl, 2, get(*e + p::kExpDevCtl, 2) & ~p::kExpDevCtlBcrFlr);
    WriteHw(*e + p::kExpLnkCtl, 2, get(*e + p::kExpLnkCtl, 2));
    WriteHw(*e + p::kExpDevCtl2, 2, get(*e + p::kExpDevCtl2, 2));
    WriteHw(*e + p::kExpLnkCtl2, 2, get(*e + p::kExpLnkCtl2, 2));
  }
  if (auto a = hw_->acs_offset(); a && *a + p::kAcsCtrl + 2 <= s.size())
    WriteHw(*a + p::kAcsCtrl, 2, get(*a + p::kAcsCtrl, 2));
  if (auto m = hw_->msi_offset()) {
    const bool is64 = hw_->msi_spec()->is_64bit;
    WriteHw(*m + p::kMsiAddressLo, 4, get(*m + p::kMsiAddressLo, 4));
    if (is64) WriteHw(*m + p::kMsiAddressHi, 4, get(*m + p::kMsiAddressHi, 4));
    const uint32_t data = is64 ? p::kMsiData64 : p::kMsiData32;
    WriteHw(*m + data, 2, get(*m + data, 2));
    if (hw_->msi_spec()->per_vector_mask) WriteHw(*m + data + 4, 4, get(*m + data + 4, 4));
  }
  WriteHw(p::kCommand, 2, get(p::kCommand, 2));
  ApplyIrqHardwareLocked();
}

void VfioPciDevice::SetMsixEntryMasked(uint32_t vector, bool masked) {
  const hw::MsixSpec& s = *hw_->msix_spec();
  const uint32_t ctrl = masked ? p::kMsixEntryCtrlMaskBit : 0;
  // The table is reached through the BAR, which needs memory decode: enable it around the
  // access, as the kernel does when it programs the table (vfio_pci_memory_lock_and_enable).
  const uint16_t cmd = hw_->command();
  if (!(cmd & p::kCommandMemory)) WriteHw(p::kCommand, 2, cmd | p::kCommandMemory);
  (void)hw_->BarWrite(s.table_bar, uint64_t{s.table_offset} + vector * p::kMsixEntrySize + p::kMsixEntryVectorCtrl,
                      &ctrl, 4);
  if (!(cmd & p::kCommandMemory)) WriteHw(p::kCommand, 2, cmd);
}

void VfioPciDevice::ApplyIrqHardwareLocked() {
  if (auto m = hw_->msi_offset()) {
    uint16_t flags = static_cast<uint16_t>(hw_->ConfigRead(*m + p::kMsiFlags, 2).value_or(0));
    flags &= ~(p::kMsiFlagsEnable | p::kMsiFlagsQsize);
    if (mode_ == IrqMode::kMsi) flags |= p::kMsiFlagsEnable | static_cast<uint16_t>(CeilLog2(num_vectors_) << 4);
    WriteHw(*m + p::kMsiFlags, 2, flags);
  }
  if (auto x = hw_->msix_offset()) {
    const bool on = mode_ == IrqMode::kMsix;
    uint16_t flags = static_cast<uint16_t>(hw_->ConfigRead(*x + p::kMsixFlags, 2).value_or(0));
    flags &= ~(p::kMsixFlagsEnable | p::kMsixFlagsMaskAll);
    if (on) flags |= p::kMsixFlagsEnable;
    // Entries first while disabled, so nothing fires half-programmed.
    if (on) WriteHw(*x + p::kMsixFlags, 2, flags | p::kMsixFlagsMaskAll);
    for (uint32_t v = 0; v < hw_->msix_spec()->table_size; ++v)
      SetMsixEntryMasked(v, !(on && router_.HasVectorTrigger(MsiKind::kMsix, v)));
    WriteHw(*x + p::kMsixFlags, 2, flags);
  }
}

bool VfioPciDevice::ResetMethodAvailable() const {
  if (hw_->flr_capable()) return true;
  if (auto pm = hw_->pm_offset()) {
    const uint32_t ctl = hw_->ConfigRead(*pm + p::kPmCtrl, 2).value_or(p::kPmCtrlNoSoftReset);
    if (!(ctl & p::kPmCtrlNoSoftReset)) return true;  // D3hot → D0 resets the function
  }
  // A secondary bus reset is a function reset only when this is the one function on its bus.
  hw::PciBus* bus = hw_->bus();
  return bus && !bus->is_root() && bus->devices().size() == 1;
}

void VfioPciDevice::HardResetLocked() {
  std::vector<uint8_t> saved = SaveHardware();
  hw_->FunctionReset();
  RestoreHardwareLocked(saved);
  needs_reset_ = false;
}

// ---------------------------------------------------------------------------------------------
// Open / close

vb::Result<void> VfioPciDevice::OpenLocked() {
  // Enable the device: decode on for the BARs it has, bus mastering off until the user sets it.
  uint16_t cmd = hw_->command() & ~p::kCommandMaster;
  for (int i = 0; i < hw::PciDevice::kMaxBars; ++i) {
    const hw::BarKind k = hw_->bar(i).kind;
    if (k == hw::BarKind::kIo) cmd |= p::kCommandIo;
    else if (k != hw::BarKind::kNone) cmd |= p::kCommandMemory;
  }
  WriteHw(p::kCommand, 2, cmd);
  mode_ = IrqMode::kNone;
  num_vectors_ = 0;
  reset_works_ = ResetMethodAvailable();
  if (reset_works_) HardResetLocked();
  saved_at_open_ = SaveHardware();
  vconfig_.Build(*hw_, saved_at_open_);
  router_.Clear();
  hw_->SetInterruptSink(&router_);
  open_ = true;
  return vb::Ok();
}

void VfioPciDevice::DisableIrqsLocked() {
  if (mode_ == IrqMode::kMsi) DisableMsiLocked(MsiKind::kMsi);
  if (mode_ == IrqMode::kMsix) DisableMsiLocked(MsiKind::kMsix);
  if (mode_ == IrqMode::kIntx) router_.DisableIntx();
  mode_ = IrqMode::kNone;
}

std::unique_ptr<IoeventfdSet> VfioPciDevice::CloseLocked() {
  // First, as the kernel's disable path does: from here on no ioeventfd of this open writes.
  std::unique_ptr<IoeventfdSet> ioeventfds = std::move(ioeventfds_);
  LowPowerExitLocked();  // leaves low power without signalling the wakeup eventfd
  DisableIrqsLocked();
  hw_->SetInterruptSink(nullptr);
  router_.Clear();
  needs_reset_ = true;
  RestoreHardwareLocked(saved_at_open_);
  WriteHw(p::kCommand, 2, p::kCommandIntxDisable);
  if (reset_works_) HardResetLocked();
  RestoreHardwareLocked(saved_at_open_);
  WriteHw(p::kCommand, 2, hw_->command() & ~p::kCommandMaster);
  open_ = false;
  return ioeventfds;
}

// ---------------------------------------------------------------------------------------------
// Runtime PM (6.1: vfio_pci_core_pm_entry/_exit, vfio_pci_core_runtime_resume)

vb::Result<void> VfioPciDevice::LowPowerEntryLocked(EventFd wake) {
  if (pm_engaged_) return vb::Err(EINVAL, "low power: already entered");
  pm_engaged_ = true;
  pm_wake_ = std::move(wake);
  return vb::Ok();
}

void VfioPciDevice::LowPowerExitLocked() {
  pm_engaged_ = false;
  pm_wake_.Reset();
}

void VfioPciDevice::RuntimeResumeLocked() {
  if (!pm_engaged_ || !pm_wake_.valid()) return;
  pm_wake_.Signal();
  LowPowerExitLocked();
}

// ---------------------------------------------------------------------------------------------
// Info

DeviceInfo VfioPciDevice::GetInfoLocked() const {
  return DeviceInfo{.flags = VFIO_DEVICE_FLAGS_PCI | (reset_works_ ? VFIO_DEVICE_FLAGS_RESET : 0u),
                    .num_regions = kNumRegions,
                    .num_irqs = kNumIrqs};
}

bool VfioPciDevice::BarMmappable(int bar) const {
  const hw::BarSpec& b = hw_->bar(bar);
  if (b.kind == hw::BarKind::kNone || b.kind == hw::BarKind::kIo) return false;
  if (hw_->bar_fd(bar) < 0 && !options_.mmap_register_bars) return false;
  if (b.size >= kPageSize) return true;
  // A sub-page BAR is mapped when it starts a page (6.1 reserves the rest of that page so no
  // other BAR can share it): the page-aligned address the BAR holds in hardware decides.
  auto lo = hw_->ConfigRead(static_cast<uint32_t>(p::kBar0 + 4 * bar), 4);
  return lo && (*lo & ~0xfu & (kPageSize - 1)) == 0;
}

vb::Result<RegionInfo> VfioPciDevice::GetRegionInfo(uint32_t index) const {
  RegionInfo info;
  info.offset = RegionOffset(index);
  if (index < kRegionRom) {
    const hw::BarSpec& b = hw_->bar(static_cast<int>(index));
    if (b.kind == hw::BarKind::kNone) return info;  // unimplemented: size 0, flags 0
    info.size = b.size;
    info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    if (BarMmappable(static_cast<int>(index))) {
      info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
      // The whole BAR, table included, may be mapped (the kernel's behaviour since 4.16).
      const auto& x = hw_->msix_spec();
      info.msix_mappable = x && x->table_bar == index;
    }
    return info;
  }
  switch (index) {
    case kRegionRom:
      return info;  // no expansion ROM in the simulated platform: size 0, flags 0
    case kRegionConfig:
      info.size = hw_->config_size();
      info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      return info;
    case kRegionVga:
      return vb::Err(EINVAL, "vfio-pci: not a VGA device");
    default:
      return vb::Err(EINVAL, "vfio-pci: no such region");
  }
}

vb::Result<IrqInfo> VfioPciDevice::GetIrqInfo(uint32_t index) const {
  IrqInfo info{.flags = VFIO_IRQ_INFO_EVENTFD, .count = 0};
  switch (index) {
    case kIrqIntx:
      info.count = hw_->interrupt_pin() ? 1 : 0;
      info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
      return info;
    case kIrqMsi:
      info.count = hw_->msi_spec() ? hw_->msi_spec()->vectors : 0;
      break;
    case kIrqMsix:
      info.count = hw_->msix_spec() ? hw_->msix_spec()->table_size : 0;
      break;
    case kIrqErr:
      if (!hw_->is_pcie()) return vb::Err(EINVAL, "vfio-pci: ERR irq needs PCI Express");
      info.count = 1;
      break;
    case kIrqReq:
      info.count = 1;
      break;
    default:
      return vb::Err(EINVAL, "vfio-pci: no such irq index");
  }
  info.flags |= VFIO_IRQ_INFO_NORESIZE;
  return info;
}

// ---------------------------------------------------------------------------------------------
// SET_IRQS (§6.7)

vb::Result<int> VfioPciDevice::SetIrqsLocked(const SetIrqsRequest& req) {
  switch (req.index) {
    case kIrqIntx: return SetIntxLocked(req);
    case kIrqMsi: return SetMsiLocked(req, MsiKind::kMsi);
    case kIrqMsix: return SetMsiLocked(req, MsiKind::kMsix);
    case kIrqErr:
      if (!hw_->is_pcie()) return vb::Err(EINVAL, "set_irqs: ERR needs PCI Express");
      return SetErrReqLocked(req);
    case kIrqReq: return SetErrReqLocked(req);
    default: return vb::Err(EINVAL, "set_irqs: no such index");
  }
}

namespace {
uint32_t Action(const SetIrqsRequest& r) { return r.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK; }
uint32_t Data(const SetIrqsRequest& r) { return r.flags & VFIO_IRQ_SET_DATA_TYPE_MASK; }
bool BoolTrue(const SetIrqsRequest& r, size_t i = 0) { return i < r.bools.size() && r.bools[i]; }
}  // namespace

vb::Result<int> VfioPciDevice::SetIntxLocked(const SetIrqsRequest& req) {
  const bool active = mode_ == IrqMode::kIntx;
  switch (Action(req)) {
    case VFIO_IRQ_SET_ACTION_MASK:
    case VFIO_IRQ_SET_ACTION_UNMASK: {
      if (!active || req.start != 0 || req.count != 1) return vb::Err(EINVAL, "set_irqs: INTx not active");
      const bool unmask = Action(req) == VFIO_IRQ_SET_ACTION_UNMASK;
      if (Data(req) == VFIO_IRQ_SET_DATA_EVENTFD) {
        if (!unmask) return vb::Err(ENOTTY, "set_irqs: INTx mask by eventfd is not implemented");
        const int32_t fd = req.fds.empty() ? -1 : req.fds[0];
        if (fd < 0) {
          router_.SetIntxUnmaskFd(EventFd());
          return 0;
        }
        router_.SetIntxUnmaskFd(TRY(EventFd::FromUserFd(fd)));
        return 0;
      }
      if (Data(req) == VFIO_IRQ_SET_DATA_NONE || BoolTrue(req)) {
        if (unmask) router_.UnmaskIntx();
        else router_.MaskIntx();
      }
      return 0;
    }
    case VFIO_IRQ_SET_ACTION_TRIGGER: {
      if (active && req.count == 0 && Data(req) == VFIO_IRQ_SET_DATA_NONE) {
        router_.DisableIntx();
        mode_ = IrqMode::kNone;
        return 0;
      }
      if (!(active || mode_ == IrqMode::kNone) || req.start != 0 || req.count != 1)
        return vb::Err(EINVAL, "set_irqs: INTx trigger needs start 0, count 1 and no MSI/MSI-X");
      if (Data(req) == VFIO_IRQ_SET_DATA_EVENTFD) {
        const int32_t fd = req.fds.empty() ? -1 : req.fds[0];
        EventFd e;
        if (fd >= 0) e = TRY(EventFd::FromUserFd(fd));
        if (!hw_->interrupt_pin()) return vb::Err(ENODEV, "set_irqs: no INTx line");
        router_.SetIntxTrigger(std::move(e));
        if (!active) {
          router_.SetVirqDisabled(vconfig_.Get(p::kCommand, 2) & p::kCommandIntxDisable);
          router_.EnableIntx();
          mode_ = IrqMode::kIntx;
        }
        return 0;
      }
      if (!active) return vb::Err(EINVAL, "set_irqs: INTx loopback while INTx is off");
      if (Data(req) == VFIO_IRQ_SET_DATA_NONE || BoolTrue(req)) router_.LoopbackIntx();
      return 0;
    }
  }
  return vb::Err(ENOTTY, "set_irqs: unsupported action");
}

vb::Result<int> VfioPciDevice::EnableMsiLocked(MsiKind kind, uint32_t nvec) {
  if (options_.max_vectors && nvec > options_.max_vectors) return static_cast<int>(options_.max_vectors);
  router_.SetVectorCount(kind, nvec);
  num_vectors_ = nvec;
  mode_ = kind == MsiKind::kMsi ? IrqMode::kMsi : IrqMode::kMsix;
  ApplyIrqHardwareLocked();
  return 0;
}

void VfioPciDevice::DisableMsiLocked(MsiKind kind) {
  router_.SetVectorCount(kind, 0);
  num_vectors_ = 0;
  mode_ = IrqMode::kNone;
  ApplyIrqHardwareLocked();
}

vb::Result<void> VfioPciDevice::SetVectorLocked(MsiKind kind, uint32_t vector, int32_t fd) {
  if (vector >= num_vectors_) return vb::Err(EINVAL, "set_irqs: vector beyond those allocated");
  router_.SetVectorTrigger(kind, vector, EventFd());
  if (kind == MsiKind::kMsix) SetMsixEntryMasked(vector, true);
  if (fd < 0) return vb::Ok();
  router_.SetVectorTrigger(kind, vector, TRY(EventFd::FromUserFd(fd)));
  // Unmasking releases a message that arrived while the vector had no trigger.
  if (kind == MsiKind::kMsix) SetMsixEntryMasked(vector, false);
  return vb::Ok();
}

vb::Result<int> VfioPciDevice::SetMsiLocked(const SetIrqsRequest& req, MsiKind kind) {
  if (Action(req) != VFIO_IRQ_SET_ACTION_TRIGGER) return vb::Err(ENOTTY, "set_irqs: MSI/MSI-X masking is not supported");
  const IrqMode want = kind == MsiKind::kMsi ? IrqMode::kMsi : IrqMode::kMsix;
  const bool active = mode_ == want;
  if (active && req.count == 0 && Data(req) == VFIO_IRQ_SET_DATA_NONE) {
    DisableMsiLocked(kind);
    return 0;
  }
  if (!(active || mode_ == IrqMode::kNone)) return vb::Err(EINVAL, "set_irqs: another interrupt mode is active");
  if (Data(req) == VFIO_IRQ_SET_DATA_EVENTFD) {
    const bool enabled_here = !active;
    if (enabled_here) {
      const int avail = TRY(EnableMsiLocked(kind, req.start + req.count));
      if (avail > 0) return avail;
    }
    for (uint32_t j = 0; j < req.count; ++j) {
      auto r = SetVectorLocked(kind, req.start + j, j < req.fds.size() ? req.fds[j] : -1);
      if (!r.has_value()) {
        // Undo what this call assigned (and the enable, if it did that).
        for (uint32_t k = 0; k < j; ++k) (void)SetVectorLocked(kind, req.start + k, -1);
        if (enabled_here) DisableMsiLocked(kind);
        return std::unexpected(r.error());
      }
    }
    return 0;
  }
  if (!active || req.start + req.count > num_vectors_) return vb::Err(EINVAL, "set_irqs: MSI/MSI-X loopback while off");
  for (uint32_t i = 0; i < req.count; ++i)
    if (Data(req) == VFIO_IRQ_SET_DATA_NONE || BoolTrue(req, i)) router_.LoopbackVector(kind, req.start + i);
  return 0;
}

vb::Result<int> VfioPciDevice::SetErrReqLocked(const SetIrqsRequest& req) {
  if (Action(req) != VFIO_IRQ_SET_ACTION_TRIGGER) return vb::Err(ENOTTY, "set_irqs: ERR/REQ take TRIGGER only");
  if (req.start != 0 || req.count > 1) return vb::Err(EINVAL, "set_irqs: ERR/REQ take start 0, count <= 1");
  const bool err = req.index == kIrqErr;
  const bool has = err ? router_.has_err() : router_.has_req();
  switch (Data(req)) {
    case VFIO_IRQ_SET_DATA_NONE:
      if (!has) break;
      if (req.count) {
        err ? router_.SignalErr() : router_.SignalReq();
      } else {
        err ? router_.SetErr(EventFd()) : router_.SetReq(EventFd());
      }
      return 0;
    case VFIO_IRQ_SET_DATA_BOOL:
      if (!req.count) return vb::Err(EINVAL, "set_irqs: BOOL with count 0");
      if (BoolTrue(req) && has) err ? router_.SignalErr() : router_.SignalReq();
      return 0;
    case VFIO_IRQ_SET_DATA_EVENTFD: {
      if (!req.count) return vb::Err(EINVAL, "set_irqs: EVENTFD with count 0");
      const int32_t fd = req.fds.empty() ? -1 : req.fds[0];
      if (fd == -1) {
        err ? router_.SetErr(EventFd()) : router_.SetReq(EventFd());
      } else if (fd >= 0) {
        EventFd e = TRY(EventFd::FromUserFd(fd));
        err ? router_.SetErr(std::move(e)) : router_.SetReq(std::move(e));
      }
      return 0;  // other negative fds are ignored
    }
  }
  return vb::Err(EINVAL, "set_irqs: nothing to signal or clear");
}

// ---------------------------------------------------------------------------------------------
// Config space through the region (§6.5, §6.6)

vb::Result<uint32_t> VfioPciDevice::ConfigReadPieceLocked(uint32_t off, unsigned size) {
  uint32_t hwv = 0;
  if (vconfig_.NeedsHardware(off, size)) hwv = TRY(hw_->ConfigRead(off, size));
  return vconfig_.Merge(off, size, hwv);
}

vb::Result<void> VfioPciDevice::ConfigWritePieceLocked(uint32_t off, unsigned size, uint32_t value) {
  const uint32_t pass = vconfig_.ApplyWrite(off, size, value);
  if (pass) {
    const uint32_t hwv = TRY(hw_->ConfigRead(off, size));
    TRY(hw_->ConfigWrite(off, size, (hwv & ~pass & ~vconfig_.HardwareW1c(off, size)) | (value & pass)));
  }
  if (Overlaps(off, size, p::kCommand, 2))
    router_.SetVirqDisabled(vconfig_.Get(p::kCommand, 2) & p::kCommandIntxDisable);
  if (Overlaps(off, size, p::kBar0, 4 * p::kType0Bars) || Overlaps(off, size, p::kRomAddress, 4))
    vconfig_.NormalizeBars();
  if (const uint8_t m = vconfig_.msi(); m && Overlaps(off, size, m + p::kMsiFlags, 2)) {
    // Multiple Message Enable never exceeds Multiple Message Capable.
    uint16_t flags = static_cast<uint16_t>(vconfig_.Get(m + p::kMsiFlags, 2));
    const uint16_t qmax = (flags & p::kMsiFlagsQmask) >> 1;
    if (((flags & p::kMsiFlagsQsize) >> 4) > qmax)
      vconfig_.Set(m + p::kMsiFlags, 2, (flags & ~p::kMsiFlagsQsize) | static_cast<uint16_t>(qmax << 4));
  }
  if (const uint8_t e = vconfig_.pcie(); e && Overlaps(off, size, e + p::kExpDevCtl, 2)) {
    const uint16_t ctl = static_cast<uint16_t>(vconfig_.Get(e + p::kExpDevCtl, 2));
    if (ctl & p::kExpDevCtlBcrFlr) {
      // "Initiate FLR" reads as zero; writing it resets the function if it can.
      vconfig_.Set(e + p::kExpDevCtl, 2, ctl & ~p::kExpDevCtlBcrFlr);
      if (hw_->flr_capable()) HardResetLocked();
    }
  }
  return vb::Ok();
}

vb::Result<size_t> VfioPciDevice::ConfigRwLocked(uint8_t* buf, size_t count, uint64_t pos, bool write) {
  const uint64_t size = vconfig_.size();
  if (pos >= size || count > size - pos) return vb::Err(EFAULT, "config: outside config space");
  size_t done = 0;
  while (done < count) {
    const uint32_t off = static_cast<uint32_t>(pos + done);
    const unsigned n = PieceSize(off, count - done);
    if (write) TRY(ConfigWritePieceLocked(off, n, LoadLe(buf + done, n)));
    else StoreLe(buf + done, n, TRY(ConfigReadPieceLocked(off, n)));
    done += n;
  }
  return done;
}

// ---------------------------------------------------------------------------------------------
// BARs through the region

std::pair<uint64_t, uint64_t> VfioPciDevice::MsixTableSpan(int bar) const {
  const auto& x = hw_->msix_spec();
  if (!x || x->table_bar != bar) return {0, 0};
  return {x->table_offset, x->table_offset + uint64_t{x->table_size} * p::kMsixEntrySize};
}

vb::Result<size_t> VfioPciDevice::BarRwLocked(int bar, uint8_t* buf, size_t count, uint64_t pos, bool write) {
  const hw::BarSpec& b = hw_->bar(bar);
  if (b.kind == hw::BarKind::kNone) return vb::Err(EINVAL, "bar: not implemented");
  if (pos >= b.size) return vb::Err(EINVAL, "bar: offset beyond the BAR");
  count = static_cast<size_t>(std::min<uint64_t>(count, b.size - pos));
  const uint16_t decode = b.kind == hw::BarKind::kIo ? p::kCommandIo : p::kCommandMemory;
  if (!(hw_->command() & decode)) return vb::Err(EIO, "bar: decode disabled");

  // The MSI-X table is the kernel's: its bytes read as all-ones and writes to it are dropped.
  const auto [tbl_lo, tbl_hi] = MsixTableSpan(bar);
  uint64_t pba_lo = 0, pba_hi = 0;
  if (const auto& x = hw_->msix_spec()) {
    if (x->pba_bar == bar) {
      pba_lo = x->pba_offset;
      pba_hi = pba_lo + (uint64_t{x->table_size} + 63) / 64 * 8;
    }
  }
  // Plain memory goes in runs that stop at the MSI-X structures; register BARs take naturally
  // aligned accesses of at most 4 bytes, as the 6.1 kernel issues them.
  const bool memory = hw_->bar_host(bar) != nullptr;
  size_t done = 0;
  while (done < count) {
    const uint64_t at = pos + done;
    size_t n;
    if (memory) {
      uint64_t end = pos + count;
      for (uint64_t edge : {tbl_lo, tbl_hi, pba_lo, pba_hi})
        if (edge > at && edge < end) end = edge;
      if (at >= pba_lo && at < pba_hi) end = std::min<uint64_t>(end, at + PieceSize(at, end - at));
      n = static_cast<size_t>(end - at);
    } else {
      n = PieceSize(at, count - done);
    }
    if (at >= tbl_lo && at < tbl_hi) {
      n = static_cast<size_t>(std::min<uint64_t>(n, tbl_hi - at));
      if (!write) std::memset(buf + done, 0xff, n);
    } else if (write) {
      TRY(hw_->BarWrite(bar, at, buf + done, n));
    } else {
      TRY(hw_->BarRead(bar, at, buf + done, n));
    }
    done += n;
  }
  return done;
}

vb::Result<size_t> VfioPciDevice::ReadLocked(void* buf, size_t count, uint64_t offset) {
  if (count == 0) return size_t{0};
  const uint64_t index = offset >> kOffsetShift;
  const uint64_t pos = offset & kOffsetMask;
  if (index >= kNumRegions) return vb::Err(EINVAL, "read: no such region");
  RuntimeResumeLocked();
  auto* b = static_cast<uint8_t*>(buf);
  if (index == kRegionConfig) return ConfigRwLocked(b, count, pos, false);
  if (index < kRegionRom) return BarRwLocked(static_cast<int>(index), b, count, pos, false);
  return vb::Err(EINVAL, index == kRegionRom ? "read: no ROM" : "read: not a VGA device");
}

vb::Result<size_t> VfioPciDevice::WriteLocked(const void* buf, size_t count, uint64_t offset) {
  if (count == 0) return size_t{0};
  const uint64_t index = offset >> kOffsetShift;
  const uint64_t pos = offset & kOffsetMask;
  if (index >= kNumRegions) return vb::Err(EINVAL, "write: no such region");
  RuntimeResumeLocked();
  // The write paths never store through the buffer.
  auto* b = const_cast<uint8_t*>(static_cast<const uint8_t*>(buf));
  if (index == kRegionConfig) return ConfigRwLocked(b, count, pos, true);
  if (index < kRegionRom) return BarRwLocked(static_cast<int>(index), b, count, pos, true);
  return vb::Err(EINVAL, index == kRegionRom ? "write: ROM is read-only" : "write: not a VGA device");
}

vb::Result<MmapTarget> VfioPciDevice::Mmap(uint64_t offset, uint64_t length) const {
  const uint64_t index = offset >> kOffsetShift;
  const uint64_t pos = offset & kOffsetMask;
  if (index >= kRegionRom) return vb::Err(EINVAL, "mmap: only BARs can be mapped");
  const int bar = static_cast<int>(index);
  if (!BarMmappable(bar)) return vb::Err(EINVAL, "mmap: BAR is not mmappable");
  const uint64_t limit = (hw_->bar(bar).size + kPageSize - 1) & ~(kPageSize - 1);
  if (length == 0 || pos > limit || length > limit - pos) return vb::Err(EINVAL, "mmap: beyond the BAR");
  // Register pages: the UAPI layer maps them with no access and sends each access to MmioAccess.
  if (hw_->bar_fd(bar) < 0) return MmapTarget{.trapped = true};
  // fd_offset is where the region (the BAR) starts in the file: the UAPI layer adds the offset
  // within the region itself. Returning `pos` here mapped 2 * pos (found by the fuzzer: SIGBUS past
  // the BAR's memfd, and the wrong bytes below it).
  return MmapTarget{.fd = hw_->bar_fd(bar), .fd_offset = 0};
}

vb::Result<void> VfioPciDevice::MmioAccessLocked(uint64_t offset, void* data, unsigned size, bool write) const {
  const uint64_t index = offset >> kOffsetShift;
  const uint64_t pos = offset & kOffsetMask;
  if (index >= kRegionRom) return vb::Err(EINVAL, "mmio: not a BAR");
  const int bar = static_cast<int>(index);
  const hw::BarSpec& b = hw_->bar(bar);
  if (pos >= b.size) {
    // The reserved rest of a sub-page BAR's page: nothing decodes it.
    if (!write) std::memset(data, 0xff, size);
    return vb::Ok();
  }
  if (size > b.size - pos) return vb::Err(EINVAL, "mmio: access runs past the BAR");
  // 6.1's fault handler: SIGBUS while the device is in low power (pm_runtime_engaged), without
  // waking it (only ioctls and read/write wake it).
  if (pm_engaged_) return vb::Err(EIO, "mmio: device in low power");
  // The MSI-X table stays the kernel's, as through read/write: all-ones, writes dropped.
  const auto [tbl_lo, tbl_hi] = MsixTableSpan(bar);
  if (pos < tbl_hi && pos + size > tbl_lo) {
    if (!write) std::memset(data, 0xff, size);
    return vb::Ok();
  }
  // One access of the CPU's width; EIO (memory decode off) becomes the SIGBUS of 6.1's fault path.
  return write ? hw_->BarWrite(bar, pos, data, size) : hw_->BarRead(bar, pos, data, size);
}

bool VfioPciDevice::MmioWriteWideLocked(uint64_t offset, const void* data, unsigned size) const {
  if (pm_engaged_) return false;  // split: the first piece answers SIGBUS
  const uint64_t index = offset >> kOffsetShift;
  const uint64_t pos = offset & kOffsetMask;
  if (index >= kRegionRom) return false;
  const auto [tbl_lo, tbl_hi] = MsixTableSpan(static_cast<int>(index));
  if (pos < tbl_hi && pos + size > tbl_lo) return false;
  return hw_->BarWriteWide(static_cast<int>(index), pos, data, size);
}

// ---------------------------------------------------------------------------------------------
// ioeventfds

vb::Result<void> VfioPciDevice::IoeventfdLocked(const IoeventfdRequest& req) {
  const uint64_t index = req.offset >> kOffsetShift;
  const uint64_t pos = req.offset & kOffsetMask;
  if (index >= kRegionRom) return vb::Err(EINVAL, "ioeventfd: only BARs");
  const int bar = static_cast<int>(index);
  const hw::BarSpec& b = hw_->bar(bar);
  const uint64_t len = b.kind == hw::BarKind::kNone ? 0 : b.size;
  if (pos + req.width > len) return vb::Err(EINVAL, "ioeventfd: beyond the BAR");
  // No ioeventfd may write the MSI-X table (the PBA is not protected: neither is it in the kernel).
  const auto [tbl_lo, tbl_hi] = MsixTableSpan(bar);
  if (pos + req.width > tbl_lo && pos < tbl_hi) return vb::Err(EINVAL, "ioeventfd: overlaps the MSI-X table");
  if (!ioeventfds_) {
    ioeventfds_ = std::make_unique<IoeventfdSet>(
        [this](uint64_t id, const IoeventfdKey& key) { FireIoeventfd(id, key); });
  }
  return ioeventfds_->Assign(IoeventfdKey{.bar = bar, .pos = pos, .width = req.width, .data = req.data}, req.fd);
}

void VfioPciDevice::FireIoeventfd(uint64_t id, const IoeventfdKey& key) {
  vb::MutexLock l(mu());
  if (!ioeventfds_ || !ioeventfds_->Registered(id)) return;  // deleted, or the device was closed
  uint8_t bytes[8];
  std::memcpy(bytes, &key.data, sizeof bytes);  // little-endian: the low `width` bytes are the value
  // One access of the entry's width, as the kernel's iowrite8/16/32/64; memory decode off (EIO)
  // drops it silently, as the kernel's test_mem path does.
  if (hw_->BarWrite(key.bar, key.pos, bytes, key.width).has_value()) ++ioeventfd_stats_.written;
  else ++ioeventfd_stats_.dropped;
}

VfioPciDevice::IoeventfdStats VfioPciDevice::ioeventfd_stats() const {
  vb::MutexLock l(mu());
  IoeventfdStats s = ioeventfd_stats_;
  s.registered = ioeventfds_ ? ioeventfds_->size() : 0;
  return s;
}

vb::Result<void> VfioPciDevice::ResetLocked() {
  if (!reset_works_) return vb::Err(EINVAL, "reset: no function reset method");
  HardResetLocked();
  return vb::Ok();
}

}  // namespace vfio::pci
