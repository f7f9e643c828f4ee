// The interposed libc entry points of libvfiobox-preload.so (only this file; it is not part of
// vb_preload, whose tests must not interpose their own process). Each wrapper does the least it
// can for calls that are not ours: a prefix test on the path ("/sys", "/dev/vfio") or a lock-free
// bitmap test on the fd, then the real libc function with errno untouched.
//
// Runtime state (one per process): the Backend (created lazily on the first /sys or /dev/vfio
// path, never destroyed), the current PathRewriter (an atomic pointer to an immutable snapshot;
// old ones are leaked on purpose, a thread may still be using one), the table of fds opened on
// sysfs control files (g_ctl_mu, kLeaf), and the generated trees' directory (removed at exit by the
// process that made it). Locks: g_regen_mu (kPreloadRegenerate, outermost) serializes
// regeneration; g_ctl_mu is never held across a backend call. fds of VFIO files live in
// uapi::FdTable.
//
// fork: a child of a process that holds no VFIO file and no BAR mapping starts a machine of its
// own at its first VFIO or sysfs call, exactly as a new process would (the kernel's selftest
// harness forks each test case from such a parent). Otherwise the backend is the parent's copy and
// may be mid-update: in the child, /dev/vfio opens and control writes answer ENODEV and the memory
// hooks pass through; inherited VFIO fds answer EBADF (FdTable). One machine shared by every
// process of a session is issue 15's design (docs/design/0009-process-model.md).
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/mutex.h"
#include "faults/fault_dispatcher.h"
#include "faults/trap_map.h"
#include "preload/backend.h"
#include "preload/path_rewriter.h"
#include "preload/sysfs_tree.h"
#include "uapi/fd_table.h"
#include "uapi/trace.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/user_memory.h"

#define VB_EXPORT __attribute__((visibility("default"), used))
// Defines the exported C symbol `sym` through a C++ function of another name, so that glibc's
// own declarations (with their exception specifications) never clash with ours.
#define INTERPOSE(ret, sym, params) extern "C" VB_EXPORT ret vb_##sym params __asm__(#sym); \
  extern "C" ret vb_##sym params

extern "C" void __chk_fail(void) __attribute__((noreturn));

namespace {

// ---------------------------------------------------------------- real functions

template <typename F>
F Resolve(std::atomic<void*>& slot, const char* name, const char* version = nullptr) {
  void* p = slot.load(std::memory_order_acquire);
  if (!p) {
    p = dlsym(RTLD_NEXT, name);
    if (!p && version) p = dlvsym(RTLD_NEXT, name, version);
    slot.store(p, std::memory_order_release);
  }
  return reinterpret_cast<F>(p);
}
#define REAL(name)                                                     \
  ([]() {                                                              \
    static std::atomic<void*> slot{nullptr};                           \
    return Resolve<decltype(&::name)>(slot, #name);                    \
  }())

using OpenatFn = int (*)(int, const char*, int, ...);
OpenatFn RealOpenat() {
  static std::atomic<void*> slot{nullptr};
  return Resolve<OpenatFn>(slot, "openat64");
}

// ---------------------------------------------------------------- runtime

constexpr int kStateUninit = 0, kStateReady = 1, kStateDisabled = 2;
std::atomic<int> g_state{kStateUninit};
std::mutex g_init_mu;  // serializes initialization (remade in a fork child)
thread_local bool t_busy = false;  // inside init or a backend call: serve nothing, pass through
std::atomic<bool> g_forked_child{false};

preload::Backend* g_backend = nullptr;  // set once by init, never destroyed
std::atomic<const preload::PathRewriter*> g_rewriter{nullptr};
std::string* g_base_dir = nullptr;
pid_t g_creator = 0;
std::atomic<unsigned> g_generation{0};
vb::Mutex g_regen_mu{vb::LockRank::kPreloadRegenerate};

// An open (write) of a sysfs control file: which file, and its bytes at open, so that bytes that
// reached it behind our back (stdio's internal write) can be told apart at the last close.
struct TrackedControl {
  preload::ControlFile file;
  std::string initial;
};

// fds opened for writing on sysfs control files, and how many (a lock-free fast path for write).
vb::Mutex g_ctl_mu{vb::LockRank::kLeaf};
std::unordered_map<int, std::shared_ptr<TrackedControl>>* g_ctl PT_GUARDED_BY(g_ctl_mu) = nullptr;
std::atomic<int> g_ctl_count{0};

struct ErrnoSaver {
  int saved = errno;
  ~ErrnoSaver() { errno = saved; }
};

struct BusyScope {
  bool was = t_busy;
  BusyScope() { t_busy = true; }
  ~BusyScope() { t_busy = was; }
};

void RemoveTreesAtExit() {
  if (g_base_dir && getpid() == g_creator) preload::RemoveTree(*g_base_dir);
}

bool Generate() REQUIRES(g_regen_mu) {
  preload::SysfsDescription desc = g_backend->Describe();
  unsigned gen = g_generation.fetch_add(1) + 1;
  std::string dir = *g_base_dir + "/g" + std::to_string(gen);
  if (mkdir(dir.c_str(), 0755) != 0) return false;
  auto tree = preload::GenerateSysfsTree(desc, dir);
  if (!tree) {
    fprintf(stderr, "vfiobox-preload: generating sysfs failed: %s\n", tree.error().ToString().c_str());
    return false;
  }
  g_rewriter.store(new preload::PathRewriter(std::move(*tree)), std::memory_order_release);
  return true;
}

void AtForkPrepare() NO_THREAD_SAFETY_ANALYSIS { g_ctl_mu.Lock(); }
void AtForkParent() NO_THREAD_SAFETY_ANALYSIS { g_ctl_mu.Unlock(); }
void AtForkChild() NO_THREAD_SAFETY_ANALYSIS {
  g_ctl_mu.Unlock();
  new (&g_init_mu) std::mutex();
}
// Registered after uapi::FdTable's handlers, so it runs after the table's child handler has
// unlocked the table (held across fork) and marked the inherited entries: asking the table its
// size from AtForkChild took the lock the child still held (a lock-order abort, or a self-deadlock
// without the checks, in every fork of a process that had used VFIO).
void AtForkChildAfterTable() {
  // A parent that never started its machine has nothing to inherit: the child starts its own on
  // first use, as the parent would have.
  if (g_state.load() == kStateUninit) return;
  if (g_state.load() == kStateReady && uapi::FdTable::Global().size() == 0 && faults::TrapMap::Global().empty()) {
    // Nothing of the parent's machine is reachable from here: start afresh on first use. The
    // parent's backend is abandoned, not destroyed (its threads did not come along).
    g_state.store(kStateUninit);
    g_rewriter.store(nullptr);
    g_backend = nullptr;
    return;
  }
  g_forked_child.store(true);
}

void InitOnce() {
  BusyScope busy;
  std::unique_ptr<preload::Backend> backend = preload::CreateBackend();
  if (!backend) {
    g_state.store(kStateDisabled);
    return;
  }
  // Where the trees go: $VFIOBOX_SYSFS_DIR, else /dev/shm (tmpfs: creating and removing a few
  // hundred files there costs about a millisecond, against tens on a journaled disk), else
  // $TMPDIR, else /tmp.
  std::string parent;
  const char* candidates[] = {getenv("VFIOBOX_SYSFS_DIR"), "/dev/shm", getenv("TMPDIR"), "/tmp"};
  for (const char* c : candidates) {
    if (c && *c && access(c, W_OK | X_OK) == 0) {
      parent = c;
      break;
    }
  }
  std::string templ = parent + "/vfiobox-sysfs-" + std::to_string(getpid()) + "-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    fprintf(stderr, "vfiobox-preload: cannot create the sysfs directory: %s\n", strerror(errno));
    g_state.store(kStateDisabled);
    return;
  }
  g_base_dir = new std::string(buf.data());
  g_creator = getpid();
  g_backend = backend.release();
  if (!g_ctl) g_ctl = new std::unordered_map<int, std::shared_ptr<TrackedControl>>();
  bool ok;
  {
    vb::MutexLock l(g_regen_mu);
    ok = Generate();
  }
  if (!ok) {
    preload::RemoveTree(*g_base_dir);
    g_state.store(kStateDisabled);
    return;
  }
  static bool at_exit_registered = false;  // once per process image (a fork child inherits it)
  if (!at_exit_registered) atexit(RemoveTreesAtExit);
  at_exit_registered = true;
  g_state.store(kStateReady, std::memory_order_release);
}

// The runtime, initializing it on first use; null when the library serves nothing (no backend,
// or called re-entrantly from init or a backend call).
const preload::PathRewriter* Rewriter() {
  int s = g_state.load(std::memory_order_acquire);
  if (s == kStateReady) return g_rewriter.load(std::memory_order_acquire);
  if (s == kStateDisabled || t_busy) return nullptr;
  {
    ErrnoSaver keep;
    std::lock_guard<std::mutex> l(g_init_mu);
    if (g_state.load(std::memory_order_acquire) == kStateUninit) InitOnce();
  }
  if (g_state.load(std::memory_order_acquire) != kStateReady) return nullptr;
  return g_rewriter.load(std::memory_order_acquire);
}

// "/sys..." or "/dev/vfio...": the only absolute paths that may be ours (cheap, no init).
bool Candidate(const char* path) {
  if (path == nullptr || path[0] != '/') return false;
  const char* p = path;
  while (*p == '/') ++p;
  if (strncmp(p, "sys", 3) == 0 && (p[3] == '/' || p[3] == '\0')) return true;
  if (strncmp(p, "dev", 3) != 0 || p[3] != '/') return false;
  p += 3;
  while (*p == '/') ++p;
  return strncmp(p, "vfio", 4) == 0 && (p[4] == '/' || p[4] == '\0');
}

struct Rewritten {
  preload::PathRewriter::Buffers bufs;
  preload::PathRewriter::Result r;
  const preload::PathRewriter* rw = nullptr;
};

// Fills `out` and returns the path to hand the real libc.
const char* Rewrite(const char* path, Rewritten* out) {
  out->r.path = path;
  out->r.ours = false;
  if (!Candidate(path)) return path;
  out->rw = Rewriter();
  if (!out->rw) return path;
  out->r = out->rw->Rewrite(path, &out->bufs);
  return out->r.path;
}

// ---------------------------------------------------------------- VFIO nodes and fds

int OpenNode(const Rewritten& rw, int flags) {
  if (g_forked_child.load()) {
    errno = ENODEV;
    return -1;
  }
  int err = 0;
  std::shared_ptr<uapi::FileObject> obj;
  {
    BusyScope busy;
    obj = g_backend->nodes().Open(rw.r.logical, flags, &err);
  }
  if (!obj) {
    errno = err ? err : ENOENT;
    return -1;
  }
  dev_t rdev = rw.r.node ? rw.r.node->rdev : 0;
  int fd = uapi::FdTable::Global().Install(std::move(obj), flags & O_CLOEXEC, rdev);
  if (fd < 0) {
    errno = -fd;
    return -1;
  }
  return fd;
}

// Answers for a call on fd: true when the fd is a VFIO file (then *obj is set, or errno is EBADF
// for an inherited one and *obj is null).
bool VfioFd(int fd, std::shared_ptr<uapi::FileObject>* obj) {
  uapi::FdTable& t = uapi::FdTable::Global();
  if (!t.MaybeOurs(fd)) return false;
  uapi::FdTable::Entry e = t.Lookup(fd);
  if (e.state == uapi::FdTable::State::kNotOurs) return false;
  uapi::trace::SetCurrentFd(fd);  // so --trace lines name the fd
  *obj = std::move(e.object);
  if (!*obj) errno = EBADF;
  return true;
}

template <typename T>
T Ret(T r) {
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

// ---------------------------------------------------------------- sysfs control files

// Reads a control file's current bytes through a fresh read-only open (the fd may be write-only,
// as a shell redirection's is).
bool ReadBack(int fd, std::string* out) {
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  int rfd = RealOpenat()(AT_FDCWD, self, O_RDONLY | O_CLOEXEC);
  if (rfd < 0) return false;
  char buf[4096];
  ssize_t n = REAL(pread64)(rfd, buf, sizeof buf, 0);
  REAL(close)(rfd);
  if (n < 0) return false;
  out->assign(buf, static_cast<size_t>(n));
  return true;
}

std::shared_ptr<TrackedControl> ControlFd(int fd) {
  if (g_ctl_count.load(std::memory_order_relaxed) == 0) return nullptr;
  vb::MutexLock l(g_ctl_mu);
  auto it = g_ctl->find(fd);
  return it == g_ctl->end() ? nullptr : it->second;
}

// After a successful open for writing inside the tree: is it a control file?
void MaybeTrackControl(int fd, const preload::PathRewriter* rw) {
  if (fd < 0 || !rw) return;
  ErrnoSaver keep;
  struct stat st;
  if (syscall(SYS_fstat, fd, &st) != 0) return;
  const preload::ControlFile* c = rw->ControlOf(st.st_dev, st.st_ino);
  if (!c) return;
  auto t = std::make_shared<TrackedControl>(TrackedControl{*c, {}});
  ReadBack(fd, &t->initial);
  vb::MutexLock l(g_ctl_mu);
  if (g_ctl->insert_or_assign(fd, std::move(t)).second) g_ctl_count.fetch_add(1);
}

// One store() of `len` bytes; returns len or -1 with errno.
ssize_t ApplyControl(const preload::ControlFile& file, const void* data, size_t len) {
  if (g_forked_child.load()) {
    errno = ENODEV;
    return -1;
  }
  preload::SysfsControl* ctl = g_backend->control();
  if (!ctl) {
    errno = EACCES;
    return -1;
  }
  int saved = errno;  // a successful write leaves errno alone
  int err;
  {
    BusyScope busy;
    err = ctl->OnWrite(preload::SysfsWrite{file, std::string(static_cast<const char*>(data), len)});
    if (err == 0) {
      vb::MutexLock l(g_regen_mu);
      Generate();
    }
  }
  if (err != 0) {
    errno = err;
    return -1;
  }
  errno = saved;
  return static_cast<ssize_t>(len);
}

// Drops fd from the control table (before it is closed or replaced). If it was the last fd of
// that open and bytes reached the file through a path we do not see (stdio's internal write, as
// bash's echo uses), they are applied now, as one store.
void ForgetControl(int fd) {
  if (g_ctl_count.load(std::memory_order_relaxed) == 0) return;
  std::shared_ptr<TrackedControl> c;
  {
    vb::MutexLock l(g_ctl_mu);
    auto it = g_ctl->find(fd);
    if (it == g_ctl->end()) return;
    c = std::move(it->second);
    g_ctl->erase(it);
    g_ctl_count.fetch_sub(1);
  }
  if (c.use_count() != 1) return;
  ErrnoSaver keep;
  std::string now;
  if (!ReadBack(fd, &now) || now == c->initial || now.empty()) return;
  // Only what was appended or rewritten since the open is the store.
  std::string data = now.compare(0, c->initial.size(), c->initial) == 0 && now.size() > c->initial.size()
                         ? now.substr(c->initial.size())
                         : now;
  syscall(SYS_ftruncate, fd, 0);
  ApplyControl(c->file, data.data(), data.size());
}

void CopyControl(int oldfd, int newfd) {
  if (g_ctl_count.load(std::memory_order_relaxed) == 0) return;
  vb::MutexLock l(g_ctl_mu);
  auto it = g_ctl->find(oldfd);
  if (it == g_ctl->end()) return;
  std::shared_ptr<TrackedControl> c = it->second;
  if (g_ctl->insert_or_assign(newfd, std::move(c)).second) g_ctl_count.fetch_add(1);
}

bool WantsWrite(const char* mode) {
  return mode && (strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+'));
}

// fopen of a control file for writing: a stream whose every flush is one store, as the kernel
// sees a write(2) from stdio.
FILE* ControlStream(const preload::ControlFile& file, const char* mode) {
  auto* copy = new preload::ControlFile(file);
  cookie_io_functions_t io{};
  io.write = [](void* cookie, const char* buf, size_t size) -> ssize_t {
    return ApplyControl(*static_cast<preload::ControlFile*>(cookie), buf, size);
  };
  io.close = [](void* cookie) -> int {
    delete static_cast<preload::ControlFile*>(cookie);
    return 0;
  };
  FILE* f = fopencookie(copy, mode, io);
  if (!f) delete copy;
  return f;
}

const preload::ControlFile* ControlAtPath(const Rewritten& rw) {
  if (!rw.r.ours) return nullptr;
  struct stat st;
  ErrnoSaver keep;
  if (syscall(SYS_newfstatat, AT_FDCWD, rw.r.path, &st, 0) != 0) return nullptr;
  return rw.rw->ControlOf(st.st_dev, st.st_ino);
}

// ---------------------------------------------------------------- open

void RefreshTextFile(const Rewritten& rw);  // issue 14 section, at the end of this file

// A PCI function's `config` file is rewritten from the device just before it is opened, so a
// program that changes config space through VFIO (COMMAND, BARs, MSI) and then reads sysfs sees the
// change, as on Linux. Reads through an fd opened earlier still see the bytes of their open.
void RefreshConfigFile(const Rewritten& rw) {
  RefreshTextFile(rw);
  if (!rw.r.ours || !rw.r.logical || g_forked_child.load()) return;
  const char* slash = strrchr(rw.r.logical, '/');
  if (!slash || strcmp(slash, "/config") != 0) return;
  const char* dir = slash;
  while (dir > rw.r.logical && dir[-1] != '/') --dir;
  std::string device(dir, static_cast<size_t>(slash - dir));
  ErrnoSaver keep;
  std::vector<uint8_t> bytes;
  {
    BusyScope busy;
    if (!g_backend || !g_backend->CurrentConfig(device, &bytes) || bytes.empty()) return;
  }
  int wfd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, rw.r.path, O_WRONLY | O_CLOEXEC));
  if (wfd < 0) return;
  (void)syscall(SYS_pwrite64, wfd, bytes.data(), bytes.size(), 0);
  (void)syscall(SYS_close, wfd);
}

int OpenAt(int dirfd, const char* path, int flags, mode_t mode) {
  Rewritten rw;
  const char* real = Rewrite(path, &rw);
  if (rw.r.dev_node && !(flags & O_PATH)) return OpenNode(rw, flags);
  RefreshConfigFile(rw);
  int fd = RealOpenat()(dirfd, real, flags, mode);
  if (fd >= 0 && (flags & O_ACCMODE) != O_RDONLY) {
    // Relative to a directory fd that may be inside the tree, too.
    if (rw.r.ours || (path && path[0] != '/' && g_state.load() == kStateReady))
      MaybeTrackControl(fd, rw.rw ? rw.rw : g_rewriter.load(std::memory_order_acquire));
  }
  return fd;
}

mode_t ModeArg(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

// ---------------------------------------------------------------- stat

void PatchStat(const Rewritten& rw, struct stat* st) {
  if (rw.r.node && S_ISREG(st->st_mode)) {
    st->st_mode = rw.r.node->mode;
    st->st_rdev = rw.r.node->rdev;
    st->st_size = 0;
    st->st_blocks = 0;
  }
}

int StatAt(int dirfd, const char* path, struct stat* st, int flags) {
  Rewritten rw;
  const char* real = Rewrite(path, &rw);
  long r = syscall(SYS_newfstatat, dirfd, real, st, flags);
  if (r == 0) PatchStat(rw, st);
  return static_cast<int>(r);
}

// What fstat shows for a VFIO fd: the node's character device, or an anonymous inode (device fds).
void PatchFstat(const uapi::FdTable::Entry& e, struct stat* st) {
  st->st_size = 0;
  st->st_blocks = 0;
  if (e.rdev == makedev(10, 196)) {
    st->st_mode = S_IFCHR | 0666;
  } else if (e.rdev != 0) {
    st->st_mode = S_IFCHR | 0600;
  } else {
    st->st_mode = 0600;
  }
  st->st_rdev = e.rdev;
}

int Fstat(int fd, struct stat* st) {
  long r = syscall(SYS_fstat, fd, st);
  if (r == 0 && uapi::FdTable::Global().MaybeOurs(fd)) {
    uapi::FdTable::Entry e = uapi::FdTable::Global().Lookup(fd);
    if (e.state != uapi::FdTable::State::kNotOurs) PatchFstat(e, st);
  }
  return static_cast<int>(r);
}

int FstatAt(int dirfd, const char* path, struct stat* st, int flags) {
  if ((flags & AT_EMPTY_PATH) && path && path[0] == '\0') return Fstat(dirfd, st);
  return StatAt(dirfd, path, st, flags);
}

static_assert(sizeof(struct stat) == sizeof(struct stat64), "x86-64: one stat layout");

// ---------------------------------------------------------------- per-fd I/O

ssize_t VfioRead(const std::shared_ptr<uapi::FileObject>& obj, int fd, void* buf, size_t n) {
  off_t pos = lseek(fd, 0, SEEK_CUR);
  ssize_t r = obj->Pread(buf, n, pos);
  if (r > 0) lseek(fd, pos + r, SEEK_SET);
  return Ret(r);
}

ssize_t VfioWrite(const std::shared_ptr<uapi::FileObject>& obj, int fd, const void* buf, size_t n) {
  off_t pos = lseek(fd, 0, SEEK_CUR);
  ssize_t r = obj->Pwrite(buf, n, pos);
  if (r > 0) lseek(fd, pos + r, SEEK_SET);
  return Ret(r);
}

ssize_t Pread(int fd, void* buf, size_t n, off_t off) {
  std::shared_ptr<uapi::FileObject> obj;
  if (VfioFd(fd, &obj)) return obj ? Ret(obj->Pread(buf, n, off)) : -1;
  return REAL(pread64)(fd, buf, n, off);
}

ssize_t Pwrite(int fd, const void* buf, size_t n, off_t off) {
  std::shared_ptr<uapi::FileObject> obj;
  if (VfioFd(fd, &obj)) return obj ? Ret(obj->Pwrite(buf, n, off)) : -1;
  if (auto c = ControlFd(fd)) return ApplyControl(c->file, buf, n);
  return REAL(pwrite64)(fd, buf, n, off);
}

void* Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  std::shared_ptr<uapi::FileObject> obj;
  if (!(flags & MAP_ANONYMOUS) && VfioFd(fd, &obj)) {
    if (!obj) return MAP_FAILED;
    int err = 0;
    void* p = obj->Mmap(addr, len, prot, flags, off, &err);
    if (p == nullptr || p == MAP_FAILED) {
      errno = err ? err : ENODEV;
      return MAP_FAILED;
    }
    return p;
  }
  return REAL(mmap64)(addr, len, prot, flags, fd, off);
}

preload::RealMemoryCalls RealMemory() {
  preload::RealMemoryCalls m;
  m.munmap = REAL(munmap);
  m.mremap = [](void* old_addr, size_t old_size, size_t new_size, int flags, void* new_addr) {
    return REAL(mremap)(old_addr, old_size, new_size, flags, new_addr);
  };
  m.madvise = REAL(madvise);
  return m;
}

bool MemoryHooksOn() {
  return g_state.load(std::memory_order_acquire) == kStateReady && !t_busy &&
         !g_forked_child.load(std::memory_order_relaxed);
}

// ---------------------------------------------------------------- fd lifetime

int Close(int fd) {
  ForgetControl(fd);
  uapi::FdTable& t = uapi::FdTable::Global();
  if (!t.MaybeOurs(fd)) return REAL(close)(fd);
  return Ret(t.Close(fd));
}

int Dup3(int oldfd, int newfd, int flags, bool dup2) {
  uapi::FdTable& t = uapi::FdTable::Global();
  if (dup2 && oldfd == newfd) return REAL(dup2)(oldfd, newfd);
  if (oldfd != newfd) ForgetControl(newfd);
  int r;
  if (t.MaybeOurs(oldfd) || t.MaybeOurs(newfd))
    r = Ret(t.Dup3(oldfd, newfd, flags));
  else
    r = dup2 ? REAL(dup2)(oldfd, newfd) : REAL(dup3)(oldfd, newfd, flags);
  if (r >= 0) CopyControl(oldfd, newfd);
  return r;
}

int DupFd(int fd, int minfd, bool cloexec) {
  uapi::FdTable& t = uapi::FdTable::Global();
  int r;
  if (t.MaybeOurs(fd))
    r = Ret(t.DupFd(fd, minfd, cloexec ? O_CLOEXEC : 0));
  else
    r = REAL(fcntl)(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, minfd);
  if (r >= 0) CopyControl(fd, r);
  return r;
}

int Fcntl(int fd, int cmd, void* arg, bool is64) {
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
    return DupFd(fd, static_cast<int>(reinterpret_cast<intptr_t>(arg)), cmd == F_DUPFD_CLOEXEC);
  if (is64) {
    static std::atomic<void*> slot{nullptr};
    auto fn = Resolve<int (*)(int, int, ...)>(slot, "fcntl64");
    if (fn) return fn(fd, cmd, arg);
  }
  return REAL(fcntl)(fd, cmd, arg);
}

int CloseRange(unsigned first, unsigned last, int flags) {
  if (!(flags & CLOSE_RANGE_CLOEXEC) && g_ctl_count.load() != 0) {
    std::vector<int> fds;
    {
      vb::MutexLock l(g_ctl_mu);
      for (const auto& [fd, c] : *g_ctl)
        if (static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last) fds.push_back(fd);
    }
    for (int fd : fds) ForgetControl(fd);
  }
  if (uapi::FdTable::Global().size() == 0)
    return static_cast<int>(syscall(SYS_close_range, first, last, flags));
  return Ret(uapi::FdTable::Global().CloseRange(first, last, flags));
}

// type1's user-pointer check caches (docs/design/0007): a successful call that may change the
// address space bumps the VMA-cache generation (one atomic increment).
int AddressSpaceChanged(int r) {
  if (r == 0) vfio::type1::UserMemory::InvalidateVmaCache();
  return r;
}
void* AddressSpaceChanged(void* r) {
  if (r != MAP_FAILED) vfio::type1::UserMemory::InvalidateVmaCache();
  return r;
}
// madvise: every advice but the ones that only fault pages in (type1's own exact check uses
// MADV_POPULATE_*, which must not throw its cache away).
int AdviceDone(int advice, int r) {
  if (advice == MADV_WILLNEED || advice == 22 /* MADV_POPULATE_READ */ || advice == 23 /* _WRITE */) return r;
  return AddressSpaceChanged(r);
}

__attribute__((constructor)) void PreloadInit() {
  pthread_atfork(AtForkPrepare, AtForkParent, AtForkChild);
  uapi::FdTable::Global();  // registers the table's own fork handlers
  pthread_atfork(nullptr, nullptr, AtForkChildAfterTable);
}

}  // namespace

// ================================================================ the exported symbols

INTERPOSE(int, open, (const char* path, int flags, ...)) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return OpenAt(AT_FDCWD, path, flags, mode);
}
INTERPOSE(int, open64, (const char* path, int flags, ...)) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return OpenAt(AT_FDCWD, path, flags, mode);
}
INTERPOSE(int, openat, (int dirfd, const char* path, int flags, ...)) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return OpenAt(dirfd, path, flags, mode);
}
INTERPOSE(int, openat64, (int dirfd, const char* path, int flags, ...)) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  return OpenAt(dirfd, path, flags, mode);
}
// The fortified forms are only reached without O_CREAT/O_TMPFILE (glibc checks at compile time).
INTERPOSE(int, __open_2, (const char* path, int flags)) { return OpenAt(AT_FDCWD, path, flags, 0); }
INTERPOSE(int, __open64_2, (const char* path, int flags)) { return OpenAt(AT_FDCWD, path, flags, 0); }
INTERPOSE(int, __openat_2, (int dirfd, const char* path, int flags)) {
  return OpenAt(dirfd, path, flags, 0);
}
INTERPOSE(int, __openat64_2, (int dirfd, const char* path, int flags)) {
  return OpenAt(dirfd, path, flags, 0);
}
INTERPOSE(int, creat, (const char* path, mode_t mode)) {
  return OpenAt(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
INTERPOSE(int, creat64, (const char* path, mode_t mode)) {
  return OpenAt(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

static FILE* FopenCommon(const char* path, const char* mode, FILE* (*real)(const char*, const char*)) {
  Rewritten rw;
  const char* p = Rewrite(path, &rw);
  if (rw.r.dev_node) {
    // stdio on a VFIO node: open through the node table and wrap the fd.
    int acc = (mode && strchr(mode, '+')) ? O_RDWR : (mode && mode[0] == 'r') ? O_RDONLY : O_WRONLY;
    int fd = OpenNode(rw, acc | ((mode && strchr(mode, 'e')) ? O_CLOEXEC : 0));
    if (fd < 0) return nullptr;
    FILE* f = fdopen(fd, mode);
    if (!f) {
      ErrnoSaver keep;
      Close(fd);
    }
    return f;
  }
  if (WantsWrite(mode))
    if (const preload::ControlFile* c = ControlAtPath(rw)) return ControlStream(*c, mode);
  RefreshConfigFile(rw);
  return real(p, mode);
}
INTERPOSE(FILE*, fopen, (const char* path, const char* mode)) {
  return FopenCommon(path, mode, REAL(fopen));
}
INTERPOSE(FILE*, fopen64, (const char* path, const char* mode)) {
  return FopenCommon(path, mode, REAL(fopen64));
}
INTERPOSE(FILE*, freopen, (const char* path, const char* mode, FILE* stream)) {
  Rewritten rw;
  return REAL(freopen)(Rewrite(path, &rw), mode, stream);
}
INTERPOSE(FILE*, freopen64, (const char* path, const char* mode, FILE* stream)) {
  Rewritten rw;
  return REAL(freopen64)(Rewrite(path, &rw), mode, stream);
}

// stat family: the real calls are the kernel's (newfstatat/fstat/statx), exactly what glibc 2.36
// does underneath, so no libc symbol (present or compat-only) is needed.
INTERPOSE(int, stat, (const char* path, struct stat* st)) { return StatAt(AT_FDCWD, path, st, 0); }
INTERPOSE(int, stat64, (const char* path, struct stat64* st)) {
  return StatAt(AT_FDCWD, path, reinterpret_cast<struct stat*>(st), 0);
}
INTERPOSE(int, lstat, (const char* path, struct stat* st)) {
  return StatAt(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}
INTERPOSE(int, lstat64, (const char* path, struct stat64* st)) {
  return StatAt(AT_FDCWD, path, reinterpret_cast<struct stat*>(st), AT_SYMLINK_NOFOLLOW);
}
INTERPOSE(int, fstatat, (int dirfd, const char* path, struct stat* st, int flags)) {
  return FstatAt(dirfd, path, st, flags);
}
INTERPOSE(int, fstatat64, (int dirfd, const char* path, struct stat64* st, int flags)) {
  return FstatAt(dirfd, path, reinterpret_cast<struct stat*>(st), flags);
}
INTERPOSE(int, fstat, (int fd, struct stat* st)) { return Fstat(fd, st); }
INTERPOSE(int, fstat64, (int fd, struct stat64* st)) {
  return Fstat(fd, reinterpret_cast<struct stat*>(st));
}
INTERPOSE(int, __xstat, (int ver, const char* path, struct stat* st)) {
  return StatAt(AT_FDCWD, path, st, 0);
}
INTERPOSE(int, __xstat64, (int ver, const char* path, struct stat64* st)) {
  return StatAt(AT_FDCWD, path, reinterpret_cast<struct stat*>(st), 0);
}
INTERPOSE(int, __lxstat, (int ver, const char* path, struct stat* st)) {
  return StatAt(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}
INTERPOSE(int, __lxstat64, (int ver, const char* path, struct stat64* st)) {
  return StatAt(AT_FDCWD, path, reinterpret_cast<struct stat*>(st), AT_SYMLINK_NOFOLLOW);
}
INTERPOSE(int, __fxstat, (int ver, int fd, struct stat* st)) { return Fstat(fd, st); }
INTERPOSE(int, __fxstat64, (int ver, int fd, struct stat64* st)) {
  return Fstat(fd, reinterpret_cast<struct stat*>(st));
}
INTERPOSE(int, __fxstatat, (int ver, int dirfd, const char* path, struct stat* st, int flags)) {
  return FstatAt(dirfd, path, st, flags);
}
INTERPOSE(int, __fxstatat64, (int ver, int dirfd, const char* path, struct stat64* st, int flags)) {
  return FstatAt(dirfd, path, reinterpret_cast<struct stat*>(st), flags);
}
INTERPOSE(int, statx, (int dirfd, const char* path, int flags, unsigned mask, struct statx* stx)) {
  Rewritten rw;
  const char* real = Rewrite(path, &rw);
  long r = syscall(SYS_statx, dirfd, real, flags, mask, stx);
  if (r != 0) return static_cast<int>(r);
  if (rw.r.node && S_ISREG(stx->stx_mode)) {
    stx->stx_mode = static_cast<uint16_t>(rw.r.node->mode);
    stx->stx_rdev_major = major(rw.r.node->rdev);
    stx->stx_rdev_minor = minor(rw.r.node->rdev);
    stx->stx_size = 0;
    stx->stx_blocks = 0;
  } else if ((flags & AT_EMPTY_PATH) && path && path[0] == '\0' &&
             uapi::FdTable::Global().MaybeOurs(dirfd)) {
    uapi::FdTable::Entry e = uapi::FdTable::Global().Lookup(dirfd);
    if (e.state != uapi::FdTable::State::kNotOurs) {
      struct stat st{};
      PatchFstat(e, &st);
      stx->stx_mode = static_cast<uint16_t>(st.st_mode);
      stx->stx_rdev_major = major(st.st_rdev);
      stx->stx_rdev_minor = minor(st.st_rdev);
      stx->stx_size = 0;
    }
  }
  return 0;
}

INTERPOSE(int, access, (const char* path, int mode)) {
  Rewritten rw;
  return REAL(access)(Rewrite(path, &rw), mode);
}
INTERPOSE(int, faccessat, (int dirfd, const char* path, int mode, int flags)) {
  Rewritten rw;
  return REAL(faccessat)(dirfd, Rewrite(path, &rw), mode, flags);
}
INTERPOSE(int, euidaccess, (const char* path, int mode)) {
  Rewritten rw;
  return REAL(euidaccess)(Rewrite(path, &rw), mode);
}
INTERPOSE(int, eaccess, (const char* path, int mode)) {
  Rewritten rw;
  return REAL(eaccess)(Rewrite(path, &rw), mode);
}

// Links and names. The tree's links are relative, as the kernel's, so readlink needs no mapping.
INTERPOSE(ssize_t, readlink, (const char* path, char* buf, size_t len)) {
  Rewritten rw;
  return REAL(readlink)(Rewrite(path, &rw), buf, len);
}
INTERPOSE(ssize_t, readlinkat, (int dirfd, const char* path, char* buf, size_t len)) {
  Rewritten rw;
  return REAL(readlinkat)(dirfd, Rewrite(path, &rw), buf, len);
}
INTERPOSE(ssize_t, __readlink_chk, (const char* path, char* buf, size_t len, size_t buflen)) {
  if (len > buflen) __chk_fail();
  Rewritten rw;
  return REAL(readlink)(Rewrite(path, &rw), buf, len);
}
INTERPOSE(ssize_t, __readlinkat_chk, (int dirfd, const char* path, char* buf, size_t len, size_t buflen)) {
  if (len > buflen) __chk_fail();
  Rewritten rw;
  return REAL(readlinkat)(dirfd, Rewrite(path, &rw), buf, len);
}
static char* RealpathCommon(const char* path, char* resolved) {
  Rewritten rw;
  char* r = REAL(realpath)(Rewrite(path, &rw), resolved);
  if (r && rw.r.ours) rw.rw->MapBack(r);
  return r;
}
INTERPOSE(char*, realpath, (const char* path, char* resolved)) { return RealpathCommon(path, resolved); }
INTERPOSE(char*, __realpath_chk, (const char* path, char* resolved, size_t resolvedlen)) {
  if (resolvedlen < PATH_MAX) __chk_fail();
  return RealpathCommon(path, resolved);
}
INTERPOSE(char*, canonicalize_file_name, (const char* path)) { return RealpathCommon(path, nullptr); }

// xattrs: `ls -l` asks for ACLs on every entry.
INTERPOSE(ssize_t, getxattr, (const char* path, const char* name, void* value, size_t size)) {
  Rewritten rw;
  return REAL(getxattr)(Rewrite(path, &rw), name, value, size);
}
INTERPOSE(ssize_t, lgetxattr, (const char* path, const char* name, void* value, size_t size)) {
  Rewritten rw;
  return REAL(lgetxattr)(Rewrite(path, &rw), name, value, size);
}
INTERPOSE(ssize_t, listxattr, (const char* path, char* list, size_t size)) {
  Rewritten rw;
  return REAL(listxattr)(Rewrite(path, &rw), list, size);
}
INTERPOSE(ssize_t, llistxattr, (const char* path, char* list, size_t size)) {
  Rewritten rw;
  return REAL(llistxattr)(Rewrite(path, &rw), list, size);
}

INTERPOSE(DIR*, opendir, (const char* path)) {
  Rewritten rw;
  return REAL(opendir)(Rewrite(path, &rw));
}
INTERPOSE(int, scandir, (const char* dir, struct dirent*** list, int (*sel)(const struct dirent*),
                         int (*cmp)(const struct dirent**, const struct dirent**))) {
  Rewritten rw;
  return REAL(scandir)(Rewrite(dir, &rw), list, sel, cmp);
}
INTERPOSE(int, scandir64, (const char* dir, struct dirent64*** list,
                           int (*sel)(const struct dirent64*),
                           int (*cmp)(const struct dirent64**, const struct dirent64**))) {
  Rewritten rw;
  return REAL(scandir64)(Rewrite(dir, &rw), list, sel, cmp);
}

// Per-fd calls.
INTERPOSE(int, ioctl, (int fd, unsigned long request, ...)) {
  va_list ap;
  va_start(ap, request);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  std::shared_ptr<uapi::FileObject> obj;
  if (VfioFd(fd, &obj)) return obj ? static_cast<int>(Ret(obj->Ioctl(request, arg))) : -1;
  return REAL(ioctl)(fd, request, arg);
}
INTERPOSE(ssize_t, read, (int fd, void* buf, size_t n)) {
  std::shared_ptr<uapi::FileObject> obj;
  if (VfioFd(fd, &obj)) return obj ? VfioRead(obj, fd, buf, n) : -1;
  return REAL(read)(fd, buf, n);
}
INTERPOSE(ssize_t, __read_chk, (int fd, void* buf, size_t n, size_t buflen)) {
  if (n > buflen) __chk_fail();
  return vb_read(fd, buf, n);
}
INTERPOSE(ssize_t, write, (int fd, const void* buf, size_t n)) {
  std::shared_ptr<uapi::FileObject> obj;
  if (VfioFd(fd, &obj)) return obj ? VfioWrite(obj, fd, buf, n) : -1;
  if (auto c = ControlFd(fd)) return ApplyControl(c->file, buf, n);
  return REAL(write)(fd, buf, n);
}
INTERPOSE(ssize_t, pread, (int fd, void* buf, size_t n, off_t off)) { return Pread(fd, buf, n, off); }
INTERPOSE(ssize_t, pread64, (int fd, void* buf, size_t n, off64_t off)) { return Pread(fd, buf, n, off); }
INTERPOSE(ssize_t, __pread_chk, (int fd, void* buf, size_t n, off_t off, size_t buflen)) {
  if (n > buflen) __chk_fail();
  return Pread(fd, buf, n, off);
}
INTERPOSE(ssize_t, __pread64_chk, (int fd, void* buf, size_t n, off64_t off, size_t buflen)) {
  if (n > buflen) __chk_fail();
  return Pread(fd, buf, n, off);
}
INTERPOSE(ssize_t, pwrite, (int fd, const void* buf, size_t n, off_t off)) {
  return Pwrite(fd, buf, n, off);
}
INTERPOSE(ssize_t, pwrite64, (int fd, const void* buf, size_t n, off64_t off)) {
  return Pwrite(fd, buf, n, off);
}

// A fixed mapping or an munmap over a trapped BAR mapping ends it (its device file reference goes
// with it, as a vma's vm_file does).
void ForgetTrapped(void* addr, size_t len) {
  if (!faults::TrapMap::Global().empty()) faults::TrapMap::Global().Remove(reinterpret_cast<uint64_t>(addr), len);
}
void* MmapCommon(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  void* r = Mmap(addr, len, prot, flags, fd, off);
  if (r != MAP_FAILED && (flags & MAP_FIXED) && !faults::TrapMap::Global().empty()) {
    // Our own trapped mapping registers itself; anything else placed over a trapped range ends it.
    std::shared_ptr<uapi::FileObject> obj;
    if ((flags & MAP_ANONYMOUS) || !VfioFd(fd, &obj)) ForgetTrapped(r, len);
  }
  return AddressSpaceChanged(r);
}
INTERPOSE(void*, mmap, (void* addr, size_t len, int prot, int flags, int fd, off_t off)) {
  return MmapCommon(addr, len, prot, flags, fd, off);
}
INTERPOSE(void*, mmap64, (void* addr, size_t len, int prot, int flags, int fd, off64_t off)) {
  return MmapCommon(addr, len, prot, flags, fd, off);
}
INTERPOSE(int, munmap, (void* addr, size_t len)) {
  ForgetTrapped(addr, len);
  if (MemoryHooksOn()) return AddressSpaceChanged(g_backend->Munmap(addr, len, RealMemory()));
  return AddressSpaceChanged(REAL(munmap)(addr, len));
}
INTERPOSE(void*, mremap, (void* old_addr, size_t old_size, size_t new_size, int flags, ...)) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  // A trapped BAR mapping cannot be moved or resized (Linux: VM_DONTEXPAND; moving is refused here,
  // see docs/design/0008-mapped-registers.md).
  if (faults::TrapMap::Global().Find(reinterpret_cast<uint64_t>(old_addr))) {
    errno = EFAULT;
    return MAP_FAILED;
  }
  if (MemoryHooksOn())
    return AddressSpaceChanged(g_backend->Mremap(old_addr, old_size, new_size, flags, new_addr, RealMemory()));
  return AddressSpaceChanged(REAL(mremap)(old_addr, old_size, new_size, flags, new_addr));
}
INTERPOSE(int, madvise, (void* addr, size_t len, int advice)) {
  if (MemoryHooksOn()) return AdviceDone(advice, g_backend->Madvise(addr, len, advice, RealMemory()));
  return AdviceDone(advice, REAL(madvise)(addr, len, advice));
}

INTERPOSE(int, close, (int fd)) { return Close(fd); }
INTERPOSE(int, close_range, (unsigned first, unsigned last, int flags)) {
  return CloseRange(first, last, flags);
}
INTERPOSE(void, closefrom, (int lowfd)) {
  if (lowfd < 0) lowfd = 0;
  if (CloseRange(static_cast<unsigned>(lowfd), ~0u, 0) == 0) return;
  REAL(closefrom)(lowfd);
}
INTERPOSE(int, dup, (int fd)) { return DupFd(fd, 0, false); }
INTERPOSE(int, dup2, (int oldfd, int newfd)) { return Dup3(oldfd, newfd, 0, true); }
INTERPOSE(int, dup3, (int oldfd, int newfd, int flags)) { return Dup3(oldfd, newfd, flags, false); }
INTERPOSE(int, fcntl, (int fd, int cmd, ...)) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return Fcntl(fd, cmd, arg, false);
}
INTERPOSE(int, fcntl64, (int fd, int cmd, ...)) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return Fcntl(fd, cmd, arg, true);
}

// ---------------------------------------------------------------- check caches (design 0007)
// The rest of the calls that change the address space, the memlock limit or the capabilities, so
// that type1's caches (switched on by SystemBackend) stay right. The real calls are the kernel's.
INTERPOSE(int, mprotect, (void* addr, size_t len, int prot)) {
  return AddressSpaceChanged(static_cast<int>(syscall(SYS_mprotect, addr, len, prot)));
}
INTERPOSE(int, pkey_mprotect, (void* addr, size_t len, int prot, int pkey)) {
  return AddressSpaceChanged(static_cast<int>(syscall(SYS_pkey_mprotect, addr, len, prot, pkey)));
}
INTERPOSE(int, brk, (void* addr)) { return AddressSpaceChanged(REAL(brk)(addr)); }
INTERPOSE(void*, sbrk, (intptr_t increment)) {
  void* r = REAL(sbrk)(increment);
  if (r != reinterpret_cast<void*>(-1) && increment != 0) vfio::type1::UserMemory::InvalidateVmaCache();
  return r;
}
INTERPOSE(void*, shmat, (int id, const void* addr, int flags)) {
  void* r = REAL(shmat)(id, addr, flags);
  if (r != reinterpret_cast<void*>(-1)) vfio::type1::UserMemory::InvalidateVmaCache();
  return r;
}
INTERPOSE(int, shmdt, (const void* addr)) { return AddressSpaceChanged(REAL(shmdt)(addr)); }

static int LimitDone(pid_t pid, int resource, int r) {
  if (r == 0 && resource == RLIMIT_MEMLOCK && (pid == 0 || pid == getpid()))
    vfio::type1::LockedMemory::RefreshLimit();
  return r;
}
INTERPOSE(int, setrlimit, (int resource, const struct rlimit* rl)) {
  return LimitDone(0, resource, static_cast<int>(syscall(SYS_prlimit64, 0, resource, rl, nullptr)));
}
INTERPOSE(int, setrlimit64, (int resource, const struct rlimit* rl)) {
  return LimitDone(0, resource, static_cast<int>(syscall(SYS_prlimit64, 0, resource, rl, nullptr)));
}
INTERPOSE(int, prlimit, (pid_t pid, int resource, const struct rlimit* rl, struct rlimit* old)) {
  const int r = static_cast<int>(syscall(SYS_prlimit64, pid, resource, rl, old));
  return rl ? LimitDone(pid, resource, r) : r;
}
INTERPOSE(int, prlimit64, (pid_t pid, int resource, const struct rlimit* rl, struct rlimit* old)) {
  const int r = static_cast<int>(syscall(SYS_prlimit64, pid, resource, rl, old));
  return rl ? LimitDone(pid, resource, r) : r;
}
INTERPOSE(int, capset, (void* header, const void* data)) {
  const int r = static_cast<int>(syscall(SYS_capset, header, data));
  if (r == 0) vfio::type1::LockedMemory::RefreshLimit();
  return r;
}

// ---------------------------------------------------------------- signals (design 0008)
// Once the fault dispatcher is installed it owns SIGSEGV and SIGBUS: the program's actions for them
// are recorded there and called for every fault that is not vfiobox's, so a program's own handler
// never displaces the MMIO traps. Every other signal, and every call before the dispatcher exists,
// goes to the kernel untouched.
static bool DispatcherOwns(int sig) {
  return (sig == SIGSEGV || sig == SIGBUS) && faults::FaultDispatcher::installed();
}

INTERPOSE(int, sigaction, (int sig, const struct sigaction* act, struct sigaction* old)) {
  if (DispatcherOwns(sig)) return Ret(faults::FaultDispatcher::ProgramSigaction(sig, act, old));
  return REAL(sigaction)(sig, act, old);
}
INTERPOSE(int, __sigaction, (int sig, const struct sigaction* act, struct sigaction* old)) {
  return vb_sigaction(sig, act, old);
}

// signal() and friends through the program's action, with each one's historical semantics.
static sighandler_t SignalVia(int sig, sighandler_t handler, int flags) {
  struct sigaction act {}, old {};
  act.sa_handler = handler;
  act.sa_flags = flags;
  sigemptyset(&act.sa_mask);
  if (!(flags & SA_NODEFER)) sigaddset(&act.sa_mask, sig);
  if (vb_sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}
INTERPOSE(sighandler_t, signal, (int sig, sighandler_t handler)) {
  if (!DispatcherOwns(sig)) return REAL(signal)(sig, handler);
  return SignalVia(sig, handler, SA_RESTART);
}
INTERPOSE(sighandler_t, bsd_signal, (int sig, sighandler_t handler)) {
  if (!DispatcherOwns(sig)) {
    static std::atomic<void*> slot{nullptr};
    return Resolve<sighandler_t (*)(int, sighandler_t)>(slot, "bsd_signal")(sig, handler);
  }
  return SignalVia(sig, handler, SA_RESTART);
}
INTERPOSE(sighandler_t, sysv_signal, (int sig, sighandler_t handler)) {
  if (!DispatcherOwns(sig)) return REAL(sysv_signal)(sig, handler);
  return SignalVia(sig, handler, SA_RESETHAND | SA_NODEFER);
}
INTERPOSE(sighandler_t, __sysv_signal, (int sig, sighandler_t handler)) { return vb_sysv_signal(sig, handler); }

// The program may not block SIGSEGV for real: a synchronous fault on a blocked signal kills the
// process, and an MMIO access is a fault. The program's view of the two bits is kept per thread and
// shown back in every old mask; a real fault that arrives while the program thinks them blocked is
// fatal, as the kernel makes it.
static thread_local sigset_t t_program_blocked;  // only SIGSEGV/SIGBUS bits used
static int MaskVia(int how, const sigset_t* set, sigset_t* old, bool pthread) {
  sigset_t real_set, prev_program = t_program_blocked;
  const sigset_t* pass = set;
  if (set && faults::FaultDispatcher::installed()) {
    real_set = *set;
    for (int sig : {SIGSEGV, SIGBUS}) {
      const bool in = sigismember(set, sig);
      if (how == SIG_BLOCK && in) sigaddset(&t_program_blocked, sig);
      if (how == SIG_UNBLOCK && in) sigdelset(&t_program_blocked, sig);
      if (how == SIG_SETMASK) in ? sigaddset(&t_program_blocked, sig) : sigdelset(&t_program_blocked, sig);
      if (how != SIG_UNBLOCK) sigdelset(&real_set, sig);
    }
    pass = &real_set;
  }
  int r = pthread ? REAL(pthread_sigmask)(how, pass, old) : REAL(sigprocmask)(how, pass, old);
  if (r == 0 && old && faults::FaultDispatcher::installed()) {
    for (int sig : {SIGSEGV, SIGBUS})
      if (sigismember(&prev_program, sig)) sigaddset(old, sig);
  } else if (r != 0) {
    t_program_blocked = prev_program;
  }
  return r;
}
INTERPOSE(int, sigprocmask, (int how, const sigset_t* set, sigset_t* old)) { return MaskVia(how, set, old, false); }
INTERPOSE(int, pthread_sigmask, (int how, const sigset_t* set, sigset_t* old)) {
  return MaskVia(how, set, old, true);
}

// syscall(): the raw routes to what the wrappers above watch — rt_sigaction for SIGSEGV/SIGBUS and
// capset (type1's limit cache, design 0007). Everything else is passed through as it came.
struct KernelSigaction {  // the x86-64 kernel's struct for rt_sigaction
  void* handler;
  unsigned long flags;
  void* restorer;
  uint64_t mask;
};
static long RtSigaction(long sig, const KernelSigaction* act, KernelSigaction* old, long setsize) {
  if (setsize != sizeof(uint64_t)) return -EINVAL;
  struct sigaction in {}, out {};
  if (act) {
    KernelSigaction k;
    if (!faults::RecoverableCopy(&k, act, sizeof k)) return -EFAULT;
    in.sa_handler = reinterpret_cast<sighandler_t>(k.handler);
    in.sa_flags = static_cast<int>(k.flags);
    std::memcpy(&in.sa_mask, &k.mask, sizeof k.mask);
  }
  int r = faults::FaultDispatcher::ProgramSigaction(static_cast<int>(sig), act ? &in : nullptr, old ? &out : nullptr);
  if (r != 0 || !old) return r;
  KernelSigaction k{reinterpret_cast<void*>(out.sa_handler), static_cast<unsigned long>(out.sa_flags), nullptr, 0};
  std::memcpy(&k.mask, &out.sa_mask, sizeof k.mask);
  return faults::RecoverableCopy(old, &k, sizeof k) ? 0 : -EFAULT;
}
INTERPOSE(long, syscall, (long nr, ...)) {
  va_list ap;
  va_start(ap, nr);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  if (nr == SYS_rt_sigaction && DispatcherOwns(static_cast<int>(a[0]))) {
    long r = RtSigaction(a[0], reinterpret_cast<const KernelSigaction*>(a[1]),
                         reinterpret_cast<KernelSigaction*>(a[2]), a[3]);
    return Ret(r);
  }
  static std::atomic<void*> slot{nullptr};
  auto real = Resolve<long (*)(long, ...)>(slot, "syscall");
  long r = real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (nr == SYS_capset && r == 0) vfio::type1::LockedMemory::RefreshLimit();
  return r;
}

// ================================================================================================
// Issue 14 (kernel fidelity): files whose text follows the machine, and the locked-memory
// interposers. Kept together at the end of the file.
// ================================================================================================

namespace {

// A generated file whose text the backend renders from the machine's current state (intel-iommu's
// debugfs domain_translation_struct changes with every MAP/UNMAP) is rewritten just before it is
// opened, like a device's `config`. An fd opened earlier keeps reading the bytes of its open.
void RefreshTextFile(const Rewritten& rw) {
  if (!rw.r.ours || !rw.r.logical || g_forked_child.load()) return;
  if (strcmp(rw.r.logical, preload::kDmarDomainTranslationStruct) != 0 &&
      preload::DmarDebugfsDeviceOf(rw.r.logical).empty())
    return;
  ErrnoSaver keep;
  std::string text;
  {
    BusyScope busy;
    if (!g_backend || !g_backend->CurrentText(rw.r.logical, &text)) return;
  }
  int wfd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, rw.r.path, O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (wfd < 0) return;
  for (size_t done = 0; done < text.size();) {
    const long n = syscall(SYS_pwrite64, wfd, text.data() + done, text.size() - done, done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  (void)syscall(SYS_close, wfd);
}

}  // namespace

// ---- the mlock family: one counter with type1's pins (Linux 6.1: mm->locked_vm) -----------------
// mlock/mlock2 run with the limit lowered by what type1 has pinned (LockedMemory::MlockWithPins),
// so the kernel's own mlock check counts the pins; every call re-reads the process's mlocked
// pages for the charges that follow; mlockall records MCL_FUTURE (each new mapping is then locked
// behind the cache). mlockall's own check on Linux compares the whole address space with the
// limit, pins or not: it runs as is. (docs/design/0011-locked-memory-accounting.md)

namespace {

struct MlockCall {
  long nr;
  uintptr_t addr;
  size_t len;
  unsigned flags;
};

long RawMlock(void* ctx) {
  const auto* c = static_cast<const MlockCall*>(ctx);
  return c->nr == SYS_mlock2 ? syscall(SYS_mlock2, c->addr, c->len, c->flags) : syscall(SYS_mlock, c->addr, c->len);
}

int AfterMlockChange(long r) {
  ErrnoSaver keep;
  vfio::type1::LockedMemory::RefreshMlocked();
  return static_cast<int>(r);
}

}  // namespace

INTERPOSE(int, mlock, (const void* addr, size_t len)) {
  MlockCall c{SYS_mlock, reinterpret_cast<uintptr_t>(addr), len, 0};
  return static_cast<int>(vfio::type1::LockedMemory::MlockWithPins(RawMlock, &c));
}
INTERPOSE(int, mlock2, (const void* addr, size_t len, unsigned int flags)) {
  MlockCall c{SYS_mlock2, reinterpret_cast<uintptr_t>(addr), len, flags};
  return static_cast<int>(vfio::type1::LockedMemory::MlockWithPins(RawMlock, &c));
}
INTERPOSE(int, munlock, (const void* addr, size_t len)) {
  return AfterMlockChange(syscall(SYS_munlock, addr, len));
}
INTERPOSE(int, mlockall, (int flags)) {
  const long r = syscall(SYS_mlockall, flags);
  if (r == 0) vfio::type1::LockedMemory::SetMlockFuture(flags & MCL_FUTURE);
  return AfterMlockChange(r);
}
INTERPOSE(int, munlockall, (void)) {
  const long r = syscall(SYS_munlockall);
  if (r == 0) vfio::type1::LockedMemory::SetMlockFuture(false);
  return AfterMlockChange(r);
}
