#include "vfio/type1/iova_list.h"

#include <gtest/gtest.h>

#include "base/fail_point.h"
#include "vfio/type1/dma_tree.h"
#include "vfio/type1/dma_tree_test_util.h"

namespace vfio::type1 {
namespace {

using testing::MakeDma;
using vb::Interval;

constexpr uint64_t k48 = (1ull << 48) - 1;
constexpr ReservedRegion kMsi{{0xfee00000, 0xfeefffff}, ReservedKind::kMsi};

TEST(IovaList, IntelStyleAttachExcludesTheMsiWindow) {
  DmaTree none;
  auto l = IovaList().PlanAttach({0, k48}, std::vector{kMsi}, none);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(std::vector<Interval>(l->ranges().begin(), l->ranges().end()),
            (std::vector<Interval>{{0, 0xfedfffff}, {0xfef00000, k48}}));
}

TEST(IovaList, EmptyListAcceptsEverythingAndRangesMustFitOneEntry) {
  EXPECT_TRUE(IovaList().AcceptsRange(0xfee00000, 0xfee00fff));
  IovaList l({{0, 0xfedfffff}, {0xfef00000, k48}});
  EXPECT_TRUE(l.AcceptsRange(0, 0xfff));
  EXPECT_TRUE(l.AcceptsRange(0xfef00000, k48));
  EXPECT_FALSE(l.AcceptsRange(0xfed00000, 0xfef00fff));  // spans the hole
  EXPECT_FALSE(l.AcceptsRange(k48, k48 + 0x1000));
  EXPECT_FALSE(l.AcceptsRange(0xfee00000, 0xfee00fff));
}

TEST(IovaList, SecondDomainIntersectsApertures) {
  DmaTree none;
  IovaList first = *IovaList().PlanAttach({0, k48}, std::vector{kMsi}, none);
  auto both = first.PlanAttach({0x1000, (1ull << 39) - 1}, {}, none);
  ASSERT_TRUE(both.has_value());
  EXPECT_EQ(std::vector<Interval>(both->ranges().begin(), both->ranges().end()),
            (std::vector<Interval>{{0x1000, 0xfedfffff}, {0xfef00000, (1ull << 39) - 1}}));
}

TEST(IovaList, RelaxableDirectRegionsAreNotExcluded) {
  DmaTree none;
  ReservedRegion relax{{0x1000, 0x1fff}, ReservedKind::kDirectRelaxable};
  ReservedRegion direct{{0x4000, 0x4fff}, ReservedKind::kDirect};
  auto l = IovaList().PlanAttach({0, 0xffff}, std::vector{relax, direct}, none);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(std::vector<Interval>(l->ranges().begin(), l->ranges().end()),
            (std::vector<Interval>{{0, 0x3fff}, {0x5000, 0xffff}}));
}

struct AttachRow {
  const char* name;
  Interval aperture;
  std::vector<ReservedRegion> reserved;
  int errnum;
};

// Current state: list [0, 2^48-1] minus the MSI window, one mapping at 0x100000 (64 KiB) and one
// at 2^40 (4 KiB).
class IovaListAttachTable : public ::testing::TestWithParam<AttachRow> {
 protected:
  void SetUp() override {
    list_ = *IovaList().PlanAttach({0, k48}, std::vector{kMsi}, tree_);
    ASSERT_TRUE(tree_.Insert(MakeDma(0x100000, 0x10000)).has_value());
    ASSERT_TRUE(tree_.Insert(MakeDma(1ull << 40, 0x1000)).has_value());
  }
  DmaTree tree_;
  IovaList list_;
};

TEST_P(IovaListAttachTable, ErrnoAndListUnchanged) {
  const AttachRow& row = GetParam();
  IovaList before = list_;
  auto r = list_.PlanAttach(row.aperture, row.reserved, tree_);
  EXPECT_EQ(vb::ErrnoOf(r), row.errnum) << row.name;
  EXPECT_EQ(list_, before) << row.name;
  EXPECT_EQ(tree_.Size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, IovaListAttachTable,
    ::testing::Values(
        AttachRow{"ok_same_aperture", {0, k48}, {kMsi}, 0},
        AttachRow{"ok_relaxable_over_mapping",
                  {0, k48}, {{{0x100000, 0x100fff}, ReservedKind::kDirectRelaxable}}, 0},
        AttachRow{"disjoint_aperture", {1ull << 50, (1ull << 51) - 1}, {}, EINVAL},
        AttachRow{"mapping_below_new_start", {0x200000, k48}, {}, EINVAL},
        AttachRow{"mapping_above_new_end", {0, (1ull << 39) - 1}, {}, EINVAL},
        AttachRow{"reserved_over_mapping", {0, k48}, {{{0x108000, 0x108fff}, ReservedKind::kReserved}},
                  EINVAL},
        AttachRow{"direct_over_mapping", {0, k48}, {{{0xff000, 0x100fff}, ReservedKind::kDirect}},
                  EINVAL},
        AttachRow{"sw_msi_over_mapping", {0, k48}, {{{1ull << 40, (1ull << 40) + 0xfffff},
                                                     ReservedKind::kSwMsi}}, EINVAL},
        AttachRow{"nothing_left", {0, k48}, {{{0, k48}, ReservedKind::kReserved}}, EINVAL}),
    [](const ::testing::TestParamInfo<AttachRow>& info) { return std::string(info.param.name); });

TEST(IovaList, NothingLeftIsEinvalEvenWithoutMappings) {
  DmaTree none;
  EXPECT_EQ(vb::ErrnoOf(IovaList().PlanAttach(
                {0, 0xfff}, std::vector<ReservedRegion>{{{0, 0xfff}, ReservedKind::kMsi}}, none)),
            EINVAL);
}

TEST(IovaList, MappingsMadeWhileTheListWasEmptyAreNotApertureChecked) {
  // 6.1: the aperture check only looks inside the old list's bounds; an emulated-only container
  // has none, so a mapping at 2^60 does not refuse a 48-bit domain here.
  DmaTree tree;
  ASSERT_TRUE(tree.Insert(MakeDma(1ull << 60, 0x1000)).has_value());
  EXPECT_TRUE(IovaList().PlanAttach({0, k48}, {}, tree).has_value());
}

TEST(IovaList, AllocationFailureIsEnomemAndLeavesTheListAsItWas) {
  DmaTree none;
  IovaList l({{0, k48}});
  vb::FailInjector::ArmNth(1);
  auto r = l.PlanAttach({0, k48}, std::vector{kMsi}, none);
  vb::FailInjector::Disarm();
  EXPECT_EQ(vb::ErrnoOf(r), ENOMEM);
  EXPECT_EQ(l, IovaList({{0, k48}}));
}

TEST(IovaList, DetachReSubtractsOnlyTheRemainingGroupsRegions) {
  DmaTree none;
  ReservedRegion other{{0x10000, 0x1ffff}, ReservedKind::kReserved};
  IovaList l = *IovaList().PlanAttach({0, k48}, std::vector{kMsi, other}, none);
  ASSERT_EQ(l.ranges().size(), 3u);
  // The group that brought `other` leaves; its domain remains (no new bounds).
  auto d = l.PlanDetach(nullptr, std::vector{kMsi});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(std::vector<Interval>(d->ranges().begin(), d->ranges().end()),
            (std::vector<Interval>{{0, 0xfedfffff}, {0xfef00000, k48}}));
}

TEST(IovaList, DetachOfADomainWidensToTheRemainingApertures) {
  DmaTree none;
  IovaList l = *IovaList().PlanAttach({0, (1ull << 39) - 1}, {}, none);
  Interval wide = IovaList::ApertureIntersection(std::vector<Interval>{{0, k48}});
  auto d = l.PlanDetach(&wide, std::vector{kMsi});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->ranges().back().last, k48);
  // No domain left at all: the whole 64-bit space.
  Interval all = IovaList::ApertureIntersection({});
  auto e = l.PlanDetach(&all, {});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(std::vector<Interval>(e->ranges().begin(), e->ranges().end()),
            (std::vector<Interval>{{0, ~0ull}}));
}

TEST(IovaList, DetachKeepsTheOldListWhenTheRebuildLeavesNothing) {
  IovaList l({{0x1000, 0x1fff}});
  auto d = l.PlanDetach(nullptr, std::vector<ReservedRegion>{{{0, 0xffff}, ReservedKind::kReserved}});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, l);
  EXPECT_EQ(*IovaList().PlanDetach(nullptr, {}), IovaList());  // empty stays empty
}

}  // namespace
}  // namespace vfio::type1
