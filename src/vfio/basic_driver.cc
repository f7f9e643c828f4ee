#include "vfio/basic_driver.h"

namespace vfio {

vb::Result<void> BasicDriver::Probe(hw::Device& dev) {
  vb::RefPtr<Device> vdev = TRY(vfio_.RegisterDevice(dev, *this));
  vb::MutexLock l(mu_);
  bound_[&dev] = std::move(vdev);
  return vb::Ok();
}

void BasicDriver::Remove(hw::Device& dev) {
  vb::RefPtr<Device> vdev;
  {
    vb::MutexLock l(mu_);
    auto it = bound_.find(&dev);
    if (it == bound_.end()) return;
    vdev = it->second;
  }
  vfio_.UnregisterDevice(*vdev);
  vb::MutexLock l(mu_);
  bound_.erase(&dev);
}

vb::RefPtr<Device> BasicDriver::VfioDeviceOf(const hw::Device& dev) const {
  vb::MutexLock l(mu_);
  auto it = bound_.find(&dev);
  return it == bound_.end() ? nullptr : it->second;
}

}  // namespace vfio
