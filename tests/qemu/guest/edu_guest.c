// edu_guest: runs as root inside a small Linux guest whose edu device is a vfiobox edu assigned
// with QEMU's vfio-pci. Drives the edu's DMA engine from userspace the way a guest without an
// IOMMU can: BAR0 through sysfs resource0, bus mastering through the sysfs config file, buffers
// found by their guest-physical address in /proc/self/pagemap, and the completion interrupt
// (INTx) through uio_pci_generic, which masks the line with COMMAND.INTX_DISABLE on each interrupt
// (we unmask it again through config space). Prints one line per step and "EDU-GUEST: PASS" or
// "EDU-GUEST: FAIL ..." on stdout. Built static; only libc.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
  kRegId = 0x00, kRegLiveness = 0x04, kRegIrqStatus = 0x24, kRegIrqAck = 0x64,
  kRegDmaSrc = 0x80, kRegDmaDst = 0x88, kRegDmaCount = 0x90, kRegDmaCmd = 0x98,
};
enum { kCmdStart = 1, kCmdToRam = 2, kCmdIrq = 4 };
enum { kIrqDma = 0x100 };
static const uint64_t kDevBuffer = 0x40000;
static const size_t kLen = 3000;  // 1..4095: what QEMU's own edu also accepts

static char g_bdf[300];
static int g_config_fd = -1;
static volatile uint32_t* g_bar0;

#define FAIL(...)                        \
  do {                                   \
    printf("EDU-GUEST: FAIL ");          \
    printf(__VA_ARGS__);                 \
    printf(" (errno %d)\n", errno);      \
    fflush(stdout);                      \
    exit(1);                             \
  } while (0)

static unsigned long ReadHexFile(const char* dir, const char* name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "r");
  unsigned long v = 0;
  if (!f) return ~0ul;
  if (fscanf(f, "%lx", &v) != 1) v = ~0ul;
  fclose(f);
  return v;
}

static int FindEdu(void) {
  DIR* d = opendir("/sys/bus/pci/devices");
  if (!d) return 0;
  struct dirent* e;
  int found = 0;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char dir[300];
    snprintf(dir, sizeof dir, "/sys/bus/pci/devices/%s", e->d_name);
    if (ReadHexFile(dir, "vendor") == 0x1234 && ReadHexFile(dir, "device") == 0x11e8) {
      snprintf(g_bdf, sizeof g_bdf, "%s", e->d_name);
      found = 1;
    }
  }
  closedir(d);
  return found;
}

static void WriteFile(const char* path, const char* text) {
  int fd = open(path, O_WRONLY);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) FAIL("write %s", path);
  close(fd);
}

static uint16_t ConfigRead16(int off) {
  uint16_t v;
  if (pread(g_config_fd, &v, 2, off) != 2) FAIL("config read 0x%x", off);
  return v;
}

static void ConfigWrite16(int off, uint16_t v) {
  if (pwrite(g_config_fd, &v, 2, off) != 2) FAIL("config write 0x%x", off);
}

static uint64_t PhysAddr(void* p) {
  int fd = open("/proc/self/pagemap", O_RDONLY);
  uint64_t entry = 0;
  long page = sysconf(_SC_PAGESIZE);
  if (fd < 0 || pread(fd, &entry, 8, ((uintptr_t)p / page) * 8) != 8) FAIL("pagemap");
  close(fd);
  if (!(entry & (1ull << 63))) FAIL("page not present");
  return (entry & ((1ull << 55) - 1)) * page + ((uintptr_t)p % page);
}

static void* PinnedPage(void) {
  void* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED || mlock(p, 4096) != 0) FAIL("pinned page");
  return p;
}

// Waits for one interrupt from uio, acknowledges it at the device, and unmasks INTx again.
static int WaitIrq(int uio_fd, uint32_t expect_status) {
  struct pollfd pfd = {.fd = uio_fd, .events = POLLIN};
  if (poll(&pfd, 1, 20000) != 1) FAIL("no interrupt within 20 s");
  uint32_t count;
  if (read(uio_fd, &count, 4) != 4) FAIL("uio read");
  uint32_t status = g_bar0[kRegIrqStatus / 4];
  if ((status & expect_status) != expect_status) FAIL("irq status 0x%x, want 0x%x", status, expect_status);
  g_bar0[kRegIrqAck / 4] = status;
  ConfigWrite16(0x04, ConfigRead16(0x04) & ~0x0400);
  return (int)count;
}

static void RunDma(uint64_t src, uint64_t dst, uint32_t cmd) {
  g_bar0[kRegDmaSrc / 4] = (uint32_t)src;
  g_bar0[kRegDmaDst / 4] = (uint32_t)dst;
  g_bar0[kRegDmaCount / 4] = kLen;
  g_bar0[kRegDmaCmd / 4] = cmd | kCmdStart | kCmdIrq;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!FindEdu()) FAIL("no 1234:11e8 device in /sys/bus/pci/devices");
  printf("EDU-GUEST: found edu at %s\n", g_bdf);

  char path[512];
  WriteFile("/sys/bus/pci/drivers/uio_pci_generic/new_id", "1234 11e8");
  DIR* d;
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/uio", g_bdf);
  for (int i = 0; i < 100 && !(d = opendir(path)); ++i) usleep(20000);
  if (!d) FAIL("uio_pci_generic did not bind");
  struct dirent* e;
  char uio[300] = "";
  while ((e = readdir(d))) {
    if (!strncmp(e->d_name, "uio", 3)) snprintf(uio, sizeof uio, "/dev/%s", e->d_name);
  }
  closedir(d);
  int uio_fd = -1;
  for (int i = 0; i < 100 && (uio_fd = open(uio, O_RDWR)) < 0; ++i) usleep(20000);
  if (uio_fd < 0) FAIL("open %s", uio);
  printf("EDU-GUEST: uio_pci_generic bound (%s)\n", uio);

  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/config", g_bdf);
  g_config_fd = open(path, O_RDWR);
  if (g_config_fd < 0) FAIL("open config");
  ConfigWrite16(0x04, (ConfigRead16(0x04) | 0x0006) & ~0x0400);  // memory, bus master, INTx on

  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource0", g_bdf);
  int bar_fd = open(path, O_RDWR | O_SYNC);
  if (bar_fd < 0) FAIL("open resource0");
  g_bar0 = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, bar_fd, 0);
  if (g_bar0 == MAP_FAILED) FAIL("mmap resource0");
  uint32_t id = g_bar0[kRegId / 4];
  g_bar0[kRegLiveness / 4] = 0x12345678;
  uint32_t live = g_bar0[kRegLiveness / 4];
  if (id != 0x010000ed || live != ~0x12345678u) FAIL("id 0x%x liveness 0x%x", id, live);
  printf("EDU-GUEST: id 0x%08x liveness ok\n", id);

  uint8_t* src = PinnedPage();
  uint8_t* dst = PinnedPage();
  for (size_t i = 0; i < 4096; ++i) src[i] = (uint8_t)(i * 7 + 3);
  memset(dst, 0xee, 4096);
  uint64_t src_pa = PhysAddr(src), dst_pa = PhysAddr(dst);

  RunDma(src_pa, kDevBuffer, 0);
  int irqs = WaitIrq(uio_fd, kIrqDma);
  if (g_bar0[kRegDmaCmd / 4] & (kCmdStart | 0x80000000u)) FAIL("dma to device: cmd 0x%x", g_bar0[kRegDmaCmd / 4]);
  printf("EDU-GUEST: dma ram->device src=0x%llx len=%zu done, interrupt %d\n", (unsigned long long)src_pa, kLen, irqs);

  RunDma(kDevBuffer, dst_pa, kCmdToRam);
  irqs = WaitIrq(uio_fd, kIrqDma);
  if (g_bar0[kRegDmaCmd / 4] & (kCmdStart | 0x80000000u)) FAIL("dma to ram: cmd 0x%x", g_bar0[kRegDmaCmd / 4]);
  printf("EDU-GUEST: dma device->ram dst=0x%llx len=%zu done, interrupt %d\n", (unsigned long long)dst_pa, kLen, irqs);

  if (memcmp(src, dst, kLen) != 0) FAIL("bytes differ after the round trip");
  for (size_t i = kLen; i < 4096; ++i) {
    if (dst[i] != 0xee) FAIL("byte %zu past the transfer was written", i);
  }
  printf("EDU-GUEST: %zu bytes verified, %d interrupts\n", kLen, irqs);
  printf("EDU-GUEST: PASS\n");
  return 0;
}
