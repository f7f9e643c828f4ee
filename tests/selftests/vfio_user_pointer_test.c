/* vfio_user_pointer_test: MAP_DMA's user-pointer and locked-memory answers stay exact under
 * `vfiobox run`, where type1's check caches are on (docs/design/0007): the preload library
 * reports the program's munmap/mprotect/mremap (cache invalidated) and setrlimit/capset (limit
 * refreshed), so a MAP_DMA of memory unmapped after an earlier successful MAP answers EFAULT, and
 * a MAP_DMA after the program lowered RLIMIT_MEMLOCK answers ENOMEM (with CAP_IPC_LOCK dropped
 * from the effective set, as the kernel skips the check with it) — kernel-vfio.md §5.1, §5.2.
 * SPDX-License-Identifier: Apache-2.0 */
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "vfio_util.h"

/* glibc's capset (not declared by libc headers): the call the preload library sees. */
extern int capset(cap_user_header_t header, const cap_user_data_t data);
extern int capget(cap_user_header_t header, cap_user_data_t data);

#define IOVA 0x100000ull

/* Maps and unmaps `p` once (so the check caches hold a snapshot that includes it). */
static int map_once(int container, void* p, uint64_t size, uint32_t flags) {
  if (vu_map(container, p, IOVA, size, flags) != 0) return -1;
  uint64_t n = 0;
  return vu_unmap(container, IOVA, size, 0, &n) == 0 && n == size ? 0 : -1;
}

TEST(map_after_munmap_is_efault) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  for (uint64_t size = VU_PAGE; size <= (4ull << 20); size *= 1024) { /* both sides of 1 MiB */
    void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    CHECK(map_once(d.container, p, size, VU_RW) == 0);
    CHECK(munmap(p, size) == 0);
    EXPECT_ERRNO(vu_map(d.container, p, IOVA, size, VU_RW), EFAULT);
    EXPECT_ERRNO(vu_map(d.container, p, IOVA, size, VFIO_DMA_MAP_FLAG_READ), EFAULT);
  }
}

TEST(map_after_mprotect_read_only_refuses_device_writes) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  void* p = vu_mmap_anon(4 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(p != MAP_FAILED);
  CHECK(map_once(d.container, p, 4 * VU_PAGE, VU_RW) == 0);
  CHECK(mprotect(p, 4 * VU_PAGE, PROT_READ) == 0);
  EXPECT_ERRNO(vu_map(d.container, p, IOVA, 4 * VU_PAGE, VU_RW), EFAULT);
  CHECK(map_once(d.container, p, 4 * VU_PAGE, VFIO_DMA_MAP_FLAG_READ) == 0);
  CHECK(mprotect(p, 4 * VU_PAGE, PROT_NONE) == 0);
  EXPECT_ERRNO(vu_map(d.container, p, IOVA, 4 * VU_PAGE, VFIO_DMA_MAP_FLAG_READ), EFAULT);
}

TEST(map_of_the_old_address_after_mremap_is_efault) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  void* p = mmap(NULL, 2 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* place = mmap(NULL, 2 * VU_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED && place != MAP_FAILED);
  CHECK(map_once(d.container, p, 2 * VU_PAGE, VU_RW) == 0);
  void* q = mremap(p, 2 * VU_PAGE, 2 * VU_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, place);
  CHECK(q == place);
  st_defer_munmap(q, 2 * VU_PAGE);
  EXPECT_ERRNO(vu_map(d.container, p, IOVA, 2 * VU_PAGE, VU_RW), EFAULT);
  CHECK(map_once(d.container, q, 2 * VU_PAGE, VU_RW) == 0);
}

/* Drops (or restores) CAP_IPC_LOCK in this thread's effective set through libc's capset. */
static int set_ipc_lock(int on) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3];
  if (capget(&h, c) != 0) return -1;
  if (on) c[CAP_TO_INDEX(CAP_IPC_LOCK)].effective |= CAP_TO_MASK(CAP_IPC_LOCK);
  else c[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
  return capset(&h, c);
}

TEST(map_after_lowering_rlimit_memlock_is_enomem) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  struct rlimit saved;
  CHECK(getrlimit(RLIMIT_MEMLOCK, &saved) == 0);
  if (set_ipc_lock(0) != 0) SKIP("cannot change capabilities");
  void* p = vu_mmap_anon(16 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  int ok = p != MAP_FAILED;
  struct rlimit rl = saved;
  rl.rlim_cur = 64 * VU_PAGE;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
  ok = ok && setrlimit(RLIMIT_MEMLOCK, &rl) == 0;
  /* Within the limit: accepted (and the cached limit is now 64 pages). */
  ok = ok && map_once(d.container, p, 16 * VU_PAGE, VU_RW) == 0;
  int first_errno = 0, second_errno = 0, third = -1;
  if (ok) {
    rl.rlim_cur = 8 * VU_PAGE;
    ok = setrlimit(RLIMIT_MEMLOCK, &rl) == 0;
    errno = 0;
    if (vu_map(d.container, p, IOVA, 16 * VU_PAGE, VU_RW) != 0) first_errno = errno;
    else vu_unmap(d.container, IOVA, 16 * VU_PAGE, 0, NULL);
    /* prlimit on ourselves counts the same. */
    rl.rlim_cur = 0;
    ok = ok && prlimit(0, RLIMIT_MEMLOCK, &rl, NULL) == 0;
    errno = 0;
    if (vu_map(d.container, p, IOVA, VU_PAGE, VU_RW) != 0) second_errno = errno;
    else vu_unmap(d.container, IOVA, VU_PAGE, 0, NULL);
    /* With CAP_IPC_LOCK back the check is skipped again. */
    set_ipc_lock(1);
    third = vu_map(d.container, p, IOVA, 16 * VU_PAGE, VU_RW);
    if (third == 0) vu_unmap(d.container, IOVA, 16 * VU_PAGE, 0, NULL);
  }
  /* Restore before any CHECK can return. */
  setrlimit(RLIMIT_MEMLOCK, &saved);
  set_ipc_lock(1);
  CHECK(ok);
  EXPECT_EQ(first_errno, ENOMEM);
  EXPECT_EQ(second_errno, ENOMEM);
  EXPECT_EQ(third, 0);
}

/* Issue 14 item 1 (kernel-vfio.md §5.2): on 6.1 type1's pins and mlock() raise one counter,
 * mm->locked_vm. MAP_DMA fails ENOMEM when mlocked + pinned + new > RLIMIT_MEMLOCK, an mlock()
 * fails ENOMEM when mlocked + pinned + its pages would, munlock()/UNMAP give the room back, and
 * pages already locked are not counted twice. Everything runs with CAP_IPC_LOCK dropped. */
static long mapped_errno(int container, void* p, uint64_t iova, uint64_t size) {
  errno = 0;
  return vu_map(container, p, iova, size, VU_RW) == 0 ? 0 : errno;
}
static long mlock_errno(void* p, size_t len) {
  errno = 0;
  return mlock(p, len) == 0 ? 0 : errno;
}

TEST(mlock_and_map_dma_count_against_one_limit) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  struct rlimit saved;
  CHECK(getrlimit(RLIMIT_MEMLOCK, &saved) == 0);
  char* pin = vu_mmap_anon(16 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  char* lock = vu_mmap_anon(16 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(pin != MAP_FAILED && lock != MAP_FAILED);
  if (set_ipc_lock(0) != 0) SKIP("cannot change capabilities");
  struct rlimit rl = saved;
  rl.rlim_cur = 16 * VU_PAGE;
  int ok = setrlimit(RLIMIT_MEMLOCK, &rl) == 0;
  long r[12];
  for (int i = 0; i < 12; ++i) r[i] = -1;
  if (ok) {
    r[0] = mapped_errno(d.container, pin, IOVA, 8 * VU_PAGE);                     /* 8 pinned */
    r[1] = mlock_errno(lock, 12 * VU_PAGE);                                        /* 8 + 12 > 16 */
    r[2] = mlock_errno(lock, 8 * VU_PAGE);                                         /* 16: fits */
    r[3] = mlock_errno(lock, 8 * VU_PAGE);                                         /* already locked */
    r[4] = mapped_errno(d.container, pin + 8 * VU_PAGE, IOVA + 8 * VU_PAGE, VU_PAGE); /* 17 */
    munlock(lock + 4 * VU_PAGE, 4 * VU_PAGE);                                      /* 4 locked */
    r[5] = mapped_errno(d.container, pin + 8 * VU_PAGE, IOVA + 8 * VU_PAGE, 4 * VU_PAGE); /* 16 */
    r[6] = mlock_errno(lock + 8 * VU_PAGE, VU_PAGE);                               /* 17 */
    uint64_t n = 0;
    vu_unmap(d.container, IOVA, 8 * VU_PAGE, 0, &n);                               /* 4 pinned */
    r[7] = mlock_errno(lock + 8 * VU_PAGE, 8 * VU_PAGE);                           /* 16 */
    r[8] = mapped_errno(d.container, pin, IOVA, VU_PAGE);                           /* 17 */
    munlockall();                                                                   /* 4 pinned */
    /* MCL_FUTURE: new mappings are locked (the kernel's own check knows nothing of the pins). */
    r[9] = mlockall(MCL_FUTURE) == 0 ? 0 : errno;
    void* future = mmap(NULL, 8 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r[10] = mapped_errno(d.container, pin, IOVA, 5 * VU_PAGE);                      /* 4 + 8 + 5 */
    munlockall();
    r[11] = mapped_errno(d.container, pin, IOVA, 5 * VU_PAGE);                      /* 4 + 5 */
    if (future != MAP_FAILED) munmap(future, 8 * VU_PAGE);
    vu_unmap(d.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &n);
  }
  munlockall();
  setrlimit(RLIMIT_MEMLOCK, &saved);
  set_ipc_lock(1);
  CHECK(ok);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], ENOMEM);
  EXPECT_EQ(r[2], 0);
  EXPECT_EQ(r[3], 0);
  EXPECT_EQ(r[4], ENOMEM);
  EXPECT_EQ(r[5], 0);
  EXPECT_EQ(r[6], ENOMEM);
  EXPECT_EQ(r[7], 0);
  EXPECT_EQ(r[8], ENOMEM);
  EXPECT_EQ(r[9], 0);
  EXPECT_EQ(r[10], ENOMEM);
  EXPECT_EQ(r[11], 0);
}

/* The capability is the one held at each MAP_DMA: dropped by a raw syscall(SYS_capset), which no
 * interposer sees, it counts from the next MAP. A read-only MAP_DMA of never-written memory pins
 * the zero page: free even with a limit of 0; written memory is charged. */
TEST(raw_capset_drop_and_zero_page_maps) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  struct rlimit saved;
  CHECK(getrlimit(RLIMIT_MEMLOCK, &saved) == 0);
  if (set_ipc_lock(1) != 0) SKIP("no CAP_IPC_LOCK");
  char* p = vu_mmap_anon(8 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  CHECK(p != MAP_FAILED);
  struct rlimit rl = saved;
  rl.rlim_cur = 0;
  int ok = setrlimit(RLIMIT_MEMLOCK, &rl) == 0;
  long r[5] = {-1, -1, -1, -1, -1};
  uint64_t n = 0;
  if (ok) {
    r[0] = mapped_errno(d.container, p, IOVA, 4 * VU_PAGE); /* limit 0, with the capability */
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3];
    syscall(SYS_capget, &h, c);
    c[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
    ok = syscall(SYS_capset, &h, c) == 0;
    r[1] = mapped_errno(d.container, p + 4 * VU_PAGE, IOVA + 4 * VU_PAGE, VU_PAGE);
    vu_unmap(d.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &n);
    char* fresh = vu_mmap_anon(4 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    errno = 0;
    r[2] = vu_map(d.container, fresh, IOVA, 4 * VU_PAGE, VFIO_DMA_MAP_FLAG_READ) == 0 ? 0 : errno;
    fresh[VU_PAGE] = 1;
    errno = 0;
    r[3] = vu_map(d.container, fresh, IOVA + 4 * VU_PAGE, 4 * VU_PAGE, VFIO_DMA_MAP_FLAG_READ) == 0 ? 0 : errno;
    r[4] = mapped_errno(d.container, fresh + 2 * VU_PAGE, IOVA + 8 * VU_PAGE, VU_PAGE);
    vu_unmap(d.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &n);
  }
  setrlimit(RLIMIT_MEMLOCK, &saved);
  set_ipc_lock(1);
  CHECK(ok);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], ENOMEM);
  EXPECT_EQ(r[2], 0);
  EXPECT_EQ(r[3], ENOMEM);
  EXPECT_EQ(r[4], ENOMEM);
}

int main(int argc, char** argv) { return vu_main(argc, argv, "0000:01:00.0", 1); }
