#include "vfio/type1/unmap_planner.h"

#include <gtest/gtest.h>

#include "vfio/type1/dma_tree_test_util.h"
#include "vfio/type1/flags.h"

namespace vfio::type1 {
namespace {

using testing::MakeDma;
using testing::Snapshot;

constexpr uint32_t D = kUnmapFlagGetDirtyBitmap, A = kUnmapFlagAll, V = kUnmapFlagVaddr;
constexpr uint64_t kBm = 0x7f0000000000;  // a user-range bitmap address (only access_ok'd here)

constexpr UnmapContext kV2{.v2 = true, .min_pgsize = 0x1000, .dirty_tracking = true};
constexpr UnmapContext kV1{.v2 = false, .min_pgsize = 0x1000, .dirty_tracking = false};
constexpr UnmapContext kV2Emulated{.v2 = true, .min_pgsize = 0x1000, .has_emulated_groups = true};
constexpr UnmapContext kV2NoTracking{.v2 = true, .min_pgsize = 0x1000, .dirty_tracking = false};

struct UnmapRow {
  const char* name;
  UnmapRequest req;
  UnmapContext ctx;
  int errnum;
  uint64_t bytes = 0;  // reported size on success
  size_t count = 0;
};

// Records: A [0x10000,0x1ffff], B [0x20000,0x2ffff], C [0x50000,0x5ffff] (vaddr-invalid).
class UnmapPlannerTable : public ::testing::TestWithParam<UnmapRow> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tree_.Insert(MakeDma(0x10000, 0x10000)).has_value());
    ASSERT_TRUE(tree_.Insert(MakeDma(0x20000, 0x10000)).has_value());
    ASSERT_TRUE(tree_.Insert(MakeDma(0x50000, 0x10000, 0x1000, kProtRead, true)).has_value());
  }
  DmaTree tree_;
};

TEST_P(UnmapPlannerTable, ErrnoPlanAndTreeUnchanged) {
  const UnmapRow& row = GetParam();
  auto before = Snapshot(tree_);
  auto plan = PlanUnmap(row.req, tree_, row.ctx);
  EXPECT_EQ(vb::ErrnoOf(plan), row.errnum) << row.name;
  if (plan) {
    EXPECT_EQ(plan->unmapped_bytes, row.bytes) << row.name;
    EXPECT_EQ(plan->count, row.count) << row.name;
    EXPECT_EQ(static_cast<size_t>(std::distance(plan->begin, plan->end)), row.count) << row.name;
  }
  EXPECT_EQ(Snapshot(tree_), before) << row.name;
}

UnmapRequest Req(uint32_t flags, uint64_t iova, uint64_t size, uint64_t pgsize = 0x1000,
                 uint64_t bitmap_size = 4096, uint64_t data = kBm) {
  return UnmapRequest{flags, iova, size, pgsize, bitmap_size, data};
}

INSTANTIATE_TEST_SUITE_P(
    Rows, UnmapPlannerTable,
    ::testing::Values(
        UnmapRow{"ok_v2_exact_one", Req(0, 0x10000, 0x10000), kV2, 0, 0x10000, 1},
        UnmapRow{"ok_v2_several_with_holes", Req(0, 0x0, 0x100000), kV2, 0, 0x30000, 3},
        UnmapRow{"ok_v2_empty_range_size_0", Req(0, 0x80000, 0x10000), kV2, 0, 0, 0},
        UnmapRow{"ok_v2_all", Req(A, 0, 0), kV2, 0, 0x30000, 3},
        UnmapRow{"ok_v1_all", Req(A, 0, 0), kV1, 0, 0x30000, 3},
        UnmapRow{"ok_v2_get_dirty", Req(D, 0x10000, 0x20000), kV2, 0, 0x20000, 2},
        UnmapRow{"ok_vaddr_invalidate", Req(V, 0x10000, 0x20000), kV2, 0, 0x20000, 2},
        UnmapRow{"ok_vaddr_all_empty", Req(V, 0x80000, 0x1000), kV2, 0, 0, 0},
        UnmapRow{"row1_unknown_flag", Req(8, 0x10000, 0x10000), kV2, EINVAL},
        UnmapRow{"row2_dirty_with_all", Req(D | A, 0, 0), kV2, EINVAL},
        UnmapRow{"row2_dirty_with_vaddr", Req(D | V, 0x10000, 0x10000), kV2, EINVAL},
        UnmapRow{"row3_bitmap_not_user_range",
                 Req(D, 0x10000, 0x10000, 0x1000, 8, 0xffff800000000000), kV2, EINVAL},
        UnmapRow{"row3_bitmap_range_wraps", Req(D, 0x10000, 0x10000, 0x1000, 16, ~0ull - 7), kV2,
                 EINVAL},
        UnmapRow{"row3_bitmap_size_0", Req(D, 0x10000, 0x10000, 0x1000, 0), kV2, EINVAL},
        UnmapRow{"row3_bitmap_too_small", Req(D, 0x10000, 0x41000, 0x1000, 8), kV2, EINVAL},
        UnmapRow{"row3_bitmap_over_256MiB", Req(D, 0x10000, 0x10000, 0x1000, (256ull << 20) + 8),
                 kV2, EINVAL},
        UnmapRow{"row3_bitmap_pgsize_0", Req(D, 0x10000, 0x10000, 0), kV2, EINVAL},
        UnmapRow{"row3_zero_pages", Req(D, 0x10000, 0x800, 0x1000), kV2, EINVAL},
        UnmapRow{"row4_vaddr_with_emulated_groups", Req(V, 0x10000, 0x10000), kV2Emulated, EBUSY},
        UnmapRow{"row4_before_row5", Req(V, 0x10800, 0x10000), kV2Emulated, EBUSY},
        UnmapRow{"row5_iova_unaligned", Req(0, 0x10800, 0x10000), kV2, EINVAL},
        UnmapRow{"row5_all_iova_unaligned", Req(A, 0x800, 0), kV2, EINVAL},
        UnmapRow{"row6_all_with_iova", Req(A, 0x10000, 0), kV2, EINVAL},
        UnmapRow{"row6_all_with_size", Req(A, 0, 0x10000), kV2, EINVAL},
        UnmapRow{"row6_size_0", Req(0, 0x10000, 0), kV2, EINVAL},
        UnmapRow{"row6_size_unaligned", Req(0, 0x10000, 0x10800), kV2, EINVAL},
        UnmapRow{"row6_wraps", Req(0, 0x10000, ~0ull - 0xfff), kV2, EINVAL},
        UnmapRow{"row7_dirty_tracking_off", Req(D, 0x10000, 0x10000), kV2NoTracking, EINVAL},
        UnmapRow{"row7_dirty_pgsize_not_minimum", Req(D, 0x10000, 0x10000, 0x2000), kV2, EINVAL},
        UnmapRow{"row8_v2_bisects_start", Req(0, 0x18000, 0x18000), kV2, EINVAL},
        UnmapRow{"row8_v2_bisects_end", Req(0, 0x10000, 0x18000), kV2, EINVAL},
        UnmapRow{"row8_v2_inside_one_mapping", Req(0, 0x11000, 0x1000), kV2, EINVAL},
        UnmapRow{"row8_v2_vaddr_bisects", Req(V, 0x18000, 0x10000), kV2, EINVAL},
        UnmapRow{"row9_vaddr_already_invalid", Req(V, 0x10000, 0x50000), kV2, EINVAL},
        UnmapRow{"row9_vaddr_all_with_one_invalid", Req(V | A, 0, 0), kV2, EINVAL},
        UnmapRow{"v1_start_inside_mapping_unmaps_nothing", Req(0, 0x18000, 0x18000), kV1, 0, 0, 0},
        UnmapRow{"v1_end_inside_mapping_removes_it_whole", Req(0, 0x10000, 0x11000), kV1, 0,
                 0x20000, 2},
        UnmapRow{"v1_inside_one_mapping_unmaps_nothing", Req(0, 0x11000, 0x1000), kV1, 0, 0, 0},
        UnmapRow{"v1_dirty_never_tracking", Req(D, 0x10000, 0x10000), kV1, EINVAL}),
    [](const ::testing::TestParamInfo<UnmapRow>& info) { return std::string(info.param.name); });

TEST(UnmapPlanner, BitOffsetsAreRelativeToTheRequest) {
  DmaTree tree;
  ASSERT_TRUE(tree.Insert(MakeDma(0x12000, 0x2000)).has_value());
  ASSERT_TRUE(tree.Insert(MakeDma(0x50000, 0x1000)).has_value());
  auto plan = PlanUnmap(Req(D, 0x10000, 0x80000, 0x1000, 16), tree, kV2);
  ASSERT_TRUE(plan.has_value());
  std::vector<uint64_t> bits;
  for (auto it = plan->begin; it != plan->end; ++it) bits.push_back(plan->BitOffsetOf(it->second, 0x1000));
  EXPECT_EQ(bits, (std::vector<uint64_t>{2, 0x40}));
}

TEST(UnmapPlanner, AllCoversAMappingEndingAtTheTopOfTheSpace) {
  DmaTree tree;
  ASSERT_TRUE(tree.Insert(MakeDma(~0ull - 0xfff, 0x1000)).has_value());
  auto plan = PlanUnmap(Req(A, 0, 0), tree, kV2);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->count, 1u);
  auto exact = PlanUnmap(Req(0, ~0ull - 0xfff, 0x1000), tree, kV2);
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(exact->unmapped_bytes, 0x1000u);
}

TEST(UnmapPlanner, CommittingThePlanRemovesExactlyThePlannedRecords) {
  DmaTree tree;
  for (uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(tree.Insert(MakeDma(i * 0x10000, 0x8000)).has_value());
  auto plan = PlanUnmap(Req(0, 0x10000, 0x30000), tree, kV2);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(tree.Remove(plan->begin, plan->end), 3u);
  std::vector<uint64_t> left;
  for (auto& [iova, d] : tree) left.push_back(iova);
  EXPECT_EQ(left, (std::vector<uint64_t>{0x0, 0x40000, 0x50000}));
}

}  // namespace
}  // namespace vfio::type1
