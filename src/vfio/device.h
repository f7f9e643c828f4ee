// vfio::Device: one device driven by a VFIO bus driver (vfio-pci, vfio-platform), registered with
// the Vfio core (Linux: struct vfio_device). The bus driver creates it in its probe and
// unregisters it in its remove; unregistration blocks until every user handle (DeviceFile) on the
// device is closed, re-sending the driver's request (REQ) while it waits, with no lock held.
//
// Lifetime: refcounted memory (the driver, the group's device list and every DeviceFile hold
// references). Separately, `registrations_` is the Linux "refcount": 1 for the registration plus 1
// per open DeviceFile; new opens are refused once it has dropped to 0.
//
// Locks: open_mu_ (kVfioDeviceSet) guards open_count_ and first-open/last-close; the group's
// device-list lock guards membership in the group's list.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/live_count.h"
#include "base/mutex.h"
#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/device.h"
#include "vfio/device_ops.h"

namespace vfio {

class Device;
class Group;

class Device : public vb::RefCounted<Device> {
 public:
  ~Device();

  hw::Device& hw() const { return *hw_; }
  const std::string& name() const { return hw_->name(); }
  DeviceOps& ops() const { return ops_; }
  Group& group() const { return *group_; }
  int index() const { return index_; }  // vfio<index>

  int open_count() const EXCLUDES(open_mu_);
  // Registration + open handles; 0 once unregistration started.
  uint64_t registrations() const { return registrations_.load(std::memory_order_acquire); }

 private:
  friend class Vfio;
  friend class Group;
  friend class GroupFile;
  friend class DeviceFile;
  Device(hw::Device& hw, DeviceOps& ops, vb::RefPtr<Group> group, int index);

  // Raises the registration count unless it already reached 0 (Linux vfio_device_try_get_registration).
  bool TryGetRegistration();
  void PutRegistration();

  vb::RefPtr<hw::Device> hw_;
  DeviceOps& ops_;
  vb::RefPtr<Group> group_;
  const int index_;

  std::atomic<uint64_t> registrations_{1};
  vb::Mutex release_mu_{vb::LockRank::kLeaf};  // pairs with released_cv_ for unregistration
  vb::CondVar released_cv_;

  mutable vb::Mutex open_mu_{vb::LockRank::kVfioDeviceSet};  // guards open_count_
  int open_count_ GUARDED_BY(open_mu_) = 0;
  [[no_unique_address]] vb::LiveCount<Device> live_;
};

}  // namespace vfio
