// uapi::FileObject: what a vfiobox file descriptor refers to (Linux: the file_operations behind an
// fd of /dev/vfio/vfio, /dev/vfio/<N>, or a device fd). The preload library keeps a table from
// real kernel fds (so close, dup, poll, fork and exec behave) to shared FileObjects; dup'ed fds
// share one object (one open file description), and the object's destructor is the file's
// release, run when the last fd referring to it is closed.
//
// Every call returns the kernel's answer: a non-negative result, or -errno.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace uapi {

class FileObject {
 public:
  virtual ~FileObject() = default;
  // "container", "group", "device": for --trace and error messages.
  virtual const char* kind() const = 0;
  virtual long Ioctl(unsigned long request, unsigned long arg) = 0;
  virtual ssize_t Pread(void* buf, size_t count, off_t offset) { return -EINVAL; }
  virtual ssize_t Pwrite(const void* buf, size_t count, off_t offset) { return -EINVAL; }
  // mmap of a region. Returns the mapped address, or MAP_FAILED-style -errno cast in `*err`.
  virtual void* Mmap(void* addr, size_t length, int prot, int flags, off_t offset, int* err) {
    *err = ENODEV;
    return nullptr;
  }
};

// The character devices a process can open (/dev/vfio/vfio, /dev/vfio/<N>). The preload library
// asks it on open() of a path under /dev/vfio.
class NodeTable {
 public:
  virtual ~NodeTable() = default;
  // ENOENT: no such node; otherwise the node's open errors (EBUSY for a group already open, ...).
  virtual std::shared_ptr<FileObject> Open(const std::string& path, int flags, int* err) = 0;
};

}  // namespace uapi
