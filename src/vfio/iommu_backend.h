// vfio::IommuBackend: the pluggable IOMMU backend interface (Linux: vfio_iommu_driver_ops). A
// backend is registered once with the Vfio core; VFIO_SET_IOMMU opens one BackendInstance per
// container (Linux: iommu_data), which the container then attaches its groups to.
//
// Attach receives the IOMMU group, never a device: a backend that needs a device (to allocate a
// domain, to ask a capability) must reach it through iommu::Group::ForFirstDevice/ForEachDevice,
// which hold the IOMMU group's lock so the member cannot leave while it is used (the seed's
// design, docs/design/0001-attach-derives-ops-under-iommu-group-lock.md).
//
// Calls into an instance are serialized by the container lock (write for attach/detach/release,
// read for everything else); an instance keeps its own lock for state its read-side calls change.
#pragma once

#include <memory>
#include <string_view>

#include "base/result.h"

namespace iommu {
class Group;
}

namespace vfio {

class Device;

enum class GroupType : uint8_t {
  kIommu,          // a real IOMMU group (VFIO_IOMMU)
  kEmulatedIommu,  // a private fake group of an emulated (mdev-style) device
  kNoIommu,        // no-IOMMU mode
};

class BackendInstance {
 public:
  // Destruction is the backend's release: every mapping, domain and pinned page goes away.
  virtual ~BackendInstance() = default;
  virtual vb::Result<void> AttachGroup(iommu::Group& group, GroupType type) = 0;
  virtual void DetachGroup(iommu::Group& group) = 0;
  // VFIO_CHECK_EXTENSION once this instance is the container's backend.
  virtual long CheckExtension(unsigned long ext) = 0;
  // First open / last close of a device of an attached group (type1: dma_unmap notifiers).
  virtual void RegisterDevice(Device&) {}
  virtual void UnregisterDevice(Device&) {}
};

class IommuBackend {
 public:
  virtual ~IommuBackend() = default;
  virtual std::string_view name() const = 0;
  // VFIO_CHECK_EXTENSION before any backend is selected.
  virtual long CheckExtension(unsigned long ext) const = 0;
  // VFIO_SET_IOMMU(type): a new instance, or EINVAL for a type this backend does not open.
  virtual vb::Result<std::unique_ptr<BackendInstance>> Open(unsigned long type) = 0;
};

}  // namespace vfio
