#include "uapi/fd_table.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "base/fail_point.h"

namespace uapi {
namespace {

// Raw syscalls returning -errno, never through libc symbols the preload library interposes.
long Sys(long r) { return r < 0 ? -errno : r; }
int SysClose(int fd) { return static_cast<int>(Sys(syscall(SYS_close, fd))); }

// Objects of inherited entries in a fork child: kept alive and untouched for the rest of the
// process, since running their releases would act on copied, possibly torn, parent state.
std::vector<std::shared_ptr<FileObject>>* g_parked = nullptr;

}  // namespace

FdTable& FdTable::Global() {
  static FdTable* const table = [] {
    auto* t = new FdTable();
    pthread_atfork(&FdTable::AtForkPrepare, &FdTable::AtForkParent, &FdTable::AtForkChild);
    return t;
  }();
  return *table;
}

FdTable::FdTable() = default;

void FdTable::SetLocked(int fd, Entry entry, std::vector<std::shared_ptr<FileObject>>* released) {
  auto it = entries_.find(fd);
  if (it != entries_.end()) {
    if (it->second.object) released->push_back(std::move(it->second.object));
    it->second = std::move(entry);
    return;
  }
  entries_.emplace(fd, std::move(entry));
  if (static_cast<unsigned>(fd) < kBitmapFds)
    maybe_[fd / 64].fetch_or(uint64_t{1} << (fd % 64), std::memory_order_relaxed);
  else
    high_count_.fetch_add(1, std::memory_order_relaxed);
}

void FdTable::EraseLocked(int fd, std::vector<std::shared_ptr<FileObject>>* released) {
  auto it = entries_.find(fd);
  if (it == entries_.end()) return;
  if (it->second.object) released->push_back(std::move(it->second.object));
  entries_.erase(it);
  if (static_cast<unsigned>(fd) < kBitmapFds)
    maybe_[fd / 64].fetch_and(~(uint64_t{1} << (fd % 64)), std::memory_order_relaxed);
  else
    high_count_.fetch_sub(1, std::memory_order_relaxed);
}

int FdTable::Install(std::shared_ptr<FileObject> object, int flags, dev_t rdev) {
  if (!object || (flags & ~O_CLOEXEC) != 0) return -EINVAL;
  if (VB_FAIL_POINT("fd_table.install")) return -EMFILE;
  std::string name = std::string("vfiobox-") + object->kind();
  std::vector<std::shared_ptr<FileObject>> released;  // destroyed after the lock is dropped
  int fd;
  {
    vb::MutexLock lock(mu_);
    fd = static_cast<int>(
        Sys(syscall(SYS_memfd_create, name.c_str(), (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0u)));
    if (fd < 0) return fd;
    SetLocked(fd, Entry{State::kOurs, std::move(object), rdev}, &released);
  }
  return fd;
}

FdTable::Entry FdTable::Lookup(int fd) const {
  if (!MaybeOurs(fd)) return {};
  vb::MutexLock lock(mu_);
  auto it = entries_.find(fd);
  if (it == entries_.end()) return {};
  return it->second;
}

int FdTable::Close(int fd) {
  if (!MaybeOurs(fd)) return SysClose(fd);
  std::vector<std::shared_ptr<FileObject>> released;
  int r;
  {
    vb::MutexLock lock(mu_);
    r = SysClose(fd);
    // Linux frees the descriptor even when close reports an error (EINTR/EIO), so the entry goes
    // unless the fd was not open at all.
    if (r != -EBADF) EraseLocked(fd, &released);
  }
  return r;
}

int FdTable::CloseRange(unsigned first, unsigned last, int flags) {
  if (flags & CLOSE_RANGE_CLOEXEC)
    return static_cast<int>(Sys(syscall(SYS_close_range, first, last, flags)));
  std::vector<std::shared_ptr<FileObject>> released;
  {
    vb::MutexLock lock(mu_);
    int r = static_cast<int>(Sys(syscall(SYS_close_range, first, last, flags)));
    if (r < 0) return r;
    std::vector<int> gone;
    for (const auto& [fd, e] : entries_)
      if (static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last) gone.push_back(fd);
    for (int fd : gone) EraseLocked(fd, &released);
  }
  return 0;
}

int FdTable::DupFd(int oldfd, int minfd, int flags) {
  if ((flags & ~O_CLOEXEC) != 0) return -EINVAL;
  int cmd = (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD;
  std::vector<std::shared_ptr<FileObject>> released;
  {
    vb::MutexLock lock(mu_);
    int newfd = static_cast<int>(Sys(syscall(SYS_fcntl, oldfd, cmd, minfd)));
    if (newfd < 0) return newfd;
    auto it = entries_.find(oldfd);
    if (it != entries_.end())
      SetLocked(newfd, it->second, &released);
    else
      EraseLocked(newfd, &released);  // a stale entry at a number the kernel just handed out
    return newfd;
  }
}

int FdTable::Dup3(int oldfd, int newfd, int flags) {
  std::vector<std::shared_ptr<FileObject>> released;
  {
    vb::MutexLock lock(mu_);
    int r = static_cast<int>(Sys(syscall(SYS_dup3, oldfd, newfd, flags)));
    if (r < 0) return r;
    auto it = entries_.find(oldfd);
    if (it != entries_.end())
      SetLocked(newfd, it->second, &released);
    else
      EraseLocked(newfd, &released);
    return newfd;
  }
}

int FdTable::CountFdsOf(const FileObject* object) const {
  vb::MutexLock lock(mu_);
  int n = 0;
  for (const auto& [fd, e] : entries_) n += e.object.get() == object;
  return n;
}

size_t FdTable::size() const {
  vb::MutexLock lock(mu_);
  return entries_.size();
}

void FdTable::BecomeForkChild() {
  vb::MutexLock lock(mu_);
  if (!g_parked) g_parked = new std::vector<std::shared_ptr<FileObject>>();
  for (auto& [fd, e] : entries_) {
    if (e.object) g_parked->push_back(std::move(e.object));
    e.object = nullptr;
    e.state = State::kInherited;
  }
}

// The table lock is held across fork so that the child's copy is never caught mid-update.
void FdTable::AtForkPrepare() { Global().mu_.Lock(); }
void FdTable::AtForkParent() { Global().mu_.Unlock(); }
void FdTable::AtForkChild() {
  FdTable& t = Global();
  t.mu_.Unlock();
  t.BecomeForkChild();
}

}  // namespace uapi
