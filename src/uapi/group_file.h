// uapi::GroupFileObject: an open /dev/vfio/<N> (Linux: the group's struct file and
// vfio_group_fops_unl_ioctl). It holds the user's reference on the vfio::GroupFile; the last fd's
// close drops it (the group's release then runs once every device fd of the group is closed too).
// Ioctls: GET_STATUS, SET_CONTAINER (argument: pointer to a container fd, looked up in the
// FdTable), UNSET_CONTAINER, GET_DEVICE_FD (argument: a NUL-terminated name; the answer is a new
// fd installed O_CLOEXEC in the FdTable); anything else ENOTTY.
// No state of its own; thread-safe (the VFIO core locks).
#pragma once

#include "base/ref_counted.h"
#include "uapi/fd_table.h"
#include "uapi/file_object.h"
#include "vfio/group_file.h"

namespace uapi {

class GroupFileObject final : public FileObject {
 public:
  GroupFileObject(vb::RefPtr<vfio::GroupFile> file, FdTable& fds)
      : file_(std::move(file)), fds_(fds) {}

  const char* kind() const override { return "group"; }
  long Ioctl(unsigned long request, unsigned long arg) override;

  vfio::GroupFile& group_file() const { return *file_; }

 private:
  long Dispatch(unsigned long request, unsigned long arg);
  long SetContainer(unsigned long arg);
  long GetDeviceFd(unsigned long arg);

  const vb::RefPtr<vfio::GroupFile> file_;
  FdTable& fds_;
};

}  // namespace uapi
