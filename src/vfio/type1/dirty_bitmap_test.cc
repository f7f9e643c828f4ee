#include "vfio/type1/dirty_bitmap.h"

#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace vfio::type1 {
namespace {

constexpr uint64_t kPg = 0x1000;

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

std::unique_ptr<DirtyBitmap> Make(uint64_t pages) {
  auto r = DirtyBitmap::Create(pages * kPg, kPg);
  EXPECT_TRUE(r.has_value());
  return std::move(*r);
}

TEST(DirtyBitmap, DmaWritesMarkExactlyTheTouchedPages) {
  auto b = Make(100);
  b->MarkDirty(0x1fff, 2);        // pages 1 and 2
  b->MarkDirty(70 * kPg, 1);      // page 70
  b->MarkDirty(99 * kPg, 1 << 20);  // clipped at the end: page 99
  b->MarkDirty(200 * kPg, kPg);   // outside: ignored
  b->MarkDirty(0, 0);             // empty: ignored
  std::vector<uint64_t> words(2, 0);
  ASSERT_TRUE(b->ReportToUser(Addr(words.data()), 0, false).has_value());
  EXPECT_EQ(words[0], 0b110u);
  EXPECT_EQ(words[1], (1ull << (70 - 64)) | (1ull << (99 - 64)));
}

TEST(DirtyBitmap, MarkAllReportsEveryPageByDefault) {
  auto b = Make(70);
  std::vector<uint64_t> words(2, 0);
  ASSERT_TRUE(b->ReportToUser(Addr(words.data()), 0, /*mark_all=*/true).has_value());
  EXPECT_EQ(words[0], ~0ull);
  EXPECT_EQ(words[1], 0x3fu);
}

TEST(DirtyBitmap, WordAlignedReportOverwritesCallerBitsInItsWords) {
  auto b = Make(4);
  std::vector<uint64_t> words{0xff00, 0xdead};
  ASSERT_TRUE(b->ReportToUser(Addr(words.data()), 0, true).has_value());
  EXPECT_EQ(words[0], 0xfu);     // whole word overwritten
  EXPECT_EQ(words[1], 0xdeadu);  // untouched word left as it was
}

TEST(DirtyBitmap, MidWordReportOrsTheCallersFirstWord) {
  auto b = Make(4);
  std::vector<uint64_t> words{0x8000000000000001ull, 0};
  ASSERT_TRUE(b->ReportToUser(Addr(words.data()), 2, true).has_value());
  EXPECT_EQ(words[0], 0x8000000000000001ull | (0xfull << 2));
}

TEST(DirtyBitmap, MidWordReportSpillsIntoTheNextWord) {
  auto b = Make(4);
  std::vector<uint64_t> words{0, 0xffff, 0x77};
  ASSERT_TRUE(b->ReportToUser(Addr(words.data()), 62, true).has_value());
  EXPECT_EQ(words[0], 3ull << 62);
  EXPECT_EQ(words[1], 0x3u);  // overwritten, not merged
  EXPECT_EQ(words[2], 0x77u);
}

TEST(DirtyBitmap, Linux61QuirkShiftedBitsSurviveClearAndShowUpLater) {
  // §5.6: a 4-page mapping reported once at bit 2, then read at bit 0, shows 0x3f instead of 0xf.
  auto b = Make(4);
  uint64_t w = 0;
  ASSERT_TRUE(b->ReportToUser(Addr(&w), 2, true).has_value());
  EXPECT_EQ(w, 0x3cu);
  b->ClearReported();
  w = 0;
  ASSERT_TRUE(b->ReportToUser(Addr(&w), 0, true).has_value());
  EXPECT_EQ(w, 0x3fu);
  // A fresh bitmap (STOP + START) has no such bits.
  auto fresh = Make(4);
  w = 0;
  ASSERT_TRUE(fresh->ReportToUser(Addr(&w), 0, true).has_value());
  EXPECT_EQ(w, 0xfu);
}

TEST(DirtyBitmap, ClearReportedKeepsNothingOfAPreciseReport) {
  auto b = Make(8);
  b->MarkDirty(3 * kPg, 1);
  uint64_t w = 0;
  ASSERT_TRUE(b->ReportToUser(Addr(&w), 0, false).has_value());
  EXPECT_EQ(w, 1u << 3);
  b->ClearReported();
  w = 0;
  ASSERT_TRUE(b->ReportToUser(Addr(&w), 0, false).has_value());
  EXPECT_EQ(w, 0u);
}

TEST(DirtyBitmap, UnwritableOrNullUserBitmapIsEfault) {
  auto b = Make(4);
  EXPECT_EQ(vb::ErrnoOf(b->ReportToUser(0, 0, true)), EFAULT);
  void* ro = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ro, MAP_FAILED);
  EXPECT_EQ(vb::ErrnoOf(b->ReportToUser(Addr(ro), 0, true)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(b->ReportToUser(Addr(ro), 3, true)), EFAULT);  // readable, not writable
  munmap(ro, 4096);
}

TEST(DirtyBitmap, ConcurrentMarksAreNeverLost) {
  auto b = Make(4096);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (uint64_t p = t; p < 4096; p += 4) b->MarkDirty(p * kPg, 1);
    });
  for (auto& t : ts) t.join();
  std::vector<uint64_t> words(64, 0);
  ASSERT_TRUE(b->ReportToUser(Addr(words.data()), 0, false).has_value());
  for (uint64_t w : words) EXPECT_EQ(w, ~0ull);
}

TEST(DirtyBitmap, CreateRejectsMoreThanIntMaxPages) {
  EXPECT_EQ(vb::ErrnoOf(DirtyBitmap::Create((0x7fffffffull + 1) * kPg, kPg)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(DirtyBitmap::Create(3 * kPg, 2 * kPg)), EINVAL);  // not a multiple
  EXPECT_EQ(vb::ErrnoOf(DirtyBitmap::Create(3 * kPg, 3 * kPg)), EINVAL);  // not a power of two
}

TEST(VerifyBitmapSize, Linux61Rules) {
  EXPECT_EQ(vb::ErrnoOf(VerifyBitmapSize(0, 8)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(VerifyBitmapSize(1, 0)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(VerifyBitmapSize(65, 8)), EINVAL);
  EXPECT_TRUE(VerifyBitmapSize(65, 16).has_value());
  EXPECT_TRUE(VerifyBitmapSize(64, 8).has_value());
  EXPECT_EQ(vb::ErrnoOf(VerifyBitmapSize(1, (256ull << 20) + 1)), EINVAL);
  EXPECT_TRUE(VerifyBitmapSize(0x7fffffffull, 256ull << 20).has_value());
  EXPECT_EQ(vb::ErrnoOf(VerifyBitmapSize(0x80000000ull, 256ull << 20)), EINVAL);
}

}  // namespace
}  // namespace vfio::type1
