// vfio::pci::IoeventfdSet: one device's VFIO_DEVICE_IOEVENTFD registrations (Linux: the
// ioeventfds_list of a vfio_pci_core_device, each entry a virqfd). An entry is identified by
// (BAR, offset, width, data): registering that key again answers EEXIST whatever eventfd comes
// with it, fd -1 deletes it, at most kMax per device. When an entry's eventfd is signalled, a
// watcher thread consumes the count and asks the owner (FireFn) to write `data` to the BAR; a
// signal pending at registration fires at once, as virqfd does.
//
// The set knows nothing of BARs or of its owner's lock: the owner checks the request against the
// device before Assign, and on a fire takes its own lock and calls Registered(id) to learn whether
// the entry still exists (a delete that returned before the owner got its lock wins; nothing is
// written for an entry once it is gone).
//
// Locks: mu_ (kLeaf) guards the table; the owner may call Assign/Registered/Clear under its own
// lock. The watcher thread holds mu_ only to copy the table, never while calling FireFn, and
// FireFn is called with no lock of the set held. The destructor joins the thread, so it must not
// run under a lock FireFn takes (vfio-pci destroys its set after dropping the device set's lock).
// Entries on one eventfd share one Source (a dup of the user's fd, EventFd): a signal is read once
// and fires every entry on it, as each virqfd on the eventfd's wait queue runs in the kernel. A
// Source is closed once no entry and no watcher copy holds it, so a polled fd number is never
// reused under the watcher.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "vfio/pci/eventfd.h"

namespace vfio::pci {

struct IoeventfdKey {
  int bar = 0;
  uint64_t pos = 0;    // offset within the BAR
  uint32_t width = 0;  // 1, 2, 4 or 8 bytes
  uint64_t data = 0;
  bool operator==(const IoeventfdKey&) const = default;
};

class IoeventfdSet {
 public:
  static constexpr size_t kMax = 1000;  // VFIO_PCI_IOEVENTFD_MAX
  // Called on the watcher thread for a signalled entry: its id (unique in the process, for
  // Registered) and key.
  using FireFn = std::function<void(uint64_t id, const IoeventfdKey& key)>;

  explicit IoeventfdSet(FireFn fire);
  ~IoeventfdSet();
  IoeventfdSet(const IoeventfdSet&) = delete;
  IoeventfdSet& operator=(const IoeventfdSet&) = delete;

  // fd >= 0 registers: EEXIST (key registered), ENOSPC (kMax entries), EBADF / EINVAL (not an
  // open fd / not an eventfd), ENOMEM (allocation). fd == -1 deletes: ENODEV if no entry matches.
  vb::Result<void> Assign(const IoeventfdKey& key, int32_t fd) EXCLUDES(mu_);
  // Whether the entry `id` is still registered.
  bool Registered(uint64_t id) const EXCLUDES(mu_);
  size_t size() const EXCLUDES(mu_);

 private:
  struct Source {
    EventFd fd;
  };
  struct Entry {
    uint64_t id;
    IoeventfdKey key;
    std::shared_ptr<const Source> source;
  };
  void Run();
  void Wake() const;

  const FireFn fire_;
  mutable vb::Mutex mu_{vb::LockRank::kLeaf};
  std::vector<Entry> entries_ GUARDED_BY(mu_);
  int wake_fd_ = -1;  // eventfd: the table changed, or stop
  std::atomic<bool> stop_{false};
  std::thread thread_;  // the watcher, from construction (vfio-pci makes the set at its first
                        // registration) to destruction
};

}  // namespace vfio::pci
