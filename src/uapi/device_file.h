// uapi::DeviceFileObject: a device fd returned by GET_DEVICE_FD (Linux: the device's struct file,
// vfio_device_fops, plus the generic halves of vfio-pci's ioctls). It decodes the user's structs,
// applies the kernel's argsz/flags checks (GET_INFO, GET_REGION_INFO with its capability chain and
// the argsz-grow rule, GET_IRQ_INFO, SET_IRQS with the core's generic validation, RESET, the hot
// reset pair, DEVICE_FEATURE), and hands typed requests to the driver's vfio::DeviceOps. pread /
// pwrite go to DeviceOps::Read/Write through a bounce buffer (a bad user buffer answers EFAULT);
// mmap maps the driver's MmapTarget with the raw mmap syscall (never the interposed libc one).
// It holds the user's reference on the vfio::DeviceFile; the last fd's close releases it.
// No state of its own; thread-safe (the driver serializes what it must).
#pragma once

#include "base/ref_counted.h"
#include "uapi/fd_table.h"
#include "uapi/file_object.h"
#include "vfio/device.h"  // DeviceFile's inline members need the complete type
#include "vfio/device_file.h"

namespace vfio {
class Device;
class DeviceOps;
}  // namespace vfio

namespace uapi {

class DeviceFileObject final : public FileObject {
 public:
  DeviceFileObject(vb::RefPtr<vfio::DeviceFile> file, FdTable& fds)
      : file_(std::move(file)), fds_(fds) {}

  const char* kind() const override { return "device"; }
  long Ioctl(unsigned long request, unsigned long arg) override;
  ssize_t Pread(void* buf, size_t count, off_t offset) override;
  ssize_t Pwrite(const void* buf, size_t count, off_t offset) override;
  // MAP_SHARED only (EINVAL), page-aligned offset and non-zero length (EINVAL), inside one region
  // with the MMAP flag and within its page-rounded size (EINVAL); then the driver's target is
  // mapped at target.fd_offset + (offset - region.offset). Returns the address, or MAP_FAILED
  // with *err set (0 on success).
  void* Mmap(void* addr, size_t length, int prot, int flags, off_t offset, int* err) override;

  vfio::DeviceFile& device_file() const { return *file_; }

 private:
  long Dispatch(unsigned long request, unsigned long arg);
  long GetInfo(unsigned long arg);
  long GetRegionInfo(unsigned long arg);
  long GetIrqInfo(unsigned long arg);
  long SetIrqs(unsigned long arg);
  long GetHotResetInfo(unsigned long arg);
  long HotReset(unsigned long arg);
  long Feature(unsigned long arg);
  long Ioeventfd(unsigned long arg);
  vfio::Device& dev() const;
  vfio::DeviceOps& ops() const;

  const vb::RefPtr<vfio::DeviceFile> file_;
  FdTable& fds_;
};

}  // namespace uapi
