// preload::Backend: the seam between libvfiobox-preload.so and the machine it serves. The preload
// library (interposed libc) knows files, paths and fds; the backend knows the devices. It gives
// the character devices (uapi::NodeTable), the sysfs description, the writes to sysfs control
// files (SysfsControl), and the memory calls that may touch DMA-mapped pages (ARCHITECTURE
// "Pinning").
//
// How the real system plugs in: preload::CreateBackend() (src/preload/create_backend.cc) is called
// once, lazily, the first time the program touches /sys or /dev/vfio (or at the first munmap
// after that). Today it returns the test fake under VFIOBOX_TEST_FAKE=1 and nullptr otherwise
// (then the library passes everything through). The system layer replaces its body with the real
// machine (topology from $VFIOBOX_TOPOLOGY or the built-in default). It runs with no preload lock
// held; the paths it touches itself are served by the real libc (re-entry is detected).
//
// Threads: every method may be called from any thread, concurrently; the backend locks itself.
// Describe() and OnWrite() are never called with a preload lock held.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "preload/sysfs_tree.h"
#include "uapi/file_object.h"

namespace preload {

struct SysfsWrite {
  ControlFile file;  // which file: kind, canonical path, bus, device, driver
  std::string data;  // the bytes of one write(2), as the kernel's store() gets them
};

class SysfsControl {
 public:
  virtual ~SysfsControl() = default;
  // Applies one write; returns 0, or the errno the write(2) answers (ENODEV for bind of a device
  // that does not exist, EBUSY, EINVAL...). After a 0 the preload library regenerates the tree
  // from Describe().
  virtual int OnWrite(const SysfsWrite& write) = 0;
};

// The real munmap/mremap/madvise, for backends that move DMA-mapped pages aside first.
struct RealMemoryCalls {
  int (*munmap)(void* addr, size_t length);
  void* (*mremap)(void* old_addr, size_t old_size, size_t new_size, int flags, void* new_addr);
  int (*madvise)(void* addr, size_t length, int advice);
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual uapi::NodeTable& nodes() = 0;
  // The machine as sysfs shows it now.
  virtual SysfsDescription Describe() = 0;
  // Null: control files answer EACCES on write.
  virtual SysfsControl* control() = 0;
  // Memory hooks; the defaults pass through. Return like the libc call (-1 + errno, MAP_FAILED).
  virtual int Munmap(void* addr, size_t length, const RealMemoryCalls& real) {
    return real.munmap(addr, length);
  }
  virtual void* Mremap(void* old_addr, size_t old_size, size_t new_size, int flags, void* new_addr,
                       const RealMemoryCalls& real) {
    return real.mremap(old_addr, old_size, new_size, flags, new_addr);
  }
  virtual int Madvise(void* addr, size_t length, int advice, const RealMemoryCalls& real) {
    return real.madvise(addr, length, advice);
  }
};

// The process's backend factory (see above). nullptr: serve nothing.
std::unique_ptr<Backend> CreateBackend();

}  // namespace preload
