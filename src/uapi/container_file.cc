#include "uapi/container_file.h"

#include "uapi/errno_result.h"

#include <linux/vfio.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "uapi/cap_chain.h"
#include "uapi/trace.h"
#include "uapi/user_copy.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/type1_iommu.h"

namespace uapi {
namespace {

namespace t1 = vfio::type1;


}  // namespace

long Type1GetInfo(t1::Iommu& iommu, unsigned long arg) {
  constexpr size_t kMinsz = offsetof(vfio_iommu_type1_info, cap_offset);  // end of iova_pgsizes
  constexpr size_t kCapsz = kMinsz + sizeof(uint32_t);                    // end of cap_offset: 20
  vfio_iommu_type1_info info{};
  if (CopyFromUser(&info, arg, kMinsz) != 0) return -EFAULT;
  if (info.argsz < kMinsz) return -EINVAL;
  // 6.1 copies back 16 bytes, or 20 when the caller's argsz (as given, before any growth) reaches
  // the end of cap_offset; the 4 bytes of tail padding (20-23) are never written.
  const size_t copy_back = info.argsz < kCapsz ? kMinsz : kCapsz;

  t1::Info in = iommu.GetInfo();
  info.flags = VFIO_IOMMU_INFO_PGSIZES;
  info.iova_pgsizes = in.iova_pgsizes;
  info.cap_offset = 0;

  // Build order = chain order: MIGRATION, DMA_AVAIL, IOVA_RANGE (omitted when the list is empty).
  CapChain caps(sizeof(info));
  {
    vfio_iommu_type1_info_cap_migration m{};
    m.flags = 0;
    m.pgsize_bitmap = in.migration_pgsize_bitmap;
    m.max_dirty_bitmap_size = in.max_dirty_bitmap_size;
    caps.Add(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1,
             reinterpret_cast<const uint8_t*>(&m) + sizeof(m.header), sizeof(m) - sizeof(m.header));
  }
  {
    vfio_iommu_type1_info_dma_avail d{};
    d.avail = in.dma_avail;
    caps.Add(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1,
             reinterpret_cast<const uint8_t*>(&d) + sizeof(d.header), sizeof(d) - sizeof(d.header));
  }
  if (!in.iova_ranges.empty()) {
    struct {
      uint32_t nr_iovas;
      uint32_t reserved;
    } head{static_cast<uint32_t>(in.iova_ranges.size()), 0};
    std::vector<uint8_t> body(sizeof(head) + in.iova_ranges.size() * sizeof(vfio_iova_range));
    std::memcpy(body.data(), &head, sizeof(head));
    for (size_t i = 0; i < in.iova_ranges.size(); ++i) {
      vfio_iova_range r{in.iova_ranges[i].first, in.iova_ranges[i].last};
      std::memcpy(body.data() + sizeof(head) + i * sizeof(r), &r, sizeof(r));
    }
    caps.Add(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, body.data(), body.size());
  }
  if (int r = caps.Place(arg, &info.argsz, &info.cap_offset, &info.flags, VFIO_IOMMU_INFO_CAPS))
    return r;
  return CopyToUser(arg, &info, copy_back) ? -EFAULT : 0;
}

long Type1MapDma(t1::Iommu& iommu, unsigned long arg) {
  constexpr size_t kMinsz = sizeof(vfio_iommu_type1_dma_map);  // end of size: 32
  vfio_iommu_type1_dma_map map;
  if (CopyFromUser(&map, arg, kMinsz) != 0) return -EFAULT;
  if (map.argsz < kMinsz || (map.flags & ~t1::kMapFlagsKnown)) return -EINVAL;
  return Errno(iommu.MapDma(t1::MapRequest{map.flags, map.vaddr, map.iova, map.size}));
}

long Type1UnmapDma(t1::Iommu& iommu, unsigned long arg) {
  constexpr size_t kMinsz = offsetof(vfio_iommu_type1_dma_unmap, data);  // end of size: 24
  vfio_iommu_type1_dma_unmap unmap;
  if (CopyFromUser(&unmap, arg, kMinsz) != 0) return -EFAULT;
  if (unmap.argsz < kMinsz || (unmap.flags & ~t1::kUnmapFlagsKnown)) return -EINVAL;
  const bool dirty = unmap.flags & t1::kUnmapFlagGetDirtyBitmap;
  if (dirty && (unmap.flags & (t1::kUnmapFlagAll | t1::kUnmapFlagVaddr))) return -EINVAL;
  t1::UnmapRequest req{unmap.flags, unmap.iova, unmap.size};
  if (dirty) {
    if (unmap.argsz < kMinsz + sizeof(vfio_bitmap)) return -EINVAL;
    vfio_bitmap bm;
    if (CopyFromUser(&bm, arg + kMinsz, sizeof(bm)) != 0) return -EFAULT;
    req.bitmap_pgsize = bm.pgsize;
    req.bitmap_size = bm.size;
    req.bitmap_data = reinterpret_cast<uint64_t>(bm.data);
  }
  auto r = iommu.UnmapDma(req);
  if (!r) return -r.error().errnum;
  // Only a successful unmap writes the struct back, with size := the bytes unmapped.
  unmap.size = *r;
  return CopyToUser(arg, &unmap, kMinsz) ? -EFAULT : 0;
}

long Type1DirtyPages(t1::Iommu& iommu, unsigned long arg) {
  // A v1 container refuses before even reading the argument.
  if (!iommu.v2()) return -EACCES;
  constexpr size_t kMinsz = offsetof(vfio_iommu_type1_dirty_bitmap, data);  // 8
  vfio_iommu_type1_dirty_bitmap dirty;
  if (CopyFromUser(&dirty, arg, kMinsz) != 0) return -EFAULT;
  if (dirty.argsz < kMinsz || (dirty.flags & ~t1::kDirtyFlagsKnown)) return -EINVAL;
  t1::DirtyRequest req{dirty.flags};
  if (dirty.flags == t1::kDirtyFlagGetBitmap) {
    vfio_iommu_type1_dirty_bitmap_get get;
    if (dirty.argsz - kMinsz < sizeof(get)) return -EINVAL;
    if (CopyFromUser(&get, arg + kMinsz, sizeof(get)) != 0) return -EFAULT;
    req.iova = get.iova;
    req.size = get.size;
    req.bitmap_pgsize = get.bitmap.pgsize;
    req.bitmap_size = get.bitmap.size;
    req.bitmap_data = reinterpret_cast<uint64_t>(get.bitmap.data);
  }
  return Errno(iommu.DirtyPages(req));
}

long ContainerFileObject::Ioctl(unsigned long request, unsigned long arg) {
  long r = Dispatch(request, arg);
  if (trace::Enabled()) trace::Ioctl(kind(), request, arg, r);
  return r;
}

long ContainerFileObject::Dispatch(unsigned long request, unsigned long arg) {
  switch (request) {
    case VFIO_GET_API_VERSION:
      return container_->GetApiVersion();
    case VFIO_CHECK_EXTENSION:
      return container_->CheckExtension(arg);
    case VFIO_SET_IOMMU:
      return Errno(container_->SetIommu(arg));
  }
  // Everything else belongs to the backend; no backend: EINVAL (not ENOTTY).
  auto r = container_->WithBackend([&](vfio::BackendInstance& b) -> vb::Result<long> {
    auto* iommu = dynamic_cast<t1::Iommu*>(&b);
    if (!iommu) return long{-ENOTTY};
    switch (request) {
      case VFIO_IOMMU_GET_INFO: return Type1GetInfo(*iommu, arg);
      case VFIO_IOMMU_MAP_DMA: return Type1MapDma(*iommu, arg);
      case VFIO_IOMMU_UNMAP_DMA: return Type1UnmapDma(*iommu, arg);
      case VFIO_IOMMU_DIRTY_PAGES: return Type1DirtyPages(*iommu, arg);
      default: return long{-ENOTTY};
    }
  });
  return r ? *r : -static_cast<long>(r.error().errnum);
}

}  // namespace uapi
