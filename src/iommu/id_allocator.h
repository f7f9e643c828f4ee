// iommu::IdAllocator: hands out IOMMU group ids the way Linux's IDA does: the lowest id >= 0 not
// in use. Shared (refcounted) by the IommuCore and every Group it creates: a group gives its id
// back in its destructor, i.e. when it is both empty and unreferenced, which may happen after the
// core that created it is gone.
//
// Locks: mu_ (LockRank::kLeaf) guards the set of ids in use; it is taken from group destructors,
// which can run under any other lock, so nothing is ever taken inside it.
#pragma once

#include <set>

#include "base/mutex.h"
#include "base/ref_counted.h"

namespace iommu {

class IdAllocator : public vb::RefCounted<IdAllocator> {
 public:
  int Alloc() EXCLUDES(mu_);
  void Free(int id) EXCLUDES(mu_);
  bool InUse(int id) const EXCLUDES(mu_);

 private:
  mutable vb::Mutex mu_{vb::LockRank::kLeaf};  // guards used_
  std::set<int> used_ GUARDED_BY(mu_);
};

}  // namespace iommu
