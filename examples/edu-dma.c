/* edu-dma: drive QEMU's "edu" PCI device through VFIO, the way a userspace driver would on a real
 * machine. Plain C against <linux/vfio.h> and libc only: under `vfiobox run` it talks to vfiobox's
 * simulated edu; on a machine with an IOMMU and an edu bound to vfio-pci it talks to the real one.
 *
 *   1. find the edu (1234:11e8) and its IOMMU group through sysfs;
 *   2. open the container, the group and the device; set up type1; mmap the register BAR (BAR0)
 *      and drive the registers through that mapping, as a real driver does;
 *   3. map a buffer for DMA, route the device's MSI to an eventfd;
 *   4. DMA RAM -> device and back, wait for the MSI, check the bytes;
 *   5. unmap, and show that a DMA to the unmapped iova faults and changes nothing.
 *
 * Usage: edu-dma [--pread]. With --pread (or EDU_DMA_PREAD=1 in the environment) the registers are
 * read and written with pread/pwrite on the device fd at BAR0's region offset instead; that is
 * also the fallback when the region does not offer VFIO_REGION_INFO_FLAG_MMAP.
 *
 * Exit status 0 when every step behaved. SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define REG_ID 0x00
#define REG_IRQ_STATUS 0x24
#define REG_IRQ_ACK 0x64
#define REG_DMA_SRC 0x80
#define REG_DMA_DST 0x88
#define REG_DMA_COUNT 0x90
#define REG_DMA_CMD 0x98
#define DMA_START 0x1
#define DMA_TO_RAM 0x2
#define DMA_IRQ 0x4
#define EDU_BUFFER 0x40000
#define IRQ_DMA 0x100
#define IOVA 0x100000ull

static int failures;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "edu-dma: FAILED: " __VA_ARGS__);    \
      fprintf(stderr, " (%s)\n", strerror(errno));         \
      failures++;                                          \
      return -1;                                           \
    }                                                      \
  } while (0)

static unsigned long read_hex(const char* path) {
  FILE* f = fopen(path, "r");
  unsigned long v = 0;
  if (!f) return 0;
  if (fscanf(f, "%lx", &v) != 1) v = 0;
  fclose(f);
  return v;
}

/* Finds the edu's BDF and IOMMU group number through /sys. */
static int find_edu(char* bdf, size_t bdf_len, int* group) {
  DIR* d = opendir("/sys/bus/pci/devices");
  struct dirent* e;
  char path[512], link[512];
  if (!d) return -1;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/vendor", e->d_name);
    if (read_hex(path) != EDU_VENDOR) continue;
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/device", e->d_name);
    if (read_hex(path) != EDU_DEVICE) continue;
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", e->d_name);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) continue;
    link[n] = 0;
    *group = atoi(basename(link));
    snprintf(bdf, bdf_len, "%.*s", (int)bdf_len - 1, e->d_name);
    closedir(d);
    return 0;
  }
  closedir(d);
  return -1;
}

struct edu {
  int device;
  uint64_t bar0; /* region offset of BAR0 on the device fd */
  uint64_t config;
  volatile uint8_t* regs; /* BAR0 mapped, or NULL: pread/pwrite at bar0 */
  uint64_t regs_size;
};

/* One register access of `size` bytes (4 or 8): a load or store through the mapping (one device
 * access of that width), or pread/pwrite of the region. */
static int reg_write(struct edu* edu, uint32_t off, uint64_t v, int size) {
  if (edu->regs) {
    if (size == 8)
      *(volatile uint64_t*)(edu->regs + off) = v;
    else
      *(volatile uint32_t*)(edu->regs + off) = (uint32_t)v;
    return 0;
  }
  return pwrite(edu->device, &v, size, edu->bar0 + off) == size ? 0 : -1;
}
static uint64_t reg_read(struct edu* edu, uint32_t off, int size) {
  if (edu->regs)
    return size == 8 ? *(volatile uint64_t*)(edu->regs + off) : *(volatile uint32_t*)(edu->regs + off);
  uint64_t v = 0;
  if (pread(edu->device, &v, size, edu->bar0 + off) != size) return ~0ull;
  return v;
}

static int wait_irq(int efd, int timeout_ms) {
  struct pollfd p = {.fd = efd, .events = POLLIN};
  uint64_t count;
  if (poll(&p, 1, timeout_ms) != 1) return -1;
  return read(efd, &count, sizeof count) == sizeof count ? 0 : -1;
}

/* Runs one DMA; returns the command register after completion (the MSI), or ~0 on timeout. */
static uint64_t run_dma(struct edu* edu, int efd, uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd) {
  reg_write(edu, REG_DMA_SRC, src, 8);
  reg_write(edu, REG_DMA_DST, dst, 8);
  reg_write(edu, REG_DMA_COUNT, count, 8);
  reg_write(edu, REG_DMA_CMD, cmd | DMA_START | DMA_IRQ, 8);
  if (wait_irq(efd, 5000)) return ~0ull;
  uint64_t status = reg_read(edu, REG_IRQ_STATUS, 4);
  reg_write(edu, REG_IRQ_ACK, status, 4);
  return reg_read(edu, REG_DMA_CMD, 8);
}

static int run(int use_pread) {
  char bdf[64];
  int group_id;
  CHECK(find_edu(bdf, sizeof bdf, &group_id) == 0, "no edu device (1234:11e8) in /sys/bus/pci/devices");
  printf("edu-dma: found edu at %s in IOMMU group %d\n", bdf, group_id);

  int container = open("/dev/vfio/vfio", O_RDWR);
  CHECK(container >= 0, "open /dev/vfio/vfio");
  CHECK(ioctl(container, VFIO_GET_API_VERSION) == VFIO_API_VERSION, "VFIO_GET_API_VERSION");
  CHECK(ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1, "no TYPE1v2 support");

  char path[64];
  snprintf(path, sizeof path, "/dev/vfio/%d", group_id);
  int group = open(path, O_RDWR);
  CHECK(group >= 0, "open %s", path);
  struct vfio_group_status status = {.argsz = sizeof status};
  CHECK(ioctl(group, VFIO_GROUP_GET_STATUS, &status) == 0, "VFIO_GROUP_GET_STATUS");
  CHECK(status.flags & VFIO_GROUP_FLAGS_VIABLE, "group %d is not viable", group_id);
  CHECK(ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) == 0, "VFIO_GROUP_SET_CONTAINER");
  CHECK(ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0, "VFIO_SET_IOMMU");

  struct vfio_iommu_type1_info info = {.argsz = sizeof info};
  CHECK(ioctl(container, VFIO_IOMMU_GET_INFO, &info) == 0, "VFIO_IOMMU_GET_INFO");
  printf("edu-dma: IOMMU page sizes %#llx\n", (unsigned long long)info.iova_pgsizes);

  struct edu edu;
  edu.device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
  CHECK(edu.device >= 0, "VFIO_GROUP_GET_DEVICE_FD %s", bdf);
  struct vfio_device_info dinfo = {.argsz = sizeof dinfo};
  CHECK(ioctl(edu.device, VFIO_DEVICE_GET_INFO, &dinfo) == 0, "VFIO_DEVICE_GET_INFO");
  CHECK(dinfo.flags & VFIO_DEVICE_FLAGS_PCI, "not a PCI device");
  struct vfio_region_info bar0 = {.argsz = sizeof bar0, .index = VFIO_PCI_BAR0_REGION_INDEX};
  CHECK(ioctl(edu.device, VFIO_DEVICE_GET_REGION_INFO, &bar0) == 0, "REGION_INFO BAR0");
  struct vfio_region_info cfg = {.argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX};
  CHECK(ioctl(edu.device, VFIO_DEVICE_GET_REGION_INFO, &cfg) == 0, "REGION_INFO CONFIG");
  edu.bar0 = bar0.offset;
  edu.config = cfg.offset;
  printf("edu-dma: BAR0 %llu KiB at region offset %#llx\n", (unsigned long long)bar0.size / 1024,
         (unsigned long long)bar0.offset);
  edu.regs = NULL;
  edu.regs_size = bar0.size;
  if (!use_pread && !(bar0.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
    printf("edu-dma: BAR0 is not mappable (no VFIO_REGION_INFO_FLAG_MMAP); using pread/pwrite\n");
    use_pread = 1;
  }
  if (!use_pread) {
    void* regs = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, edu.device, (off_t)bar0.offset);
    CHECK(regs != MAP_FAILED, "mmap BAR0");
    edu.regs = regs;
    printf("edu-dma: registers through an mmap of BAR0\n");
  } else {
    printf("edu-dma: registers through pread/pwrite on the device fd\n");
  }

  /* Memory decode and bus mastering (a DMA engine and MSI both need the latter). */
  uint16_t cmd;
  CHECK(pread(edu.device, &cmd, 2, edu.config + 4) == 2, "read COMMAND");
  cmd |= 0x6;
  CHECK(pwrite(edu.device, &cmd, 2, edu.config + 4) == 2, "write COMMAND");
  uint32_t id = (uint32_t)reg_read(&edu, REG_ID, 4);
  CHECK((id & 0xff) == 0xed, "edu id register reads %#x", id);
  printf("edu-dma: edu id %#x\n", id);

  /* MSI → eventfd. */
  int efd = eventfd(0, EFD_CLOEXEC);
  CHECK(efd >= 0, "eventfd");
  char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
  struct vfio_irq_set* irq = (struct vfio_irq_set*)irqbuf;
  irq->argsz = sizeof irqbuf;
  irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  irq->index = VFIO_PCI_MSI_IRQ_INDEX;
  irq->start = 0;
  irq->count = 1;
  memcpy(irq->data, &efd, sizeof efd);
  CHECK(ioctl(edu.device, VFIO_DEVICE_SET_IRQS, irq) == 0, "VFIO_DEVICE_SET_IRQS MSI");

  /* A buffer for the device: two pages, mapped at IOVA. */
  uint8_t* buf = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(buf != MAP_FAILED, "mmap");
  struct vfio_iommu_type1_dma_map map = {.argsz = sizeof map,
                                         .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                                         .vaddr = (uintptr_t)buf,
                                         .iova = IOVA,
                                         .size = 2 * 4096};
  CHECK(ioctl(container, VFIO_IOMMU_MAP_DMA, &map) == 0, "VFIO_IOMMU_MAP_DMA");

  const char msg[] = "vfiobox: bytes that went through the IOMMU twice";
  memcpy(buf, msg, sizeof msg);
  uint64_t r = run_dma(&edu, efd, IOVA, EDU_BUFFER, sizeof msg, 0);
  CHECK(r != ~0ull, "no MSI after RAM -> device DMA");
  r = run_dma(&edu, efd, EDU_BUFFER, IOVA + 4096, sizeof msg, DMA_TO_RAM);
  CHECK(r != ~0ull, "no MSI after device -> RAM DMA");
  CHECK(memcmp(buf + 4096, msg, sizeof msg) == 0, "bytes differ after the round trip");
  printf("edu-dma: DMA RAM -> edu -> RAM through iova %#llx: %zu bytes verified, 2 MSIs received\n",
         IOVA, sizeof msg);

  struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof unmap, .iova = IOVA, .size = 2 * 4096};
  CHECK(ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) == 0, "VFIO_IOMMU_UNMAP_DMA");
  CHECK(unmap.size == 2 * 4096, "unmapped %llu bytes", (unsigned long long)unmap.size);
  memset(buf + 4096, 0, 4096);
  r = run_dma(&edu, efd, EDU_BUFFER, IOVA + 4096, sizeof msg, DMA_TO_RAM);
  CHECK(buf[4096] == 0, "a DMA after unmap reached the old page");
  printf("edu-dma: DMA after unmap was stopped by the IOMMU; the old page is untouched\n");

  close(efd);
  if (edu.regs) munmap((void*)edu.regs, edu.regs_size);
  close(edu.device);
  close(group);
  close(container);
  munmap(buf, 2 * 4096);
  return 0;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char* env = getenv("EDU_DMA_PREAD");
  int use_pread = env && *env && strcmp(env, "0") != 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--pread") == 0) {
      use_pread = 1;
    } else {
      fprintf(stderr, "usage: %s [--pread]\n", argv[0]);
      return 2;
    }
  }
  if (run(use_pread) != 0 || failures) return 1;
  printf("edu-dma: all steps passed\n");
  return 0;
}
