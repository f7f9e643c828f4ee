#include "hw/device.h"

namespace hw {

Device::~Device() = default;

Driver* Device::driver() const {
  vb::MutexLock l(driver_mu_);
  return driver_;
}

}  // namespace hw
