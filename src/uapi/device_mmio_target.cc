#include "uapi/device_mmio_target.h"

#include <linux/vfio.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>

#include "uapi/trace.h"

namespace uapi {

faults::MmioTarget::Status DeviceMmioTarget::Access(uint64_t offset, void* data, unsigned size, bool write) {
  if (!(prot_ & (write ? PROT_WRITE : PROT_READ))) return Status::kProtection;
  vfio::Device& dev = file_->device();
  auto r = dev.ops().MmioAccess(dev, offset, data, size, write);
  if (trace::Enabled()) {
    uint64_t value = 0;
    std::memcpy(&value, data, size < sizeof value ? size : sizeof value);
    trace::Mmio(dev.name().c_str(), write, offset, size, value, r ? 0 : r.error().errnum);
  }
  return r ? Status::kOk : Status::kBusError;
}

bool DeviceMmioTarget::WriteWide(uint64_t offset, const void* data, unsigned size) {
  if (!(prot_ & PROT_WRITE)) return false;  // split: the first piece then faults as SIGSEGV
  vfio::Device& dev = file_->device();
  const bool taken = dev.ops().MmioWriteWide(dev, offset, data, size);
  if (taken && trace::Enabled()) {
    uint64_t first = 0;
    std::memcpy(&first, data, sizeof first);
    trace::Mmio(dev.name().c_str(), true, offset, size, first, 0);
  }
  return taken;
}

std::string DeviceMmioTarget::Describe(uint64_t offset) const {
  vfio::Device& dev = file_->device();
  char where[64];
  if (dev.ops().GetInfo(dev).flags & VFIO_DEVICE_FLAGS_PCI) {
    // vfio-pci's region offsets: index << 40 | offset within the region (VFIO_PCI_OFFSET_SHIFT).
    snprintf(where, sizeof where, " BAR%llu+%#llx", static_cast<unsigned long long>(offset >> 40),
             static_cast<unsigned long long>(offset & ((uint64_t{1} << 40) - 1)));
  } else {
    snprintf(where, sizeof where, " region offset %#llx", static_cast<unsigned long long>(offset));
  }
  return dev.name() + where;
}

const void* DeviceMmioTarget::device_identity() const { return &file_->device(); }

}  // namespace uapi
