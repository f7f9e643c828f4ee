// Test-only: a machine with vfio-pci bound to real device models, plus small helpers for
// eventfds and region access. Topology (x86-like IOMMU "iommu0"):
//   00:01.0 root port (ACS) → 01:00.0 edu (conventional, alone on its bus: bus reset = function reset)
//   00:02.0 root port (ACS) → 02:00.0 + 02:00.1 test endpoints (multifunction, FLR, MSI-X)
//   00:03.0 root port (ACS) → 03:00.0 + 03:00.1 plain endpoints (no FLR, no PM): no reset method
//   00:04.0 test endpoint on the root bus (no bus reset possible)
// Header-only; not part of vb_vfio.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "devices/edu.h"
#include "devices/test_endpoint.h"
#include "hw/machine.h"
#include "hw/pci_regs.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"
#include "vfio/pci/vfio_pci_driver.h"
#include "vfio/type1/type1_iommu.h"
#include "vfio/vfio.h"

namespace vfio::pci::testing {

// A real eventfd the test owns.
struct Efd {
  Efd() : fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Efd() { close(fd); }
  Efd(const Efd&) = delete;
  Efd& operator=(const Efd&) = delete;
  // The counter (consumed), 0 when nothing was signalled.
  uint64_t Take() const {
    uint64_t v = 0;
    return read(fd, &v, sizeof v) == sizeof v ? v : 0;
  }
  // Waits up to `ms` for a signal; returns the counter (consumed) or 0.
  uint64_t Wait(int ms = 5000) const {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return 0;
    return Take();
  }
  int fd;
};

class VfioPciFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(machine.SetHooks(&core).has_value());
    Plug(iommu::testtopo::MakePci("00:01.0", iommu::testtopo::RootPort(1).Acs()), &pcieport);
    edu = devices::Edu::Create({0, 1, 0}).value();
    Plug(edu, &driver);
    Plug(iommu::testtopo::MakePci("00:02.0", iommu::testtopo::RootPort(2).Acs()), &pcieport);
    ep0 = devices::TestEndpoint::Create({0, 2, hw::MakeDevfn(0, 0)}, true).value();
    ep1 = devices::TestEndpoint::Create({0, 2, hw::MakeDevfn(0, 1)}, true).value();
    Plug(ep0, &driver);
    Plug(ep1, &driver);
    Plug(iommu::testtopo::MakePci("00:03.0", iommu::testtopo::RootPort(3).Acs()), &pcieport);
    plain0 = Plug(iommu::testtopo::MakePci("03:00.0", iommu::testtopo::Endpoint().Multi()), &driver);
    plain1 = Plug(iommu::testtopo::MakePci("03:00.1", iommu::testtopo::Endpoint().Multi()), &driver);
    root_ep = devices::TestEndpoint::Create({0, 0, hw::MakeDevfn(4, 0)}).value();
    Plug(root_ep, &driver);
    vfio.RegisterBackend(type1);
    vfio.set_request_interval(std::chrono::milliseconds(5));
  }
  void TearDown() override {
    for (auto& d : machine.Devices()) (void)machine.RemoveDevice(*d);
    (void)machine.SetHooks(nullptr);
  }
  hw::PciDevice* Plug(vb::RefPtr<hw::PciDevice> dev, hw::Driver* drv) {
    auto added = machine.AddPciDevice(dev);
    EXPECT_TRUE(added.has_value()) << dev->name();
    if (drv) {
      EXPECT_TRUE(machine.BindDriver(*dev, *drv).has_value()) << dev->name();
    }
    return dev.get();
  }

  // A container with type1 v2, the device's group in it, and the device opened.
  struct Opened {
    vb::RefPtr<Container> container;
    vb::RefPtr<GroupFile> group;
    vb::RefPtr<DeviceFile> file;
    Device& dev() const { return file->device(); }
  };
  Opened Open(hw::PciDevice& d) {
    Opened o;
    o.container = vfio.OpenContainer();
    auto g = vfio.OpenGroup(core.GroupOf(d)->id());
    EXPECT_TRUE(g.has_value()) << d.name();
    if (!g) return o;
    o.group = *g;
    EXPECT_TRUE(o.group->SetContainer(o.container).has_value());
    EXPECT_TRUE(o.container->SetIommu(type1::kExtType1v2).has_value());
    auto f = o.group->GetDevice(d.name());
    EXPECT_TRUE(f.has_value()) << d.name();
    if (f) o.file = *f;
    return o;
  }

  // Region access helpers.
  uint32_t Cfg(Device& dev, uint32_t off, unsigned size = 4) {
    uint32_t v = 0;
    auto r = driver.Read(dev, &v, size, RegionOffset(kRegionConfig) + off);
    EXPECT_EQ(vb::ErrnoOf(r), 0) << "config read at " << off;
    return v;
  }
  void SetCfg(Device& dev, uint32_t off, uint32_t v, unsigned size = 4) {
    auto r = driver.Write(dev, &v, size, RegionOffset(kRegionConfig) + off);
    EXPECT_EQ(vb::ErrnoOf(r), 0) << "config write at " << off;
  }
  uint32_t Bar32(Device& dev, int bar, uint64_t off) {
    uint32_t v = 0;
    auto r = driver.Read(dev, &v, 4, RegionOffset(bar) + off);
    EXPECT_EQ(vb::ErrnoOf(r), 0);
    return v;
  }
  void SetBar32(Device& dev, int bar, uint64_t off, uint32_t v) {
    auto r = driver.Write(dev, &v, 4, RegionOffset(bar) + off);
    EXPECT_EQ(vb::ErrnoOf(r), 0);
  }
  vb::Result<int> Irqs(Device& dev, uint32_t flags, uint32_t index, uint32_t start, uint32_t count,
                       std::vector<int32_t> fds = {}, std::vector<uint8_t> bools = {}) {
    SetIrqsRequest req{.flags = flags, .index = index, .start = start, .count = count};
    req.fds = fds;
    req.bools = bools;
    return driver.SetIrqs(dev, req);
  }

  hw::Machine machine;
  iommu::IommuCore core;
  Vfio vfio{core};
  type1::Type1Backend type1;
  VfioPciDriver driver{vfio};
  hw::StubDriver pcieport{"pcieport", true};
  vb::RefPtr<devices::Edu> edu;
  vb::RefPtr<devices::TestEndpoint> ep0, ep1, root_ep;
  hw::PciDevice* plain0 = nullptr;
  hw::PciDevice* plain1 = nullptr;
};

}  // namespace vfio::pci::testing
