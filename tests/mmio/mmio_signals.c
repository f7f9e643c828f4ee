/* mmio_signals: a program's own SIGSEGV/SIGBUS handling next to vfiobox's trapped register BARs
 * (design 0008). vfiobox owns the real SIGSEGV/SIGBUS handlers once it is installed (at the first
 * VFIO user copy); the program must still see exactly what Linux would show it:
 *   - its own faults reach its own handler (installed before or after the first VFIO use) with
 *     the right si_addr/si_code, and MMIO keeps working around and inside that handler;
 *   - a user-sent SIGSEGV (kill/raise/tgkill) goes to its disposition untouched: SIG_DFL kills
 *     (the kselftest harness re-raises a crashed test's signal that way), a handler is called,
 *     SIG_IGN discards it;
 *   - an instruction vfiobox cannot emulate is SIGBUS at the access with one stderr line;
 *   - memory decode off is SIGBUS (BUS_ADRERR) until it is on again;
 *   - an alternate signal stack and a blocked SIGSEGV (as the program sees its mask) change
 *     nothing for MMIO.
 * Every test runs in a fork child (a child of a process with no VFIO state gets a fresh machine),
 * so that a test that should die can die, and each starts with vfiobox not yet installed.
 * SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>

#include "mmio_util.h"

/* ------------------------------------------------------------------------ child harness */

/* Runs fn in a fork child; returns its wait status. The child's exit status is 1 if a check
 * failed, 4 if it skipped, 0 otherwise; a child that should die by a signal does. */
static int in_child(void (*fn)(void)) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* the tests that die by SIGSEGV leave no core */
    st_cur_failed = st_cur_skipped = 0;
    st_ndeferred_fds = st_ndeferred_maps = 0;
    fn();
    if (st_cur_skipped) printf("# skipped: %s\n", st_skip_reason);
    fflush(stdout);
    exit(st_cur_failed ? 1 : st_cur_skipped ? 4 : 0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

static const char* describe(int status, char* buf, size_t len) {
  if (WIFEXITED(status))
    snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, len, "wait status %#x", status);
  return buf;
}

/* The child ran fn to the end with no failed check. */
#define CHILD_PASSES(fn)                                                             \
  do {                                                                               \
    int st_ = in_child(fn);                                                          \
    char d_[96];                                                                     \
    if (WIFEXITED(st_) && WEXITSTATUS(st_) == 4) SKIP("in the child (see above)");   \
    if (!WIFEXITED(st_) || WEXITSTATUS(st_) != 0) {                                  \
      st_fail(__FILE__, __LINE__, "child %s: %s", #fn, describe(st_, d_, sizeof d_)); \
      return;                                                                        \
    }                                                                                \
  } while (0)

/* The child died by signal sig (and did not report a failed check first). */
#define CHILD_DIES_BY(fn, sig)                                                                  \
  do {                                                                                          \
    int st_ = in_child(fn);                                                                     \
    char d_[96];                                                                                \
    if (!WIFSIGNALED(st_) || WTERMSIG(st_) != (sig)) {                                          \
      st_fail(__FILE__, __LINE__, "child %s: expected death by %s, %s", #fn, #sig,              \
              describe(st_, d_, sizeof d_));                                                    \
      return;                                                                                   \
    }                                                                                           \
  } while (0)

/* ------------------------------------------------------------------- the program's handler */

static sigjmp_buf* volatile jump_to;
static volatile sig_atomic_t handler_calls;
static volatile siginfo_t last_info; /* volatile: written by the handler during calls the compiler sees as ordinary */
static ucontext_t last_uc;
static volatile uintptr_t handler_local; /* the address of a local in the last handler run */
static volatile uint32_t handler_mmio;   /* a register read inside the handler, if asked */
static volatile uint32_t* volatile handler_reads; /* the register to read there (NULL: none) */

static void on_fault(int sig, siginfo_t* si, void* uc) {
  volatile int local = sig;
  handler_local = (uintptr_t)&local;
  last_info = *si;
  memcpy(&last_uc, uc, sizeof last_uc);
  ++handler_calls;
  if (handler_reads) handler_mmio = *handler_reads;
  if (jump_to) siglongjmp(*jump_to, 1);
}

static int install(int sig, int extra_flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | extra_flags;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

/* Runs `body` (a statement) with a jump target set; `caught` is 1 if the handler jumped out. */
#define CATCH(caught, body)                      \
  do {                                           \
    sigjmp_buf jb_;                              \
    caught = 0;                                  \
    if (sigsetjmp(jb_, 1) == 0) {                \
      jump_to = &jb_;                            \
      body;                                      \
    } else {                                     \
      caught = 1;                                \
    }                                            \
    jump_to = NULL;                              \
  } while (0)

/* Opens the test endpoint with BAR2 mapped and checks one round of MMIO. */
static int open_ep(struct mm_bar* b) {
  if (mm_open_bar(b, MM_EP, TE_BAR) != 0) return -1;
  if (*mm_r32(b, 0) != TE_ID) {
    printf("# id register reads %#x\n", *mm_r32(b, 0));
    return -1;
  }
  return 0;
}

/* A scratch-window round trip through the mapping: value and device log. */
static int mmio_works(struct mm_bar* b, uint64_t v) {
  mm_log_clear(b);
  *mm_r64(b, TE_WIN + 0x10) = v;
  uint64_t got = *mm_r64(b, TE_WIN + 0x10);
  const struct mm_access want[] = {WR(0x10, 8, v), RD(0x10, 8, v)};
  if (got != v) {
    printf("# scratch reads %#llx, wrote %#llx\n", (unsigned long long)got, (unsigned long long)v);
    return 0;
  }
  return mm_log_is(b, want, 2, "MMIO round trip");
}

/* A load from the NULL page (the compiler cannot see the address). */
static volatile uintptr_t null_page = 0;
static void touch_null_page(uintptr_t off) { (void)*(volatile int*)(null_page + off); }

/* A guard page: one readable page followed by a PROT_NONE one. */
static volatile char* guard_page(void) {
  char* p = mmap(NULL, 2 * VU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (mprotect(p + VU_PAGE, VU_PAGE, PROT_NONE) != 0) return NULL;
  return p + VU_PAGE;
}

/* MMIO, then the program's own NULL-page and guard-page faults (each reaching its handler with
 * the right si_addr/si_code), MMIO again after each; the handler saw exactly those two faults. */
static void own_faults_between_mmio(struct mm_bar* b) {
  int caught;
  handler_calls = 0;
  CHECK(mmio_works(b, 0x1111));
  CATCH(caught, touch_null_page(0x10));
  CHECK(caught);
  EXPECT_EQ(handler_calls, 1);
  EXPECT_EQ(last_info.si_signo, SIGSEGV);
  EXPECT_EQ(last_info.si_code, SEGV_MAPERR);
  EXPECT_EQ((uintptr_t)last_info.si_addr, 0x10);
  CHECK(mmio_works(b, 0x2222));
  volatile char* guard = guard_page();
  CHECK(guard != NULL);
  CATCH(caught, guard[0x123] = 1);
  CHECK(caught);
  EXPECT_EQ(handler_calls, 2);
  EXPECT_EQ(last_info.si_signo, SIGSEGV);
  EXPECT_EQ(last_info.si_code, SEGV_ACCERR);
  EXPECT_EQ((uintptr_t)last_info.si_addr, (uintptr_t)(guard + 0x123));
  CHECK(mmio_works(b, 0x3333));
  /* a third one: a handler left by siglongjmp is not running any more */
  CATCH(caught, touch_null_page(0x20));
  CHECK(caught);
  EXPECT_EQ(handler_calls, 3);
  EXPECT_EQ((uintptr_t)last_info.si_addr, 0x20);
  CHECK(mmio_works(b, 0x4444));
  EXPECT_EQ(handler_calls, 3);
}

static void child_handler_installed_before_vfio(void) {
  CHECK(install(SIGSEGV, 0) == 0);
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  /* the program's action is still its own */
  struct sigaction cur;
  CHECK(sigaction(SIGSEGV, NULL, &cur) == 0);
  CHECK(cur.sa_sigaction == on_fault);
  CHECK(cur.sa_flags & SA_SIGINFO);
  own_faults_between_mmio(&b);
}
TEST(own_sigsegv_handler_installed_before_the_first_vfio_use) { CHILD_PASSES(child_handler_installed_before_vfio); }

static void child_handler_installed_after_mmap(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  struct sigaction old;
  CHECK(sigaction(SIGSEGV, NULL, &old) == 0);
  CHECK(old.sa_handler == SIG_DFL); /* vfiobox's own handler is not shown */
  CHECK(install(SIGSEGV, 0) == 0);
  own_faults_between_mmio(&b);
  /* and SIG_DFL again: a query shows it */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  CHECK(sigaction(SIGSEGV, &dfl, &old) == 0);
  CHECK(old.sa_sigaction == on_fault);
  CHECK(mmio_works(&b, 0x5555));
}
TEST(own_sigsegv_handler_installed_after_the_bar_is_mapped) { CHILD_PASSES(child_handler_installed_after_mmap); }

/* MMIO from inside the program's own SIGSEGV handler (as a driver's crash handler dumping device
 * state does). */
static void child_mmio_inside_the_handler(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  CHECK(install(SIGSEGV, 0) == 0);
  handler_reads = mm_r32(&b, 0);
  handler_mmio = 0;
  int caught;
  CATCH(caught, touch_null_page(0x8));
  handler_reads = NULL;
  CHECK(caught);
  EXPECT_EQ(handler_mmio, TE_ID);
  CHECK(mmio_works(&b, 0x6666));
}
TEST(mmio_inside_the_programs_own_sigsegv_handler) { CHILD_PASSES(child_mmio_inside_the_handler); }

/* ------------------------------------------- user-sent SIGSEGV goes to the program's disposition */

/* The kselftest harness's way to report a crashed test: restore SIG_DFL and re-raise. */
static void child_kill_with_sig_dfl(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0); /* vfiobox's handler is installed now */
  signal(SIGSEGV, SIG_DFL);
  kill(getpid(), SIGSEGV);
  printf("# survived kill(getpid(), SIGSEGV) with SIG_DFL\n");
}
TEST(kill_sigsegv_with_sig_dfl_kills) { CHILD_DIES_BY(child_kill_with_sig_dfl, SIGSEGV); }

static void child_raise_with_sig_dfl(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGSEGV, &dfl, NULL);
  raise(SIGSEGV);
  printf("# survived raise(SIGSEGV) with SIG_DFL\n");
}
TEST(raise_sigsegv_with_sig_dfl_kills) { CHILD_DIES_BY(child_raise_with_sig_dfl, SIGSEGV); }

static void child_tgkill_with_sig_dfl(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  signal(SIGSEGV, SIG_DFL);
  syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGSEGV);
  printf("# survived tgkill(SIGSEGV) with SIG_DFL\n");
}
TEST(tgkill_sigsegv_with_sig_dfl_kills) { CHILD_DIES_BY(child_tgkill_with_sig_dfl, SIGSEGV); }

/* The same with only an ioctl user copy done (no mapping): that is where vfiobox installs itself. */
static void child_kill_after_one_ioctl(void) {
  struct vu_device d;
  CHECK(vu_open_container(&d, MM_EP, VFIO_TYPE1v2_IOMMU) == 0);
  struct vfio_iommu_type1_info info = {.argsz = sizeof info};
  CHECK(ioctl(d.container, VFIO_IOMMU_GET_INFO, &info) == 0);
  signal(SIGSEGV, SIG_DFL);
  kill(getpid(), SIGSEGV);
  printf("# survived kill(getpid(), SIGSEGV) with SIG_DFL\n");
}
TEST(kill_sigsegv_after_an_ioctl_kills) { CHILD_DIES_BY(child_kill_after_one_ioctl, SIGSEGV); }

static void child_kill_sigbus_with_sig_dfl(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  kill(getpid(), SIGBUS); /* never changed: SIG_DFL */
  printf("# survived kill(getpid(), SIGBUS) with SIG_DFL\n");
}
TEST(kill_sigbus_with_sig_dfl_kills) { CHILD_DIES_BY(child_kill_sigbus_with_sig_dfl, SIGBUS); }

static volatile sig_atomic_t plain_calls, plain_sig;
static void on_plain(int sig) {
  plain_sig = sig;
  ++plain_calls;
}

static void child_kill_with_handler(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  /* signal(): the handler is called, once per signal, and MMIO goes on */
  CHECK(signal(SIGSEGV, on_plain) == SIG_DFL);
  plain_calls = 0;
  CHECK(kill(getpid(), SIGSEGV) == 0);
  EXPECT_EQ(plain_calls, 1);
  EXPECT_EQ(plain_sig, SIGSEGV);
  CHECK(raise(SIGSEGV) == 0);
  EXPECT_EQ(plain_calls, 2);
  CHECK(mmio_works(&b, 0x7777));
  /* sigaction with SA_SIGINFO: the sender's siginfo (SI_USER, our pid), not a fault's */
  CHECK(install(SIGSEGV, 0) == 0);
  handler_calls = 0;
  CHECK(kill(getpid(), SIGSEGV) == 0);
  EXPECT_EQ(handler_calls, 1);
  EXPECT_EQ(last_info.si_signo, SIGSEGV);
  EXPECT_EQ(last_info.si_code, SI_USER);
  EXPECT_EQ(last_info.si_pid, getpid());
  CHECK(syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGSEGV) == 0);
  EXPECT_EQ(handler_calls, 2);
  EXPECT_EQ(last_info.si_code, SI_TKILL);
  /* SIG_IGN: a user-sent SIGSEGV is discarded */
  CHECK(signal(SIGSEGV, SIG_IGN) != SIG_ERR);
  CHECK(kill(getpid(), SIGSEGV) == 0);
  EXPECT_EQ(handler_calls, 2);
  CHECK(mmio_works(&b, 0x8888));
}
TEST(kill_sigsegv_with_a_handler_calls_it) { CHILD_PASSES(child_kill_with_handler); }

/* ---------------------------------------------------------------- unsupported instructions */

/* Reads everything written to fd 2 while `body` runs into buf (NUL-terminated). */
#define CAPTURE_STDERR(buf, body)                                   \
  do {                                                              \
    int p_[2];                                                      \
    CHECK(pipe(p_) == 0);                                           \
    fflush(stderr);                                                 \
    int saved_ = dup(2);                                            \
    CHECK(saved_ >= 0 && dup2(p_[1], 2) == 2);                      \
    close(p_[1]);                                                   \
    body;                                                           \
    dup2(saved_, 2);                                                \
    close(saved_);                                                  \
    ssize_t n_ = read(p_[0], (buf), sizeof(buf) - 1);               \
    close(p_[0]);                                                   \
    (buf)[n_ > 0 ? n_ : 0] = 0;                                     \
    fputs((buf), stderr); /* keep it visible in the test output */  \
  } while (0)

enum insn { SHL, LOCK_CMPXCHG, MOVSS };

static void do_unsupported(enum insn which, volatile void* p) {
  switch (which) {
    case SHL: /* 48 d1 20 */
      __asm__ __volatile__("shlq $1, (%%rax)" : : "a"(p) : "memory", "cc");
      break;
    case LOCK_CMPXCHG: /* f0 0f b1 0a */
      __asm__ __volatile__("lock cmpxchgl %%ecx, (%%rdx)" : : "d"(p), "c"(1), "a"(0) : "memory", "cc");
      break;
    case MOVSS: /* f3 0f 10 00 */
      __asm__ __volatile__("movss (%%rax), %%xmm0" : : "a"(p) : "xmm0", "memory");
      break;
  }
}

static void child_unsupported_instruction(void) {
  static const struct {
    enum insn which;
    const char* mnemonic;
    const char* bytes;
    uint32_t off;
  } cases[] = {{SHL, "shl", "48 d1 20", 0x108},
               {LOCK_CMPXCHG, "cmpxchg", "f0 0f b1 0a", 0x110},
               {MOVSS, "movss", "f3 0f 10 00", 0x11c}};
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  CHECK(install(SIGBUS, 0) == 0);
  CHECK(install(SIGSEGV, 0) == 0);
  for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    volatile void* at = b.bar + cases[i].off;
    *mm_r32(&b, cases[i].off) = 0x01020304;
    mm_log_clear(&b);
    handler_calls = 0;
    char err[1024];
    int caught = 0;
    CAPTURE_STDERR(err, CATCH(caught, do_unsupported(cases[i].which, at)));
    CHECK(caught);
    EXPECT_EQ(handler_calls, 1);
    EXPECT_EQ(last_info.si_signo, SIGBUS);
    EXPECT_EQ(last_info.si_code, BUS_ADRERR);
    EXPECT_EQ((uintptr_t)last_info.si_addr, (uintptr_t)at);
    /* the context is the faulting instruction's: RIP at it, nothing executed */
    const uint8_t* rip = (const uint8_t*)(uintptr_t)last_uc.uc_mcontext.gregs[REG_RIP];
    char want[512];
    snprintf(want, sizeof want,
             "vfiobox: unsupported MMIO instruction at rip %p: '%s' (%s) accessing 0000:07:00.0 BAR2+%#x (address %p): SIGBUS\n",
             (const void*)rip, cases[i].mnemonic, cases[i].bytes, cases[i].off, (const void*)at);
    if (strstr(err, want) == NULL) {
      printf("# expected on stderr: %s# got: %s\n", want, err);
      CHECK(0);
    }
    /* exactly one line */
    CHECK(strchr(err, '\n') == err + strlen(err) - 1);
    /* the device saw nothing; the register still holds its value */
    struct mm_access none[1];
    CHECK(mm_log_is(&b, none, 0, cases[i].mnemonic));
    EXPECT_EQ(*mm_r32(&b, cases[i].off), 0x01020304);
  }
  CHECK(mmio_works(&b, 0x9999));
}
TEST(unsupported_instruction_is_sigbus_with_one_line) { CHILD_PASSES(child_unsupported_instruction); }

/* With SIGBUS at SIG_DFL the same access kills the program by SIGBUS. */
static void child_unsupported_default(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  do_unsupported(SHL, b.bar + 0x108);
  printf("# survived an unsupported MMIO instruction\n");
}
TEST(unsupported_instruction_with_sig_dfl_kills_by_sigbus) { CHILD_DIES_BY(child_unsupported_default, SIGBUS); }

/* ------------------------------------------------------------------------- memory decode */

static void child_memory_decode_off(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  CHECK(install(SIGBUS, 0) == 0);
  *mm_r32(&b, TE_WIN) = 0xabcd;
  uint16_t cmd;
  CHECK(mm_get_command(&b, &cmd) == 0);
  CHECK(cmd & MM_CMD_MEMORY);
  CHECK(mm_set_command(&b, (uint16_t)(cmd & ~MM_CMD_MEMORY)) == 0);
  int caught;
  uint32_t v = 0;
  handler_calls = 0;
  CATCH(caught, v = *mm_r32(&b, 0));
  CHECK(caught);
  EXPECT_EQ(last_info.si_signo, SIGBUS);
  EXPECT_EQ(last_info.si_code, BUS_ADRERR);
  EXPECT_EQ((uintptr_t)last_info.si_addr, (uintptr_t)b.bar);
  CATCH(caught, *mm_r32(&b, TE_WIN) = 0x1234);
  CHECK(caught);
  EXPECT_EQ(last_info.si_code, BUS_ADRERR);
  EXPECT_EQ((uintptr_t)last_info.si_addr, (uintptr_t)(b.bar + TE_WIN));
  EXPECT_EQ(handler_calls, 2);
  CHECK(mm_set_command(&b, cmd) == 0);
  CATCH(caught, v = *mm_r32(&b, 0));
  CHECK(!caught);
  EXPECT_EQ(v, TE_ID);
  EXPECT_EQ(*mm_r32(&b, TE_WIN), 0xabcd); /* the store with decode off went nowhere */
  CHECK(mmio_works(&b, 0xaaaa));
}
TEST(memory_decode_off_is_sigbus_until_on_again) { CHILD_PASSES(child_memory_decode_off); }

/* --------------------------------------------------------------------- alternate signal stack */

static uint8_t altstack[64 * 1024] __attribute__((aligned(16)));

static int on_altstack(uintptr_t p) { return p >= (uintptr_t)altstack && p < (uintptr_t)altstack + sizeof altstack; }

static void child_sigaltstack(void) {
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  CHECK(sigaltstack(&ss, NULL) == 0);
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  CHECK(install(SIGSEGV, SA_ONSTACK) == 0);
  CHECK(mmio_works(&b, 0xbbbb));
  int caught;
  handler_calls = 0;
  handler_reads = mm_r32(&b, 0); /* MMIO inside the handler, on the alternate stack */
  CATCH(caught, touch_null_page(0x18));
  handler_reads = NULL;
  CHECK(caught);
  EXPECT_EQ(handler_calls, 1);
  EXPECT_EQ((uintptr_t)last_info.si_addr, 0x18);
  CHECK(on_altstack(handler_local));
  EXPECT_EQ(handler_mmio, TE_ID);
  CHECK(mmio_works(&b, 0xcccc));
  stack_t now;
  CHECK(sigaltstack(NULL, &now) == 0);
  CHECK(now.ss_sp == altstack);
  CHECK(!(now.ss_flags & SS_ONSTACK));
}
TEST(sigaltstack_and_sa_onstack_handler) { CHILD_PASSES(child_sigaltstack); }

/* The reason programs set an alternate stack: a stack overflow, caught on it. A thread with a
 * small stack overflows into its guard page while the main thread's mapping stays in use. */
static struct mm_bar* overflow_bar;
static volatile int overflow_caught;
static sigjmp_buf overflow_jb;

static volatile int recurse_limit = 1 << 30; /* far beyond any stack: the guard page ends it */
static int recurse(volatile char* prev, int depth) {
  volatile char frame[1024];
  if (depth > recurse_limit) return 0;
  frame[0] = (char)depth;
  frame[sizeof frame - 1] = prev ? prev[0] : 0;
  return recurse(frame, depth + 1) + frame[0];
}

static void* overflow_thread(void* arg) {
  (void)arg;
  static uint8_t thread_altstack[64 * 1024];
  stack_t ss = {.ss_sp = thread_altstack, .ss_size = sizeof thread_altstack, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) return (void*)1;
  if (*mm_r32(overflow_bar, 0) != TE_ID) return (void*)2; /* MMIO from this thread */
  if (sigsetjmp(overflow_jb, 1) == 0) {
    jump_to = &overflow_jb;
    recurse(NULL, 0);
  } else {
    overflow_caught = 1;
  }
  jump_to = NULL;
  if (*mm_r32(overflow_bar, 0) != TE_ID) return (void*)3;
  return NULL;
}

static void child_stack_overflow(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  overflow_bar = &b;
  CHECK(install(SIGSEGV, SA_ONSTACK) == 0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t t;
  CHECK(pthread_create(&t, &attr, overflow_thread, NULL) == 0);
  void* ret = (void*)-1;
  CHECK(pthread_join(t, &ret) == 0);
  EXPECT_EQ((uintptr_t)ret, 0);
  CHECK(overflow_caught);
  EXPECT_EQ(last_info.si_signo, SIGSEGV);
  CHECK(last_info.si_code == SEGV_MAPERR || last_info.si_code == SEGV_ACCERR);
  CHECK(mmio_works(&b, 0xdddd));
}
TEST(stack_overflow_caught_on_the_alternate_stack) { CHILD_PASSES(child_stack_overflow); }

/* --------------------------------------------------------------------------- blocked SIGSEGV */

static void child_blocked_sigsegv(void) {
  struct mm_bar b;
  CHECK(open_ep(&b) == 0);
  sigset_t set, old, cur;
  sigemptyset(&set);
  sigaddset(&set, SIGSEGV);
  sigaddset(&set, SIGBUS);
  sigaddset(&set, SIGUSR1);
  CHECK(sigprocmask(SIG_BLOCK, &set, &old) == 0);
  CHECK(!sigismember(&old, SIGSEGV));
  /* MMIO is a fault on a signal the program thinks blocked: it still works */
  CHECK(mmio_works(&b, 0xeeee));
  CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0);
  CHECK(sigismember(&cur, SIGSEGV));
  CHECK(sigismember(&cur, SIGBUS));
  CHECK(sigismember(&cur, SIGUSR1));
  CHECK(pthread_sigmask(SIG_SETMASK, NULL, &cur) == 0);
  CHECK(sigismember(&cur, SIGSEGV));
  /* pthread_sigmask the same; unblocking shows it unblocked */
  sigemptyset(&set);
  sigaddset(&set, SIGSEGV);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &set, &old) == 0);
  CHECK(sigismember(&old, SIGSEGV));
  CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0);
  CHECK(!sigismember(&cur, SIGSEGV));
  CHECK(sigismember(&cur, SIGBUS));
  CHECK(mmio_works(&b, 0xffff));
  /* SIG_SETMASK with SIGSEGV in it, then MMIO of every kind still works */
  sigfillset(&set);
  CHECK(sigprocmask(SIG_SETMASK, &set, &old) == 0);
  CHECK(mmio_works(&b, 0x12345678));
  *mm_r32(&b, TE_WIN + 0x20) = 5;
  *(volatile uint32_t*)(b.bar + TE_WIN + 0x20) += 1;
  EXPECT_EQ(*mm_r32(&b, TE_WIN + 0x20), 6);
  CHECK(sigprocmask(SIG_SETMASK, &old, &cur) == 0);
  CHECK(sigismember(&cur, SIGSEGV));
  CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0);
  CHECK(!sigismember(&cur, SIGSEGV));
}
TEST(blocked_sigsegv_as_the_program_sees_it_and_mmio_works) { CHILD_PASSES(child_blocked_sigsegv); }

int main(void) {
  st_begin();
  st_run("");
  return st_exit();
}
