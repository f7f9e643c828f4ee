// uapi::ContainerFileObject: an open /dev/vfio/vfio (Linux: the container's struct file and
// vfio_fops_unl_ioctl). It holds the user's reference on the vfio::Container; the last fd's close
// drops it. Ioctls: GET_API_VERSION, CHECK_EXTENSION and SET_IOMMU (their argument is the value
// itself), then, with a backend set, the backend's table (type1: GET_INFO, MAP_DMA, UNMAP_DMA,
// DIRTY_PAGES; anything else ENOTTY). Without a backend every other request answers EINVAL, as the
// kernel does. User structs are read and written with safe copies (EFAULT, never a crash).
// No state of its own beyond the container reference; thread-safe (the container locks).
#pragma once

#include "base/ref_counted.h"
#include "uapi/file_object.h"
#include "vfio/container.h"

namespace vfio::type1 {
class Iommu;
}

namespace uapi {

class ContainerFileObject final : public FileObject {
 public:
  explicit ContainerFileObject(vb::RefPtr<vfio::Container> container)
      : container_(std::move(container)) {}

  const char* kind() const override { return "container"; }
  long Ioctl(unsigned long request, unsigned long arg) override;

  vfio::Container& container() const { return *container_; }
  const vb::RefPtr<vfio::Container>& container_ref() const { return container_; }

 private:
  long Dispatch(unsigned long request, unsigned long arg);

  const vb::RefPtr<vfio::Container> container_;
};

// The type1 ioctl handlers (also used by benchmarks to time the decode path). Each returns 0 or
// -errno exactly as vfio_iommu_type1_ioctl does for that request.
long Type1GetInfo(vfio::type1::Iommu& iommu, unsigned long arg);
long Type1MapDma(vfio::type1::Iommu& iommu, unsigned long arg);
long Type1UnmapDma(vfio::type1::Iommu& iommu, unsigned long arg);
long Type1DirtyPages(vfio::type1::Iommu& iommu, unsigned long arg);

}  // namespace uapi
