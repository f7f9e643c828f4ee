// vfio::Group: VFIO's view of one IOMMU group (Linux: struct vfio_group), the object behind
// /dev/vfio/<id>. It exists while at least one VFIO device of the IOMMU group is registered
// (`drivers_`); a user's GroupFile keeps its memory alive after that, as a zombie that answers
// ENODEV.
//
// Locks (outer → inner; the whole order is in base/lock_order.h):
//   group_mu_  (kVfioGroup)      container_, container_users_, opened_, dead_: every group-file
//                                operation and device open/close through the group.
//   device_mu_ (kVfioDeviceList) devices_: registration and name lookup. It protects only VFIO
//                                devices on this list; it says nothing about which devices the
//                                IOMMU group holds (that is iommu::Group's own lock).
#pragma once

#include <vector>

#include "base/live_count.h"
#include "base/mutex.h"
#include "base/ref_counted.h"
#include "iommu/group.h"
#include "vfio/iommu_backend.h"

namespace vfio {

class Container;
class Device;

class Group : public vb::RefCounted<Group> {
 public:
  ~Group();

  int id() const { return id_; }
  GroupType type() const { return type_; }
  iommu::Group& iommu_group() const { return *iommu_group_; }

  // Devices registered in this group (snapshot).
  std::vector<vb::RefPtr<Device>> Devices() const EXCLUDES(device_mu_);
  bool attached_to_container() const EXCLUDES(group_mu_);
  bool dead() const EXCLUDES(group_mu_);

 private:
  friend class Vfio;
  friend class GroupFile;
  friend class DeviceFile;
  friend class Container;
  Group(int id, vb::RefPtr<iommu::Group> iommu_group, GroupType type);

  // Attach to / detach from a container (Linux vfio_container_attach_group / detach).
  vb::Result<void> AttachToContainerLocked(vb::RefPtr<Container> container) REQUIRES(group_mu_);
  void DetachFromContainerLocked() REQUIRES(group_mu_);

  const int id_;
  const vb::RefPtr<iommu::Group> iommu_group_;
  const GroupType type_;

  mutable vb::Mutex group_mu_{vb::LockRank::kVfioGroup};  // container binding and opener state
  vb::RefPtr<Container> container_ GUARDED_BY(group_mu_);
  int container_users_ GUARDED_BY(group_mu_) = 0;  // 1 for the group file + 1 per open device
  bool opened_ GUARDED_BY(group_mu_) = false;      // a GroupFile exists
  bool dead_ GUARDED_BY(group_mu_) = false;        // last device unregistered

  mutable vb::Mutex device_mu_{vb::LockRank::kVfioDeviceList};  // guards devices_ only
  std::vector<Device*> devices_ GUARDED_BY(device_mu_);         // non-owning; registered devices

  [[no_unique_address]] vb::LiveCount<Group> live_;
  int drivers_ = 0;  // registered devices; guarded by the Vfio group registry lock
};

}  // namespace vfio
