/* vfio_ioat_driver_test: the I/OAT (CBDMA, 8086:2021) driven the way the kernel's VFIO selftest
 * ioat driver drives it (clients.md §2.4–2.5; our own code): every register access is a plain load
 * or store on the mmapped BAR0 (trapped and emulated by vfiobox, design 0008), descriptors and the
 * completion write-back live in DMA-mapped memory at iova == vaddr, the MSI-X vector is an eventfd.
 * What the model does is in src/devices/ioat.h; the cases:
 *   init_remove_ten_times          open, reset, map, enable, one copy, disable, close; ten times
 *   memcpy_polled_without_interrupt a 3-descriptor chain, completion polled, no MSI
 *   memcpy_from_unmapped_iova      READ_DATA_ERR, HALTED, nothing written, no MSI, then recovery
 *   memcpy_to_unmapped_iova        WRITE_DATA_ERR, likewise
 *   error_writeback_and_interrupt_when_enabled  CHANCTRL.ERR_COMPLETION_EN | ERR_INT_EN
 *   send_msi                       null descriptors with int_en: one eventfd count each
 *   memcpy_storm_wraps_the_ring    70,000 copies through a 1,024-entry ring (DMACOUNT wraps)
 * SPDX-License-Identifier: Apache-2.0 */
#include <sys/eventfd.h>
#include <time.h>

#include "vfio_util.h"

/* BAR0 registers (ioat.md; the model's header). */
enum {
  REG_CHANCNT = 0x00,
  REG_XFERCAP = 0x01,
  REG_INTRCTRL = 0x03,
  REG_CBVER = 0x08,
  REG_CHANCTRL = 0x80,
  REG_CHANCMD = 0x84,
  REG_DMACOUNT = 0x86,
  REG_CHANSTS = 0x88,
  REG_CHAINADDR = 0x90,
  REG_CHANCMP = 0x98,
  REG_CHANERR = 0xa8,
};
#define CFG_CHANERR_INT 0x180
#define INTRCTRL_MSIX_VECTOR_CONTROL 0x08
#define CHANCTRL_ERR_COMPLETION_EN 0x0004
#define CHANCTRL_ERR_INT_EN 0x0010
#define CMD_SUSPEND 0x04
#define CMD_RESET 0x20
#define STS_ACTIVE 0
#define STS_DONE 1
#define STS_SUSPENDED 2
#define STS_HALTED 3
#define STS_ARMED 4
#define STS_STATE(v) ((v) & 7ull)
#define STS_ADDR(v) ((v) & ~0x3full)
#define ERR_READ_DATA 0x0100
#define ERR_WRITE_DATA 0x0200
#define CTL_INT_EN (1u << 0)
#define CTL_COMPL_WRITE (1u << 3)
#define CTL_NULL (1u << 5)

#define UNMAPPED_IOVA (8ull << 30) /* as the kernel's test: nothing is ever mapped there */
#define MEM_SIZE (32ull << 20)     /* the memcpy region */
#define DRV_SIZE (2ull << 20)      /* descriptors (ring at 0) and the completion word (last page) */
#define RING_N 1024u

struct ioat_desc {
  uint32_t size;
  uint32_t ctl;
  uint64_t src, dst, next;
  uint64_t rsv[4];
};
_Static_assert(sizeof(struct ioat_desc) == 64, "descriptor size");

struct ioat {
  struct vu_device d;
  volatile uint8_t* bar;
  size_t bar_size;
  int efd;
  uint8_t* mem;
  uint8_t* drv;
  struct ioat_desc* ring;
  volatile uint64_t* completion;
};

static uint8_t rd8(struct ioat* t, uint32_t r) { return *(volatile uint8_t*)(t->bar + r); }
static uint16_t rd16(struct ioat* t, uint32_t r) { return *(volatile uint16_t*)(t->bar + r); }
static uint32_t rd32(struct ioat* t, uint32_t r) { return *(volatile uint32_t*)(t->bar + r); }
static uint64_t rd64(struct ioat* t, uint32_t r) { return *(volatile uint64_t*)(t->bar + r); }
static void wr8(struct ioat* t, uint32_t r, uint8_t v) { *(volatile uint8_t*)(t->bar + r) = v; }
static void wr16(struct ioat* t, uint32_t r, uint16_t v) { *(volatile uint16_t*)(t->bar + r) = v; }
static void wr32(struct ioat* t, uint32_t r, uint32_t v) { *(volatile uint32_t*)(t->bar + r) = v; }
static void wr64(struct ioat* t, uint32_t r, uint64_t v) { *(volatile uint64_t*)(t->bar + r) = v; }

static uint64_t iova_of(const void* p) { return (uint64_t)(uintptr_t)p; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t cfg_read32(struct ioat* t, uint32_t off) {
  uint32_t v = ~0u;
  if (pread(t->d.device, &v, 4, ((uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40) + off) != 4) return ~0u;
  return v;
}
static int cfg_write32(struct ioat* t, uint32_t off, uint32_t v) {
  return pwrite(t->d.device, &v, 4, ((uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40) + off) == 4 ? 0 : -1;
}

/* CHANSTS until its state is one of `mask` (bit per state); the last value read. */
static uint64_t wait_chansts(struct ioat* t, unsigned mask, double timeout_s) {
  const double end = now_s() + timeout_s;
  uint64_t sts;
  do {
    sts = rd64(t, REG_CHANSTS);
    if (mask & (1u << STS_STATE(sts))) break;
  } while (now_s() < end);
  return sts;
}

/* What the kernel's drivers do to reset a channel: suspend it if running, clear CHANERR (W1C),
 * RESET and wait for CHANCMD to read it back cleared. Returns CHANSTS afterwards, ~0 on timeout. */
static uint64_t ioat_reset(struct ioat* t) {
  const uint64_t sts = rd64(t, REG_CHANSTS);
  if (STS_STATE(sts) == STS_ACTIVE || STS_STATE(sts) == STS_DONE) {
    wr8(t, REG_CHANCMD, CMD_SUSPEND);
    wait_chansts(t, ~((1u << STS_ACTIVE) | (1u << STS_DONE)), 0.1);
  }
  wr32(t, REG_CHANERR, rd32(t, REG_CHANERR));
  wr8(t, REG_CHANCMD, CMD_RESET);
  const double end = now_s() + 0.2;
  while (rd8(t, REG_CHANCMD) & CMD_RESET)
    if (now_s() > end) return ~0ull;
  return rd64(t, REG_CHANSTS);
}

/* The channel programmed after a reset: MSI-X vector control, CHANCMP, CHANCTRL. */
static void ioat_program(struct ioat* t, uint16_t chanctrl) {
  wr8(t, REG_INTRCTRL, INTRCTRL_MSIX_VECTOR_CONTROL);
  wr64(t, REG_CHANCMP, iova_of((const void*)t->completion));
  wr16(t, REG_CHANCTRL, chanctrl);
}

static int set_msix(struct ioat* t, int efd) {
  char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
  struct vfio_irq_set* set = (struct vfio_irq_set*)buf;
  *set = (struct vfio_irq_set){.argsz = sizeof buf, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                               .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1};
  memcpy(set->data, &efd, sizeof efd);
  if (efd < 0) { /* disable */
    set->argsz = sizeof *set;
    set->flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    set->count = 0;
  }
  return ioctl(t->d.device, VFIO_DEVICE_SET_IRQS, set);
}

/* Open, reset, map BAR0 and the rings, enable bus mastering and MSI-X, reset the channel and
 * program it. 0, or -1 after printing why. Everything is released by the harness's deferred
 * cleanup unless ioat_close runs first. */
static int ioat_open(struct ioat* t) {
  memset(t, 0, sizeof *t);
  t->efd = -1;
#define FAIL_IF(c)                                          \
  do {                                                      \
    if (c) {                                                \
      printf("# ioat_open: %s (errno %d)\n", #c, errno);    \
      return -1;                                            \
    }                                                       \
  } while (0)
  FAIL_IF(vu_open_device(&t->d, vu_bdf, vu_iommu_type) != 0);
  FAIL_IF(ioctl(t->d.device, VFIO_DEVICE_RESET) != 0);
  struct vfio_region_info r;
  FAIL_IF(vu_region(t->d.device, VFIO_PCI_BAR0_REGION_INDEX, &r) != 0);
  FAIL_IF(!(r.flags & VFIO_REGION_INFO_FLAG_MMAP) || r.size != 16384);
  void* bar = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, t->d.device, r.offset);
  FAIL_IF(bar == MAP_FAILED);
  st_defer_munmap(bar, r.size);
  t->bar = bar;
  t->bar_size = r.size;
  t->mem = vu_mmap_anon(MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  t->drv = vu_mmap_anon(DRV_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  FAIL_IF(t->mem == MAP_FAILED || t->drv == MAP_FAILED);
  FAIL_IF(iova_of(t->mem) < UNMAPPED_IOVA + VU_PAGE && iova_of(t->mem) + MEM_SIZE > UNMAPPED_IOVA);
  FAIL_IF(vu_map(t->d.container, t->mem, iova_of(t->mem), MEM_SIZE, VU_RW) != 0);
  FAIL_IF(vu_map(t->d.container, t->drv, iova_of(t->drv), DRV_SIZE, VU_RW) != 0);
  t->ring = (struct ioat_desc*)t->drv;
  t->completion = (volatile uint64_t*)(t->drv + DRV_SIZE - VU_PAGE);
  uint16_t cmd = 0;
  const uint64_t cfg = (uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40;
  FAIL_IF(pread(t->d.device, &cmd, 2, cfg + 4) != 2);
  cmd |= 0x6; /* memory space, bus master */
  FAIL_IF(pwrite(t->d.device, &cmd, 2, cfg + 4) != 2);
  t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  FAIL_IF(t->efd < 0);
  st_defer_close(t->efd);
  FAIL_IF(set_msix(t, t->efd) != 0);
  FAIL_IF(STS_STATE(ioat_reset(t)) != STS_HALTED);
  ioat_program(t, 0);
#undef FAIL_IF
  return 0;
}

/* Remove: interrupts off, channel reset, MSI-X off, DMA unmapped, every fd closed (each close
 * must return 0). The harness's deferred lists are rolled back to `fds`/`maps`. */
static int ioat_close(struct ioat* t, int fds, int maps) {
  int bad = 0;
  wr8(t, REG_INTRCTRL, 0);
  bad |= STS_STATE(ioat_reset(t)) != STS_HALTED;
  bad |= set_msix(t, -1) != 0;
  uint64_t unmapped = 0;
  bad |= vu_unmap(t->d.container, iova_of(t->mem), MEM_SIZE, 0, &unmapped) != 0 || unmapped != MEM_SIZE;
  bad |= vu_unmap(t->d.container, iova_of(t->drv), DRV_SIZE, 0, &unmapped) != 0 || unmapped != DRV_SIZE;
  for (int j = st_ndeferred_maps - 1; j >= maps; --j) munmap(st_deferred_maps[j].p, st_deferred_maps[j].len);
  for (int j = st_ndeferred_fds - 1; j >= fds; --j) bad |= close(st_deferred_fds[j]) != 0;
  st_ndeferred_fds = fds;
  st_ndeferred_maps = maps;
  return bad ? -1 : 0;
}

static void desc_set(struct ioat_desc* d, uint32_t ctl, uint64_t src, uint64_t dst, uint32_t size,
                     const struct ioat_desc* next) {
  *d = (struct ioat_desc){.size = size, .ctl = ctl, .src = src, .dst = dst, .next = iova_of(next)};
}

/* Starts the chain at `first` with `count` descriptors: CHAINADDR, then the DMACOUNT doorbell. */
static void ioat_start(struct ioat* t, const struct ioat_desc* first, uint16_t count) {
  wr64(t, REG_CHAINADDR, iova_of(first));
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  wr16(t, REG_DMACOUNT, count);
}

/* Polls the completion write-back until it names `last` (done) or says HALTED. */
static uint64_t wait_completion(struct ioat* t, const struct ioat_desc* last, double timeout_s) {
  const double end = now_s() + timeout_s;
  uint64_t c;
  do {
    c = *t->completion;
    if (STS_STATE(c) == STS_HALTED || (STS_ADDR(c) == iova_of(last) && STS_STATE(c) == STS_DONE)) break;
  } while (now_s() < end);
  return c;
}

static void fill_pattern(uint8_t* p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    p[i] = (uint8_t)(x >> 16);
  }
}

static int all_bytes(const uint8_t* p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != v) return 0;
  return 1;
}

/* No MSI within `ms`: the eventfd stays unreadable. */
static int no_msi(struct ioat* t, int ms) { return vu_wait_eventfd(t->efd, ms) == 0; }

/* One copy of `n` bytes (at most 4 KiB) mem → mem + 1 MiB with int_en clear, polled; asserts the
 * bytes. Used after set-up and after error recovery. */
static int small_copy_ok(struct ioat* t, size_t n) {
  uint8_t* src = t->mem;
  uint8_t* dst = t->mem + (1 << 20);
  fill_pattern(src, n, (uint32_t)n);
  memset(dst, 0, n);
  *t->completion = 0;
  desc_set(&t->ring[0], CTL_COMPL_WRITE, iova_of(src), iova_of(dst), (uint32_t)n, &t->ring[1]);
  ioat_start(t, &t->ring[0], 1);
  const uint64_t c = wait_completion(t, &t->ring[0], 5);
  return c == (iova_of(&t->ring[0]) | STS_DONE) && memcmp(src, dst, n) == 0;
}

TEST(init_remove_ten_times) {
  for (int i = 0; i < 10; ++i) {
    const int fds = st_ndeferred_fds, maps = st_ndeferred_maps;
    struct ioat t;
    CHECK(ioat_open(&t) == 0);
    EXPECT_EQ(rd8(&t, REG_CBVER), 0x33);
    EXPECT_EQ(rd8(&t, REG_CHANCNT) & 0x1f, 1);
    EXPECT_EQ(rd8(&t, REG_XFERCAP) & 0x1f, 16);
    EXPECT_EQ(rd64(&t, REG_CHANSTS), STS_HALTED); /* reset: HALTED, no completed descriptor */
    EXPECT_EQ(rd32(&t, REG_CHANERR), 0);
    EXPECT_EQ(rd8(&t, REG_CHANCMD), 0);
    EXPECT_EQ(rd8(&t, REG_INTRCTRL) & INTRCTRL_MSIX_VECTOR_CONTROL, INTRCTRL_MSIX_VECTOR_CONTROL);
    EXPECT_EQ(rd64(&t, REG_CHANCMP), iova_of((const void*)t.completion));
    CHECK(small_copy_ok(&t, 64 + i));
    EXPECT_EQ(rd64(&t, REG_CHANSTS), iova_of(&t.ring[0]) | STS_DONE);
    CHECK(no_msi(&t, 0));
    CHECK(ioat_close(&t, fds, maps) == 0);
  }
}

/* Three descriptors (the largest one, an odd one at odd addresses, a single byte), compl_write on
 * the last only, as Linux's prep does; the completion word is polled and no MSI may fire. */
TEST(memcpy_polled_without_interrupt) {
  struct ioat t;
  CHECK(ioat_open(&t) == 0);
  const uint32_t big = 1u << (rd8(&t, REG_XFERCAP) & 0x1f);
  uint8_t* src = t.mem;
  uint8_t* dst = t.mem + (8 << 20);
  const size_t span = 256 << 10;
  fill_pattern(src, span, 1);
  memset(dst, 0xee, span);
  /* (src offset, dst offset, size) */
  const uint64_t parts[3][3] = {{0, 0, big}, {big + 3, big + 4096 + 1, 12345}, {200001, 210003, 1}};
  for (int i = 0; i < 3; ++i)
    desc_set(&t.ring[i], i == 2 ? CTL_COMPL_WRITE : 0, iova_of(src + parts[i][0]), iova_of(dst + parts[i][1]),
             (uint32_t)parts[i][2], &t.ring[i + 1]);
  *t.completion = 0;
  ioat_start(&t, &t.ring[0], 3);
  const uint64_t c = wait_completion(&t, &t.ring[2], 5);
  EXPECT_EQ(c, iova_of(&t.ring[2]) | STS_DONE);
  EXPECT_EQ(rd64(&t, REG_CHANSTS), iova_of(&t.ring[2]) | STS_DONE);
  EXPECT_EQ(rd32(&t, REG_CHANERR), 0);
  EXPECT_EQ(rd16(&t, REG_DMACOUNT), 3);
  /* Exactly the bytes of each descriptor, nothing around them. */
  size_t at = 0;
  for (int i = 0; i < 3; ++i) {
    CHECK(all_bytes(dst + at, parts[i][1] - at, 0xee));
    CHECK(memcmp(dst + parts[i][1], src + parts[i][0], parts[i][2]) == 0);
    at = parts[i][1] + parts[i][2];
  }
  CHECK(all_bytes(dst + at, span - at, 0xee));
  CHECK(no_msi(&t, 50));
}

/* A copy with one side at the unmapped IOVA, int_en and compl_write set: the channel halts with
 * `err` in CHANERR (and config CHANERR_INT), CHANSTS names no completed descriptor, the
 * completion word is not written (ERR_COMPLETION_EN is off), nothing lands in memory, no MSI.
 * Then the driver's recovery: CHANERR cleared, reset, reprogrammed, a copy works again. */
static void unmapped_copy(int to_unmapped, uint32_t err) {
  struct ioat t;
  CHECK(ioat_open(&t) == 0);
  uint8_t* buf = t.mem;
  fill_pattern(buf, 4096, 7);
  uint8_t* other = t.mem + 4096;
  memset(other, 0xee, 4096);
  const uint64_t src = to_unmapped ? iova_of(buf) : UNMAPPED_IOVA;
  const uint64_t dst = to_unmapped ? UNMAPPED_IOVA : iova_of(other);
  *t.completion = 0x5a5a5a5a5a5a5a40ull;
  desc_set(&t.ring[0], CTL_INT_EN | CTL_COMPL_WRITE, src, dst, 4096, &t.ring[1]);
  ioat_start(&t, &t.ring[0], 1);
  const uint64_t sts = wait_chansts(&t, 1u << STS_HALTED, 5);
  EXPECT_EQ(sts, STS_HALTED);
  EXPECT_EQ(rd32(&t, REG_CHANERR), err);
  EXPECT_EQ(cfg_read32(&t, CFG_CHANERR_INT) & err, err);
  CHECK(no_msi(&t, 100));
  EXPECT_EQ(*t.completion, 0x5a5a5a5a5a5a5a40ull);
  CHECK(all_bytes(other, 4096, 0xee));
  /* More doorbells while halted do nothing. */
  wr16(&t, REG_DMACOUNT, 2);
  EXPECT_EQ(STS_STATE(rd64(&t, REG_CHANSTS)), STS_HALTED);
  /* Recovery. CHANERR is W1C; a reset keeps it, so it is cleared first (as the drivers do). */
  wr32(&t, REG_CHANERR, err);
  EXPECT_EQ(rd32(&t, REG_CHANERR), 0);
  CHECK(cfg_write32(&t, CFG_CHANERR_INT, err) == 0);
  EXPECT_EQ(cfg_read32(&t, CFG_CHANERR_INT) & err, 0);
  EXPECT_EQ(ioat_reset(&t), STS_HALTED);
  ioat_program(&t, 0);
  CHECK(small_copy_ok(&t, 4096));
  CHECK(no_msi(&t, 0));
}

TEST(memcpy_from_unmapped_iova) { unmapped_copy(0, ERR_READ_DATA); }
TEST(memcpy_to_unmapped_iova) { unmapped_copy(1, ERR_WRITE_DATA); }

/* Linux's CHANCTRL bits: with ERR_COMPLETION_EN the halt is written back (no descriptor completed:
 * address 0), with ERR_INT_EN the error raises the channel's vector once. */
TEST(error_writeback_and_interrupt_when_enabled) {
  struct ioat t;
  CHECK(ioat_open(&t) == 0);
  ioat_program(&t, CHANCTRL_ERR_COMPLETION_EN | CHANCTRL_ERR_INT_EN);
  EXPECT_EQ(rd16(&t, REG_CHANCTRL), CHANCTRL_ERR_COMPLETION_EN | CHANCTRL_ERR_INT_EN);
  /* A good copy first, then one from the unmapped IOVA behind it in the same chain. */
  fill_pattern(t.mem, 512, 3);
  memset(t.mem + 4096, 0, 512);
  desc_set(&t.ring[0], CTL_COMPL_WRITE, iova_of(t.mem), iova_of(t.mem + 4096), 512, &t.ring[1]);
  desc_set(&t.ring[1], CTL_COMPL_WRITE, UNMAPPED_IOVA, iova_of(t.mem + 8192), 512, &t.ring[2]);
  *t.completion = 0;
  ioat_start(&t, &t.ring[0], 2);
  const uint64_t c = wait_completion(&t, &t.ring[1], 5);
  EXPECT_EQ(c, iova_of(&t.ring[0]) | STS_HALTED); /* the last completed descriptor is ring[0] */
  EXPECT_EQ(rd64(&t, REG_CHANSTS), iova_of(&t.ring[0]) | STS_HALTED);
  EXPECT_EQ(rd32(&t, REG_CHANERR), ERR_READ_DATA);
  CHECK(memcmp(t.mem, t.mem + 4096, 512) == 0);
  EXPECT_EQ(vu_wait_eventfd(t.efd, 1000), 1);
  CHECK(no_msi(&t, 50));
  wr32(&t, REG_CHANERR, ERR_READ_DATA);
  CHECK(cfg_write32(&t, CFG_CHANERR_INT, ERR_READ_DATA) == 0);
}

/* Null descriptors with int_en, appended to a running ring (one doorbell each): the eventfd
 * reads exactly 1 each time, after the completion write-back names the descriptor. */
TEST(send_msi) {
  struct ioat t;
  CHECK(ioat_open(&t) == 0);
  for (uint32_t i = 0; i < RING_N; ++i)
    desc_set(&t.ring[i], CTL_NULL | CTL_INT_EN | CTL_COMPL_WRITE, 0, 0, 1, &t.ring[(i + 1) % RING_N]);
  wr64(&t, REG_CHAINADDR, iova_of(&t.ring[0]));
  EXPECT_EQ(rd64(&t, REG_CHANSTS), STS_ARMED);
  for (uint16_t i = 0; i < 8; ++i) {
    wr16(&t, REG_DMACOUNT, (uint16_t)(i + 1));
    EXPECT_EQ(vu_wait_eventfd(t.efd, 1000), 1);
    EXPECT_EQ(*t.completion, iova_of(&t.ring[i]) | STS_DONE);
    EXPECT_EQ(rd64(&t, REG_CHANSTS), iova_of(&t.ring[i]) | STS_DONE);
  }
  CHECK(no_msi(&t, 50));
  EXPECT_EQ(rd32(&t, REG_CHANERR), 0);
}

/* 70,000 copies (64..256 bytes, scattered sources, one 256-byte slot each) through a circular ring
 * of 1,024 descriptors, the producer keeping it nearly full and the consumer reading progress from
 * the completion write-back (every descriptor asks for one, as DPDK's do); DMACOUNT wraps past
 * 65,535. Only the last descriptor has int_en: exactly one MSI. Every copy is checked. */
TEST(memcpy_storm_wraps_the_ring) {
  enum { kTotal = 70000, kSlot = 256 };
  struct ioat t;
  CHECK(ioat_open(&t) == 0);
  uint8_t* src = t.mem;
  const size_t src_size = 8 << 20;
  uint8_t* dst = t.mem + src_size;
  CHECK(src_size + (size_t)kTotal * kSlot <= MEM_SIZE);
  fill_pattern(src, src_size, 11);
  memset(dst, 0xee, (size_t)kTotal * kSlot);
#define STORM_SIZE(i) (64u + ((uint32_t)(i) * 37u) % 193u)
#define STORM_SRC(i) (((uint64_t)(i) * 4099u) % (src_size - kSlot))
  *t.completion = 0;
  wr64(&t, REG_CHAINADDR, iova_of(&t.ring[0]));
  uint32_t produced = 0, completed = 0;
  const double t0 = now_s();
  while (completed < kTotal) {
    const uint32_t before = produced;
    while (produced < kTotal && produced - completed < RING_N - 1) {
      const uint32_t i = produced++;
      desc_set(&t.ring[i % RING_N], CTL_COMPL_WRITE | (i == kTotal - 1 ? CTL_INT_EN : 0),
               iova_of(src + STORM_SRC(i)), iova_of(dst + (size_t)i * kSlot), STORM_SIZE(i),
               &t.ring[(i + 1) % RING_N]);
    }
    if (produced != before) {
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      wr16(&t, REG_DMACOUNT, (uint16_t)produced);
    }
    const uint64_t c = *t.completion;
    if (STS_STATE(c) == STS_HALTED) {
      printf("# halted after %u copies: CHANERR %#x\n", completed, rd32(&t, REG_CHANERR));
      CHECK(0);
    }
    if (STS_ADDR(c) != 0) {
      const uint32_t idx = (uint32_t)((STS_ADDR(c) - iova_of(t.ring)) / sizeof(struct ioat_desc));
      CHECK(idx < RING_N);
      completed += (idx + 1 + RING_N - completed % RING_N) % RING_N;
    }
    if (now_s() - t0 > 60) {
      printf("# timeout: %u of %u copies completed\n", completed, kTotal);
      CHECK(0);
    }
  }
  printf("# %d copies in %.3f s\n", kTotal, now_s() - t0);
  EXPECT_EQ(completed, kTotal);
  const struct ioat_desc* last = &t.ring[(kTotal - 1) % RING_N];
  EXPECT_EQ(*t.completion, iova_of(last) | STS_DONE);
  EXPECT_EQ(rd64(&t, REG_CHANSTS), iova_of(last) | STS_DONE);
  EXPECT_EQ(rd16(&t, REG_DMACOUNT), (uint16_t)kTotal);
  EXPECT_EQ(rd32(&t, REG_CHANERR), 0);
  EXPECT_EQ(vu_wait_eventfd(t.efd, 1000), 1);
  CHECK(no_msi(&t, 50));
  for (uint32_t i = 0; i < kTotal; ++i) {
    const uint8_t* d = dst + (size_t)i * kSlot;
    if (memcmp(d, src + STORM_SRC(i), STORM_SIZE(i)) != 0 || !all_bytes(d + STORM_SIZE(i), kSlot - STORM_SIZE(i), 0xee)) {
      printf("# copy %u wrong\n", i);
      CHECK(0);
    }
  }
#undef STORM_SIZE
#undef STORM_SRC
}

int main(int argc, char** argv) { return vu_main(argc, argv, "0000:09:00.0", 1); }
