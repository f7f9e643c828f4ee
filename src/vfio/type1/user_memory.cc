#include "vfio/type1/user_memory.h"

#include "faults/trap_map.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/mutex.h"

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

struct Vma {
  uint64_t start = 0, end = 0;  // [start, end)
  bool read = false, write = false;
};

// Reads /proc/self/maps into `out` (sorted by address, as the kernel prints it).
vb::Result<void> ReadVmas(std::vector<Vma>& out) {
  std::string maps;
  if (!ReadWholeFile("/proc/self/maps", maps)) return vb::Err(EIO, "user range: /proc/self/maps");
  out.clear();
  for (size_t i = 0; i < maps.size();) {
    Vma v;
    size_t line_end = maps.find('\n', i);
    if (line_end == std::string::npos) line_end = maps.size();
    bool ok = ParseHex(maps, i, v.start) && i < maps.size() && maps[i++] == '-' &&
              ParseHex(maps, i, v.end) && i + 3 < maps.size() && maps[i] == ' ';
    if (!ok) return vb::Err(EIO, "user range: unparsable /proc/self/maps");
    v.read = maps[i + 1] == 'r';
    v.write = maps[i + 2] == 'w';
    out.push_back(v);
    i = line_end + 1;
  }
  return vb::Ok();
}

// Whether sorted, non-overlapping `vmas` cover [vaddr, end) with the permission.
bool Covers(const std::vector<Vma>& vmas, uint64_t vaddr, uint64_t end, bool write) {
  auto it = std::upper_bound(vmas.begin(), vmas.end(), vaddr,
                             [](uint64_t a, const Vma& v) { return a < v.end; });
  for (uint64_t cursor = vaddr; cursor < end; ++it) {
    if (it == vmas.end() || it->start > cursor) return false;
    if (write ? !it->write : !it->read) return false;
    cursor = it->end;
  }
  return true;
}

std::atomic<bool> g_vma_cache_on{false};
std::atomic<uint64_t> g_vma_generation{1};

struct VmaSnapshot {
  uint64_t generation = 0;  // generation the maps were read at
  std::vector<Vma> vmas;
};
vb::Mutex g_vma_mu(vb::LockRank::kLeaf);  // guards g_vmas (the latest snapshot read)
std::shared_ptr<const VmaSnapshot> g_vmas GUARDED_BY(g_vma_mu);
// Each thread keeps the snapshot it last used, so a hit takes no lock: one atomic load of the
// generation, a binary search.
thread_local std::shared_ptr<const VmaSnapshot> t_vmas;

vb::Result<void> CheckRangeCached(uint64_t vaddr, uint64_t end, bool write) {
  // Read the generation before the maps: a bump during the read leaves the snapshot stale.
  const uint64_t gen = g_vma_generation.load(std::memory_order_acquire);
  if (t_vmas && t_vmas->generation == gen && Covers(t_vmas->vmas, vaddr, end, write)) return vb::Ok();
  vb::MutexLock l(g_vma_mu);
  if (g_vmas && g_vmas->generation == gen && g_vmas != t_vmas) {
    // Another thread already read this generation.
    t_vmas = g_vmas;
    if (Covers(t_vmas->vmas, vaddr, end, write)) return vb::Ok();
  }
  // Stale, or a rejection: decide on a fresh read, so a mapping the interposers did not report
  // (glibc-internal mmap) never makes the cache answer EFAULT.
  auto fresh = std::make_shared<VmaSnapshot>();
  fresh->generation = gen;
  TRY(ReadVmas(fresh->vmas));
  g_vmas = fresh;
  t_vmas = std::move(fresh);
  if (!Covers(t_vmas->vmas, vaddr, end, write)) return vb::Err(EFAULT, "user range: not mapped or permission");
  return vb::Ok();
}

}  // namespace

void UserMemory::SetVmaCache(bool on) {
  InvalidateVmaCache();
  g_vma_cache_on.store(on, std::memory_order_release);
}
bool UserMemory::vma_cache() { return g_vma_cache_on.load(std::memory_order_acquire); }
void UserMemory::InvalidateVmaCache() { g_vma_generation.fetch_add(1, std::memory_order_acq_rel); }
uint64_t UserMemory::vma_generation() { return g_vma_generation.load(std::memory_order_acquire); }

vb::Result<void> UserMemory::CheckRangeByMaps(uint64_t vaddr, uint64_t size, bool write) {
  if (size == 0) return vb::Ok();
  uint64_t end;
  if (__builtin_add_overflow(vaddr, size, &end)) return vb::Err(EFAULT, "user range: wraps");
  std::vector<Vma> vmas;
  TRY(ReadVmas(vmas));
  if (!Covers(vmas, vaddr, end, write)) return vb::Err(EFAULT, "user range: not mapped or permission");
  return vb::Ok();
}

bool UserMemory::IsDeviceMmio(uint64_t vaddr, uint64_t size) {
  if (size == 0 || faults::TrapMap::Global().empty()) return false;
  for (uint64_t at = vaddr; at - vaddr < size;) {
    faults::TrapMap::Hit hit = faults::TrapMap::Global().Find(at);
    if (!hit) return false;
    at += hit.bytes_to_end();
  }
  return true;
}

vb::Result<void> UserMemory::CheckRange(uint64_t vaddr, uint64_t size, bool write) {
  if (size == 0) return vb::Ok();
  uint64_t end;
  if (__builtin_add_overflow(vaddr, size, &end)) return vb::Err(EFAULT, "user range: wraps");
  if (g_vma_cache_on.load(std::memory_order_acquire)) return CheckRangeCached(vaddr, end, write);
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
