#include "vfio/type1/locked_memory.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "base/mutex.h"

namespace vfio::type1 {
namespace {

std::atomic<bool> g_limit_cache_on{false};
std::atomic<uint64_t> g_cached_limit{0};    // bytes; written only under g_refresh_mu
std::atomic<uint64_t> g_cached_mlocked{0};  // pages (VmLck); written only under g_refresh_mu
std::atomic<bool> g_mlock_future{false};    // mlockall(MCL_FUTURE) in force
std::atomic<bool> g_mlock_shared{false};    // accounts made with_mlock add VmLck (SetMlockShared)
// Serializes refreshes so the last value stored is the one read last (two racing refreshes must
// not leave the older reading in the cache), and keeps a refresh from reading the limit that
// MlockWithPins lowers for the length of one mlock call.
vb::Mutex g_refresh_mu(vb::LockRank::kLeaf);

// Parses "VmLck:\t    123 kB" out of /proc/self/status; raw syscalls (the preload library
// interposes open/read).
uint64_t ReadVmLckKb() {
  const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC));
  if (fd < 0) return 0;
  char buf[4096];
  size_t len = 0;
  for (;;) {
    const long n = syscall(SYS_read, fd, buf + len, sizeof(buf) - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
    if (len == sizeof(buf) - 1) break;
  }
  syscall(SYS_close, fd);
  buf[len] = 0;
  const char* p = std::strstr(buf, "VmLck:");
  if (!p) return 0;
  p += 6;
  while (*p == ' ' || *p == '\t') ++p;
  uint64_t kb = 0;
  while (*p >= '0' && *p <= '9') kb = kb * 10 + static_cast<uint64_t>(*p++ - '0');
  return kb;
}

}  // namespace

void LockedMemory::SetLimitCache(bool on) {
  if (on) {
    RefreshLimit();
    RefreshMlocked();
  }
  g_limit_cache_on.store(on, std::memory_order_release);
}

bool LockedMemory::limit_cache() { return g_limit_cache_on.load(std::memory_order_acquire); }

void LockedMemory::RefreshLimit() {
  vb::MutexLock l(g_refresh_mu);
  g_cached_limit.store(MemlockLimitBytes(), std::memory_order_release);
}

void LockedMemory::RefreshMlocked() {
  vb::MutexLock l(g_refresh_mu);
  g_cached_mlocked.store(MlockedPages(), std::memory_order_release);
}

void LockedMemory::SetMlockFuture(bool on) { g_mlock_future.store(on, std::memory_order_release); }

void LockedMemory::SetMlockShared(bool on) {
  if (on) RefreshMlocked();
  g_mlock_shared.store(on, std::memory_order_release);
}

bool LockedMemory::mlock_shared() { return g_mlock_shared.load(std::memory_order_acquire); }

uint64_t LockedMemory::MlockedPages() { return ReadVmLckKb() * 1024 / PageSize(); }

long LockedMemory::MlockWithPins(long (*call)(void* ctx), void* ctx) {
  long r;
  int err;
  {
    vb::MutexLock l(g_refresh_mu);
    const uint64_t pinned = ForProcess().locked_bytes();
    rlimit rl{};
    const bool have = syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, nullptr, &rl) == 0;
    if (!have || pinned == 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur == 0) {
      r = call(ctx);
      err = errno;
    } else {
      rlimit lowered = rl;
      lowered.rlim_cur = rl.rlim_cur > pinned ? rl.rlim_cur - pinned : 1;
      (void)syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, &lowered, nullptr);
      r = call(ctx);
      err = errno;
      (void)syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, &rl, nullptr);
    }
    g_cached_mlocked.store(MlockedPages(), std::memory_order_release);
  }
  errno = err;
  return r;
}

LockedMemory& LockedMemory::ForProcess() {
  // Never destroyed: Dma records outlive exit order. Shares the limit with mlock(), as mm->locked_vm.
  static LockedMemory* account = new LockedMemory(/*with_mlock=*/true);
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
  const uint64_t page = PageSize();
  const uint64_t npages = bytes / page + (bytes % page != 0);
  bool cached = g_limit_cache_on.load(std::memory_order_acquire);
  uint64_t limit;
  if (cached) {
    limit = g_cached_limit.load(std::memory_order_acquire);
  } else {
    vb::MutexLock l(g_refresh_mu);  // not the limit MlockWithPins lowers for one call
    limit = MemlockLimitBytes();
  }
  // The mlock()ed pages count only against a finite limit; MCL_FUTURE makes the cached figure
  // unreliable (every new mapping is locked behind it), so then it is read each time.
  const bool with_mlock = with_mlock_ && g_mlock_shared.load(std::memory_order_acquire);
  auto mlocked_now = [&](bool use_cache) -> uint64_t {
    if (!with_mlock || limit == UINT64_MAX) return 0;
    if (use_cache && !g_mlock_future.load(std::memory_order_acquire))
      return g_cached_mlocked.load(std::memory_order_acquire);
    return MlockedPages();
  };
  uint64_t mlocked = mlocked_now(cached);
  bool cap_checked = false, has_cap = false;
  uint64_t cur = pages_.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t next, total;
    const bool wraps = __builtin_add_overflow(cur, npages, &next) || __builtin_add_overflow(next, mlocked, &total);
    if (!wraps && total > limit / page && cached) {
      // Past the cached limit the capability decides first (asked now: one capget; it is never
      // cached, so a drop by any means counts). Without it, never refuse on cached data: a limit
      // raised or memory munlock()ed behind the cache's back must not turn into a false ENOMEM.
      // Re-read both and decide on the fresh values.
      if (!cap_checked) {
        if (HasCapIpcLock()) {
          if (pages_.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return vb::Ok();
          continue;
        }
        cap_checked = true;
        has_cap = false;
      }
      RefreshLimit();
      limit = g_cached_limit.load(std::memory_order_acquire);
      if (with_mlock && limit != UINT64_MAX) RefreshMlocked();
      cached = false;
      mlocked = with_mlock && limit != UINT64_MAX ? g_cached_mlocked.load(std::memory_order_acquire) : 0;
      continue;
    }
    if (wraps || total > limit / page) {
      // The capability matters only past the limit, so the common case costs no capget; past it,
      // it is asked at every charge (dropped by whatever means, it counts from the next MAP).
      if (!cap_checked) {
        has_cap = HasCapIpcLock();
        cap_checked = true;
      }
      if (!has_cap) return vb::Err(ENOMEM, "type1: RLIMIT_MEMLOCK exceeded");
      if (wraps && __builtin_add_overflow(cur, npages, &next)) return vb::Err(ENOMEM, "type1: locked memory counter overflow");
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
