// Iommu::CheckInvariantsForTest, the checker the fuzzer and the fail-nth tests rely on: it must
// accept every state type1 itself produces and reject a page table or record that disagrees.
#include <sys/mman.h>

#include "iommu/domain.h"
#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/type1_iommu.h"

namespace vfio::type1 {
namespace {

class Type1Invariants : public vfio::testing::VfioFixture {
 protected:
  void SetUp() override {
    VfioFixture::SetUp();
    mem = static_cast<uint8_t*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(mem, MAP_FAILED);
  }
  void TearDown() override {
    a = {};
    VfioFixture::TearDown();
    munmap(mem, kLen);
  }
  Iommu& T1() {
    Iommu* out = nullptr;
    (void)a.container->WithBackendAs<Iommu>([&](Iommu& b) -> vb::Result<void> {
      out = &b;
      return vb::Ok();
    });
    return *out;
  }
  iommu::Domain& DomainOfGroup() { return *T1().DomainOf(*core.GroupOf(Dev("01:00.0"))); }
  uint64_t Addr(uint64_t off = 0) const { return reinterpret_cast<uint64_t>(mem) + off; }

  static constexpr size_t kLen = 4 << 20;
  uint8_t* mem = nullptr;
  Attached a;
};

TEST_F(Type1Invariants, AcceptsMapsUnmapsVaddrUpdatesAndDirtyTracking) {
  a = AttachNew("01:00.0");
  Iommu& t1 = T1();
  EXPECT_EQ(t1.CheckInvariantsForTest(), "");
  ASSERT_TRUE(t1.MapDma({kMapFlagRead | kMapFlagWrite, Addr(), 0x200000, 0x200000}).has_value());
  ASSERT_TRUE(t1.MapDma({kMapFlagRead, Addr(0x200000), 0x10000000, 0x3000}).has_value());
  EXPECT_EQ(t1.CheckInvariantsForTest(), "");
  ASSERT_TRUE(t1.DirtyPages({kDirtyFlagStart}).has_value());
  EXPECT_EQ(t1.CheckInvariantsForTest(), "");
  ASSERT_TRUE(t1.UnmapDma({kUnmapFlagVaddr, 0x10000000, 0x3000}).has_value());
  EXPECT_EQ(t1.CheckInvariantsForTest(), "");
  ASSERT_TRUE(t1.MapDma({kMapFlagVaddr, Addr(0x300000), 0x10000000, 0x3000}).has_value());
  EXPECT_EQ(t1.CheckInvariantsForTest(), "");
  ASSERT_TRUE(t1.UnmapDma({0, 0x200000, 0x200000}).has_value());
  EXPECT_EQ(t1.CheckInvariantsForTest(), "");
  ASSERT_EQ(t1.MappingsForTest().size(), 1u);
  EXPECT_EQ(t1.MappingsForTest()[0].pinned, Addr(0x200000));  // a VADDR update does not re-pin
  EXPECT_EQ(t1.MappingsForTest()[0].vaddr, Addr(0x300000));
}

TEST_F(Type1Invariants, RejectsAPageMissingFromTheDomain) {
  a = AttachNew("01:00.0");
  ASSERT_TRUE(T1().MapDma({kMapFlagRead | kMapFlagWrite, Addr(), 0x100000, 0x4000}).has_value());
  ASSERT_TRUE(DomainOfGroup().Unmap(0x102000, 0x1000).has_value());
  EXPECT_NE(T1().CheckInvariantsForTest().find("not translated"), std::string::npos)
      << T1().CheckInvariantsForTest();
  // Put it back where the record says, so release finds what it expects.
  ASSERT_TRUE(DomainOfGroup().Map(0x102000, Addr(0x2000), 0x1000, iommu::kProtRead | iommu::kProtWrite).has_value());
  EXPECT_EQ(T1().CheckInvariantsForTest(), "");
}

TEST_F(Type1Invariants, RejectsAWrongTranslationOrPermission) {
  a = AttachNew("01:00.0");
  ASSERT_TRUE(T1().MapDma({kMapFlagRead, Addr(), 0x100000, 0x2000}).has_value());
  ASSERT_TRUE(DomainOfGroup().Unmap(0x101000, 0x1000).has_value());
  ASSERT_TRUE(DomainOfGroup().Map(0x101000, Addr(0x1000), 0x1000, iommu::kProtRead | iommu::kProtWrite).has_value());
  EXPECT_NE(T1().CheckInvariantsForTest().find("prot"), std::string::npos) << T1().CheckInvariantsForTest();
  ASSERT_TRUE(DomainOfGroup().Unmap(0x101000, 0x1000).has_value());
  ASSERT_TRUE(DomainOfGroup().Map(0x101000, Addr(0x5000), 0x1000, iommu::kProtRead).has_value());
  EXPECT_NE(T1().CheckInvariantsForTest().find("expected"), std::string::npos) << T1().CheckInvariantsForTest();
}

TEST_F(Type1Invariants, RejectsATranslationNoRecordCovers) {
  a = AttachNew("01:00.0");
  ASSERT_TRUE(T1().MapDma({kMapFlagRead | kMapFlagWrite, Addr(), 0x100000, 0x1000}).has_value());
  ASSERT_TRUE(DomainOfGroup().Map(0x900000, Addr(0x1000), 0x1000, iommu::kProtRead).has_value());
  EXPECT_NE(T1().CheckInvariantsForTest().find("maps"), std::string::npos) << T1().CheckInvariantsForTest();
  ASSERT_TRUE(DomainOfGroup().Unmap(0x900000, 0x1000).has_value());
  EXPECT_EQ(T1().CheckInvariantsForTest(), "");
}

}  // namespace
}  // namespace vfio::type1
