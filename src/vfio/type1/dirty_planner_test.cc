#include "vfio/type1/dirty_planner.h"

#include <gtest/gtest.h>

#include "base/fail_point.h"
#include "vfio/type1/dma_tree_test_util.h"
#include "vfio/type1/flags.h"

namespace vfio::type1 {
namespace {

using testing::MakeDma;
using testing::Snapshot;

constexpr uint32_t S = kDirtyFlagStart, P = kDirtyFlagStop, G = kDirtyFlagGetBitmap;
constexpr uint64_t kBm = 0x7f0000000000;
constexpr DirtyContext kOn{.v2 = true, .min_pgsize = 0x1000, .tracking = true};
constexpr DirtyContext kOff{.v2 = true, .min_pgsize = 0x1000, .tracking = false};
constexpr DirtyContext kV1{.v2 = false, .min_pgsize = 0x1000, .tracking = false};

struct DirtyRow {
  const char* name;
  DirtyRequest req;
  DirtyContext ctx;
  int errnum;
  bool noop = false;
  size_t count = 0;
};

DirtyRequest Get(uint64_t iova, uint64_t size, uint64_t pgsize = 0x1000, uint64_t bytes = 4096,
                 uint64_t data = kBm) {
  return DirtyRequest{G, iova, size, pgsize, bytes, data};
}

class DirtyPlannerTable : public ::testing::TestWithParam<DirtyRow> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tree_.Insert(MakeDma(0x10000, 0x10000)).has_value());
    ASSERT_TRUE(tree_.Insert(MakeDma(0x30000, 0x4000)).has_value());
  }
  DmaTree tree_;
};

TEST_P(DirtyPlannerTable, ErrnoPlanAndTreeUnchanged) {
  const DirtyRow& row = GetParam();
  auto before = Snapshot(tree_);
  auto plan = PlanDirtyPages(row.req, tree_, row.ctx);
  EXPECT_EQ(vb::ErrnoOf(plan), row.errnum) << row.name;
  if (plan) {
    EXPECT_EQ(plan->noop, row.noop) << row.name;
    EXPECT_EQ(static_cast<size_t>(std::distance(plan->begin, plan->end)), row.count) << row.name;
  }
  EXPECT_EQ(Snapshot(tree_), before) << row.name;
}

INSTANTIATE_TEST_SUITE_P(
    Rows, DirtyPlannerTable,
    ::testing::Values(
        DirtyRow{"v1_eacces_even_with_flags_0", {0}, kV1, EACCES},
        DirtyRow{"v1_eacces_start", {S}, kV1, EACCES},
        DirtyRow{"unknown_flag", {8}, kOn, EINVAL},
        DirtyRow{"flags_0", {0}, kOn, EINVAL},
        DirtyRow{"two_ops", {S | P}, kOn, EINVAL},
        DirtyRow{"start", {S}, kOff, 0},
        DirtyRow{"start_again_is_noop", {S}, kOn, 0, true},
        DirtyRow{"stop", {P}, kOn, 0},
        DirtyRow{"stop_when_stopped_is_noop", {P}, kOff, 0, true},
        DirtyRow{"get_ok", Get(0x10000, 0x30000), kOn, 0, false, 2},
        DirtyRow{"get_ok_empty_range", Get(0x80000, 0x10000), kOn, 0, false, 0},
        DirtyRow{"get_range_wraps", Get(0x1000, ~0ull), kOn, EINVAL},
        DirtyRow{"get_range_ending_at_top_refused_6_1", Get(~0ull - 0xfff, 0x1000), kOn, EINVAL},
        DirtyRow{"get_bitmap_not_user_range", Get(0x10000, 0x10000, 0x1000, 8, 0xffff800000000000),
                 kOn, EINVAL},
        DirtyRow{"get_bitmap_size_0", Get(0x10000, 0x10000, 0x1000, 0), kOn, EINVAL},
        DirtyRow{"get_bitmap_too_small", Get(0x10000, 0x41000, 0x1000, 8), kOn, EINVAL},
        DirtyRow{"get_bitmap_over_256MiB", Get(0x10000, 0x10000, 0x1000, (256ull << 20) + 8), kOn,
                 EINVAL},
        DirtyRow{"get_pgsize_0", Get(0x10000, 0x10000, 0), kOn, EINVAL},
        DirtyRow{"get_pgsize_not_minimum", Get(0x10000, 0x10000, 0x2000), kOn, EINVAL},
        DirtyRow{"get_size_0", Get(0x10000, 0), kOn, EINVAL},
        DirtyRow{"get_iova_unaligned", Get(0x10800, 0x10000), kOn, EINVAL},
        DirtyRow{"get_size_unaligned", Get(0x10000, 0x10800), kOn, EINVAL},
        DirtyRow{"get_tracking_off", Get(0x10000, 0x10000), kOff, EINVAL},
        DirtyRow{"get_bisects_start", Get(0x18000, 0x10000), kOn, EINVAL},
        DirtyRow{"get_bisects_end", Get(0x10000, 0x22000), kOn, EINVAL}),
    [](const ::testing::TestParamInfo<DirtyRow>& info) { return std::string(info.param.name); });

TEST(DirtyPlanner, AllocateBitmapsIsAllOrNothing) {
  DmaTree tree;
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(tree.Insert(MakeDma(i * 0x100000, 0x10000)).has_value());
  for (uint64_t nth = 1; nth <= 5; ++nth) {
    vb::FailInjector::ArmNth(nth);
    auto r = AllocateDirtyBitmaps(tree, 0x1000);
    bool fired = vb::FailInjector::Fired();
    vb::FailInjector::Disarm();
    ASSERT_TRUE(fired) << nth;
    EXPECT_EQ(vb::ErrnoOf(r), ENOMEM) << nth;
  }
  auto ok = AllocateDirtyBitmaps(tree, 0x1000);
  ASSERT_TRUE(ok.has_value());
  ASSERT_EQ(ok->size(), 4u);
  EXPECT_EQ((*ok)[0]->npages(), 16u);
}

TEST(DirtyPlanner, StartRefusesAMappingOfMoreThanIntMaxPages) {
  DmaTree tree;
  ASSERT_TRUE(tree.Insert(MakeDma(0, (kDirtyBitmapPagesMax + 1) * 0x1000)).has_value());
  EXPECT_EQ(vb::ErrnoOf(AllocateDirtyBitmaps(tree, 0x1000)), EINVAL);
}

}  // namespace
}  // namespace vfio::type1
