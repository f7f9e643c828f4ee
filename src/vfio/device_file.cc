#include "vfio/device_file.h"

#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/group.h"
#include "vfio/group_file.h"

namespace vfio {

DeviceFile::~DeviceFile() {
  Device& dev = *device_;
  Group& g = dev.group();
  {
    vb::MutexLock l(g.group_mu_);
    vb::MutexLock ol(dev.open_mu_);
    if (--dev.open_count_ == 0) {
      dev.ops().CloseDevice(dev);
      if (g.container_) {
        (void)g.container_->WithBackend([&](BackendInstance& b) -> vb::Result<void> {
          b.UnregisterDevice(dev);
          return vb::Ok();
        });
      }
      --g.container_users_;
    }
  }
  dev.PutRegistration();
  // group_file_ is released after this body: the group file's own release (detach from the
  // container) may run now if the user already closed it.
}

}  // namespace vfio
