#include "faults/fault_dispatcher.h"

#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "faults/trap_map.h"
#include "faults/x86_emulator.h"

namespace faults {
namespace {

constexpr uint64_t kPage = 4096;

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
SigactionFn g_real_sigaction = nullptr;  // libc's, resolved at install (the preload library
                                         // interposes the symbol itself)
std::atomic<bool> g_installed{false};
pthread_once_t g_once = PTHREAD_ONCE_INIT;
std::atomic<uint64_t> g_emulated{0};

// The program's actions for SIGSEGV ([0]) and SIGBUS ([1]). g_actions_mu is never held across a
// call that can fault or run program code.
std::mutex g_actions_mu;
struct sigaction g_actions[2];

thread_local sigjmp_buf* t_recover = nullptr;  // the user copy running on this thread, if any
thread_local int t_emulating = 0;              // inside an MMIO emulation on this thread

int Index(int sig) { return sig == SIGBUS ? 1 : 0; }

struct sigaction ProgramAction(int sig) {
  std::lock_guard<std::mutex> l(g_actions_mu);
  return g_actions[Index(sig)];
}

void SetProgramAction(int sig, const struct sigaction& act) {
  std::lock_guard<std::mutex> l(g_actions_mu);
  g_actions[Index(sig)] = act;
}

pid_t Gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

void WriteStderr(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// The kernel's forced delivery of a fault whose disposition is SIG_DFL (or SIG_IGN, or blocked):
// the default action, with the original siginfo. Does not return.
[[noreturn]] void Die(int sig, siginfo_t* info) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  g_real_sigaction(sig, &dfl, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, nullptr, sizeof(uint64_t));
  siginfo_t copy = *info;
  syscall(SYS_rt_tgsigqueueinfo, getpid(), Gettid(), sig, &copy);
  syscall(SYS_tgkill, getpid(), Gettid(), sig);
  _exit(128 + sig);
}

// Hands a signal to the program's own disposition, as the kernel would have without vfiobox.
void ToProgram(int sig, siginfo_t* info, ucontext_t* uc) {
  const bool fault = info->si_code > 0;
  struct sigaction act = ProgramAction(sig);
  if (act.sa_handler == SIG_IGN && !fault) return;
  // A fault with nowhere to go kills (force_sig_fault). A fault raised while the program's
  // handler runs without SA_NODEFER would find the signal blocked and kill too, but whether the
  // handler still runs cannot be told here: a handler left by siglongjmp (the common way out of a
  // SIGSEGV handler) is indistinguishable from one still running, and treating it as running
  // killed the program at its next own fault. Such a fault is delivered to the handler
  // again instead (as with SA_NODEFER); a handler that keeps faulting ends by overflowing its
  // stack, which the kernel turns into death by SIGSEGV.
  if (act.sa_handler == SIG_DFL || act.sa_handler == SIG_IGN) Die(sig, info);
  if (act.sa_flags & SA_RESETHAND) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    SetProgramAction(sig, dfl);
  }
  // The handler's mask, as the kernel applies it; SIGSEGV stays deliverable so that vfiobox's own
  // traps keep working inside it.
  sigset_t mask = act.sa_mask, old;
  if (!(act.sa_flags & SA_NODEFER)) sigaddset(&mask, sig);
  sigdelset(&mask, SIGSEGV);
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &mask, &old, sizeof(uint64_t));
  if (act.sa_flags & SA_SIGINFO)
    act.sa_sigaction(sig, info, uc);
  else
    act.sa_handler(sig);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof(uint64_t));
}

// ---- the MMIO path ----

// Ordinary memory touched by an emulated instruction (the other side of a movs, MOVDIR64B's
// source, the instruction bytes): a recoverable copy, so an unmapped address is a SIGSEGV for the
// program rather than a fault inside the handler, and no syscall.
bool SafeCopy(bool write, void* local, uint64_t remote, size_t len) {
  return write ? RecoverableCopy(reinterpret_cast<void*>(remote), local, len)
               : RecoverableCopy(local, reinterpret_cast<const void*>(remote), len);
}

class DispatchBus final : public MemoryBus {
 public:
  size_t FetchCode(uint64_t rip, uint8_t* out, size_t max) override {
    // The page holding RIP was just executed from; only bytes on the next page may be missing, so
    // the next page is copied on its own.
    const size_t room = static_cast<size_t>(kPage - (rip & (kPage - 1)));
    const size_t first = room < max ? room : max;
    if (!SafeCopy(false, out, rip, first)) return 0;
    if (first == max) return max;
    return SafeCopy(false, out + first, rip + first, max - first) ? max : first;
  }
  BusStatus Read(uint64_t addr, void* data, unsigned size) override { return Access(addr, data, size, false); }
  BusStatus Write(uint64_t addr, const void* data, unsigned size) override {
    return Access(addr, const_cast<void*>(data), size, true);
  }
  BusStatus WriteWide(uint64_t addr, const void* data, unsigned size, bool* accepted) override {
    *accepted = false;
    TrapMap::Hit hit = TrapMap::Global().Find(addr);
    if (hit && !hit.mine()) return BusStatus::kBusError;
    if (!hit) {
      *accepted = true;
      return SafeCopy(true, const_cast<void*>(data), addr, size) ? BusStatus::kOk : BusStatus::kSegv;
    }
    if (hit.bytes_to_end() < size) return BusStatus::kOk;  // split: each piece finds its own page
    *accepted = hit.target().WriteWide(hit.region_offset(), data, size);
    return BusStatus::kOk;
  }

 private:
  static BusStatus Access(uint64_t addr, void* data, unsigned size, bool write) {
    TrapMap::Hit hit = TrapMap::Global().Find(addr);
    if (!hit) return SafeCopy(write, data, addr, size) ? BusStatus::kOk : BusStatus::kSegv;
    if (!hit.mine()) return BusStatus::kBusError;
    // An access that runs off the end of a trapped mapping: the bus would split it between two
    // targets; refuse it instead.
    if (hit.bytes_to_end() < size) return BusStatus::kBusError;
    switch (hit.target().Access(hit.region_offset(), data, size, write)) {
      case MmioTarget::Status::kOk: return BusStatus::kOk;
      case MmioTarget::Status::kProtection: return BusStatus::kSegv;
      case MmioTarget::Status::kBusError: break;
    }
    return BusStatus::kBusError;
  }
};

void FormatDiagnostic(const EmulationResult& r, uint64_t rip, uint64_t addr, const char* why) {
  char bytes[15 * 3 + 1] = {};
  for (unsigned k = 0; k < r.length && k < 15; ++k)
    snprintf(bytes + 3 * k, 4, "%02x ", r.bytes[k]);
  std::string where = "a trapped mapping";
  uint64_t off = 0;
  if (auto t = TrapMap::Global().TargetOf(addr, &off)) where = t->Describe(off);
  if (r.length > 0) bytes[3 * r.length - 1] = '\0';
  char line[512];
  snprintf(line, sizeof line, "vfiobox: %s at rip %#llx: '%s' (%s) accessing %s (address %#llx): SIGBUS\n",
           why, static_cast<unsigned long long>(rip), r.mnemonic[0] ? r.mnemonic : "?", bytes,
           where.c_str(), static_cast<unsigned long long>(addr));
  WriteStderr(line);
}

void RaiseBusError(uint64_t addr, ucontext_t* uc) {
  siginfo_t info {};
  info.si_signo = SIGBUS;
  info.si_code = BUS_ADRERR;
  info.si_addr = reinterpret_cast<void*>(addr);
  ToProgram(SIGBUS, &info, uc);
}

void EmulateTrap(siginfo_t* si, ucontext_t* uc) {
  const uint64_t addr = reinterpret_cast<uint64_t>(si->si_addr);
  const uint64_t rip = static_cast<uint64_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (TrapMap::Hit hit = TrapMap::Global().Find(addr); hit && !hit.mine()) {
    // The machine behind an inherited mapping is the parent's; the child has only a copy of it.
    EmulationResult none;
    FormatDiagnostic(none, rip, addr, "MMIO through a mapping inherited across fork is not served");
    RaiseBusError(addr, uc);
    return;
  }
  ++t_emulating;
  DispatchBus bus;
  EmulationResult r = EmulateAccess(uc, addr, bus);
  --t_emulating;
  switch (r.outcome) {
    case Outcome::kDone:
      g_emulated.fetch_add(1, std::memory_order_relaxed);
      return;
    case Outcome::kBusError:
      RaiseBusError(r.fault_addr, uc);
      return;
    case Outcome::kSegv: {
      siginfo_t info {};
      info.si_signo = SIGSEGV;
      info.si_code = TrapMap::Global().Find(r.fault_addr) ? SEGV_ACCERR : SEGV_MAPERR;
      info.si_addr = reinterpret_cast<void*>(r.fault_addr);
      ToProgram(SIGSEGV, &info, uc);
      return;
    }
    case Outcome::kUnsupported:
      FormatDiagnostic(r, rip, addr, "unsupported MMIO instruction");
      RaiseBusError(addr, uc);
      return;
  }
}

void OnFault(int sig, siginfo_t* si, void* ctx) {
  const int saved = errno;
  auto* uc = static_cast<ucontext_t*>(ctx);
  if (si->si_code > 0) {
    if (sigjmp_buf* jb = t_recover) {
      t_recover = nullptr;
      errno = saved;
      siglongjmp(*jb, 1);  // SA_NODEFER: nothing is left blocked
    }
    if (sig == SIGSEGV && t_emulating == 0 && TrapMap::Global().Find(reinterpret_cast<uint64_t>(si->si_addr))) {
      EmulateTrap(si, uc);
      errno = saved;
      return;
    }
  }
  ToProgram(sig, si, uc);
  errno = saved;
}

bool g_install_ok = false;

void InstallOnce() {
  g_real_sigaction = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  if (!g_real_sigaction) g_real_sigaction = &::sigaction;
  struct sigaction sa {};
  sa.sa_sigaction = &OnFault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  std::lock_guard<std::mutex> l(g_actions_mu);
  g_install_ok = g_real_sigaction(SIGSEGV, &sa, &g_actions[0]) == 0 &&
                 g_real_sigaction(SIGBUS, &sa, &g_actions[1]) == 0;
  if (g_install_ok) g_installed.store(true, std::memory_order_release);
}

// Kept out of line so the copy happens between setting and clearing the recovery point; volatile
// so the compiler cannot make it a memcpy call (which a sanitizer would check first), and
// uninstrumented: the fault itself is the check.
__attribute__((noinline, no_sanitize_address, no_sanitize_thread)) void CopyBytes(
    void* dst, const void* src, size_t len) {
  uintptr_t d = reinterpret_cast<uintptr_t>(dst);
  uintptr_t s = reinterpret_cast<uintptr_t>(src);
  if (((d | s) & 7) == 0) {
    for (; len >= 8; len -= 8, d += 8, s += 8)
      *reinterpret_cast<volatile uint64_t*>(d) = *reinterpret_cast<const volatile uint64_t*>(s);
  }
  for (; len > 0; --len, ++d, ++s)
    *reinterpret_cast<volatile uint8_t*>(d) = *reinterpret_cast<const volatile uint8_t*>(s);
}

}  // namespace

bool FaultDispatcher::Install() {
  if (g_installed.load(std::memory_order_acquire)) [[likely]] return true;
  const int saved = errno;
  pthread_once(&g_once, InstallOnce);
  errno = saved;
  return g_install_ok;
}

bool FaultDispatcher::installed() { return g_installed.load(std::memory_order_acquire); }

int FaultDispatcher::ProgramSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig != SIGSEGV && sig != SIGBUS) return -EINVAL;
  struct sigaction in {};
  if (act && !RecoverableCopy(&in, act, sizeof in)) return -EFAULT;
  struct sigaction prev = ProgramAction(sig);
  if (old && !RecoverableCopy(old, &prev, sizeof prev)) return -EFAULT;
  if (act) {
    in.sa_flags &= ~0x04000000;  // SA_RESTORER: the kernel's, never the program's
    SetProgramAction(sig, in);
  }
  return 0;
}

uint64_t FaultDispatcher::emulated_count() { return g_emulated.load(std::memory_order_relaxed); }

bool RecoverableCopy(void* dst, const void* src, size_t len) {
  sigjmp_buf jb;
  if (sigsetjmp(jb, 0) != 0) return false;
  t_recover = &jb;
  CopyBytes(dst, src, len);
  t_recover = nullptr;
  return true;
}

}  // namespace faults
