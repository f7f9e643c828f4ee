// vfio::pci::DevSet: the vfio-pci devices that share one reset scope (Linux: struct
// vfio_device_set, keyed by the device's slot or bus): a device on a root bus is alone in its
// set; every other device shares a set with the functions on the same bus, since a secondary bus
// reset hits them all. Its lock is the one lock of every member's mutable state: open/closed,
// virtual config space, interrupt configuration (Linux splits this into dev_set->lock, igate and
// memory_lock; one lock is enough at this scale and makes hot reset trivially atomic).
//
// Refcounted: the driver's set table and every member hold a reference.
#pragma once

#include <vector>

#include "base/mutex.h"
#include "base/ref_counted.h"

namespace vfio::pci {

class VfioPciDevice;

struct DevSet : public vb::RefCounted<DevSet> {
  const void* key = nullptr;
  vb::Mutex mu{vb::LockRank::kVfioPciDevSet};  // guards members and every member's state
  std::vector<VfioPciDevice*> members GUARDED_BY(mu);
};

}  // namespace vfio::pci
