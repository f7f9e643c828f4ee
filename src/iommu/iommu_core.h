// iommu::IommuCore: the IOMMU core of a Machine (Linux: drivers/iommu/iommu.c plus the per-driver
// device_group callbacks). It owns the Iommu instances, decides which instance serves each device
// (assignment rules given when the machine is built; the default instance otherwise), forms IOMMU
// groups incrementally as devices are probed (reference §7: the PCI algorithm, and a platform
// rule), keeps the group registry, and answers the driver core's DMA-ownership questions (§2.2).
// Installed into a hw::Machine as its PlatformHooks; it must outlive that Machine or be
// uninstalled (Machine::SetHooks(nullptr)) first. Fault logs are per instance
// (Iommu::fault_log()): each member's DmaPort reports into its own instance's log. Groups handed out may outlive it, but their
// Iommu references then dangle: the core is meant to live as long as the layers above it.
//
// Locks: mu_ (LockRank::kIommuRegistry) guards the instances, the assignment rules, the
// device → group map and the list of groups with members. Probe holds it for the whole decision
// and join (so group formation sees a stable registry); it nests the hw bus lock (reading the
// topology) and a group's lock (joining). Removal takes it only to look up and unregister, and
// waits for the group lock with it released.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/mutex.h"
#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/driver.h"
#include "hw/pci_device.h"
#include "hw/platform_device.h"
#include "iommu/group.h"
#include "iommu/id_allocator.h"
#include "iommu/iommu.h"

namespace iommu {

class IommuCore final : public hw::PlatformHooks {
 public:
  static constexpr const char* kDefaultIommuName = "iommu0";

  // One default instance, `default_name`, with `default_caps` (an x86-like VT-d by default).
  explicit IommuCore(IommuCaps default_caps = IommuCaps::X86(), std::string default_name = kDefaultIommuName);
  ~IommuCore() override;
  IommuCore(const IommuCore&) = delete;
  IommuCore& operator=(const IommuCore&) = delete;

  // ---- instances and assignment (set up before devices are probed) ----
  // A further instance. EEXIST: the name is taken; EINVAL: bad caps (Iommu::Create).
  vb::Result<Iommu*> AddIommu(std::string name, IommuCaps caps) EXCLUDES(mu_);
  Iommu& default_iommu() const { return *default_iommu_.load(std::memory_order_acquire); }
  void SetDefaultIommu(Iommu& iommu) EXCLUDES(mu_);
  Iommu* FindIommu(const std::string& name) const EXCLUDES(mu_);
  std::vector<Iommu*> Iommus() const EXCLUDES(mu_);  // creation order, default instance first
  // Rules, most specific first: a device named by AssignDevice; else the nearest of the device
  // itself and its upstream bridges that was given to AssignSubtree; else the nearest bus, from
  // the device's own bus upwards, given to AssignPciBus; else the default instance. A device
  // that must join a group of another instance fails to probe with EINVAL.
  void AssignDevice(std::string name, Iommu& iommu) EXCLUDES(mu_);
  void AssignSubtree(std::string bridge_name, Iommu& iommu) EXCLUDES(mu_);
  void AssignPciBus(uint8_t bus_number, Iommu& iommu) EXCLUDES(mu_);

  // ---- lookup ----
  vb::RefPtr<Group> GroupOf(const hw::Device& dev) const EXCLUDES(mu_);  // null if not probed
  Iommu* IommuOf(const hw::Device& dev) const EXCLUDES(mu_);            // null if not probed
  std::vector<vb::RefPtr<Group>> Groups() const EXCLUDES(mu_);          // with members, by id
  vb::RefPtr<Group> FindGroup(int id) const EXCLUDES(mu_);

  // ---- hw::PlatformHooks ----
  // Probe: the device joins a group found by §7.4 (PCI) or the platform rule, or a new group with
  // the lowest free id. Idempotent for a device already probed. ENODEV: the device is no longer
  // present; EINVAL: the group it must join belongs to another Iommu; ENOMEM: domain allocation.
  vb::Result<void> DeviceAdded(hw::Device& dev) override EXCLUDES(mu_);
  // The device leaves its group; waits for a ForFirstDevice/ForEachDevice callback in progress.
  // A group left empty is unregistered; its id is freed once nothing references it.
  void DeviceRemoved(hw::Device& dev) override EXCLUDES(mu_);
  // EBUSY when `drv` uses the DMA API (not driver_managed_dma) and the group is owned by a user or
  // not in its default domain. Devices without a group and driver_managed_dma drivers never count.
  vb::Result<void> DriverBinding(hw::Device& dev, const hw::Driver& drv) override EXCLUDES(mu_);
  void DriverUnbound(hw::Device& dev, const hw::Driver& drv) override EXCLUDES(mu_);

 private:
  struct PciSnapshot;

  Iommu& AssignedIommuLocked(const hw::Device& dev) const REQUIRES(mu_);
  Group* GroupOfLocked(const hw::Device* dev) const REQUIRES(mu_);
  Group* FindPciGroupLocked(hw::PciDevice& dev) const REQUIRES(mu_);
  Group* FindStreamGroupLocked(const hw::Device& dev) const REQUIRES(mu_);
  Group* AliasGroupLocked(const PciSnapshot& snap, const hw::PciDevice& dev, std::vector<bool>& seen) const
      REQUIRES(mu_);
  Group* FunctionAliasGroupLocked(const PciSnapshot& snap, const hw::PciDevice& dev,
                                  std::vector<bool>& seen) const REQUIRES(mu_);

  const vb::RefPtr<IdAllocator> ids_;

  mutable vb::Mutex mu_{vb::LockRank::kIommuRegistry};  // guards everything below
  std::vector<std::unique_ptr<Iommu>> iommus_ GUARDED_BY(mu_);
  // Written under mu_; atomic so that default_iommu() needs no lock (e.g. inside a group callback).
  std::atomic<Iommu*> default_iommu_{nullptr};
  std::map<std::string, Iommu*> device_rules_ GUARDED_BY(mu_);
  std::map<std::string, Iommu*> subtree_rules_ GUARDED_BY(mu_);
  std::map<uint8_t, Iommu*> bus_rules_ GUARDED_BY(mu_);
  // Probed devices (the group holds the device reference, so the key stays valid).
  std::unordered_map<const hw::Device*, vb::RefPtr<Group>> by_device_ GUARDED_BY(mu_);
  std::map<int, vb::RefPtr<Group>> groups_ GUARDED_BY(mu_);  // groups with members, by id
};

}  // namespace iommu
