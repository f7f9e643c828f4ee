// intel-iommu's debugfs domain_translation_struct as 6.1 prints it, from vfiobox's page tables:
// the exact text for 4 KiB pages, a 2 MiB and a 1 GiB superpage (PDE/PTE columns 0 below a
// superpage), read/write/snoop bits, a 39-bit (3-level) unit, and only dmar-kind units.
#include "iommu/dmar_debugfs.h"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>

#include "hw/machine.h"
#include "iommu/domain.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"

namespace iommu {
namespace {

using testtopo::MakePci;

std::string Hex(const char* fmt, uint64_t v) {
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}
std::string Line(uint64_t iova, uint64_t e5, uint64_t e4, uint64_t e3, uint64_t e2, uint64_t e1) {
  return Hex("0x%013" PRIx64, iova >> 12) + " |\t" + Hex("0x%016" PRIx64, e5) + "\t" + Hex("0x%016" PRIx64, e4) +
         "\t" + Hex("0x%016" PRIx64, e3) + "\t" + Hex("0x%016" PRIx64, e2) + "\t" + Hex("0x%016" PRIx64, e1) + "\n";
}
const char kHeader[] = "IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\n";

class DmarDebugfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(machine.SetHooks(&core).has_value());
    ep = *machine.AddPciDevice(MakePci("00:02.0", testtopo::Endpoint()));
    group = core.GroupOf(*ep);
    ASSERT_TRUE(group);
    ASSERT_TRUE(group->ClaimDmaOwner(this).has_value());
  }
  void TearDown() override {
    if (domain) (void)group->DetachDomain(*domain);
    group->ReleaseDmaOwner(this);
    domain.reset();
    for (auto& d : machine.Devices()) (void)machine.RemoveDevice(*d);
    (void)machine.SetHooks(nullptr);
  }
  std::string Dump() { return DmarDomainTranslationStruct(core, machine.PciDevices()); }

  IommuCore core;  // default instance: X86() caps, a dmar-kind unit with 48 address bits
  hw::Machine machine;
  hw::PciDevice* ep = nullptr;
  vb::RefPtr<Group> group;
  std::unique_ptr<Domain> domain;
};

TEST_F(DmarDebugfsTest, PagesAndSuperpagesAs61PrintsThem) {
  domain = *group->iommu().AllocDomain(DomainType::kPaging);
  ASSERT_TRUE(domain->EnforceCacheCoherency());
  ASSERT_TRUE(group->AttachDomain(*domain).has_value());
  const uint64_t kPhys = 0x7f0040000000;  // 1 GiB aligned: never dereferenced here
  ASSERT_TRUE(domain->Map(0x1000, kPhys + 0x5000, 0x2000, kProtRead | kProtWrite).has_value());
  ASSERT_TRUE(domain->Map(0x200000, kPhys + 0x200000, 0x200000, kProtWrite).has_value());
  ASSERT_TRUE(domain->Map(0x40000000, kPhys, 0x40000000, kProtRead).has_value());

  // Walk the table for the addresses the dump must show.
  std::vector<IoPageTable::LeafVisit> leaves;
  domain->page_table()->ForEachLeaf([&](const IoPageTable::LeafVisit& v) { leaves.push_back(v); });
  ASSERT_EQ(leaves.size(), 4u);
  const uint64_t rw = 0x3, snp = 1ull << 11, ps = 1ull << 7;
  auto frame = [](uintptr_t t) { return uint64_t{t} & ~uint64_t{0xfff}; };
  const uint64_t l2 = frame(leaves[0].tables[2]) | rw, l1 = frame(leaves[0].tables[1]) | rw,
                 l0 = frame(leaves[0].tables[0]) | rw;
  std::string want = "Device 0000:00:02.0 " + Hex("@0x%" PRIx64, frame(domain->page_table()->root_address())) + "\n" +
                     kHeader +
                     Line(0x1000, 0, l2, l1, l0, (kPhys + 0x5000) | rw | snp) +
                     Line(0x2000, 0, l2, l1, l0, (kPhys + 0x6000) | rw | snp) +
                     // write-only: 6.1's present bit makes it readable (bit 0 set)
                     Line(0x200000, 0, l2, l1, (kPhys + 0x200000) | rw | ps | snp, 0) +
                     Line(0x40000000, 0, l2, (kPhys) | 0x1 | ps | snp, 0, 0) + "\n";
  EXPECT_EQ(Dump(), want);
}

TEST_F(DmarDebugfsTest, BlockedDomainPrintsTheHeaderOnlyAndSmmuUnitsNothing) {
  // Owned and attached to nothing: the blocking domain, no entries.
  const std::string dump = Dump();
  EXPECT_EQ(dump.rfind("Device 0000:00:02.0 @0x", 0), 0u) << dump;
  EXPECT_NE(dump.find(std::string("\n") + kHeader + "\n"), std::string::npos) << dump;
  EXPECT_EQ(dump.find(" |\t"), std::string::npos) << dump;

  IommuCaps strict;
  strict.kind = IommuKind::kSmmu;
  Iommu* smmu = *core.AddIommu("smmu0", strict);
  core.AssignDevice("0000:00:03.0", *smmu);
  ASSERT_TRUE(machine.AddPciDevice(MakePci("00:03.0", testtopo::Endpoint())).has_value());
  EXPECT_EQ(Dump(), dump) << "an smmu-kind unit's devices are not in intel-iommu's file";
}

TEST_F(DmarDebugfsTest, ThirtyNineBitUnitWalksThreeLevels) {
  IommuCaps caps = IommuCaps::X86();
  caps.aperture_last = (1ull << 39) - 1;
  Iommu* narrow = *core.AddIommu("dmar1", caps);
  core.AssignDevice("0000:00:04.0", *narrow);
  hw::PciDevice* dev = *machine.AddPciDevice(MakePci("00:04.0", testtopo::Endpoint()));
  vb::RefPtr<Group> g = core.GroupOf(*dev);
  ASSERT_TRUE(g->ClaimDmaOwner(this).has_value());
  auto d = *narrow->AllocDomain(DomainType::kPaging);
  ASSERT_TRUE(g->AttachDomain(*d).has_value());
  ASSERT_TRUE(d->Map(0x3000, 0x7f0000003000, 0x1000, kProtRead).has_value());
  std::vector<IoPageTable::LeafVisit> leaves;
  d->page_table()->ForEachLeaf([&](const IoPageTable::LeafVisit& v) { leaves.push_back(v); });
  ASSERT_EQ(leaves.size(), 1u);
  const std::string dump = Dump();
  auto frame = [](uintptr_t t) { return uint64_t{t} & ~uint64_t{0xfff}; };
  const std::string want = "Device 0000:00:04.0 " + Hex("@0x%" PRIx64, frame(leaves[0].tables[2])) + "\n" + kHeader +
                           Line(0x3000, 0, 0, frame(leaves[0].tables[1]) | 0x3, frame(leaves[0].tables[0]) | 0x3,
                                0x7f0000003000 | 0x1) +
                           "\n";
  EXPECT_NE(dump.find(want), std::string::npos) << dump;
  (void)g->DetachDomain(*d);
  g->ReleaseDmaOwner(this);
}

}  // namespace
}  // namespace iommu
