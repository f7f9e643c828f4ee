// uapi user copies: the kernel's copy_from_user / copy_to_user / strndup_user for ioctl arguments.
// vfiobox serves the process it runs in, so "user memory" is this process's memory, and a bad
// pointer must answer EFAULT instead of crashing: every copy goes through process_vm_readv /
// process_vm_writev on this process (one syscall per copy; the kernel does the fault handling).
// Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/result.h"

namespace uapi {

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
