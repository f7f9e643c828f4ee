// vfio::pci::EventFd: the driver's own reference to an eventfd the user handed to SET_IRQS (Linux:
// an eventfd_ctx taken with eventfd_ctx_fdget). It holds a dup of the user's fd, so the user may
// close theirs and the eventfd stays signalable; Signal() adds 1 to its counter (eventfd_signal).
// Move-only; not thread-safe by itself (owners guard it with their own lock).
#pragma once

#include <utility>

#include "base/result.h"

namespace vfio::pci {

class EventFd {
 public:
  EventFd() = default;
  ~EventFd() { Reset(); }
  EventFd(EventFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  EventFd& operator=(EventFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  // EBADF: `fd` is not an open file; EINVAL: it is not an eventfd (eventfd_ctx_fdget's answers).
  static vb::Result<EventFd> FromUserFd(int fd);

  bool valid() const { return fd_ >= 0; }
  // Whether both refer to the same eventfd (one open file: the user passed it twice, or dups of
  // it). kcmp(KCMP_FILE), or where that is refused the eventfd-id fdinfo shows; false if neither.
  bool SameFile(const EventFd& other) const;
  int fd() const { return fd_; }
  void Signal() const;
  void Reset();

 private:
  int fd_ = -1;
};

}  // namespace vfio::pci
