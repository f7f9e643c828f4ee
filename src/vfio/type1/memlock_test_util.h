// Test helper (header-only, so no library links it): ScopedMemlockLimit makes the locked-memory
// limit bite even for root — it drops CAP_IPC_LOCK from the calling thread's effective set (raw
// capset; it stays in the permitted set so it can be restored) and sets the soft RLIMIT_MEMLOCK,
// then restores both on destruction. Capabilities are per thread: the charging code must run on
// the thread that created the scope. Not thread-safe against other scopes; one at a time.
#pragma once

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>

namespace vfio::type1::testing {

class ScopedMemlockLimit {
 public:
  explicit ScopedMemlockLimit(uint64_t soft_limit_bytes, bool keep_cap_ipc_lock = false) {
    if (getrlimit(RLIMIT_MEMLOCK, &saved_rl_) != 0) Die("getrlimit");
    if (syscall(SYS_capget, &hdr_, saved_caps_) != 0) Die("capget");
    __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) caps[i] = saved_caps_[i];
    if (!keep_cap_ipc_lock)
      caps[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
    if (syscall(SYS_capset, &hdr_, caps) != 0) Die("capset");
    rlimit rl = saved_rl_;
    rl.rlim_cur = soft_limit_bytes;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) Die("setrlimit");
  }
  ~ScopedMemlockLimit() {
    setrlimit(RLIMIT_MEMLOCK, &saved_rl_);
    syscall(SYS_capset, &hdr_, saved_caps_);
  }
  ScopedMemlockLimit(const ScopedMemlockLimit&) = delete;
  ScopedMemlockLimit& operator=(const ScopedMemlockLimit&) = delete;

 private:
  [[noreturn]] static void Die(const char* what) {
    std::perror(what);
    std::abort();
  }
  __user_cap_header_struct hdr_{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct saved_caps_[_LINUX_CAPABILITY_U32S_3] = {};
  rlimit saved_rl_{};
};

}  // namespace vfio::type1::testing
