#include "uapi/user_copy.h"

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace uapi {
namespace {

constexpr uint64_t kPage = 4096;

// One process_vm_{readv,writev} on ourselves; returns the bytes done or -errno. The remote side
// is split at page boundaries so a fault part-way leaves a count of whole readable pages (the
// kernel never splits one iovec element on a partial transfer).
long VmCopy(bool write, void* local, uint64_t remote, size_t len) {
  iovec liov{local, len};
  iovec riov[3];
  int n = 0;
  uint64_t at = remote;
  size_t left = len;
  while (left > 0 && n < 2) {
    uint64_t chunk = kPage - (at & (kPage - 1));
    if (chunk > left) chunk = left;
    riov[n++] = iovec{reinterpret_cast<void*>(at), static_cast<size_t>(chunk)};
    at += chunk;
    left -= chunk;
  }
  if (left > 0) riov[n++] = iovec{reinterpret_cast<void*>(at), left};
  // Every variadic argument as a long: the kernel reads whole registers, and an int passed
  // through `...` may leave the upper half undefined.
  long r = syscall(write ? SYS_process_vm_writev : SYS_process_vm_readv, static_cast<long>(getpid()),
                   &liov, 1L, riov, static_cast<long>(n), 0L);
  if (r < 0) return errno == ENOMEM || errno == EFAULT ? -EFAULT : -errno;
  return r;
}

// ---- fault-catching copies ----

// The recovery point of the copy running on this thread (null outside a copy).
thread_local sigjmp_buf* t_recover = nullptr;

struct sigaction g_old_segv;
struct sigaction g_old_bus;
std::atomic<int> g_mode{-1};  // -1 undecided, else CopyMode
pthread_once_t g_once = PTHREAD_ONCE_INIT;
bool g_handlers_ok = false;

void Chain(const struct sigaction& old, int sig, siginfo_t* info, void* uctx) {
  if (old.sa_flags & SA_SIGINFO) {
    if (old.sa_sigaction) return old.sa_sigaction(sig, info, uctx);
  } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN && old.sa_handler) {
    return old.sa_handler(sig);
  }
  // Default action: restore it and return, so the faulting instruction faults again and the
  // process dies as it would have without us.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

void OnFault(int sig, siginfo_t* info, void* uctx) {
  if (sigjmp_buf* jb = t_recover) {
    t_recover = nullptr;
    siglongjmp(*jb, 1);  // SA_NODEFER: the signal is not left blocked
  }
  Chain(sig == SIGBUS ? g_old_bus : g_old_segv, sig, info, uctx);
}

#if defined(__SANITIZE_THREAD__)
#define VB_UAPI_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VB_UAPI_TSAN 1
#endif
#endif

void InstallHandlers() {
#ifdef VB_UAPI_TSAN
  // TSan's own deadly-signal handling takes synchronous SIGSEGV before a user handler can recover
  // from it: use the syscall copies in TSan builds.
  g_handlers_ok = false;
  return;
#endif
  struct sigaction sa {};
  sa.sa_sigaction = &OnFault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  g_handlers_ok = sigaction(SIGSEGV, &sa, &g_old_segv) == 0 && sigaction(SIGBUS, &sa, &g_old_bus) == 0;
}

CopyMode Mode() {
  int m = g_mode.load(std::memory_order_acquire);
  if (m >= 0) [[likely]] return static_cast<CopyMode>(m);
  const char* env = std::getenv("VFIOBOX_USER_COPY");
  CopyMode want = env && std::strcmp(env, "syscall") == 0 ? CopyMode::kSyscall : CopyMode::kFaultCatching;
  if (want == CopyMode::kFaultCatching) {
    int saved = errno;
    pthread_once(&g_once, InstallHandlers);
    errno = saved;
    if (!g_handlers_ok) want = CopyMode::kSyscall;
  }
  g_mode.store(static_cast<int>(want), std::memory_order_release);
  return want;
}

// Kept out of line so the copy really happens between setting and clearing the recovery point;
// volatile accesses so the compiler cannot turn it into a memcpy call (which a sanitizer would
// intercept and check before touching the memory), and uninstrumented so a sanitizer reports no
// access to the (possibly wild) user address: the fault itself is the check.
__attribute__((noinline, no_sanitize_address, no_sanitize_thread)) void CopyBytes(
    void* dst, const void* src, size_t len) {
  // Integer addresses: the user's may be null or wild, where pointer arithmetic is undefined.
  uintptr_t d = reinterpret_cast<uintptr_t>(dst);
  uintptr_t s = reinterpret_cast<uintptr_t>(src);
  if (((d | s) & 7) == 0) {
    for (; len >= 8; len -= 8, d += 8, s += 8)
      *reinterpret_cast<volatile uint64_t*>(d) = *reinterpret_cast<const volatile uint64_t*>(s);
  }
  for (; len > 0; --len, ++d, ++s)
    *reinterpret_cast<volatile uint8_t*>(d) = *reinterpret_cast<const volatile uint8_t*>(s);
}

int CatchingCopy(void* dst, const void* src, size_t len) {
  sigjmp_buf jb;
  if (sigsetjmp(jb, 0) != 0) return -EFAULT;  // a fault inside CopyBytes
  t_recover = &jb;
  CopyBytes(dst, src, len);
  t_recover = nullptr;
  return 0;
}

}  // namespace

CopyMode GetCopyMode() { return Mode(); }

void SetCopyMode(CopyMode mode) {
  if (mode == CopyMode::kFaultCatching) {
    pthread_once(&g_once, InstallHandlers);
    if (!g_handlers_ok) mode = CopyMode::kSyscall;
  }
  g_mode.store(static_cast<int>(mode), std::memory_order_release);
}

int CopyFromUser(void* dst, uint64_t user, size_t len) {
  if (len == 0) return 0;
  if (user + len < user) return -EFAULT;
  if (Mode() == CopyMode::kFaultCatching)
    return CatchingCopy(dst, reinterpret_cast<const void*>(user), len);
  int saved = errno;
  long r = VmCopy(false, dst, user, len);
  errno = saved;
  return r == static_cast<long>(len) ? 0 : -EFAULT;
}

int CopyToUser(uint64_t user, const void* src, size_t len) {
  if (len == 0) return 0;
  if (user + len < user) return -EFAULT;
  if (Mode() == CopyMode::kFaultCatching)
    return CatchingCopy(reinterpret_cast<void*>(user), src, len);
  int saved = errno;
  long r = VmCopy(true, const_cast<void*>(src), user, len);
  errno = saved;
  return r == static_cast<long>(len) ? 0 : -EFAULT;
}

int StrndupUser(uint64_t user, size_t max, std::string* out) {
  out->clear();
  // Page by page, so a string ending just before an unmapped page is still read.
  uint64_t at = user;
  char buf[kPage];
  while (out->size() < max) {
    size_t chunk = kPage - (at & (kPage - 1));
    if (chunk > max - out->size()) chunk = max - out->size();
    int saved = errno;
    long r = VmCopy(false, buf, at, chunk);
    errno = saved;
    if (r <= 0) return -EFAULT;
    const void* nul = std::memchr(buf, 0, static_cast<size_t>(r));
    if (nul) {
      out->append(buf, static_cast<const char*>(nul) - buf);
      return 0;
    }
    if (static_cast<size_t>(r) < chunk) return -EFAULT;
    out->append(buf, chunk);
    at += chunk;
  }
  return -EINVAL;
}

bool FdIsOpen(int fd) {
  if (fd < 0) return false;
  int saved = errno;
  long r = syscall(SYS_fcntl, static_cast<long>(fd), static_cast<long>(F_GETFD));
  errno = saved;
  return r >= 0;
}

}  // namespace uapi
