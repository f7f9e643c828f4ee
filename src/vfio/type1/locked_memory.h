// LockedMemory: a locked-memory account — vfiobox's stand-in for the kernel's mm->locked_vm that
// type1 charges for pinned pages (reference §5.2). ForProcess() is the one account of this process
// (state lives in the process); every Dma remembers the account it charged (Dma::account) so its
// unmap uncharges the same one. Lock-free: the counter is one atomic, updated by CAS.
//
// Rule (6.1 vfio_lock_acct): in pages of the CPU page size, charging n pages fails with ENOMEM when
// locked + n > soft RLIMIT_MEMLOCK / page — unless the calling *thread* has CAP_IPC_LOCK in its
// effective set, in which case the check is skipped but the pages are still counted (and count
// against later charges made without the capability). Memory mapped twice is charged twice.
// Unlike the kernel, mlock() by the process does not share this counter.
//
// Cost: one getrlimit per Charge (≈1.2 µs on the dev VM); capget only when over the limit. The
// limit is read every time so setrlimit takes effect at once, as in the kernel. Opt-in
// (SetLimitCache): Charge uses a cached limit, re-read by RefreshLimit() — which the preload
// library's setrlimit/prlimit interposers call, and an embedder calls after changing the limit —
// so a Charge costs no syscall; past the limit, each thread's CAP_IPC_LOCK is cached alike (until
// the next refresh). A charge the cached data would refuse re-reads the limit and capability first,
// so the cache never causes a false ENOMEM; a limit *lowered* behind its back (prlimit from
// another process, a raw syscall) is enforced only from the next refresh or refusal
// (docs/design/0007-user-pointer-checks.md).
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
  // capability source: this process's soft RLIMIT_MEMLOCK and the calling thread's capabilities.
  LockedMemory() = default;
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
  static uint64_t PageSize();

  // The limit cache (process-wide, off by default). Turning it on reads the limit once.
  static void SetLimitCache(bool on);
  static bool limit_cache();
  // Re-reads the soft RLIMIT_MEMLOCK into the cache and forgets every thread's cached
  // CAP_IPC_LOCK (no effect on Charge while the cache is off). Call after any setrlimit/prlimit
  // of RLIMIT_MEMLOCK and any capset.
  static void RefreshLimit();

 private:
  std::atomic<uint64_t> pages_{0};
};

}  // namespace vfio::type1
