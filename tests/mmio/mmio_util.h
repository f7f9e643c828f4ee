/* mmio_util.h: mapped register BARs for the tests/mmio programs (plain C11 against <linux/vfio.h>
 * and libc, on top of the selftests' selftest.h / vfio_util.h). A BAR is mapped the way a
 * userspace driver maps it (region info → mmap of the device fd at the region offset); the test
 * endpoint's access log (devices/test_endpoint.h) shows the device side of every access to its
 * scratch window. SPDX-License-Identifier: Apache-2.0 */
#ifndef VFIOBOX_MMIO_UTIL_H
#define VFIOBOX_MMIO_UTIL_H

#include "vfio_util.h"

/* The default machine. */
#define MM_EDU "0000:01:00.0"
#define MM_EP "0000:07:00.0"

/* Test endpoint BAR2 (devices/test_endpoint.h). */
#define TE_BAR 2
#define TE_ID 0x7e570001u
#define TE_LOG_COUNT 0x30
#define TE_WIN 0x100
#define TE_WIN_SIZE 0x100
#define TE_LOG 0x1000
#define TE_LOG_ENTRIES 256
#define TE_LOG_WRITE (1ull << 40)

/* PCI COMMAND (config offset 4): memory decode, bus master. */
#define MM_CMD_MEMORY 0x2
#define MM_CMD_MASTER 0x4

struct mm_bar {
  struct vu_device d;
  volatile uint8_t* bar; /* the mapping */
  uint64_t size;
  uint64_t config; /* region offset of config space on the device fd */
};

static inline int mm_get_command(struct mm_bar* b, uint16_t* cmd) {
  return pread(b->d.device, cmd, 2, (off_t)(b->config + 4)) == 2 ? 0 : -1;
}
static inline int mm_set_command(struct mm_bar* b, uint16_t cmd) {
  return pwrite(b->d.device, &cmd, 2, (off_t)(b->config + 4)) == 2 ? 0 : -1;
}

/* Opens `bdf`, turns memory decode and bus mastering on, and maps BAR `index` whole (the mapping
 * is unmapped after the test). Returns 0, or -1 with a comment. */
static inline int mm_open_bar(struct mm_bar* b, const char* bdf, uint32_t index) {
  memset(b, 0, sizeof *b);
  if (vu_open_device(&b->d, bdf, VFIO_TYPE1v2_IOMMU) != 0) {
    printf("# %s: cannot open the device: %s\n", bdf, strerror(errno));
    return -1;
  }
  struct vfio_region_info cfg, r;
  if (vu_region(b->d.device, VFIO_PCI_CONFIG_REGION_INDEX, &cfg) != 0 || vu_region(b->d.device, index, &r) != 0) {
    printf("# %s: REGION_INFO: %s\n", bdf, strerror(errno));
    return -1;
  }
  b->config = cfg.offset;
  if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
    printf("# %s BAR%u: no VFIO_REGION_INFO_FLAG_MMAP (flags %#x)\n", bdf, index, r.flags);
    return -1;
  }
  uint16_t cmd;
  if (mm_get_command(b, &cmd) != 0 || mm_set_command(b, cmd | MM_CMD_MEMORY | MM_CMD_MASTER) != 0) {
    printf("# %s: COMMAND: %s\n", bdf, strerror(errno));
    return -1;
  }
  void* p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, b->d.device, (off_t)r.offset);
  if (p == MAP_FAILED) {
    printf("# %s BAR%u: mmap: %s\n", bdf, index, strerror(errno));
    return -1;
  }
  st_defer_munmap(p, r.size);
  b->bar = p;
  b->size = r.size;
  return 0;
}

static inline volatile uint32_t* mm_r32(struct mm_bar* b, uint64_t off) { return (volatile uint32_t*)(b->bar + off); }
static inline volatile uint64_t* mm_r64(struct mm_bar* b, uint64_t off) { return (volatile uint64_t*)(b->bar + off); }

/* ---- the test endpoint's access log ---- */

struct mm_access {
  uint32_t off;  /* BAR offset */
  unsigned size; /* 1, 2, 4, 8 */
  int write;
  uint64_t value;
};

static inline void mm_log_clear(struct mm_bar* b) { *mm_r32(b, TE_LOG_COUNT) = 0; }

/* Reads the log (up to max entries); returns the count the device holds. */
static inline int mm_log_read(struct mm_bar* b, struct mm_access* out, int max) {
  int n = (int)*mm_r32(b, TE_LOG_COUNT);
  for (int i = 0; i < n && i < max; ++i) {
    uint64_t what = *mm_r64(b, TE_LOG + 16 * (uint64_t)i);
    out[i].off = (uint32_t)what;
    out[i].size = (unsigned)((what >> 32) & 0xff);
    out[i].write = (what & TE_LOG_WRITE) != 0;
    out[i].value = *mm_r64(b, TE_LOG + 16 * (uint64_t)i + 8);
  }
  return n;
}

static inline void mm_log_print(const char* what, const struct mm_access* a, int n) {
  printf("# %s (%d entries):\n", what, n);
  for (int i = 0; i < n; ++i)
    printf("#   %2d: %-5s BAR2+%#x size %u value %#llx\n", i, a[i].write ? "write" : "read", a[i].off, a[i].size,
           (unsigned long long)a[i].value);
}

/* Whether the log holds exactly `want` (offset, size, direction, value; in order). Prints both
 * logs when not. */
static inline int mm_log_is(struct mm_bar* b, const struct mm_access* want, int nwant, const char* label) {
  struct mm_access got[TE_LOG_ENTRIES];
  int n = mm_log_read(b, got, TE_LOG_ENTRIES);
  int same = n == nwant;
  for (int i = 0; same && i < n; ++i) {
    same = got[i].off == want[i].off && got[i].size == want[i].size && got[i].write == want[i].write &&
           got[i].value == want[i].value;
  }
  if (!same) {
    printf("# %s: the device saw a different access sequence\n", label);
    mm_log_print("expected", want, nwant);
    mm_log_print("device log", got, n < TE_LOG_ENTRIES ? n : TE_LOG_ENTRIES);
  }
  return same;
}

#define MM_LOG_IS(b, label, ...)                                                      \
  do {                                                                                \
    const struct mm_access mm_want_[] = {__VA_ARGS__};                                \
    CHECK(mm_log_is((b), mm_want_, (int)(sizeof mm_want_ / sizeof mm_want_[0]), (label))); \
  } while (0)

/* Shorthands for expected entries: window offset (relative to TE_WIN), size, value. */
#define RD(o, s, v) {(uint32_t)(TE_WIN + (o)), (s), 0, (uint64_t)(v)}
#define WR(o, s, v) {(uint32_t)(TE_WIN + (o)), (s), 1, (uint64_t)(v)}

#endif
