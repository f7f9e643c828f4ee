// UserMemory: how type1 touches the memory of "user space" (this process, since vfiobox runs in
// the process it serves) and decides the EFAULT rows of reference §5: the MAP_DMA vaddr check and
// the safe copies of user buffers (dirty bitmaps). Stateless; all functions are thread-safe.
//
// CheckRange cost, measured on the 2-vCPU dev VM (syscall ≈ 1.2 µs there; see
// docs/design/0003-type1-extents-and-accounting.md):
//   * up to kPopulateMaxBytes: one madvise(MADV_POPULATE_READ or _WRITE) — the kernel's own
//     permission check of a pin, without the pin: ≈1.6 µs + ≈60 ns per page (populated memory);
//   * larger: one read + parse of /proc/self/maps, per VMA not per page: ≈28 µs for ~40 VMAs,
//     independent of the size (1 GiB → ≈38 TB/s; MADV_POPULATE of 1 GiB was 15–20 ms = 52 GB/s).
// The exact check therefore always costs at least one syscall. An opt-in VMA cache
// (SetVmaCache) answers from a parsed snapshot of /proc/self/maps tagged with a process-wide
// generation that whoever changes the address space must bump (InvalidateVmaCache: the preload
// library's mmap/munmap/mprotect/mremap interposers, or the embedder); a hit costs no syscall
// (docs/design/0007-user-pointer-checks.md). Off by default: then every check is exact.
// ReadOnlyPinChargeBytes tells which pages of a read-only pin are the zero page (not charged).
//
// Locks: the latest snapshot is guarded by a process-wide mutex (LockRank::kLeaf), taken only on a
// miss; each thread keeps a reference to the snapshot it last used, so a hit takes no lock. The
// switch and the generation are atomics.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/result.h"

namespace vfio::type1 {

class UserMemory {
 public:
  // Highest user address + 1 the kernel's access_ok() accepts on x86-64 with 4-level paging
  // (TASK_SIZE_MAX = 2^47 - one page).
  static constexpr uint64_t kTaskSizeMax = 0x00007ffffffff000ull;
  // At or below this size CheckRange uses MADV_POPULATE_*; above it, /proc/self/maps.
  static constexpr uint64_t kPopulateMaxBytes = 1ull << 20;

  // The MAP_DMA pin check: [vaddr, vaddr + size) is mapped, and readable (write == false) or
  // writable (write == true) — the kernel pins with FOLL_WRITE when the mapping's prot has WRITE,
  // which needs VM_WRITE only, and without it, which needs VM_READ. Like a pin it may fault the
  // pages in (small ranges). size 0 succeeds.
  // Errors: EFAULT when any byte is unmapped or lacks the permission, or the range wraps.
  static vb::Result<void> CheckRange(uint64_t vaddr, uint64_t size, bool write);

  // True when every byte of [vaddr, vaddr + size) lies in a trapped device BAR mapping (a VM_PFNMAP
  // vma on Linux): MAP_DMA of it is peer-to-peer, pinned by PFN and never charged. No syscall.
  static bool IsDeviceMmio(uint64_t vaddr, uint64_t size);

  // The same decision made only from /proc/self/maps (never faults pages in). Exposed for tests
  // and for callers that must not populate. Errors: EFAULT as above; EIO if maps cannot be read.
  static vb::Result<void> CheckRangeByMaps(uint64_t vaddr, uint64_t size, bool write);

  // The bytes a long-term pin *without* FOLL_WRITE (a MAP_DMA without WRITE) of the checked range
  // [vaddr, vaddr + size) charges on 6.1: every page except those that resolve to the shared zero
  // page — anonymous private memory never written (not present yet, or read-faulted to the zero
  // page) — which is a reserved page, never charged (reference §5.2; 6.12 faults real pages in).
  // Read from /proc/self/pagemap (open + one pread per 512 KiB of entries + close) and, only when
  // some page is not present yet, /proc/self/maps. The zero page is known by its PFN when pagemap
  // shows PFNs (CAP_SYS_ADMIN); otherwise as a present page neither file-backed nor exclusively
  // mapped, which also takes in a written page shared copy-on-write with a forked child (charged
  // by the kernel): documented limit. EIO when pagemap cannot be read (the caller charges all).
  static vb::Result<uint64_t> ReadOnlyPinChargeBytes(uint64_t vaddr, uint64_t size);

  // The kernel's access_ok(): [addr, addr + size) lies in the user address space. It says nothing
  // about whether the memory is mapped (a NULL pointer passes). Used where 6.1 answers EINVAL for
  // a bitmap "not a valid user range".
  static bool AccessOk(uint64_t addr, uint64_t size);

  // The VMA cache (process-wide). While on, CheckRange decides from the cached VMA snapshot when
  // its generation is current (no syscall, pages are not faulted in); a stale snapshot, or a range
  // the snapshot rejects, is re-read from /proc/self/maps first, so the cache can never answer
  // EFAULT for memory that is mapped. It can answer "mapped" for memory unmapped without a
  // generation bump (a raw syscall, or glibc's internal mmap/munmap the preload cannot see):
  // correct only while every address-space change is followed by InvalidateVmaCache().
  static void SetVmaCache(bool on);
  static bool vma_cache();
  // Bumps the generation: the next cached check re-reads /proc/self/maps. Async-signal-safe (one
  // atomic increment), so an interposer may call it from anywhere.
  static void InvalidateVmaCache();
  static uint64_t vma_generation();

  // copy_from_user / copy_to_user: never crash on a bad address. One process_vm_readv/writev on
  // this process (≈3.6 µs). Errors: EFAULT when any byte cannot be read / written (nothing is
  // guaranteed about a partially written destination, as in the kernel).
  static vb::Result<void> CopyFromUser(void* dst, uint64_t user_src, size_t len);
  static vb::Result<void> CopyToUser(uint64_t user_dst, const void* src, size_t len);
};

}  // namespace vfio::type1
