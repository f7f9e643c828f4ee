// The opt-in caches of the MAP_DMA user-pointer checks (docs/design/0007): the VMA cache of
// UserMemory and the RLIMIT_MEMLOCK cache of LockedMemory. They must answer exactly as the
// uncached checks whenever the generation / the limit was refreshed after a change, and never
// answer EFAULT for mapped memory.
#include <sys/mman.h>
#include <sys/resource.h>

#include <cstring>

#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/memlock_test_util.h"
#include "vfio/type1/user_memory.h"

namespace vfio::type1 {
namespace {

using vfio::testing::Type1Of;

using vfio::testing::VfioFixture;

void* MapAnon(size_t n, int prot = PROT_READ | PROT_WRITE) {
  void* p = mmap(nullptr, n, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(p, MAP_FAILED);
  return p;
}
uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

class CachedChecks : public VfioFixture {
 protected:
  void SetUp() override {
    VfioFixture::SetUp();
    UserMemory::SetVmaCache(true);
    LockedMemory::SetLimitCache(true);
  }
  void TearDown() override {
    UserMemory::SetVmaCache(false);
    LockedMemory::SetLimitCache(false);
    VfioFixture::TearDown();
  }
  static MapRequest Rw(uint64_t iova, const void* p, uint64_t size) {
    return MapRequest{kMapFlagRead | kMapFlagWrite, Addr(p), iova, size};
  }
};

TEST_F(CachedChecks, MapAfterMunmapWithGenerationBumpIsEfaultAndChangesNothing) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  for (size_t size : {size_t{4096}, size_t{4} << 20}) {  // both sides of kPopulateMaxBytes
    void* p = MapAnon(size);
    ASSERT_TRUE(t1.MapDma(Rw(0x100000, p, size)).has_value()) << size;  // fills the cache
    ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, 0x100000, size}).has_value());
    ASSERT_EQ(munmap(p, size), 0);
    UserMemory::InvalidateVmaCache();  // what the preload's munmap interposer does
    const uint64_t locked = t1.locked_bytes();
    EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Rw(0x100000, p, size))), EFAULT) << size;
    EXPECT_EQ(t1.mapping_count(), 0u);
    EXPECT_EQ(t1.locked_bytes(), locked);
    uint8_t byte = 0;
    EXPECT_FALSE(Dev("01:00.0").dma().Read(0x100000, &byte, 1).has_value());
  }
}

TEST_F(CachedChecks, MprotectWithGenerationBumpRefusesAWritableMapping) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  void* p = MapAnon(8192);
  ASSERT_TRUE(t1.MapDma(Rw(0x200000, p, 8192)).has_value());
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, 0x200000, 8192}).has_value());
  ASSERT_EQ(mprotect(p, 8192, PROT_READ), 0);
  UserMemory::InvalidateVmaCache();
  EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Rw(0x200000, p, 8192))), EFAULT);
  EXPECT_TRUE(t1.MapDma(MapRequest{kMapFlagRead, Addr(p), 0x200000, 8192}).has_value());
  munmap(p, 8192);
}

TEST_F(CachedChecks, NewMappingUnknownToTheCacheIsAcceptedWithoutABump) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  void* warm = MapAnon(4096);
  ASSERT_TRUE(t1.MapDma(Rw(0x300000, warm, 4096)).has_value());  // snapshot taken
  // glibc-internal mmaps bypass the interposers: a miss must re-read, never answer EFAULT.
  void* fresh = MapAnon(65536);
  EXPECT_TRUE(t1.MapDma(Rw(0x400000, fresh, 65536)).has_value());
  EXPECT_EQ(t1.mapping_count(), 2u);
  (void)t1.UnmapDma(UnmapRequest{kUnmapFlagAll, 0, 0});
  munmap(fresh, 65536);
  munmap(warm, 4096);
}

TEST_F(CachedChecks, TheGenerationIsWhatMakesTheCacheNoticeAnUnmap) {
  // The documented contract, shown both ways: a stale snapshot still says "mapped"; the bump
  // makes the same check exact.
  void* p = MapAnon(4096);
  ASSERT_TRUE(UserMemory::CheckRange(Addr(p), 4096, true).has_value());
  ASSERT_EQ(munmap(p, 4096), 0);
  EXPECT_TRUE(UserMemory::CheckRange(Addr(p), 4096, true).has_value());
  const uint64_t gen = UserMemory::vma_generation();
  UserMemory::InvalidateVmaCache();
  EXPECT_GT(UserMemory::vma_generation(), gen);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(Addr(p), 4096, true)), EFAULT);
}

TEST_F(CachedChecks, UncachedCheckIsExactWithoutAnyBump) {
  UserMemory::SetVmaCache(false);
  void* p = MapAnon(4096);
  ASSERT_TRUE(UserMemory::CheckRange(Addr(p), 4096, true).has_value());
  ASSERT_EQ(munmap(p, 4096), 0);
  EXPECT_EQ(vb::ErrnoOf(UserMemory::CheckRange(Addr(p), 4096, true)), EFAULT);
}

TEST_F(CachedChecks, LoweredMemlockLimitBitesOnlyAfterRefresh) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  void* p = MapAnon(65536);
  const uint64_t base = LockedMemory::ForProcess().locked_bytes();
  if (LockedMemory::MemlockLimitBytes() < base + 65536) GTEST_SKIP() << "RLIMIT_MEMLOCK below 64 KiB";
  {
    testing::ScopedMemlockLimit limit(base + 16384);
    // The cached limit is the one read before setrlimit: the charge still passes. This is the
    // cache's documented window; the setrlimit interposer closes it by refreshing.
    ASSERT_TRUE(t1.MapDma(Rw(0x500000, p, 65536)).has_value());
    ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, 0x500000, 65536}).has_value());
    LockedMemory::RefreshLimit();
    EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Rw(0x500000, p, 65536))), ENOMEM);
    EXPECT_EQ(t1.locked_bytes(), 0u);
    EXPECT_EQ(t1.mapping_count(), 0u);
    EXPECT_TRUE(t1.MapDma(Rw(0x500000, p, 16384)).has_value());
    EXPECT_EQ(t1.locked_bytes(), 16384u);
  }
  LockedMemory::RefreshLimit();
  (void)t1.UnmapDma(UnmapRequest{kUnmapFlagAll, 0, 0});
  munmap(p, 65536);
}

TEST_F(CachedChecks, LimitRaisedBehindTheCacheIsNoFalseEnomem) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  void* p = MapAnon(65536);
  const uint64_t base = LockedMemory::ForProcess().locked_bytes();
  {
    testing::ScopedMemlockLimit limit(base + 16384);
    LockedMemory::RefreshLimit();  // the cache now holds the low limit
    rlimit rl{};
    ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
    rl.rlim_cur = base + 131072;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) GTEST_SKIP() << "hard limit";
    ASSERT_EQ(setrlimit(RLIMIT_MEMLOCK, &rl), 0);  // no refresh: as prlimit from elsewhere
    EXPECT_TRUE(t1.MapDma(Rw(0x600000, p, 65536)).has_value());
    EXPECT_EQ(t1.locked_bytes(), 65536u);
    (void)t1.UnmapDma(UnmapRequest{kUnmapFlagAll, 0, 0});
  }
  LockedMemory::RefreshLimit();
  munmap(p, 65536);
}

TEST_F(CachedChecks, UncachedChargeSeesSetrlimitAtOnce) {
  LockedMemory::SetLimitCache(false);
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  void* p = MapAnon(65536);
  {
    testing::ScopedMemlockLimit limit(LockedMemory::ForProcess().locked_bytes() + 16384);
    EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Rw(0x500000, p, 65536))), ENOMEM);
    EXPECT_EQ(t1.mapping_count(), 0u);
  }
  munmap(p, 65536);
}

}  // namespace
}  // namespace vfio::type1
