// vfio::BasicDriver ("vfio-platform"): a VFIO bus driver that binds any hw::Device and registers it
// with the Vfio core, exposing no regions and no interrupts of its own. It is how platform devices
// reach VFIO, and how the core is exercised before a richer driver (vfio-pci) binds. Like every
// VFIO driver it manages DMA itself (binding it does not claim the group's default domain). Remove
// blocks in Vfio::UnregisterDevice until the device's handles are closed.
//
// Locks: mu_ (kLeaf) guards the map of bound devices; it is never held across registration calls.
#pragma once

#include <atomic>
#include <map>

#include "base/mutex.h"
#include "hw/driver.h"
#include "vfio/vfio.h"

namespace vfio {

class BasicDriver final : public hw::Driver, public DeviceOps {
 public:
  explicit BasicDriver(Vfio& vfio) : vfio_(vfio) {}

  // hw::Driver
  std::string_view name() const override { return "vfio-platform"; }
  bool driver_managed_dma() const override { return true; }
  vb::Result<void> Probe(hw::Device& dev) override EXCLUDES(mu_);
  void Remove(hw::Device& dev) override EXCLUDES(mu_);

  // DeviceOps
  std::string_view driver_name() const override { return name(); }
  void Request(Device&, unsigned count) override { requests_.fetch_add(1); }

  vb::RefPtr<Device> VfioDeviceOf(const hw::Device& dev) const EXCLUDES(mu_);
  uint64_t requests() const { return requests_.load(); }

 private:
  Vfio& vfio_;
  mutable vb::Mutex mu_{vb::LockRank::kLeaf};  // guards bound_
  std::map<const hw::Device*, vb::RefPtr<Device>> bound_ GUARDED_BY(mu_);
  std::atomic<uint64_t> requests_{0};
};

}  // namespace vfio
