#include "hw/machine.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "hw/pci_functions.h"
#include "hw/pci_regs.h"

namespace hw {
namespace {

class RecordingHooks : public PlatformHooks {
 public:
  vb::Result<void> DeviceAdded(Device& dev) override {
    std::lock_guard l(mu_);
    added.push_back(dev.name());
    if (fail_add == dev.name()) return vb::Err(ENOSPC, "test: probe refused");
    return vb::Ok();
  }
  void DeviceRemoved(Device& dev) override {
    std::lock_guard l(mu_);
    removed.push_back(dev.name());
  }
  vb::Result<void> DriverBinding(Device&, const Driver&) override { return vb::Ok(); }
  void DriverUnbound(Device&, const Driver&) override {}

  std::mutex mu_;
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::string fail_add;
};

vb::RefPtr<Endpoint> Ep(uint8_t bus, uint8_t dev, uint8_t fn, bool multifunction = false,
                        PcieType type = PcieType::kEndpoint) {
  EndpointConfig c;
  c.address = {0, bus, MakeDevfn(dev, fn)};
  c.vendor_id = 0x1234;
  c.device_id = 0x1;
  c.pcie_type = type;
  c.multifunction = multifunction;
  return Endpoint::Create(c).value();
}

TEST(MachineTest, AddPciDeviceErrors) {
  Machine m;
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(Ep(7, 0, 0))), ENODEV) << "no bus 7";
  auto a = Ep(0, 3, 0);
  ASSERT_TRUE(m.AddPciDevice(a).has_value());
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(Ep(0, 3, 0))), EEXIST) << "devfn taken";
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(Ep(0, 3, 1))), EINVAL) << "fn 0 is single-function";
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(a)), EINVAL) << "already plugged";
  ASSERT_TRUE(m.AddPciDevice(RootPort::Create({.address = {0, 0, MakeDevfn(1, 0)}, .secondary_bus = 1})).has_value());
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(RootPort::Create({.address = {0, 0, MakeDevfn(2, 0)}, .secondary_bus = 1}))),
            EEXIST)
      << "secondary bus number in use";
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(RootPort::Create({.address = {0, 0, MakeDevfn(2, 0)}, .secondary_bus = 0}))),
            EEXIST)
      << "the root bus number";
  // A single-function fn 0 cannot join a slot that already has other functions.
  ASSERT_TRUE(m.AddPciDevice(Ep(1, 0, 1, true)).has_value());
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(Ep(1, 0, 0, false))), EINVAL);
  ASSERT_TRUE(m.AddPciDevice(Ep(1, 0, 0, true)).has_value());
  EndpointConfig dom;
  dom.address = {1, 0, MakeDevfn(9, 0)};
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(Endpoint::Create(dom).value())), ENODEV) << "no PCI domain 1";
}

TEST(MachineTest, MultifunctionSlotHoldsSeveralFunctions) {
  Machine m;
  auto f0 = Ep(0, 5, 0, true);
  auto f1 = Ep(0, 5, 1, true);
  auto f7 = Ep(0, 5, 7, true);
  ASSERT_TRUE(m.AddPciDevice(f0).has_value());
  ASSERT_TRUE(m.AddPciDevice(f7).has_value());
  ASSERT_TRUE(m.AddPciDevice(f1).has_value());
  auto devs = m.root_bus()->devices();
  ASSERT_EQ(devs.size(), 3u);
  EXPECT_EQ(devs[0]->name(), "0000:00:05.0");
  EXPECT_EQ(devs[1]->name(), "0000:00:05.1");
  EXPECT_EQ(devs[2]->name(), "0000:00:05.7");
  EXPECT_EQ(f1->ConfigRead(pci::kHeaderType, 1).value(), 0x80u);
}

TEST(MachineTest, HotUnplugOfABridgeRemovesTheSubtreeDeepestFirstAndFreesItsBusNumbers) {
  Machine m;
  RecordingHooks hooks;
  ASSERT_TRUE(m.SetHooks(&hooks).has_value());
  auto rp = RootPort::Create({.address = {0, 0, MakeDevfn(1, 0)}, .secondary_bus = 1});
  auto up = SwitchUpstreamPort::Create({.address = {0, 1, 0}, .secondary_bus = 2});
  auto d0 = SwitchDownstreamPort::Create({.address = {0, 2, MakeDevfn(0, 0)}, .secondary_bus = 3});
  auto d1 = SwitchDownstreamPort::Create({.address = {0, 2, MakeDevfn(1, 0)}, .secondary_bus = 4});
  auto e3 = Ep(3, 0, 0);
  auto e4 = Ep(4, 0, 0);
  for (vb::RefPtr<PciDevice> d : std::vector<vb::RefPtr<PciDevice>>{rp, up, d0, d1, e3, e4})
    ASSERT_TRUE(m.AddPciDevice(d).has_value()) << d->name();
  EXPECT_EQ(m.PciDevices().size(), 6u);
  EXPECT_EQ(m.FindBus(4)->self(), d1.get());

  ASSERT_TRUE(m.RemoveDevice(*rp).has_value());
  // Every child before its parent.
  auto pos = [&](const std::string& n) {
    return std::find(hooks.removed.begin(), hooks.removed.end(), n) - hooks.removed.begin();
  };
  ASSERT_EQ(hooks.removed.size(), 6u);
  EXPECT_LT(pos("0000:04:00.0"), pos("0000:02:01.0"));
  EXPECT_LT(pos("0000:03:00.0"), pos("0000:02:00.0"));
  EXPECT_LT(pos("0000:02:00.0"), pos("0000:01:00.0"));
  EXPECT_LT(pos("0000:02:01.0"), pos("0000:01:00.0"));
  EXPECT_EQ(hooks.removed.back(), "0000:00:01.0");
  for (PciDevice* d : std::initializer_list<PciDevice*>{rp.get(), up.get(), d0.get(), d1.get()}) EXPECT_EQ(d->state(), DeviceState::kRemoved);
  EXPECT_EQ(e3->state(), DeviceState::kRemoved);
  EXPECT_TRUE(m.PciDevices().empty());
  EXPECT_EQ(m.FindBus(1), nullptr);
  EXPECT_EQ(m.FindBus(3), nullptr);
  EXPECT_EQ(vb::ErrnoOf(m.RemoveDevice(*rp)), ENODEV) << "already removed";

  // Bus numbers can be used again by a new hot-plugged bridge.
  auto rp2 = RootPort::Create({.address = {0, 0, MakeDevfn(1, 0)}, .secondary_bus = 3});
  ASSERT_TRUE(m.AddPciDevice(rp2).has_value());
  auto e = Ep(3, 0, 0);
  ASSERT_TRUE(m.AddPciDevice(e).has_value());
  EXPECT_EQ(m.FindBus(3)->self(), rp2.get());
  EXPECT_EQ(e->bus(), m.FindBus(3));
  EXPECT_EQ(rp2->ConfigRead(pci::kSecondaryBus, 1).value(), 3u);
  ASSERT_TRUE(m.SetHooks(nullptr).has_value());
}

TEST(MachineTest, SurpriseRemovalOfABridgeDisconnectsEverythingBelow) {
  Machine m;
  auto rp = RootPort::Create({.address = {0, 0, MakeDevfn(1, 0)}, .secondary_bus = 1});
  auto e = Ep(1, 0, 0);
  ASSERT_TRUE(m.AddPciDevice(rp).has_value());
  ASSERT_TRUE(m.AddPciDevice(e).has_value());
  ASSERT_TRUE(m.RemoveDevice(*rp, RemovalKind::kSurprise).has_value());
  EXPECT_TRUE(e->disconnected());
  EXPECT_EQ(e->ConfigRead(0, 4).value(), 0xffffffffu);
  EXPECT_EQ(rp->ConfigRead(0, 4).value(), 0xffffffffu);
}

TEST(MachineTest, FailedProbeUnlinksTheDevice) {
  Machine m;
  RecordingHooks hooks;
  hooks.fail_add = "0000:00:04.0";
  ASSERT_TRUE(m.SetHooks(&hooks).has_value());
  auto e = Ep(0, 4, 0);
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(e)), ENOSPC);
  EXPECT_EQ(e->state(), DeviceState::kRemoved);
  EXPECT_EQ(m.root_bus()->FindDevfn(MakeDevfn(4, 0)), nullptr);
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(Ep(0, 4, 0))), ENOSPC) << "the slot is free again; the hook refuses";
  hooks.fail_add.clear();
  EXPECT_TRUE(m.AddPciDevice(Ep(0, 4, 0)).has_value());
  ASSERT_TRUE(m.SetHooks(nullptr).has_value());
}

TEST(MachineTest, PlatformDevicesAreListedAfterPciAndNamesAreUnique) {
  Machine m;
  ASSERT_TRUE(m.AddPciDevice(Ep(0, 2, 0)).has_value());
  ASSERT_TRUE(m.AddPlatformDevice(vb::MakeRef<PlatformDevice>("dma0", 0x40)).has_value());
  EXPECT_EQ(vb::ErrnoOf(m.AddPlatformDevice(vb::MakeRef<PlatformDevice>("dma0", 0x41))), EEXIST);
  auto all = m.Devices();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]->name(), "0000:00:02.0");
  EXPECT_EQ(all[1]->name(), "platform:dma0");
  EXPECT_EQ(all[1]->requester_id(), 0x40u);
}

}  // namespace
}  // namespace hw
