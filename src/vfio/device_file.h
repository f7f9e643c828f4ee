// vfio::DeviceFile: one open device handle (Linux: a device fd obtained by GET_DEVICE_FD). It holds
// a registration reference on the device (so unregistration waits for it), a reference on the
// GroupFile it came through (so the group stays in its container), and counts as a container user.
// Several DeviceFiles may be open on one device; the first open calls the driver's OpenDevice,
// the last close its CloseDevice.
#pragma once

#include "base/live_count.h"
#include "base/ref_counted.h"

namespace vfio {

class Device;
class GroupFile;

class DeviceFile : public vb::RefCounted<DeviceFile> {
 public:
  ~DeviceFile();  // release: last close, then the registration reference is dropped

  Device& device() const { return *device_; }

 private:
  friend class GroupFile;
  DeviceFile(vb::RefPtr<Device> device, vb::RefPtr<GroupFile> group_file)
      : device_(std::move(device)), group_file_(std::move(group_file)) {}

  vb::RefPtr<Device> device_;
  vb::RefPtr<GroupFile> group_file_;
  [[no_unique_address]] vb::LiveCount<DeviceFile> live_;
};

}  // namespace vfio
