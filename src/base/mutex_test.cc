#include "base/mutex.h"

#include <gtest/gtest.h>

#include <thread>

#include "base/checked.h"
#include "base/fail_point.h"
#include "base/ref_counted.h"
#include "base/result.h"

namespace vb {
namespace {

TEST(LockOrder, InnerAfterOuterIsFine) {
  Mutex outer(LockRank::kVfioGroup);
  Mutex inner(LockRank::kIommuGroup);
  MutexLock a(outer);
  MutexLock b(inner);
#ifdef VB_LOCK_ORDER_CHECK
  EXPECT_EQ(lock_order::HeldCount(), 2);
#endif
}

#ifdef VB_LOCK_ORDER_CHECK
TEST(LockOrderDeathTest, InversionAborts) {
  Mutex outer(LockRank::kVfioGroup);
  Mutex inner(LockRank::kIommuGroup);
  EXPECT_DEATH(
      {
        MutexLock b(inner);
        MutexLock a(outer);
      },
      "lock order violation: taking vfio-group");
}

TEST(LockOrderDeathTest, SameRankTwiceAborts) {
  Mutex one(LockRank::kIommuGroup);
  Mutex two(LockRank::kIommuGroup);
  EXPECT_DEATH(
      {
        MutexLock a(one);
        MutexLock b(two);
      },
      "lock order violation");
}
#endif

TEST(CondVar, WaitForTimesOutAndSignalWakes) {
  Mutex mu(LockRank::kLeaf);
  CondVar cv;
  bool flag = false;
  {
    MutexLock l(mu);
    EXPECT_FALSE(cv.WaitFor(mu, 1000000));
  }
  std::thread t([&] {
    MutexLock l(mu);
    flag = true;
    cv.SignalAll();
  });
  {
    MutexLock l(mu);
    while (!flag) cv.Wait(mu);
  }
  t.join();
  EXPECT_TRUE(flag);
}

Result<int> Half(int v) {
  if (v % 2) return Err(EINVAL, "half: odd");
  return v / 2;
}
Result<int> Quarter(int v) {
  int h = TRY(Half(v));
  return TRY(Half(h));
}

TEST(Result, TryPropagatesTheErrnoAndContext) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().errnum, EINVAL);
  EXPECT_STREQ(r.error().context, "half: odd");
  EXPECT_EQ(r.error().ToString(), "half: odd: Invalid argument");
  EXPECT_EQ(ErrnoOf(r), EINVAL);
}

TEST(Checked, RangesNeverWrap) {
  EXPECT_EQ(*RangeLast(0, 4096), 4095u);
  EXPECT_EQ(*RangeLast(~0ull - 4095, 4096), ~0ull);  // ends exactly at the top: fine
  EXPECT_EQ(ErrnoOf(RangeLast(~0ull - 4095, 8192)), EINVAL);
  EXPECT_EQ(ErrnoOf(RangeLast(~0ull - 4095, 8192, EOVERFLOW)), EOVERFLOW);
  EXPECT_EQ(ErrnoOf(RangeLast(5, 0)), EINVAL);
  EXPECT_FALSE(CheckedAdd(~0ull, 1).has_value());
  EXPECT_FALSE(CheckedMul(1ull << 32, 1ull << 32).has_value());
  EXPECT_TRUE((Interval{0, 9}.Overlaps(Interval{9, 20})));
  EXPECT_FALSE((Interval{0, 9}.Overlaps(Interval{10, 20})));
}

TEST(FailInjector, FailsExactlyTheNth) {
  FailInjector::ArmNth(3);
  EXPECT_FALSE(VB_FAIL_POINT("a"));
  EXPECT_FALSE(VB_FAIL_POINT("b"));
  EXPECT_TRUE(VB_FAIL_POINT("c"));
  EXPECT_FALSE(VB_FAIL_POINT("d"));
  EXPECT_TRUE(FailInjector::Fired());
  EXPECT_EQ(FailInjector::Reached(), 4u);
  FailInjector::Disarm();
  EXPECT_FALSE(VB_FAIL_POINT("e"));
}

struct Counted : RefCounted<Counted> {
  explicit Counted(int* alive) : alive(alive) { ++*alive; }
  ~Counted() { --*alive; }
  int* alive;
};

TEST(RefPtr, LastReferenceDeletes) {
  int alive = 0;
  {
    RefPtr<Counted> a = MakeRef<Counted>(&alive);
    RefPtr<Counted> b = a;
    EXPECT_EQ(a->ref_count_for_test(), 2u);
    a.reset();
    EXPECT_EQ(alive, 1);
  }
  EXPECT_EQ(alive, 0);
}

}  // namespace
}  // namespace vb
