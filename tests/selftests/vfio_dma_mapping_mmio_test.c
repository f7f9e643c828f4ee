/* vfio_dma_mapping_mmio_test: in type1 modes, MAP_DMA of an mmap of a device BAR succeeds (peer
 * to peer: the whole BAR, one page of it, and a BAR mmap placed with MAP_FIXED at an address the
 * caller chose that is not aligned to the BAR's size), as clients.md §2.4 states.
 * SPDX-License-Identifier: Apache-2.0 */
#include "vfio_util.h"

/* The first mmap-capable BAR of the device, or -1. */
static int mmap_bar(struct vu_device* d, struct vfio_region_info* r) {
  for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; ++i)
    if (vu_region(d->device, i, r) == 0 && (r->flags & VFIO_REGION_INFO_FLAG_MMAP) && r->size) return (int)i;
  return -1;
}

static void map_bar_range(uint64_t offset_in_bar, uint64_t len, int fixed_misaligned) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  struct vfio_region_info r;
  if (mmap_bar(&d, &r) < 0) SKIP("no mmap-capable BAR");
  if (len == 0) len = r.size;
  void* hint = NULL;
  int flags = MAP_SHARED;
  if (fixed_misaligned) {
    /* Reserve twice the size, then place the BAR one page past a BAR-size boundary. */
    char* area = vu_mmap_anon(2 * r.size + VU_PAGE, PROT_NONE, MAP_PRIVATE);
    CHECK(area != MAP_FAILED);
    uintptr_t aligned = ((uintptr_t)area + r.size - 1) & ~(uintptr_t)(r.size - 1);
    hint = (void*)(aligned + VU_PAGE);
    flags |= MAP_FIXED;
  }
  char* bar = mmap(hint, r.size, PROT_READ | PROT_WRITE, flags, d.device, r.offset);
  CHECK(bar != MAP_FAILED);
  if (!fixed_misaligned) st_defer_munmap(bar, r.size);
  if (fixed_misaligned) CHECK(bar == hint);
  uint64_t iova = vu_pick_iova(d.container, r.size);
  CHECK(iova != ~0ull);
  CHECK(vu_map(d.container, bar + offset_in_bar, iova, len, VU_RW) == 0);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, iova, len, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, len);
}

TEST(map_whole_bar_mmap) { map_bar_range(0, 0, 0); }
TEST(map_one_page_of_bar_mmap) { map_bar_range(VU_PAGE, VU_PAGE, 0); }
TEST(map_bar_mmap_at_a_misaligned_fixed_address) { map_bar_range(0, 0, 1); }

int main(int argc, char** argv) { return vu_main(argc, argv, "0000:07:00.0", 1); }
