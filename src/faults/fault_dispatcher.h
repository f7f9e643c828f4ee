// faults::FaultDispatcher: the process's one SIGSEGV/SIGBUS handler (Linux: the page-fault path's
// exception table plus a VM_IO vma's fault handler). Every synchronous fault is sorted, in order:
//  1. sent by a process (si_code <= 0: kill, raise, tgkill, sigqueue) → the program's disposition,
//     untouched;
//  2. inside a vfiobox user copy on this thread → the copy answers EFAULT (siglongjmp);
//  3. on a trapped MMIO page (TrapMap) → the instruction is emulated as device accesses and the
//     thread resumes after it; an access the device refuses, or an instruction we do not emulate,
//     becomes a SIGBUS at the access (with one line on stderr for the latter);
//  4. anything else → the program's disposition, as if vfiobox were not there.
// The program's own SIGSEGV/SIGBUS actions are kept here (the preload library routes sigaction,
// signal and rt_sigaction through ProgramSigaction once the dispatcher is installed) and called
// with their own flags and mask; SIG_DFL and SIG_IGN behave as the kernel's forced fault delivery
// does. See docs/design/0008-mapped-registers.md for why the MMIO path cannot deadlock.
#pragma once

#include <signal.h>

#include <cstddef>
#include <cstdint>

namespace faults {

class FaultDispatcher {
 public:
  // Installs the handlers (idempotent, thread-safe). The actions found in place become the
  // program's. False when they cannot be installed (then user copies use syscalls and register
  // BARs are not offered for mmap).
  static bool Install();
  static bool installed();

  // The program's sigaction for SIGSEGV or SIGBUS once installed: records `act` (if any) and
  // returns the previous program action in `old` (if any). 0, or -EINVAL for another signal.
  static int ProgramSigaction(int sig, const struct sigaction* act, struct sigaction* old);

  // Counters for tests and benchmarks: MMIO instructions emulated, faults passed to the program.
  static uint64_t emulated_count();
};

// A copy that survives a bad pointer: false if a SIGSEGV/SIGBUS hit inside it (nothing else is
// known about how much was copied). Requires FaultDispatcher::installed().
bool RecoverableCopy(void* dst, const void* src, size_t len);

}  // namespace faults
