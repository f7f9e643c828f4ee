#include "vfio/pci/ioeventfd_set.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "base/fail_point.h"

namespace vfio::pci {
namespace {
// Ids are unique across sets, so an owner that replaced its set never mistakes an old set's entry
// for one of the new set's.
std::atomic<uint64_t> next_id{1};
}  // namespace

IoeventfdSet::IoeventfdSet(FireFn fire) : fire_(std::move(fire)) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { Run(); });
}

IoeventfdSet::~IoeventfdSet() {
  stop_.store(true, std::memory_order_release);
  Wake();
  thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void IoeventfdSet::Wake() const {
  if (wake_fd_ < 0) return;
  const uint64_t one = 1;
  ssize_t r = write(wake_fd_, &one, sizeof one);
  (void)r;
}

vb::Result<void> IoeventfdSet::Assign(const IoeventfdKey& key, int32_t fd) {
  std::shared_ptr<const Source> removed;  // closed after mu_ is dropped (and after the watcher's copy)
  {
    vb::MutexLock l(mu_);
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; });
    if (it != entries_.end()) {
      if (fd != -1) return vb::Err(EEXIST, "ioeventfd: (bar, offset, width, data) already registered");
      removed = std::move(it->source);
      entries_.erase(it);
    } else {
      if (fd < 0) return vb::Err(ENODEV, "ioeventfd: no such registration to delete");
      if (entries_.size() >= kMax) return vb::Err(ENOSPC, "ioeventfd: device has the maximum");
      if (VB_FAIL_POINT("vfio_pci.ioeventfd_alloc")) return vb::Err(ENOMEM, "ioeventfd: allocation");
      EventFd efd = TRY(EventFd::FromUserFd(fd));
      std::shared_ptr<const Source> source;
      for (const Entry& e : entries_) {
        if (e.source->fd.SameFile(efd)) {
          source = e.source;
          break;
        }
      }
      if (!source) source = std::make_shared<const Source>(Source{std::move(efd)});
      entries_.push_back(Entry{next_id.fetch_add(1, std::memory_order_relaxed), key, std::move(source)});
    }
  }
  Wake();  // the watcher polls the new table (and drops its copy of a removed source)
  return vb::Ok();
}

bool IoeventfdSet::Registered(uint64_t id) const {
  vb::MutexLock l(mu_);
  return std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.id == id; });
}

size_t IoeventfdSet::size() const {
  vb::MutexLock l(mu_);
  return entries_.size();
}

void IoeventfdSet::Run() {
  std::vector<Entry> polled;
  std::vector<const Source*> sources;
  std::vector<pollfd> fds;
  for (;;) {
    // Checked before every poll, not only after one: a stop whose wake this thread consumed below
    // (reading wake_fd_ after a wake-up for an entry change) would otherwise leave it in poll(-1)
    // for good, and the destructor's join with it (a hang seen about once in 40 runs).
    if (stop_.load(std::memory_order_acquire)) return;
    {
      vb::MutexLock l(mu_);
      polled = entries_;
    }
    sources.clear();
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    for (const Entry& e : polled) {
      if (std::find(sources.begin(), sources.end(), e.source.get()) != sources.end()) continue;
      sources.push_back(e.source.get());
      fds.push_back(pollfd{e.source->fd.fd(), POLLIN, 0});
    }
    // Without a wake eventfd (eventfd() failed: out of fds) changes and stop are seen by polling.
    if (poll(fds.data(), fds.size(), wake_fd_ >= 0 ? -1 : 20) < 0) continue;  // EINTR
    if (stop_.load(std::memory_order_acquire)) return;
    uint64_t count;
    if (fds[0].revents & POLLIN) {
      ssize_t r = read(wake_fd_, &count, sizeof count);
      (void)r;
    }
    for (size_t i = 0; i < sources.size(); ++i) {
      if (!(fds[i + 1].revents & POLLIN)) continue;
      // One read per wake-up however many signals piled up (virqfd clears the counter and runs
      // its handlers once); the user's eventfd may be blocking, so it is read only after poll said
      // so, and like the kernel we assume nobody else reads an ioeventfd.
      if (read(sources[i]->fd.fd(), &count, sizeof count) != sizeof count) continue;
      for (const Entry& e : polled)
        if (e.source.get() == sources[i]) fire_(e.id, e.key);
    }
  }
}

}  // namespace vfio::pci
