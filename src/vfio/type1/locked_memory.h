// LockedMemory: a locked-memory account — vfiobox's stand-in for the kernel's mm->locked_vm that
// type1 charges for pinned pages (reference §5.2). ForProcess() is the one account of this process
// (state lives in the process); every Dma remembers the account it charged (Dma::account) so its
// unmap uncharges the same one. Lock-free: the counter is one atomic, updated by CAS.
//
// Rule (6.1 vfio_lock_acct): in pages of the CPU page size, charging n pages fails with ENOMEM when
// mlocked + pinned + n > soft RLIMIT_MEMLOCK / page — unless the calling *thread* has CAP_IPC_LOCK
// in its effective set at the time of the charge, in which case the check is skipped but the pages
// are still counted (and count against later charges made without the capability). Memory mapped
// twice is charged twice. On Linux mlock() raises the same counter: while SetMlockShared(true)
// (the preload library turns it on: `vfiobox run` is where unmodified programs mlock), an account
// made `with_mlock` (ForProcess() is) adds this process's mlock()ed pages, read from
// /proc/self/status (VmLck: the kernel's own count, which does not contain vfiobox's pins). Off
// (the default for the bare C++ API), mlock()ed pages do not count, as before. The other direction — an mlock()
// refused when mlocked + pinned + its pages exceed the limit — is the preload library's mlock
// interposers' job (MlockWithPins; docs/design/0011-locked-memory-accounting.md).
//
// Cost, exact mode (default): one getrlimit per Charge (≈1.2 µs on the dev VM); with a finite
// limit and mlock shared, also one read of /proc/self/status (open, read, close: ≈5 µs); capget only when
// over the limit, every time (so a capability dropped by any means — capset, libcap, a raw
// syscall — counts from the next charge). Opt-in (SetLimitCache): Charge uses a cached limit and
// a cached mlocked count, re-read by RefreshLimit() / RefreshMlocked() — which the preload
// library's setrlimit/prlimit and mlock-family interposers call — so a charge under the limit
// costs no syscall. While mlockall(MCL_FUTURE) is in force (SetMlockFuture) every new mapping
// raises VmLck behind the cache, so cached charges read VmLck each time. A charge the cached data
// would refuse re-reads the limit and VmLck first, so the cache never causes a false ENOMEM; a
// limit lowered or memory mlock()ed behind its back (prlimit from another process, raw syscalls)
// is enforced only from the next refresh or refusal (docs/design/0007-user-pointer-checks.md).
#pragma once

#include <atomic>
#include <cstdint>

#include "base/result.h"

namespace vfio::type1 {

class LockedMemory {
 public:
  // The process-wide account.
  static LockedMemory& ForProcess();

  // An independent account (tests; a future per-client account in daemon mode). Same limit and
  // capability source: this process's soft RLIMIT_MEMLOCK and the calling thread's capabilities;
  // `with_mlock`: it shares the limit with this process's mlock()ed pages, as ForProcess() does.
  explicit LockedMemory(bool with_mlock = false) : with_mlock_(with_mlock) {}
  LockedMemory(const LockedMemory&) = delete;
  LockedMemory& operator=(const LockedMemory&) = delete;

  // Charges `bytes` (rounded up to whole pages). Errors: ENOMEM when over the limit without
  // CAP_IPC_LOCK (nothing charged). Charging 0 bytes always succeeds.
  vb::Result<void> Charge(uint64_t bytes);
  // Returns a previous charge. Never fails (saturates at 0 rather than wrapping).
  void Uncharge(uint64_t bytes);

  uint64_t locked_bytes() const;
  uint64_t locked_pages() const { return pages_.load(std::memory_order_relaxed); }

  // The soft RLIMIT_MEMLOCK in bytes (UINT64_MAX for RLIM_INFINITY).
  static uint64_t MemlockLimitBytes();
  // Whether the calling thread has CAP_IPC_LOCK in its effective set (capget).
  static bool HasCapIpcLock();
  // This process's mlock()ed pages: VmLck of /proc/self/status (raw syscalls; 0 if unreadable).
  static uint64_t MlockedPages();
  static uint64_t PageSize();

  // The limit cache (process-wide, off by default). Turning it on reads the limit once.
  static void SetLimitCache(bool on);
  static bool limit_cache();
  // Re-reads the soft RLIMIT_MEMLOCK into the cache (no effect on Charge while the cache is off).
  // Call after any setrlimit/prlimit of RLIMIT_MEMLOCK.
  static void RefreshLimit();
  // Re-reads VmLck into the cache. Call after any mlock/mlock2/munlock/mlockall/munlockall.
  static void RefreshMlocked();
  // mlockall(MCL_FUTURE) is in force (set by mlockall, cleared by mlockall without it and by
  // munlockall).
  static void SetMlockFuture(bool on);
  // Whether `with_mlock` accounts add this process's mlock()ed pages (process-wide, off by
  // default; turning it on reads VmLck once).
  static void SetMlockShared(bool on);
  static bool mlock_shared();

  // The mlock side of the shared counter, for an mlock()-family call made by this process: runs
  // `call` (the real system call, returning 0 or -1 with errno) with the soft RLIMIT_MEMLOCK
  // lowered by the bytes ForProcess() has pinned (to 1 byte at least, so that a non-zero limit
  // stays non-zero: a zero one is 6.1's EPERM, not ENOMEM), so the kernel's own mlock check —
  // mlocked + new pages (less those already locked) > limit without CAP_IPC_LOCK: ENOMEM — counts
  // the pins too; then restores the limit and re-reads VmLck. With nothing pinned, or an infinite
  // or zero limit, `call` runs as is. Serialized with RefreshLimit and other such calls (the
  // lowered limit is never cached); another thread's getrlimit may see it meanwhile.
  static long MlockWithPins(long (*call)(void* ctx), void* ctx);

 private:
  const bool with_mlock_;
  std::atomic<uint64_t> pages_{0};
};

}  // namespace vfio::type1
