// Annotated locks. Mutex and SharedMutex wrap the std primitives with Clang thread-safety
// capabilities and, in debug builds, a per-thread lock-order check against the ranks in
// base/lock_order.h. MutexLock / ReaderLock / WriterLock are the scoped guards.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <shared_mutex>

#include "base/lock_order.h"
#include "base/thread_annotations.h"

#if !defined(NDEBUG) && !defined(VB_NO_LOCK_ORDER_CHECK)
#define VB_LOCK_ORDER_CHECK 1
#endif

namespace vb {

namespace lock_order {
// Records that the calling thread takes / drops a lock of `rank`. Aborts on an order violation.
void OnAcquire(LockRank rank, const void* lock);
void OnRelease(LockRank rank, const void* lock);
// For asserting in tests that a path holds no lock (e.g. while waiting for user action).
int HeldCount();
}  // namespace lock_order

class CAPABILITY("mutex") Mutex {
 public:
  explicit Mutex(LockRank rank) : rank_(rank) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() {
#ifdef VB_LOCK_ORDER_CHECK
    lock_order::OnAcquire(rank_, this);
#endif
    mu_.lock();
  }
  void Unlock() RELEASE() {
    mu_.unlock();
#ifdef VB_LOCK_ORDER_CHECK
    lock_order::OnRelease(rank_, this);
#endif
  }
  // Documents (and tells the analysis) that the caller holds the lock.
  void AssertHeld() const ASSERT_CAPABILITY(this) {}
  LockRank rank() const { return rank_; }
  std::mutex& native() { return mu_; }  // for std::condition_variable; see CondVar

 private:
  std::mutex mu_;
  const LockRank rank_;
};

class CAPABILITY("shared_mutex") SharedMutex {
 public:
  explicit SharedMutex(LockRank rank) : rank_(rank) {}
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() {
#ifdef VB_LOCK_ORDER_CHECK
    lock_order::OnAcquire(rank_, this);
#endif
    mu_.lock();
  }
  void Unlock() RELEASE() {
    mu_.unlock();
#ifdef VB_LOCK_ORDER_CHECK
    lock_order::OnRelease(rank_, this);
#endif
  }
  void LockShared() ACQUIRE_SHARED() {
#ifdef VB_LOCK_ORDER_CHECK
    lock_order::OnAcquire(rank_, this);
#endif
    mu_.lock_shared();
  }
  void UnlockShared() RELEASE_SHARED() {
    mu_.unlock_shared();
#ifdef VB_LOCK_ORDER_CHECK
    lock_order::OnRelease(rank_, this);
#endif
  }
  void AssertHeld() const ASSERT_CAPABILITY(this) {}
  void AssertReaderHeld() const VB_THREAD_ANNOTATION(assert_shared_capability(this)) {}

 private:
  std::shared_mutex mu_;
  const LockRank rank_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~WriterLock() RELEASE() { mu_.Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& mu_;
};

class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_.LockShared(); }
  ~ReaderLock() RELEASE() { mu_.UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& mu_;
};

// A condition variable over vb::Mutex. Wait() releases and re-takes the mutex (and keeps the
// lock-order bookkeeping right across the wait).
class CondVar {
 public:
  void Wait(Mutex& mu) REQUIRES(mu);
  // Returns false on timeout.
  bool WaitFor(Mutex& mu, int64_t timeout_ns) REQUIRES(mu);
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace vb
