// faults::TrapMap: the process's mappings of trapped MMIO pages (Linux: the VM_IO vmas of a vfio-pci
// BAR mmap). Each entry is an address range of a PROT_NONE mapping and the MmioTarget behind it;
// a load or store there faults, and the fault dispatcher finds the entry and emulates the access.
//
// Lookups run in the SIGSEGV handler: lock-free and allocation-free. Each slot has a sequence
// count (odd while it changes) and a count of lookups using it; Remove clears the slot, waits for
// its users to finish, then drops the target, so a target outlives every access that found it.
// Add and Remove are serialized by mu_ (a leaf: no other lock is taken under it, and no lookup
// waits for it). A mapping holds its target (and so the device file) as a Linux vma holds
// vm_file: closing the fd does not end the mapping.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/mutex.h"
#include "base/result.h"

namespace faults {

// What a trapped mapping reaches: a region of a device. Accesses come from the faulting thread.
class MmioTarget {
 public:
  virtual ~MmioTarget() = default;
  enum class Status {
    kOk,
    kBusError,    // the device refuses (memory decode off, low power): SIGBUS at the address
    kProtection,  // the mapping's prot forbids it (a store to a read-only mapping): SIGSEGV
  };
  // One access of 1, 2, 4 or 8 bytes at `offset` within the region, little-endian in data.
  virtual Status Access(uint64_t offset, void* data, unsigned size, bool write) = 0;
  // One posted write of 16, 32 or 64 bytes; false when the device takes no such write (the
  // caller then splits it).
  virtual bool WriteWide(uint64_t offset, const void* data, unsigned size) { return false; }
  // "0000:01:00.0 BAR0+0x10" for an access at `offset`, for diagnostics (may allocate).
  virtual std::string Describe(uint64_t offset) const = 0;
  // Host-side identity for peer-to-peer DMA (MAP_DMA of a vaddr inside the mapping).
  virtual const void* device_identity() const { return nullptr; }
};

class TrapMap {
 public:
  static constexpr int kMaxEntries = 4096;

  static TrapMap& Global();

  // Registers [begin, begin + length) as trapped, reaching `target` at `region_offset` (the offset
  // within the region of `begin`). EINVAL: empty or overflowing range; EEXIST: overlaps an entry;
  // ENOMEM: no free slot.
  vb::Result<void> Add(uint64_t begin, uint64_t length, std::shared_ptr<MmioTarget> target,
                       uint64_t region_offset);
  // Forgets every trapped byte in [begin, begin + length): entries inside it go, entries that
  // straddle it are cut (a partial munmap). Returns how many bytes were trapped there. Waits for
  // lookups still using a removed entry.
  uint64_t Remove(uint64_t begin, uint64_t length);
  // Cheap test for the munmap/mmap hooks: is anything trapped at all?
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }

  // A found entry; holds the slot's user count until destroyed. Never allocates.
  class Hit {
   public:
    Hit() = default;
    Hit(Hit&& o) noexcept
        : slot_(o.slot_), target_(o.target_), offset_(o.offset_), end_(o.end_), pid_(o.pid_) {
      o.slot_ = nullptr;
    }
    Hit& operator=(Hit&&) = delete;
    ~Hit();
    explicit operator bool() const { return slot_ != nullptr; }
    MmioTarget& target() const { return *target_; }
    uint64_t region_offset() const { return offset_; }  // region offset of the looked-up address
    uint64_t bytes_to_end() const { return end_; }      // trapped bytes from it to the entry's end
    // False in a fork child for a mapping it inherited: the machine behind it is the parent's.
    bool mine() const { return pid_ == CurrentPid(); }

   private:
    friend class TrapMap;
    struct Slot* slot_ = nullptr;
    MmioTarget* target_ = nullptr;
    uint64_t offset_ = 0;
    uint64_t end_ = 0;
    int pid_ = 0;
  };
  // Async-signal-safe.
  Hit Find(uint64_t addr) const;

  // Peer-to-peer: the region offset and target of a trapped vaddr (may allocate; not for the
  // fault path). Null when addr is not trapped.
  std::shared_ptr<MmioTarget> TargetOf(uint64_t addr, uint64_t* region_offset) const;

  // getpid(), cached (and refreshed in fork children): no syscall on the fault path.
  static int CurrentPid();

  TrapMap();
  ~TrapMap();

 private:
  vb::Result<void> AddLocked(uint64_t begin, uint64_t length, std::shared_ptr<MmioTarget> target,
                             uint64_t region_offset) REQUIRES(mu_);
  void ClearSlotLocked(int i) REQUIRES(mu_);

  mutable vb::Mutex mu_{vb::LockRank::kLeaf};  // serializes Add/Remove (slot contents change only under it)
  std::unique_ptr<struct Slot[]> slots_;
  std::atomic<int> high_{0};   // slots [0, high_) may be in use
  std::atomic<int> count_{0};  // live entries
};

}  // namespace faults
