// uapi::trace: the `--trace` decoder — one line per VFIO call, like strace for VFIO:
//
//   vfio: container fd=5 VFIO_IOMMU_MAP_DMA {argsz=32, flags=0x3, vaddr=0x7f.., iova=0x100000, size=0x1000} = 0
//   vfio: group fd=6 VFIO_GROUP_GET_DEVICE_FD "0000:01:00.0" = 7
//   vfio: device fd=7 VFIO_DEVICE_GET_REGION_INFO {argsz=32, ...} = -1 EINVAL (Invalid argument)
//
// The file objects call it after every call (ioctl, pread/pwrite, mmap); the struct fields are
// read back from the caller's memory with safe copies after the call (so output fields show the
// answer, and an unreadable argument prints as its address). Enabled by VFIOBOX_TRACE=1 in the
// environment (read once, writes to stderr) or by Enable(fd). Thread-safe: each line is built in
// a local buffer and written with one write(2) (raw syscall).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace uapi::trace {

// Cheap: one relaxed load.
bool Enabled();
// Write trace lines to `fd` (2: stderr); -1 turns tracing off. Overrides VFIOBOX_TRACE.
void Enable(int fd);
// The fd number the current thread's call came in through (the preload library sets it around a
// call; the lines print "fd=?" without it). Thread-local.
void SetCurrentFd(int fd);

// Called by the file objects; they do nothing unless Enabled().
void Ioctl(const char* kind, unsigned long request, unsigned long arg, long result);
void ReadWrite(const char* kind, bool write, size_t count, off_t offset, long result);
void Mmap(const char* kind, size_t length, int prot, int flags, off_t offset, int err);
// The preload library calls this after open() of a /dev/vfio node (the fd, or -errno).
void Open(const char* path, int fd_or_err);
// A device's completed DMA, as the IOMMU translated it:
//   vfio: dma 0000:01:00.0 read iova=0x29e0000 len=3000 host=0x7f..
// (the preload library installs a hw::DmaObserver that calls this when tracing is on).
void Dma(const char* device, bool write, uint64_t iova, uint64_t length, const void* host);
// One CPU access through a trapped BAR mapping (err: 0, or the errno that made it a SIGBUS):
//   vfio: mmio 0000:01:00.0 write4 BAR0+0x80 = 0x1
void Mmio(const char* device, bool write, uint64_t region_offset, unsigned size, uint64_t value, int err);

// The formatting behind the above (tests; no trailing newline).
std::string RequestName(const char* kind, unsigned long request);
std::string FormatIoctl(const char* kind, unsigned long request, unsigned long arg, long result);

}  // namespace uapi::trace
