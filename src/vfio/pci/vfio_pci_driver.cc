#include "vfio/pci/vfio_pci_driver.h"

#include <linux/vfio.h>

#include <algorithm>
#include <cstring>

namespace vfio::pci {

VfioPciDriver::~VfioPciDriver() = default;

vb::Result<void> VfioPciDriver::Probe(hw::Device& dev) {
  if (dev.bus_type() != hw::BusType::kPci) return vb::Err(ENODEV, "vfio-pci: not a PCI device");
  auto& pci = static_cast<hw::PciDevice&>(dev);
  if (pci.header_type() != 0) return vb::Err(EINVAL, "vfio-pci: not a type-0 header");
  // A function on a root bus has no bus reset shared with anyone: it is a set of its own.
  const void* key = (pci.bus() && !pci.bus()->is_root()) ? static_cast<const void*>(pci.bus())
                                                        : static_cast<const void*>(&pci);
  VfioPciDevice* state;
  {
    vb::MutexLock l(mu_);
    if (bound_.count(&dev)) return vb::Err(EEXIST, "vfio-pci: already bound");
    vb::RefPtr<DevSet>& set = sets_[key];
    if (!set) {
      set = vb::RefPtr<DevSet>(new DevSet);
      set->key = key;
    }
    auto owned = std::make_unique<VfioPciDevice>(pci, set, options_);
    state = owned.get();
    bound_[&dev] = std::move(owned);
  }
  {
    DevSet& set = state->set();
    vb::MutexLock l(set.mu);
    set.members.push_back(state);
  }
  auto registered = vfio_.RegisterDevice(dev, *this);
  if (!registered.has_value()) {
    {
      DevSet& set = state->set();
      vb::MutexLock l(set.mu);
      set.members.erase(std::remove(set.members.begin(), set.members.end(), state), set.members.end());
    }
    std::unique_ptr<VfioPciDevice> owned;
    {
      vb::MutexLock l(mu_);
      owned = std::move(bound_[&dev]);
      bound_.erase(&dev);
    }
    return std::unexpected(registered.error());
  }
  state->set_vfio_device(*registered);
  return vb::Ok();
}

void VfioPciDriver::Remove(hw::Device& dev) {
  VfioPciDevice* state = StateOf(dev);
  if (!state || !state->vfio_device()) return;
  // Blocks, with no lock held, until every handle is closed; Request signals REQ meanwhile.
  vfio_.UnregisterDevice(*state->vfio_device());
  bool set_empty;
  {
    DevSet& set = state->set();
    vb::MutexLock l(set.mu);
    set.members.erase(std::remove(set.members.begin(), set.members.end(), state), set.members.end());
    set_empty = set.members.empty();
  }
  std::unique_ptr<VfioPciDevice> owned;
  {
    vb::MutexLock l(mu_);
    if (set_empty) sets_.erase(state->set().key);
    auto it = bound_.find(&dev);
    owned = std::move(it->second);
    bound_.erase(it);
  }
  // Destroyed with no lock held: the router joins its unmask watcher.
}

VfioPciDevice* VfioPciDriver::StateOf(const hw::Device& dev) const {
  vb::MutexLock l(mu_);
  auto it = bound_.find(&dev);
  return it == bound_.end() ? nullptr : it->second.get();
}

vb::RefPtr<Device> VfioPciDriver::VfioDeviceOf(const hw::Device& dev) const {
  VfioPciDevice* s = StateOf(dev);
  return s ? vb::RefPtr<Device>(s->vfio_device()) : nullptr;
}

VfioPciDevice& VfioPciDriver::Get(Device& dev) const {
  // The core calls DeviceOps only for devices registered by this driver, which stay bound until
  // their unregistration (which waits for every caller's handle) is over.
  return *StateOf(dev.hw());
}

// ---- open / close ----

vb::Result<void> VfioPciDriver::OpenDevice(Device& dev) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.OpenLocked();
}

void VfioPciDriver::CloseDevice(Device& dev) {
  VfioPciDevice& s = Get(dev);
  std::unique_ptr<IoeventfdSet> ioeventfds;
  {
    vb::MutexLock l(s.mu());
    ioeventfds = s.CloseLocked();
    TryBusResetLocked(s);
  }
  // Their watcher is joined here, with the set's lock released (it may be waiting for it).
}

vb::Result<std::vector<hw::PciDevice*>> VfioPciDriver::AffectedByBusReset(const hw::PciDevice& dev) {
  hw::PciBus* bus = dev.bus();
  if (!bus || bus->is_root()) return vb::Err(ENODEV, "hot reset: no bus reset on a root bus");
  std::vector<hw::PciDevice*> out;
  std::vector<hw::PciBus*> todo{bus};
  while (!todo.empty()) {
    hw::PciBus* b = todo.back();
    todo.pop_back();
    for (hw::PciDevice* d : b->devices()) {
      out.push_back(d);
      if (d->secondary_bus()) todo.push_back(d->secondary_bus());
    }
  }
  return out;
}

void VfioPciDriver::TryBusResetLocked(VfioPciDevice& closed) {
  DevSet& set = closed.set();
  set.mu.AssertHeld();  // the same lock as closed.mu()
  bool needs = false;
  for (VfioPciDevice* m : set.members) {
    m->mu().AssertHeld();  // one lock for the whole set
    if (m->open_locked()) return;
    needs |= m->needs_reset_locked();
  }
  if (!needs) return;
  auto affected = AffectedByBusReset(closed.hw());
  if (!affected.has_value()) return;
  for (hw::PciDevice* d : *affected) {
    if (std::none_of(set.members.begin(), set.members.end(), [&](VfioPciDevice* m) { return &m->hw() == d; }))
      return;
  }
  for (VfioPciDevice* m : set.members) {
    m->mu().AssertHeld();
    m->HardResetLocked();
  }
}

void VfioPciDriver::Request(Device& dev, unsigned) { Get(dev).Request(); }

// ---- device fd ----

DeviceInfo VfioPciDriver::GetInfo(Device& dev) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.GetInfoLocked();
}

vb::Result<RegionInfo> VfioPciDriver::GetRegionInfo(Device& dev, uint32_t index) {
  return Get(dev).GetRegionInfo(index);
}

vb::Result<IrqInfo> VfioPciDriver::GetIrqInfo(Device& dev, uint32_t index) { return Get(dev).GetIrqInfo(index); }

vb::Result<int> VfioPciDriver::SetIrqs(Device& dev, const SetIrqsRequest& req) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.SetIrqsLocked(req);
}

vb::Result<size_t> VfioPciDriver::Read(Device& dev, void* buf, size_t count, uint64_t offset) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.ReadLocked(buf, count, offset);
}

vb::Result<size_t> VfioPciDriver::Write(Device& dev, const void* buf, size_t count, uint64_t offset) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.WriteLocked(buf, count, offset);
}

vb::Result<MmapTarget> VfioPciDriver::Mmap(Device& dev, uint64_t offset, uint64_t length, int) {
  return Get(dev).Mmap(offset, length);
}

vb::Result<void> VfioPciDriver::MmioAccess(Device& dev, uint64_t offset, void* data, unsigned size, bool write) {
  // Under the device set's lock, as read()/write(): an access racing a reset waits for it (6.1's
  // fault handler takes memory_lock, which reset holds), instead of finding memory decode off.
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.MmioAccessLocked(offset, data, size, write);
}

bool VfioPciDriver::MmioWriteWide(Device& dev, uint64_t offset, const void* data, unsigned size) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.MmioWriteWideLocked(offset, data, size);
}

vb::Result<void> VfioPciDriver::Ioeventfd(Device& dev, const IoeventfdRequest& req) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.IoeventfdLocked(req);
}

vb::Result<void> VfioPciDriver::Reset(Device& dev) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  return s.ResetLocked();
}

// ---- DEVICE_FEATURE, runtime PM (§6.11) ----

vb::Result<FeatureSupport> VfioPciDriver::Feature(Device& dev, uint32_t index) {
  switch (index) {
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
    case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
      return FeatureSupport{.get = false, .set = true, .minsz = 0};
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP:
      return FeatureSupport{.get = false, .set = true, .minsz = sizeof(vfio_device_low_power_entry_with_wakeup)};
    default:  // PCI_VF_TOKEN (no VF token: not an SR-IOV PF) and unknown features
      return vb::Err(ENOTTY, "vfio-pci: no such feature for this device");
  }
}

vb::Result<void> VfioPciDriver::SetFeature(Device& dev, uint32_t index, std::span<const uint8_t> payload) {
  VfioPciDevice& s = Get(dev);
  if (index == VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP) {
    vfio_device_low_power_entry_with_wakeup entry;
    if (payload.size() < sizeof(entry)) return vb::Err(EINVAL, "low power: short payload");
    std::memcpy(&entry, payload.data(), sizeof(entry));
    if (entry.wakeup_eventfd < 0) return vb::Err(EINVAL, "low power: negative wakeup eventfd");
    EventFd wake = TRY(EventFd::FromUserFd(entry.wakeup_eventfd));
    vb::MutexLock l(s.mu());
    return s.LowPowerEntryLocked(std::move(wake));
  }
  vb::MutexLock l(s.mu());
  if (index == VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY) return s.LowPowerEntryLocked(EventFd{});
  if (index == VFIO_DEVICE_FEATURE_LOW_POWER_EXIT) {
    s.LowPowerExitLocked();
    return vb::Ok();
  }
  return vb::Err(ENOTTY, "vfio-pci: no such feature");
}

void VfioPciDriver::RuntimeResume(Device& dev) {
  VfioPciDevice& s = Get(dev);
  vb::MutexLock l(s.mu());
  s.RuntimeResumeLocked();
}

// ---- hot reset (§6.9) ----

vb::Result<std::vector<HotResetDependent>> VfioPciDriver::GetPciHotResetInfo(Device& dev) {
  VfioPciDevice& s = Get(dev);
  std::vector<hw::PciDevice*> affected = TRY(AffectedByBusReset(s.hw()));
  std::vector<HotResetDependent> out;
  out.reserve(affected.size());
  for (hw::PciDevice* d : affected) {
    vb::RefPtr<iommu::Group> g = vfio_.iommu_core().GroupOf(*d);
    out.push_back(HotResetDependent{.group_id = g ? static_cast<uint32_t>(g->id()) : 0,
                                    .segment = d->address().domain,
                                    .bus = d->address().bus,
                                    .devfn = d->address().devfn,
                                    .has_group = g != nullptr});
  }
  return out;
}

vb::Result<void> VfioPciDriver::PciHotReset(Device& dev, std::span<GroupFile* const> groups) {
  VfioPciDevice& s = Get(dev);
  std::vector<hw::PciDevice*> affected = TRY(AffectedByBusReset(s.hw()));
  if (groups.empty() || groups.size() > affected.size())
    return vb::Err(EINVAL, "hot reset: group count is 0 or more than the affected devices");
  vb::MutexLock l(s.mu());
  s.set().mu.AssertHeld();  // the same lock as s.mu()
  auto& members = s.set().members;
  for (hw::PciDevice* d : affected) {
    if (std::none_of(members.begin(), members.end(), [&](VfioPciDevice* m) { return &m->hw() == d; }))
      return vb::Err(EINVAL, "hot reset: an affected device is not bound to vfio-pci in this set");
  }
  for (VfioPciDevice* m : members) {
    const int id = m->vfio_device() ? m->vfio_device()->group().id() : -1;
    if (std::none_of(groups.begin(), groups.end(), [&](GroupFile* g) { return g && g->group().id() == id; }))
      return vb::Err(EINVAL, "hot reset: a device of the set is in none of the groups passed");
  }
  for (VfioPciDevice* m : members) {
    m->mu().AssertHeld();  // one lock for the whole set
    m->HardResetLocked();
  }
  return vb::Ok();
}

}  // namespace vfio::pci
