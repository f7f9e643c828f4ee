// vfio-pci binding, DEVICE_GET_INFO, region info, region read/write/mmap edges and config space
// virtualization (§6.1, §6.3–§6.6).
#include <linux/vfio.h>
#include <sys/mman.h>

#include <set>

#include "vfio/pci/vfio_pci_test_util.h"

namespace vfio::pci {
namespace {

namespace p = hw::pci;
using testing::VfioPciFixture;

class VfioPciRegions : public VfioPciFixture {};

TEST_F(VfioPciRegions, ProbeRefusesBridgesAndNonPci) {
  VfioPciDriver other{vfio};
  auto bridge = machine.FindDevice("0000:00:01.0");
  EXPECT_EQ(vb::ErrnoOf(other.Probe(*bridge)), EINVAL);
  EXPECT_EQ(other.VfioDeviceOf(*bridge), nullptr);
}

TEST_F(VfioPciRegions, DeviceInfoFlagsFollowTheResetMethods) {
  struct Row {
    hw::PciDevice* dev;
    uint32_t flags;
  } rows[] = {
      {edu.get(), VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET},  // alone on its bus: bus reset
      {ep0.get(), VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET},  // FLR
      {plain0, VFIO_DEVICE_FLAGS_PCI},                               // two functions, no FLR/PM
      {root_ep.get(), VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET},
  };
  for (const Row& r : rows) {
    auto o = Open(*r.dev);
    DeviceInfo info = driver.GetInfo(o.dev());
    EXPECT_EQ(info.flags, r.flags) << r.dev->name();
    EXPECT_EQ(info.num_regions, 9u);
    EXPECT_EQ(info.num_irqs, 5u);
  }
}

TEST_F(VfioPciRegions, RegionInfoForEveryIndex) {
  auto o = Open(*ep0);
  constexpr uint32_t kRw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  struct Row {
    uint32_t index;
    int err;
    uint64_t size;
    uint32_t flags;
  } rows[] = {
      {0, 0, devices::TestEndpoint::kBar0Size, kRw | VFIO_REGION_INFO_FLAG_MMAP},  // memfd-backed
      {1, 0, 0, 0},                                                               // upper half of BAR0
      {2, 0, devices::TestEndpoint::kBar2Size, kRw | VFIO_REGION_INFO_FLAG_MMAP},  // registers: trapped
      {3, 0, 0, 0}, {4, 0, 0, 0}, {5, 0, 0, 0},
      {6, 0, 0, 0},                                                               // no ROM
      {7, 0, 4096, kRw},
      {8, EINVAL, 0, 0},                                                          // not VGA
      {9, EINVAL, 0, 0},
      {1000, EINVAL, 0, 0},
  };
  for (const Row& r : rows) {
    auto info = driver.GetRegionInfo(o.dev(), r.index);
    ASSERT_EQ(vb::ErrnoOf(info), r.err) << r.index;
    if (r.err) continue;
    EXPECT_EQ(info->offset, uint64_t{r.index} << 40) << r.index;
    EXPECT_EQ(info->size, r.size) << r.index;
    EXPECT_EQ(info->flags, r.flags) << r.index;
    // The MSI-X table lives in the register BAR, which 6.1 offers whole (MSIX_MAPPABLE).
    EXPECT_EQ(info->msix_mappable, r.index == 2) << r.index;
    EXPECT_FALSE(info->has_sparse_mmap);
  }
  auto e = Open(*edu);
  auto bar0 = driver.GetRegionInfo(e.dev(), 0);
  EXPECT_EQ(bar0->size, devices::Edu::kBar0Size);
  EXPECT_EQ(bar0->flags, kRw | VFIO_REGION_INFO_FLAG_MMAP);  // a register BAR, mapped trapped
  EXPECT_EQ(driver.GetRegionInfo(e.dev(), 7)->size, 256u);
}

TEST_F(VfioPciRegions, ConfigChainIsWellFormedAsLspciWouldWalkIt) {
  for (hw::PciDevice* d : {static_cast<hw::PciDevice*>(ep0.get()), static_cast<hw::PciDevice*>(edu.get())}) {
    auto o = Open(*d);
    const uint32_t size = driver.GetRegionInfo(o.dev(), 7)->size;
    std::vector<uint8_t> cfg(size);
    // One read of the whole space, as QEMU does first.
    ASSERT_EQ(driver.Read(o.dev(), cfg.data(), size, RegionOffset(7)).value(), size);
    auto get16 = [&](uint32_t off) { return uint16_t(cfg[off] | cfg[off + 1] << 8); };
    EXPECT_EQ(get16(0), d->vendor_id());
    EXPECT_EQ(get16(2), d->device_id());
    EXPECT_EQ(cfg[0x0e] & 0x7f, 0);
    ASSERT_TRUE(get16(p::kStatus) & p::kStatusCapList);
    std::vector<uint8_t> ids;
    std::set<uint8_t> seen;
    for (uint8_t pos = cfg[0x34]; pos; pos = cfg[pos + 1]) {
      ASSERT_GE(pos, 0x40);
      ASSERT_EQ(pos % 4, 0);
      ASSERT_TRUE(seen.insert(pos).second) << "loop in the chain";
      ids.push_back(cfg[pos]);
    }
    if (d == edu.get()) {
      EXPECT_EQ(ids, (std::vector<uint8_t>{p::kCapIdMsi}));
      EXPECT_EQ(cfg[0x3d], 1);  // INTA
    } else {
      EXPECT_EQ(ids, (std::vector<uint8_t>{p::kCapIdExp, p::kCapIdPm, p::kCapIdMsix}));
      // MSI-X table/PBA BIR and offsets as the device has them.
      const uint8_t x = d->msix_offset().value();
      EXPECT_EQ(cfg[x + 4] & 7, 2);
      EXPECT_EQ(get16(x + 2) & p::kMsixFlagsQsize, devices::TestEndpoint::kMsixVectors - 1);
    }
    // The virtual view equals the device's own bytes wherever nothing is virtualized.
    std::vector<uint8_t> hwcfg = d->ConfigSnapshot();
    EXPECT_EQ(cfg[0x08], hwcfg[0x08]);
    EXPECT_EQ(cfg[0x0a], hwcfg[0x0a]);
  }
}

TEST_F(VfioPciRegions, BarSizingIsVirtualAndPowerOfTwo) {
  auto o = Open(*ep0);
  const uint32_t hw_bar0 = ep0->ConfigRead(0x10, 4).value();
  for (uint32_t off = 0x10; off <= 0x24; off += 4) SetCfg(o.dev(), off, 0xffffffffu);
  // BAR0: 64 KiB, 64-bit prefetchable.
  EXPECT_EQ(Cfg(o.dev(), 0x10), 0xffff0000u | p::kBarMemType64 | p::kBarMemPrefetch);
  EXPECT_EQ(Cfg(o.dev(), 0x14), 0xffffffffu);
  // BAR2: 16 KiB, 32-bit.
  EXPECT_EQ(Cfg(o.dev(), 0x18), 0xffffc000u);
  for (uint32_t off : {0x1cu, 0x20u, 0x24u}) EXPECT_EQ(Cfg(o.dev(), off), 0u) << off;
  // Size = ~mask + 1 is a power of two.
  const uint32_t size2 = ~(Cfg(o.dev(), 0x18) & p::kBarMemMask) + 1;
  EXPECT_EQ(size2, devices::TestEndpoint::kBar2Size);
  // An address comes back masked to the size alignment with the type bits.
  SetCfg(o.dev(), 0x18, 0xfebf1234u);
  EXPECT_EQ(Cfg(o.dev(), 0x18), 0xfebf0000u);
  // The hardware BAR never changes.
  EXPECT_EQ(ep0->ConfigRead(0x10, 4).value(), hw_bar0);
  // No ROM: ROM sizing reads 0.
  SetCfg(o.dev(), 0x30, 0xfffff800u);
  EXPECT_EQ(Cfg(o.dev(), 0x30), 0u);
}

TEST_F(VfioPciRegions, HeaderFieldsReadOnlyVirtualOrPassedThrough) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  // IDs read-only.
  SetCfg(d, 0x00, 0x12345678u);
  EXPECT_EQ(Cfg(d, 0x00), uint32_t{ep0->vendor_id()} | uint32_t{ep0->device_id()} << 16);
  SetCfg(d, 0x08, 0xffffffffu);
  EXPECT_EQ(Cfg(d, 0x08), ep0->ConfigRead(0x08, 4).value());
  // Command: memory and bus master reach the device; INTx-disable is virtual.
  SetCfg(d, p::kCommand, p::kCommandMemory | p::kCommandMaster | p::kCommandIntxDisable, 2);
  EXPECT_EQ(Cfg(d, p::kCommand, 2), p::kCommandMemory | p::kCommandMaster | p::kCommandIntxDisable);
  EXPECT_EQ(ep0->command(), p::kCommandMemory | p::kCommandMaster);
  SetCfg(d, p::kCommand, 0, 2);
  EXPECT_EQ(ep0->command(), 0);
  // Status: read-only; the error bits are not the user's to clear; cap-list stays.
  const uint16_t status = static_cast<uint16_t>(Cfg(d, p::kStatus, 2));
  SetCfg(d, p::kStatus, 0xffff, 2);
  EXPECT_EQ(Cfg(d, p::kStatus, 2), status);
  EXPECT_TRUE(status & p::kStatusCapList);
  // Interrupt pin read-only, line virtual read/write.
  SetCfg(d, p::kInterruptPin, 3, 1);
  EXPECT_EQ(Cfg(d, p::kInterruptPin, 1), 1u);
  SetCfg(d, p::kInterruptLine, 0x0b, 1);
  EXPECT_EQ(Cfg(d, p::kInterruptLine, 1), 0x0bu);
  EXPECT_EQ(ep0->ConfigRead(p::kInterruptLine, 1).value(), 0u);
  // Cache line size passes through.
  SetCfg(d, p::kCacheLineSize, 0x10, 1);
  EXPECT_EQ(ep0->ConfigRead(p::kCacheLineSize, 1).value(), 0x10u);
}

TEST_F(VfioPciRegions, MsiAndMsixControlAreNotTheUsersToEnable) {
  auto e = Open(*edu);
  const uint8_t m = edu->msi_offset().value();
  SetCfg(e.dev(), m + p::kMsiFlags, p::kMsiFlagsEnable | 0x0070, 2);  // enable, 128 vectors asked
  const uint16_t flags = static_cast<uint16_t>(Cfg(e.dev(), m + p::kMsiFlags, 2));
  EXPECT_TRUE(flags & p::kMsiFlagsEnable);       // the virtual bit reads back
  EXPECT_EQ(flags & p::kMsiFlagsQsize, 0);       // clamped to what the device is capable of (1)
  EXPECT_FALSE(edu->msi_enabled());              // the hardware is untouched
  SetCfg(e.dev(), m + p::kMsiAddressLo, 0xfee00000u);
  EXPECT_EQ(Cfg(e.dev(), m + p::kMsiAddressLo), 0xfee00000u);

  auto o = Open(*ep0);
  const uint8_t x = ep0->msix_offset().value();
  SetCfg(o.dev(), x + p::kMsixFlags, p::kMsixFlagsEnable, 2);
  EXPECT_FALSE(ep0->msix_enabled());
  EXPECT_EQ(Cfg(o.dev(), x + p::kMsixFlags, 2) & p::kMsixFlagsEnable, 0u);
}

TEST_F(VfioPciRegions, PcieFlrBitResetsTheFunctionAndReadsZero) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  SetBar32(d, 2, devices::TestEndpoint::kRegScratch, 0xabcd);
  const uint8_t e = ep0->pcie_offset().value();
  const uint16_t ctl = static_cast<uint16_t>(Cfg(d, e + p::kExpDevCtl, 2));
  SetCfg(d, e + p::kExpDevCtl, ctl | p::kExpDevCtlBcrFlr, 2);
  EXPECT_EQ(Cfg(d, e + p::kExpDevCtl, 2) & p::kExpDevCtlBcrFlr, 0u);
  EXPECT_EQ(Bar32(d, 2, devices::TestEndpoint::kRegScratch), 0u);
}

TEST_F(VfioPciRegions, ReadWriteEdges) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  uint8_t buf[16] = {};
  struct Row {
    const char* what;
    uint64_t offset;
    size_t count;
    bool write;
    int err;
    size_t done;
  } rows[] = {
      {"count 0", RegionOffset(7) + 5000, 0, false, 0, 0},
      {"region 9", RegionOffset(9), 4, false, EINVAL, 0},
      {"config last dword", RegionOffset(7) + 4092, 4, false, 0, 4},
      {"config crossing the end", RegionOffset(7) + 4094, 4, false, EFAULT, 0},
      {"config beyond", RegionOffset(7) + 4096, 1, false, EFAULT, 0},
      {"config write crossing", RegionOffset(7) + 4095, 2, true, EFAULT, 0},
      {"config 8 bytes", RegionOffset(7) + 0, 8, false, 0, 8},
      {"bar 1 (unimplemented)", RegionOffset(1), 4, false, EINVAL, 0},
      {"bar 3 write", RegionOffset(3), 4, true, EINVAL, 0},
      {"bar0 at the end", RegionOffset(0) + devices::TestEndpoint::kBar0Size - 4, 16, false, 0, 4},
      {"bar0 beyond", RegionOffset(0) + devices::TestEndpoint::kBar0Size, 1, false, EINVAL, 0},
      {"bar2 clipped", RegionOffset(2) + devices::TestEndpoint::kBar2Size - 2, 8, false, 0, 2},
      {"rom read", RegionOffset(6), 4, false, EINVAL, 0},
      {"rom write", RegionOffset(6), 4, true, EINVAL, 0},
      {"vga", RegionOffset(8), 1, false, EINVAL, 0},
  };
  for (const Row& r : rows) {
    auto res = r.write ? driver.Write(d, buf, r.count, r.offset) : driver.Read(d, buf, r.count, r.offset);
    EXPECT_EQ(vb::ErrnoOf(res), r.err) << r.what;
    if (!r.err) {
      EXPECT_EQ(*res, r.done) << r.what;
    }
  }
  // 1, 2, 4 and 8 byte accesses of the mappable BAR land in the device's memory.
  const uint64_t v = 0x1122334455667788ull;
  for (size_t n : {1u, 2u, 4u, 8u}) {
    ASSERT_EQ(driver.Write(d, &v, n, RegionOffset(0) + 0x100).value(), n);
    uint64_t back = 0;
    ASSERT_EQ(driver.Read(d, &back, n, RegionOffset(0) + 0x100).value(), n);
    EXPECT_EQ(std::memcmp(&back, &v, n), 0) << n;
  }
  EXPECT_EQ(std::memcmp(static_cast<uint8_t*>(ep0->bar_host(0)) + 0x100, &v, 8), 0);
  // An 8-byte register read is two 4-byte reads.
  uint64_t id2 = 0;
  ASSERT_EQ(driver.Read(d, &id2, 8, RegionOffset(2)).value(), 8u);
  EXPECT_EQ(static_cast<uint32_t>(id2), devices::TestEndpoint::kId);
}

TEST_F(VfioPciRegions, BarAccessWithDecodeOffIsEio) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  EXPECT_TRUE(ep0->memory_enabled());  // enabled at open, as pci_enable_device does
  SetCfg(d, p::kCommand, 0, 2);
  uint32_t v = 0;
  EXPECT_EQ(vb::ErrnoOf(driver.Read(d, &v, 4, RegionOffset(2))), EIO);
  EXPECT_EQ(vb::ErrnoOf(driver.Write(d, &v, 4, RegionOffset(0))), EIO);
  // Config space does not care.
  EXPECT_EQ(vb::ErrnoOf(driver.Read(d, &v, 4, RegionOffset(7))), 0);
  SetCfg(d, p::kCommand, p::kCommandMemory, 2);
  EXPECT_EQ(Bar32(d, 2, 0), devices::TestEndpoint::kId);
}

TEST_F(VfioPciRegions, MsixTableBytesReadAllOnesAndDropWrites) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  const uint64_t table = devices::TestEndpoint::kMsixTableOffset;
  EXPECT_EQ(Bar32(d, 2, table), 0xffffffffu);
  EXPECT_EQ(Bar32(d, 2, table + 12), 0xffffffffu);
  SetBar32(d, 2, table + 12, 0);  // try to unmask entry 0 behind the kernel's back
  uint32_t ctrl = 0;
  ASSERT_TRUE(ep0->BarRead(2, table + 12, &ctrl, 4).has_value());
  EXPECT_EQ(ctrl & 1u, 1u);  // still masked
  // The PBA reads through.
  EXPECT_EQ(Bar32(d, 2, devices::TestEndpoint::kMsixPbaOffset), 0u);
}

TEST_F(VfioPciRegions, MmapOfMappableBarSharesTheDeviceMemory) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  struct Row {
    uint64_t offset, length;
    int err;
  } rows[] = {
      {RegionOffset(0), devices::TestEndpoint::kBar0Size, 0},
      {RegionOffset(0) + 4096, 4096, 0},
      {RegionOffset(0), devices::TestEndpoint::kBar0Size + 4096, EINVAL},
      {RegionOffset(0) + devices::TestEndpoint::kBar0Size, 4096, EINVAL},
      {RegionOffset(2), 4096, 0},  // register BAR: trapped
      {RegionOffset(2), devices::TestEndpoint::kBar2Size + 4096, EINVAL},
      {RegionOffset(1), 4096, EINVAL},
      {RegionOffset(6), 4096, EINVAL},
      {RegionOffset(7), 4096, EINVAL},
      {RegionOffset(8), 4096, EINVAL},
  };
  for (const Row& r : rows) EXPECT_EQ(vb::ErrnoOf(driver.Mmap(d, r.offset, r.length, PROT_READ)), r.err) << r.offset;
  // Register pages are served by trapping, not by a file.
  auto regs = driver.Mmap(d, RegionOffset(2), 4096, PROT_READ).value();
  EXPECT_TRUE(regs.trapped);
  EXPECT_EQ(regs.fd, -1);
  auto t = driver.Mmap(d, RegionOffset(0), devices::TestEndpoint::kBar0Size, PROT_READ | PROT_WRITE).value();
  EXPECT_EQ(t.fd, ep0->bar_fd(0));
  void* m = mmap(nullptr, devices::TestEndpoint::kBar0Size, PROT_READ | PROT_WRITE, MAP_SHARED, t.fd, t.fd_offset);
  ASSERT_NE(m, MAP_FAILED);
  static_cast<volatile uint32_t*>(m)[16] = 0xc0ffee;
  uint32_t v = 0;
  ASSERT_TRUE(ep0->BarRead(0, 64, &v, 4).has_value());
  EXPECT_EQ(v, 0xc0ffeeu);
  EXPECT_EQ(Bar32(d, 0, 64), 0xc0ffeeu);
  munmap(m, devices::TestEndpoint::kBar0Size);
}

}  // namespace
}  // namespace vfio::pci

namespace vfio::pci {
namespace {

TEST(VirtualConfigTest, ExtendedChainShowsAcsWithVirtualHeaders) {
  auto dev = iommu::testtopo::MakePci("05:00.0", iommu::testtopo::Endpoint().Acs());
  ASSERT_TRUE(dev->acs_offset().has_value());
  VirtualConfig vc;
  std::vector<uint8_t> phys = dev->ConfigSnapshot();
  vc.Build(*dev, phys);
  ASSERT_EQ(vc.size(), 4096u);
  const uint16_t acs = *dev->acs_offset();
  // Walk the extended chain as lspci does.
  std::vector<uint16_t> ids;
  for (uint32_t pos = 0x100; pos; pos = hw::pci::ExtCapNext(vc.Merge(pos, 4, dev->ConfigRead(pos, 4).value()))) {
    const uint32_t h = vc.Merge(pos, 4, dev->ConfigRead(pos, 4).value());
    ids.push_back(hw::pci::ExtCapId(h));
    ASSERT_LT(ids.size(), 8u);
  }
  EXPECT_EQ(ids.front(), acs == 0x100 ? hw::pci::kExtCapIdAcs : 0);
  EXPECT_EQ(ids.back(), hw::pci::kExtCapIdAcs);
  // Its control register is read-only to the user.
  EXPECT_EQ(vc.ApplyWrite(acs + hw::pci::kAcsCtrl, 2, 0), 0u);
  // The standard chain: the PCIe capability alone.
  EXPECT_EQ(vc.visible_caps().size(), 1u);
  EXPECT_EQ(vc.visible_caps()[0].first, hw::pci::kCapIdExp);
}

}  // namespace
}  // namespace vfio::pci
