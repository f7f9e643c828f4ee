// vfio::GroupFile: an open /dev/vfio/<id> (Linux: the group's struct file). Single-open per group.
// Refcounted: the user's handle holds one reference and every DeviceFile opened through it holds
// another, so its release — detaching the group from its container — runs only when the user has
// closed it *and* every device handle of the group is closed.
#pragma once

#include <string_view>

#include "base/live_count.h"
#include "base/ref_counted.h"
#include "base/result.h"

namespace vfio {

class Container;
class DeviceFile;
class Group;

// VFIO_GROUP_FLAGS_*
inline constexpr uint32_t kGroupFlagViable = 1u << 0;
inline constexpr uint32_t kGroupFlagContainerSet = 1u << 1;

class GroupFile : public vb::RefCounted<GroupFile> {
 public:
  ~GroupFile();  // release: detach from the container, allow the next open

  Group& group() const { return *group_; }

  // VFIO_GROUP_GET_STATUS flags. ENODEV once the group's last device has gone.
  vb::Result<uint32_t> GetStatus();
  // VFIO_GROUP_SET_CONTAINER. EINVAL: already in a container; ENODEV: group gone; EPERM/EBUSY:
  // DMA ownership (a kernel driver is bound to a member / the group is in use); a backend's
  // attach error if the container has a backend.
  vb::Result<void> SetContainer(const vb::RefPtr<Container>& container);
  // VFIO_GROUP_UNSET_CONTAINER. EINVAL: no container; EBUSY: device handles are open.
  vb::Result<void> UnsetContainer();
  // VFIO_GROUP_GET_DEVICE_FD. ENODEV: no registered device of *this* group matches; EINVAL: no
  // container, or the container has no backend; the driver's open error.
  vb::Result<vb::RefPtr<DeviceFile>> GetDevice(std::string_view name);

 private:
  friend class Vfio;
  explicit GroupFile(vb::RefPtr<Group> group);
  vb::RefPtr<Group> group_;
  [[no_unique_address]] vb::LiveCount<GroupFile> live_;
};

}  // namespace vfio
