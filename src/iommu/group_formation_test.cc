// IOMMU group formation (reference §7): every worked outcome of §7.5 with exact membership and
// ids, probed both at boot (Machine::SetHooks probes in bus order: bridges before what is behind
// them) and by hot-plug in the listed order; the ACS predicates of §7.2; the platform rule; id
// allocation (lowest free, reused after hot-unplug); assignment of devices to IOMMU instances.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/fail_point.h"
#include "hw/machine.h"
#include "iommu/iommu_core.h"
#include "iommu/pci_acs.h"
#include "iommu/testing_topology.h"

namespace iommu {
namespace {

using testtopo::Fn;
using testtopo::GroupLayout;
using testtopo::Layout;
using testtopo::MakePci;

struct Plug {
  const char* bdf;
  Fn fn;
};

struct FormationCase {
  const char* name;
  std::vector<Plug> devices;  // in bus order: a bridge before what is behind it
  Layout expected;
};

Fn Ep() { return testtopo::Endpoint(); }

std::vector<FormationCase> Cases() {
  using namespace testtopo;
  return {
      {"RootPortWithAcsIsolatesSingleFunctionEndpoint",
       {{"00:01.0", RootPort(1).Acs()}, {"01:00.0", Ep()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}}},
      {"RootPortWithoutAcsTakesEverythingBehindItThroughASwitch",
       {{"00:01.0", RootPort(1)},
        {"01:00.0", UpstreamPort(2)},
        {"02:00.0", DownstreamPort(3).Acs()},
        {"03:00.0", Ep()},
        {"02:01.0", DownstreamPort(4).Acs()},
        {"04:00.0", Ep()}},
       {{0, {"00:01.0", "01:00.0", "02:00.0", "02:01.0", "03:00.0", "04:00.0"}}}},
      {"RootPortWithoutAcsJoinsEndpointsOnItsBus",
       {{"00:01.0", RootPort(1)}, {"01:00.0", Ep()}, {"01:01.0", Ep()}, {"00:02.0", RootPort(2).Acs()},
        {"02:00.0", Ep()}},
       {{0, {"00:01.0", "01:00.0", "01:01.0"}}, {1, {"00:02.0"}}, {2, {"02:00.0"}}}},
      {"MultifunctionWithoutAcsSharesOneGroup",
       {{"00:01.0", RootPort(1).Acs()}, {"01:00.0", Ep().Multi()}, {"01:00.1", Ep().Multi()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0", "01:00.1"}}}},
      {"MultifunctionWithAcsOnEveryFunctionSplits",
       {{"00:01.0", RootPort(1).Acs()}, {"01:00.0", Ep().Multi().Acs()}, {"01:00.1", Ep().Multi().Acs()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"01:00.1"}}}},
      {"FunctionOneWithAcsFunctionZeroWithout",
       {{"00:01.0", RootPort(1).Acs()}, {"01:00.0", Ep().Multi()}, {"01:00.1", Ep().Multi().Acs()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"01:00.1"}}}},
      {"FunctionWithAcsIsSkippedBetweenTwoWithout",
       {{"00:01.0", RootPort(1).Acs()},
        {"01:00.0", Ep().Multi()},
        {"01:00.1", Ep().Multi().Acs()},
        {"01:00.2", Ep().Multi()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0", "01:00.2"}}, {2, {"01:00.1"}}}},
      {"AcsWithAFlagDisabledDoesNotIsolate",
       {{"00:01.0", RootPort(1).Acs()},
        {"01:00.0", Ep().Multi().Acs(hw::kAcsIsolationFlags, hw::kAcsIsolationFlags & ~hw::kAcsRr)},
        {"01:00.1", Ep().Multi().Acs(hw::kAcsIsolationFlags, hw::kAcsIsolationFlags & ~hw::kAcsRr)}},
       {{0, {"00:01.0"}}, {1, {"01:00.0", "01:00.1"}}}},
      {"AcsFlagsNotImplementedCountAsSatisfied",
       {{"00:01.0", RootPort(1).Acs(hw::kAcsSv | hw::kAcsRr, hw::kAcsSv | hw::kAcsRr)},
        {"01:00.0", Ep()},
        {"01:01.0", Ep()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"01:01.0"}}}},
      {"ConventionalDevicesBehindPcieToPciBridgeJoinTheBridge",
       {{"00:01.0", RootPort(1).Acs()},
        {"01:00.0", PcieToPciBridge(2)},
        {"02:01.0", Conventional()},
        {"02:02.0", Conventional()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0", "02:01.0", "02:02.0"}}}},
      {"EverythingBelowAPcieToPciBridgeAliasesToIt",
       {{"00:01.0", RootPort(1).Acs()},
        {"01:00.0", PcieToPciBridge(2)},
        {"02:01.0", Conventional()},
        {"02:03.0", ConventionalBridge(3)},
        {"03:00.0", Conventional()},
        {"02:04.0", PciToPcieBridge(4)},
        {"04:00.0", Ep()},
        {"00:02.0", RootPort(5).Acs()},
        {"05:00.0", Ep()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0", "02:01.0", "02:03.0", "02:04.0", "03:00.0", "04:00.0"}},
        {2, {"00:02.0"}}, {3, {"05:00.0"}}}},
      {"SwitchDownstreamPortWithoutAcsGroupsWithItsEndpoint",
       {{"00:01.0", RootPort(1).Acs()},
        {"01:00.0", UpstreamPort(2)},
        {"02:00.0", DownstreamPort(3).Acs()},
        {"03:00.0", Ep()},
        {"02:01.0", DownstreamPort(4)},
        {"04:00.0", Ep()}},
       // The known weakness kept as Linux 6.1 has it: E2 could reach E1 peer-to-peer through
       // the switch (DP2 lacks ACS), yet E1 has a group of its own.
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"02:00.0"}}, {3, {"03:00.0"}}, {4, {"02:01.0", "04:00.0"}}}},
      {"RootComplexIntegratedEndpoints",
       {{"00:02.0", RcIntegratedEndpoint()},
        {"00:03.0", RcIntegratedEndpoint()},
        {"00:1d.0", RcIntegratedEndpoint().Multi().Acs()},
        {"00:1d.1", RcIntegratedEndpoint().Multi().Acs()},
        {"00:1f.0", RcIntegratedEndpoint().Multi()},
        {"00:1f.3", RcIntegratedEndpoint().Multi()}},
       {{0, {"00:02.0"}}, {1, {"00:03.0"}}, {2, {"00:1d.0"}}, {3, {"00:1d.1"}}, {4, {"00:1f.0", "00:1f.3"}}}},
      {"QuirkMakesRootPortWithoutAcsIsolated",
       {{"00:01.0", RootPort(1).Quirk(true)}, {"01:00.0", Ep()}, {"01:01.0", Ep()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"01:01.0"}}}},
      {"QuirkOverridesAnEnabledAcsCapability",
       {{"00:01.0", RootPort(1).Acs().Quirk(false)}, {"01:00.0", Ep()}},
       {{0, {"00:01.0", "01:00.0"}}}},
      {"QuirkIsolatesAMultifunctionDeviceWithoutAcs",
       {{"00:01.0", RootPort(1).Acs()}, {"01:00.0", Ep().Multi().Quirk(true)}, {"01:00.1", Ep().Multi().Quirk(true)}},
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"01:00.1"}}}},
      {"DmaAliasMaskJoinsThePeerEitherDirection",
       {{"00:01.0", RootPort(1).Acs()},
        {"01:00.0", Ep().Alias(0, 1)},  // a phantom function: nothing there, own group
        {"00:02.0", RootPort(2).Acs()},
        {"02:00.0", Ep()},
        {"02:01.0", Ep().Alias(0, 0)},  // we alias them
        {"00:03.0", RootPort(3).Acs()},
        {"03:00.0", Ep().Alias(1, 0)},  // they alias us
        {"03:01.0", Ep()}},
       {{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"00:02.0"}}, {3, {"02:00.0", "02:01.0"}},
        {4, {"00:03.0"}}, {5, {"03:00.0", "03:01.0"}}}},
  };
}

void PrintTo(const FormationCase& c, std::ostream* os) { *os << c.name; }

class FormationTest : public ::testing::TestWithParam<FormationCase> {};

TEST_P(FormationTest, BootProbeInBusOrderGivesExactGroupsAndIds) {
  IommuCore core;
  hw::Machine machine;  // destroyed first: removals reach a live core
  for (const Plug& p : GetParam().devices) ASSERT_TRUE(machine.AddPciDevice(MakePci(p.bdf, p.fn)).has_value()) << p.bdf;
  ASSERT_TRUE(machine.SetHooks(&core).has_value());
  EXPECT_EQ(GroupLayout(core), GetParam().expected);
}

TEST_P(FormationTest, HotPlugInListedOrderGivesTheSameGroups) {
  IommuCore core;
  hw::Machine machine;
  ASSERT_TRUE(machine.SetHooks(&core).has_value());
  for (const Plug& p : GetParam().devices) ASSERT_TRUE(machine.AddPciDevice(MakePci(p.bdf, p.fn)).has_value()) << p.bdf;
  EXPECT_EQ(GroupLayout(core), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(Section75, FormationTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- fixtures for the non-table tests ----

class CoreTest : public ::testing::Test {
 protected:
  hw::PciDevice* Add(const char* bdf, const Fn& fn) {
    auto r = machine.AddPciDevice(MakePci(bdf, fn));
    EXPECT_TRUE(r.has_value()) << bdf << ": " << (r.has_value() ? "" : r.error().ToString());
    return r.has_value() ? *r : nullptr;
  }
  void SetUp() override { ASSERT_TRUE(machine.SetHooks(&core).has_value()); }

  IommuCore core;
  hw::Machine machine;
};

TEST(AliasTest, AliasChainIsFollowedThroughAnUnprobedMiddleDevice) {
  // C (01:01.0) aliases B (01:02.0), B aliases A (01:00.0). Boot probes by devfn: A, C, B. When C
  // probes, B is on the bus without a group yet, and the recursion through B reaches A's group.
  IommuCore core;
  hw::Machine m;
  ASSERT_TRUE(m.AddPciDevice(MakePci("00:01.0", testtopo::RootPort(1).Acs())).has_value());
  ASSERT_TRUE(m.AddPciDevice(MakePci("01:00.0", Ep())).has_value());
  ASSERT_TRUE(m.AddPciDevice(MakePci("01:01.0", Ep().Alias(2, 0))).has_value());
  ASSERT_TRUE(m.AddPciDevice(MakePci("01:02.0", Ep().Alias(0, 0))).has_value());
  ASSERT_TRUE(m.SetHooks(&core).has_value());
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {1, {"01:00.0", "01:01.0", "01:02.0"}}}));
}

TEST_F(CoreTest, FunctionZeroProbedAfterFunctionOneStillJoinsIt) {
  Add("00:01.0", testtopo::RootPort(1).Acs());
  Add("01:00.1", Ep().Multi());
  Add("01:00.0", Ep().Multi());
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {1, {"01:00.0", "01:00.1"}}}));
}

TEST(PciAcsTest, PredicatesFollowSection72) {
  using namespace testtopo;
  hw::Machine m;
  auto rp = *m.AddPciDevice(MakePci("00:01.0", RootPort(1).Acs()));
  auto rp_partial = *m.AddPciDevice(MakePci("00:02.0", RootPort(2).Acs(hw::kAcsIsolationFlags, hw::kAcsSv)));
  auto rp_none = *m.AddPciDevice(MakePci("00:03.0", RootPort(3)));
  auto ep = *m.AddPciDevice(MakePci("01:00.0", Ep()));
  auto mf = *m.AddPciDevice(MakePci("02:00.0", Ep().Multi()));
  auto pb = *m.AddPciDevice(MakePci("03:00.0", PcieToPciBridge(4).Acs()));
  auto conv = *m.AddPciDevice(MakePci("04:00.0", Conventional()));
  EXPECT_TRUE(PciAcsEnabled(*rp, hw::kAcsIsolationFlags));
  EXPECT_FALSE(PciAcsEnabled(*rp_partial, hw::kAcsIsolationFlags));
  EXPECT_FALSE(PciAcsEnabled(*rp_none, hw::kAcsIsolationFlags));
  EXPECT_TRUE(PciAcsEnabled(*ep, hw::kAcsIsolationFlags));   // single function: not applicable
  EXPECT_FALSE(PciAcsEnabled(*mf, hw::kAcsIsolationFlags));  // multifunction without ACS
  EXPECT_FALSE(PciAcsEnabled(*pb, hw::kAcsIsolationFlags));  // PCIe-to-PCI: never, ACS or not
  EXPECT_FALSE(PciAcsEnabled(*conv, hw::kAcsIsolationFlags));
  // EC is demanded when asked even if the capability does not implement it.
  EXPECT_FALSE(PciAcsEnabled(*rp, hw::kAcsIsolationFlags | hw::kAcsEc));
  EXPECT_TRUE(PciAcsPathEnabled(*ep, hw::kAcsIsolationFlags));
  EXPECT_FALSE(PciAcsPathEnabled(*mf, hw::kAcsIsolationFlags));
  EXPECT_FALSE(PciAcsPathEnabled(*conv, hw::kAcsIsolationFlags));
}

// ---- platform devices ----

TEST_F(CoreTest, PlatformDeviceGetsItsOwnGroupOrJoinsTheNamedPciFunction) {
  Add("00:01.0", testtopo::RootPort(1).Acs());
  hw::PciDevice* ep = Add("01:00.0", Ep());
  ASSERT_TRUE(machine.AddPlatformDevice(vb::MakeRef<hw::PlatformDevice>("alone", 7)).has_value());
  ASSERT_TRUE(machine.AddPlatformDevice(vb::MakeRef<hw::PlatformDevice>("smmu-client0", 8, "0000:01:00.0")).has_value());
  EXPECT_EQ(GroupLayout(core),
            (Layout{{0, {"00:01.0"}}, {1, {"01:00.0", "platform:smmu-client0"}}, {2, {"platform:alone"}}}));
  // The group spans two buses; both members translate through the same domain.
  auto g = core.GroupOf(*ep);
  ASSERT_TRUE(g);
  auto client = machine.FindDevice("platform:smmu-client0");
  EXPECT_EQ(core.GroupOf(*client), g);
  EXPECT_EQ(client->dma().translation(), ep->dma().translation());
}

TEST_F(CoreTest, PciFunctionProbedAfterItsStreamSharingPlatformDeviceJoinsIt) {
  Add("00:01.0", testtopo::RootPort(1).Acs());
  ASSERT_TRUE(machine.AddPlatformDevice(vb::MakeRef<hw::PlatformDevice>("smmu-client0", 8, "0000:01:00.0")).has_value());
  Add("01:00.0", Ep());
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {1, {"01:00.0", "platform:smmu-client0"}}}));
}

TEST_F(CoreTest, ReplugedPciFunctionRejoinsItsStreamSharingPlatformDevice) {
  Add("00:01.0", testtopo::RootPort(1).Acs());
  hw::PciDevice* ep = Add("01:00.0", Ep());
  ASSERT_TRUE(machine.AddPlatformDevice(vb::MakeRef<hw::PlatformDevice>("smmu-client0", 8, "0000:01:00.0")).has_value());
  Add("00:02.0", testtopo::RootPort(2).Acs());
  ASSERT_TRUE(machine.RemoveDevice(*ep).has_value());
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {1, {"platform:smmu-client0"}}, {2, {"00:02.0"}}}));
  Add("01:00.0", Ep());
  EXPECT_EQ(GroupLayout(core),
            (Layout{{0, {"00:01.0"}}, {1, {"01:00.0", "platform:smmu-client0"}}, {2, {"00:02.0"}}}));
}

TEST(PlatformTest, BootProbeOrderIsPciInBusOrderThenPlatform) {
  IommuCore boot;
  hw::Machine m;
  ASSERT_TRUE(m.AddPlatformDevice(vb::MakeRef<hw::PlatformDevice>("smmu-client0", 8, "0000:01:00.0")).has_value());
  ASSERT_TRUE(m.AddPciDevice(MakePci("00:01.0", testtopo::RootPort(1).Acs())).has_value());
  ASSERT_TRUE(m.AddPciDevice(MakePci("01:00.0", Ep())).has_value());
  ASSERT_TRUE(m.SetHooks(&boot).has_value());
  EXPECT_EQ(GroupLayout(boot), (Layout{{0, {"00:01.0"}}, {1, {"01:00.0", "platform:smmu-client0"}}}));
}

// ---- ids ----

TEST_F(CoreTest, IdsAreLowestFreeAndReusedAfterHotUnplugAndReplug) {
  Add("00:01.0", testtopo::RootPort(1).Acs());
  hw::PciDevice* e1 = Add("01:00.0", Ep());
  Add("00:02.0", testtopo::RootPort(2).Acs());
  hw::PciDevice* e2 = Add("02:00.0", Ep());
  ASSERT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {1, {"01:00.0"}}, {2, {"00:02.0"}}, {3, {"02:00.0"}}}));

  ASSERT_TRUE(machine.RemoveDevice(*e1).has_value());
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {2, {"00:02.0"}}, {3, {"02:00.0"}}}));
  EXPECT_FALSE(core.FindGroup(1));
  Add("01:00.0", Ep());  // a new device object at the same address
  EXPECT_EQ(core.FindGroup(1)->Devices().at(0)->name(), "0000:01:00.0");

  // A group that is empty but still referenced keeps its id (as /dev/vfio/<id> would).
  vb::RefPtr<Group> held = core.GroupOf(*e2);
  ASSERT_TRUE(machine.RemoveDevice(*e2).has_value());
  EXPECT_FALSE(core.FindGroup(3));
  EXPECT_EQ(held->device_count(), 0u);
  hw::PciDevice* e2b = Add("02:00.0", Ep());
  EXPECT_EQ(core.GroupOf(*e2b)->id(), 4);
  held.reset();  // id 3 is free now
  hw::PciDevice* e3 = Add("02:01.0", Ep());
  EXPECT_EQ(core.GroupOf(*e3)->id(), 3);
}

TEST_F(CoreTest, RemovingOneMemberKeepsTheGroupAndItsId) {
  Add("00:01.0", testtopo::RootPort(1).Acs());
  hw::PciDevice* f0 = Add("01:00.0", Ep().Multi());
  hw::PciDevice* f1 = Add("01:00.1", Ep().Multi());
  vb::RefPtr<Group> g = core.GroupOf(*f0);
  vb::RefPtr<hw::Device> hold(f0);  // inspected after its removal
  ASSERT_TRUE(machine.RemoveDevice(*f0).has_value());
  EXPECT_EQ(core.FindGroup(1), g);
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {1, {"01:00.1"}}}));
  EXPECT_EQ(f0->dma().translation(), nullptr);  // a removed device cannot DMA
  EXPECT_FALSE(core.GroupOf(*f0));
  EXPECT_EQ(core.GroupOf(*f1), g);
}

TEST_F(CoreTest, RemovingABridgeRemovesItsSubtreeAndFreesTheirIds) {
  hw::PciDevice* rp = Add("00:01.0", testtopo::RootPort(1).Acs());
  hw::PciDevice* up = Add("01:00.0", testtopo::UpstreamPort(2));
  hw::PciDevice* dp = Add("02:00.0", testtopo::DownstreamPort(3).Acs());
  // hw::Machine keeps each removed bridge's bus, whose self() must stay valid memory: hold them.
  std::vector<vb::RefPtr<hw::Device>> bridges{vb::RefPtr<hw::Device>(rp), vb::RefPtr<hw::Device>(up),
                                              vb::RefPtr<hw::Device>(dp)};
  Add("03:00.0", Ep());
  Add("00:02.0", testtopo::RootPort(4).Acs());
  ASSERT_EQ(core.Groups().size(), 5u);
  ASSERT_TRUE(machine.RemoveDevice(*rp).has_value());
  EXPECT_EQ(GroupLayout(core), (Layout{{4, {"00:02.0"}}}));
  Add("00:03.0", testtopo::RootPort(5).Acs());
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:03.0"}}, {4, {"00:02.0"}}}));
}

TEST_F(CoreTest, FailedProbeLeavesNoGroupAndNoId) {
  Add("00:01.0", testtopo::RootPort(1).Acs());
  vb::FailInjector::ArmNth(1);
  auto r = machine.AddPciDevice(MakePci("01:00.0", Ep()));
  vb::FailInjector::Disarm();
  EXPECT_EQ(vb::ErrnoOf(r), ENOMEM);
  EXPECT_FALSE(machine.FindDevice("0000:01:00.0"));
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}}));
  Add("01:00.0", Ep());
  EXPECT_EQ(GroupLayout(core), (Layout{{0, {"00:01.0"}}, {1, {"01:00.0"}}}));
}

// ---- IOMMU instance assignment ----

TEST(AssignmentTest, RulesPickTheInstanceAndGroupsNeverSpanInstances) {
  IommuCore core;
  Iommu* smmu = *core.AddIommu("smmu0", IommuCaps{});
  Iommu* other = *core.AddIommu("dmar1", IommuCaps::X86());
  EXPECT_EQ(vb::ErrnoOf(core.AddIommu("smmu0", IommuCaps{})), EEXIST);
  core.AssignSubtree("0000:00:02.0", *smmu);
  core.AssignPciBus(3, *other);
  core.AssignDevice("platform:lone", *other);
  hw::Machine m;
  ASSERT_TRUE(m.SetHooks(&core).has_value());
  auto* rp1 = *m.AddPciDevice(MakePci("00:01.0", testtopo::RootPort(1).Acs()));
  auto* e1 = *m.AddPciDevice(MakePci("01:00.0", Ep()));
  auto* rp2 = *m.AddPciDevice(MakePci("00:02.0", testtopo::RootPort(2).Acs()));
  auto* e2 = *m.AddPciDevice(MakePci("02:00.0", Ep()));
  auto* rp3 = *m.AddPciDevice(MakePci("00:03.0", testtopo::RootPort(3).Acs()));
  auto* e3 = *m.AddPciDevice(MakePci("03:00.0", Ep()));
  auto* lone = *m.AddPlatformDevice(vb::MakeRef<hw::PlatformDevice>("lone", 1));
  EXPECT_EQ(core.IommuOf(*rp1), &core.default_iommu());
  EXPECT_EQ(core.IommuOf(*e1), &core.default_iommu());
  EXPECT_EQ(core.IommuOf(*rp2), smmu);
  EXPECT_EQ(core.IommuOf(*e2), smmu);
  EXPECT_EQ(core.IommuOf(*rp3), &core.default_iommu());  // the bus rule covers bus 3, not 00:03.0
  EXPECT_EQ(core.IommuOf(*e3), other);
  EXPECT_EQ(core.IommuOf(*lone), other);
  EXPECT_EQ(core.GroupOf(*e2)->iommu().name(), "smmu0");

  // A device that would have to join a group of another instance does not probe.
  core.AssignPciBus(4, *other);
  ASSERT_TRUE(m.AddPciDevice(MakePci("00:04.0", testtopo::RootPort(4))).has_value());  // no ACS
  EXPECT_EQ(vb::ErrnoOf(m.AddPciDevice(MakePci("04:00.0", Ep()))), EINVAL);
  EXPECT_FALSE(m.FindDevice("0000:04:00.0"));
}

}  // namespace
}  // namespace iommu
