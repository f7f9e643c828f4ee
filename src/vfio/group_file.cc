#include "vfio/group_file.h"

#include "base/fail_point.h"

#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/device_file.h"
#include "vfio/group.h"

namespace vfio {

GroupFile::GroupFile(vb::RefPtr<Group> group) : group_(std::move(group)) {}

GroupFile::~GroupFile() {
  Group& g = *group_;
  vb::MutexLock l(g.group_mu_);
  if (g.container_) g.DetachFromContainerLocked();
  g.opened_ = false;
}

vb::Result<uint32_t> GroupFile::GetStatus() {
  Group& g = *group_;
  vb::MutexLock l(g.group_mu_);
  if (g.dead_) return vb::Err(ENODEV, "group: torn down");
  if (g.container_) return kGroupFlagViable | kGroupFlagContainerSet;
  return g.iommu_group_->DmaOwnerClaimed() ? 0u : kGroupFlagViable;
}

vb::Result<void> GroupFile::SetContainer(const vb::RefPtr<Container>& container) {
  if (!container) return vb::Err(EBADF, "set_container: no container");
  Group& g = *group_;
  vb::MutexLock l(g.group_mu_);
  if (g.dead_) return vb::Err(ENODEV, "set_container: group torn down");
  if (g.container_) return vb::Err(EINVAL, "set_container: group already in a container");
  return g.AttachToContainerLocked(container);
}

vb::Result<void> GroupFile::UnsetContainer() {
  Group& g = *group_;
  vb::MutexLock l(g.group_mu_);
  if (!g.container_) return vb::Err(EINVAL, "unset_container: no container");
  if (g.container_users_ != 1) return vb::Err(EBUSY, "unset_container: device handles are open");
  g.DetachFromContainerLocked();
  return vb::Ok();
}

vb::Result<vb::RefPtr<DeviceFile>> GroupFile::GetDevice(std::string_view name) {
  Group& g = *group_;
  vb::MutexLock l(g.group_mu_);
  // Only this group's own device list is searched; a registration reference taken here keeps the
  // device from finishing unregistration until the handle is closed.
  vb::RefPtr<Device> dev;
  {
    vb::MutexLock dl(g.device_mu_);
    for (Device* d : g.devices_) {
      if (d->ops().Match(*d, name) && d->TryGetRegistration()) {
        dev = vb::RefPtr<Device>(d);
        break;
      }
    }
  }
  if (!dev) return vb::Err(ENODEV, "get_device: no such device in this group");
  auto fail = [&](int err, const char* why) {
    dev->PutRegistration();
    return vb::Err(err, why);
  };
  if (!g.container_) return fail(EINVAL, "get_device: group has no container");
  if (!g.container_->has_backend()) return fail(EINVAL, "get_device: container has no IOMMU backend");

  {
    vb::MutexLock ol(dev->open_mu_);
    if (dev->open_count_ == 0) {
      (void)g.container_->WithBackend([&](BackendInstance& b) -> vb::Result<void> {
        b.RegisterDevice(*dev);
        return vb::Ok();
      });
      auto opened = dev->ops().OpenDevice(*dev);
      if (!opened.has_value()) {
        (void)g.container_->WithBackend([&](BackendInstance& b) -> vb::Result<void> {
          b.UnregisterDevice(*dev);
          return vb::Ok();
        });
        dev->PutRegistration();
        return std::unexpected(opened.error());
      }
      ++g.container_users_;
    }
    // The device file's allocation (Linux: anon_inode_getfile after the open): failing it closes
    // the device again, exactly as the last close would.
    if (VB_FAIL_POINT("vfio.device_file_alloc")) {
      if (dev->open_count_ == 0) {
        dev->ops().CloseDevice(*dev);
        (void)g.container_->WithBackend([&](BackendInstance& b) -> vb::Result<void> {
          b.UnregisterDevice(*dev);
          return vb::Ok();
        });
        --g.container_users_;
      }
      dev->PutRegistration();
      return vb::Err(ENOMEM, "get_device: file allocation failed");
    }
    ++dev->open_count_;
  }
  return vb::RefPtr<DeviceFile>(new DeviceFile(dev, vb::RefPtr<GroupFile>(this)));
}

}  // namespace vfio
