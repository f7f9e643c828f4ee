#include "vfio/type1/locked_memory.h"

#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <thread>
#include <vector>

#include "vfio/type1/memlock_test_util.h"

namespace vfio::type1 {
namespace {

using testing::ScopedMemlockLimit;

// The sanitizers' common interceptors make mlock/mlockall do nothing (they cannot lock their
// shadow memory), so the tests that need the kernel's mlocked count skip in ASan and TSan builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VB_MLOCK_IS_A_NOOP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VB_MLOCK_IS_A_NOOP 1
#endif
#endif
#ifdef VB_MLOCK_IS_A_NOOP
#define SKIP_WITHOUT_REAL_MLOCK() GTEST_SKIP() << "mlock is a no-op under the sanitizers"
#else
#define SKIP_WITHOUT_REAL_MLOCK() (void)0
#endif


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

// Issue 14 item 1: mm->locked_vm is one counter for mlock() and type1's pins. An account made
// with_mlock (ForProcess() is) refuses a charge when mlocked + pinned + new > limit, and munlock
// gives the room back at once.
// RAII for the process-wide switch the preload library turns on.
struct ScopedMlockShared {
  ScopedMlockShared() { LockedMemory::SetMlockShared(true); }
  ~ScopedMlockShared() { LockedMemory::SetMlockShared(false); }
};

TEST(LockedMemory, MlockedPagesAndChargesShareTheLimit) {
  SKIP_WITHOUT_REAL_MLOCK();
  ScopedMlockShared shared;
  const uint64_t base = LockedMemory::MlockedPages();
  ScopedMemlockLimit scope((base + 16) * kPg);
  LockedMemory acct(/*with_mlock=*/true);
  void* m = mmap(nullptr, 8 * kPg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  ASSERT_EQ(mlock(m, 8 * kPg), 0);
  EXPECT_EQ(LockedMemory::MlockedPages(), base + 8);
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(9 * kPg)), ENOMEM);
  EXPECT_EQ(acct.locked_pages(), 0u);
  ASSERT_TRUE(acct.Charge(8 * kPg).has_value());  // 8 mlocked + 8 pinned: exactly the limit
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(kPg)), ENOMEM);
  ASSERT_EQ(munlock(m, 8 * kPg), 0);
  EXPECT_TRUE(acct.Charge(8 * kPg).has_value());
  acct.Uncharge(8 * kPg);  // 8 pinned
  ASSERT_EQ(mlock(m, 4 * kPg), 0);  // + 4 mlocked
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(6 * kPg)), ENOMEM);
  LockedMemory plain;  // an account without the process's mlock count (tests, daemon clients)
  EXPECT_TRUE(plain.Charge(16 * kPg).has_value());
  LockedMemory::SetMlockShared(false);  // the bare C++ API's default: mlock does not count
  EXPECT_TRUE(acct.Charge(6 * kPg).has_value());
  acct.Uncharge(6 * kPg);
  LockedMemory::SetMlockShared(true);
  munlock(m, 4 * kPg);
  munmap(m, 8 * kPg);
  acct.Uncharge(8 * kPg);
}

// Cached mode: a charge the cached mlock count would refuse re-reads VmLck (no false ENOMEM after
// an munlock nobody reported), and under mlockall(MCL_FUTURE) the count is read every time.
TEST(LockedMemory, CachedMlockCountNeverRefusesOnAStaleFigure) {
  SKIP_WITHOUT_REAL_MLOCK();
  ScopedMlockShared shared;
  const uint64_t base = LockedMemory::MlockedPages();
  ScopedMemlockLimit scope((base + 16) * kPg);
  void* m = mmap(nullptr, 8 * kPg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  ASSERT_EQ(mlock(m, 8 * kPg), 0);
  LockedMemory::SetLimitCache(true);  // caches the limit and 8 mlocked pages
  LockedMemory acct(/*with_mlock=*/true);
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(9 * kPg)), ENOMEM);
  ASSERT_EQ(munlock(m, 8 * kPg), 0);  // not reported: the cache still says 8
  EXPECT_TRUE(acct.Charge(16 * kPg).has_value());
  acct.Uncharge(16 * kPg);
  // MCL_FUTURE: the mlocked figure is read at each charge, so memory locked behind the cache counts.
  LockedMemory::RefreshMlocked();
  LockedMemory::SetMlockFuture(true);
  ASSERT_EQ(mlock(m, 8 * kPg), 0);  // not reported either
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(9 * kPg)), ENOMEM);
  LockedMemory::SetMlockFuture(false);
  LockedMemory::SetLimitCache(false);
  munlock(m, 8 * kPg);
  munmap(m, 8 * kPg);
}

// The other direction: an mlock() made through MlockWithPins (the preload library's mlock
// interposers) fails ENOMEM when mlocked + pinned + its pages exceed the limit; pages already
// locked are not counted again; munlock and unpinning give room back.
TEST(LockedMemory, MlockWithPinsCountsTheProcessPins) {
  SKIP_WITHOUT_REAL_MLOCK();
  LockedMemory& proc = LockedMemory::ForProcess();
  const uint64_t base = LockedMemory::MlockedPages() + proc.locked_pages();
  ScopedMemlockLimit scope((base + 16) * kPg);
  void* m = mmap(nullptr, 8 * kPg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  struct Args {
    void* addr;
    size_t len;
  };
  auto do_mlock = [](void* ctx) -> long {
    auto* a = static_cast<Args*>(ctx);
    return mlock(a->addr, a->len);
  };
  ASSERT_TRUE(proc.Charge(12 * kPg).has_value());
  Args eight{m, 8 * kPg}, four{m, 4 * kPg};
  errno = 0;
  EXPECT_EQ(LockedMemory::MlockWithPins(do_mlock, &eight), -1);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(LockedMemory::MlockWithPins(do_mlock, &four), 0);
  EXPECT_EQ(LockedMemory::MlockWithPins(do_mlock, &four), 0) << "already locked: not counted again";
  EXPECT_EQ(LockedMemory::MemlockLimitBytes(), (base + 16) * kPg) << "the limit is restored";
  proc.Uncharge(4 * kPg);
  EXPECT_EQ(LockedMemory::MlockWithPins(do_mlock, &eight), 0);
  munlock(m, 8 * kPg);
  munmap(m, 8 * kPg);
  proc.Uncharge(8 * kPg);
}

// The capability is asked at every charge past the limit, in cached mode too: dropped by a raw
// capset (which no interposer sees), it counts from the next charge.
TEST(LockedMemory, CapIpcLockDroppedByARawCapsetCountsAtTheNextCharge) {
  ScopedMemlockLimit scope(4 * kPg, /*keep_cap_ipc_lock=*/true);
  if (!LockedMemory::HasCapIpcLock()) GTEST_SKIP() << "process lacks CAP_IPC_LOCK";
  LockedMemory::SetLimitCache(true);
  LockedMemory acct;
  ASSERT_TRUE(acct.Charge(8 * kPg).has_value());  // past the limit, with the capability
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
  ASSERT_EQ(syscall(SYS_capget, &hdr, caps), 0);
  caps[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
  ASSERT_EQ(syscall(SYS_capset, &hdr, caps), 0);
  EXPECT_EQ(vb::ErrnoOf(acct.Charge(kPg)), ENOMEM);
  EXPECT_EQ(acct.locked_pages(), 8u);
  LockedMemory::SetLimitCache(false);
  acct.Uncharge(8 * kPg);
}

TEST(LockedMemory, ProcessAccountIsOneObject) {
  EXPECT_EQ(&LockedMemory::ForProcess(), &LockedMemory::ForProcess());
}

}  // namespace
}  // namespace vfio::type1
