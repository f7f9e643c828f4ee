#include "iommu/iommu_core.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "hw/machine.h"
#include "iommu/pci_acs.h"

namespace iommu {

// The PCI functions of the machine at the start of one probe, each held by a reference (so none
// can be freed while the algorithm looks at it), in bus order.
struct IommuCore::PciSnapshot {
  std::vector<vb::RefPtr<hw::PciDevice>> all;

  // Functions on `bus`, by devfn (Linux walks every PCI device and skips other buses).
  std::vector<const hw::PciDevice*> OnBus(const hw::PciBus* bus) const {
    std::vector<const hw::PciDevice*> out;
    for (const auto& d : all)
      if (d->bus() == bus) out.push_back(d.get());
    std::sort(out.begin(), out.end(),
              [](const hw::PciDevice* a, const hw::PciDevice* b) { return a->address().devfn < b->address().devfn; });
    return out;
  }
};

namespace {

// Devices that share an IOMMU stream (an SMMU stream id shared by a platform device and a PCI
// function, or by two platform devices): one names the other, or both name the same device.
bool SharesStream(const hw::Device& a, const hw::Device& b) {
  auto peer = [](const hw::Device& d) -> const std::string* {
    if (d.bus_type() != hw::BusType::kPlatform) return nullptr;
    const std::string& s = static_cast<const hw::PlatformDevice&>(d).shares_group_with();
    return s.empty() ? nullptr : &s;
  };
  const std::string* pa = peer(a);
  const std::string* pb = peer(b);
  return (pa && *pa == b.name()) || (pb && *pb == a.name()) || (pa && pb && *pa == *pb);
}

// Is the bridge above a bus one whose requests carry an alias requester id (the walk of §7.3)?
// PCIe ports forward the original id; a PCIe-to-PCI bridge takes ownership as (secondary, 00.0),
// a PCI-to-PCIe bridge and a conventional bridge as their own id. In every case the alias is
// "reported against" the bridge, which is all group formation needs.
bool BridgeAliases(const hw::PciDevice& bridge) {
  if (!bridge.is_pcie()) return true;
  switch (bridge.pcie_type()) {
    case hw::PcieType::kPcieToPciBridge:
    case hw::PcieType::kPciToPcieBridge:
      return true;
    default:
      return false;
  }
}

}  // namespace

IommuCore::IommuCore(IommuCaps default_caps, std::string default_name) : ids_(vb::MakeRef<IdAllocator>()) {
  auto iommu = Iommu::Create(std::move(default_name), std::move(default_caps));
  if (!iommu.has_value()) {
    std::fprintf(stderr, "vfiobox: invalid default IOMMU caps: %s\n", iommu.error().ToString().c_str());
    std::abort();
  }
  vb::MutexLock l(mu_);
  iommus_.push_back(std::move(*iommu));
  default_iommu_.store(iommus_.back().get(), std::memory_order_release);
}

IommuCore::~IommuCore() {
  std::map<int, vb::RefPtr<Group>> groups;
  {
    vb::MutexLock l(mu_);
    groups.swap(groups_);
    by_device_.clear();
  }
  // Devices still plugged in must not keep translating through domains that may now go away.
  for (auto& [id, g] : groups) g->DisconnectAll();
}

vb::Result<Iommu*> IommuCore::AddIommu(std::string name, IommuCaps caps) {
  std::unique_ptr<Iommu> iommu = TRY(Iommu::Create(std::move(name), std::move(caps)));
  vb::MutexLock l(mu_);
  for (const auto& i : iommus_)
    if (i->name() == iommu->name()) return vb::Err(EEXIST, "iommu core: instance name taken");
  iommus_.push_back(std::move(iommu));
  return iommus_.back().get();
}

void IommuCore::SetDefaultIommu(Iommu& iommu) {
  vb::MutexLock l(mu_);
  default_iommu_.store(&iommu, std::memory_order_release);
}

Iommu* IommuCore::FindIommu(const std::string& name) const {
  vb::MutexLock l(mu_);
  for (const auto& i : iommus_)
    if (i->name() == name) return i.get();
  return nullptr;
}

std::vector<Iommu*> IommuCore::Iommus() const {
  vb::MutexLock l(mu_);
  std::vector<Iommu*> out;
  for (const auto& i : iommus_) out.push_back(i.get());
  return out;
}

void IommuCore::AssignDevice(std::string name, Iommu& iommu) {
  vb::MutexLock l(mu_);
  device_rules_[std::move(name)] = &iommu;
}

void IommuCore::AssignSubtree(std::string bridge_name, Iommu& iommu) {
  vb::MutexLock l(mu_);
  subtree_rules_[std::move(bridge_name)] = &iommu;
}

void IommuCore::AssignPciBus(uint8_t bus_number, Iommu& iommu) {
  vb::MutexLock l(mu_);
  bus_rules_[bus_number] = &iommu;
}

Iommu& IommuCore::AssignedIommuLocked(const hw::Device& dev) const {
  if (auto it = device_rules_.find(dev.name()); it != device_rules_.end()) return *it->second;
  if (dev.bus_type() == hw::BusType::kPci) {
    const auto& pci = static_cast<const hw::PciDevice&>(dev);
    for (const hw::PciDevice* d = &pci; d; d = d->bus() ? d->bus()->self() : nullptr)
      if (auto it = subtree_rules_.find(d->name()); it != subtree_rules_.end()) return *it->second;
    for (const hw::PciBus* bus = pci.bus(); bus; bus = bus->parent())
      if (auto it = bus_rules_.find(bus->number()); it != bus_rules_.end()) return *it->second;
  }
  return *default_iommu_.load(std::memory_order_acquire);
}

Group* IommuCore::GroupOfLocked(const hw::Device* dev) const {
  auto it = by_device_.find(dev);
  return it == by_device_.end() ? nullptr : it->second.get();
}

vb::RefPtr<Group> IommuCore::GroupOf(const hw::Device& dev) const {
  vb::MutexLock l(mu_);
  return vb::RefPtr<Group>(GroupOfLocked(&dev));
}

Iommu* IommuCore::IommuOf(const hw::Device& dev) const {
  vb::MutexLock l(mu_);
  Group* g = GroupOfLocked(&dev);
  return g ? &g->iommu() : nullptr;
}

std::vector<vb::RefPtr<Group>> IommuCore::Groups() const {
  vb::MutexLock l(mu_);
  std::vector<vb::RefPtr<Group>> out;
  for (const auto& [id, g] : groups_) out.push_back(g);
  return out;
}

vb::RefPtr<Group> IommuCore::FindGroup(int id) const {
  vb::MutexLock l(mu_);
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : it->second;
}

// ---- group formation ----

Group* IommuCore::FindStreamGroupLocked(const hw::Device& dev) const {
  // Whoever shares the stream was probed first owns the group (arm-smmu looks up its stream
  // table before any bus rule); the lowest id wins if several do, for determinism.
  Group* found = nullptr;
  for (const auto& [d, g] : by_device_)
    if (SharesStream(dev, *d) && (!found || g->id() < found->id())) found = g.get();
  return found;
}

// §7.4 step 3 (Linux get_pci_alias_group): dev's own group, else that of any function on its bus
// that it aliases or that aliases it, recursively, with their non-isolated slot siblings.
Group* IommuCore::AliasGroupLocked(const PciSnapshot& snap, const hw::PciDevice& dev,
                                   std::vector<bool>& seen) const {
  const uint8_t devfn = dev.address().devfn;
  if (seen[devfn]) return nullptr;
  seen[devfn] = true;
  if (Group* g = GroupOfLocked(&dev)) return g;
  for (const hw::PciDevice* peer : snap.OnBus(dev.bus())) {
    if (peer == &dev || !PciDevsAreDmaAliases(dev, *peer)) continue;
    if (Group* g = AliasGroupLocked(snap, *peer, seen)) return g;
    if (Group* g = FunctionAliasGroupLocked(snap, *peer, seen)) return g;
  }
  return nullptr;
}

// §7.4 step 4 (Linux get_pci_function_alias_group): a multifunction device that does not isolate
// shares a group with the other non-isolating functions of its slot (and their aliases).
Group* IommuCore::FunctionAliasGroupLocked(const PciSnapshot& snap, const hw::PciDevice& dev,
                                           std::vector<bool>& seen) const {
  if (!dev.multifunction() || PciAcsEnabled(dev, hw::kAcsIsolationFlags)) return nullptr;
  for (const hw::PciDevice* sib : snap.OnBus(dev.bus())) {
    if (sib == &dev || sib->address().device() != dev.address().device() ||
        PciAcsEnabled(*sib, hw::kAcsIsolationFlags))
      continue;
    if (Group* g = AliasGroupLocked(snap, *sib, seen)) return g;
  }
  return nullptr;
}

Group* IommuCore::FindPciGroupLocked(hw::PciDevice& dev) const {
  // Step 1: the requester-id alias walk. Every visited device is a candidate; the last one is
  // the point of minimum granularity P (the device itself or the topmost aliasing bridge).
  const hw::PciDevice* p = &dev;
  if (Group* g = GroupOfLocked(&dev)) return g;
  for (const hw::PciBus* bus = dev.bus(); bus && !bus->is_root(); bus = bus->parent()) {
    const hw::PciDevice* bridge = bus->self();
    if (!bridge || !BridgeAliases(*bridge)) continue;
    p = bridge;
    if (Group* g = GroupOfLocked(bridge)) return g;
  }
  // Step 2: walk up from P until ACS isolates the path to the root.
  for (const hw::PciBus* bus = p->bus(); bus && !bus->is_root(); bus = bus->parent()) {
    const hw::PciDevice* bridge = bus->self();
    if (!bridge) continue;
    if (PciAcsPathEnabled(*bridge, hw::kAcsIsolationFlags)) break;
    p = bridge;
    if (Group* g = GroupOfLocked(bridge)) return g;
  }
  // Steps 3 and 4 look at P's bus; one bitmap of visited devfns serves both.
  PciSnapshot snap;
  if (hw::Machine* m = dev.machine()) snap.all = m->PciDevices();
  std::vector<bool> seen(256, false);
  if (Group* g = AliasGroupLocked(snap, *p, seen)) return g;
  if (Group* g = FunctionAliasGroupLocked(snap, *p, seen)) return g;
  return nullptr;  // step 5: a new group
}

vb::Result<void> IommuCore::DeviceAdded(hw::Device& dev) {
  vb::MutexLock l(mu_);
  if (by_device_.contains(&dev)) return vb::Ok();
  // A device already on its way out is not probed; its removal will find nothing to undo.
  if (!dev.present()) return vb::Ok();

  Iommu& iommu = AssignedIommuLocked(dev);
  // A shared stream decides before any bus rule (arm-smmu consults its stream table first).
  Group* found = FindStreamGroupLocked(dev);
  if (!found && dev.bus_type() == hw::BusType::kPci) found = FindPciGroupLocked(static_cast<hw::PciDevice&>(dev));

  vb::RefPtr<Group> group;
  if (found) {
    if (&found->iommu() != &iommu) return vb::Err(EINVAL, "iommu core: the device's group belongs to another IOMMU");
    group = vb::RefPtr<Group>(found);
  } else {
    group = TRY(Group::Create(iommu, ids_));
    groups_[group->id()] = group;
  }
  group->AddMember(dev);
  by_device_[&dev] = std::move(group);
  return vb::Ok();
}

void IommuCore::DeviceRemoved(hw::Device& dev) {
  vb::RefPtr<Group> g;
  {
    vb::MutexLock l(mu_);
    auto it = by_device_.find(&dev);
    if (it == by_device_.end()) return;
    g = std::move(it->second);
    by_device_.erase(it);
  }
  // Without the registry lock: this waits for any ForFirstDevice/ForEachDevice callback on the
  // group, and the rest of the machine need not wait with it.
  if (!g->RemoveMember(dev)) return;
  vb::MutexLock l(mu_);
  // Nobody can have joined meanwhile (joining needs a probed member to find the group), but the
  // check is cheap.
  if (g->empty()) {
    if (auto it = groups_.find(g->id()); it != groups_.end() && it->second == g) groups_.erase(it);
  }
}

vb::Result<void> IommuCore::DriverBinding(hw::Device& dev, const hw::Driver& drv) {
  if (drv.driver_managed_dma()) return vb::Ok();
  vb::RefPtr<Group> g = GroupOf(dev);
  if (!g) return vb::Ok();
  return g->DeviceUseDefaultDomain();
}

void IommuCore::DriverUnbound(hw::Device& dev, const hw::Driver& drv) {
  if (drv.driver_managed_dma()) return;
  if (vb::RefPtr<Group> g = GroupOf(dev)) g->DeviceUnuseDefaultDomain();
}

}  // namespace iommu
