// Iommu instances (capabilities, validation, domain allocation) and Domain semantics: types,
// aperture and range checks, identity translation, cache-coherency enforcement; the fault log.
#include <gtest/gtest.h>

#include "base/fail_point.h"
#include "iommu/domain.h"
#include "iommu/fault_log.h"
#include "iommu/iommu.h"

namespace iommu {
namespace {

TEST(IommuTest, X86CapsReserveTheMsiWindow) {
  IommuCaps caps = IommuCaps::X86();
  ASSERT_EQ(caps.reserved.size(), 1u);
  EXPECT_EQ(caps.reserved[0].first, 0xfee00000u);
  EXPECT_EQ(caps.reserved[0].last, 0xfeefffffu);
  EXPECT_EQ(caps.reserved[0].type, ReservedRegionType::kMsi);
  EXPECT_EQ(caps.pgsize_bitmap, kPage4K | kPage2M | kPage1G);
  auto iommu = Iommu::Create("dmar0", caps);
  ASSERT_TRUE(iommu.has_value());
  EXPECT_EQ((*iommu)->address_bits(), 48u);
}

TEST(IommuTest, CreateRejectsBadCaps) {
  IommuCaps no4k;
  no4k.pgsize_bitmap = kPage2M;
  EXPECT_EQ(vb::ErrnoOf(Iommu::Create("x", no4k)), EINVAL);
  IommuCaps odd;
  odd.pgsize_bitmap = kPage4K | (1ull << 16);
  EXPECT_EQ(vb::ErrnoOf(Iommu::Create("x", odd)), EINVAL);
  IommuCaps wide;
  wide.aperture_last = 1ull << 48;
  EXPECT_EQ(vb::ErrnoOf(Iommu::Create("x", wide)), EINVAL);
  IommuCaps empty;
  empty.aperture_first = 0x2000;
  empty.aperture_last = 0x1fff;
  EXPECT_EQ(vb::ErrnoOf(Iommu::Create("x", empty)), EINVAL);
  IommuCaps bad_region;
  bad_region.reserved.push_back({0x2000, 0x1000, ReservedRegionType::kReserved});
  EXPECT_EQ(vb::ErrnoOf(Iommu::Create("x", bad_region)), EINVAL);
}

TEST(IommuTest, AllocDomainFailPointGivesEnomem) {
  auto iommu = *Iommu::Create("dmar0", IommuCaps::X86());
  vb::FailInjector::ArmNth(1);
  auto d = iommu->AllocDomain(DomainType::kPaging);
  vb::FailInjector::Disarm();
  EXPECT_EQ(vb::ErrnoOf(d), ENOMEM);
  auto ok = iommu->AllocDomain(DomainType::kPaging);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(&(*ok)->iommu(), iommu.get());
}

// Issue 14 item 2: intel-iommu (6.1) sets the first-level present bit, the second-level read bit,
// on every mapping: a dmar-kind domain lets devices read through a write-only mapping. An
// smmu-kind domain keeps the permissions exactly as mapped.
TEST(DomainTest, DmarKindReadsThroughWriteOnlyMappingsSmmuKindStaysStrict) {
  alignas(4096) static uint8_t page[4096];
  const uint64_t host = reinterpret_cast<uint64_t>(page);
  auto dmar = *Iommu::Create("dmar0", IommuCaps::X86());
  EXPECT_EQ(dmar->caps().kind, IommuKind::kDmar);
  IommuCaps strict;
  strict.kind = IommuKind::kSmmu;
  auto smmu = *Iommu::Create("smmu0", strict);
  for (Iommu* iommu : {dmar.get(), smmu.get()}) {
    const bool quirk = iommu == dmar.get();
    auto d = *iommu->AllocDomain(DomainType::kPaging);
    ASSERT_TRUE(d->Map(0x10000, host, 4096, kProtWrite).has_value());
    ASSERT_TRUE(d->Map(0x20000, host, 4096, kProtRead).has_value());
    EXPECT_EQ(d->IovaToPhys(0x10000)->prot, quirk ? (kProtRead | kProtWrite) : kProtWrite) << iommu->name();
    EXPECT_EQ(d->IovaToPhys(0x20000)->prot, kProtRead) << "a read-only mapping stays read-only";
    const hw::DmaTranslation* t = d->translation();
    EXPECT_EQ(t->Translate(0x10000, 16, hw::DmaAccess::kRead).ok, quirk) << iommu->name();
    EXPECT_TRUE(t->Translate(0x10000, 16, hw::DmaAccess::kWrite).ok);
    EXPECT_FALSE(t->Translate(0x20000, 16, hw::DmaAccess::kWrite).ok);
    EXPECT_EQ(vb::ErrnoOf(d->Map(0x30000, host, 4096, 0)), EINVAL) << "prot 0 is still refused";
    ASSERT_TRUE(d->Unmap(0x10000, 0x20000).has_value());
  }
}

TEST(DomainTest, MapChecksTypeRangeAndAperture) {
  IommuCaps caps;
  caps.aperture_first = 0x10000;
  caps.aperture_last = (1ull << 39) - 1;
  caps.pgsize_bitmap = kPage4K | kPage2M;
  auto iommu = *Iommu::Create("smmu", caps);
  auto paging = *iommu->AllocDomain(DomainType::kPaging);
  auto identity = *iommu->AllocDomain(DomainType::kIdentity);
  auto blocked = *iommu->AllocDomain(DomainType::kBlocked);
  EXPECT_EQ(paging->pgsize_bitmap(), kPage4K | kPage2M);
  EXPECT_EQ(paging->aperture(), (vb::Interval{0x10000, (1ull << 39) - 1}));

  EXPECT_EQ(vb::ErrnoOf(identity->Map(0x10000, 0x10000, kPage4K, kProtRead)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(blocked->Map(0x10000, 0x10000, kPage4K, kProtRead)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(blocked->Unmap(0x10000, kPage4K)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(paging->Map(0, 0x10000, kPage4K, kProtRead)), ERANGE);                 // below
  EXPECT_EQ(vb::ErrnoOf(paging->Map((1ull << 39) - kPage4K, 0x10000, 2 * kPage4K, kProtRead)), ERANGE);  // straddles
  EXPECT_EQ(vb::ErrnoOf(paging->Map(~0ull - kPage4K + 1, 0x10000, 2 * kPage4K, kProtRead)), EINVAL);    // wraps
  EXPECT_EQ(vb::ErrnoOf(paging->Map(0x10000, 0x10000, 0, kProtRead)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(paging->Map(0x10800, 0x10000, kPage4K, kProtRead)), EINVAL);  // unaligned
  EXPECT_EQ(vb::ErrnoOf(paging->Unmap(0, kPage4K)), ERANGE);

  ASSERT_TRUE(paging->Map(0x20000, 0x7f0000, 2 * kPage4K, kProtRead).has_value());
  EXPECT_EQ(vb::ErrnoOf(paging->Map(0x21000, 0x900000, kPage4K, kProtRead)), EEXIST);
  auto t = paging->IovaToPhys(0x21010);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->phys, 0x7f1010u);
  EXPECT_EQ(t->prot, uint32_t{kProtRead});
  EXPECT_EQ(*paging->Unmap(0x20000, 4 * kPage4K), 2 * kPage4K);
  EXPECT_FALSE(paging->IovaToPhys(0x21010).has_value());
}

TEST(DomainTest, TranslationsByType) {
  auto iommu = *Iommu::Create("dmar0", IommuCaps::X86());
  auto paging = *iommu->AllocDomain(DomainType::kPaging);
  auto identity = *iommu->AllocDomain(DomainType::kIdentity);
  auto blocked = *iommu->AllocDomain(DomainType::kBlocked);
  EXPECT_EQ(blocked->translation(), nullptr);
  EXPECT_FALSE(blocked->IovaToPhys(0x1000).has_value());
  EXPECT_EQ(paging->translation(), paging->page_table());
  EXPECT_EQ(identity->page_table(), nullptr);
  ASSERT_NE(identity->translation(), nullptr);
  auto r = identity->translation()->Translate(0x123456789, 64, hw::DmaAccess::kWrite);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.segment.host), 0x123456789u);
  EXPECT_EQ(r.segment.length, 64u);
  EXPECT_EQ(identity->IovaToPhys(0x5000)->phys, 0x5000u);
}

TEST(DomainTest, CacheCoherencyCanBeEnforcedOnlyOnPagingDomainsOfCapableInstances) {
  auto capable = *Iommu::Create("dmar0", IommuCaps::X86());
  IommuCaps no_snp = IommuCaps::X86();
  no_snp.enforce_cache_coherency = false;
  auto incapable = *Iommu::Create("dmar1", no_snp);
  auto p = *capable->AllocDomain(DomainType::kPaging);
  auto id = *capable->AllocDomain(DomainType::kIdentity);
  auto q = *incapable->AllocDomain(DomainType::kPaging);
  EXPECT_FALSE(p->enforce_cache_coherency());
  EXPECT_TRUE(p->EnforceCacheCoherency());
  EXPECT_TRUE(p->enforce_cache_coherency());
  EXPECT_FALSE(id->EnforceCacheCoherency());
  EXPECT_FALSE(q->EnforceCacheCoherency());
  EXPECT_FALSE(q->enforce_cache_coherency());
}

TEST(FaultLogTest, KeepsTheFirstFaultsAndCountsTheDropped) {
  FaultLog log(3);
  for (uint64_t i = 0; i < 5; ++i)
    log.RecordFault(hw::DmaFault{"0000:01:00.0", 0x100, 0x1000 * i, hw::DmaAccess::kRead,
                                 hw::DmaFaultReason::kNotMapped});
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log.dropped(), 2u);
  auto snap = log.Snapshot();
  ASSERT_EQ(snap.size(), 3u);
  EXPECT_EQ(snap[0].iova, 0u);
  EXPECT_EQ(snap[2].iova, 0x2000u);
  EXPECT_EQ(snap[1].requester, "0000:01:00.0");
  log.Clear();
  EXPECT_EQ(log.size(), 0u);
  EXPECT_EQ(log.dropped(), 0u);
  EXPECT_EQ(FaultLog().capacity(), 4096u);
}

}  // namespace
}  // namespace iommu
