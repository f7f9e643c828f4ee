#include "vfio/type1/map_planner.h"

#include <gtest/gtest.h>

#include "vfio/type1/dma_tree_test_util.h"
#include "vfio/type1/flags.h"

namespace vfio::type1 {
namespace {

using testing::MakeDma;
using testing::Snapshot;

constexpr uint32_t R = kMapFlagRead, W = kMapFlagWrite, V = kMapFlagVaddr;
constexpr uint64_t kPg = 0x1000;
constexpr uint64_t kTop = ~0ull;

struct MapRow {
  const char* name;
  MapRequest req;
  int errnum;                      // 0 = success
  MapPlan::Kind kind = MapPlan::Kind::kNewMapping;
};

// The fixture every row runs against: one valid mapping, one vaddr-invalidated mapping, an Intel-
// style IOVA list (a hole at the MSI window) and a 4 KiB minimum page size.
class MapPlannerTable : public ::testing::TestWithParam<MapRow> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tree_.Insert(MakeDma(0x100000, 0x10000, 0x7f0000000000)).has_value());
    ASSERT_TRUE(tree_.Insert(MakeDma(0x200000, 0x10000, 0x7f0000100000, kProtRead, true)).has_value());
  }
  DmaTree tree_;
  IovaList iovas_{{{0, 0xfedfffff}, {0xfef00000, kTop}}};
};

TEST_P(MapPlannerTable, ErrnoAndTreeUnchanged) {
  const MapRow& row = GetParam();
  auto before = Snapshot(tree_);
  auto plan = PlanMap(row.req, tree_, iovas_, kPg);
  EXPECT_EQ(vb::ErrnoOf(plan), row.errnum) << row.name;
  if (plan) {
    EXPECT_EQ(plan->kind, row.kind) << row.name;
  }
  EXPECT_EQ(Snapshot(tree_), before) << row.name;
}

INSTANTIATE_TEST_SUITE_P(
    Rows, MapPlannerTable,
    ::testing::Values(
        MapRow{"ok_rw", {R | W, 0x7f0000200000, 0x0, 0x1000}, 0},
        MapRow{"ok_read_only", {R, 0x7f0000200000, 0x0, 0x1000}, 0},
        MapRow{"ok_write_only", {W, 0x7f0000200000, 0x0, 0x1000}, 0},
        MapRow{"ok_ends_at_top_of_space", {R, 0x1000, kTop - 0xfff, 0x1000}, 0},
        MapRow{"row1_unknown_flag", {R | 8, 0x1000, 0x0, 0x1000}, EINVAL},
        MapRow{"row1_high_flag", {R | 0x80000000u, 0x1000, 0x0, 0x1000}, EINVAL},
        MapRow{"row3_rw_and_vaddr", {R | V, 0x1000, 0x200000, 0x10000}, EINVAL},
        MapRow{"row3_no_flags", {0, 0x1000, 0x0, 0x1000}, EINVAL},
        MapRow{"row4_size_zero", {R, 0x1000, 0x0, 0}, EINVAL},
        MapRow{"row4_size_unaligned", {R, 0x1000, 0x0, 0x1800}, EINVAL},
        MapRow{"row4_iova_unaligned", {R, 0x1000, 0x800, 0x1000}, EINVAL},
        MapRow{"row4_vaddr_unaligned", {R, 0x1001, 0x0, 0x1000}, EINVAL},
        MapRow{"row5_iova_wraps", {R, 0x1000, kTop - 0xfff, 0x2000}, EINVAL},
        MapRow{"row5_vaddr_wraps", {R, kTop - 0xfff, 0x0, 0x2000}, EINVAL},
        MapRow{"row4_before_row5", {R, 0x1000, kTop - 0xfff, 0x1800}, EINVAL},
        MapRow{"row6_vaddr_on_unmapped", {V, 0x1000, 0x300000, 0x10000}, ENOENT},
        MapRow{"row6b_vaddr_on_valid_mapping", {V, 0x1000, 0x100000, 0x10000}, EINVAL},
        MapRow{"row6b_vaddr_size_differs", {V, 0x1000, 0x200000, 0x8000}, EINVAL},
        MapRow{"row6b_vaddr_iova_differs", {V, 0x1000, 0x1ff000, 0x10000}, EINVAL},
        MapRow{"row6c_vaddr_update", {V, 0x7f0000900000, 0x200000, 0x10000}, 0,
               MapPlan::Kind::kUpdateVaddr},
        MapRow{"row7_exact_overlap", {R, 0x1000, 0x100000, 0x10000}, EEXIST},
        MapRow{"row7_one_page_overlap_at_start", {R, 0x1000, 0xff000, 0x2000}, EEXIST},
        MapRow{"row7_one_page_overlap_at_end", {R, 0x1000, 0x10f000, 0x1000}, EEXIST},
        MapRow{"row7_covers_mapping", {R, 0x1000, 0x0, 0x1000000}, EEXIST},
        MapRow{"row7_invalidated_mapping_still_blocks", {R, 0x1000, 0x200000, 0x1000}, EEXIST},
        MapRow{"row9_inside_msi_hole", {R, 0x1000, 0xfee00000, 0x1000}, EINVAL},
        MapRow{"row9_straddles_two_ranges", {R, 0x1000, 0xfed00000, 0x300000}, EINVAL}),
    [](const ::testing::TestParamInfo<MapRow>& info) { return std::string(info.param.name); });

TEST(MapPlanner, EntryLimitGivesEnospcOnlyAfterOverlapCheck) {
  DmaTree tree(1);
  ASSERT_TRUE(tree.Insert(MakeDma(0x0, 0x1000)).has_value());
  IovaList any;
  auto before = Snapshot(tree);
  EXPECT_EQ(vb::ErrnoOf(PlanMap({R, 0x1000, 0x1000, 0x1000}, tree, any, kPg)), ENOSPC);
  EXPECT_EQ(vb::ErrnoOf(PlanMap({R, 0x1000, 0x0, 0x1000}, tree, any, kPg)), EEXIST);
  EXPECT_EQ(Snapshot(tree), before);
}

TEST(MapPlanner, EmptyIovaListAcceptsAnyIova) {
  DmaTree tree;
  IovaList none;
  EXPECT_TRUE(PlanMap({R, 0x1000, 0xfee00000, 0x1000}, tree, none, kPg).has_value());
  EXPECT_TRUE(PlanMap({R, 0x1000, 1ull << 63, 0x1000}, tree, none, kPg).has_value());
}

TEST(MapPlanner, AlignmentFollowsTheMinimumPageSize) {
  DmaTree tree;
  IovaList none;
  EXPECT_EQ(vb::ErrnoOf(PlanMap({R, 0x200000, 0x1000, 0x200000}, tree, none, 0x200000)), EINVAL);
  EXPECT_TRUE(PlanMap({R, 0x200000, 0x200000, 0x200000}, tree, none, 0x200000).has_value());
}

TEST(MapPlanner, PlanCarriesProtAndRangeAndVaddrCommitRevalidates) {
  DmaTree tree;
  ASSERT_TRUE(tree.Insert(MakeDma(0x4000, 0x2000, 0x1000, kProtRead | kProtWrite, true)).has_value());
  IovaList none;
  auto p = PlanMap({W, 0x9000, 0x10000, 0x3000}, tree, none, kPg);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->prot, kProtWrite);
  EXPECT_EQ(p->last, 0x12fffu);
  auto u = PlanMap({V, 0xa000, 0x4000, 0x2000}, tree, none, kPg);
  ASSERT_TRUE(u.has_value());
  ASSERT_EQ(u->target, tree.FindExact(0x4000));
  CommitVaddrUpdate(*u);
  EXPECT_FALSE(tree.FindExact(0x4000)->vaddr_invalid);
  EXPECT_EQ(tree.FindExact(0x4000)->vaddr, 0xa000u);
  // A second update of the now-valid mapping is refused.
  EXPECT_EQ(vb::ErrnoOf(PlanMap({V, 0xb000, 0x4000, 0x2000}, tree, none, kPg)), EINVAL);
}

}  // namespace
}  // namespace vfio::type1
