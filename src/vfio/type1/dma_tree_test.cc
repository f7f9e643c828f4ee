#include "vfio/type1/dma_tree.h"

#include <gtest/gtest.h>

#include "base/fail_point.h"
#include "vfio/type1/dma_tree_test_util.h"

namespace vfio::type1 {
namespace {

using testing::MakeDma;
using testing::Snapshot;

constexpr uint64_t kGiB = 1ull << 30;

TEST(DmaTree, OneGibMapIsOneRecord) {
  DmaTree t;
  ASSERT_TRUE(t.Insert(MakeDma(0, kGiB)).has_value());
  EXPECT_EQ(t.Size(), 1u);
  EXPECT_EQ(t.FindContaining(kGiB - 1)->iova, 0u);
  EXPECT_EQ(t.FindContaining(kGiB), nullptr);
}

TEST(DmaTree, InsertRefusesAnyOverlapWithEexistAndChangesNothing) {
  DmaTree t;
  ASSERT_TRUE(t.Insert(MakeDma(0x10000, 0x10000)).has_value());
  auto before = Snapshot(t);
  for (auto [iova, size] : {std::pair<uint64_t, uint64_t>{0x10000, 0x1000}, {0xf000, 0x2000},
                            {0x1f000, 0x1000}, {0x0, 0x100000}, {0x18000, 0x1}}) {
    EXPECT_EQ(vb::ErrnoOf(t.Insert(MakeDma(iova, size))), EEXIST) << std::hex << iova;
    EXPECT_EQ(Snapshot(t), before);
  }
  // Touching neighbours are fine and are not merged.
  ASSERT_TRUE(t.Insert(MakeDma(0xf000, 0x1000)).has_value());
  ASSERT_TRUE(t.Insert(MakeDma(0x20000, 0x1000)).has_value());
  EXPECT_EQ(t.Size(), 3u);
}

TEST(DmaTree, InsertRejectsZeroSizeAndWrapButAcceptsEndAtTop) {
  DmaTree t;
  EXPECT_EQ(vb::ErrnoOf(t.Insert(MakeDma(0x1000, 0))), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(t.Insert(MakeDma(~0ull - 0xfff, 0x2000))), EINVAL);
  ASSERT_TRUE(t.Insert(MakeDma(~0ull - 0xfff, 0x1000)).has_value());
  EXPECT_EQ(t.FindContaining(~0ull)->iova, ~0ull - 0xfff);
  EXPECT_EQ(t.Overlapping(0, ~0ull).begin()->second.iova, ~0ull - 0xfff);
}

TEST(DmaTree, EntryLimitGivesEnospcAfterOverlapCheck) {
  DmaTree t(2);
  ASSERT_TRUE(t.Insert(MakeDma(0x0, 0x1000)).has_value());
  ASSERT_TRUE(t.Insert(MakeDma(0x1000, 0x1000)).has_value());
  EXPECT_EQ(t.Available(), 0u);
  EXPECT_EQ(vb::ErrnoOf(t.Insert(MakeDma(0x2000, 0x1000))), ENOSPC);
  EXPECT_EQ(vb::ErrnoOf(t.Insert(MakeDma(0x1000, 0x1000))), EEXIST);  // kernel order: EEXIST first
  t.Extract(0x0);
  EXPECT_EQ(t.Available(), 1u);
  EXPECT_TRUE(t.Insert(MakeDma(0x2000, 0x1000)).has_value());
}

TEST(DmaTree, PrepareFailsWithEnomemAtFailPointAndCommitCannotFail) {
  DmaTree t;
  vb::FailInjector::ArmNth(1);
  auto p = DmaTree::Prepare(MakeDma(0x1000, 0x1000));
  vb::FailInjector::Disarm();
  EXPECT_EQ(vb::ErrnoOf(p), ENOMEM);
  EXPECT_EQ(t.Size(), 0u);
  auto ok = DmaTree::Prepare(MakeDma(0x1000, 0x1000));
  ASSERT_TRUE(ok.has_value());
  Dma& d = t.Commit(std::move(*ok));
  EXPECT_EQ(&d, t.FindExact(0x1000));
}

TEST(DmaTree, FindFirstOverlappingReturnsLowestIntersectingRecord) {
  DmaTree t;
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(t.Insert(MakeDma(i * 0x10000, 0x4000)).has_value());
  EXPECT_EQ(t.FindFirstOverlapping(0x3fff, 0x100000)->iova, 0u);
  EXPECT_EQ(t.FindFirstOverlapping(0x4000, 0x100000)->iova, 0x10000u);
  EXPECT_EQ(t.FindFirstOverlapping(0x4000, 0xffff), nullptr);
  auto r = t.Overlapping(0x13fff, 0x30000);
  std::vector<uint64_t> got;
  for (auto& [iova, d] : r) got.push_back(iova);
  EXPECT_EQ(got, (std::vector<uint64_t>{0x10000, 0x20000, 0x30000}));
  EXPECT_TRUE(t.Overlapping(0x4000, 0xffff).empty());
}

TEST(DmaTree, BisectsOnlyWhenARecordCrossesEitherEnd) {
  DmaTree t;
  ASSERT_TRUE(t.Insert(MakeDma(0x10000, 0x10000)).has_value());
  EXPECT_FALSE(t.Bisects(0x10000, 0x1ffff));
  EXPECT_FALSE(t.Bisects(0x0, 0x2ffff));
  EXPECT_TRUE(t.Bisects(0x11000, 0x2ffff));
  EXPECT_TRUE(t.Bisects(0x0, 0x1efff));
  EXPECT_FALSE(t.Bisects(0x20000, 0x2ffff));
}

TEST(DmaTree, RemoveRangeAndClear) {
  DmaTree t;
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(t.Insert(MakeDma(i * 0x1000, 0x1000)).has_value());
  auto r = t.Overlapping(0x2000, 0x4fff);
  EXPECT_EQ(t.Remove(r.begin(), r.end()), 3u);
  EXPECT_EQ(t.Size(), 7u);
  EXPECT_EQ(t.FindContaining(0x3000), nullptr);
  t.Clear();
  EXPECT_TRUE(t.Empty());
  EXPECT_EQ(t.Available(), kDefaultDmaEntryLimit);
}

}  // namespace
}  // namespace vfio::type1
