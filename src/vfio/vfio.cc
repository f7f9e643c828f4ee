#include "vfio/vfio.h"

#include <algorithm>

namespace vfio {

Vfio::Vfio(iommu::IommuCore& iommu_core, vb::KernelPersonality personality)
    : iommu_core_(iommu_core), personality_(personality) {}

Vfio::~Vfio() = default;

void Vfio::RegisterBackend(IommuBackend& backend) {
  vb::MutexLock l(backends_mu_);
  backends_.push_back(&backend);
}

std::vector<IommuBackend*> Vfio::backends() const {
  vb::MutexLock l(backends_mu_);
  return backends_;
}

vb::RefPtr<Container> Vfio::OpenContainer() { return vb::RefPtr<Container>(new Container(*this)); }

vb::Result<vb::RefPtr<Device>> Vfio::RegisterDevice(hw::Device& hwdev, DeviceOps& ops) {
  vb::RefPtr<iommu::Group> ig = iommu_core_.GroupOf(hwdev);
  if (!ig) return vb::Err(EINVAL, "register: device has no IOMMU group");
  // VFIO always maps cache-coherently and offers no way to restore coherency.
  if (!ig->iommu().caps().cache_coherent) return vb::Err(EINVAL, "register: IOMMU not cache coherent");

  vb::MutexLock l(registry_mu_);
  vb::RefPtr<Group> g;
  bool created = false;
  if (auto it = groups_.find(ig->id()); it != groups_.end() && it->second->iommu_group_ == ig) {
    g = it->second;
  } else {
    g = vb::RefPtr<Group>(new Group(ig->id(), ig, GroupType::kIommu));
    created = true;
  }
  int index = 0;
  while (indexes_.count(index)) ++index;

  vb::RefPtr<Device> dev;
  {
    vb::MutexLock dl(g->device_mu_);
    for (Device* d : g->devices_)
      if (&d->hw() == &hwdev) return vb::Err(EINVAL, "register: device already registered");
    dev = vb::RefPtr<Device>(new Device(hwdev, ops, g, index));
    g->devices_.push_back(dev.get());
  }
  if (created) groups_[g->id()] = g;
  indexes_.insert(index);
  ++g->drivers_;
  return dev;
}

void Vfio::UnregisterDevice(Device& dev) {
  vb::RefPtr<Device> hold(&dev);
  dev.PutRegistration();
  // Wait for every user handle to close, asking the driver to request it back, with no VFIO lock
  // held (only the completion's own mutex, around the check and the wait).
  for (unsigned n = 0;; ++n) {
    {
      vb::MutexLock l(dev.release_mu_);
      if (dev.registrations() == 0) break;
    }
    dev.ops().Request(dev, n);
    vb::MutexLock l(dev.release_mu_);
    if (dev.registrations() == 0) break;
    dev.released_cv_.WaitFor(dev.release_mu_, request_interval_ms_.load() * 1000000);
  }

  Group& g = dev.group();
  {
    vb::MutexLock dl(g.device_mu_);
    std::erase(g.devices_, &dev);
  }
  vb::MutexLock l(registry_mu_);
  indexes_.erase(dev.index());
  if (--g.drivers_ > 0) return;
  // The group's last device: unlink it; a user still holding the group file keeps a zombie.
  groups_.erase(g.id());
  vb::MutexLock gl(g.group_mu_);
  g.dead_ = true;
  if (g.container_) g.DetachFromContainerLocked();
}

vb::Result<vb::RefPtr<GroupFile>> Vfio::OpenGroup(int id) {
  vb::MutexLock l(registry_mu_);
  auto it = groups_.find(id);
  if (it == groups_.end()) return vb::Err(ENODEV, "open_group: no such group");
  Group& g = *it->second;
  vb::MutexLock gl(g.group_mu_);
  if (g.dead_) return vb::Err(ENODEV, "open_group: group torn down");
  if (g.opened_) return vb::Err(EBUSY, "open_group: already open");
  g.opened_ = true;
  return vb::RefPtr<GroupFile>(new GroupFile(it->second));
}

vb::RefPtr<Group> Vfio::FindGroup(int id) const {
  vb::MutexLock l(registry_mu_);
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : it->second;
}

std::vector<vb::RefPtr<Group>> Vfio::Groups() const {
  vb::MutexLock l(registry_mu_);
  std::vector<vb::RefPtr<Group>> out;
  for (auto& [id, g] : groups_) out.push_back(g);
  return out;
}

}  // namespace vfio
