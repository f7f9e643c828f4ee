#include "uapi/group_file.h"

#include "uapi/errno_result.h"

#include <fcntl.h>
#include <linux/vfio.h>

#include <cerrno>
#include <cstddef>
#include <memory>

#include "uapi/container_file.h"
#include "uapi/device_file.h"
#include "uapi/trace.h"
#include "uapi/user_copy.h"
#include "vfio/device.h"
#include "vfio/device_file.h"

namespace uapi {
namespace {

constexpr size_t kPageSize = 4096;


}  // namespace

long GroupFileObject::Ioctl(unsigned long request, unsigned long arg) {
  long r = Dispatch(request, arg);
  if (trace::Enabled()) trace::Ioctl(kind(), request, arg, r);
  return r;
}

long GroupFileObject::Dispatch(unsigned long request, unsigned long arg) {
  switch (request) {
    case VFIO_GROUP_GET_STATUS: {
      vfio_group_status status;
      constexpr size_t kMinsz = sizeof(status);  // end of flags: 8
      if (CopyFromUser(&status, arg, kMinsz) != 0) return -EFAULT;
      if (status.argsz < kMinsz) return -EINVAL;
      auto flags = file_->GetStatus();
      if (!flags) return -flags.error().errnum;
      status.flags = *flags;
      return CopyToUser(arg, &status, kMinsz) ? -EFAULT : 0;
    }
    case VFIO_GROUP_SET_CONTAINER:
      return SetContainer(arg);
    case VFIO_GROUP_UNSET_CONTAINER:
      return Errno(file_->UnsetContainer());
    case VFIO_GROUP_GET_DEVICE_FD:
      return GetDeviceFd(arg);
    default:
      return -ENOTTY;
  }
}

long GroupFileObject::SetContainer(unsigned long arg) {
  int fd;
  if (CopyFromUser(&fd, arg, sizeof(fd)) != 0) return -EFAULT;
  FdTable::Entry e = fds_.Lookup(fd);
  // An fd inherited across fork is, for VFIO, not open in this process.
  if (e.state == FdTable::State::kInherited) return -EBADF;
  if (e.state == FdTable::State::kNotOurs) return FdIsOpen(fd) ? -EINVAL : -EBADF;
  // Keep the object alive for the call even if another thread closes the fd meanwhile.
  std::shared_ptr<FileObject> obj = std::move(e.object);
  auto* container = dynamic_cast<ContainerFileObject*>(obj.get());
  // 6.1: an open fd that is not a container answers EINVAL (6.2+: EBADFD). The group's own
  // "already has a container" EINVAL comes first in the kernel; the errno is the same.
  if (!container) return -EINVAL;
  return Errno(file_->SetContainer(container->container_ref()));
}

long GroupFileObject::GetDeviceFd(unsigned long arg) {
  std::string name;
  if (int r = StrndupUser(arg, kPageSize, &name); r != 0) return r;
  auto dev = file_->GetDevice(name);
  if (!dev) return -dev.error().errnum;
  auto obj = std::make_shared<DeviceFileObject>(std::move(*dev), fds_);
  // An Install failure (EMFILE) releases the object, i.e. closes the device again.
  return fds_.Install(std::move(obj), O_CLOEXEC);
}

}  // namespace uapi
