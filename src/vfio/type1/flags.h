// The flag and protection bits of the type1 DMA ioctls, as the Linux 6.1 UAPI defines them
// (<linux/vfio.h>). The planners take these raw values so the UAPI layer can pass the user's
// flags through unchanged and every "unknown flag" row of reference §5 is decided in one place.
// Constants only; no state.
#pragma once

#include <cstdint>

namespace vfio::type1 {

// struct vfio_iommu_type1_dma_map.flags
inline constexpr uint32_t kMapFlagRead = 1u << 0;   // device may read
inline constexpr uint32_t kMapFlagWrite = 1u << 1;  // device may write
inline constexpr uint32_t kMapFlagVaddr = 1u << 2;  // update-vaddr protocol (§5.4)
inline constexpr uint32_t kMapFlagsKnown = kMapFlagRead | kMapFlagWrite | kMapFlagVaddr;

// struct vfio_iommu_type1_dma_unmap.flags
inline constexpr uint32_t kUnmapFlagGetDirtyBitmap = 1u << 0;
inline constexpr uint32_t kUnmapFlagAll = 1u << 1;
inline constexpr uint32_t kUnmapFlagVaddr = 1u << 2;
inline constexpr uint32_t kUnmapFlagsKnown =
    kUnmapFlagGetDirtyBitmap | kUnmapFlagAll | kUnmapFlagVaddr;

// struct vfio_iommu_type1_dirty_bitmap.flags
inline constexpr uint32_t kDirtyFlagStart = 1u << 0;
inline constexpr uint32_t kDirtyFlagStop = 1u << 1;
inline constexpr uint32_t kDirtyFlagGetBitmap = 1u << 2;
inline constexpr uint32_t kDirtyFlagsKnown = kDirtyFlagStart | kDirtyFlagStop | kDirtyFlagGetBitmap;

// Dma::prot: what the device may do (the IOMMU_READ / IOMMU_WRITE of the kernel).
inline constexpr uint32_t kProtRead = 1u << 0;
inline constexpr uint32_t kProtWrite = 1u << 1;

// Module parameter dma_entry_limit (default): how many MAP_DMA records a container may hold.
inline constexpr uint64_t kDefaultDmaEntryLimit = 65535;

// The dirty-bitmap limits of 6.1: at most INT_MAX pages per request / per mapping, and a user
// bitmap of at most the bytes those pages need (256 MiB).
inline constexpr uint64_t kDirtyBitmapPagesMax = 0x7fffffffull;
inline constexpr uint64_t kDirtyBitmapBytesMax = ((kDirtyBitmapPagesMax + 63) / 64) * 8;

// Bytes of a u64-word bitmap covering `npages` bits (the kernel's DIRTY_BITMAP_BYTES).
constexpr uint64_t DirtyBitmapBytes(uint64_t npages) { return ((npages + 63) / 64) * 8; }

}  // namespace vfio::type1
