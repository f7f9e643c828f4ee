#include "hw/machine.h"

#include <algorithm>

namespace hw {

Machine::Machine() {
  vb::MutexLock l(bus_mu_);
  buses_.push_back(std::unique_ptr<PciBus>(new PciBus(*this, 0, nullptr)));
  root_bus_ = buses_.back().get();
}

Machine::~Machine() {
  // Remove leaf-first: the last plugged device is never the parent of an earlier one.
  for (;;) {
    vb::RefPtr<Device> victim;
    {
      vb::MutexLock l(bus_mu_);
      if (devices_.empty()) break;
      victim = devices_.back();
    }
    if (!RemoveDevice(*victim).has_value()) {
      // Another thread is removing it; wait for that to finish.
      std::this_thread::yield();
    }
  }
}

vb::Result<void> Machine::SetHooks(PlatformHooks* hooks) {
  hooks_.store(hooks, std::memory_order_release);
  if (!hooks) return vb::Ok();
  for (auto& dev : Devices()) TRY(hooks->DeviceAdded(*dev));
  return vb::Ok();
}

PciBus* Machine::FindBus(uint8_t number) const {
  vb::MutexLock l(bus_mu_);
  for (auto& b : buses_)
    if (b->number_ == number && !b->dead_)
      return b.get();
  return nullptr;
}

vb::Result<PciDevice*> Machine::AddPciDevice(vb::RefPtr<PciDevice> dev) {
  if (!dev || dev->state() != DeviceState::kDetached) return vb::Err(EINVAL, "machine: device already plugged");
  {
    vb::MutexLock l(bus_mu_);
    PciBus* bus = nullptr;
    for (auto& b : buses_) {
      bool live = !b->dead_;
      if (live && b->number_ == dev->address().bus) bus = b.get();
    }
    if (!bus) return vb::Err(ENODEV, "machine: no such bus");
    if (dev->address().domain != 0) return vb::Err(ENODEV, "machine: no such PCI domain");
    const uint8_t devfn = dev->address().devfn;
    for (PciDevice* d : bus->devices_)
      if (d->address().devfn == devfn) return vb::Err(EEXIST, "machine: devfn taken");
    if (devfn & 7) {
      PciDevice* fn0 = nullptr;
      for (PciDevice* d : bus->devices_)
        if (d->address().devfn == (devfn & ~7)) fn0 = d;
      if (fn0 && !fn0->multifunction())
        return vb::Err(EINVAL, "machine: function > 0 in a single-function slot");
    } else if (!dev->multifunction()) {
      for (PciDevice* d : bus->devices_)
        if ((d->address().devfn & ~7) == devfn)
          return vb::Err(EINVAL, "machine: single-function device into a slot with other functions");
    }
    if (dev->is_bridge()) {
      for (auto& b : buses_) {
        bool live = !b->dead_;
        if (live && b->number_ == dev->secondary_bus_number())
          return vb::Err(EEXIST, "machine: secondary bus number in use");
      }
      buses_.push_back(std::unique_ptr<PciBus>(new PciBus(*this, dev->secondary_bus_number(), dev.get())));
      dev->secondary_ = buses_.back().get();
    }
    dev->bus_ = bus;
    auto pos = std::lower_bound(bus->devices_.begin(), bus->devices_.end(), devfn,
                                [](PciDevice* d, uint8_t v) { return d->address().devfn < v; });
    bus->devices_.insert(pos, dev.get());
    dev->machine_ = this;
    dev->set_state(DeviceState::kPresent);
    devices_.push_back(dev);
  }
  if (PlatformHooks* hooks = hooks_.load(std::memory_order_acquire)) {
    auto r = hooks->DeviceAdded(*dev);
    if (!r.has_value()) {
      dev->set_state(DeviceState::kRemoved);
      vb::MutexLock l(bus_mu_);
      UnlinkLocked(*dev);
      return std::unexpected(r.error());
    }
  }
  return dev.get();
}

vb::Result<PlatformDevice*> Machine::AddPlatformDevice(vb::RefPtr<PlatformDevice> dev) {
  if (!dev || dev->state() != DeviceState::kDetached) return vb::Err(EINVAL, "machine: device already plugged");
  {
    vb::MutexLock l(bus_mu_);
    for (auto& d : devices_)
      if (d->name() == dev->name()) return vb::Err(EEXIST, "machine: name taken");
    dev->machine_ = this;
    dev->set_state(DeviceState::kPresent);
    devices_.push_back(dev);
  }
  if (PlatformHooks* hooks = hooks_.load(std::memory_order_acquire)) {
    auto r = hooks->DeviceAdded(*dev);
    if (!r.has_value()) {
      dev->set_state(DeviceState::kRemoved);
      vb::MutexLock l(bus_mu_);
      UnlinkLocked(*dev);
      return std::unexpected(r.error());
    }
  }
  return dev.get();
}

void Machine::UnlinkLocked(Device& dev) {
  if (dev.bus_type() == BusType::kPci) {
    auto& pci = static_cast<PciDevice&>(dev);
    // The bus behind a departing bridge stays valid memory but is dead: its number may be reused
    // and nothing may follow its (soon dangling) self_ pointer.
    if (pci.secondary_) pci.secondary_->dead_ = true;
    if (PciBus* bus = pci.bus_) std::erase(bus->devices_, &pci);
  }
  // Drop the machine's reference last: the caller keeps its own.
  for (auto it = devices_.begin(); it != devices_.end(); ++it) {
    if (it->get() == &dev) {
      // Every caller holds a reference of its own, so this never destroys the device.
      devices_.erase(it);
      dev.machine_ = nullptr;
      return;
    }
  }
}

vb::Result<void> Machine::RemoveDevice(Device& dev, RemovalKind kind) {
  vb::RefPtr<Device> hold(&dev);
  DeviceState expected = DeviceState::kPresent;
  // Only the thread that moves present → removing performs the removal.
  if (!dev.state_.compare_exchange_strong(expected, DeviceState::kRemoving, std::memory_order_acq_rel))
    return vb::Err(ENODEV, "machine: device not present");

  if (kind == RemovalKind::kSurprise) dev.OnSurpriseRemoval();

  // Children first, deepest first.
  if (dev.bus_type() == BusType::kPci) {
    auto& pci = static_cast<PciDevice&>(dev);
    if (PciBus* sec = pci.secondary_) {
      for (;;) {
        std::vector<PciDevice*> children = sec->devices();
        if (children.empty()) break;
        vb::RefPtr<Device> child(children.back());
        (void)RemoveDevice(*child, kind);
        if (child->state() == DeviceState::kRemoving) std::this_thread::yield();
      }
    }
  }

  (void)UnbindDriver(dev);
  if (PlatformHooks* hooks = hooks_.load(std::memory_order_acquire)) hooks->DeviceRemoved(dev);
  {
    vb::MutexLock l(bus_mu_);
    UnlinkLocked(dev);
  }
  dev.set_state(DeviceState::kRemoved);
  return vb::Ok();
}

vb::Result<void> Machine::BindDriver(Device& dev, Driver& drv) {
  // Serialize bind/unbind of one device (Linux: device_lock). The driver lock is a leaf with
  // respect to the hooks, so the hook runs before it is taken and the state is re-checked.
  if (!dev.present()) return vb::Err(ENODEV, "bind: device not present");
  if (dev.driver()) return vb::Err(EEXIST, "bind: a driver is already bound");
  PlatformHooks* hooks = hooks_.load(std::memory_order_acquire);
  if (hooks) TRY(hooks->DriverBinding(dev, drv));
  auto probed = drv.Probe(dev);
  if (!probed.has_value()) {
    if (hooks) hooks->DriverUnbound(dev, drv);
    return probed;
  }
  bool raced = false;
  {
    vb::MutexLock l(dev.driver_mu_);
    if (dev.driver_) raced = true;
    else dev.driver_ = &drv;
  }
  if (raced) {
    drv.Remove(dev);
    if (hooks) hooks->DriverUnbound(dev, drv);
    return vb::Err(EEXIST, "bind: a driver is already bound");
  }
  return vb::Ok();
}

vb::Result<void> Machine::UnbindDriver(Device& dev) {
  Driver* drv;
  {
    vb::MutexLock l(dev.driver_mu_);
    drv = dev.driver_;
    if (!drv) return vb::Err(ENODEV, "unbind: no driver bound");
  }
  drv->Remove(dev);
  {
    vb::MutexLock l(dev.driver_mu_);
    dev.driver_ = nullptr;
  }
  if (PlatformHooks* hooks = hooks_.load(std::memory_order_acquire)) hooks->DriverUnbound(dev, *drv);
  return vb::Ok();
}

void Machine::CollectPciLocked(const PciBus* bus, std::vector<vb::RefPtr<PciDevice>>& out) const {
  for (PciDevice* d : bus->devices_) {
    out.emplace_back(d);
    if (d->secondary_) CollectPciLocked(d->secondary_, out);
  }
}

std::vector<vb::RefPtr<PciDevice>> Machine::PciDevices() const {
  std::vector<vb::RefPtr<PciDevice>> out;
  vb::MutexLock l(bus_mu_);
  CollectPciLocked(root_bus_, out);
  return out;
}

std::vector<vb::RefPtr<Device>> Machine::Devices() const {
  std::vector<vb::RefPtr<Device>> out;
  for (auto& p : PciDevices()) out.emplace_back(p);
  vb::MutexLock l(bus_mu_);
  for (auto& d : devices_)
    if (d->bus_type() == BusType::kPlatform) out.push_back(d);
  return out;
}

vb::RefPtr<Device> Machine::FindDevice(const std::string& name) const {
  vb::MutexLock l(bus_mu_);
  for (auto& d : devices_)
    if (d->name() == name) return d;
  return nullptr;
}

std::vector<PciDevice*> PciBus::devices() const {
  vb::MutexLock l(machine_.bus_mu_);
  return devices_;
}

PciDevice* PciBus::FindDevfn(uint8_t devfn) const {
  vb::MutexLock l(machine_.bus_mu_);
  for (PciDevice* d : devices_)
    if (d->address().devfn == devfn) return d;
  return nullptr;
}

PciBus* PciBus::parent() const { return self_ ? self_->bus() : nullptr; }

}  // namespace hw
