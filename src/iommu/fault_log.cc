#include "iommu/fault_log.h"

namespace iommu {

void FaultLog::RecordFault(const hw::DmaFault& fault) {
  vb::MutexLock l(mu_);
  if (records_.size() >= capacity_) {
    ++dropped_;
    return;
  }
  records_.push_back(fault);
}

std::vector<hw::DmaFault> FaultLog::Snapshot() const {
  vb::MutexLock l(mu_);
  return records_;
}

void FaultLog::Clear() {
  vb::MutexLock l(mu_);
  records_.clear();
  records_.shrink_to_fit();
  dropped_ = 0;
}

size_t FaultLog::size() const {
  vb::MutexLock l(mu_);
  return records_.size();
}

uint64_t FaultLog::dropped() const {
  vb::MutexLock l(mu_);
  return dropped_;
}

}  // namespace iommu
