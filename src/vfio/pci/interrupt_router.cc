#include "vfio/pci/interrupt_router.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace vfio::pci {

// Waits on the user's unmask eventfd and unmasks INTx each time it is signalled.
class InterruptRouter::Watcher {
 public:
  Watcher(InterruptRouter& router, EventFd fd) : router_(router), fd_(std::move(fd)) {
    stop_ = eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { Run(); });
  }
  ~Watcher() {
    const uint64_t one = 1;
    ssize_t r = write(stop_, &one, sizeof one);
    (void)r;
    thread_.join();
    close(stop_);
  }

 private:
  void Run() {
    for (;;) {
      pollfd p[2] = {{fd_.fd(), POLLIN, 0}, {stop_, POLLIN, 0}};
      if (poll(p, 2, -1) < 0) continue;
      if (p[1].revents) return;
      if (p[0].revents & POLLIN) {
        uint64_t v;
        // Consume the count: one unmask per wake-up however many signals piled up (virqfd does
        // the same: it clears the counter and runs its handler once).
        if (read(fd_.fd(), &v, sizeof v) == sizeof v) router_.UnmaskIntx();
      } else if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        return;
      }
    }
  }

  InterruptRouter& router_;
  EventFd fd_;
  int stop_ = -1;
  std::thread thread_;
};

InterruptRouter::InterruptRouter(hw::PciDevice& dev) : dev_(dev) {}
InterruptRouter::~InterruptRouter() { Clear(); }

void InterruptRouter::Intx(bool level) {
  vb::MutexLock l(mu_);
  if (!level || !intx_enabled_ || intx_masked_) return;
  // Auto-mask: the line stays masked until the user unmasks it.
  intx_masked_ = true;
  intx_trigger_.Signal();
}

void InterruptRouter::Msi(uint32_t vector) {
  vb::MutexLock l(mu_);
  if (vector < msi_.size()) msi_[vector].Signal();
}

void InterruptRouter::MsiX(uint32_t vector) {
  vb::MutexLock l(mu_);
  if (vector < msix_.size()) msix_[vector].Signal();
}

void InterruptRouter::EnableIntx() {
  const bool level = HardwareLevel();
  vb::MutexLock l(mu_);
  intx_enabled_ = true;
  intx_masked_ = virq_disabled_;
  if (level && !intx_masked_) {
    intx_masked_ = true;
    intx_trigger_.Signal();
  }
}

void InterruptRouter::DisableIntx() {
  SetIntxUnmaskFd(EventFd());
  vb::MutexLock l(mu_);
  intx_enabled_ = false;
  intx_masked_ = false;
  intx_trigger_.Reset();
}

bool InterruptRouter::intx_enabled() const {
  vb::MutexLock l(mu_);
  return intx_enabled_;
}

void InterruptRouter::SetIntxTrigger(EventFd fd) {
  vb::MutexLock l(mu_);
  intx_trigger_ = std::move(fd);
}

void InterruptRouter::MaskIntx() {
  vb::MutexLock l(mu_);
  if (intx_enabled_) intx_masked_ = true;
}

void InterruptRouter::UnmaskIntxLocked(bool level) {
  if (!intx_enabled_ || !intx_masked_ || virq_disabled_) return;
  if (level) {
    // Still pending: deliver it again; the line stays masked until the next unmask.
    intx_trigger_.Signal();
    return;
  }
  intx_masked_ = false;
}

void InterruptRouter::UnmaskIntx() {
  const bool level = HardwareLevel();
  vb::MutexLock l(mu_);
  UnmaskIntxLocked(level);
}

void InterruptRouter::LoopbackIntx() {
  vb::MutexLock l(mu_);
  if (intx_enabled_ && !virq_disabled_) intx_trigger_.Signal();
}

bool InterruptRouter::intx_masked() const {
  vb::MutexLock l(mu_);
  return intx_masked_;
}

void InterruptRouter::SetVirqDisabled(bool disabled) {
  const bool level = HardwareLevel();
  vb::MutexLock l(mu_);
  if (disabled == virq_disabled_) return;
  if (disabled) {
    virq_disabled_ = true;
    if (intx_enabled_) intx_masked_ = true;
  } else {
    virq_disabled_ = false;
    UnmaskIntxLocked(level);
  }
}

void InterruptRouter::SetIntxUnmaskFd(EventFd fd) {
  std::unique_ptr<Watcher> next = fd.valid() ? std::make_unique<Watcher>(*this, std::move(fd)) : nullptr;
  std::unique_ptr<Watcher> old;
  {
    vb::MutexLock l(watcher_mu_);
    old = std::exchange(watcher_, std::move(next));
  }
  // `old` joins its thread here, with no lock held (the thread may be inside UnmaskIntx).
}

void InterruptRouter::SetVectorCount(MsiKind kind, uint32_t n) {
  vb::MutexLock l(mu_);
  auto& v = VectorsLocked(kind);
  v.clear();
  v.resize(n);
}

void InterruptRouter::SetVectorTrigger(MsiKind kind, uint32_t vector, EventFd fd) {
  vb::MutexLock l(mu_);
  auto& v = VectorsLocked(kind);
  if (vector < v.size()) v[vector] = std::move(fd);
}

bool InterruptRouter::HasVectorTrigger(MsiKind kind, uint32_t vector) const {
  vb::MutexLock l(mu_);
  const auto& v = kind == MsiKind::kMsi ? msi_ : msix_;
  return vector < v.size() && v[vector].valid();
}

void InterruptRouter::LoopbackVector(MsiKind kind, uint32_t vector) {
  vb::MutexLock l(mu_);
  auto& v = VectorsLocked(kind);
  if (vector < v.size()) v[vector].Signal();
}

void InterruptRouter::SetErr(EventFd fd) {
  vb::MutexLock l(mu_);
  err_ = std::move(fd);
}

void InterruptRouter::SetReq(EventFd fd) {
  vb::MutexLock l(mu_);
  req_ = std::move(fd);
}

bool InterruptRouter::has_err() const {
  vb::MutexLock l(mu_);
  return err_.valid();
}

bool InterruptRouter::has_req() const {
  vb::MutexLock l(mu_);
  return req_.valid();
}

void InterruptRouter::SignalErr() {
  vb::MutexLock l(mu_);
  err_.Signal();
}

void InterruptRouter::SignalReq() {
  vb::MutexLock l(mu_);
  req_.Signal();
}

void InterruptRouter::Clear() {
  SetIntxUnmaskFd(EventFd());
  vb::MutexLock l(mu_);
  intx_enabled_ = false;
  intx_masked_ = false;
  virq_disabled_ = false;
  intx_trigger_.Reset();
  msi_.clear();
  msix_.clear();
  err_.Reset();
  req_.Reset();
}

}  // namespace vfio::pci
