#include "vfio/device.h"

#include "vfio/group.h"

namespace vfio {

bool DeviceOps::Match(const Device& dev, std::string_view name) const { return dev.name() == name; }

Device::Device(hw::Device& hw, DeviceOps& ops, vb::RefPtr<Group> group, int index)
    : hw_(&hw), ops_(ops), group_(std::move(group)), index_(index) {}

Device::~Device() = default;

int Device::open_count() const {
  vb::MutexLock l(open_mu_);
  return open_count_;
}

bool Device::TryGetRegistration() {
  uint64_t v = registrations_.load(std::memory_order_acquire);
  while (v != 0) {
    if (registrations_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) return true;
  }
  return false;
}

void Device::PutRegistration() {
  if (registrations_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    vb::MutexLock l(release_mu_);
    released_cv_.SignalAll();
  }
}

}  // namespace vfio
