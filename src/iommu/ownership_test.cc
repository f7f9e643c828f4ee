// DMA ownership (reference §2.2), domain attach rules (§7.6), and DMA through the domains a group
// can be in: default identity, blocking (faults logged), an attached paging domain.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/fail_point.h"
#include "hw/machine.h"
#include "iommu/domain.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"

namespace iommu {
namespace {

using testtopo::MakePci;

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size(n), p(static_cast<uint8_t*>(std::aligned_alloc(kPage4K, n))) {
    std::memset(p, 0, n);
  }
  ~AlignedBuffer() { std::free(p); }
  uint64_t addr() const { return reinterpret_cast<uintptr_t>(p); }
  size_t size;
  uint8_t* p;
};

class OwnershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(machine.SetHooks(&core).has_value());
    // Group 0: the root port. Group 1: a two-function device without ACS (f0, f1).
    rp = *machine.AddPciDevice(MakePci("00:01.0", testtopo::RootPort(1).Acs()));
    f0 = *machine.AddPciDevice(MakePci("01:00.0", testtopo::Endpoint().Multi()));
    f1 = *machine.AddPciDevice(MakePci("01:00.1", testtopo::Endpoint().Multi()));
    group = core.GroupOf(*f0);
    ASSERT_TRUE(group);
    ASSERT_EQ(group->device_count(), 2u);
  }

  hw::StubDriver kernel_driver{"e1000e", /*managed_dma=*/false};
  hw::StubDriver kernel_driver2{"igb", /*managed_dma=*/false};
  hw::StubDriver pci_stub{"pci-stub", /*managed_dma=*/true};
  hw::StubDriver vfio_pci{"vfio-pci", /*managed_dma=*/true};
  hw::StubDriver pcieport{"pcieport", /*managed_dma=*/true};
  const int vfio_group_token = 0;
  const void* owner = &vfio_group_token;

  IommuCore core;
  hw::Machine machine;
  hw::PciDevice* rp = nullptr;
  hw::PciDevice* f0 = nullptr;
  hw::PciDevice* f1 = nullptr;
  vb::RefPtr<Group> group;
};

TEST_F(OwnershipTest, ClaimFailsWithEpermWhileADmaApiDriverIsBound) {
  ASSERT_TRUE(machine.BindDriver(*f1, kernel_driver).has_value());
  EXPECT_TRUE(group->DmaOwnerClaimed());
  EXPECT_EQ(vb::ErrnoOf(group->ClaimDmaOwner(owner)), EPERM);
  EXPECT_EQ(group->current_domain_type(), group->default_domain().type());
  ASSERT_TRUE(machine.UnbindDriver(*f1).has_value());
  EXPECT_FALSE(group->DmaOwnerClaimed());
  EXPECT_TRUE(group->ClaimDmaOwner(owner).has_value());
}

TEST_F(OwnershipTest, DriverManagedDmaDriversDoNotCount) {
  ASSERT_TRUE(machine.BindDriver(*f0, vfio_pci).has_value());
  ASSERT_TRUE(machine.BindDriver(*f1, pci_stub).has_value());
  ASSERT_TRUE(machine.BindDriver(*rp, pcieport).has_value());
  EXPECT_FALSE(group->DmaOwnerClaimed());
  EXPECT_EQ(group->owner_count(), 0u);
  EXPECT_TRUE(group->ClaimDmaOwner(owner).has_value());
  EXPECT_TRUE(core.GroupOf(*rp)->ClaimDmaOwner(owner).has_value());
}

TEST_F(OwnershipTest, ClaimSwitchesToBlockingAndReleaseBackToDefault) {
  ASSERT_TRUE(group->ClaimDmaOwner(owner).has_value());
  EXPECT_TRUE(group->DmaOwnerClaimed());
  EXPECT_EQ(group->dma_owner(), owner);
  EXPECT_EQ(group->owner_count(), 1u);
  EXPECT_EQ(group->current_domain_type(), DomainType::kBlocked);
  EXPECT_EQ(f0->dma().translation(), nullptr);
  EXPECT_EQ(f1->dma().translation(), nullptr);
  // A second claim, by anyone, is refused.
  int other = 0;
  EXPECT_EQ(vb::ErrnoOf(group->ClaimDmaOwner(&other)), EPERM);
  EXPECT_EQ(vb::ErrnoOf(group->ClaimDmaOwner(owner)), EPERM);
  // Release by a stranger is ignored.
  group->ReleaseDmaOwner(&other);
  EXPECT_TRUE(group->DmaOwnerClaimed());
  group->ReleaseDmaOwner(owner);
  EXPECT_FALSE(group->DmaOwnerClaimed());
  EXPECT_EQ(group->dma_owner(), nullptr);
  EXPECT_EQ(group->current_domain_type(), group->default_domain().type());
  EXPECT_EQ(f0->dma().translation(), group->default_domain().translation());
  EXPECT_NE(f0->dma().translation(), nullptr);
}

TEST_F(OwnershipTest, KernelDriverBindIntoAnOwnedGroupFailsWithEbusy) {
  ASSERT_TRUE(group->ClaimDmaOwner(owner).has_value());
  EXPECT_EQ(vb::ErrnoOf(machine.BindDriver(*f1, kernel_driver)), EBUSY);
  EXPECT_EQ(f1->driver(), nullptr);
  // Drivers that manage DMA themselves still bind.
  EXPECT_TRUE(machine.BindDriver(*f1, pci_stub).has_value());
  EXPECT_TRUE(machine.BindDriver(*f0, vfio_pci).has_value());
  EXPECT_EQ(group->owner_count(), 1u);
  // Another group is unaffected.
  EXPECT_TRUE(machine.BindDriver(*rp, kernel_driver).has_value());
  group->ReleaseDmaOwner(owner);
  ASSERT_TRUE(machine.UnbindDriver(*f1).has_value());
  EXPECT_TRUE(machine.BindDriver(*f1, kernel_driver2).has_value());
  EXPECT_EQ(group->owner_count(), 1u);
}

TEST_F(OwnershipTest, KernelDriversCountPerBindAndUnbind) {
  ASSERT_TRUE(machine.BindDriver(*f0, kernel_driver).has_value());
  ASSERT_TRUE(machine.BindDriver(*f1, kernel_driver2).has_value());
  EXPECT_EQ(group->owner_count(), 2u);
  ASSERT_TRUE(machine.UnbindDriver(*f0).has_value());
  EXPECT_EQ(vb::ErrnoOf(group->ClaimDmaOwner(owner)), EPERM);
  // Hot-unplug unbinds first: the count drops with it.
  ASSERT_TRUE(machine.RemoveDevice(*f1).has_value());
  EXPECT_EQ(group->owner_count(), 0u);
  EXPECT_TRUE(group->ClaimDmaOwner(owner).has_value());
}

TEST_F(OwnershipTest, AttachRequiresDefaultOrBlockingAndTheSameIommu) {
  Iommu* other_iommu = *core.AddIommu("smmu0", IommuCaps{});
  std::unique_ptr<Domain> a = *core.default_iommu().AllocDomain(DomainType::kPaging);
  std::unique_ptr<Domain> b = *core.default_iommu().AllocDomain(DomainType::kPaging);
  std::unique_ptr<Domain> foreign = *other_iommu->AllocDomain(DomainType::kPaging);

  ASSERT_TRUE(group->ClaimDmaOwner(owner).has_value());
  EXPECT_EQ(vb::ErrnoOf(group->AttachDomain(*foreign)), EINVAL);
  EXPECT_EQ(group->current_domain_type(), DomainType::kBlocked);
  ASSERT_TRUE(group->AttachDomain(*a).has_value());
  EXPECT_TRUE(group->IsCurrentDomain(*a));
  EXPECT_EQ(a->attached_groups(), 1);
  EXPECT_EQ(f0->dma().translation(), a->translation());
  EXPECT_EQ(f1->dma().translation(), a->translation());
  // Busy with `a`: neither another domain nor `a` again; EBUSY is checked before compatibility.
  EXPECT_EQ(vb::ErrnoOf(group->AttachDomain(*b)), EBUSY);
  EXPECT_EQ(vb::ErrnoOf(group->AttachDomain(*a)), EBUSY);
  EXPECT_EQ(vb::ErrnoOf(group->AttachDomain(*foreign)), EBUSY);
  EXPECT_EQ(vb::ErrnoOf(group->DetachDomain(*b)), EINVAL);
  ASSERT_TRUE(group->DetachDomain(*a).has_value());
  EXPECT_EQ(a->attached_groups(), 0);
  EXPECT_EQ(group->current_domain_type(), DomainType::kBlocked);  // still owned
  ASSERT_TRUE(group->AttachDomain(*b).has_value());
  group->ReleaseDmaOwner(owner);  // release returns to the default domain even with b attached
  EXPECT_EQ(group->current_domain_type(), group->default_domain().type());
  EXPECT_EQ(b->attached_groups(), 0);
}

TEST_F(OwnershipTest, UnownedAttachDetachReturnsToDefaultAndBlocksClaimAndDrivers) {
  std::unique_ptr<Domain> a = *core.default_iommu().AllocDomain(DomainType::kPaging);
  ASSERT_TRUE(group->AttachDomain(*a).has_value());
  EXPECT_EQ(vb::ErrnoOf(group->ClaimDmaOwner(owner)), EBUSY);
  EXPECT_EQ(vb::ErrnoOf(machine.BindDriver(*f0, kernel_driver)), EBUSY);
  ASSERT_TRUE(group->DetachDomain(*a).has_value());
  EXPECT_EQ(group->current_domain_type(), group->default_domain().type());
  EXPECT_TRUE(machine.BindDriver(*f0, kernel_driver).has_value());
}

TEST_F(OwnershipTest, DmaThroughAttachedPagingDomainReachesMappedMemory) {
  AlignedBuffer buf(2 * kPage4K);
  std::unique_ptr<Domain> d = *core.default_iommu().AllocDomain(DomainType::kPaging);
  constexpr uint64_t kIova = 0x100000;
  ASSERT_TRUE(d->Map(kIova, buf.addr(), 2 * kPage4K, kProtRead | kProtWrite).has_value());
  ASSERT_TRUE(group->ClaimDmaOwner(owner).has_value());
  ASSERT_TRUE(group->AttachDomain(*d).has_value());

  const char msg[] = "hello through the iommu";
  ASSERT_TRUE(f1->dma().Write(kIova + kPage4K - 4, msg, sizeof msg).has_value());  // crosses a page
  EXPECT_EQ(std::memcmp(buf.p + kPage4K - 4, msg, sizeof msg), 0);
  char back[sizeof msg] = {};
  ASSERT_TRUE(f0->dma().Read(kIova + kPage4K - 4, back, sizeof back).has_value());
  EXPECT_STREQ(back, msg);

  // An unmapped iova faults, writes nothing, and is logged against the requester.
  core.default_iommu().fault_log().Clear();
  uint8_t junk[16];
  std::memset(junk, 0xab, sizeof junk);
  EXPECT_EQ(vb::ErrnoOf(f1->dma().Write(kIova + 2 * kPage4K - 8, junk, sizeof junk)), EFAULT);
  EXPECT_EQ(buf.p[2 * kPage4K - 8], 0);
  auto faults = core.default_iommu().fault_log().Snapshot();
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0].requester, "0000:01:00.1");
  EXPECT_EQ(faults[0].requester_id, 0x0101u);
  EXPECT_EQ(faults[0].iova, kIova + 2 * kPage4K);
  EXPECT_EQ(faults[0].access, hw::DmaAccess::kWrite);
  EXPECT_EQ(faults[0].reason, hw::DmaFaultReason::kNotMapped);

  ASSERT_TRUE(group->DetachDomain(*d).has_value());
  group->ReleaseDmaOwner(owner);
}

TEST_F(OwnershipTest, DmaThroughBlockingDomainFaultsAndIsLogged) {
  AlignedBuffer buf(kPage4K);
  ASSERT_TRUE(group->ClaimDmaOwner(owner).has_value());
  core.default_iommu().fault_log().Clear();
  const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(vb::ErrnoOf(f0->dma().Write(buf.addr(), data, sizeof data)), EFAULT);
  EXPECT_EQ(buf.p[0], 0);
  auto faults = core.default_iommu().fault_log().Snapshot();
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0].requester, "0000:01:00.0");
  EXPECT_EQ(faults[0].iova, buf.addr());
  EXPECT_EQ(faults[0].access, hw::DmaAccess::kWrite);
  EXPECT_EQ(faults[0].reason, hw::DmaFaultReason::kBlocked);
}

TEST_F(OwnershipTest, DefaultDmaDomainFaultsAStrayDma) {
  // The default domain is a translated DMA-API domain: nothing is mapped until a kernel driver
  // maps it, so a stray DMA faults instead of scribbling on the process.
  AlignedBuffer buf(kPage4K);
  const uint8_t data[4] = {9, 8, 7, 6};
  EXPECT_EQ(group->current_domain_type(), DomainType::kPaging);
  EXPECT_EQ(vb::ErrnoOf(f0->dma().Write(buf.addr() + 100, data, sizeof data)), EFAULT);
  EXPECT_EQ(buf.p[100], 0);
}

TEST_F(OwnershipTest, IdentityDomainDmaUsesHostAddresses) {
  AlignedBuffer buf(kPage4K);
  const uint8_t data[4] = {9, 8, 7, 6};
  std::unique_ptr<Domain> identity = *core.default_iommu().AllocDomain(DomainType::kIdentity);
  ASSERT_TRUE(group->ClaimDmaOwner(owner).has_value());
  ASSERT_TRUE(group->AttachDomain(*identity).has_value());
  ASSERT_TRUE(f0->dma().Write(buf.addr() + 100, data, sizeof data).has_value());
  EXPECT_EQ(std::memcmp(buf.p + 100, data, sizeof data), 0);
  EXPECT_EQ(core.default_iommu().fault_log().size(), 0u);
  ASSERT_TRUE(group->DetachDomain(*identity).has_value());
  group->ReleaseDmaOwner(owner);
}

TEST_F(OwnershipTest, DeviceJoiningAnAttachedGroupTranslatesThroughTheAttachedDomain) {
  std::unique_ptr<Domain> d = *core.default_iommu().AllocDomain(DomainType::kPaging);
  ASSERT_TRUE(group->ClaimDmaOwner(owner).has_value());
  ASSERT_TRUE(group->AttachDomain(*d).has_value());
  auto* f2 = *machine.AddPciDevice(MakePci("01:00.2", testtopo::Endpoint().Multi()));
  EXPECT_EQ(core.GroupOf(*f2), group);
  EXPECT_EQ(f2->dma().translation(), d->translation());
  ASSERT_TRUE(group->DetachDomain(*d).has_value());
  EXPECT_EQ(f2->dma().translation(), nullptr);  // blocking while owned
  group->ReleaseDmaOwner(owner);
}

TEST_F(OwnershipTest, CapabilityChecksAndWithEveryMember) {
  EXPECT_TRUE(group->AllMembersMsiIsolated());
  EXPECT_TRUE(group->AllMembersCacheCoherent());
  int visited = 0;
  Iommu* expected_iommu = &core.default_iommu();
  EXPECT_TRUE(group->ForEachDevice([&](hw::Device&, Iommu& iommu) -> vb::Result<void> {
                      ++visited;
                      EXPECT_EQ(&iommu, expected_iommu);
                      return vb::Ok();
                    }).has_value());
  EXPECT_EQ(visited, 2);
  // The first error stops the walk and is returned.
  visited = 0;
  EXPECT_EQ(vb::ErrnoOf(group->ForEachDevice([&](hw::Device&, Iommu&) -> vb::Result<void> {
              ++visited;
              return vb::Err(EPERM, "test");
            })),
            EPERM);
  EXPECT_EQ(visited, 1);

  IommuCaps no_ir = IommuCaps::X86();
  no_ir.msi_isolated = false;
  no_ir.cache_coherent = false;
  IommuCore core2(no_ir, "dmar-no-ir");
  hw::Machine m2;
  ASSERT_TRUE(m2.SetHooks(&core2).has_value());
  auto* ep = *m2.AddPciDevice(MakePci("00:02.0", testtopo::RcIntegratedEndpoint()));
  EXPECT_FALSE(core2.GroupOf(*ep)->AllMembersMsiIsolated());
  EXPECT_FALSE(core2.GroupOf(*ep)->AllMembersCacheCoherent());
}

}  // namespace
}  // namespace iommu
