#include "vfio/pci/eventfd.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "base/fail_point.h"

namespace vfio::pci {

vb::Result<EventFd> EventFd::FromUserFd(int fd) {
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) return vb::Err(EBADF, "eventfd: not an open fd");
  // An eventfd is an anonymous inode named "[eventfd]"; that is how the kernel's own fdinfo tells.
  char path[64];
  char target[64] = {};
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(path, target, sizeof target - 1);
  if (n <= 0 || std::strcmp(target, "anon_inode:[eventfd]") != 0) return vb::Err(EINVAL, "eventfd: not an eventfd");
  if (VB_FAIL_POINT("vfio_pci.eventfd_dup")) return vb::Err(ENOMEM, "eventfd: dup failed");
  EventFd e;
  e.fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (e.fd_ < 0) return vb::Err(errno == EMFILE ? EMFILE : ENOMEM, "eventfd: dup failed");
  return e;
}

namespace {
// The "eventfd-id:" line of /proc/self/fdinfo/<fd>, or -1.
long long EventfdId(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("eventfd-id:", 0) == 0) return std::stoll(line.substr(11));
  return -1;
}
}  // namespace

bool EventFd::SameFile(const EventFd& other) const {
  if (fd_ < 0 || other.fd_ < 0) return false;
  if (fd_ == other.fd_) return true;
  const pid_t self = getpid();
  const long r = syscall(SYS_kcmp, self, self, KCMP_FILE, fd_, other.fd_);
  if (r >= 0) return r == 0;
  const long long a = EventfdId(fd_);
  return a >= 0 && a == EventfdId(other.fd_);
}

void EventFd::Signal() const {
  if (fd_ < 0) return;
  const uint64_t one = 1;
  // An eventfd write only fails when the counter would overflow; the kernel's eventfd_signal
  // saturates in that case, and so do we (the reader sees a pending count either way).
  ssize_t r = write(fd_, &one, sizeof one);
  (void)r;
}

void EventFd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace vfio::pci
