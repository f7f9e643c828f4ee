/* vfio_pci_device_test: the device checks of the kernel's VFIO selftests (clients.md §2.3, §2.4)
 * for a device bound to vfio-pci, in container/type1v2 mode, plus the 6.1 device-info rules
 * (kernel-vfio.md §6.3, §6.4, §6.7). Devices come from the command line (or
 * $VFIO_SELFTESTS_BDF). SPDX-License-Identifier: Apache-2.0 */
#include <sys/eventfd.h>

#include "vfio_util.h"

#define CONFIG_OFFSET(d) ((uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40)

TEST(device_info_reports_pci_regions_and_irqs) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  struct vfio_device_info info = {.argsz = sizeof info};
  CHECK(ioctl(d.device, VFIO_DEVICE_GET_INFO, &info) == 0);
  CHECK(info.flags & VFIO_DEVICE_FLAGS_PCI);
  CHECK(info.num_regions >= VFIO_PCI_NUM_REGIONS);
  EXPECT_EQ(info.num_irqs, VFIO_PCI_NUM_IRQS);
  struct vfio_device_info tiny = {.argsz = 15};
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_GET_INFO, &tiny), EINVAL);
}

TEST(config_region_is_not_mmappable_and_sized_for_the_bus) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  struct vfio_region_info r;
  CHECK(vu_region(d.device, VFIO_PCI_CONFIG_REGION_INDEX, &r) == 0);
  CHECK(!(r.flags & VFIO_REGION_INFO_FLAG_MMAP));
  EXPECT_EQ(r.flags & (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE),
            VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
  CHECK(r.size == 256 || r.size == 4096);
  EXPECT_EQ(r.offset, CONFIG_OFFSET(d));
  const uint64_t cfg_size = r.size;
  /* Beyond the last region: EINVAL. */
  struct vfio_device_info info = {.argsz = sizeof info};
  CHECK(ioctl(d.device, VFIO_DEVICE_GET_INFO, &info) == 0);
  EXPECT_ERRNO(vu_region(d.device, info.num_regions, &r), EINVAL);
  /* A read past the end of config space is EFAULT. */
  uint32_t v;
  EXPECT_ERRNO(pread(d.device, &v, 4, CONFIG_OFFSET(d) + cfg_size), EFAULT);
  EXPECT_ERRNO(pread(d.device, &v, 4, CONFIG_OFFSET(d) + cfg_size - 2), EFAULT); /* crossing the end */
}

TEST(config_vendor_and_device_match_sysfs) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  uint16_t vendor = 0, device = 0;
  CHECK(pread(d.device, &vendor, 2, CONFIG_OFFSET(d) + 0) == 2);
  CHECK(pread(d.device, &device, 2, CONFIG_OFFSET(d) + 2) == 2);
  EXPECT_EQ(vendor, vu_sysfs_ulong(vu_bdf, "vendor"));
  EXPECT_EQ(device, vu_sysfs_ulong(vu_bdf, "device"));
}

TEST(command_master_starts_clear_and_can_be_set_and_cleared) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  uint16_t cmd = 0;
  CHECK(pread(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
  CHECK(!(cmd & 0x4));
  cmd |= 0x4;
  CHECK(pwrite(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
  cmd = 0;
  CHECK(pread(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
  CHECK(cmd & 0x4);
  cmd &= ~0x4;
  CHECK(pwrite(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
  cmd = 0xffff;
  CHECK(pread(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
  CHECK(!(cmd & 0x4));
}

/* sysfs `config` reads the device as it is now: a COMMAND change made through VFIO shows there. */
TEST(sysfs_config_shows_a_command_change_made_through_vfio) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  char path[256];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/config", vu_bdf);
  uint16_t cmd = 0, seen = 0;
  CHECK(pread(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
  for (int round = 0; round < 2; ++round) {
    cmd ^= 0x6; /* memory and bus master on, then off again */
    CHECK(pwrite(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    EXPECT_EQ(pread(fd, &seen, 2, 4), 2);
    close(fd);
    EXPECT_EQ(seen & 0x6, cmd & 0x6);
  }
}

TEST(every_mmap_capable_bar_maps_in_full) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  int mapped = 0;
  for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; ++i) {
    struct vfio_region_info r;
    CHECK(vu_region(d.device, i, &r) == 0);
    EXPECT_EQ(r.offset, (uint64_t)i << 40);
    if (r.size == 0) EXPECT_EQ(r.flags, 0);
    if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP)) continue;
    CHECK(r.size > 0);
    void* p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, d.device, r.offset);
    CHECK(p != MAP_FAILED);
    CHECK(munmap(p, r.size) == 0);
    ++mapped;
  }
  if (!mapped) SKIP("no mmap-capable BAR");
}

TEST(shared_anonymous_2m_buffer_maps_at_its_own_address) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  const uint64_t size = 2ull << 20;
  void* buf = vu_mmap_anon(size, PROT_READ | PROT_WRITE, MAP_SHARED);
  CHECK(buf != MAP_FAILED);
  uint64_t iova = (uintptr_t)buf;
  struct vfio_iova_range r[32];
  int n = vu_iova_ranges(d.container, r, 32), inside = 0;
  for (int i = 0; i < n; ++i) inside |= iova >= r[i].start && iova + size - 1 <= r[i].end;
  /* An IOMMU narrower than the CPU's address space cannot use iova == vaddr: take a valid one. */
  if (!inside) iova = vu_pick_iova(d.container, size);
  CHECK(vu_map(d.container, buf, iova, size, VU_RW) == 0);
  uint64_t unmapped = 0;
  CHECK(vu_unmap(d.container, iova, size, 0, &unmapped) == 0);
  EXPECT_EQ(unmapped, size);
}

TEST(irq_info_counts_and_flags) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  for (uint32_t i = 0; i < VFIO_PCI_NUM_IRQS; ++i) {
    struct vfio_irq_info irq = {.argsz = sizeof irq, .index = i};
    if (i == VFIO_PCI_ERR_IRQ_INDEX && ioctl(d.device, VFIO_DEVICE_GET_IRQ_INFO, &irq) != 0) {
      EXPECT_EQ(errno, EINVAL); /* conventional PCI has no ERR */
      continue;
    }
    CHECK(ioctl(d.device, VFIO_DEVICE_GET_IRQ_INFO, &irq) == 0);
    CHECK(irq.flags & VFIO_IRQ_INFO_EVENTFD);
    if (i == VFIO_PCI_INTX_IRQ_INDEX) {
      CHECK(irq.count <= 1);
      if (irq.count) CHECK(irq.flags & VFIO_IRQ_INFO_MASKABLE && irq.flags & VFIO_IRQ_INFO_AUTOMASKED);
    } else {
      CHECK(irq.flags & VFIO_IRQ_INFO_NORESIZE);
    }
    if (i == VFIO_PCI_ERR_IRQ_INDEX || i == VFIO_PCI_REQ_IRQ_INDEX) EXPECT_EQ(irq.count, 1);
    if (i == VFIO_PCI_MSI_IRQ_INDEX) CHECK(irq.count == 0 || (irq.count & (irq.count - 1)) == 0);
  }
  struct vfio_irq_info bad = {.argsz = sizeof bad, .index = VFIO_PCI_NUM_IRQS};
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_GET_IRQ_INFO, &bad), EINVAL);
}

/* Enables `count` vectors of an MSI or MSI-X index on eventfds, fires each with a software
 * trigger (DATA_NONE|ACTION_TRIGGER) and reads 1 from exactly that eventfd, then disables. */
static void software_trigger(uint32_t index) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  struct vfio_irq_info irq = {.argsz = sizeof irq, .index = index};
  CHECK(ioctl(d.device, VFIO_DEVICE_GET_IRQ_INFO, &irq) == 0);
  uint32_t count = irq.count > 16 ? 16 : irq.count;
  if (count == 0) SKIP("the device has no vectors at this index");
  int efds[16];
  char buf[sizeof(struct vfio_irq_set) + sizeof efds];
  struct vfio_irq_set* set = (struct vfio_irq_set*)buf;
  for (uint32_t i = 0; i < count; ++i) {
    efds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(efds[i] >= 0);
    st_defer_close(efds[i]);
  }
  *set = (struct vfio_irq_set){.argsz = sizeof *set + count * sizeof(int),
                               .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                               .index = index, .start = 0, .count = count};
  memcpy(set->data, efds, count * sizeof(int));
  CHECK(ioctl(d.device, VFIO_DEVICE_SET_IRQS, set) == 0);
  for (uint32_t v = 0; v < count; ++v) {
    struct vfio_irq_set fire = {.argsz = sizeof fire, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                .index = index, .start = v, .count = 1};
    CHECK(ioctl(d.device, VFIO_DEVICE_SET_IRQS, &fire) == 0);
    EXPECT_EQ(vu_wait_eventfd(efds[v], 1000), 1);
    for (uint32_t o = 0; o < count; ++o) {
      uint64_t junk;
      if (o != v) EXPECT_ERRNO(read(efds[o], &junk, sizeof junk), EAGAIN);
    }
  }
  /* Masking MSI/MSI-X is not supported. */
  struct vfio_irq_set mask = {.argsz = sizeof mask, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                              .index = index, .start = 0, .count = 1};
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_SET_IRQS, &mask), ENOTTY);
  /* Beyond the vectors: EINVAL. */
  struct vfio_irq_set beyond = {.argsz = sizeof beyond, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                .index = index, .start = irq.count, .count = 1};
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_SET_IRQS, &beyond), EINVAL);
  struct vfio_irq_set off = {.argsz = sizeof off, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                             .index = index, .start = 0, .count = 0};
  CHECK(ioctl(d.device, VFIO_DEVICE_SET_IRQS, &off) == 0);
  /* Disabled: a software trigger has nothing to fire and is refused; a second disable too. */
  struct vfio_irq_set fire = {.argsz = sizeof fire, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                              .index = index, .start = 0, .count = 1};
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_SET_IRQS, &fire), EINVAL);
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_SET_IRQS, &off), EINVAL);
}

TEST(msi_software_trigger_signals_each_vector) { software_trigger(VFIO_PCI_MSI_IRQ_INDEX); }
TEST(msix_software_trigger_signals_each_vector) { software_trigger(VFIO_PCI_MSIX_IRQ_INDEX); }

/* VFIO_DEVICE_IOEVENTFD (kernel-vfio.md §6.11): the header and BAR rows, EEXIST/ENODEV, and a
 * signalled eventfd becoming a register write: the edu's liveness register (BAR0 + 4, reads back
 * the complement) or the test endpoint's scratch register (BAR2 + 4, reads back the value). */
TEST(ioeventfd_rows_and_a_signalled_register_write) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  const unsigned long vendor = vu_sysfs_ulong(vu_bdf, "vendor"), device = vu_sysfs_ulong(vu_bdf, "device");
  uint32_t bar;
  int complement;
  if (vendor == 0x1234 && device == 0x11e8) {
    bar = VFIO_PCI_BAR0_REGION_INDEX;
    complement = 1;
  } else if (vendor == 0x1234 && device == 0x7e57) {
    bar = VFIO_PCI_BAR2_REGION_INDEX;
    complement = 0;
  } else {
    SKIP("no known scratch register on %04lx:%04lx", vendor, device);
  }
  uint16_t cmd = 0x2; /* memory decode */
  CHECK(pwrite(d.device, &cmd, 2, CONFIG_OFFSET(d) + 4) == 2);
  const int efd = eventfd(0, EFD_CLOEXEC);
  CHECK(efd >= 0);
  st_defer_close(efd);
  const uint64_t reg = ((uint64_t)bar << 40) | 4;
  struct vfio_device_ioeventfd io = {.argsz = sizeof io, .flags = VFIO_DEVICE_IOEVENTFD_32,
                                     .offset = reg, .data = 0x5a5a1234, .fd = efd};
  struct vfio_device_ioeventfd bad = io;
  bad.argsz = 27;
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &bad), EINVAL);
  bad = io;
  bad.flags = 0;
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &bad), EINVAL);
  bad.flags = VFIO_DEVICE_IOEVENTFD_16 | VFIO_DEVICE_IOEVENTFD_32;
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &bad), EINVAL);
  bad = io;
  bad.offset = CONFIG_OFFSET(d);
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &bad), EINVAL);
  bad = io;
  bad.offset = ((uint64_t)bar << 40) | (1ull << 39);
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &bad), EINVAL);
  bad = io;
  bad.fd = -1;
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &bad), ENODEV);
  CHECK(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &io) == 0);
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &io), EEXIST);
  /* The kernel writes when the eventfd is signalled; wait (bounded) for the register to show it. */
  const uint64_t one = 1;
  CHECK(write(efd, &one, sizeof one) == sizeof one);
  const uint32_t want = complement ? ~0x5a5a1234u : 0x5a5a1234u;
  uint32_t v = 0;
  for (int i = 0; i < 2000; ++i) {
    CHECK(pread(d.device, &v, 4, reg) == 4);
    if (v == want) break;
    usleep(1000);
  }
  EXPECT_EQ(v, want);
  io.fd = -1;
  CHECK(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &io) == 0);
  EXPECT_ERRNO(ioctl(d.device, VFIO_DEVICE_IOEVENTFD, &io), ENODEV);
}

/* VFIO_DEVICE_FEATURE as 6.1's vfio-pci answers it (kernel-vfio.md §3.3, §6.11): the three
 * low-power features take SET only (PROBE answers 0 whatever argsz), PCI_VF_TOKEN is ENOTTY on a
 * function that is no SR-IOV PF, the core's migration and DMA-logging features are ENOTTY
 * without migration/logging ops, and unknown features ENOTTY. */
static long feature(int device, uint32_t argsz, uint32_t flags, int32_t payload0) {
  uint8_t buf[64];
  memset(buf, 0, sizeof buf);
  struct vfio_device_feature* f = (struct vfio_device_feature*)buf;
  f->argsz = argsz;
  f->flags = flags;
  memcpy(f->data, &payload0, sizeof payload0);
  return ioctl(device, VFIO_DEVICE_FEATURE, buf);
}

TEST(device_feature_rows_as_61_vfio_pci) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  const uint32_t P = VFIO_DEVICE_FEATURE_PROBE, G = VFIO_DEVICE_FEATURE_GET, S = VFIO_DEVICE_FEATURE_SET;
  const uint32_t low_power[] = {VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
                                VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP};
  for (int i = 0; i < 3; ++i) {
    const uint32_t idx = low_power[i];
    EXPECT_EQ(feature(d.device, 8, P | idx, 0), 0);
    EXPECT_EQ(feature(d.device, 8, P | S | idx, 0), 0);
    EXPECT_ERRNO(feature(d.device, 16, P | G | idx, 0), EINVAL);
    EXPECT_ERRNO(feature(d.device, 16, P | G | S | idx, 0), EINVAL);
    EXPECT_ERRNO(feature(d.device, 16, G | idx, 0), EINVAL);
    EXPECT_ERRNO(feature(d.device, 16, idx, 0), EINVAL);
    EXPECT_ERRNO(feature(d.device, 16, G | S | idx, 0), EINVAL); /* the core's GET&SET row */
  }
  /* WITH_WAKEUP's payload: 8 bytes, a non-negative fd that is an eventfd. */
  const uint32_t W = S | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP;
  EXPECT_ERRNO(feature(d.device, 15, W, 0), EINVAL);
  EXPECT_ERRNO(feature(d.device, 16, W, -1), EINVAL);
  EXPECT_ERRNO(feature(d.device, 16, W, 99999), EBADF);
  EXPECT_ERRNO(feature(d.device, 16, W, d.container), EINVAL);
  EXPECT_ERRNO(feature(d.device, 16, P | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 24, S | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 8, P | G | VFIO_DEVICE_FEATURE_MIGRATION, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 16, G | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 8, P | S | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 8, P | S | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 8, P | G | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 8, P | S | 9, 0), ENOTTY);
  EXPECT_ERRNO(feature(d.device, 8, P | S | VFIO_DEVICE_FEATURE_MASK, 0), ENOTTY);
}

/* Low power (6.1): ENTRY twice is EINVAL, EXIT is a no-op outside it. Every device ioctl and
 * every region read/write resumes the device: with a wakeup eventfd that signals it and leaves
 * low power (so the ioctl that follows may enter again); without one the access is served and the
 * device stays in low power. */
static uint64_t efd_count(int efd) {
  uint64_t v = 0;
  struct pollfd p = {.fd = efd, .events = POLLIN};
  if (poll(&p, 1, 0) != 1) return 0;
  if (read(efd, &v, sizeof v) != sizeof v) return ~0ull;
  return v;
}

TEST(low_power_entry_exit_and_the_wakeup_eventfd) {
  struct vu_device d;
  CHECK(vu_open_device(&d, vu_bdf, vu_iommu_type) == 0);
  const uint32_t S = VFIO_DEVICE_FEATURE_SET;
  const uint32_t ENTRY = S | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, EXIT = S | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
                 WAKE = S | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP;
  EXPECT_EQ(feature(d.device, 8, EXIT, 0), 0); /* not in low power: no-op */
  CHECK(feature(d.device, 8, ENTRY, 0) == 0);
  EXPECT_ERRNO(feature(d.device, 8, ENTRY, 0), EINVAL);
  const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  CHECK(efd >= 0);
  st_defer_close(efd);
  EXPECT_ERRNO(feature(d.device, 16, WAKE, efd), EINVAL);
  /* Without a wakeup eventfd a config read is served and the device stays in low power. */
  uint16_t vendor = 0;
  CHECK(pread(d.device, &vendor, 2, CONFIG_OFFSET(d)) == 2);
  EXPECT_EQ(vendor, vu_sysfs_ulong(vu_bdf, "vendor"));
  EXPECT_ERRNO(feature(d.device, 8, ENTRY, 0), EINVAL);
  CHECK(feature(d.device, 8, EXIT, 0) == 0);
  /* With one: entering signals nothing; a region read signals once and leaves low power. */
  CHECK(feature(d.device, 16, WAKE, efd) == 0);
  EXPECT_EQ(efd_count(efd), 0);
  CHECK(pread(d.device, &vendor, 2, CONFIG_OFFSET(d)) == 2);
  EXPECT_EQ(efd_count(efd), 1);
  CHECK(pread(d.device, &vendor, 2, CONFIG_OFFSET(d)) == 2);
  EXPECT_EQ(efd_count(efd), 0);
  /* Any device ioctl resumes too: GET_INFO signals, and ENTRY is accepted again afterwards. */
  CHECK(feature(d.device, 16, WAKE, efd) == 0);
  struct vfio_device_info info = {.argsz = sizeof info};
  CHECK(ioctl(d.device, VFIO_DEVICE_GET_INFO, &info) == 0);
  EXPECT_EQ(efd_count(efd), 1);
  CHECK(feature(d.device, 8, ENTRY, 0) == 0);
  CHECK(feature(d.device, 8, EXIT, 0) == 0);
  /* ... even the EXIT that leaves it, and an ENTRY_WITH_WAKEUP made while in it. */
  CHECK(feature(d.device, 16, WAKE, efd) == 0);
  CHECK(feature(d.device, 16, WAKE, efd) == 0);
  EXPECT_EQ(efd_count(efd), 1);
  CHECK(feature(d.device, 8, EXIT, 0) == 0);
  EXPECT_EQ(efd_count(efd), 1);
  /* A read of a region that does not exist, or of 0 bytes, is answered before the resume. */
  CHECK(feature(d.device, 16, WAKE, efd) == 0);
  EXPECT_ERRNO(pread(d.device, &vendor, 2, (uint64_t)(VFIO_PCI_NUM_REGIONS + 8) << 40), EINVAL);
  EXPECT_EQ(pread(d.device, &vendor, 0, CONFIG_OFFSET(d)), 0); /* count 0: answered before too */
  EXPECT_EQ(efd_count(efd), 0);
  CHECK(feature(d.device, 8, EXIT, 0) == 0);
  EXPECT_EQ(efd_count(efd), 1);
}

TEST(device_fd_open_close_ten_times) {
  struct vu_device d;
  CHECK(vu_open_container(&d, vu_bdf, vu_iommu_type) == 0);
  for (int i = 0; i < 10; ++i) {
    int fd = ioctl(d.group, VFIO_GROUP_GET_DEVICE_FD, vu_bdf);
    CHECK(fd >= 0);
    uint16_t vendor = 0;
    CHECK(pread(fd, &vendor, 2, CONFIG_OFFSET(d)) == 2);
    EXPECT_EQ(vendor, vu_sysfs_ulong(vu_bdf, "vendor"));
    CHECK(close(fd) == 0);
  }
  EXPECT_ERRNO(ioctl(d.group, VFIO_GROUP_GET_DEVICE_FD, "0000:ff:1f.7"), ENODEV);
}

int main(int argc, char** argv) { return vu_main(argc, argv, "0000:01:00.0", 0); }
