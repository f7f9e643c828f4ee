#include "vfio/type1/locked_memory.h"

#include <sys/resource.h>

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "vfio/type1/memlock_test_util.h"

namespace vfio::type1 {
namespace {

using testing::ScopedMemlockLimit;

constexpr uint64_t kPg = 4096;

TEST(LockedMemory, OverTheSoftLimitWithoutCapIpcLockIsEnomemAndChargesNothing) {
  ScopedMemlockLimit scope(16 * kPg);
  EXPECT_FALSE(LockedMemory::HasCapIpcLock());
  LockedMemory acct;
  ASSERT_TRUE(acct.Charge(10 * kPg).has_value());
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(7 * kPg)), ENOMEM);
  EXPECT_EQ(acct.locked_bytes(), 10 * kPg);
  ASSERT_TRUE(acct.Charge(6 * kPg).has_value());  // exactly at the limit is allowed
  EXPECT_EQ(acct.locked_bytes(), 16 * kPg);
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(1)), ENOMEM);  // a partial page counts as a page
  acct.Uncharge(16 * kPg);
  EXPECT_EQ(acct.locked_bytes(), 0u);
}

TEST(LockedMemory, TheSameMemoryChargedTwiceCountsTwice) {
  ScopedMemlockLimit scope(16 * kPg);
  LockedMemory acct;
  ASSERT_TRUE(acct.Charge(8 * kPg).has_value());
  ASSERT_TRUE(acct.Charge(8 * kPg).has_value());  // same vaddr range, second MAP: no dedup
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(kPg)), ENOMEM);
  EXPECT_EQ(acct.locked_pages(), 16u);
}

TEST(LockedMemory, CapIpcLockSkipsTheCheckButStillCounts) {
  LockedMemory acct;
  {
    ScopedMemlockLimit scope(4 * kPg, /*keep_cap_ipc_lock=*/true);
    if (!LockedMemory::HasCapIpcLock()) GTEST_SKIP() << "process lacks CAP_IPC_LOCK";
    ASSERT_TRUE(acct.Charge(100 * kPg).has_value());
    EXPECT_EQ(acct.locked_pages(), 100u);
  }
  // The pages charged with the capability count against later charges made without it.
  ScopedMemlockLimit scope(200 * kPg);
  EXPECT_TRUE(acct.Charge(100 * kPg).has_value());
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(kPg)), ENOMEM);
  acct.Uncharge(200 * kPg);
}

TEST(LockedMemory, LoweringTheLimitBelowWhatIsLockedRefusesNewChargesButUnchargeWorks) {
  LockedMemory acct;
  {
    ScopedMemlockLimit scope(64 * kPg);
    ASSERT_TRUE(acct.Charge(32 * kPg).has_value());
  }
  ScopedMemlockLimit scope(8 * kPg);
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(kPg)), ENOMEM);
  acct.Uncharge(32 * kPg);
  EXPECT_TRUE(acct.Charge(8 * kPg).has_value());
}

TEST(LockedMemory, LimitIsReadAtEveryChargeAndZeroBytesAlwaysSucceed) {
  LockedMemory acct;
  ScopedMemlockLimit scope(0);
  EXPECT_TRUE(acct.Charge(0).has_value());
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(kPg)), ENOMEM);
  rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
  rl.rlim_cur = 2 * kPg;
  ASSERT_EQ(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
  EXPECT_TRUE(acct.Charge(kPg).has_value());
}

TEST(LockedMemory, ConcurrentChargesNeverExceedTheLimit) {
  ScopedMemlockLimit scope(1000 * kPg);
  LockedMemory acct;
  std::atomic<int> ok{0};
  // Capabilities are per thread: the workers drop CAP_IPC_LOCK too.
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      ScopedMemlockLimit inner(1000 * kPg);
      for (int i = 0; i < 500; ++i)
        if (acct.Charge(kPg)) ok++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 1000);
  EXPECT_EQ(acct.locked_pages(), 1000u);
}

TEST(LockedMemory, ProcessAccountIsOneObject) {
  EXPECT_EQ(&LockedMemory::ForProcess(), &LockedMemory::ForProcess());
}

}  // namespace
}  // namespace vfio::type1
