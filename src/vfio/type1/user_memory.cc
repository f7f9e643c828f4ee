#include "vfio/type1/user_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace vfio::type1 {

namespace {

bool ReadWholeFile(const char* path, std::string& out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// Parses a hex number at s[i...], advancing i. Returns false when no digit is there.
bool ParseHex(const std::string& s, size_t& i, uint64_t& v) {
  size_t start = i;
  v = 0;
  while (i < s.size()) {
    char c = s[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else break;
    v = (v << 4) | static_cast<uint64_t>(d);
    ++i;
  }
  return i > start;
}

}  // namespace

vb::Result<void> UserMemory::CheckRangeByMaps(uint64_t vaddr, uint64_t size, bool write) {
  if (size == 0) return vb::Ok();
  uint64_t end;
  if (__builtin_add_overflow(vaddr, size, &end)) return vb::Err(EFAULT, "user range: wraps");
  std::string maps;
  if (!ReadWholeFile("/proc/self/maps", maps)) return vb::Err(EIO, "user range: /proc/self/maps");
  // Lines are sorted by address: walk a cursor through the VMAs that cover the range.
  uint64_t cursor = vaddr;
  size_t i = 0;
  while (i < maps.size() && cursor < end) {
    uint64_t vstart, vend;
    size_t line_end = maps.find('\n', i);
    if (line_end == std::string::npos) line_end = maps.size();
    bool ok = ParseHex(maps, i, vstart) && i < maps.size() && maps[i++] == '-' &&
              ParseHex(maps, i, vend) && i + 3 < maps.size() && maps[i] == ' ';
    if (!ok) return vb::Err(EIO, "user range: unparsable /proc/self/maps");
    char r = maps[i + 1], w = maps[i + 2];
    i = line_end + 1;
    if (vend <= cursor) continue;
    if (vstart > cursor) return vb::Err(EFAULT, "user range: unmapped");
    if (write ? w != 'w' : r != 'r') return vb::Err(EFAULT, "user range: permission");
    cursor = vend;
  }
  if (cursor < end) return vb::Err(EFAULT, "user range: unmapped");
  return vb::Ok();
}

vb::Result<void> UserMemory::CheckRange(uint64_t vaddr, uint64_t size, bool write) {
  if (size == 0) return vb::Ok();
  uint64_t end;
  if (__builtin_add_overflow(vaddr, size, &end)) return vb::Err(EFAULT, "user range: wraps");
  if (size <= kPopulateMaxBytes && (vaddr & (static_cast<uint64_t>(getpagesize()) - 1)) == 0) {
    if (madvise(reinterpret_cast<void*>(vaddr), size,
                write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0)
      return vb::Ok();
    // ENOMEM: a hole; EFAULT: the access would SIGBUS (file hole past EOF) — a pin fails alike.
    // EINVAL is ambiguous (missing permission, or a VM_PFNMAP/VM_IO mapping that a pin accepts,
    // or an old kernel without MADV_POPULATE): let the VMA flags decide.
    if (errno == ENOMEM || errno == EFAULT) return vb::Err(EFAULT, "user range: not mapped");
  }
  return CheckRangeByMaps(vaddr, size, write);
}

bool UserMemory::AccessOk(uint64_t addr, uint64_t size) {
  uint64_t end;
  if (__builtin_add_overflow(addr, size, &end)) return false;
  return end <= kTaskSizeMax;
}

vb::Result<void> UserMemory::CopyFromUser(void* dst, uint64_t user_src, size_t len) {
  if (len == 0) return vb::Ok();
  iovec local{dst, len};
  iovec remote{reinterpret_cast<void*>(user_src), len};
  ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len)) return vb::Err(EFAULT, "copy_from_user");
  return vb::Ok();
}

vb::Result<void> UserMemory::CopyToUser(uint64_t user_dst, const void* src, size_t len) {
  if (len == 0) return vb::Ok();
  iovec local{const_cast<void*>(src), len};
  iovec remote{reinterpret_cast<void*>(user_dst), len};
  ssize_t n = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len)) return vb::Err(EFAULT, "copy_to_user");
  return vb::Ok();
}

}  // namespace vfio::type1
