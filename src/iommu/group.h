// iommu::Group: the smallest set of devices the IOMMU can isolate from each other (Linux:
// iommu_group). It has an id (lowest free, /sys/kernel/iommu_groups/<id>), its members, a default
// domain (identity: the kernel DMA API's domain, simplified), a blocking domain, the current
// domain every member's DmaPort translates through, and the DMA-ownership state of reference §2.2.
//
// Created and filled by the IommuCore at device probe; refcounted (the core holds one reference
// while the group has members, users such as a vfio::Group hold their own). The id is given back
// when the group is destroyed, i.e. empty and unreferenced. All members are served by iommu().
//
// Locks: mu_ (LockRank::kIommuGroup) guards members, the current domain and owner/owner_cnt.
// ForFirstDevice/ForEachDevice run their callback with mu_ held, so no member can leave the group
// (IommuCore::DeviceRemoved takes mu_) while the callback uses it: the seed's merged design (v3),
// docs/design/0001. A callback must not call back into the same group.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "base/mutex.h"
#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/device.h"
#include "iommu/domain.h"
#include "iommu/id_allocator.h"

namespace iommu {

class Iommu;

class Group : public vb::RefCounted<Group> {
 public:
  using DeviceFn = std::function<vb::Result<void>(hw::Device&, Iommu&)>;

  ~Group();

  int id() const { return id_; }
  Iommu& iommu() const { return iommu_; }

  // Members (present or being removed), sorted by name.
  std::vector<vb::RefPtr<hw::Device>> Devices() const EXCLUDES(mu_);
  size_t device_count() const EXCLUDES(mu_);
  bool Contains(const hw::Device& dev) const EXCLUDES(mu_);

  // Runs fn(device, its Iommu) on the first present member (in name order) with the group lock
  // held: the device stays a member until fn returns, and no pointer to it should outlive fn.
  // ENODEV if no member is present; otherwise fn's result.
  template <typename F, typename R = std::invoke_result_t<F&, hw::Device&, Iommu&>>
  R ForFirstDevice(F&& fn) EXCLUDES(mu_) {
    vb::MutexLock l(mu_);
    hw::Device* dev = FirstPresentMemberLocked();
    if (!dev) return vb::Err(ENODEV, "iommu group: no present member");
    return fn(*dev, iommu_);
  }
  // Runs fn on every member (present or being removed) with the group lock held; stops at and
  // returns the first error. For properties that must hold for EVERY member.
  vb::Result<void> ForEachDevice(const DeviceFn& fn) EXCLUDES(mu_);
  // AND over all members (vacuously true for an empty group), as iommu_group_has_isolated_msi().
  bool AllMembersMsiIsolated() EXCLUDES(mu_);
  bool AllMembersCacheCoherent() EXCLUDES(mu_);

  // ---- DMA ownership (reference §2.2) ----
  // A user (VFIO) takes the whole group. EINVAL: owner null. EPERM: owner_cnt != 0 (a DMA-API
  // driver is bound to a member, or the group is already owned). EBUSY: the current domain is not
  // the default domain. On success the group is in its blocking domain (no DMA) and owner_cnt = 1.
  vb::Result<void> ClaimDmaOwner(const void* owner) EXCLUDES(mu_);
  // Gives the group back: default domain, no owner (whatever domain was attached). Ignored unless
  // `owner` is the current owner (Linux WARNs).
  void ReleaseDmaOwner(const void* owner) EXCLUDES(mu_);
  bool DmaOwnerClaimed() const EXCLUDES(mu_);  // owner_cnt != 0
  const void* dma_owner() const EXCLUDES(mu_);
  uint32_t owner_count() const EXCLUDES(mu_);
  // A driver that uses the DMA API binds to a member (Linux iommu_device_use_default_domain).
  // EBUSY if a user owns the group or the current domain is not the default one; else owner_cnt++.
  vb::Result<void> DeviceUseDefaultDomain() EXCLUDES(mu_);
  void DeviceUnuseDefaultDomain() EXCLUDES(mu_);

  // ---- domains (reference §7.6) ----
  // Attaches every member to `domain`. EBUSY unless the current domain is the default or the
  // blocking domain (checked first, as Linux does); EINVAL ("incompatible") if the domain was
  // allocated by another Iommu. When it returns, no DMA still uses the previous domain.
  vb::Result<void> AttachDomain(Domain& domain) EXCLUDES(mu_);
  // Detaches `domain` (EINVAL if it is not the current domain): back to the blocking domain while
  // owned, the default domain otherwise. When it returns, no DMA still uses `domain`.
  vb::Result<void> DetachDomain(Domain& domain) EXCLUDES(mu_);
  bool IsCurrentDomain(const Domain& domain) const EXCLUDES(mu_);
  // Runs fn(first present member, current domain) with the group lock held, so the domain stays
  // current (and alive) until fn returns; does nothing when no member is present.
  template <typename F>
  void WithCurrentDomain(F&& fn) EXCLUDES(mu_) {
    vb::MutexLock l(mu_);
    hw::Device* dev = FirstPresentMemberLocked();
    if (dev && domain_) fn(*dev, *domain_);
  }
  DomainType current_domain_type() const EXCLUDES(mu_);
  Domain& default_domain() const { return *default_domain_; }
  Domain& blocking_domain() const { return *blocking_domain_; }

 private:
  friend class IommuCore;

  // ENOMEM when a domain allocation fails (then no id was taken).
  static vb::Result<vb::RefPtr<Group>> Create(Iommu& iommu, vb::RefPtr<IdAllocator> ids);
  Group(int id, Iommu& iommu, vb::RefPtr<IdAllocator> ids, std::unique_ptr<Domain> default_domain,
        std::unique_ptr<Domain> blocking_domain);

  // Probe: the device joins and starts translating through the current domain.
  void AddMember(hw::Device& dev) EXCLUDES(mu_);
  // Removal: the device leaves (waits for any callback in progress) and can no longer DMA.
  // Returns true if the group is now empty.
  bool RemoveMember(hw::Device& dev) EXCLUDES(mu_);
  // Detaches every member's DmaPort (IommuCore teardown).
  void DisconnectAll() EXCLUDES(mu_);
  bool empty() const EXCLUDES(mu_);

  hw::Device* FirstPresentMemberLocked() const REQUIRES(mu_);
  void SetDomainLocked(Domain* domain) REQUIRES(mu_);

  const int id_;
  Iommu& iommu_;
  const vb::RefPtr<IdAllocator> ids_;
  const std::unique_ptr<Domain> default_domain_;
  const std::unique_ptr<Domain> blocking_domain_;

  mutable vb::Mutex mu_{vb::LockRank::kIommuGroup};  // guards members_, domain_, owner_, owner_cnt_
  std::vector<vb::RefPtr<hw::Device>> members_ GUARDED_BY(mu_);  // sorted by name
  Domain* domain_ GUARDED_BY(mu_);
  const void* owner_ GUARDED_BY(mu_) = nullptr;
  uint32_t owner_cnt_ GUARDED_BY(mu_) = 0;
};

}  // namespace iommu
