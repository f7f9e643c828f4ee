#include "iommu/id_allocator.h"

namespace iommu {

int IdAllocator::Alloc() {
  vb::MutexLock l(mu_);
  int id = 0;
  // used_ is ordered: the first gap is the lowest free id.
  for (int used : used_) {
    if (used != id) break;
    ++id;
  }
  used_.insert(id);
  return id;
}

void IdAllocator::Free(int id) {
  vb::MutexLock l(mu_);
  used_.erase(id);
}

bool IdAllocator::InUse(int id) const {
  vb::MutexLock l(mu_);
  return used_.contains(id);
}

}  // namespace iommu
