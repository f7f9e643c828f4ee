#include "vfio/type1/user_memory.h"

#include "faults/trap_map.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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
  bool anon_private = false;  // private, no backing inode: a read fault maps the zero page
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
    // "start-end perms offset dev inode path": private and inode 0 (heap, stack, anonymous).
    if (i + 4 < maps.size() && maps[i + 4] == 'p') {
      size_t f = i + 5;
      for (int field = 0; field < 3 && f < line_end; ++field) {  // offset, dev, inode
        while (f < line_end && maps[f] == ' ') ++f;
        size_t e = f;
        while (e < line_end && maps[e] != ' ') ++e;
        if (field == 2) v.anon_private = maps.compare(f, e - f, "0") == 0;
        f = e;
      }
    }
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

namespace {

constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwap = 1ull << 62;
constexpr uint64_t kPmFile = 1ull << 61;
constexpr uint64_t kPmExclusive = 1ull << 56;
constexpr uint64_t kPmPfnMask = (1ull << 55) - 1;

// Reads the pagemap entries of [first_page, first_page + count) into out (raw syscalls).
bool ReadPagemap(int fd, uint64_t first_page, uint64_t count, uint64_t* out) {
  uint64_t done = 0;
  while (done < count) {
    const long n = syscall(SYS_pread64, fd, out + done, (count - done) * sizeof(uint64_t),
                           static_cast<off_t>((first_page + done) * sizeof(uint64_t)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || n % sizeof(uint64_t)) return false;
    done += static_cast<uint64_t>(n) / sizeof(uint64_t);
  }
  return true;
}

// The zero page's PFN as pagemap shows it (0: PFNs are hidden from this process).
uint64_t ZeroPfn(int fd) {
  static std::atomic<uint64_t> cached{~0ull};
  uint64_t pfn = cached.load(std::memory_order_acquire);
  if (pfn != ~0ull) return pfn;
  const long page = getpagesize();
  void* p = reinterpret_cast<void*>(syscall(SYS_mmap, nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  pfn = 0;
  if (p != MAP_FAILED) {
    (void)*static_cast<volatile const char*>(p);  // a read fault: the zero page
    uint64_t e = 0;
    if (ReadPagemap(fd, reinterpret_cast<uintptr_t>(p) / page, 1, &e) && (e & kPmPresent)) pfn = e & kPmPfnMask;
    syscall(SYS_munmap, p, page);
  }
  cached.store(pfn, std::memory_order_release);
  return pfn;
}

}  // namespace

vb::Result<uint64_t> UserMemory::ReadOnlyPinChargeBytes(uint64_t vaddr, uint64_t size) {
  if (size == 0) return uint64_t{0};
  const uint64_t page = static_cast<uint64_t>(getpagesize());
  const uint64_t first = vaddr / page, last = (vaddr + size - 1) / page;
  const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (fd < 0) return vb::Err(EIO, "pin charge: /proc/self/pagemap");
  const uint64_t zero_pfn = ZeroPfn(fd);
  uint64_t charged = 0;
  std::vector<uint64_t> absent;  // pages not present yet (decided by their VMA)
  constexpr uint64_t kChunk = 65536;  // entries per pread (512 KiB)
  std::vector<uint64_t> e(std::min<uint64_t>(kChunk, last - first + 1));
  bool ok = true;
  for (uint64_t p = first; ok && p <= last; p += kChunk) {
    const uint64_t n = std::min<uint64_t>(kChunk, last - p + 1);
    if (!(ok = ReadPagemap(fd, p, n, e.data()))) break;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t v = e[i];
      bool zero;
      if (v & kPmPresent) {
        const uint64_t pfn = v & kPmPfnMask;
        zero = pfn != 0 && zero_pfn != 0 ? pfn == zero_pfn : !(v & (kPmFile | kPmExclusive));
      } else if (v & kPmSwap) {
        zero = false;  // swapped-out data comes back in a real page
      } else {
        absent.push_back(p + i);
        continue;
      }
      if (!zero) ++charged;
    }
  }
  syscall(SYS_close, fd);
  if (!ok) return vb::Err(EIO, "pin charge: pagemap read");
  if (!absent.empty()) {
    // Never touched: a private anonymous VMA maps the zero page on the pin's read fault; anything
    // else (shared memory, files, hugetlb) allocates or reads a real page.
    std::vector<Vma> vmas;
    TRY(ReadVmas(vmas));
    for (uint64_t pg : absent) {
      const uint64_t a = pg * page;
      auto it = std::upper_bound(vmas.begin(), vmas.end(), a, [](uint64_t x, const Vma& v) { return x < v.end; });
      if (it == vmas.end() || it->start > a || !it->anon_private) ++charged;
    }
  }
  return charged * page;
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
