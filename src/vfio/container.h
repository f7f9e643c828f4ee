// vfio::Container: what opening /dev/vfio/vfio creates (Linux: struct vfio_container): the groups
// attached to it and, after SET_IOMMU, the backend instance that owns their DMA mappings.
// Refcounted: the user's handle holds one reference and every attached group another; closing the
// handle alone tears nothing down while a group is attached. When the last group leaves, the
// backend is released (every mapping gone) and the container returns to "no IOMMU set".
//
// Locks: mu_ (kVfioContainer, shared) guards groups_ and backend_: written by attach, detach and
// SET_IOMMU; read-held around every backend operation, so a backend is never released under a
// running MAP_DMA.
#pragma once

#include <memory>
#include <type_traits>
#include <vector>

#include "base/live_count.h"
#include "base/mutex.h"
#include "base/ref_counted.h"
#include "base/result.h"
#include "vfio/iommu_backend.h"

namespace vfio {

class Group;
class Vfio;

class Container : public vb::RefCounted<Container> {
 public:
  ~Container();

  static constexpr long kApiVersion = 0;  // VFIO_API_VERSION
  long GetApiVersion() const { return kApiVersion; }

  // VFIO_CHECK_EXTENSION: asks the selected backend, or else every registered backend (first
  // positive answer). Never an error.
  long CheckExtension(unsigned long ext) EXCLUDES(mu_);

  // VFIO_SET_IOMMU. EINVAL: no group attached or a backend already set; ENODEV: no backend
  // supports `type`; otherwise the error of the last backend that tried (its attach failures).
  vb::Result<void> SetIommu(unsigned long type) EXCLUDES(mu_);

  // Runs fn(BackendInstance&) with the backend pinned (read lock). EINVAL if SET_IOMMU has not
  // been done (the kernel's answer to backend ioctls on such a container).
  template <typename Fn>
  auto WithBackend(Fn&& fn) -> std::invoke_result_t<Fn, BackendInstance&> {
    ReaderLock l(mu_);
    if (!backend_) return vb::Err(EINVAL, "container: no IOMMU backend set");
    return fn(*backend_);
  }
  // The same, typed: EINVAL as well when the backend is not a T.
  template <typename T, typename Fn>
  auto WithBackendAs(Fn&& fn) -> std::invoke_result_t<Fn, T&> {
    ReaderLock l(mu_);
    T* b = backend_ ? dynamic_cast<T*>(backend_.get()) : nullptr;
    if (!b) return vb::Err(EINVAL, "container: backend is not of the asked type");
    return fn(*b);
  }

  bool has_backend() const EXCLUDES(mu_);
  size_t group_count() const EXCLUDES(mu_);
  Vfio& vfio() const { return vfio_; }

 private:
  using ReaderLock = vb::ReaderLock;
  friend class Vfio;
  friend class Group;
  explicit Container(Vfio& vfio) : vfio_(vfio) {}

  Vfio& vfio_;
  mutable vb::SharedMutex mu_{vb::LockRank::kVfioContainer};  // groups_, backend_
  std::vector<Group*> groups_ GUARDED_BY(mu_);                // attached groups (each holds a ref)
  std::unique_ptr<BackendInstance> backend_ GUARDED_BY(mu_);
  [[no_unique_address]] vb::LiveCount<Container> live_;
};

}  // namespace vfio
