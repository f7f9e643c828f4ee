#include "hw/pci_device.h"

#include <algorithm>
#include <cstring>

#include "base/checked.h"
#include "hw/pci_regs.h"

namespace hw {

namespace {
const BarSpec kNoBar{};

uint64_t LoadLe(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}
void StoreLe(uint8_t* p, size_t n, uint64_t v) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
}  // namespace

PciDevice::PciDevice(PciAddress address, const Identity& id)
    : Device(address.ToString(), BusType::kPci),
      address_(address),
      vendor_id_(id.vendor_id),
      device_id_(id.device_id),
      class_code_(id.class_code & 0xffffff),
      header_type_(id.header_type),
      pcie_type_(id.pcie_type),
      multifunction_(id.multifunction),
      secondary_bus_number_(id.secondary_bus_number),
      revision_(id.revision),
      interrupt_pin_(id.interrupt_pin > 4 ? 0 : id.interrupt_pin),
      flr_(id.flr && id.pcie_type != PcieType::kConventional),
      config_(id.pcie_type == PcieType::kConventional ? ConfigSpace::kConventionalSize : ConfigSpace::kExpressSize),
      reset_config_(config_),
      caps_(config_) {
  vb::MutexLock l(state_mu_);
  ConfigSpace& cs = config_;
  cs.Set16(pci::kVendorId, vendor_id_);
  cs.Set16(pci::kDeviceId, device_id_);
  cs.Set8(pci::kRevision, revision_);
  cs.Set8(pci::kClassProgIf, static_cast<uint8_t>(class_code_));
  cs.Set16(pci::kClassProgIf + 1, static_cast<uint16_t>(class_code_ >> 8));
  cs.Set8(pci::kHeaderType, static_cast<uint8_t>(header_type_ | (multifunction_ ? pci::kHeaderTypeMultifunction : 0)));
  cs.SetWritable(pci::kCommand, 2, pci::kCommandIo | pci::kCommandMemory | pci::kCommandMaster |
                                       pci::kCommandParity | pci::kCommandSerr | pci::kCommandIntxDisable);
  cs.SetW1c(pci::kStatus, 2, pci::kStatusW1cBits);
  cs.SetWritable(pci::kCacheLineSize, 1, 0xff);
  if (!is_pcie()) cs.SetWritable(pci::kLatencyTimer, 1, 0xff);
  cs.SetWritable(pci::kInterruptLine, 1, 0xff);
  cs.Set8(pci::kInterruptPin, interrupt_pin_);
  if (header_type_ == 0) {
    cs.Set16(pci::kSubsystemVendorId, id.subsystem_vendor_id);
    cs.Set16(pci::kSubsystemId, id.subsystem_id);
  } else {
    // Bus numbers are fixed by the topology (firmware-assigned, as with pci=noassign-busses);
    // the subordinate number is computed on read from what is plugged below.
    cs.Set8(pci::kPrimaryBus, address_.bus);
    cs.Set8(pci::kSecondaryBus, secondary_bus_number_);
    cs.Set8(pci::kSubordinateBus, secondary_bus_number_);
    cs.SetWritable(pci::kSecLatencyTimer, 1, 0xff);
    cs.Set8(pci::kIoBase, 0x01);  // 32-bit I/O decode
    cs.Set8(pci::kIoLimit, 0x01);
    cs.SetWritable(pci::kIoBase, 1, 0xf0);
    cs.SetWritable(pci::kIoLimit, 1, 0xf0);
    cs.SetW1c(pci::kSecStatus, 2, pci::kStatusW1cBits);
    cs.SetWritable(pci::kMemoryBase, 2, 0xfff0);
    cs.SetWritable(pci::kMemoryLimit, 2, 0xfff0);
    cs.Set16(pci::kPrefMemoryBase, 0x0001);  // 64-bit prefetchable window
    cs.Set16(pci::kPrefMemoryLimit, 0x0001);
    cs.SetWritable(pci::kPrefMemoryBase, 2, 0xfff0);
    cs.SetWritable(pci::kPrefMemoryLimit, 2, 0xfff0);
    cs.SetWritable(pci::kPrefBaseUpper32, 4, 0xffffffffu);
    cs.SetWritable(pci::kPrefLimitUpper32, 4, 0xffffffffu);
    cs.SetWritable(pci::kIoBaseUpper16, 2, 0xffff);
    cs.SetWritable(pci::kIoLimitUpper16, 2, 0xffff);
    cs.SetWritable(pci::kBridgeControl, 2, 0x0fff);
  }
  if (is_pcie()) {
    PcieCapSpec spec;
    spec.type = pcie_type_;
    spec.link_speed = std::clamp<uint8_t>(id.link_speed, 1, 5);
    spec.link_width = std::clamp<uint8_t>(id.link_width, 1, 32);
    spec.flr = flr_;
    spec.slot = id.slot;
    spec.port_number = id.port_number;
    // Cannot fail: the list is empty and the spec is sanitized.
    pcie_off_ = caps_.AddPcie(spec).value_or(0);
  }
  SaveResetStateLocked();
}

PciDevice::~PciDevice() = default;

void PciDevice::SaveResetStateLocked() { reset_config_ = config_; }

// ---------------------------------------------------------------------------------------------
// ACS

std::optional<uint16_t> PciDevice::acs_offset() const {
  vb::MutexLock l(state_mu_);
  return acs_off_ ? std::optional<uint16_t>(acs_off_) : std::nullopt;
}

std::optional<uint16_t> PciDevice::acs_capability() const {
  vb::MutexLock l(state_mu_);
  if (!acs_off_) return std::nullopt;
  return static_cast<uint16_t>(config_.Get16(acs_off_ + pci::kAcsCap) & 0x7f);
}

std::optional<uint16_t> PciDevice::acs_control() const {
  vb::MutexLock l(state_mu_);
  if (!acs_off_) return std::nullopt;
  return config_.Get16(acs_off_ + pci::kAcsCtrl);
}

void PciDevice::set_acs(uint16_t capability, uint16_t control) {
  vb::MutexLock l(state_mu_);
  capability &= 0x7f;
  if (!acs_off_) {
    // The extended space holds at most a handful of capabilities here; it cannot be full.
    acs_off_ = caps_.AddAcs(capability, control).value_or(0);
  } else {
    const bool egress = config_.Get16(acs_off_ + pci::kAcsCap) & kAcsEc;
    config_.Set16(acs_off_ + pci::kAcsCap, static_cast<uint16_t>(capability | (egress ? 32u << 8 : 0u)));
    config_.Set16(acs_off_ + pci::kAcsCtrl, control);
    config_.SetWritable(acs_off_ + pci::kAcsCtrl, 2, capability);
  }
  SaveResetStateLocked();
}

// ---------------------------------------------------------------------------------------------
// Setup

vb::Result<void> PciDevice::DefineBar(int index, const BarSpec& spec, MmioHandler* handler) {
  const int slots = spec.kind == BarKind::kMem64 ? 2 : 1;
  if (index < 0 || index + slots > num_bars()) return vb::Err(EINVAL, "bar: index out of range");
  for (int i = 0; i < kMaxBars; ++i) {
    if (!bars_[i]) continue;
    const int used = bars_[i]->spec().kind == BarKind::kMem64 ? 2 : 1;
    if (index < i + used && i < index + slots) return vb::Err(EINVAL, "bar: slot already defined");
  }
  auto bar = TRY(Bar::Create(spec, handler));
  vb::MutexLock l(state_mu_);
  const uint32_t reg = pci::kBar0 + 4 * static_cast<uint32_t>(index);
  // Sizing works by the masks: the address bits below the size are hardwired to zero, so writing
  // all-ones reads back the size mask with the type bits.
  const uint64_t addr_mask = ~(spec.size - 1);
  switch (spec.kind) {
    case BarKind::kIo:
      config_.Set32(reg, pci::kBarSpaceIo);
      config_.SetWritable(reg, 4, static_cast<uint32_t>(addr_mask) & pci::kBarIoMask);
      break;
    case BarKind::kMem32:
      config_.Set32(reg, spec.prefetchable ? pci::kBarMemPrefetch : 0);
      config_.SetWritable(reg, 4, static_cast<uint32_t>(addr_mask) & pci::kBarMemMask);
      break;
    case BarKind::kMem64:
      config_.Set32(reg, pci::kBarMemType64 | (spec.prefetchable ? pci::kBarMemPrefetch : 0));
      config_.SetWritable(reg, 4, static_cast<uint32_t>(addr_mask) & pci::kBarMemMask);
      config_.Set32(reg + 4, 0);
      config_.SetWritable(reg + 4, 4, static_cast<uint32_t>(addr_mask >> 32));
      break;
    case BarKind::kNone:
      break;
  }
  bars_[index] = std::move(bar);
  SaveResetStateLocked();
  return vb::Ok();
}

vb::Result<uint8_t> PciDevice::AddPmCapability(const PmSpec& spec) {
  vb::MutexLock l(state_mu_);
  if (pm_off_) return vb::Err(EEXIST, "cap: PM capability already present");
  pm_off_ = TRY(caps_.AddPm(spec));
  SaveResetStateLocked();
  return pm_off_;
}

vb::Result<uint8_t> PciDevice::AddMsiCapability(const MsiSpec& spec) {
  vb::MutexLock l(state_mu_);
  if (msi_off_) return vb::Err(EEXIST, "cap: MSI capability already present");
  msi_off_ = TRY(caps_.AddMsi(spec));
  msi_spec_ = spec;
  SaveResetStateLocked();
  return msi_off_;
}

vb::Result<uint8_t> PciDevice::AddMsixCapability(const MsixSpec& spec) {
  if (msix_off_) return vb::Err(EEXIST, "cap: MSI-X capability already present");
  auto fits = [&](uint8_t bir, uint64_t offset, uint64_t len) {
    if (bir >= kMaxBars || !bars_[bir]) return false;
    const BarSpec& b = bars_[bir]->spec();
    return b.kind != BarKind::kIo && offset <= b.size && len <= b.size - offset;
  };
  const uint64_t table_len = uint64_t{spec.table_size} * pci::kMsixEntrySize;
  const uint64_t pba_len = (uint64_t{spec.table_size} + 63) / 64 * 8;
  if (!fits(spec.table_bar, spec.table_offset, table_len)) return vb::Err(EINVAL, "cap: MSI-X table outside its BAR");
  if (!fits(spec.pba_bar, spec.pba_offset, pba_len)) return vb::Err(EINVAL, "cap: MSI-X PBA outside its BAR");
  if (spec.table_bar == spec.pba_bar && spec.table_offset < spec.pba_offset + pba_len &&
      spec.pba_offset < spec.table_offset + table_len)
    return vb::Err(EINVAL, "cap: MSI-X table and PBA overlap");
  vb::MutexLock l(state_mu_);
  msix_off_ = TRY(caps_.AddMsix(spec));
  msix_spec_ = spec;
  msix_table_.assign(table_len, 0);
  msix_pba_.assign(pba_len, 0);
  msix_counts_.assign(spec.table_size, 0);
  ResetMsixTableLocked();
  SaveResetStateLocked();
  return msix_off_;
}

void PciDevice::ResetMsixTableLocked() {
  std::fill(msix_table_.begin(), msix_table_.end(), 0);
  std::fill(msix_pba_.begin(), msix_pba_.end(), 0);
  for (size_t e = 0; e * pci::kMsixEntrySize < msix_table_.size(); ++e)
    msix_table_[e * pci::kMsixEntrySize + pci::kMsixEntryVectorCtrl] = pci::kMsixEntryCtrlMaskBit;
}

// ---------------------------------------------------------------------------------------------
// Config space

uint8_t PciDevice::ComputeSubordinateBus() const {
  uint8_t max = secondary_bus_number_;
  if (!secondary_) return max;
  for (PciDevice* d : secondary_->devices())
    if (d->is_bridge()) max = std::max(max, d->ComputeSubordinateBus());
  return max;
}

vb::Result<uint32_t> PciDevice::ConfigRead(uint32_t offset, unsigned size) {
  TRY(ConfigSpace::CheckAccess(offset, size, config_size()));
  if (disconnected()) return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  // Walking the buses below takes the machine's bus lock, which ranks outside the state lock.
  std::optional<uint8_t> subordinate;
  if (is_bridge() && offset <= pci::kSubordinateBus && pci::kSubordinateBus < offset + size)
    subordinate = ComputeSubordinateBus();
  vb::MutexLock l(state_mu_);
  if (subordinate) config_.Set8(pci::kSubordinateBus, *subordinate);
  return config_.Read(offset, size);
}

vb::Result<void> PciDevice::ConfigWrite(uint32_t offset, unsigned size, uint32_t value) {
  TRY(ConfigSpace::CheckAccess(offset, size, config_size()));
  if (disconnected()) return vb::Ok();
  StateLock l(*this);
  TRY(config_.Write(offset, size, value));
  if (flr_ && pcie_off_) {
    const uint32_t ctl = pcie_off_ + pci::kExpDevCtl;
    // "Initiate FLR" is write-only (reads as zero), so it is caught in the written value.
    if (offset <= ctl + 1 && ctl + 1 < offset + size &&
        ((value >> (8 * (ctl + 1 - offset))) & (pci::kExpDevCtlBcrFlr >> 8))) {
      FunctionResetLocked();
      return vb::Ok();
    }
  }
  OnConfigWriteLocked(offset, size);
  UpdateIntxLocked();
  DeliverPendingLocked();
  return vb::Ok();
}

std::vector<uint8_t> PciDevice::ConfigSnapshot() const {
  vb::MutexLock l(state_mu_);
  auto b = config_.bytes();
  return {b.begin(), b.end()};
}

uint16_t PciDevice::command() const {
  vb::MutexLock l(state_mu_);
  return CommandLocked();
}
bool PciDevice::memory_enabled() const { return command() & pci::kCommandMemory; }
bool PciDevice::io_enabled() const { return command() & pci::kCommandIo; }
bool PciDevice::bus_master_enabled() const { return command() & pci::kCommandMaster; }
bool PciDevice::bus_master_locked() const { return CommandLocked() & pci::kCommandMaster; }

// ---------------------------------------------------------------------------------------------
// BARs

const BarSpec& PciDevice::bar(int index) const {
  if (index < 0 || index >= kMaxBars || !bars_[index]) return kNoBar;
  return bars_[index]->spec();
}

int PciDevice::bar_fd(int index) const {
  if (index < 0 || index >= kMaxBars || !bars_[index]) return -1;
  return bars_[index]->fd();
}

void* PciDevice::bar_host(int index) const {
  if (index < 0 || index >= kMaxBars || !bars_[index] || !bars_[index]->spec().mappable) return nullptr;
  return bars_[index]->host();
}

PciDevice::MsixRegion PciDevice::ClassifyMsix(int bar, uint64_t offset, size_t size, uint64_t* rel) const {
  if (!msix_spec_) return MsixRegion::kNone;
  const MsixSpec& s = *msix_spec_;
  auto classify = [&](uint8_t bir, uint64_t start, uint64_t len, MsixRegion kind) {
    if (bir != bar) return MsixRegion::kNone;
    const uint64_t end = offset + size;
    if (end <= start || offset >= start + len) return MsixRegion::kNone;
    if (offset < start || end > start + len) return MsixRegion::kStraddle;
    *rel = offset - start;
    return kind;
  };
  MsixRegion r = classify(s.table_bar, s.table_offset, uint64_t{s.table_size} * pci::kMsixEntrySize, MsixRegion::kTable);
  if (r != MsixRegion::kNone) return r;
  return classify(s.pba_bar, s.pba_offset, (uint64_t{s.table_size} + 63) / 64 * 8, MsixRegion::kPba);
}

vb::Result<void> PciDevice::BarRead(int bar, uint64_t offset, void* data, size_t size) {
  return BarAccess(bar, offset, data, size, false);
}

vb::Result<void> PciDevice::BarWrite(int bar, uint64_t offset, const void* data, size_t size) {
  // The write path never writes through `data`.
  return BarAccess(bar, offset, const_cast<void*>(data), size, true);
}

bool PciDevice::BarWriteWide(int index, uint64_t offset, const void* data, unsigned size) {
  if (index < 0 || index >= kMaxBars || !bars_[index] || !bars_[index]->handler()) return false;
  Bar& b = *bars_[index];
  if ((size != 16 && size != 32 && size != 64) || offset >= b.spec().size || size > b.spec().size - offset)
    return false;
  uint64_t rel = 0;
  if (ClassifyMsix(index, offset, size, &rel) != MsixRegion::kNone || disconnected()) return false;
  StateLock l(*this);
  if (!(CommandLocked() & pci::kCommandMemory)) return false;
  return b.handler()->MmioWriteWide(index, offset, static_cast<const uint8_t*>(data), size);
}

vb::Result<void> PciDevice::BarAccess(int index, uint64_t offset, void* data, size_t size, bool write) {
  if (index < 0 || index >= kMaxBars || !bars_[index]) return vb::Err(EINVAL, "bar: no such BAR");
  Bar& b = *bars_[index];
  if (size == 0 || offset >= b.spec().size || size > b.spec().size - offset)
    return vb::Err(EINVAL, "bar: access outside the BAR");
  auto* bytes = static_cast<uint8_t*>(data);
  const bool reg = b.handler() != nullptr;
  uint64_t rel = 0;
  const MsixRegion msix = ClassifyMsix(index, offset, size, &rel);
  if ((reg || msix != MsixRegion::kNone) && size != 1 && size != 2 && size != 4 && size != 8)
    return vb::Err(EINVAL, "bar: register access size not 1/2/4/8");
  if (msix == MsixRegion::kStraddle) return vb::Err(EINVAL, "bar: access straddles the MSI-X table/PBA");
  if (disconnected()) {
    if (!write) std::memset(bytes, 0xff, size);
    return vb::Ok();
  }
  StateLock l(*this);
  const uint16_t decode = b.spec().kind == BarKind::kIo ? pci::kCommandIo : pci::kCommandMemory;
  if (!(CommandLocked() & decode)) {
    if (!write) std::memset(bytes, 0xff, size);
    return vb::Err(EIO, "bar: decode disabled in the command register");
  }
  if (msix == MsixRegion::kTable) {
    if (!write) {
      std::memcpy(bytes, msix_table_.data() + rel, size);
    } else {
      std::memcpy(msix_table_.data() + rel, bytes, size);
      // Unmasking an entry releases its pending message.
      DeliverPendingLocked();
    }
  } else if (msix == MsixRegion::kPba) {
    if (!write) std::memcpy(bytes, msix_pba_.data() + rel, size);
    // PBA is read-only; writes are ignored.
  } else if (reg) {
    if (!write) StoreLe(bytes, size, b.handler()->MmioRead(index, offset, static_cast<unsigned>(size)));
    else b.handler()->MmioWrite(index, offset, static_cast<unsigned>(size), LoadLe(bytes, size));
  } else {
    if (!write) std::memcpy(bytes, b.host() + offset, size);
    else std::memcpy(b.host() + offset, bytes, size);
  }
  return vb::Ok();
}

// ---------------------------------------------------------------------------------------------
// Interrupts

bool PciDevice::msi_enabled_locked() const {
  return msi_off_ && (config_.Get16(msi_off_ + pci::kMsiFlags) & pci::kMsiFlagsEnable);
}

bool PciDevice::msix_enabled_locked() const {
  return msix_off_ && (config_.Get16(msix_off_ + pci::kMsixFlags) & pci::kMsixFlagsEnable);
}

bool PciDevice::msi_enabled() const {
  vb::MutexLock l(state_mu_);
  return msi_enabled_locked();
}

bool PciDevice::msix_enabled() const {
  vb::MutexLock l(state_mu_);
  return msix_enabled_locked();
}

uint32_t PciDevice::MsiMaskOffset() const {
  return msi_off_ + (msi_spec_->is_64bit ? pci::kMsiMask64 : pci::kMsiMask32);
}
uint32_t PciDevice::MsiPendingOffset() const {
  return msi_off_ + (msi_spec_->is_64bit ? pci::kMsiPending64 : pci::kMsiPending32);
}

void PciDevice::UpdateIntxLocked() {
  uint16_t status = config_.Get16(pci::kStatus);
  status = pin_asserted_ ? (status | pci::kStatusInterrupt) : (status & ~pci::kStatusInterrupt);
  config_.Set16(pci::kStatus, status);
  // While MSI or MSI-X is enabled a function must not use its INTx pin.
  const bool line = pin_asserted_ && interrupt_pin_ != 0 && !disconnected() &&
                    !(CommandLocked() & pci::kCommandIntxDisable) && !msi_enabled_locked() &&
                    !msix_enabled_locked();
  if (line == intx_line_) return;
  intx_line_ = line;
  counters_.intx_level = line;
  if (line) ++counters_.intx_assertions;
  QueueIrqLocked({IrqEvent::kIntx, line ? 1u : 0u});
}

void PciDevice::RaiseIntxLocked() {
  pin_asserted_ = true;
  UpdateIntxLocked();
}

void PciDevice::LowerIntxLocked() {
  pin_asserted_ = false;
  UpdateIntxLocked();
}

// Keeps the delivery queue bounded when a device raises interrupts faster than its sink takes
// them: a message already queued for the same vector absorbs a new one (an eventfd counter would
// merge them anyway; the per-vector counts above still count every message), and an INTx pulse
// queued behind the same level collapses (the sink still sees an edge and ends at the right
// level).
void PciDevice::QueueIrqLocked(IrqEvent e) {
  if (e.kind == IrqEvent::kIntx) {
    const size_t n = irq_queue_.size();
    if (n >= 2 && irq_queue_[n - 1].kind == IrqEvent::kIntx && irq_queue_[n - 2].kind == IrqEvent::kIntx &&
        irq_queue_[n - 2].value == e.value && irq_queue_[n - 1].value != e.value) {
      irq_queue_.pop_back();
      return;
    }
  } else {
    for (const IrqEvent& q : irq_queue_)
      if (q.kind == e.kind && q.value == e.value) return;
  }
  irq_queue_.push_back(e);
}

void PciDevice::DeliverMsiLocked(uint32_t vector) {
  ++counters_.msi;
  ++msi_counts_[vector];
  QueueIrqLocked({IrqEvent::kMsi, vector});
}

void PciDevice::DeliverMsixLocked(uint32_t vector) {
  ++counters_.msix;
  ++msix_counts_[vector];
  QueueIrqLocked({IrqEvent::kMsix, vector});
}

void PciDevice::SignalMsiLocked(uint32_t vector) {
  // A message is a memory write: no MSI without MSI enabled and bus mastering on.
  if (!msi_enabled_locked() || !bus_master_locked() || disconnected()) {
    ++counters_.dropped;
    return;
  }
  const uint16_t flags = config_.Get16(msi_off_ + pci::kMsiFlags);
  const uint32_t enabled_vectors = 1u << ((flags & pci::kMsiFlagsQsize) >> 4);
  if (vector >= enabled_vectors || vector >= msi_spec_->vectors) {
    ++counters_.dropped;
    return;
  }
  if (msi_spec_->per_vector_mask && (config_.Get32(MsiMaskOffset()) & (1u << vector))) {
    config_.Set32(MsiPendingOffset(), config_.Get32(MsiPendingOffset()) | (1u << vector));
    return;
  }
  DeliverMsiLocked(vector);
}

void PciDevice::SignalMsixLocked(uint32_t vector) {
  if (!msix_spec_ || vector >= msix_spec_->table_size || !msix_enabled_locked() || !bus_master_locked() ||
      disconnected()) {
    ++counters_.dropped;
    return;
  }
  const bool function_masked = config_.Get16(msix_off_ + pci::kMsixFlags) & pci::kMsixFlagsMaskAll;
  const bool vector_masked =
      msix_table_[vector * pci::kMsixEntrySize + pci::kMsixEntryVectorCtrl] & pci::kMsixEntryCtrlMaskBit;
  if (function_masked || vector_masked) {
    msix_pba_[vector / 8] |= static_cast<uint8_t>(1u << (vector % 8));
    return;
  }
  DeliverMsixLocked(vector);
}

void PciDevice::DeliverPendingLocked() {
  if (msi_spec_ && msi_spec_->per_vector_mask && msi_enabled_locked() && bus_master_locked()) {
    const uint32_t pending = config_.Get32(MsiPendingOffset());
    const uint32_t ready = pending & ~config_.Get32(MsiMaskOffset());
    if (ready) {
      config_.Set32(MsiPendingOffset(), pending & ~ready);
      for (uint32_t v = 0; v < 32; ++v)
        if (ready & (1u << v)) DeliverMsiLocked(v);
    }
  }
  if (msix_spec_ && msix_enabled_locked() && bus_master_locked() &&
      !(config_.Get16(msix_off_ + pci::kMsixFlags) & pci::kMsixFlagsMaskAll)) {
    for (size_t i = 0; i < msix_pba_.size(); ++i) {
      if (!msix_pba_[i]) continue;
      for (uint32_t bit = 0; bit < 8; ++bit) {
        const uint32_t v = static_cast<uint32_t>(i * 8 + bit);
        if (!(msix_pba_[i] & (1u << bit))) continue;
        if (msix_table_[v * pci::kMsixEntrySize + pci::kMsixEntryVectorCtrl] & pci::kMsixEntryCtrlMaskBit) continue;
        msix_pba_[i] = static_cast<uint8_t>(msix_pba_[i] & ~(1u << bit));
        DeliverMsixLocked(v);
      }
    }
  }
}

void PciDevice::FlushInterrupts() {
  state_mu_.Lock();
  if (delivering_ || irq_queue_.empty()) {
    // Whoever is delivering drains the queue (this may be our own caller, further up the stack).
    state_mu_.Unlock();
    return;
  }
  delivering_ = true;
  deliverer_ = std::this_thread::get_id();
  std::vector<IrqEvent> batch;
  while (!irq_queue_.empty()) {
    batch.swap(irq_queue_);
    InterruptSink* sink = sink_;
    state_mu_.Unlock();
    if (sink) {
      for (const IrqEvent& e : batch) {
        switch (e.kind) {
          case IrqEvent::kIntx: sink->Intx(e.value != 0); break;
          case IrqEvent::kMsi: sink->Msi(e.value); break;
          case IrqEvent::kMsix: sink->MsiX(e.value); break;
        }
      }
    }
    batch.clear();
    state_mu_.Lock();
  }
  delivering_ = false;
  deliverer_ = {};
  delivered_cv_.SignalAll();
  state_mu_.Unlock();
}

void PciDevice::SetInterruptSink(InterruptSink* sink) {
  vb::MutexLock l(state_mu_);
  sink_ = sink;
  while (delivering_ && deliverer_ != std::this_thread::get_id()) delivered_cv_.Wait(state_mu_);
}

void PciDevice::RaiseIntx() {
  StateLock l(*this);
  RaiseIntxLocked();
}

void PciDevice::LowerIntx() {
  StateLock l(*this);
  LowerIntxLocked();
}

void PciDevice::SignalMsi(uint32_t vector) {
  StateLock l(*this);
  SignalMsiLocked(vector);
}

void PciDevice::SignalMsix(uint32_t vector) {
  StateLock l(*this);
  SignalMsixLocked(vector);
}

InterruptCounters PciDevice::interrupt_counters() const {
  vb::MutexLock l(state_mu_);
  return counters_;
}

uint64_t PciDevice::msi_count(uint32_t vector) const {
  vb::MutexLock l(state_mu_);
  return vector < msi_counts_.size() ? msi_counts_[vector] : 0;
}

uint64_t PciDevice::msix_count(uint32_t vector) const {
  vb::MutexLock l(state_mu_);
  return vector < msix_counts_.size() ? msix_counts_[vector] : 0;
}

bool PciDevice::msi_pending(uint32_t vector) const {
  vb::MutexLock l(state_mu_);
  if (!msi_spec_ || !msi_spec_->per_vector_mask || vector >= 32) return false;
  return config_.Get32(MsiPendingOffset()) & (1u << vector);
}

bool PciDevice::msix_pending(uint32_t vector) const {
  vb::MutexLock l(state_mu_);
  if (!msix_spec_ || vector >= msix_spec_->table_size) return false;
  return msix_pba_[vector / 8] & (1u << (vector % 8));
}

// ---------------------------------------------------------------------------------------------
// DMA, reset, removal

vb::Result<void> PciDevice::DmaReadLocked(uint64_t iova, void* dst, size_t len) {
  if (disconnected()) return vb::Err(ENODEV, "dma: device disconnected");
  if (!bus_master_locked()) return vb::Err(EIO, "dma: bus master disabled");
  return dma().Read(iova, dst, len);
}

vb::Result<void> PciDevice::DmaWriteLocked(uint64_t iova, const void* src, size_t len) {
  if (disconnected()) return vb::Err(ENODEV, "dma: device disconnected");
  if (!bus_master_locked()) return vb::Err(EIO, "dma: bus master disabled");
  return dma().Write(iova, src, len);
}

vb::Result<void> PciDevice::DmaCopyLocked(uint64_t src, uint64_t dst, size_t len, DmaAccess* failed) {
  *failed = DmaAccess::kRead;
  if (disconnected()) return vb::Err(ENODEV, "dma: device disconnected");
  if (!bus_master_locked()) return vb::Err(EIO, "dma: bus master disabled");
  return dma().Copy(src, dst, len, failed);
}

void PciDevice::FunctionResetLocked() {
  config_ = reset_config_;
  ResetMsixTableLocked();
  pin_asserted_ = false;
  OnResetLocked();
  UpdateIntxLocked();
}

void PciDevice::FunctionReset() {
  StateLock l(*this);
  FunctionResetLocked();
}

void PciDevice::OnSurpriseRemoval() {
  Device::OnSurpriseRemoval();
  StateLock l(*this);
  UpdateIntxLocked();  // disconnected: the line drops
}

}  // namespace hw
