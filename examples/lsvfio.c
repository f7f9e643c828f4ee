/* lsvfio: list IOMMU groups, their devices, and for each device bound to vfio-pci its regions and
 * interrupts, through sysfs and the VFIO UAPI. Plain C against <linux/vfio.h>.
 * SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char* region_name(unsigned i) {
  static const char* names[] = {"BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "CONFIG", "VGA"};
  return i < 9 ? names[i] : "region";
}
static const char* irq_name(unsigned i) {
  static const char* names[] = {"INTx", "MSI", "MSI-X", "ERR", "REQ"};
  return i < 5 ? names[i] : "irq";
}

static void driver_of(const char* bdf, char* out, size_t len) {
  char path[512], link[512];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver", bdf);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) {
    snprintf(out, len, "-");
    return;
  }
  link[n] = 0;
  snprintf(out, len, "%s", basename(link));
}

static void show_device(int group, const char* bdf) {
  int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
  if (dev < 0) {
    printf("      (cannot open: %s)\n", strerror(errno));
    return;
  }
  struct vfio_device_info info = {.argsz = sizeof info};
  if (ioctl(dev, VFIO_DEVICE_GET_INFO, &info) == 0) {
    printf("      flags%s%s, %u regions, %u irqs\n", info.flags & VFIO_DEVICE_FLAGS_PCI ? " PCI" : "",
           info.flags & VFIO_DEVICE_FLAGS_RESET ? " RESET" : "", info.num_regions, info.num_irqs);
    for (unsigned i = 0; i < info.num_regions; i++) {
      struct vfio_region_info r = {.argsz = sizeof r, .index = i};
      if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r) || r.size == 0) continue;
      printf("      region %-6s size %#10llx offset %#14llx %s%s%s%s\n", region_name(i), (unsigned long long)r.size,
             (unsigned long long)r.offset, r.flags & VFIO_REGION_INFO_FLAG_READ ? "R" : "-",
             r.flags & VFIO_REGION_INFO_FLAG_WRITE ? "W" : "-", r.flags & VFIO_REGION_INFO_FLAG_MMAP ? "M" : "-",
             r.flags & VFIO_REGION_INFO_FLAG_CAPS ? " +caps" : "");
    }
    for (unsigned i = 0; i < info.num_irqs; i++) {
      struct vfio_irq_info q = {.argsz = sizeof q, .index = i};
      if (ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &q) || q.count == 0) continue;
      printf("      irq    %-6s count %u%s%s%s\n", irq_name(i), q.count, q.flags & VFIO_IRQ_INFO_MASKABLE ? " maskable" : "",
             q.flags & VFIO_IRQ_INFO_AUTOMASKED ? " automasked" : "", q.flags & VFIO_IRQ_INFO_NORESIZE ? " noresize" : "");
    }
  }
  close(dev);
}

int main(void) {
  struct dirent** groups;
  int n = scandir("/sys/kernel/iommu_groups", &groups, NULL, versionsort);
  if (n < 0) {
    perror("lsvfio: /sys/kernel/iommu_groups");
    return 1;
  }
  int shown = 0;
  for (int g = 0; g < n; g++) {
    const char* id = groups[g]->d_name;
    if (id[0] == '.') continue;
    char path[512];
    snprintf(path, sizeof path, "/sys/kernel/iommu_groups/%s/devices", id);
    struct dirent** devs;
    int nd = scandir(path, &devs, NULL, alphasort);
    if (nd < 0) continue;
    snprintf(path, sizeof path, "/dev/vfio/%s", id);
    int vfio = access(path, F_OK) == 0;
    printf("group %s%s\n", id, vfio ? " (/dev/vfio)" : "");
    int container = -1, group = -1;
    if (vfio) {
      container = open("/dev/vfio/vfio", O_RDWR);
      group = open(path, O_RDWR);
      struct vfio_group_status st = {.argsz = sizeof st};
      if (group >= 0 && ioctl(group, VFIO_GROUP_GET_STATUS, &st) == 0 && (st.flags & VFIO_GROUP_FLAGS_VIABLE) &&
          ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) == 0 &&
          ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0) {
      } else {
        printf("    (not usable: %s)\n", group < 0 ? strerror(errno) : "not viable or attach refused");
        if (group >= 0) close(group);
        group = -1;
      }
    }
    for (int d = 0; d < nd; d++) {
      if (devs[d]->d_name[0] == '.') {
        free(devs[d]);
        continue;
      }
      char driver[128];
      driver_of(devs[d]->d_name, driver, sizeof driver);
      printf("    %s  driver %s\n", devs[d]->d_name, driver);
      if (group >= 0 && strcmp(driver, "vfio-pci") == 0) show_device(group, devs[d]->d_name);
      free(devs[d]);
      shown++;
    }
    free(devs);
    if (group >= 0) close(group);
    if (container >= 0) close(container);
    free(groups[g]);
  }
  free(groups);
  return shown ? 0 : 1;
}
