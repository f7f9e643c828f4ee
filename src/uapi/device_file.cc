#include "uapi/device_file.h"

#include "uapi/errno_result.h"

#include <linux/vfio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "base/fail_point.h"
#include "faults/fault_dispatcher.h"
#include "faults/trap_map.h"
#include "uapi/cap_chain.h"
#include "uapi/device_mmio_target.h"
#include "uapi/group_file.h"
#include "uapi/trace.h"
#include "uapi/user_copy.h"
#include "vfio/device.h"
#include "vfio/device_ops.h"

namespace uapi {
namespace {

constexpr uint64_t kPageSize = 4096;


constexpr uint32_t kIrqDataMask =
    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
constexpr uint32_t kIrqActionMask =
    VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

bool OneBit(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

vfio::Device& DeviceFileObject::dev() const { return file_->device(); }
vfio::DeviceOps& DeviceFileObject::ops() const { return file_->device().ops(); }

long DeviceFileObject::Ioctl(unsigned long request, unsigned long arg) {
  long r = Dispatch(request, arg);
  if (trace::Enabled()) trace::Ioctl(kind(), request, arg, r);
  return r;
}

long DeviceFileObject::Dispatch(unsigned long request, unsigned long arg) {
  // 6.1's core resumes the device (runtime PM) around every device-fd ioctl, before decoding it.
  ops().RuntimeResume(dev());
  switch (request) {
    case VFIO_DEVICE_GET_INFO: return GetInfo(arg);
    case VFIO_DEVICE_GET_REGION_INFO: return GetRegionInfo(arg);
    case VFIO_DEVICE_GET_IRQ_INFO: return GetIrqInfo(arg);
    case VFIO_DEVICE_SET_IRQS: return SetIrqs(arg);
    case VFIO_DEVICE_RESET: return Errno(ops().Reset(dev()));
    case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: return GetHotResetInfo(arg);
    case VFIO_DEVICE_PCI_HOT_RESET: return HotReset(arg);
    case VFIO_DEVICE_FEATURE: return Feature(arg);
    case VFIO_DEVICE_IOEVENTFD: return Ioeventfd(arg);
    default: return -ENOTTY;
  }
}

long DeviceFileObject::GetInfo(unsigned long arg) {
  constexpr size_t kMinsz = offsetof(vfio_device_info, cap_offset);  // end of num_irqs: 16
  constexpr size_t kCapsz = kMinsz + sizeof(uint32_t);               // end of cap_offset: 20
  vfio_device_info info{};
  if (CopyFromUser(&info, arg, kMinsz) != 0) return -EFAULT;
  if (info.argsz < kMinsz) return -EINVAL;
  // 6.1 copies back exactly 16 bytes, or 20 (cap_offset included) when argsz reaches the end of
  // cap_offset: an argsz of 17-19 gets no partial cap_offset (no device caps exist here).
  const size_t copy_back = info.argsz < kCapsz ? kMinsz : kCapsz;
  vfio::DeviceInfo d = ops().GetInfo(dev());
  info.flags = d.flags;
  info.num_regions = d.num_regions;
  info.num_irqs = d.num_irqs;
  info.cap_offset = 0;
  return CopyToUser(arg, &info, copy_back) ? -EFAULT : 0;
}

long DeviceFileObject::GetRegionInfo(unsigned long arg) {
  constexpr size_t kMinsz = sizeof(vfio_region_info);  // end of offset: 32
  vfio_region_info info;
  if (CopyFromUser(&info, arg, kMinsz) != 0) return -EFAULT;
  if (info.argsz < kMinsz) return -EINVAL;
  if (info.index >= ops().GetInfo(dev()).num_regions) return -EINVAL;
  auto ri = ops().GetRegionInfo(dev(), info.index);
  if (!ri) return -ri.error().errnum;
  info.flags = ri->flags & ~VFIO_REGION_INFO_FLAG_CAPS;
  info.size = ri->size;
  info.offset = ri->offset;
  // Chain order: SPARSE_MMAP, TYPE, MSIX_MAPPABLE. Without caps, cap_offset and argsz come back
  // exactly as the caller passed them.
  CapChain caps(sizeof(info));
  if (ri->has_sparse_mmap) {
    std::vector<uint8_t> body(8 + ri->sparse_mmap.size() * sizeof(vfio_region_sparse_mmap_area));
    uint32_t nr = static_cast<uint32_t>(ri->sparse_mmap.size());
    std::memcpy(body.data(), &nr, sizeof(nr));  // nr_areas, then a reserved u32
    for (size_t i = 0; i < ri->sparse_mmap.size(); ++i) {
      vfio_region_sparse_mmap_area a{ri->sparse_mmap[i].offset, ri->sparse_mmap[i].size};
      std::memcpy(body.data() + 8 + i * sizeof(a), &a, sizeof(a));
    }
    caps.Add(VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, body.data(), body.size());
  }
  if (ri->type) {
    uint32_t body[2] = {ri->type->first, ri->type->second};
    caps.Add(VFIO_REGION_INFO_CAP_TYPE, 1, body, sizeof(body));
  }
  if (ri->msix_mappable) caps.Add(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, nullptr, 0);
  if (int r = caps.Place(arg, &info.argsz, &info.cap_offset, &info.flags,
                         VFIO_REGION_INFO_FLAG_CAPS))
    return r;
  return CopyToUser(arg, &info, kMinsz) ? -EFAULT : 0;
}

long DeviceFileObject::GetIrqInfo(unsigned long arg) {
  constexpr size_t kMinsz = sizeof(vfio_irq_info);  // end of count: 16
  vfio_irq_info info;
  if (CopyFromUser(&info, arg, kMinsz) != 0) return -EFAULT;
  if (info.argsz < kMinsz || info.index >= ops().GetInfo(dev()).num_irqs) return -EINVAL;
  auto ii = ops().GetIrqInfo(dev(), info.index);
  if (!ii) return -ii.error().errnum;
  info.flags = ii->flags;
  info.count = ii->count;
  return CopyToUser(arg, &info, kMinsz) ? -EFAULT : 0;
}

long DeviceFileObject::SetIrqs(unsigned long arg) {
  constexpr size_t kMinsz = offsetof(vfio_irq_set, data);  // end of count: 20
  vfio_irq_set hdr;
  if (CopyFromUser(&hdr, arg, kMinsz) != 0) return -EFAULT;
  const uint32_t num_irqs = ops().GetInfo(dev()).num_irqs;
  // The index's interrupt count; an index the driver refuses counts as 0 (every range fails).
  uint32_t max = 0;
  if (hdr.index < num_irqs) {
    auto ii = ops().GetIrqInfo(dev(), hdr.index);
    if (ii) max = ii->count;
  }
  // The core's generic validation, in its order.
  if (hdr.argsz < kMinsz || hdr.index >= num_irqs || hdr.count >= UINT32_MAX - hdr.start ||
      (hdr.flags & ~(kIrqDataMask | kIrqActionMask)))
    return -EINVAL;
  if (hdr.start >= max || hdr.start + hdr.count > max) return -EINVAL;
  size_t elem;
  switch (hdr.flags & kIrqDataMask) {
    case VFIO_IRQ_SET_DATA_NONE: elem = 0; break;
    case VFIO_IRQ_SET_DATA_BOOL: elem = 1; break;
    case VFIO_IRQ_SET_DATA_EVENTFD: elem = 4; break;
    default: return -EINVAL;  // not exactly one data type
  }
  const size_t data_size = elem * hdr.count;
  if (elem && hdr.argsz - kMinsz < data_size) return -EINVAL;
  vfio::SetIrqsRequest req{hdr.flags, hdr.index, hdr.start, hdr.count};
  std::vector<uint8_t> bools;
  std::vector<int32_t> fds;
  if (elem && VB_FAIL_POINT("uapi.irq_set_data")) return -ENOMEM;  // the kernel's memdup_user
  if (elem == 1) {
    bools.resize(hdr.count);
    if (CopyFromUser(bools.data(), arg + kMinsz, data_size) != 0) return -EFAULT;
    req.bools = bools;
  } else if (elem == 4) {
    fds.resize(hdr.count);
    if (CopyFromUser(fds.data(), arg + kMinsz, data_size) != 0) return -EFAULT;
    req.fds = fds;
  }
  // Several actions (or none) find no handler in the driver: ENOTTY, after the data was read.
  if (!OneBit(hdr.flags & kIrqActionMask)) return -ENOTTY;
  auto r = ops().SetIrqs(dev(), req);
  // 0, or the positive count of vectors available when fewer exist than asked (nothing enabled).
  return r.has_value() ? *r : -static_cast<long>(r.error().errnum);
}

long DeviceFileObject::GetHotResetInfo(unsigned long arg) {
  constexpr size_t kMinsz = sizeof(vfio_pci_hot_reset_info);  // end of count: 12
  vfio_pci_hot_reset_info hdr;
  if (CopyFromUser(&hdr, arg, kMinsz) != 0) return -EFAULT;
  if (hdr.argsz < kMinsz) return -EINVAL;
  hdr.flags = 0;
  auto deps = ops().GetPciHotResetInfo(dev());
  if (!deps) return -deps.error().errnum;  // ENODEV (no slot/bus reset): nothing back
  const uint64_t n = deps->size();
  if (hdr.argsz < kMinsz + n * sizeof(vfio_pci_dependent_device)) {
    hdr.count = static_cast<uint32_t>(n);
    return CopyToUser(arg, &hdr, kMinsz) ? -EFAULT : -ENOSPC;
  }
  // The fill fails on a device without an IOMMU group: the header still goes back (flags 0, the
  // caller's count), with EPERM.
  if (std::any_of(deps->begin(), deps->end(), [](const auto& d) { return !d.has_group; }))
    return CopyToUser(arg, &hdr, kMinsz) ? -EFAULT : -EPERM;
  hdr.count = static_cast<uint32_t>(n);
  if (CopyToUser(arg, &hdr, kMinsz) != 0) return -EFAULT;
  std::vector<vfio_pci_dependent_device> out(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& d = (*deps)[i];
    out[i] = vfio_pci_dependent_device{d.group_id, d.segment, d.bus, d.devfn};
  }
  return CopyToUser(arg + kMinsz, out.data(), n * sizeof(out[0])) ? -EFAULT : 0;
}

long DeviceFileObject::HotReset(unsigned long arg) {
  constexpr size_t kMinsz = sizeof(vfio_pci_hot_reset);  // end of count: 12
  vfio_pci_hot_reset hdr;
  if (CopyFromUser(&hdr, arg, kMinsz) != 0) return -EFAULT;
  if (hdr.argsz < kMinsz || hdr.flags != 0) return -EINVAL;
  // The affected set bounds how many fds we read (and says ENODEV when no reset is possible).
  auto deps = ops().GetPciHotResetInfo(dev());
  if (!deps) return -deps.error().errnum;
  if (hdr.count == 0 || hdr.count > deps->size()) return -EINVAL;
  // 6.1 reads `count` fds whatever argsz says.
  std::vector<int32_t> fds(hdr.count);
  if (CopyFromUser(fds.data(), arg + kMinsz, fds.size() * sizeof(int32_t)) != 0) return -EFAULT;
  std::vector<std::shared_ptr<FileObject>> held;  // keeps each group file alive for the call
  std::vector<vfio::GroupFile*> groups;
  for (int32_t fd : fds) {
    FdTable::Entry e = fds_.Lookup(fd);
    if (e.state == FdTable::State::kInherited) return -EBADF;
    if (e.state == FdTable::State::kNotOurs) return FdIsOpen(fd) ? -EINVAL : -EBADF;
    auto* g = dynamic_cast<GroupFileObject*>(e.object.get());
    if (!g) return -EINVAL;
    groups.push_back(&g->group_file());
    held.push_back(std::move(e.object));
  }
  return Errno(ops().PciHotReset(dev(), groups));
}

long DeviceFileObject::Feature(unsigned long arg) {
  constexpr size_t kMinsz = offsetof(vfio_device_feature, data);  // end of flags: 8
  vfio_device_feature f;
  if (CopyFromUser(&f, arg, kMinsz) != 0) return -EFAULT;
  if (f.argsz < kMinsz) return -EINVAL;
  if (f.flags & ~(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
                  VFIO_DEVICE_FEATURE_PROBE))
    return -EINVAL;
  if (!(f.flags & VFIO_DEVICE_FEATURE_PROBE) && (f.flags & VFIO_DEVICE_FEATURE_SET) &&
      (f.flags & VFIO_DEVICE_FEATURE_GET))
    return -EINVAL;
  const uint32_t index = f.flags & VFIO_DEVICE_FEATURE_MASK;
  switch (index) {
    case VFIO_DEVICE_FEATURE_MIGRATION:
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
      return -ENOTTY;  // the core's features: no driver here has migration or logging ops
  }
  auto sup = ops().Feature(dev(), index);
  if (!sup) return -sup.error().errnum;
  // vfio_check_feature: an op the feature lacks, EINVAL; PROBE, 0; neither GET nor SET, EINVAL;
  // a payload shorter than the feature's, EINVAL.
  const uint32_t ops_asked = f.flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
  if (((ops_asked & VFIO_DEVICE_FEATURE_GET) && !sup->get) || ((ops_asked & VFIO_DEVICE_FEATURE_SET) && !sup->set))
    return -EINVAL;
  if (f.flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (!ops_asked) return -EINVAL;
  if (f.argsz - kMinsz < sup->minsz) return -EINVAL;
  if (ops_asked & VFIO_DEVICE_FEATURE_GET) return -ENOTTY;  // no driver feature here takes GET
  std::vector<uint8_t> payload(sup->minsz);
  if (!payload.empty() && CopyFromUser(payload.data(), arg + kMinsz, payload.size()) != 0) return -EFAULT;
  return Errno(ops().SetFeature(dev(), index, payload));
}

long DeviceFileObject::Ioeventfd(unsigned long arg) {
  constexpr size_t kMinsz = offsetof(vfio_device_ioeventfd, fd) + sizeof(int32_t);  // end of fd: 28
  vfio_device_ioeventfd e{};
  if (CopyFromUser(&e, arg, kMinsz) != 0) return -EFAULT;
  if (e.argsz < kMinsz) return -EINVAL;
  if (e.flags & ~VFIO_DEVICE_IOEVENTFD_SIZE_MASK) return -EINVAL;
  // Exactly one size bit, and fd -1 (delete) or an fd.
  const uint32_t width = e.flags & VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
  if (!OneBit(width) || e.fd < -1) return -EINVAL;
  return Errno(ops().Ioeventfd(dev(), vfio::IoeventfdRequest{.offset = e.offset, .data = e.data, .width = width, .fd = e.fd}));
}

ssize_t DeviceFileObject::Pread(void* buf, size_t count, off_t offset) {
  ssize_t r;
  if (offset < 0) {
    r = -EINVAL;
  } else if (count == 0) {
    r = 0;
  } else {
    // Bounce: the driver never touches the user's buffer, so a bad one answers EFAULT.
    std::unique_ptr<uint8_t[]> tmp(VB_FAIL_POINT("uapi.rw_bounce") ? nullptr : new (std::nothrow) uint8_t[count]);
    if (!tmp) {
      r = -ENOMEM;
    } else {
      auto n = ops().Read(dev(), tmp.get(), count, static_cast<uint64_t>(offset));
      if (!n)
        r = -n.error().errnum;
      else
        r = CopyToUser(reinterpret_cast<uint64_t>(buf), tmp.get(), *n) ? -EFAULT
                                                                       : static_cast<ssize_t>(*n);
    }
  }
  if (trace::Enabled()) trace::ReadWrite(kind(), false, count, offset, r);
  return r;
}

ssize_t DeviceFileObject::Pwrite(const void* buf, size_t count, off_t offset) {
  ssize_t r;
  if (offset < 0) {
    r = -EINVAL;
  } else if (count == 0) {
    r = 0;
  } else {
    std::unique_ptr<uint8_t[]> tmp(VB_FAIL_POINT("uapi.rw_bounce") ? nullptr : new (std::nothrow) uint8_t[count]);
    if (!tmp) {
      r = -ENOMEM;
    } else if (CopyFromUser(tmp.get(), reinterpret_cast<uint64_t>(buf), count) != 0) {
      r = -EFAULT;
    } else {
      auto n = ops().Write(dev(), tmp.get(), count, static_cast<uint64_t>(offset));
      r = n ? static_cast<ssize_t>(*n) : -n.error().errnum;
    }
  }
  if (trace::Enabled()) trace::ReadWrite(kind(), true, count, offset, r);
  return r;
}

void* DeviceFileObject::Mmap(void* addr, size_t length, int prot, int flags, off_t offset,
                             int* err) {
  auto fail = [&](int e) {
    *err = e;
    if (trace::Enabled()) trace::Mmap(kind(), length, prot, flags, offset, e);
    return MAP_FAILED;
  };
  if ((flags & MAP_SHARED) == 0) return fail(EINVAL);  // MAP_SHARED or MAP_SHARED_VALIDATE
  if (length == 0 || offset < 0 || (offset & (kPageSize - 1))) return fail(EINVAL);
  const uint64_t off = static_cast<uint64_t>(offset);
  const uint64_t len = (length + kPageSize - 1) & ~(kPageSize - 1);
  if (len < length) return fail(EINVAL);
  // The region holding `offset` (vfio-pci: index = offset >> 40).
  const uint32_t n = ops().GetInfo(dev()).num_regions;
  std::optional<vfio::RegionInfo> region;
  for (uint32_t i = 0; i < n && !region; ++i) {
    auto ri = ops().GetRegionInfo(dev(), i);
    if (!ri || ri->size == 0) continue;
    uint64_t span = (ri->size + kPageSize - 1) & ~(kPageSize - 1);
    if (off >= ri->offset && off - ri->offset < span) region = std::move(*ri);
  }
  if (!region || !(region->flags & VFIO_REGION_INFO_FLAG_MMAP)) return fail(EINVAL);
  const uint64_t within = off - region->offset;
  const uint64_t span = (region->size + kPageSize - 1) & ~(kPageSize - 1);
  if (len > span - within) return fail(EINVAL);
  auto target = ops().Mmap(dev(), off, len, prot);
  if (!target) return fail(target.error().errnum);
  int saved = errno;
  long p;
  if (target->trapped) {
    // Register pages: no access, so every load and store faults into the dispatcher, which finds
    // this mapping in the TrapMap. Private anonymous pages, never populated.
    if (!faults::FaultDispatcher::Install()) return fail(ENODEV);
    const int keep = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
    p = syscall(SYS_mmap, addr, length, static_cast<long>(PROT_NONE),
                static_cast<long>(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | keep), -1L, 0L);
    if (p != -1) {
      if (keep & MAP_FIXED) faults::TrapMap::Global().Remove(static_cast<uint64_t>(p), len);
      auto added = faults::TrapMap::Global().Add(static_cast<uint64_t>(p), len,
                                                 std::make_shared<DeviceMmioTarget>(file_, prot), off);
      if (!added) {
        syscall(SYS_munmap, p, length);
        errno = saved;
        return fail(ENOMEM);
      }
    }
  } else {
    // Variadic arguments as longs (the kernel reads whole registers).
    p = syscall(SYS_mmap, addr, length, static_cast<long>(prot), static_cast<long>(flags | MAP_SHARED),
                static_cast<long>(target->fd), static_cast<long>(target->fd_offset + within));
  }
  int e = errno;
  errno = saved;
  if (p == -1) return fail(e);
  *err = 0;
  if (trace::Enabled()) trace::Mmap(kind(), length, prot, flags, offset, 0);
  return reinterpret_cast<void*>(p);
}

}  // namespace uapi
