/* vfio_pinning_test: DMA-mapped memory behaves as pinned memory does on Linux. After the program
 * munmaps, discards (MADV_DONTNEED, MADV_REMOVE) or moves (mremap) memory it mapped with
 * MAP_DMA, the device (the edu's DMA engine) still reaches the old pages with their old bytes,
 * no IOMMU fault is logged and nothing faults in the process (kernel-vfio.md §5.2: pages are
 * pinned at MAP time). Run under `vfiobox run`; the ctest entry fails if the fault log printed at
 * exit is not empty. SPDX-License-Identifier: Apache-2.0 */
#include "edu.h"

#define N (4 * VU_PAGE)
#define IOVA 0x100000ull
#define OUT_IOVA 0x200000ull

struct rig {
  struct vu_device d;
  uint8_t* out; /* the device copies into it, to show what it read */
};

static int rig_open(struct rig* r) {
  if (vu_open_device(&r->d, vu_bdf, vu_iommu_type) != 0) return -1;
  if (edu_enable(r->d.device) != 0) return -1;
  r->out = vu_mmap_anon(VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  if (r->out == MAP_FAILED) return -1;
  return vu_map(r->d.container, r->out, OUT_IOVA, VU_PAGE, VU_RW);
}

static void fill(uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = (uint8_t)(seed + i * 13);
}
static int same_as_fill(const uint8_t* p, size_t n, uint8_t seed, size_t from) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != (uint8_t)(seed + (from + i) * 13)) return 0;
  return 1;
}

/* Opens the rig, fills `buf` (N bytes the test mmapped; MAP_FAILED passes through as a failure)
 * with the pattern of `seed` and maps it at IOVA. Returns buf, or NULL on any failure. */
static uint8_t* rig_open_mapped(struct rig* r, uint8_t* buf, uint8_t seed) {
  if (rig_open(r) != 0 || buf == MAP_FAILED) return NULL;
  fill(buf, N, seed);
  return vu_map(r->d.container, buf, IOVA, N, VU_RW) == 0 ? buf : NULL;
}

/* The device reads page `page` of the mapping at IOVA; compares with the fill pattern. */
static int device_sees_fill(struct rig* r, int page, uint8_t seed) {
  memset(r->out, 0, VU_PAGE);
  if (edu_copy(r->d.device, IOVA + page * VU_PAGE, OUT_IOVA, VU_PAGE) != 0) return 0;
  return same_as_fill(r->out, VU_PAGE, seed, page * VU_PAGE);
}

TEST(munmap_of_mapped_memory_keeps_the_pages_for_the_device) {
  struct rig r;
  uint8_t* buf = rig_open_mapped(&r, mmap(NULL, N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 1);
  CHECK(buf != NULL);
  CHECK(munmap(buf, N) == 0);
  for (int p = 0; p < 4; ++p) CHECK(device_sees_fill(&r, p, 1));
  /* The device may still write there, and read its write back. */
  memset(r.out, 0xee, 64);
  CHECK(edu_copy(r.d.device, OUT_IOVA, IOVA + VU_PAGE, 64) == 0);
  memset(r.out, 0, 64);
  CHECK(edu_copy(r.d.device, IOVA + VU_PAGE, OUT_IOVA, 64) == 0);
  EXPECT_EQ(r.out[63], 0xee);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(r.d.container, IOVA, N, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, N);
}

TEST(munmap_of_part_of_a_mapping_keeps_that_part) {
  struct rig r;
  uint8_t* buf = rig_open_mapped(&r, mmap(NULL, N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 2);
  CHECK(buf != NULL);
  st_defer_munmap(buf, VU_PAGE);
  st_defer_munmap(buf + 3 * VU_PAGE, VU_PAGE);
  CHECK(munmap(buf + VU_PAGE, 2 * VU_PAGE) == 0);
  for (int p = 0; p < 4; ++p) CHECK(device_sees_fill(&r, p, 2));
  /* The pages the program kept are still shared with the device. */
  buf[0] = 0x99;
  CHECK(edu_copy(r.d.device, IOVA, OUT_IOVA, 1) == 0);
  EXPECT_EQ(r.out[0], 0x99);
}

TEST(madvise_dontneed_keeps_the_old_bytes_for_the_device) {
  struct rig r;
  uint8_t* buf = rig_open_mapped(&r, vu_mmap_anon(N, PROT_READ | PROT_WRITE, MAP_PRIVATE), 3);
  CHECK(buf != NULL);
  CHECK(madvise(buf, N, MADV_DONTNEED) == 0);
  EXPECT_EQ(buf[1], 0); /* the program gets fresh zero pages, as with pinned pages */
  for (int p = 0; p < 4; ++p) CHECK(device_sees_fill(&r, p, 3));
}

TEST(madvise_remove_of_shared_memory_keeps_the_old_bytes_for_the_device) {
  struct rig r;
  uint8_t* buf = rig_open_mapped(&r, vu_mmap_anon(N, PROT_READ | PROT_WRITE, MAP_SHARED), 4);
  CHECK(buf != NULL);
  CHECK(madvise(buf, N, MADV_REMOVE) == 0);
  EXPECT_EQ(buf[1], 0); /* the hole reads zeros */
  for (int p = 0; p < 4; ++p) CHECK(device_sees_fill(&r, p, 4));
}

TEST(mremap_move_keeps_device_and_program_on_the_same_pages) {
  struct rig r;
  uint8_t* buf = rig_open_mapped(&r, mmap(NULL, N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 5);
  CHECK(buf != NULL);
  /* Force a move: reserve a place and move there. */
  uint8_t* place = mmap(NULL, N, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(place != MAP_FAILED);
  uint8_t* moved = mremap(buf, N, N, MREMAP_MAYMOVE | MREMAP_FIXED, place);
  CHECK(moved == place);
  st_defer_munmap(moved, N);
  CHECK(same_as_fill(moved, N, 5, 0));
  for (int p = 0; p < 4; ++p) CHECK(device_sees_fill(&r, p, 5));
  moved[2 * VU_PAGE] = 0x42; /* a later write by the program reaches the device */
  CHECK(edu_copy(r.d.device, IOVA + 2 * VU_PAGE, OUT_IOVA, 1) == 0);
  EXPECT_EQ(r.out[0], 0x42);
  r.out[0] = 0x24; /* and a device write reaches the program */
  CHECK(edu_copy(r.d.device, OUT_IOVA, IOVA + 3 * VU_PAGE, 1) == 0);
  EXPECT_EQ(moved[3 * VU_PAGE], 0x24);
}

TEST(mremap_grow_and_shrink_keep_the_pages) {
  struct rig r;
  uint8_t* buf = rig_open_mapped(&r, mmap(NULL, N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 6);
  CHECK(buf != NULL);
  /* Shrink to one page: the tail leaves the program but not the device. */
  uint8_t* s = mremap(buf, N, VU_PAGE, 0);
  CHECK(s == buf);
  for (int p = 0; p < 4; ++p) CHECK(device_sees_fill(&r, p, 6));
  /* Grow far enough that it must move. */
  uint8_t* g = mremap(buf, VU_PAGE, 256 * VU_PAGE, MREMAP_MAYMOVE);
  CHECK(g != MAP_FAILED);
  st_defer_munmap(g, 256 * VU_PAGE);
  CHECK(same_as_fill(g, VU_PAGE, 6, 0));
  g[7] = 0x5a;
  CHECK(edu_copy(r.d.device, IOVA, OUT_IOVA, 8) == 0);
  EXPECT_EQ(r.out[7], 0x5a);
  for (int p = 1; p < 4; ++p) CHECK(device_sees_fill(&r, p, 6));
}

TEST(unrelated_munmap_and_madvise_are_untouched) {
  struct rig r;
  CHECK(rig_open(&r) == 0);
  uint8_t* buf = vu_mmap_anon(N, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(buf != MAP_FAILED);
  fill(buf, N, 7);
  CHECK(madvise(buf, N, MADV_DONTNEED) == 0);
  EXPECT_EQ(buf[1], 0);
  void* p = mmap(NULL, N, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  CHECK(munmap(p, N) == 0);
  EXPECT_ERRNO(munmap((void*)1, VU_PAGE), EINVAL);
}

int main(int argc, char** argv) { return vu_main(argc, argv, "0000:01:00.0", 1); }
