// uapi::DeviceMmioTarget: what a trapped mmap of a device region reaches (Linux: the vma of a
// vfio-pci BAR mapping, whose fault handler serves it). It holds the device file as the vma holds
// vm_file, so the device stays open while the mapping exists, whatever happens to the fd. Each
// access is one DeviceOps::MmioAccess of the CPU's width; the mapping's prot is enforced here
// (a store through a read-only mapping faults as SIGSEGV). Immutable; called from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "base/ref_counted.h"
#include "faults/trap_map.h"
#include "vfio/device.h"
#include "vfio/device_file.h"
#include "vfio/group_file.h"

namespace uapi {

class DeviceMmioTarget final : public faults::MmioTarget {
 public:
  DeviceMmioTarget(vb::RefPtr<vfio::DeviceFile> file, int prot) : file_(std::move(file)), prot_(prot) {}

  Status Access(uint64_t offset, void* data, unsigned size, bool write) override;
  bool WriteWide(uint64_t offset, const void* data, unsigned size) override;
  std::string Describe(uint64_t offset) const override;
  const void* device_identity() const override;

 private:
  const vb::RefPtr<vfio::DeviceFile> file_;
  const int prot_;
};

}  // namespace uapi
