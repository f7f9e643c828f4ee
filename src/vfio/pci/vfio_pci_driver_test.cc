// A user-space driver written against the C++ API drives the edu through vfio-pci: DMA both ways
// through a type1 mapping, completion as MSI and as INTx on eventfds. Plus resets (§6.8) and hot
// reset (§6.9).
#include <linux/vfio.h>
#include <sys/mman.h>

#include <array>

#include "vfio/pci/vfio_pci_test_util.h"
#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"

namespace vfio::pci {
namespace {

using vfio::testing::Type1Of;

namespace p = hw::pci;
using devices::Edu;
using testing::Efd;
using testing::VfioPciFixture;

constexpr uint32_t kEfdTrigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
constexpr uint32_t kNoneTrigger = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
constexpr uint32_t kNoneUnmask = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;

class VfioPciDriverTest : public VfioPciFixture {};

// What a small edu driver does: program the engine through BAR0 and wait for the interrupt.
struct EduDriver {
  VfioPciDriver& drv;
  Device& dev;
  void W(uint32_t reg, uint32_t v) { ASSERT_EQ(drv.Write(dev, &v, 4, RegionOffset(0) + reg).value(), 4u); }
  uint32_t R(uint32_t reg) {
    uint32_t v = 0;
    EXPECT_EQ(drv.Read(dev, &v, 4, RegionOffset(0) + reg).value(), 4u);
    return v;
  }
  void Dma(uint32_t src, uint32_t dst, uint32_t count, bool to_ram) {
    W(Edu::kRegDmaSrc, src);
    W(Edu::kRegDmaDst, dst);
    W(Edu::kRegDmaCount, count);
    W(Edu::kRegDmaCmd, static_cast<uint32_t>(Edu::kDmaCmdStart | Edu::kDmaCmdIrq | (to_ram ? Edu::kDmaCmdToRam : 0)));
  }
};

TEST_F(VfioPciDriverTest, EduDmaBothWaysCompletesOnMsiAndIntxEventfds) {
  auto o = Open(*edu);
  Device& d = o.dev();
  EduDriver e{driver, d};
  ASSERT_EQ(e.R(Edu::kRegId), Edu::kId);
  SetCfg(d, p::kCommand, p::kCommandMemory | p::kCommandMaster, 2);

  // Two pages of our own memory: the source, and where the device writes back.
  constexpr size_t kLen = 2 * 4096;
  auto* mem = static_cast<uint8_t*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  constexpr uint64_t kIova = 0x100000;
  ASSERT_TRUE(Type1Of(*o.container)
                  .MapDma(type1::MapRequest{type1::kMapFlagRead | type1::kMapFlagWrite,
                                            reinterpret_cast<uint64_t>(mem), kIova, kLen})
                  .has_value());
  for (int i = 0; i < 256; ++i) mem[i] = static_cast<uint8_t>(i * 7 + 1);

  // MSI: RAM → device buffer, then device buffer → RAM.
  Efd msi;
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kEfdTrigger, 1, 0, 1, {msi.fd})), 0);
  e.Dma(kIova, Edu::kDmaBufferAddr, 256, false);
  ASSERT_EQ(msi.Wait(), 1u);
  EXPECT_EQ(e.R(Edu::kRegIrqStatus), Edu::kIrqDma);
  e.W(Edu::kRegIrqAck, Edu::kIrqDma);
  e.Dma(Edu::kDmaBufferAddr, kIova + 4096, 256, true);
  ASSERT_EQ(msi.Wait(), 1u);
  e.W(Edu::kRegIrqAck, Edu::kIrqDma);
  EXPECT_EQ(std::memcmp(mem, mem + 4096, 256), 0);
  EXPECT_EQ(edu->dma_errors(), 0u);

  // INTx: switch modes (MSI off first), new data, same round trip.
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kNoneTrigger, 1, 0, 0)), 0);
  Efd intx;
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kEfdTrigger, 0, 0, 1, {intx.fd})), 0);
  for (int i = 0; i < 256; ++i) mem[i] = static_cast<uint8_t>(255 - i);
  std::memset(mem + 4096, 0, 256);
  e.Dma(kIova, Edu::kDmaBufferAddr + 512, 256, false);
  ASSERT_EQ(intx.Wait(), 1u);
  e.W(Edu::kRegIrqAck, Edu::kIrqDma);  // the line drops
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kNoneUnmask, 0, 0, 1)), 0);
  e.Dma(Edu::kDmaBufferAddr + 512, kIova + 4096, 256, true);
  ASSERT_EQ(intx.Wait(), 1u);
  e.W(Edu::kRegIrqAck, Edu::kIrqDma);
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kNoneUnmask, 0, 0, 1)), 0);
  EXPECT_EQ(std::memcmp(mem, mem + 4096, 256), 0);
  EXPECT_EQ(msi.Take(), 0u);
  munmap(mem, kLen);
}

TEST_F(VfioPciDriverTest, DmaNeedsTheUsersBusMasterBit) {
  auto o = Open(*edu);
  Device& d = o.dev();
  EduDriver e{driver, d};
  EXPECT_FALSE(edu->bus_master_enabled());  // cleared at open
  Efd intx;
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kEfdTrigger, 0, 0, 1, {intx.fd})), 0);
  const uint64_t errors = edu->dma_errors();
  e.Dma(0x100000, Edu::kDmaBufferAddr, 16, false);
  ASSERT_EQ(intx.Wait(), 1u);  // completion still raised, as on QEMU
  EXPECT_EQ(e.R(Edu::kRegDmaCmd) & Edu::kDmaCmdStart, 0u);
  EXPECT_EQ(edu->dma_errors(), errors + 1) << "nothing moved";
}

TEST_F(VfioPciDriverTest, DeviceResetResetsTheFunctionAndKeepsIrqSetup) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  SetCfg(d, p::kCommand, p::kCommandMemory | p::kCommandMaster, 2);
  Efd v0;
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kEfdTrigger, 2, 0, 1, {v0.fd})), 0);
  SetBar32(d, 2, devices::TestEndpoint::kRegScratch, 0x5a5a);
  ASSERT_EQ(vb::ErrnoOf(driver.Reset(d)), 0);
  EXPECT_EQ(Bar32(d, 2, devices::TestEndpoint::kRegScratch), 0u);     // the function was reset
  EXPECT_EQ(ep0->command(), p::kCommandMemory | p::kCommandMaster);  // config state restored
  EXPECT_TRUE(ep0->msix_enabled());                                  // interrupts not torn down
  SetBar32(d, 2, devices::TestEndpoint::kRegDoorbell, 0);
  EXPECT_EQ(v0.Take(), 1u);

  auto q = Open(*plain0);
  EXPECT_EQ(vb::ErrnoOf(driver.Reset(q.dev())), EINVAL);  // no reset method
}

TEST_F(VfioPciDriverTest, OpenResetsAndLastCloseTearsDownAndResets) {
  {
    auto o = Open(*ep0);
    Device& d = o.dev();
    SetCfg(d, p::kCommand, p::kCommandMemory | p::kCommandMaster, 2);
    SetBar32(d, 2, devices::TestEndpoint::kRegScratch, 0x1234);
    Efd v0, err;
    ASSERT_EQ(vb::ErrnoOf(Irqs(d, kEfdTrigger, 2, 0, 1, {v0.fd})), 0);
    ASSERT_EQ(vb::ErrnoOf(Irqs(d, kEfdTrigger, 3, 0, 1, {err.fd})), 0);
    EXPECT_TRUE(ep0->msix_enabled());
  }
  // Last close: interrupts off, bus mastering off, the function reset.
  EXPECT_FALSE(ep0->msix_enabled());
  EXPECT_FALSE(ep0->bus_master_enabled());
  uint32_t scratch = 0;
  ASSERT_TRUE(ep0->BarRead(2, devices::TestEndpoint::kRegScratch, &scratch, 4).has_value());
  EXPECT_EQ(scratch, 0u);
  // A second open starts clean: no interrupt mode, the user's virtual state rebuilt.
  auto o = Open(*ep0);
  EXPECT_EQ(Cfg(o.dev(), p::kInterruptLine, 1), 0u);
  Efd a;
  EXPECT_EQ(vb::ErrnoOf(Irqs(o.dev(), kEfdTrigger, 0, 0, 1, {a.fd})), 0);  // INTx: nothing else active
}

TEST_F(VfioPciDriverTest, HotResetInfoListsTheBusWithGroups) {
  auto o = Open(*ep0);
  auto info = driver.GetPciHotResetInfo(o.dev());
  ASSERT_TRUE(info.has_value());
  ASSERT_EQ(info->size(), 2u);
  const uint32_t gid = static_cast<uint32_t>(core.GroupOf(*ep0)->id());
  EXPECT_EQ((*info)[0].group_id, gid);
  EXPECT_EQ((*info)[0].bus, 2);
  EXPECT_EQ((*info)[0].devfn, hw::MakeDevfn(0, 0));
  EXPECT_EQ((*info)[1].devfn, hw::MakeDevfn(0, 1));
  EXPECT_EQ((*info)[1].group_id, gid);

  auto r = Open(*root_ep);
  EXPECT_EQ(vb::ErrnoOf(driver.GetPciHotResetInfo(r.dev())), ENODEV);
  GroupFile* g = r.group.get();
  EXPECT_EQ(vb::ErrnoOf(driver.PciHotReset(r.dev(), std::span<GroupFile* const>(&g, 1))), ENODEV);
}

TEST_F(VfioPciDriverTest, HotResetNeedsGroupsCoveringTheWholeSet) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  SetBar32(d, 2, devices::TestEndpoint::kRegScratch, 0x77);
  GroupFile* g = o.group.get();
  std::array<GroupFile*, 3> three{g, g, g};
  EXPECT_EQ(vb::ErrnoOf(driver.PciHotReset(d, {})), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(driver.PciHotReset(d, three)), EINVAL);  // more than the 2 affected
  // The edu's group does not cover the set's members.
  auto e = Open(*edu);
  GroupFile* eg = e.group.get();
  EXPECT_EQ(vb::ErrnoOf(driver.PciHotReset(d, std::span<GroupFile* const>(&eg, 1))), EINVAL);
  EXPECT_EQ(Bar32(d, 2, devices::TestEndpoint::kRegScratch), 0x77u);
  // Its own group covers both functions (one IOMMU group: multifunction without ACS).
  ASSERT_EQ(vb::ErrnoOf(driver.PciHotReset(d, std::span<GroupFile* const>(&g, 1))), 0);
  EXPECT_EQ(Bar32(d, 2, devices::TestEndpoint::kRegScratch), 0u);
}

TEST_F(VfioPciDriverTest, HotResetRefusedWhileAnAffectedDeviceIsNotBoundToVfioPci) {
  ASSERT_TRUE(machine.UnbindDriver(*plain1).has_value());
  auto o = Open(*plain0);
  GroupFile* g = o.group.get();
  EXPECT_EQ(vb::ErrnoOf(driver.PciHotReset(o.dev(), std::span<GroupFile* const>(&g, 1))), EINVAL);
  ASSERT_TRUE(machine.BindDriver(*plain1, driver).has_value());
  EXPECT_EQ(vb::ErrnoOf(driver.PciHotReset(o.dev(), std::span<GroupFile* const>(&g, 1))), 0);
}

}  // namespace
}  // namespace vfio::pci
