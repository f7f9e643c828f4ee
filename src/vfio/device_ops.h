// vfio::DeviceOps: what a VFIO bus driver provides for its devices (Linux: vfio_device_ops plus the
// typed halves of vfio-pci's ioctls). The UAPI layer (uapi/) decodes the user's structs, checks
// argsz/flags/reserved fields like the kernel's core does (including the generic SET_IRQS
// validation, vfio_set_irqs_validate_and_prepare), builds capability chains and answers ENOTTY
// for unknown requests; a driver sees only typed, already-validated requests and answers with the
// kernel's errno for the device-specific rows.
//
// Flag values are the UAPI's own (<linux/vfio.h>): a driver fills `flags` with VFIO_*_FLAG_* bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vfio {

class Device;
class GroupFile;

struct DeviceInfo {
  uint32_t flags = 0;  // VFIO_DEVICE_FLAGS_*
  uint32_t num_regions = 0;
  uint32_t num_irqs = 0;
};

struct SparseMmapArea {
  uint64_t offset = 0;  // within the region
  uint64_t size = 0;
};

struct RegionInfo {
  uint32_t flags = 0;    // VFIO_REGION_INFO_FLAG_READ/WRITE/MMAP (CAPS is set by the UAPI layer)
  uint64_t size = 0;
  uint64_t offset = 0;   // the region's offset on the device fd (index << 40 for vfio-pci)
  // Capabilities, emitted by the UAPI layer in this order when present:
  std::vector<SparseMmapArea> sparse_mmap;  // VFIO_REGION_INFO_CAP_SPARSE_MMAP (areas may be empty
  bool has_sparse_mmap = false;             //   when has_sparse_mmap: "nothing mappable")
  std::optional<std::pair<uint32_t, uint32_t>> type;  // VFIO_REGION_INFO_CAP_TYPE {type, subtype}
  bool msix_mappable = false;                          // VFIO_REGION_INFO_CAP_MSIX_MAPPABLE
};

struct IrqInfo {
  uint32_t flags = 0;  // VFIO_IRQ_INFO_*
  uint32_t count = 0;
};

// VFIO_DEVICE_SET_IRQS after the core's generic validation: exactly one data type and one action,
// index < num_irqs, start/count within the IRQ's count (or count 0 with DATA_NONE|TRIGGER to
// disable), and the data already copied in.
struct SetIrqsRequest {
  uint32_t flags = 0;  // VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_*
  uint32_t index = 0;
  uint32_t start = 0;
  uint32_t count = 0;
  std::span<const uint8_t> bools;  // DATA_BOOL: count bytes
  std::span<const int32_t> fds;    // DATA_EVENTFD: count fds (-1: unset that vector)
};

// VFIO_DEVICE_IOEVENTFD after the UAPI layer's checks (argsz, flags with exactly one size bit,
// fd >= -1): write `data` of `width` bytes at region offset `offset` whenever eventfd `fd` is
// signalled; fd -1 deletes the registration with the same offset, width and data.
struct IoeventfdRequest {
  uint64_t offset = 0;  // region offset (index << 40 | offset within the region for vfio-pci)
  uint64_t data = 0;
  uint32_t width = 0;   // 1, 2, 4 or 8
  int32_t fd = -1;
};

// A driver feature of VFIO_DEVICE_FEATURE (the core's own, migration and DMA logging, are
// answered above the driver): which of GET and SET it takes and the minimum payload size, for the
// core's vfio_check_feature rows.
struct FeatureSupport {
  bool get = false;
  bool set = false;
  size_t minsz = 0;
};

// Where an mmap of a region lands: a file the UAPI layer maps on the user's behalf.
struct MmapTarget {
  int fd = -1;            // e.g. the memfd backing a BAR
  uint64_t fd_offset = 0;  // where the *region* starts in fd; the UAPI layer adds the offset
                          // within the region (mmap offset - region offset) to it
  bool trapped = false;   // register pages (fd -1): mapped with no access; every CPU access faults
                          // and reaches MmioAccess as one access of its width
};

// VFIO_DEVICE_GET_PCI_HOT_RESET_INFO entry.
struct HotResetDependent {
  uint32_t group_id = 0;
  uint16_t segment = 0;
  uint8_t bus = 0;
  uint8_t devfn = 0;
  // False for an affected device without an IOMMU group: 6.1 counts it (ENOSPC comes first) and
  // fails the fill with EPERM.
  bool has_group = true;
};

class DeviceOps {
 public:
  virtual ~DeviceOps() = default;
  virtual std::string_view driver_name() const = 0;
  // First open of the device (vfio-pci: enable, reset, build the virtual config space).
  virtual vb::Result<void> OpenDevice(Device&) { return vb::Ok(); }
  // Last close.
  virtual void CloseDevice(Device&) {}
  // Unregistration is waiting for users; `count` is 0, 1, 2... (vfio-pci signals REQ).
  virtual void Request(Device&, unsigned count) {}
  // GET_DEVICE_FD name matching. Default: the exact name of the hw device.
  virtual bool Match(const Device& dev, std::string_view name) const;

  // ---- the device fd (all default to "this driver has no such thing") ----
  virtual DeviceInfo GetInfo(Device&) { return {}; }
  // EINVAL: index >= num_regions.
  virtual vb::Result<RegionInfo> GetRegionInfo(Device&, uint32_t index) { return vb::Err(EINVAL, "no regions"); }
  // EINVAL: index >= num_irqs.
  virtual vb::Result<IrqInfo> GetIrqInfo(Device&, uint32_t index) { return vb::Err(EINVAL, "no irqs"); }
  // 0, or for an MSI/MSI-X enable that could allocate fewer vectors than start + count, the
  // positive number of vectors available (the ioctl's return value; nothing was enabled).
  virtual vb::Result<int> SetIrqs(Device&, const SetIrqsRequest&) { return vb::Err(EINVAL, "no irqs"); }
  // read()/write() on the device fd at a region offset; returns bytes done.
  virtual vb::Result<size_t> Read(Device&, void* buf, size_t count, uint64_t offset) { return vb::Err(EINVAL, "no read"); }
  virtual vb::Result<size_t> Write(Device&, const void* buf, size_t count, uint64_t offset) { return vb::Err(EINVAL, "no write"); }
  // mmap(offset, length) of a mappable region (MAP_SHARED only; the UAPI layer checks that).
  virtual vb::Result<MmapTarget> Mmap(Device&, uint64_t offset, uint64_t length, int prot) { return vb::Err(EINVAL, "no mmap"); }
  // One CPU load or store through a trapped mapping: `size` (1, 2, 4, 8) bytes at region offset
  // `offset`, as one device access of that width. Any error (EIO: memory decode off) makes the
  // access a SIGBUS, as a VM_IO fault that cannot be served is on Linux.
  virtual vb::Result<void> MmioAccess(Device&, uint64_t offset, void* data, unsigned size, bool write) {
    return vb::Err(EIO, "no mmio");
  }
  // One posted write of 16, 32 or 64 bytes through a trapped mapping, as one device access; false
  // when the device takes no such write there (the CPU access is then split).
  virtual bool MmioWriteWide(Device&, uint64_t offset, const void* data, unsigned size) { return false; }
  // VFIO_DEVICE_IOEVENTFD (a vfio-pci ioctl: other drivers answer ENOTTY).
  virtual vb::Result<void> Ioeventfd(Device&, const IoeventfdRequest&) { return vb::Err(ENOTTY, "no ioeventfd"); }
  // VFIO_DEVICE_RESET.
  virtual vb::Result<void> Reset(Device&) { return vb::Err(ENOTTY, "no reset"); }
  virtual vb::Result<std::vector<HotResetDependent>> GetPciHotResetInfo(Device&) { return vb::Err(ENOTTY, "not pci"); }
  // VFIO_DEVICE_PCI_HOT_RESET with the group files the user passed.
  virtual vb::Result<void> PciHotReset(Device&, std::span<GroupFile* const> groups) { return vb::Err(ENOTTY, "not pci"); }
  // VFIO_DEVICE_FEATURE `index`, not one of the core's. The default is a driver with no feature
  // hook (6.1's core then answers EINVAL for every such feature); a driver with one answers
  // ENOTTY for a feature it does not know or that does not apply to this device.
  virtual vb::Result<FeatureSupport> Feature(Device&, uint32_t index) { return vb::Err(EINVAL, "no feature hook"); }
  // SET of a feature Feature() said takes SET; `payload` is its first minsz bytes.
  virtual vb::Result<void> SetFeature(Device&, uint32_t index, std::span<const uint8_t> payload) {
    return vb::Err(ENOTTY, "no feature");
  }
  // Runtime PM: the VFIO core resumes the device around every device-fd ioctl (6.1:
  // vfio_device_pm_runtime_get). Drivers without runtime PM have nothing to do.
  virtual void RuntimeResume(Device&) {}
};

}  // namespace vfio
