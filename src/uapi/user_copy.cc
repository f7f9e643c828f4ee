#include "uapi/user_copy.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "faults/fault_dispatcher.h"

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

// ---- fault-catching copies: faults::RecoverableCopy under the process's fault dispatcher ----

std::atomic<int> g_mode{-1};  // -1 undecided, else CopyMode

CopyMode Mode() {
  int m = g_mode.load(std::memory_order_acquire);
  if (m >= 0) [[likely]] return static_cast<CopyMode>(m);
  const char* env = std::getenv("VFIOBOX_USER_COPY");
  CopyMode want = env && std::strcmp(env, "syscall") == 0 ? CopyMode::kSyscall : CopyMode::kFaultCatching;
  if (want == CopyMode::kFaultCatching && !faults::FaultDispatcher::Install()) want = CopyMode::kSyscall;
  g_mode.store(static_cast<int>(want), std::memory_order_release);
  return want;
}

int CatchingCopy(void* dst, const void* src, size_t len) {
  return faults::RecoverableCopy(dst, src, len) ? 0 : -EFAULT;
}

}  // namespace

CopyMode GetCopyMode() { return Mode(); }

void SetCopyMode(CopyMode mode) {
  if (mode == CopyMode::kFaultCatching && !faults::FaultDispatcher::Install()) mode = CopyMode::kSyscall;
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
