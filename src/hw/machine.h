// hw::Machine: the simulated platform. It owns the PCI hierarchy (root bus, bridges and the buses
// behind them), the platform bus, and the executor on which devices do background work. Devices
// are plugged in at build time or hot-plugged later, and removed orderly or by surprise.
//
// The layers above install PlatformHooks (the IOMMU core) and are called on every plug, removal
// and driver bind, always with no Machine lock held, so a hook may block (vfio-pci's remove waits
// for user handles to close).
//
// Locks: bus_mu_ (kHwBus) guards every bus's device list and the device list of the machine.
// Removal of one device is serialized by the device's state (present → removing is a CAS).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/driver.h"
#include "hw/executor.h"
#include "hw/pci_bus.h"
#include "hw/pci_device.h"
#include "hw/platform_device.h"

namespace hw {

enum class RemovalKind : uint8_t {
  kOrderly,   // echo 1 > remove: drivers unbind while the device still answers
  kSurprise,  // the device is gone first (config and BAR reads return all-ones, DMA stops),
              // then drivers unbind
};

class Machine {
 public:
  Machine();
  ~Machine();  // removes every device (orderly), then stops the executor
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Installs the IOMMU core's hooks and probes every device already plugged in, in bus order.
  // Null uninstalls (no further calls are made).
  vb::Result<void> SetHooks(PlatformHooks* hooks);

  PciBus* root_bus() const { return root_bus_; }
  PciBus* FindBus(uint8_t number) const EXCLUDES(bus_mu_);

  // Plugs a PCI function into the bus its address names. ENODEV: no such bus; EEXIST: the devfn is
  // taken or a bridge's secondary bus number is already in use; EINVAL: a function > 0 is added to
  // a slot whose function 0 is not multifunction, or a single-function function 0 to a slot that
  // already has other functions; also EINVAL for a device already plugged once. Hooks (IOMMU probe) run after linking; if they
  // fail the device is unlinked again and their error is returned.
  vb::Result<PciDevice*> AddPciDevice(vb::RefPtr<PciDevice> dev) EXCLUDES(bus_mu_);
  vb::Result<PlatformDevice*> AddPlatformDevice(vb::RefPtr<PlatformDevice> dev) EXCLUDES(bus_mu_);

  // Removes a device (for a bridge: everything below it first, deepest first). Unbinds the driver
  // (which may block), tells the hooks, unlinks. ENODEV if the device is not present (already
  // removed or being removed by another thread).
  vb::Result<void> RemoveDevice(Device& dev, RemovalKind kind = RemovalKind::kOrderly) EXCLUDES(bus_mu_);

  // Driver binding (Linux driver core). EBUSY from the hooks when DMA ownership forbids it,
  // EEXIST if a driver is already bound, ENODEV if the device is not present; Probe's error
  // otherwise.
  vb::Result<void> BindDriver(Device& dev, Driver& drv);
  vb::Result<void> UnbindDriver(Device& dev);

  // Every present device: PCI in depth-first bus order (a bridge before what is behind it), then
  // platform devices in plug order.
  std::vector<vb::RefPtr<Device>> Devices() const EXCLUDES(bus_mu_);
  std::vector<vb::RefPtr<PciDevice>> PciDevices() const EXCLUDES(bus_mu_);
  vb::RefPtr<Device> FindDevice(const std::string& name) const EXCLUDES(bus_mu_);

  Executor& executor() { return executor_; }

 private:
  friend class PciBus;
  void CollectPciLocked(const PciBus* bus, std::vector<vb::RefPtr<PciDevice>>& out) const
      REQUIRES(bus_mu_);
  void UnlinkLocked(Device& dev) REQUIRES(bus_mu_);

  mutable vb::Mutex bus_mu_{vb::LockRank::kHwBus};  // guards buses' device lists, devices_, buses_
  std::vector<std::unique_ptr<PciBus>> buses_ GUARDED_BY(bus_mu_);  // never shrinks
  PciBus* root_bus_ = nullptr;
  // Plug order; holds the machine's reference to each present device.
  std::vector<vb::RefPtr<Device>> devices_ GUARDED_BY(bus_mu_);
  std::atomic<PlatformHooks*> hooks_{nullptr};
  Executor executor_;
};

}  // namespace hw
