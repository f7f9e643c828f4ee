// uapi::FdTable: the process-wide table from real kernel fds to the FileObjects they name. Each
// vfiobox file is backed by a real memfd (so close, dup, poll, fcntl, /proc/self/fd, exec and fork
// are the kernel's own); the table says which FileObject an fd number refers to. Dup'ed fds share
// one object (one open file description); the object is released (its destructor runs) when the
// last fd naming it goes, always outside the table lock, because releases take VFIO locks.
//
// Owner: a leaked process singleton (Global()), never destroyed: at exit the objects stay alive,
// as the kernel keeps files of an exiting process until the very end (QEMU exits with live fds).
// Lock: mu_ (kFdTable, inside every VFIO rank, since Install runs inside GET_DEVICE_FD) guards
// entries_; the bitmap `maybe_` is a lock-free filter so that calls on other fds (every read,
// write, close of the process) cost one relaxed load.
//
// Why memfd (not eventfd): poll on a memfd is always ready, which is what the kernel's VFIO files
// (no poll op) answer; read/write on an eventfd has counter semantics we would have to undo; a
// memfd keeps a seekable file position (the device fd's read()/write() use it, as the kernel's
// vfio_device_fops do); and /proc/self/fd shows "memfd:vfiobox-container (deleted)".
//
// The table makes every fd-number change itself, with raw syscalls under mu_ (never through the
// interposed libc symbols, which would recurse), so fd numbers and entries change atomically with
// respect to each other.
//
// fork: a child gets copies of the fds and of this table. In the child (pthread_atfork), every
// entry becomes *inherited*: its object is parked forever (never called, never released, since
// the copied state may be mid-update by a parent thread that does not exist in the child) and
// Lookup answers kInherited, on which the preload library answers EBADF: as far as VFIO is
// concerned the fd is not open in this process. close/dup/fcntl on it still work (it is a real
// fd). exec: O_CLOEXEC fds vanish with the kernel; others survive as plain memfds that the new
// image does not know (ioctl on them answers the memfd's ENOTTY).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/mutex.h"
#include "uapi/file_object.h"

namespace uapi {

class FdTable {
 public:
  enum class State { kNotOurs, kOurs, kInherited };
  struct Entry {
    State state = State::kNotOurs;
    std::shared_ptr<FileObject> object;  // set only for kOurs
    dev_t rdev = 0;                      // the node's device number (0: an anonymous-inode file)
  };

  // The process's table (created on first use, never destroyed).
  static FdTable& Global();

  FdTable();
  FdTable(const FdTable&) = delete;
  FdTable& operator=(const FdTable&) = delete;

  // Creates a real fd for `object` (flags: O_CLOEXEC or 0; anything else EINVAL) and records it.
  // `rdev` is what fstat reports for the fd (makedev(10, 196) for /dev/vfio/vfio). Returns the fd
  // or -errno (EMFILE/ENFILE from the kernel). A stale entry at the new number (an fd closed
  // behind the table's back by a raw syscall) is replaced and its object released.
  int Install(std::shared_ptr<FileObject> object, int flags, dev_t rdev = 0) EXCLUDES(mu_);

  // Cheap, lock-free: false means fd is certainly not in the table.
  bool MaybeOurs(int fd) const {
    if (fd < 0) return false;
    if (static_cast<unsigned>(fd) >= kBitmapFds) return high_count_.load(std::memory_order_relaxed) != 0;
    return (maybe_[fd / 64].load(std::memory_order_relaxed) >> (fd % 64)) & 1;
  }
  Entry Lookup(int fd) const EXCLUDES(mu_);

  // close(fd) for any fd: drops the entry (if any), closes the real fd, then releases the object
  // if that was its last fd. Returns 0 or -errno (EBADF for an fd that is not open).
  int Close(int fd) EXCLUDES(mu_);
  // close_range(first, last, flags): CLOSE_RANGE_CLOEXEC only marks (entries stay);
  // CLOSE_RANGE_UNSHARE is passed to the kernel. Returns 0 or -errno.
  int CloseRange(unsigned first, unsigned last, int flags) EXCLUDES(mu_);
  // fcntl(oldfd, F_DUPFD / F_DUPFD_CLOEXEC, minfd) and dup(oldfd) (minfd 0, flags 0). flags:
  // O_CLOEXEC or 0. Returns the new fd or -errno.
  int DupFd(int oldfd, int minfd, int flags) EXCLUDES(mu_);
  // dup3(oldfd, newfd, flags) (flags O_CLOEXEC or 0; oldfd == newfd answers EINVAL as dup3 does;
  // dup2's oldfd == newfd case is the caller's). The fd that newfd named before is dropped and its
  // object released if that was its last fd. Returns newfd or -errno.
  int Dup3(int oldfd, int newfd, int flags) EXCLUDES(mu_);

  // How many fds name `object` (tests).
  int CountFdsOf(const FileObject* object) const EXCLUDES(mu_);
  // Number of entries (ours + inherited).
  size_t size() const EXCLUDES(mu_);

  // What a fork child does (pthread_atfork child handler of Global(); public for tests that
  // simulate it on a private table without forking).
  void BecomeForkChild() EXCLUDES(mu_);

 private:
  static constexpr unsigned kBitmapFds = 65536;

  void SetLocked(int fd, Entry entry, std::vector<std::shared_ptr<FileObject>>* released)
      REQUIRES(mu_);
  void EraseLocked(int fd, std::vector<std::shared_ptr<FileObject>>* released) REQUIRES(mu_);

  static void AtForkPrepare() NO_THREAD_SAFETY_ANALYSIS;
  static void AtForkParent() NO_THREAD_SAFETY_ANALYSIS;
  static void AtForkChild() NO_THREAD_SAFETY_ANALYSIS;

  // Guards entries_ and the bitmap's writers. Held across the fd syscalls (memfd_create, dup3,
  // close of our own fds), never across a FileObject call or release.
  // A plain mutex, not a SharedMutex: glibc's rwlock cannot be unlocked by the fork child (the
  // writer is recorded by thread id, and the child's thread has another), while a mutex can.
  mutable vb::Mutex mu_{vb::LockRank::kFdTable};
  std::unordered_map<int, Entry> entries_ GUARDED_BY(mu_);
  // Bit fd set while entries_ has fd (fd < kBitmapFds); written under mu_, read lock-free.
  std::atomic<uint64_t> maybe_[kBitmapFds / 64] = {};
  std::atomic<int> high_count_{0};  // entries with fd >= kBitmapFds
};

}  // namespace uapi
