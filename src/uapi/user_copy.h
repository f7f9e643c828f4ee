// uapi user copies: the kernel's copy_from_user / copy_to_user / strndup_user for ioctl arguments.
// vfiobox serves the process it runs in, so "user memory" is this process's memory, and a bad
// pointer must answer EFAULT instead of crashing. Two ways, chosen once per process:
//  * kFaultCatching (default): a plain copy under a per-thread recovery point of the process's
//    fault dispatcher (faults/fault_dispatcher.h), which jumps back to it when the fault happened
//    inside a copy — the kernel's exception-table idea. No syscall: a 32-byte copy costs a few ns.
//    Under the preload library the program's own SIGSEGV handlers are kept by the dispatcher, so
//    they never displace it.
//  * kSyscall: process_vm_readv / process_vm_writev on this process (≈4 µs per copy measured on
//    the 2-vCPU dev VM, where a bare syscall costs ≈2.8 µs under load). Chosen when the handlers
//    cannot be installed, or with VFIOBOX_USER_COPY=syscall.
// The mode is process-wide; the recovery point is thread-local, so copies are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/result.h"

namespace uapi {

enum class CopyMode { kFaultCatching, kSyscall };
CopyMode GetCopyMode();
// Tests and benchmarks: force a mode (kFaultCatching installs the handlers if needed).
void SetCopyMode(CopyMode mode);

// All or nothing: EFAULT when any byte of [user, user + len) cannot be read / written. len 0
// succeeds without a syscall.
int CopyFromUser(void* dst, uint64_t user, size_t len);  // 0 or -EFAULT
int CopyToUser(uint64_t user, const void* src, size_t len);  // 0 or -EFAULT

// strndup_user(user, max): reads a NUL-terminated string of at most `max` bytes including the NUL.
// -EFAULT when the bytes up to the NUL (or the first `max`) cannot be read; -EINVAL when no NUL
// lies within `max` bytes.
int StrndupUser(uint64_t user, size_t max, std::string* out);

// True when `fd` is open in this process (a raw fcntl, never through interposed symbols).
bool FdIsOpen(int fd);

}  // namespace uapi
