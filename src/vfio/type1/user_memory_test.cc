#include "vfio/type1/user_memory.h"

#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstring>

namespace vfio::type1 {
namespace {

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

// Three adjacent VMAs with different permissions, then a hole: rw | r | none | (unmapped).
class UserMemoryLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = static_cast<char*>(mmap(nullptr, 4 * kSpan, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(base_, MAP_FAILED);
    ASSERT_EQ(mprotect(base_ + kSpan, kSpan, PROT_READ), 0);
    ASSERT_EQ(mprotect(base_ + 2 * kSpan, kSpan, PROT_NONE), 0);
    ASSERT_EQ(munmap(base_ + 3 * kSpan, kSpan), 0);
  }
  void TearDown() override { munmap(base_, 3 * kSpan); }
  uint64_t rw() const { return Addr(base_); }
  uint64_t ro() const { return Addr(base_ + kSpan); }
  uint64_t none() const { return Addr(base_ + 2 * kSpan); }
  uint64_t hole() const { return Addr(base_ + 3 * kSpan); }

  // Both sizes: the small path (madvise populate) and the large path (/proc/self/maps).
  static constexpr uint64_t kSpan = 4ull << 20;
  char* base_ = nullptr;
};

TEST_F(UserMemoryLayout, ReadableAndWritableMemoryPasses) {
  for (uint64_t size : {uint64_t{0x1000}, uint64_t{kSpan}}) {
    EXPECT_TRUE(UserMemory::CheckRange(rw(), size, true).has_value()) << size;
    EXPECT_TRUE(UserMemory::CheckRange(ro(), size, false).has_value()) << size;
    EXPECT_TRUE(UserMemory::CheckRangeByMaps(rw(), size, true).has_value()) << size;
  }
  // Across the rw/ro boundary: readable all the way.
  EXPECT_TRUE(UserMemory::CheckRange(ro() - 0x1000, 0x2000, false).has_value());
  EXPECT_TRUE(UserMemory::CheckRange(rw(), 2 * kSpan, false).has_value());
}

TEST_F(UserMemoryLayout, WriteMappingOfReadOnlyMemoryIsEfault) {
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(ro(), 0x1000, true)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(ro(), kSpan, true)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(rw(), 2 * kSpan, true)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(ro() - 0x1000, 0x2000, true)), EFAULT);
}

TEST_F(UserMemoryLayout, ProtNoneIsEfaultEitherWay) {
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(none(), 0x1000, false)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(none(), kSpan, true)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(ro(), 2 * kSpan, false)), EFAULT);
}

TEST_F(UserMemoryLayout, UnmappedOrWrappingIsEfault) {
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(hole(), 0x1000, false)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(hole(), kSpan, false)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(0, 0x1000, false)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(~0ull - 0xfff, 0x2000, false)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRangeByMaps(hole() - 0x1000, 0x2000, false)), EFAULT);
}

TEST(UserMemory, AccessOkIsOnlyTheUserAddressSpaceBound) {
  EXPECT_TRUE(UserMemory::AccessOk(0, 8));  // NULL passes access_ok; the copy faults later
  EXPECT_TRUE(UserMemory::AccessOk(UserMemory::kTaskSizeMax - 8, 8));
  EXPECT_FALSE(UserMemory::AccessOk(UserMemory::kTaskSizeMax - 8, 9));
  EXPECT_FALSE(UserMemory::AccessOk(~0ull, 2));
}

TEST(UserMemory, CopiesNeverCrashOnBadAddresses) {
  uint64_t v = 0x1122334455667788ull, out = 0;
  ASSERT_TRUE(UserMemory::CopyFromUser(&out, Addr(&v), 8).has_value());
  EXPECT_EQ(out, v);
  ASSERT_TRUE(UserMemory::CopyToUser(Addr(&out), &v, 8).has_value());
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CopyFromUser(&out, 0, 8)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CopyToUser(0, &v, 8)), EFAULT);
  void* ro = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ro, MAP_FAILED);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CopyToUser(Addr(ro), &v, 8)), EFAULT);
  EXPECT_TRUE(UserMemory::CopyFromUser(&out, Addr(ro), 8).has_value());
  EXPECT_EQ(out, 0u);
  munmap(ro, 4096);
}

}  // namespace
}  // namespace vfio::type1
