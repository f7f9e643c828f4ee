// uapi::VfioNodeTable: the character devices of one vfio::Vfio — /dev/vfio/vfio (a new container
// per open) and /dev/vfio/<N> for every live VFIO group N (Linux: the vfio misc device and the
// group cdevs). The preload library asks it on open() of a path under /dev/vfio; the returned
// FileObject is what the caller installs in the FdTable (Rdev() gives the st_rdev to record).
// It holds no state besides its references; thread-safe (the VFIO core locks).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "uapi/fd_table.h"
#include "uapi/file_object.h"
#include "vfio/vfio.h"

namespace uapi {

class VfioNodeTable final : public NodeTable {
 public:
  // The vfio misc device (10, 196) and the group character devices' major (dynamic on Linux).
  static constexpr unsigned kMiscMajor = 10;
  static constexpr unsigned kVfioMinor = 196;
  static constexpr unsigned kGroupMajor = 242;
  // 6.12 personality only: /dev/iommu (a misc device with a dynamic minor) and the VFIO device
  // cdevs /dev/vfio/devices/vfio<index> (the "vfio-dev" char region; minor = the device index).
  static constexpr unsigned kIommuMinor = 123;
  static constexpr unsigned kVfioDevMajor = 237;

  // `fds`: the table the device fds created by GET_DEVICE_FD are installed in.
  explicit VfioNodeTable(vfio::Vfio& vfio, FdTable& fds = FdTable::Global())
      : vfio_(vfio), fds_(fds) {}

  // "/dev/vfio/vfio" → a ContainerFileObject over a new container; "/dev/vfio/<N>" (decimal) →
  // a GroupFileObject over Vfio::OpenGroup(N). Errors in *err (the object is then null):
  // ENOENT: no such node (no live group N, any other name); EBUSY: the group is already open;
  // ENODEV: the group is being torn down.
  std::shared_ptr<FileObject> Open(const std::string& path, int flags, int* err) override;

  // st_rdev of a node, or nullopt if it does not exist (for fstat/stat of the nodes).
  std::optional<dev_t> Rdev(const std::string& path) const;
  // The group ids that have a node now (for readdir of /dev/vfio).
  std::vector<int> GroupIds() const;

 private:
  // N for "/dev/vfio/<N>", -1 for anything else.
  static int ParseGroupPath(const std::string& path);

  vfio::Vfio& vfio_;
  FdTable& fds_;
};

}  // namespace uapi
