// hw::Driver: something that binds to devices (Linux: struct device_driver). Binding goes through
// the Machine, which first asks the platform hooks (the IOMMU core's DMA-ownership check) whether
// the bind is allowed. Drivers that manage DMA themselves (vfio-pci, pci-stub, pcieport) do not
// claim the group's default domain.
#pragma once

#include <string_view>

#include "base/result.h"

namespace hw {

class Device;

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string_view name() const = 0;
  virtual bool driver_managed_dma() const = 0;
  // Called with no hw lock held. An error aborts the bind.
  virtual vb::Result<void> Probe(Device& dev) = 0;
  // Called with no hw lock held; may block (vfio-pci waits for every user handle to close).
  virtual void Remove(Device& dev) = 0;
};

// A driver that only occupies a device (a kernel DMA-API driver such as "e1000e", or pci-stub).
class StubDriver final : public Driver {
 public:
  StubDriver(std::string_view name, bool managed_dma) : name_(name), managed_dma_(managed_dma) {}
  std::string_view name() const override { return name_; }
  bool driver_managed_dma() const override { return managed_dma_; }
  vb::Result<void> Probe(Device&) override { return vb::Ok(); }
  void Remove(Device&) override {}

 private:
  std::string_view name_;
  bool managed_dma_;
};

// What the layers above install into a Machine (Linux: the IOMMU core's bus notifier and the
// driver core's DMA configuration). Every call is made with no hw lock held.
class PlatformHooks {
 public:
  virtual ~PlatformHooks() = default;
  // A device was plugged in (boot or hot-plug): probe it into an IOMMU group.
  virtual vb::Result<void> DeviceAdded(Device& dev) = 0;
  // A device is leaving; its driver has already been removed. Leave the IOMMU group.
  virtual void DeviceRemoved(Device& dev) = 0;
  // Before a driver binds. EBUSY when the device's group is owned by a user (VFIO) and the driver
  // does not manage DMA itself.
  virtual vb::Result<void> DriverBinding(Device& dev, const Driver& drv) = 0;
  virtual void DriverUnbound(Device& dev, const Driver& drv) = 0;
};

}  // namespace hw
