// IoPageTable::Retarget: every leaf of the range points at the new address with its prot and
// dirty bit kept; large leaves are split when the range covers them partly or the new address
// is misaligned for them; holes stay holes; translations cached before see the new address.
#include <gtest/gtest.h>

#include "iommu/io_page_table.h"

namespace iommu {
namespace {

TEST(IoPageTableRetarget, PagesPointAtTheNewAddressKeepingProt) {
  IoPageTable pt;
  ASSERT_TRUE(pt.Map(0x10000, 0x7000000000, 0x4000, kProtRead).has_value());
  const uint64_t gen = pt.generation();
  ASSERT_TRUE(pt.Retarget(0x11000, 0x2000, 0x7100000000).has_value());
  EXPECT_NE(pt.generation(), gen);
  EXPECT_EQ(pt.IovaToPhys(0x10000)->phys, 0x7000000000u);
  EXPECT_EQ(pt.IovaToPhys(0x11000)->phys, 0x7100000000u);
  EXPECT_EQ(pt.IovaToPhys(0x12abc)->phys, 0x7100001abcu);
  EXPECT_EQ(pt.IovaToPhys(0x13000)->phys, 0x7000003000u);
  EXPECT_EQ(pt.IovaToPhys(0x11000)->prot, uint32_t{kProtRead});
  EXPECT_EQ(pt.mapped_bytes(), 0x4000u);
}

TEST(IoPageTableRetarget, HolesStayUnmapped) {
  IoPageTable pt;
  ASSERT_TRUE(pt.Map(0x10000, 0x7000000000, 0x1000, kProtRead | kProtWrite).has_value());
  ASSERT_TRUE(pt.Retarget(0x0, 0x100000, 0x7200000000).has_value());
  EXPECT_EQ(pt.IovaToPhys(0x10000)->phys, 0x7200010000u);
  EXPECT_FALSE(pt.IovaToPhys(0x11000).has_value());
  EXPECT_FALSE(pt.IovaToPhys(0x0).has_value());
}

TEST(IoPageTableRetarget, LargeLeavesSplitWhenMisalignedOrPartlyCovered) {
  IoPageTable pt;
  ASSERT_TRUE(pt.Map(0x40000000, 0x7000000000, 1ull << 30, kProtRead).has_value());
  EXPECT_EQ(pt.IovaToPhys(0x40000000)->leaf_size, kPage1G);
  // A 1 GiB-congruent move keeps the leaf.
  ASSERT_TRUE(pt.Retarget(0x40000000, 1ull << 30, 0x7040000000).has_value());
  EXPECT_EQ(pt.IovaToPhys(0x40000000)->leaf_size, kPage1G);
  EXPECT_EQ(pt.IovaToPhys(0x40001234)->phys, 0x7040001234u);
  // One page, moved by one page: 4K leaves around it, the rest still where it was.
  ASSERT_TRUE(pt.Retarget(0x40201000, 0x1000, 0x7300001000).has_value());
  EXPECT_EQ(pt.IovaToPhys(0x40201000)->phys, 0x7300001000u);
  EXPECT_EQ(pt.IovaToPhys(0x40201000)->leaf_size, kPage4K);
  EXPECT_EQ(pt.IovaToPhys(0x40200000)->phys, 0x7040200000u);
  EXPECT_EQ(pt.IovaToPhys(0x40000000)->phys, 0x7040000000u);
  EXPECT_EQ(pt.IovaToPhys(0x7fffffff)->phys, 0x707fffffffu);
  // A whole 2 MiB leaf moved to a 4 KiB-aligned address.
  ASSERT_TRUE(pt.Retarget(0x40400000, 2ull << 20, 0x7500003000).has_value());
  EXPECT_EQ(pt.IovaToPhys(0x40400000)->phys, 0x7500003000u);
  EXPECT_EQ(pt.IovaToPhys(0x405ff000)->phys, 0x7500003000u + 0x1ff000);
  EXPECT_EQ(pt.mapped_bytes(), 1ull << 30);
}

TEST(IoPageTableRetarget, RejectsBadArguments) {
  IoPageTable pt(kPage4K | kPage2M | kPage1G, 39);
  EXPECT_EQ(vb::ErrnoOf(pt.Retarget(0x1000, 0, 0x2000)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(pt.Retarget(0x1001, 0x1000, 0x2000)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(pt.Retarget(0x1000, 0x1000, 0x2001)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(pt.Retarget(1ull << 39, 0x1000, 0x2000)), ERANGE);
}

}  // namespace
}  // namespace iommu
