// Test-only: a small machine with the VFIO stack on top, shared by the VFIO core and type1 tests.
// Topology (IOMMU "iommu0", x86-like, unless a test adds instances):
//   00:01.0 root port (ACS) → 01:00.0 endpoint                      group A: {01:00.0}
//   00:02.0 root port (ACS) → 02:00.0 + 02:00.1 multifunction, no ACS group B: {02:00.0, 02:00.1}
// Root ports are bound to "pcieport"; endpoints to vfio (BasicDriver) unless a test binds
// something else. Header-only; not part of vb_vfio.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "hw/machine.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"
#include "vfio/basic_driver.h"
#include "vfio/type1/type1_iommu.h"
#include "vfio/vfio.h"

namespace vfio::testing {

using iommu::testtopo::Endpoint;
using iommu::testtopo::MakePci;
using iommu::testtopo::RootPort;

// Stress loops scale down under sanitizers (CI sets VB_STRESS_SCALE).
inline int Scaled(int n) {
  const char* s = std::getenv("VB_STRESS_SCALE");
  double f = s ? std::atof(s) : 1.0;
  int r = static_cast<int>(n * f);
  return r < 1 ? 1 : r;
}

// The type1 backend of a container whose SET_IOMMU chose type1 (tests only: the container
// must outlive the reference).
inline type1::Iommu& Type1Of(Container& c) {
  type1::Iommu* out = nullptr;
  (void)c.WithBackendAs<type1::Iommu>([&](type1::Iommu& b) -> vb::Result<void> {
    out = &b;
    return vb::Ok();
  });
  return *out;
}

class VfioFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(machine.SetHooks(&core).has_value());
    Plug("00:01.0", RootPort(1).Acs(), &pcieport);
    Plug("01:00.0", Endpoint(), &vfio_driver);
    Plug("00:02.0", RootPort(2).Acs(), &pcieport);
    Plug("02:00.0", Endpoint().Multi(), &vfio_driver);
    Plug("02:00.1", Endpoint().Multi(), &vfio_driver);
    vfio.RegisterBackend(type1);
  }
  void TearDown() override {
    // Unplug everything while the VFIO objects still exist.
    for (auto& d : machine.Devices()) (void)machine.RemoveDevice(*d);
    (void)machine.SetHooks(nullptr);
  }

  hw::Device* Plug(const std::string& bdf, const iommu::testtopo::Fn& fn, hw::Driver* driver) {
    auto dev = MakePci(bdf, fn);
    auto added = machine.AddPciDevice(dev);
    EXPECT_TRUE(added.has_value()) << bdf;
    if (driver) {
      EXPECT_TRUE(machine.BindDriver(*dev, *driver).has_value()) << bdf;
    }
    return dev.get();
  }
  hw::Device& Dev(const std::string& bdf) { return *machine.FindDevice("0000:" + bdf); }
  int GroupIdOf(const std::string& bdf) { return core.GroupOf(Dev(bdf))->id(); }

  // A group file attached to a fresh container with a type1 v2 backend.
  struct Attached {
    vb::RefPtr<Container> container;
    vb::RefPtr<GroupFile> group;
  };
  Attached AttachNew(const std::string& bdf, unsigned long type = type1::kExtType1v2) {
    Attached a;
    a.container = vfio.OpenContainer();
    auto g = vfio.OpenGroup(GroupIdOf(bdf));
    EXPECT_TRUE(g.has_value());
    if (!g) return a;
    a.group = *g;
    EXPECT_TRUE(a.group->SetContainer(a.container).has_value());
    EXPECT_TRUE(a.container->SetIommu(type).has_value());
    return a;
  }

  hw::Machine machine;
  iommu::IommuCore core;
  Vfio vfio{core};
  type1::Type1Backend type1;
  BasicDriver vfio_driver{vfio};
  hw::StubDriver pcieport{"pcieport", true};
  hw::StubDriver kernel_driver{"igb", false};
};

}  // namespace vfio::testing
