#include "vfio/group.h"

#include <algorithm>

#include "vfio/container.h"
#include "vfio/device.h"

namespace vfio {

Group::Group(int id, vb::RefPtr<iommu::Group> iommu_group, GroupType type)
    : id_(id), iommu_group_(std::move(iommu_group)), type_(type) {}

Group::~Group() = default;

std::vector<vb::RefPtr<Device>> Group::Devices() const {
  vb::MutexLock l(device_mu_);
  std::vector<vb::RefPtr<Device>> out;
  for (Device* d : devices_) out.emplace_back(d);
  return out;
}

bool Group::attached_to_container() const {
  vb::MutexLock l(group_mu_);
  return container_ != nullptr;
}

bool Group::dead() const {
  vb::MutexLock l(group_mu_);
  return dead_;
}

vb::Result<void> Group::AttachToContainerLocked(vb::RefPtr<Container> container) {
  vb::WriterLock cl(container->mu_);
  if (type_ == GroupType::kIommu) TRY(iommu_group_->ClaimDmaOwner(this));
  if (container->backend_) {
    auto r = container->backend_->AttachGroup(*iommu_group_, type_);
    if (!r.has_value()) {
      if (type_ == GroupType::kIommu) iommu_group_->ReleaseDmaOwner(this);
      return r;
    }
  }
  container->groups_.push_back(this);
  container_ = std::move(container);
  container_users_ = 1;
  return vb::Ok();
}

void Group::DetachFromContainerLocked() {
  vb::RefPtr<Container> c = std::move(container_);
  container_users_ = 0;
  if (!c) return;
  vb::WriterLock cl(c->mu_);
  if (c->backend_) c->backend_->DetachGroup(*iommu_group_);
  if (type_ == GroupType::kIommu) iommu_group_->ReleaseDmaOwner(this);
  std::erase(c->groups_, this);
  // The last group leaving releases the backend: every mapping and domain goes away.
  if (c->groups_.empty()) c->backend_.reset();
}

}  // namespace vfio
