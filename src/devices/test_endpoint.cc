#include "devices/test_endpoint.h"

#include <cstring>

#include "hw/machine.h"

namespace devices {

TestEndpoint::TestEndpoint(hw::PciAddress address, bool multifunction)
    : PciDevice(address, Identity{
                             .vendor_id = kVendorId,
                             .device_id = kDeviceId,
                             .class_code = 0xff0000,
                             .header_type = 0,
                             .pcie_type = hw::PcieType::kEndpoint,
                             .multifunction = multifunction,
                             .interrupt_pin = 1,
                             .flr = true,
                         }) {}

vb::Result<vb::RefPtr<TestEndpoint>> TestEndpoint::Create(hw::PciAddress address, bool multifunction) {
  vb::RefPtr<TestEndpoint> ep(new TestEndpoint(address, multifunction));
  TRY(ep->DefineBar(0, hw::BarSpec{.kind = hw::BarKind::kMem64, .size = kBar0Size, .prefetchable = true,
                                   .mappable = true}));
  TRY(ep->DefineBar(2, hw::BarSpec{.kind = hw::BarKind::kMem32, .size = kBar2Size}, ep.get()));
  TRY(ep->AddPmCapability());
  TRY(ep->AddMsixCapability(hw::MsixSpec{.table_size = kMsixVectors,
                                         .table_bar = 2,
                                         .table_offset = kMsixTableOffset,
                                         .pba_bar = 2,
                                         .pba_offset = kMsixPbaOffset}));
  return ep;
}

namespace {
bool InWindow(uint64_t offset, unsigned size, uint64_t begin, uint64_t length) {
  return offset >= begin && offset - begin < length && size <= length - (offset - begin);
}
}  // namespace

void TestEndpoint::LogLocked(uint64_t offset, unsigned size, bool write, uint64_t value) {
  if (log_count_ < kAccessLogEntries)
    log_[log_count_++] = {offset | uint64_t{size} << 32 | (write ? kLogWrite : 0), value};
}

bool TestEndpoint::MmioWriteWide(int bar, uint64_t offset, const uint8_t* data, unsigned size) {
  state_mu_.AssertHeld();
  if (!InWindow(offset, size, kPortal, kPortalSize) || offset % size != 0) return false;
  std::memcpy(portal_ + (offset - kPortal), data, size);
  uint64_t first = 0;
  std::memcpy(&first, data, sizeof first);
  LogLocked(offset, size, true, first);
  return true;
}

uint64_t TestEndpoint::MmioRead(int bar, uint64_t offset, unsigned size) {
  state_mu_.AssertHeld();
  if (InWindow(offset, size, kScratchWindow, kScratchWindowSize)) {
    uint64_t v = 0;
    std::memcpy(&v, window_ + (offset - kScratchWindow), size);
    LogLocked(offset, size, false, v);
    return v;
  }
  if (InWindow(offset, size, kPortal, kPortalSize)) {
    LogLocked(offset, size, false, ~uint64_t{0});
    return ~uint64_t{0};
  }
  if (InWindow(offset, size, kAccessLog, kAccessLogEntries * sizeof(LogEntry)) && (size == 4 || size == 8)) {
    uint64_t v = 0;
    std::memcpy(&v, reinterpret_cast<const uint8_t*>(log_) + (offset - kAccessLog), size);
    return v;
  }
  if (size != 4 && size != 8) return ~uint64_t{0};
  switch (offset) {
    case kRegId: return kId;
    case kRegScratch: return scratch_;
    case kRegIntx: return intx_;
    case kRegDmaSrc: return dma_src_;
    case kRegDmaDst: return dma_dst_;
    case kRegDmaCount: return dma_count_;
    case kRegDmaCmd: return dma_cmd_;
    case kRegLogCount: return log_count_;
    default: return ~uint64_t{0};
  }
}

void TestEndpoint::MmioWrite(int bar, uint64_t offset, unsigned size, uint64_t value) {
  state_mu_.AssertHeld();
  if (InWindow(offset, size, kScratchWindow, kScratchWindowSize)) {
    std::memcpy(window_ + (offset - kScratchWindow), &value, size);
    LogLocked(offset, size, true, value);
    return;
  }
  if (InWindow(offset, size, kPortal, kPortalSize)) {
    LogLocked(offset, size, true, value);
    return;
  }
  if (size != 4 && size != 8) return;
  switch (offset) {
    case kRegLogCount:
      log_count_ = 0;
      break;
    case kRegScratch:
      scratch_ = static_cast<uint32_t>(value);
      break;
    case kRegDoorbell:
      SignalMsixLocked(static_cast<uint32_t>(value));
      break;
    case kRegIntx:
      intx_ = value & 1;
      if (intx_) RaiseIntxLocked();
      else LowerIntxLocked();
      break;
    case kRegDmaSrc:
    case kRegDmaDst:
    case kRegDmaCount:
      if (dma_cmd_ & kDmaCmdStart) break;
      (offset == kRegDmaSrc ? dma_src_ : offset == kRegDmaDst ? dma_dst_ : dma_count_) = value;
      break;
    case kRegDmaCmd: {
      if (!(value & kDmaCmdStart) || (dma_cmd_ & kDmaCmdStart)) break;
      dma_cmd_ = value & ~kDmaCmdError;
      hw::Machine* machine = this->machine();
      if (!machine) {
        RunDmaLocked();
        break;
      }
      vb::RefPtr<TestEndpoint> self(this);
      const uint64_t epoch = epoch_;
      machine->executor().Post([self, epoch] {
        StateLock l(*self);
        if (self->epoch_ == epoch && !self->disconnected()) self->RunDmaLocked();
      });
      break;
    }
    default:
      break;
  }
}

void TestEndpoint::RunDmaLocked() {
  if (!(dma_cmd_ & kDmaCmdStart)) return;
  const bool to_ram = dma_cmd_ & kDmaCmdToRam;
  const uint64_t bar_off = to_ram ? dma_src_ : dma_dst_;
  const uint64_t ram = to_ram ? dma_dst_ : dma_src_;
  const uint64_t count = dma_count_;
  auto* mem = static_cast<uint8_t*>(bar_host(0));
  bool ok = count <= kBar0Size && bar_off <= kBar0Size - count;
  if (ok && count > 0) {
    auto r = to_ram ? DmaWriteLocked(ram, mem + bar_off, count) : DmaReadLocked(ram, mem + bar_off, count);
    ok = r.has_value();
  }
  dma_cmd_ &= ~kDmaCmdStart;
  if (!ok) dma_cmd_ |= kDmaCmdError;
  if (dma_cmd_ & kDmaCmdIrq) SignalMsixLocked(static_cast<uint32_t>((dma_cmd_ >> 8) & 0xff));
}

void TestEndpoint::OnResetLocked() {
  ++epoch_;
  scratch_ = intx_ = 0;
  dma_src_ = dma_dst_ = dma_count_ = dma_cmd_ = 0;
  std::memset(window_, 0, sizeof window_);
  std::memset(portal_, 0, sizeof portal_);
  log_count_ = 0;
}

}  // namespace devices
