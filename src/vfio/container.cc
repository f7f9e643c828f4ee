#include "vfio/container.h"

#include "vfio/group.h"
#include "vfio/vfio.h"

namespace vfio {

Container::~Container() = default;

long Container::CheckExtension(unsigned long ext) {
  vb::ReaderLock l(mu_);
  if (backend_) return backend_->CheckExtension(ext);
  for (IommuBackend* b : vfio_.backends())
    if (long r = b->CheckExtension(ext); r > 0) return r;
  return 0;
}

vb::Result<void> Container::SetIommu(unsigned long type) {
  vb::WriterLock l(mu_);
  if (groups_.empty()) return vb::Err(EINVAL, "set_iommu: no group attached");
  if (backend_) return vb::Err(EINVAL, "set_iommu: backend already set");
  vb::Error last{ENODEV, "set_iommu: no backend supports this type"};
  for (IommuBackend* b : vfio_.backends()) {
    if (b->CheckExtension(type) <= 0) continue;
    auto inst = b->Open(type);
    if (!inst.has_value()) {
      last = inst.error();
      continue;
    }
    size_t done = 0;
    for (; done < groups_.size(); ++done) {
      auto r = (*inst)->AttachGroup(groups_[done]->iommu_group(), groups_[done]->type());
      if (!r.has_value()) {
        last = r.error();
        break;
      }
    }
    if (done < groups_.size()) {
      while (done-- > 0) (*inst)->DetachGroup(groups_[done]->iommu_group());
      continue;  // the instance is released here
    }
    backend_ = std::move(*inst);
    return vb::Ok();
  }
  return std::unexpected(last);
}

bool Container::has_backend() const {
  vb::ReaderLock l(mu_);
  return backend_ != nullptr;
}

size_t Container::group_count() const {
  vb::ReaderLock l(mu_);
  return groups_.size();
}

}  // namespace vfio
