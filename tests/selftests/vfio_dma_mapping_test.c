/* vfio_dma_mapping_test: the DMA-mapping checks of the kernel's VFIO selftests (clients.md §2.4),
 * restated for container/type1 mode, plus the MAP/UNMAP errno rows of kernel 6.1 (kernel-vfio.md
 * §5.1, §5.3, §5.5). Runs under `vfiobox run` for each IOMMU type (type1, type1v2) and each
 * device given on the command line; on a real machine with those devices bound to vfio-pci it
 * checks the kernel the same way. SPDX-License-Identifier: Apache-2.0 */
#include "vfio_util.h"

TEST(iova_range_capability_is_present_and_sane) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  /* A caller with only the 24-byte header learns the size it needs and gets no caps. */
  struct vfio_iommu_type1_info small = {.argsz = sizeof small};
  CHECK(ioctl(d.container, VFIO_IOMMU_GET_INFO, &small) == 0);
  CHECK(small.flags & VFIO_IOMMU_INFO_PGSIZES);
  CHECK(small.flags & VFIO_IOMMU_INFO_CAPS);
  CHECK(small.argsz > sizeof small);
  EXPECT_EQ(small.cap_offset, 0);
  CHECK(small.iova_pgsizes & VU_PAGE);
  struct vfio_iommu_type1_info* info = vu_iommu_info(d.container);
  CHECK(info);
  EXPECT_EQ(info->cap_offset, sizeof *info);
  struct vfio_iommu_type1_info_cap_iova_range* cap = (void*)vu_find_cap(
      info, info->argsz, info->cap_offset, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
  int nr = cap ? (int)cap->nr_iovas : 0;
  struct vfio_iova_range r[32];
  for (int i = 0; i < nr && i < 32; ++i) r[i] = cap->iova_ranges[i];
  free(info);
  CHECK(nr > 0);
  for (int i = 0; i < nr; ++i) {
    CHECK(r[i].start <= r[i].end);
    if (i) CHECK(r[i].start > r[i - 1].end + 1); /* sorted, disjoint, not adjacent */
  }
  /* Every reserved region sysfs lists for the group lies outside every range. */
  char path[128], line[256];
  snprintf(path, sizeof path, "/sys/kernel/iommu_groups/%d/reserved_regions", d.group_id);
  FILE* f = fopen(path, "r");
  CHECK(f);
  int regions = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long long first, last;
    if (sscanf(line, "%llx %llx", &first, &last) != 2) continue;
    ++regions;
    for (int i = 0; i < nr; ++i) CHECK(last < r[i].start || first > r[i].end);
  }
  fclose(f);
  CHECK(regions > 0);
}

TEST(dma_avail_drops_by_one_per_mapping) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  struct vfio_iommu_type1_info* info = vu_iommu_info(d.container);
  CHECK(info);
  struct vfio_iommu_type1_info_dma_avail* a =
      (void*)vu_find_cap(info, info->argsz, info->cap_offset, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
  uint32_t before = a ? a->avail : 0;
  free(info);
  CHECK(before > 0);
  void* buf = vu_mmap_anon(2 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  uint64_t iova = vu_pick_iova(d.container, 2 * VU_PAGE);
  CHECK(vu_map(d.container, buf, iova, VU_PAGE, VU_RW) == 0);
  CHECK(vu_map(d.container, (char*)buf + VU_PAGE, iova + VU_PAGE, VU_PAGE, VU_RW) == 0);
  info = vu_iommu_info(d.container);
  CHECK(info);
  a = (void*)vu_find_cap(info, info->argsz, info->cap_offset, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
  uint32_t after = a ? a->avail : 0;
  free(info);
  EXPECT_EQ(after, before - 2); /* mappings are never merged */
}

/* Maps `size` bytes of `buf` at an iova from the ranges and unmaps it; UNMAP writes the size back. */
static void map_unmap(void* buf, uint64_t size) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  uint64_t iova = vu_pick_iova(d.container, size);
  CHECK(iova != ~0ull);
  memset(buf, 0x5a, size);
  CHECK(vu_map(d.container, buf, iova, size, VU_RW) == 0);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, iova, size, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, size);
  /* Nothing is left: the same unmap again finds nothing. */
  CHECK(vu_unmap(d.container, iova, size, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, 0);
}

TEST(map_unmap_anonymous_4k_pages_writes_back_size) {
  void* buf = vu_mmap_anon(16 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  map_unmap(buf, 16 * VU_PAGE);
}

TEST(map_unmap_hugetlb_2m) {
  void* buf = mmap(NULL, 2ull << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
  if (buf == MAP_FAILED) SKIP("no 2 MiB hugetlb pages (mmap MAP_HUGETLB failed)");
  st_defer_munmap(buf, 2ull << 20);
  map_unmap(buf, 2ull << 20);
}

TEST(map_unmap_hugetlb_1g) {
  void* buf = mmap(NULL, 1ull << 30, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (30 << MAP_HUGE_SHIFT), -1, 0);
  if (buf == MAP_FAILED) SKIP("no 1 GiB hugetlb pages (mmap MAP_HUGETLB failed)");
  st_defer_munmap(buf, 1ull << 30);
  map_unmap(buf, 1ull << 30);
}

TEST(unmap_all_removes_everything_and_reports_the_total) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  char* buf = vu_mmap_anon(8 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  uint64_t iova = vu_pick_iova(d.container, 16 * VU_PAGE);
  CHECK(vu_map(d.container, buf, iova, VU_PAGE, VU_RW) == 0);
  CHECK(vu_map(d.container, buf + VU_PAGE, iova + 4 * VU_PAGE, 3 * VU_PAGE, VU_RW) == 0);
  CHECK(vu_map(d.container, buf + 4 * VU_PAGE, iova + 12 * VU_PAGE, 4 * VU_PAGE, VU_RW) == 0);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &unmapped) == 0);
  EXPECT_EQ(unmapped, 8 * VU_PAGE);
  CHECK(vu_unmap(d.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &unmapped) == 0);
  EXPECT_EQ(unmapped, 0);
  /* ALL with a non-zero iova or size is refused. */
  EXPECT_ERRNO(vu_unmap(d.container, iova, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL), EINVAL);
  EXPECT_ERRNO(vu_unmap(d.container, 0, VU_PAGE, VFIO_DMA_UNMAP_FLAG_ALL, NULL), EINVAL);
}

TEST(last_page_of_the_last_iova_range_maps) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  struct vfio_iova_range r[32];
  int n = vu_iova_ranges(d.container, r, 32);
  CHECK(n > 0);
  uint64_t iova = (r[n - 1].end + 1 - VU_PAGE) & ~(VU_PAGE - 1);
  void* buf = vu_mmap_anon(VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  CHECK(vu_map(d.container, buf, iova, VU_PAGE, VU_RW) == 0);
  /* One page past the range's end is not an IOVA. */
  EXPECT_ERRNO(vu_map(d.container, buf, iova + VU_PAGE, VU_PAGE, VU_RW), EINVAL);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, iova, VU_PAGE, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, VU_PAGE);
}

/* The selftest maps and unmaps iova = ~0 & ~(page - 1), two pages, and expects EOVERFLOW: that is
 * kernel 6.18 (kernel-vfio.md §5.8). Kernel 6.1, which vfiobox follows, finds the wrap in the
 * alignment/wrap checks and answers EINVAL for both. */
TEST(map_and_unmap_wrapping_the_top_of_the_address_space_fail) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  void* buf = vu_mmap_anon(2 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  const uint64_t top = ~0ull & ~(VU_PAGE - 1);
  EXPECT_ERRNO(vu_map(d.container, buf, top, 2 * VU_PAGE, VU_RW), EINVAL);
  uint64_t unmapped = 12345;
  EXPECT_ERRNO(vu_unmap(d.container, top, 2 * VU_PAGE, 0, &unmapped), EINVAL);
  EXPECT_EQ(unmapped, 2 * VU_PAGE); /* not written back on error */
  /* The same for a vaddr whose end wraps. */
  EXPECT_ERRNO(vu_map(d.container, (void*)(uintptr_t)top, vu_pick_iova(d.container, 2 * VU_PAGE), 2 * VU_PAGE, VU_RW),
               EINVAL);
  /* The last page alone is a valid request shape; it is only outside every IOVA range. */
  EXPECT_ERRNO(vu_map(d.container, buf, top, VU_PAGE, VU_RW), EINVAL);
}

TEST(map_argument_checks_follow_kernel_6_1_order) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  char* buf = vu_mmap_anon(4 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  uint64_t iova = vu_pick_iova(d.container, 4 * VU_PAGE);
  struct vfio_iommu_type1_dma_map map = {.argsz = sizeof map - 1, .flags = VU_RW,
                                         .vaddr = (uintptr_t)buf, .iova = iova, .size = VU_PAGE};
  EXPECT_ERRNO(ioctl(d.container, VFIO_IOMMU_MAP_DMA, &map), EINVAL);          /* argsz */
  EXPECT_ERRNO(vu_map(d.container, buf, iova, VU_PAGE, VU_RW | 0x100), EINVAL); /* unknown flag */
  EXPECT_ERRNO(vu_map(d.container, buf, iova, VU_PAGE, 0), EINVAL);             /* neither R/W nor VADDR */
  EXPECT_ERRNO(vu_map(d.container, buf, iova, VU_PAGE, VU_RW | VFIO_DMA_MAP_FLAG_VADDR), EINVAL);
  EXPECT_ERRNO(vu_map(d.container, buf, iova, 0, VU_RW), EINVAL);               /* size 0 */
  EXPECT_ERRNO(vu_map(d.container, buf, iova + 1, VU_PAGE, VU_RW), EINVAL);     /* iova unaligned */
  EXPECT_ERRNO(vu_map(d.container, buf + 1, iova, VU_PAGE, VU_RW), EINVAL);     /* vaddr unaligned */
  EXPECT_ERRNO(vu_map(d.container, buf, iova, VU_PAGE + 1, VU_RW), EINVAL);     /* size unaligned */
  EXPECT_ERRNO(vu_map(d.container, buf, iova, VU_PAGE, VFIO_DMA_MAP_FLAG_VADDR), ENOENT);
  CHECK(vu_map(d.container, buf, iova, 2 * VU_PAGE, VU_RW) == 0);
  /* Any overlap by any byte is EEXIST, before the entry and range checks. */
  EXPECT_ERRNO(vu_map(d.container, buf, iova + VU_PAGE, 2 * VU_PAGE, VU_RW), EEXIST);
  EXPECT_ERRNO(vu_map(d.container, buf, iova, VU_PAGE, VU_RW), EEXIST);
  /* VADDR on a mapping that is not vaddr-invalid. */
  EXPECT_ERRNO(vu_map(d.container, buf, iova, 2 * VU_PAGE, VFIO_DMA_MAP_FLAG_VADDR), EINVAL);
}

TEST(map_of_unusable_user_memory_is_efault) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  uint64_t iova = vu_pick_iova(d.container, 4 * VU_PAGE);
  char* hole = mmap(NULL, 2 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(hole != MAP_FAILED);
  CHECK(munmap(hole, 2 * VU_PAGE) == 0);
  EXPECT_ERRNO(vu_map(d.container, hole, iova, 2 * VU_PAGE, VU_RW), EFAULT);
  char* ro = vu_mmap_anon(2 * VU_PAGE, PROT_READ, MAP_PRIVATE);
  CHECK(ro != MAP_FAILED);
  EXPECT_ERRNO(vu_map(d.container, ro, iova, 2 * VU_PAGE, VU_RW), EFAULT);
  EXPECT_ERRNO(vu_map(d.container, ro, iova, 2 * VU_PAGE, VFIO_DMA_MAP_FLAG_WRITE), EFAULT);
  /* Read-only memory may be mapped for device reads. */
  CHECK(vu_map(d.container, ro, iova, 2 * VU_PAGE, VFIO_DMA_MAP_FLAG_READ) == 0);
  /* A failed MAP leaves nothing behind: the whole range is free again after this unmap. */
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, iova, 4 * VU_PAGE, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, 2 * VU_PAGE);
}

TEST(unmap_bisection_and_empty_ranges) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  char* buf = vu_mmap_anon(4 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  uint64_t iova = vu_pick_iova(d.container, 16 * VU_PAGE);
  uint64_t unmapped = 77;
  /* Nothing mapped there: success, size 0. */
  CHECK(vu_unmap(d.container, iova, 16 * VU_PAGE, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, 0);
  EXPECT_ERRNO(vu_unmap(d.container, iova, 0, 0, NULL), EINVAL);
  EXPECT_ERRNO(vu_unmap(d.container, iova + 1, VU_PAGE, 0, NULL), EINVAL);
  EXPECT_ERRNO(vu_unmap(d.container, iova, VU_PAGE, 0x80, NULL), EINVAL);
  CHECK(vu_map(d.container, buf, iova + 4 * VU_PAGE, 4 * VU_PAGE, VU_RW) == 0);
  if (vu_iommu_type == VFIO_TYPE1v2_IOMMU) {
    /* v2: no bisection, at either end. */
    EXPECT_ERRNO(vu_unmap(d.container, iova + 5 * VU_PAGE, VU_PAGE, 0, NULL), EINVAL);
    EXPECT_ERRNO(vu_unmap(d.container, iova, 5 * VU_PAGE, 0, NULL), EINVAL);
    EXPECT_ERRNO(vu_unmap(d.container, iova + 5 * VU_PAGE, 8 * VU_PAGE, 0, NULL), EINVAL);
    CHECK(vu_unmap(d.container, iova, 16 * VU_PAGE, 0, &unmapped) == 0);
    EXPECT_EQ(unmapped, 4 * VU_PAGE);
  } else {
    /* v1: a request starting inside a mapping removes nothing and succeeds... */
    CHECK(vu_unmap(d.container, iova + 5 * VU_PAGE, VU_PAGE, 0, &unmapped) == 0);
    EXPECT_EQ(unmapped, 0);
    /* ...and one ending inside it removes it whole (more than asked). */
    CHECK(vu_unmap(d.container, iova, 5 * VU_PAGE, 0, &unmapped) == 0);
    EXPECT_EQ(unmapped, 4 * VU_PAGE);
  }
}

TEST(vaddr_update_protocol) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  if (ioctl(d.container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR) != 1) SKIP("no VFIO_UPDATE_VADDR");
  char* buf = vu_mmap_anon(2 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  uint64_t iova = vu_pick_iova(d.container, 2 * VU_PAGE);
  CHECK(vu_map(d.container, buf, iova, 2 * VU_PAGE, VU_RW) == 0);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, iova, 2 * VU_PAGE, VFIO_DMA_UNMAP_FLAG_VADDR, &unmapped) == 0);
  EXPECT_EQ(unmapped, 2 * VU_PAGE);
  /* Twice is EINVAL; a plain MAP over it is EEXIST; the size must match exactly. */
  EXPECT_ERRNO(vu_unmap(d.container, iova, 2 * VU_PAGE, VFIO_DMA_UNMAP_FLAG_VADDR, NULL), EINVAL);
  EXPECT_ERRNO(vu_map(d.container, buf, iova, 2 * VU_PAGE, VU_RW), EEXIST);
  EXPECT_ERRNO(vu_map(d.container, buf, iova, VU_PAGE, VFIO_DMA_MAP_FLAG_VADDR), EINVAL);
  CHECK(vu_map(d.container, buf, iova, 2 * VU_PAGE, VFIO_DMA_MAP_FLAG_VADDR) == 0);
  CHECK(vu_unmap(d.container, iova, 2 * VU_PAGE, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, 2 * VU_PAGE);
}

/* intel-iommu's debugfs dump of the page tables (Linux 6.1: one file for every device,
 * /sys/kernel/debug/iommu/intel/domain_translation_struct; 6.8+ has one per device instead): the
 * device's section lists each mapped IOVA page with the entry at every level, so a test can see
 * which page size backs a mapping. Fills *e with PML5E..PTE (e[0]..e[4]) and returns 1 when the
 * section of `bdf` lists `iova`, 0 when it does not, -1 when the device has no section, -2 when
 * the file lists no device at all (or cannot be read). */
static int dmar_entries(const char* bdf, uint64_t iova, uint64_t e[5]) {
  FILE* f = fopen("/sys/kernel/debug/iommu/intel/domain_translation_struct", "r");
  if (!f) return -2;
  char line[512], head[64], want[32];
  snprintf(head, sizeof head, "Device %s @", bdf);
  snprintf(want, sizeof want, "0x%013llx |", (unsigned long long)(iova >> 12));
  int in = 0, found = -1, devices = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "Device ", 7)) {
      ++devices;
      in = !strncmp(line, head, strlen(head));
      if (in && found < 0) found = 0;
      continue;
    }
    if (in && !strncmp(line, want, strlen(want))) {
      unsigned long long v[5] = {0};
      if (sscanf(line + strlen(want), " 0x%llx 0x%llx 0x%llx 0x%llx 0x%llx", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5) {
        for (int i = 0; i < 5; ++i) e[i] = v[i];
        found = 1;
        break;
      }
    }
  }
  fclose(f);
  return devices ? found : -2;
}

TEST(intel_debugfs_shows_each_mapping_and_its_page_size) {
  if (access("/sys/kernel/debug/iommu/intel", F_OK) != 0) SKIP("no intel-iommu debugfs");
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  char* buf = vu_mmap_anon(2 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != NULL);
  const uint64_t iova = vu_pick_iova(d.container, 2 * VU_PAGE);
  CHECK(vu_map(d.container, buf, iova, VU_PAGE, VU_RW) == 0);
  CHECK(vu_map(d.container, buf + VU_PAGE, iova + VU_PAGE, VU_PAGE, VFIO_DMA_MAP_FLAG_WRITE) == 0);
  uint64_t e[5] = {0};
  const int r = dmar_entries(vu_bdf, iova, e);
  CHECK(r != -2); /* an intel-iommu machine lists its devices (6.1: every one, bridges too) */
  if (r < 0) SKIP("%s is not behind an intel-iommu unit", vu_bdf);
  EXPECT_EQ(r, 1);
  /* A 4 KiB page: a PTE, with the table entries above it; read and write allowed. */
  EXPECT_EQ(e[4] != 0 && e[3] != 0 && e[2] != 0, 1);
  EXPECT_EQ(e[4] & 0x3, 0x3);
  EXPECT_EQ(e[3] & (1u << 7), 0);
  /* Write-only: 6.1's intel-iommu sets the first-level present bit, which is the read bit. */
  EXPECT_EQ(dmar_entries(vu_bdf, iova + VU_PAGE, e), 1);
  EXPECT_EQ(e[4] & 0x3, 0x3);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, iova, 2 * VU_PAGE, 0, &unmapped) == 0);
  EXPECT_EQ(dmar_entries(vu_bdf, iova, e), 0);
  /* A 2 MiB hugetlb page (when the system has one) is one PDE with the page-size bit, no PTE. */
  void* huge = mmap(NULL, 2u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
  if (huge == MAP_FAILED) return;
  const uint64_t big = (vu_pick_iova(d.container, 4u << 20) + (2u << 20) - 1) & ~((2ull << 20) - 1);
  CHECK(vu_map(d.container, huge, big, 2u << 20, VU_RW) == 0);
  EXPECT_EQ(dmar_entries(vu_bdf, big, e), 1);
  EXPECT_EQ(e[4], 0);
  EXPECT_EQ((e[3] >> 7) & 1, 1);
  CHECK(vu_unmap(d.container, big, 2u << 20, 0, &unmapped) == 0);
  munmap(huge, 2u << 20);
}

int main(int argc, char** argv) { return vu_main(argc, argv, "0000:01:00.0", 1); }
