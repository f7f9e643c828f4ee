#include "vfio/type1/locked_memory.h"

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "base/mutex.h"

namespace vfio::type1 {
namespace {

std::atomic<bool> g_limit_cache_on{false};
std::atomic<uint64_t> g_cached_limit{0};  // bytes; written only under g_refresh_mu
// Bumped by every RefreshLimit: invalidates each thread's cached CAP_IPC_LOCK answer.
std::atomic<uint64_t> g_refresh_generation{1};
struct CapCache {
  uint64_t generation = 0;
  bool has = false;
};
thread_local CapCache t_cap;  // capabilities are per thread

// Cached mode only: CAP_IPC_LOCK of the calling thread as of the last refresh.
bool CachedHasCapIpcLock() {
  const uint64_t gen = g_refresh_generation.load(std::memory_order_acquire);
  if (t_cap.generation != gen) t_cap = CapCache{gen, LockedMemory::HasCapIpcLock()};
  return t_cap.has;
}
// Serializes refreshes so the last value stored is the one read last (two racing refreshes must
// not leave the older reading in the cache).
vb::Mutex g_refresh_mu(vb::LockRank::kLeaf);

}  // namespace

void LockedMemory::SetLimitCache(bool on) {
  if (on) RefreshLimit();
  g_limit_cache_on.store(on, std::memory_order_release);
}

bool LockedMemory::limit_cache() { return g_limit_cache_on.load(std::memory_order_acquire); }

void LockedMemory::RefreshLimit() {
  vb::MutexLock l(g_refresh_mu);
  g_refresh_generation.fetch_add(1, std::memory_order_acq_rel);
  g_cached_limit.store(MemlockLimitBytes(), std::memory_order_release);
}

LockedMemory& LockedMemory::ForProcess() {
  static LockedMemory* account = new LockedMemory();  // never destroyed: Dma records outlive exit order
  return *account;
}

uint64_t LockedMemory::PageSize() {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return page;
}

uint64_t LockedMemory::MemlockLimitBytes() {
  rlimit rl{};
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return 0;
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
}

bool LockedMemory::HasCapIpcLock() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) != 0;
}

uint64_t LockedMemory::locked_bytes() const { return locked_pages() * PageSize(); }

vb::Result<void> LockedMemory::Charge(uint64_t bytes) {
  if (bytes == 0) return vb::Ok();
  uint64_t page = PageSize();
  uint64_t npages = bytes / page + (bytes % page != 0);
  bool cached = g_limit_cache_on.load(std::memory_order_acquire);
  uint64_t limit_pages =
      (cached ? g_cached_limit.load(std::memory_order_acquire) : MemlockLimitBytes()) / page;
  bool cap_checked = false;
  uint64_t cur = pages_.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t next;
    bool wraps = __builtin_add_overflow(cur, npages, &next);
    if (!wraps && next > limit_pages && cached) {
      // Past the cached limit a cached CAP_IPC_LOCK lets the charge through (as root over the
      // limit: no syscall). Otherwise never refuse on cached data: a limit raised or a capability
      // gained behind the cache's back must not turn into a false ENOMEM. Re-read and decide.
      if (CachedHasCapIpcLock()) {
        if (pages_.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return vb::Ok();
        continue;
      }
      RefreshLimit();
      limit_pages = g_cached_limit.load(std::memory_order_acquire) / page;
      cached = false;
      continue;
    }
    if (wraps || next > limit_pages) {
      // The capability matters only past the limit, so the common case costs no capget.
      if (!cap_checked) {
        if (!HasCapIpcLock()) return vb::Err(ENOMEM, "type1: RLIMIT_MEMLOCK exceeded");
        cap_checked = true;
      }
      if (wraps) return vb::Err(ENOMEM, "type1: locked memory counter overflow");
    }
    if (pages_.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return vb::Ok();
  }
}

void LockedMemory::Uncharge(uint64_t bytes) {
  if (bytes == 0) return;
  uint64_t page = PageSize();
  uint64_t npages = bytes / page + (bytes % page != 0);
  uint64_t cur = pages_.load(std::memory_order_relaxed);
  while (!pages_.compare_exchange_weak(cur, cur >= npages ? cur - npages : 0,
                                       std::memory_order_relaxed)) {
  }
}

}  // namespace vfio::type1
