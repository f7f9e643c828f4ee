#include "uapi/trace.h"

#include <linux/vfio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "uapi/user_copy.h"

namespace uapi::trace {
namespace {

// -2: not decided yet (read VFIOBOX_TRACE on first use); -1: off; else the fd written to.
std::atomic<int> g_fd{-2};
thread_local int t_current_fd = -1;

int TraceFd() {
  int fd = g_fd.load(std::memory_order_relaxed);
  if (fd != -2) return fd;
  const char* env = std::getenv("VFIOBOX_TRACE");
  int want = (env && env[0] && std::strcmp(env, "0") != 0) ? 2 : -1;
  g_fd.compare_exchange_strong(fd, want, std::memory_order_relaxed);
  return g_fd.load(std::memory_order_relaxed);
}

// A small append-only line buffer (no allocation on the traced path's hot side).
struct Line {
  char buf[1024];
  size_t len = 0;
  void Add(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    if (len >= sizeof(buf) - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
    va_end(ap);
    if (n > 0) len = std::min(sizeof(buf) - 1, len + static_cast<size_t>(n));
  }
  std::string str() const { return std::string(buf, len); }
};

void AddResult(Line& l, long result) {
  if (result >= 0) {
    l.Add(" = %ld", result);
  } else {
    int e = static_cast<int>(-result);
    const char* name = strerrorname_np(e);
    l.Add(" = -1 %s (%s)", name ? name : "E?", strerrordesc_np(e) ? strerrordesc_np(e) : "?");
  }
}

void Emit(Line& l) {
  int fd = TraceFd();
  if (fd < 0) return;
  l.Add("\n");
  int saved = errno;
  (void)syscall(SYS_write, static_cast<long>(fd), l.buf, l.len);
  errno = saved;
}

void Prefix(Line& l, const char* kind) {
  if (t_current_fd >= 0)
    l.Add("vfio: %s fd=%d ", kind, t_current_fd);
  else
    l.Add("vfio: %s fd=? ", kind);
}

bool Is(const char* kind, const char* k) { return std::strcmp(kind, k) == 0; }

// Reads `len` bytes of the argument struct; on a fault prints the pointer instead.
template <typename T>
bool Read(Line& l, unsigned long arg, T* out, size_t len = sizeof(T)) {
  std::memset(out, 0, sizeof(T));
  if (CopyFromUser(out, arg, len) != 0) {
    l.Add("%#lx", arg);
    return false;
  }
  return true;
}

void DecodeFields(Line& l, const char* kind, unsigned long req, unsigned long arg) {
  if (Is(kind, "container")) {
    switch (req) {
      case VFIO_GET_API_VERSION:
        return;
      case VFIO_CHECK_EXTENSION:
      case VFIO_SET_IOMMU:
        l.Add("%lu", arg);
        return;
      case VFIO_IOMMU_GET_INFO: {
        vfio_iommu_type1_info s;
        if (Read(l, arg, &s, 16)) {
          l.Add("{argsz=%u, flags=%#x, iova_pgsizes=%#llx", s.argsz, s.flags,
                static_cast<unsigned long long>(s.iova_pgsizes));
          if (s.argsz >= sizeof(s) && Read(l, arg, &s)) l.Add(", cap_offset=%u", s.cap_offset);
          l.Add("}");
        }
        return;
      }
      case VFIO_IOMMU_MAP_DMA: {
        vfio_iommu_type1_dma_map s;
        if (Read(l, arg, &s))
          l.Add("{argsz=%u, flags=%#x, vaddr=%#llx, iova=%#llx, size=%#llx}", s.argsz, s.flags,
                static_cast<unsigned long long>(s.vaddr), static_cast<unsigned long long>(s.iova),
                static_cast<unsigned long long>(s.size));
        return;
      }
      case VFIO_IOMMU_UNMAP_DMA: {
        vfio_iommu_type1_dma_unmap s;
        if (Read(l, arg, &s))
          l.Add("{argsz=%u, flags=%#x, iova=%#llx, size=%#llx}", s.argsz, s.flags,
                static_cast<unsigned long long>(s.iova), static_cast<unsigned long long>(s.size));
        return;
      }
      case VFIO_IOMMU_DIRTY_PAGES: {
        vfio_iommu_type1_dirty_bitmap s;
        if (Read(l, arg, &s)) l.Add("{argsz=%u, flags=%#x}", s.argsz, s.flags);
        return;
      }
      default:
        l.Add("%#lx", arg);
        return;
    }
  }
  if (Is(kind, "group")) {
    switch (req) {
      case VFIO_GROUP_GET_STATUS: {
        vfio_group_status s;
        if (Read(l, arg, &s)) l.Add("{argsz=%u, flags=%#x}", s.argsz, s.flags);
        return;
      }
      case VFIO_GROUP_SET_CONTAINER: {
        int fd;
        if (Read(l, arg, &fd)) l.Add("[%d]", fd);
        return;
      }
      case VFIO_GROUP_UNSET_CONTAINER:
        return;
      case VFIO_GROUP_GET_DEVICE_FD: {
        std::string name;
        if (StrndupUser(arg, 4096, &name) == 0)
          l.Add("\"%.200s\"", name.c_str());
        else
          l.Add("%#lx", arg);
        return;
      }
      default:
        l.Add("%#lx", arg);
        return;
    }
  }
  switch (req) {  // device
    case VFIO_DEVICE_GET_INFO: {
      vfio_device_info s;
      if (Read(l, arg, &s, 16))
        l.Add("{argsz=%u, flags=%#x, num_regions=%u, num_irqs=%u}", s.argsz, s.flags,
              s.num_regions, s.num_irqs);
      return;
    }
    case VFIO_DEVICE_GET_REGION_INFO: {
      vfio_region_info s;
      if (Read(l, arg, &s))
        l.Add("{argsz=%u, flags=%#x, index=%u, cap_offset=%u, size=%#llx, offset=%#llx}", s.argsz,
              s.flags, s.index, s.cap_offset, static_cast<unsigned long long>(s.size),
              static_cast<unsigned long long>(s.offset));
      return;
    }
    case VFIO_DEVICE_GET_IRQ_INFO: {
      vfio_irq_info s;
      if (Read(l, arg, &s))
        l.Add("{argsz=%u, flags=%#x, index=%u, count=%u}", s.argsz, s.flags, s.index, s.count);
      return;
    }
    case VFIO_DEVICE_SET_IRQS: {
      vfio_irq_set s;
      if (Read(l, arg, &s)) {
        l.Add("{argsz=%u, flags=%#x, index=%u, start=%u, count=%u", s.argsz, s.flags, s.index,
              s.start, s.count);
        if ((s.flags & VFIO_IRQ_SET_DATA_EVENTFD) && s.count > 0 && s.count <= 8) {
          int32_t fds[8];
          if (CopyFromUser(fds, arg + sizeof(s), s.count * 4) == 0) {
            l.Add(", fds=[");
            for (uint32_t i = 0; i < s.count; ++i) l.Add(i ? ", %d" : "%d", fds[i]);
            l.Add("]");
          }
        }
        l.Add("}");
      }
      return;
    }
    case VFIO_DEVICE_RESET:
      return;
    case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO:
    case VFIO_DEVICE_PCI_HOT_RESET: {
      vfio_pci_hot_reset_info s;
      if (Read(l, arg, &s)) l.Add("{argsz=%u, flags=%#x, count=%u}", s.argsz, s.flags, s.count);
      return;
    }
    case VFIO_DEVICE_FEATURE: {
      vfio_device_feature s;
      if (Read(l, arg, &s)) l.Add("{argsz=%u, flags=%#x}", s.argsz, s.flags);
      return;
    }
    case VFIO_DEVICE_IOEVENTFD: {
      vfio_device_ioeventfd s;
      if (Read(l, arg, &s))
        l.Add("{argsz=%u, flags=%#x, offset=%#llx, data=%#llx, fd=%d}", s.argsz, s.flags,
              static_cast<unsigned long long>(s.offset), static_cast<unsigned long long>(s.data), s.fd);
      return;
    }
    default:
      l.Add("%#lx", arg);
      return;
  }
}

void BuildIoctl(Line& l, const char* kind, unsigned long request, unsigned long arg, long result) {
  Prefix(l, kind);
  l.Add("%s ", RequestName(kind, request).c_str());
  DecodeFields(l, kind, request, arg);
  AddResult(l, result);
}

}  // namespace

bool Enabled() { return TraceFd() >= 0; }
void Enable(int fd) { g_fd.store(fd < 0 ? -1 : fd, std::memory_order_relaxed); }
void SetCurrentFd(int fd) { t_current_fd = fd; }

std::string RequestName(const char* kind, unsigned long request) {
  // One table per fd kind: the same number means different calls on different kinds.
  if (Is(kind, "container")) {
    switch (request) {
      case VFIO_GET_API_VERSION: return "VFIO_GET_API_VERSION";
      case VFIO_CHECK_EXTENSION: return "VFIO_CHECK_EXTENSION";
      case VFIO_SET_IOMMU: return "VFIO_SET_IOMMU";
      case VFIO_IOMMU_GET_INFO: return "VFIO_IOMMU_GET_INFO";
      case VFIO_IOMMU_MAP_DMA: return "VFIO_IOMMU_MAP_DMA";
      case VFIO_IOMMU_UNMAP_DMA: return "VFIO_IOMMU_UNMAP_DMA";
      case VFIO_IOMMU_DIRTY_PAGES: return "VFIO_IOMMU_DIRTY_PAGES";
    }
  } else if (Is(kind, "group")) {
    switch (request) {
      case VFIO_GROUP_GET_STATUS: return "VFIO_GROUP_GET_STATUS";
      case VFIO_GROUP_SET_CONTAINER: return "VFIO_GROUP_SET_CONTAINER";
      case VFIO_GROUP_UNSET_CONTAINER: return "VFIO_GROUP_UNSET_CONTAINER";
      case VFIO_GROUP_GET_DEVICE_FD: return "VFIO_GROUP_GET_DEVICE_FD";
    }
  } else if (Is(kind, "device")) {
    switch (request) {
      case VFIO_DEVICE_GET_INFO: return "VFIO_DEVICE_GET_INFO";
      case VFIO_DEVICE_GET_REGION_INFO: return "VFIO_DEVICE_GET_REGION_INFO";
      case VFIO_DEVICE_GET_IRQ_INFO: return "VFIO_DEVICE_GET_IRQ_INFO";
      case VFIO_DEVICE_SET_IRQS: return "VFIO_DEVICE_SET_IRQS";
      case VFIO_DEVICE_RESET: return "VFIO_DEVICE_RESET";
      case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: return "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO";
      case VFIO_DEVICE_PCI_HOT_RESET: return "VFIO_DEVICE_PCI_HOT_RESET";
      case VFIO_DEVICE_IOEVENTFD: return "VFIO_DEVICE_IOEVENTFD";
      case VFIO_DEVICE_FEATURE: return "VFIO_DEVICE_FEATURE";
    }
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ioctl(%#lx)", request);
  return buf;
}

std::string FormatIoctl(const char* kind, unsigned long request, unsigned long arg, long result) {
  Line l;
  BuildIoctl(l, kind, request, arg, result);
  return l.str();
}

void Ioctl(const char* kind, unsigned long request, unsigned long arg, long result) {
  if (!Enabled()) return;
  Line l;
  BuildIoctl(l, kind, request, arg, result);
  Emit(l);
}

void ReadWrite(const char* kind, bool write, size_t count, off_t offset, long result) {
  if (!Enabled()) return;
  Line l;
  Prefix(l, kind);
  l.Add("%s count=%zu offset=%#llx", write ? "pwrite" : "pread", count,
        static_cast<unsigned long long>(offset));
  AddResult(l, result);
  Emit(l);
}

void Mmap(const char* kind, size_t length, int prot, int flags, off_t offset, int err) {
  if (!Enabled()) return;
  Line l;
  Prefix(l, kind);
  l.Add("mmap length=%#zx prot=%#x flags=%#x offset=%#llx", length, prot, flags,
        static_cast<unsigned long long>(offset));
  AddResult(l, err ? -err : 0);
  Emit(l);
}

void Open(const char* path, int fd_or_err) {
  if (!Enabled()) return;
  Line l;
  l.Add("vfio: open \"%s\"", path);
  AddResult(l, fd_or_err);
  Emit(l);
}

void Dma(const char* device, bool write, uint64_t iova, uint64_t length, const void* host) {
  if (!Enabled()) return;
  Line l;
  l.Add("vfio: dma %s %s iova=%#llx len=%llu host=%p", device, write ? "write" : "read",
        static_cast<unsigned long long>(iova), static_cast<unsigned long long>(length), host);
  Emit(l);
}

void Mmio(const char* device, bool write, uint64_t region_offset, unsigned size, uint64_t value, int err) {
  if (!Enabled()) return;
  Line l;
  l.Add("vfio: mmio %s %s%u BAR%llu+%#llx", device, write ? "write" : "read", size,
        static_cast<unsigned long long>(region_offset >> 40),
        static_cast<unsigned long long>(region_offset & ((uint64_t{1} << 40) - 1)));
  if (err) l.Add(" -> SIGBUS (%s)", strerrorname_np(err) ? strerrorname_np(err) : "?");
  else l.Add(" = %#llx", static_cast<unsigned long long>(value));
  Emit(l);
}

}  // namespace uapi::trace
