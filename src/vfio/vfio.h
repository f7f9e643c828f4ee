// vfio::Vfio: the VFIO core of one machine (Linux: the vfio module's globals). It knows the
// registered IOMMU backends, the live VFIO groups (one per IOMMU group that has a registered VFIO
// device), and the device index allocator. It is the entry point of the C++ API:
//
//   auto container = vfio.OpenContainer();                    // open("/dev/vfio/vfio")
//   auto group = TRY(vfio.OpenGroup(7));                      // open("/dev/vfio/7")
//   TRY(group->SetContainer(container));
//   TRY(container->SetIommu(VFIO_TYPE1v2_IOMMU));
//   auto dev = TRY(group->GetDevice("0000:01:00.0"));
//
// Locks: registry_mu_ (kVfioGroupRegistry) guards groups_, the index allocator and every group's
// drivers_ count.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "base/kernel_personality.h"
#include "base/mutex.h"
#include "base/ref_counted.h"
#include "base/result.h"
#include "iommu/iommu_core.h"
#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/device_file.h"
#include "vfio/group.h"
#include "vfio/group_file.h"
#include "vfio/iommu_backend.h"

namespace vfio {

class Vfio {
 public:
  explicit Vfio(iommu::IommuCore& iommu_core,
                vb::KernelPersonality personality = vb::KernelPersonality::kLinux6_1);
  ~Vfio();
  Vfio(const Vfio&) = delete;
  Vfio& operator=(const Vfio&) = delete;

  // Backends are polled in registration order (type1 first). The Vfio does not own them.
  void RegisterBackend(IommuBackend& backend) EXCLUDES(backends_mu_);
  std::vector<IommuBackend*> backends() const EXCLUDES(backends_mu_);

  // Registration (Linux vfio_register_group_dev), called by a bus driver's probe. EINVAL: the
  // device has no IOMMU group, its IOMMU does not enforce cache coherency, or it is already
  // registered.
  vb::Result<vb::RefPtr<Device>> RegisterDevice(hw::Device& dev, DeviceOps& ops) EXCLUDES(registry_mu_);
  // Blocks until every DeviceFile on the device is closed, calling ops.Request(n) every
  // request_interval while it waits; holds no lock while waiting. The group goes away with its
  // last device (§3.5): it is detached from its container and becomes a zombie for its opener.
  void UnregisterDevice(Device& dev) EXCLUDES(registry_mu_);

  vb::RefPtr<Container> OpenContainer();
  // ENODEV: no VFIO group with this id; EBUSY: already open.
  vb::Result<vb::RefPtr<GroupFile>> OpenGroup(int id) EXCLUDES(registry_mu_);

  vb::RefPtr<Group> FindGroup(int id) const EXCLUDES(registry_mu_);
  std::vector<vb::RefPtr<Group>> Groups() const EXCLUDES(registry_mu_);
  iommu::IommuCore& iommu_core() const { return iommu_core_; }
  // Which Linux this core answers as (base/kernel_personality.h); fixed for its lifetime.
  vb::KernelPersonality personality() const { return personality_; }

  // How long unregistration waits between two requests (Linux: 10 s).
  void set_request_interval(std::chrono::milliseconds d) { request_interval_ms_ = d.count(); }

 private:
  iommu::IommuCore& iommu_core_;
  const vb::KernelPersonality personality_;
  std::atomic<int64_t> request_interval_ms_{10000};

  mutable vb::Mutex registry_mu_{vb::LockRank::kVfioGroupRegistry};  // groups_, indexes_, drivers_
  std::map<int, vb::RefPtr<Group>> groups_ GUARDED_BY(registry_mu_);
  std::set<int> indexes_ GUARDED_BY(registry_mu_);
  // A leaf: containers read the backend list while holding their own lock.
  mutable vb::Mutex backends_mu_{vb::LockRank::kLeaf};  // guards backends_
  std::vector<IommuBackend*> backends_ GUARDED_BY(backends_mu_);
};

}  // namespace vfio
