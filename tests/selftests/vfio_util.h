/* vfio_util.h: container/group/device setup for the selftests, the way a userspace driver does it
 * on a real machine (clients.md §2.3): sysfs for the IOMMU group, /dev/vfio for the rest. Plain
 * C11 against <linux/vfio.h>. Every fd opened here is handed to st_defer_close, so a test that
 * fails half-way leaks nothing into the next one. SPDX-License-Identifier: Apache-2.0 */
#ifndef VFIOBOX_VFIO_UTIL_H
#define VFIOBOX_VFIO_UTIL_H

#include <fcntl.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/ioctl.h>

#include "selftest.h"

#define VU_PAGE 4096ull

struct vu_device {
  int container, group, device;
  int group_id;
  char bdf[32];
};

/* The IOMMU type of the current variant, set by main() ("type1" or "type1v2" in the label). */
static unsigned long vu_iommu_type = VFIO_TYPE1v2_IOMMU;
static const char* vu_bdf = "";

static inline int vu_group_of(const char* bdf) {
  char path[256], link[256];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", bdf);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) return -1;
  link[n] = 0;
  return atoi(basename(link));
}

/* Container + group + SET_IOMMU (no device fd). Returns 0, or -1 with errno (and a comment). */
static inline int vu_open_container(struct vu_device* d, const char* bdf, unsigned long type) {
  memset(d, 0, sizeof *d);
  d->container = d->group = d->device = -1;
  snprintf(d->bdf, sizeof d->bdf, "%s", bdf);
  d->group_id = vu_group_of(bdf);
  if (d->group_id < 0) {
    printf("# %s: no iommu_group link\n", bdf);
    return -1;
  }
  d->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
  if (d->container < 0) return -1;
  st_defer_close(d->container);
  if (ioctl(d->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) return -1;
  char path[64];
  snprintf(path, sizeof path, "/dev/vfio/%d", d->group_id);
  d->group = open(path, O_RDWR | O_CLOEXEC);
  if (d->group < 0) return -1;
  st_defer_close(d->group);
  struct vfio_group_status status = {.argsz = sizeof status};
  if (ioctl(d->group, VFIO_GROUP_GET_STATUS, &status) != 0) return -1;
  if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
    printf("# group %d is not viable\n", d->group_id);
    errno = EPERM;
    return -1;
  }
  if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container) != 0) return -1;
  if (ioctl(d->container, VFIO_CHECK_EXTENSION, type) <= 0) return -1;
  if (ioctl(d->container, VFIO_SET_IOMMU, type) != 0) return -1;
  return 0;
}

/* vu_open_container + GROUP_GET_DEVICE_FD. The device fd is closed first at cleanup. */
static inline int vu_open_device(struct vu_device* d, const char* bdf, unsigned long type) {
  if (vu_open_container(d, bdf, type) != 0) return -1;
  d->device = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
  if (d->device < 0) return -1;
  st_defer_close(d->device);
  return 0;
}

/* VFIO_IOMMU_GET_INFO with its capability chain (argsz grown as the kernel asks). Returns a
 * malloc'd buffer (freed by the caller) or NULL. */
static inline struct vfio_iommu_type1_info* vu_iommu_info(int container) {
  struct vfio_iommu_type1_info probe = {.argsz = sizeof probe};
  if (ioctl(container, VFIO_IOMMU_GET_INFO, &probe) != 0) return NULL;
  struct vfio_iommu_type1_info* info = calloc(1, probe.argsz);
  if (!info) return NULL;
  info->argsz = probe.argsz;
  if (ioctl(container, VFIO_IOMMU_GET_INFO, info) != 0) {
    free(info);
    return NULL;
  }
  return info;
}

static inline struct vfio_info_cap_header* vu_find_cap(void* info, uint32_t argsz, uint32_t cap_offset,
                                                       uint16_t id) {
  for (uint32_t off = cap_offset; off; ) {
    if (off + sizeof(struct vfio_info_cap_header) > argsz) return NULL;
    struct vfio_info_cap_header* h = (struct vfio_info_cap_header*)((char*)info + off);
    if (h->id == id) return h;
    if (h->next != 0 && h->next <= off) return NULL; /* a loop: malformed */
    off = h->next;
  }
  return NULL;
}

/* The IOVA ranges of the container (CAP_IOVA_RANGE); returns the count (0 when absent). */
static inline int vu_iova_ranges(int container, struct vfio_iova_range* out, int max) {
  struct vfio_iommu_type1_info* info = vu_iommu_info(container);
  if (!info) return 0;
  int n = 0;
  if (info->flags & VFIO_IOMMU_INFO_CAPS) {
    struct vfio_iommu_type1_info_cap_iova_range* cap = (void*)vu_find_cap(
        info, info->argsz, info->cap_offset, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
    if (cap)
      for (uint32_t i = 0; i < cap->nr_iovas && n < max; ++i) out[n++] = cap->iova_ranges[i];
  }
  free(info);
  return n;
}

/* The first page-aligned iova of the first range that can hold `size` bytes, or ~0. */
static inline uint64_t vu_pick_iova(int container, uint64_t size) {
  struct vfio_iova_range r[32];
  int n = vu_iova_ranges(container, r, 32);
  for (int i = 0; i < n; ++i) {
    uint64_t start = (r[i].start + size - 1) & ~(size - 1); /* natural alignment when size is 2^k */
    if (size & (size - 1)) start = (r[i].start + VU_PAGE - 1) & ~(VU_PAGE - 1);
    if (start == 0) start = size > VU_PAGE ? size : VU_PAGE; /* keep iova 0 free */
    if (start >= r[i].start && start <= r[i].end && r[i].end - start >= size - 1) return start;
  }
  return ~0ull;
}

static inline int vu_map(int container, void* vaddr, uint64_t iova, uint64_t size, uint32_t flags) {
  struct vfio_iommu_type1_dma_map map = {
      .argsz = sizeof map, .flags = flags, .vaddr = (uintptr_t)vaddr, .iova = iova, .size = size};
  return ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
}
#define VU_RW (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

/* UNMAP_DMA; *unmapped gets the size the kernel wrote back. */
static inline int vu_unmap(int container, uint64_t iova, uint64_t size, uint32_t flags, uint64_t* unmapped) {
  struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof unmap, .flags = flags, .iova = iova, .size = size};
  int r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
  if (unmapped) *unmapped = unmap.size;
  return r;
}

static inline void* vu_mmap_anon(size_t len, int prot, int flags) {
  void* p = mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) st_defer_munmap(p, len);
  return p;
}

static inline int vu_region(int device, uint32_t index, struct vfio_region_info* info) {
  memset(info, 0, sizeof *info);
  info->argsz = sizeof *info;
  info->index = index;
  return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, info);
}

/* Reads a sysfs attribute the way the selftests do (open + read + strtoul base 0). */
static inline unsigned long vu_sysfs_ulong(const char* bdf, const char* attr) {
  char path[256], buf[64];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/%s", bdf, attr);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return ~0ul;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return ~0ul;
  buf[n] = 0;
  return strtoul(buf, NULL, 0);
}

/* Waits up to timeout_ms for the eventfd; returns its counter (0 on timeout). */
static inline uint64_t vu_wait_eventfd(int efd, int timeout_ms) {
  struct pollfd p = {.fd = efd, .events = POLLIN};
  uint64_t v = 0;
  if (poll(&p, 1, timeout_ms) != 1) return 0;
  if (read(efd, &v, sizeof v) != sizeof v) return 0;
  return v;
}

/* Runs every test for each (type, bdf) given on the command line (default: `dflt`). */
static inline int vu_main(int argc, char** argv, const char* dflt, int both_types) {
  st_begin();
  const char* defaults[2] = {dflt, NULL};
  char** bdfs = argc > 1 ? argv + 1 : (char**)defaults;
  const char* env = getenv("VFIO_SELFTESTS_BDF");
  const char* envv[2] = {env, NULL};
  if (argc <= 1 && env && *env) bdfs = (char**)envv;
  for (char** b = bdfs; *b; ++b) {
    static const struct {
      const char* name;
      unsigned long type;
    } types[] = {{"type1", VFIO_TYPE1_IOMMU}, {"type1v2", VFIO_TYPE1v2_IOMMU}};
    for (int t = both_types ? 0 : 1; t < 2; ++t) {
      char label[96];
      snprintf(label, sizeof label, "%s/%s", types[t].name, *b);
      vu_iommu_type = types[t].type;
      vu_bdf = *b;
      st_run(label);
    }
  }
  return st_exit();
}

#endif
