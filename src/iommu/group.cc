#include "iommu/group.h"

#include <algorithm>

#include "base/epoch.h"
#include "hw/driver.h"
#include "iommu/iommu.h"

namespace iommu {

vb::Result<vb::RefPtr<Group>> Group::Create(Iommu& iommu, vb::RefPtr<IdAllocator> ids) {
  // Everything that can fail comes before the id is taken, so a failed probe leaves no trace.
  std::unique_ptr<Domain> def =
      TRY(iommu.AllocDomain(iommu.caps().passthrough ? DomainType::kIdentity : DomainType::kPaging));
  std::unique_ptr<Domain> blocking = TRY(iommu.AllocDomain(DomainType::kBlocked));
  const int id = ids->Alloc();
  return vb::RefPtr<Group>(new Group(id, iommu, std::move(ids), std::move(def), std::move(blocking)));
}

Group::Group(int id, Iommu& iommu, vb::RefPtr<IdAllocator> ids, std::unique_ptr<Domain> default_domain,
             std::unique_ptr<Domain> blocking_domain)
    : id_(id),
      iommu_(iommu),
      ids_(std::move(ids)),
      default_domain_(std::move(default_domain)),
      blocking_domain_(std::move(blocking_domain)) {
  vb::MutexLock l(mu_);
  domain_ = default_domain_.get();
  domain_->attached_groups_.fetch_add(1, std::memory_order_acq_rel);
}

Group::~Group() {
  {
    vb::MutexLock l(mu_);
    // A user domain still attached here is alive (destroying an attached domain aborts), and the
    // group has no member left that could DMA through it.
    domain_->attached_groups_.fetch_sub(1, std::memory_order_acq_rel);
    domain_ = nullptr;
  }
  ids_->Free(id_);
}

std::vector<vb::RefPtr<hw::Device>> Group::Devices() const {
  vb::MutexLock l(mu_);
  return members_;
}

size_t Group::device_count() const {
  vb::MutexLock l(mu_);
  return members_.size();
}

bool Group::Contains(const hw::Device& dev) const {
  vb::MutexLock l(mu_);
  return std::any_of(members_.begin(), members_.end(), [&](const auto& m) { return m.get() == &dev; });
}

bool Group::empty() const {
  vb::MutexLock l(mu_);
  return members_.empty();
}

hw::Device* Group::FirstPresentMemberLocked() const {
  for (const auto& m : members_)
    if (m->present()) return m.get();
  return nullptr;
}

vb::Result<void> Group::ForEachDevice(const DeviceFn& fn) {
  vb::MutexLock l(mu_);
  for (const auto& m : members_) TRY(fn(*m, iommu_));
  return vb::Ok();
}

bool Group::AllMembersMsiIsolated() {
  return ForEachDevice([](hw::Device&, Iommu& iommu) -> vb::Result<void> {
           if (!iommu.caps().msi_isolated) return vb::Err(EPERM, "iommu group: member without MSI isolation");
           return vb::Ok();
         }).has_value();
}

bool Group::AllMembersCacheCoherent() {
  return ForEachDevice([](hw::Device&, Iommu& iommu) -> vb::Result<void> {
           if (!iommu.caps().cache_coherent) return vb::Err(EINVAL, "iommu group: member not coherent");
           return vb::Ok();
         }).has_value();
}

void Group::SetDomainLocked(Domain* domain) {
  if (domain == domain_) return;
  for (const auto& m : members_) {
    m->dma().SetFaultSink(&iommu_.fault_log());
    m->dma().SetTranslation(domain->translation());
  }
  Domain* old = domain_;
  domain_ = domain;
  domain->attached_groups_.fetch_add(1, std::memory_order_acq_rel);
  // DMA that started under the old translation must end before the old domain counts as
  // detached: its owner may unmap or free it as soon as attached_groups() drops.
  vb::Epoch::Synchronize();
  old->attached_groups_.fetch_sub(1, std::memory_order_acq_rel);
}

void Group::AddMember(hw::Device& dev) {
  vb::MutexLock l(mu_);
  auto pos = std::lower_bound(members_.begin(), members_.end(), dev.name(),
                              [](const vb::RefPtr<hw::Device>& m, const std::string& n) { return m->name() < n; });
  members_.insert(pos, vb::RefPtr<hw::Device>(&dev));
  dev.dma().SetFaultSink(&iommu_.fault_log());
  dev.dma().SetTranslation(domain_->translation());
  // Hooks installed after a DMA-API driver was bound: count it as its bind would have.
  if (const hw::Driver* drv = dev.driver(); drv && !drv->driver_managed_dma() && !owner_) ++owner_cnt_;
}

bool Group::RemoveMember(hw::Device& dev) {
  vb::MutexLock l(mu_);
  auto it = std::find_if(members_.begin(), members_.end(), [&](const auto& m) { return m.get() == &dev; });
  if (it == members_.end()) return members_.empty();
  dev.dma().SetTranslation(nullptr);
  dev.dma().SetFaultSink(nullptr);
  // The device is gone from the group once no DMA it started can still use the group's domain.
  vb::Epoch::Synchronize();
  members_.erase(it);
  return members_.empty();
}

void Group::DisconnectAll() {
  vb::MutexLock l(mu_);
  for (const auto& m : members_) {
    m->dma().SetTranslation(nullptr);
    m->dma().SetFaultSink(nullptr);
  }
  vb::Epoch::Synchronize();
}

vb::Result<void> Group::ClaimDmaOwner(const void* owner) {
  if (!owner) return vb::Err(EINVAL, "iommu group: null owner");
  vb::MutexLock l(mu_);
  if (owner_cnt_ != 0) return vb::Err(EPERM, "iommu group: DMA already owned or a DMA-API driver is bound");
  if (domain_ != default_domain_.get()) return vb::Err(EBUSY, "iommu group: not in its default domain");
  SetDomainLocked(blocking_domain_.get());
  owner_ = owner;
  owner_cnt_ = 1;
  return vb::Ok();
}

void Group::ReleaseDmaOwner(const void* owner) {
  vb::MutexLock l(mu_);
  if (owner_cnt_ == 0 || !owner_ || owner_ != owner) return;
  SetDomainLocked(default_domain_.get());
  owner_ = nullptr;
  owner_cnt_ = 0;
}

bool Group::DmaOwnerClaimed() const {
  vb::MutexLock l(mu_);
  return owner_cnt_ != 0;
}

const void* Group::dma_owner() const {
  vb::MutexLock l(mu_);
  return owner_;
}

uint32_t Group::owner_count() const {
  vb::MutexLock l(mu_);
  return owner_cnt_;
}

vb::Result<void> Group::DeviceUseDefaultDomain() {
  vb::MutexLock l(mu_);
  // Linux checks the domain only once owner_cnt is non-zero; we refuse a DMA-API driver whenever
  // the group is not in its default domain (it would DMA through someone else's page table).
  if (owner_ || domain_ != default_domain_.get())
    return vb::Err(EBUSY, "iommu group: owned by a user or not in its default domain");
  ++owner_cnt_;
  return vb::Ok();
}

void Group::DeviceUnuseDefaultDomain() {
  vb::MutexLock l(mu_);
  if (owner_cnt_ == 0 || owner_) return;
  --owner_cnt_;
}

vb::Result<void> Group::AttachDomain(Domain& domain) {
  vb::MutexLock l(mu_);
  if (domain_ != default_domain_.get() && domain_ != blocking_domain_.get())
    return vb::Err(EBUSY, "iommu group: another domain is attached");
  if (&domain.iommu() != &iommu_) return vb::Err(EINVAL, "iommu group: domain of another IOMMU (incompatible)");
  SetDomainLocked(&domain);
  return vb::Ok();
}

vb::Result<void> Group::DetachDomain(Domain& domain) {
  vb::MutexLock l(mu_);
  if (domain_ != &domain) return vb::Err(EINVAL, "iommu group: domain is not attached");
  SetDomainLocked(owner_ ? blocking_domain_.get() : default_domain_.get());
  return vb::Ok();
}

bool Group::IsCurrentDomain(const Domain& domain) const {
  vb::MutexLock l(mu_);
  return domain_ == &domain;
}

DomainType Group::current_domain_type() const {
  vb::MutexLock l(mu_);
  return domain_->type();
}

}  // namespace iommu
