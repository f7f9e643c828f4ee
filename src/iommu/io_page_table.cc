#include "iommu/io_page_table.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <utility>

#include "base/checked.h"
#include "base/epoch.h"
#include "base/fail_point.h"

namespace iommu {
namespace {

// Entry layout: bits 5..63 hold the address (a 4 KiB aligned host address for a leaf, a 64-byte
// aligned Table* for a table entry); the low bits are flags. 0 means "nothing here". kDirty is
// the leaf's hardware-style dirty bit, set by a write translation while dirty tracking is on.
constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kLeaf = 1ull << 1;
constexpr uint64_t kRead = 1ull << 2;
constexpr uint64_t kWrite = 1ull << 3;
constexpr uint64_t kDirty = 1ull << 4;
constexpr uint64_t kFlagMask = 0x1f;

constexpr int kLevels = 4;
constexpr unsigned kEntries = 512;

constexpr int Shift(int level) { return 12 + 9 * level; }
constexpr uint64_t LevelSize(int level) { return 1ull << Shift(level); }
constexpr unsigned Index(int level, uint64_t iova) { return (iova >> Shift(level)) & (kEntries - 1); }
constexpr bool IsLeaf(uint64_t e) { return (e & (kPresent | kLeaf)) == (kPresent | kLeaf); }
constexpr bool IsTable(uint64_t e) { return (e & (kPresent | kLeaf)) == kPresent; }
constexpr uint64_t Addr(uint64_t e) { return e & ~kFlagMask; }

constexpr uint64_t ProtBits(uint32_t prot) {
  return ((prot & kProtRead) ? kRead : 0) | ((prot & kProtWrite) ? kWrite : 0);
}
constexpr uint32_t ProtOf(uint64_t e) {
  return ((e & kRead) ? uint32_t{kProtRead} : 0u) | ((e & kWrite) ? uint32_t{kProtWrite} : 0u);
}
constexpr bool Allows(uint64_t e, hw::DmaAccess a) {
  return (e & (a == hw::DmaAccess::kRead ? kRead : kWrite)) != 0;
}

// Process-wide source of generation numbers: a (table address, generation) pair never repeats,
// even across a free and a new table at the same address, so a DmaPort cache tag stays exact.
std::atomic<uint64_t> g_next_generation{1};
uint64_t NextGeneration() { return g_next_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

// One page of the tree. `used` counts non-empty entries; it and `next` are touched only by writers
// under mu_ (or by the owner of a table not yet linked / already unlinked).
struct alignas(64) IoPageTable::Table {
  std::atomic<uint64_t> e[kEntries] = {};
  uint32_t used = 0;
  Table* next = nullptr;  // links pooled (not yet linked) or retired (unlinked) tables
};

// Where a lookup ended: the last entry read, its level, and the table holding it.
struct IoPageTable::Walk {
  uint64_t entry = 0;
  int level = 0;
  const Table* table = nullptr;
  unsigned index = 0;
};

IoPageTable::IoPageTable(uint64_t pgsize_bitmap, unsigned address_bits)
    : pgsize_bitmap_(pgsize_bitmap), address_bits_(address_bits), root_(new Table()) {
  const bool ok = (pgsize_bitmap & kPage4K) && !(pgsize_bitmap & ~(kPage4K | kPage2M | kPage1G)) &&
                  (!(pgsize_bitmap & kPage1G) || (pgsize_bitmap & kPage2M)) && address_bits > 12 &&
                  address_bits <= 48;
  if (!ok) {
    std::fprintf(stderr, "vfiobox: IoPageTable(pgsize_bitmap=%#llx, address_bits=%u) is invalid\n",
                 static_cast<unsigned long long>(pgsize_bitmap), address_bits);
    std::abort();
  }
  generation_.store(NextGeneration(), std::memory_order_relaxed);
  table_count_.store(1, std::memory_order_relaxed);
}

IoPageTable::~IoPageTable() {
  {
    vb::MutexLock l(mu_);
    for (Table* t = deferred_.exchange(nullptr); t;) ReleaseTableLocked(std::exchange(t, t->next), true);
    while (pool_) delete std::exchange(pool_, pool_->next);
    pool_size_ = 0;
  }
  // The owner guarantees no reader can reach this table any more (it synchronized after
  // detaching it), so the tree goes without another grace period.
  FreeTree(root_, kLevels - 1);
}

void IoPageTable::FreeTree(Table* t, int level) {
  if (level > 0) {
    for (auto& slot : t->e) {
      const uint64_t e = slot.load(std::memory_order_relaxed);
      if (IsTable(e)) FreeTree(reinterpret_cast<Table*>(Addr(e)), level - 1);
    }
  }
  delete t;
}

IoPageTable::Table* IoPageTable::AllocTableLocked() {
  if (VB_FAIL_POINT("iopt.alloc_table")) return nullptr;
  if (Table* t = pool_) {
    pool_ = t->next;
    --pool_size_;
    t->next = nullptr;
    return t;
  }
  return new (std::nothrow) Table();
}

void IoPageTable::ReleaseTableLocked(Table* t, bool counted) {
  if (counted) table_count_.fetch_sub(1, std::memory_order_relaxed);
  // A table leaves the tree only when empty (used == 0: every entry is zero), and a never-linked
  // one was never written or was filled only by a split that did not happen, so pooled tables are
  // ready for reuse. A split pool table may hold entries: zero it rather than trust it.
  if (pool_size_ >= kPoolMax) {
    delete t;
    return;
  }
  if (t->used != 0) {
    for (auto& e : t->e) e.store(0, std::memory_order_relaxed);
    t->used = 0;
  }
  t->next = pool_;
  pool_ = t;
  ++pool_size_;
}

IoPageTable::Walk IoPageTable::WalkTo(uint64_t iova) const {
  const Table* t = root_;
  for (int level = kLevels - 1;; --level) {
    const unsigned idx = Index(level, iova);
    const uint64_t e = t->e[idx].load(std::memory_order_acquire);
    if (!IsTable(e) || level == 0) return Walk{e, level, t, idx};
    t = reinterpret_cast<const Table*>(Addr(e));
  }
}

bool IoPageTable::UseLeaf(int level, uint64_t first, uint64_t last, uint64_t phys) const {
  const uint64_t size = LevelSize(level);
  return (pgsize_bitmap_ & size) && vb::IsAligned(first, size) && last - first == size - 1 &&
         vb::IsAligned(phys, size);
}

// ---- Map ----

// Checks that nothing in [first, last] is mapped and counts the tables Map must allocate. `t` is
// null for a table that does not exist yet. Relies on the invariant that no table below the
// root is empty, so a table where a large leaf would go means something is mapped there.
bool IoPageTable::PlanMapLocked(const Table* t, int level, uint64_t first, uint64_t last,
                                uint64_t phys, uint64_t& tables_needed) const {
  if (level == 0) {
    if (!t) return true;
    for (unsigned i = Index(0, first), end = Index(0, last); i <= end; ++i)
      if (t->e[i].load(std::memory_order_relaxed)) return false;
    return true;
  }
  const uint64_t size = LevelSize(level);
  for (uint64_t a = first;;) {
    const uint64_t slot_last = std::min(last, vb::AlignDown(a, size) + (size - 1));
    const uint64_t pa = phys + (a - first);
    const uint64_t e = t ? t->e[Index(level, a)].load(std::memory_order_relaxed) : 0;
    if (UseLeaf(level, a, slot_last, pa)) {
      if (e) return false;
    } else {
      if (IsLeaf(e)) return false;
      const Table* child = e ? reinterpret_cast<const Table*>(Addr(e)) : nullptr;
      if (!child) ++tables_needed;
      if (!PlanMapLocked(child, level - 1, a, slot_last, pa, tables_needed)) return false;
    }
    if (slot_last == last) return true;
    a = slot_last + 1;
  }
}

// Writes the leaves of [first, last]; takes the tables PlanMap counted from `pool`. A new table is
// filled before it is linked, so a reader sees either nothing or the finished subtree.
void IoPageTable::InstallMapLocked(Table* t, int level, uint64_t first, uint64_t last, uint64_t phys,
                                   uint64_t pte_bits, Table*& pool) {
  if (level == 0) {
    const unsigned begin = Index(0, first), end = Index(0, last);
    for (unsigned i = begin; i <= end; ++i)
      t->e[i].store((phys + uint64_t{i - begin} * kPage4K) | pte_bits, std::memory_order_release);
    t->used += end - begin + 1;
    return;
  }
  const uint64_t size = LevelSize(level);
  for (uint64_t a = first;;) {
    const uint64_t slot_last = std::min(last, vb::AlignDown(a, size) + (size - 1));
    const uint64_t pa = phys + (a - first);
    std::atomic<uint64_t>& slot = t->e[Index(level, a)];
    if (UseLeaf(level, a, slot_last, pa)) {
      slot.store(pa | pte_bits, std::memory_order_release);
      ++t->used;
    } else if (const uint64_t e = slot.load(std::memory_order_relaxed)) {
      InstallMapLocked(reinterpret_cast<Table*>(Addr(e)), level - 1, a, slot_last, pa, pte_bits, pool);
    } else {
      Table* child = pool;
      pool = child->next;
      child->next = nullptr;
      InstallMapLocked(child, level - 1, a, slot_last, pa, pte_bits, pool);
      slot.store(reinterpret_cast<uint64_t>(child) | kPresent, std::memory_order_release);
      ++t->used;
      table_count_.fetch_add(1, std::memory_order_relaxed);
    }
    if (slot_last == last) return;
    a = slot_last + 1;
  }
}

vb::Result<void> IoPageTable::Map(uint64_t iova, uint64_t phys, uint64_t size, uint32_t prot) {
  if (prot == 0 || (prot & ~(kProtRead | kProtWrite))) return vb::Err(EINVAL, "iopt.map: bad prot");
  if (size == 0) return vb::Err(EINVAL, "iopt.map: zero size");
  if (!vb::IsAligned(iova | phys | size, kPage4K)) return vb::Err(EINVAL, "iopt.map: unaligned");
  const uint64_t last = TRY(vb::RangeLast(iova, size));
  TRY(vb::RangeLast(phys, size));
  if (last >> address_bits_) return vb::Err(ERANGE, "iopt.map: beyond address space");

  const uint64_t pte_bits = ProtBits(prot) | kPresent | kLeaf;
  vb::MutexLock l(mu_);
  uint64_t needed = 0;
  if (!PlanMapLocked(root_, kLevels - 1, iova, last, phys, needed))
    return vb::Err(EEXIST, "iopt.map: already mapped");
  Table* pool = nullptr;
  for (uint64_t i = 0; i < needed; ++i) {
    Table* t = AllocTableLocked();
    if (!t) {
      while (pool) ReleaseTableLocked(std::exchange(pool, pool->next), false);
      return vb::Err(ENOMEM, "iopt.map: table allocation");
    }
    t->next = pool;
    pool = t;
  }
  InstallMapLocked(root_, kLevels - 1, iova, last, phys, pte_bits, pool);
  mapped_bytes_.fetch_add(size, std::memory_order_relaxed);
  return vb::Ok();
}

// ---- Unmap ----

// Adds to `blocks` the large leaves (as level and base iova) that must be split so that `boundary`
// starts a leaf, including the ones the split itself creates. Deduplicated, so the two boundaries
// of one Unmap inside the same large leaf count its split once.
void IoPageTable::SplitsNeededLocked(uint64_t boundary, SplitBlock* blocks, int& count) const {
  // No leaf larger than the largest enabled size exists, so an address aligned to it is a leaf
  // boundary already (the common case for unmaps of large ranges).
  const uint64_t largest = 1ull << (63 - __builtin_clzll(pgsize_bitmap_));
  if (largest == kPage4K || vb::IsAligned(boundary, largest)) return;
  const Walk w = WalkTo(boundary);
  if (!IsLeaf(w.entry)) return;
  for (int level = w.level; level > 0 && !vb::IsAligned(boundary, LevelSize(level)); --level) {
    const SplitBlock b{level, vb::AlignDown(boundary, LevelSize(level))};
    if (std::find(blocks, blocks + count, b) == blocks + count) blocks[count++] = b;
  }
}

// Replaces the large leaves containing `boundary` by tables of next-level leaves that translate
// the same way, until `boundary` starts a leaf. A reader sees the old leaf or the new table, both
// correct. Tables come from `pool` (SplitsNeeded counted them).
void IoPageTable::SplitAtLocked(uint64_t boundary, Table*& pool) {
  for (;;) {
    const Walk w = WalkTo(boundary);
    if (!IsLeaf(w.entry) || w.level == 0 || vb::IsAligned(boundary, LevelSize(w.level))) return;
    Table* child = pool;
    pool = child->next;
    child->next = nullptr;
    const uint64_t sub = LevelSize(w.level - 1);
    const uint64_t flags = (w.entry & kFlagMask);
    for (unsigned i = 0; i < kEntries; ++i)
      child->e[i].store((Addr(w.entry) + i * sub) | flags, std::memory_order_relaxed);
    child->used = kEntries;
    table_count_.fetch_add(1, std::memory_order_relaxed);
    // The table slot is owned by writers; the const only reflects how WalkTo reads.
    auto& slot = const_cast<std::atomic<uint64_t>&>(w.table->e[w.index]);
    slot.store(reinterpret_cast<uint64_t>(child) | kPresent, std::memory_order_release);
  }
}

// Clears every leaf in [first, last] (all lie wholly inside it after the splits) and unlinks the
// tables that become empty onto `retired`; they are freed after a grace period.
void IoPageTable::ClearRangeLocked(Table* t, int level, uint64_t first, uint64_t last,
                                   uint64_t& unmapped, Table*& retired) {
  const uint64_t size = LevelSize(level);
  for (uint64_t a = first;;) {
    const uint64_t slot_last = std::min(last, vb::AlignDown(a, size) + (size - 1));
    std::atomic<uint64_t>& slot = t->e[Index(level, a)];
    const uint64_t e = slot.load(std::memory_order_relaxed);
    if (IsLeaf(e)) {
      slot.store(0, std::memory_order_release);
      --t->used;
      unmapped += size;
    } else if (IsTable(e)) {
      Table* child = reinterpret_cast<Table*>(Addr(e));
      ClearRangeLocked(child, level - 1, a, slot_last, unmapped, retired);
      if (child->used == 0) {
        slot.store(0, std::memory_order_release);
        --t->used;
        child->next = retired;
        retired = child;
      }
    }
    if (slot_last == last) return;
    a = slot_last + 1;
  }
}

vb::Result<uint64_t> IoPageTable::Unmap(uint64_t iova, uint64_t size) {
  Table* retired = nullptr;
  const uint64_t unmapped = TRY(UnmapRetiring(iova, size, retired, false));
  if (unmapped == 0 && !retired) return 0;
  // Outside mu_: other writers need not wait for our grace period.
  vb::Epoch::Synchronize();
  if (retired) {
    vb::MutexLock l(mu_);
    while (retired) ReleaseTableLocked(std::exchange(retired, retired->next), true);
  }
  return unmapped;
}

vb::Result<uint64_t> IoPageTable::UnmapDeferred(uint64_t iova, uint64_t size) {
  Table* retired = nullptr;
  return UnmapRetiring(iova, size, retired, true);
}

void IoPageTable::Sync() {
  // Take the list before the grace period: a table another UnmapDeferred retires meanwhile waits
  // for the next Sync rather than being freed without a grace period of its own.
  Table* retired = deferred_.exchange(nullptr, std::memory_order_acquire);
  vb::Epoch::Synchronize();
  if (!retired) return;
  vb::MutexLock l(mu_);
  while (retired) ReleaseTableLocked(std::exchange(retired, retired->next), true);
}

vb::Result<uint64_t> IoPageTable::UnmapRetiring(uint64_t iova, uint64_t size, Table*& retired,
                                               bool defer) {
  if (size == 0) return vb::Err(EINVAL, "iopt.unmap: zero size");
  if (!vb::IsAligned(iova | size, kPage4K)) return vb::Err(EINVAL, "iopt.unmap: unaligned");
  const uint64_t last = TRY(vb::RangeLast(iova, size));
  if (last >> address_bits_) return vb::Err(ERANGE, "iopt.unmap: beyond address space");

  uint64_t unmapped = 0;
  vb::MutexLock l(mu_);
  const bool end_inside = ((last + 1) >> address_bits_) == 0;
  // Allocate every split table first so that a failure changes nothing.
  SplitBlock blocks[4];
  int needed = 0;
  SplitsNeededLocked(iova, blocks, needed);
  if (end_inside) SplitsNeededLocked(last + 1, blocks, needed);
  Table* pool = nullptr;
  for (int i = 0; i < needed; ++i) {
    Table* t = AllocTableLocked();
    if (!t) {
      while (pool) ReleaseTableLocked(std::exchange(pool, pool->next), false);
      return vb::Err(ENOMEM, "iopt.unmap: split table allocation");
    }
    t->next = pool;
    pool = t;
  }
  if (needed) {
    SplitAtLocked(iova, pool);
    if (end_inside) SplitAtLocked(last + 1, pool);
  }

  ClearRangeLocked(root_, kLevels - 1, iova, last, unmapped, retired);
  if (unmapped == 0 && !retired) return 0;
  if (defer && retired) {
    Table* tail = retired;
    while (tail->next) tail = tail->next;
    tail->next = deferred_.load(std::memory_order_relaxed);
    while (!deferred_.compare_exchange_weak(tail->next, retired, std::memory_order_release,
                                            std::memory_order_relaxed)) {
    }
    retired = nullptr;
  }
  mapped_bytes_.fetch_sub(unmapped, std::memory_order_relaxed);
  generation_.store(NextGeneration(), std::memory_order_release);
  return unmapped;
}

// ---- Retarget ----

vb::Result<void> IoPageTable::Retarget(uint64_t iova, uint64_t size, uint64_t new_phys) {
  if (size == 0) return vb::Err(EINVAL, "iopt.retarget: zero size");
  if (!vb::IsAligned(iova | size | new_phys, kPage4K)) return vb::Err(EINVAL, "iopt.retarget: unaligned");
  const uint64_t last = TRY(vb::RangeLast(iova, size));
  TRY(vb::RangeLast(new_phys, size));
  if (last >> address_bits_) return vb::Err(ERANGE, "iopt.retarget: beyond address space");

  vb::MutexLock l(mu_);
  // Upper bound of the split tables: a 2M leaf needs one, a 1G leaf one plus one per 2M part.
  uint64_t needed = 0;
  for (uint64_t a = iova;;) {
    const Walk w = WalkTo(a);
    const uint64_t span = LevelSize(w.level);
    if (IsLeaf(w.entry) && w.level > 0) needed += w.level == 1 ? 1 : 1 + kEntries;
    const uint64_t next = vb::AlignDown(a, span) + span;
    if (next - 1 >= last) break;
    a = next;
  }
  Table* pool = nullptr;
  for (uint64_t i = 0; i < needed; ++i) {
    Table* t = AllocTableLocked();
    if (!t) {
      while (pool) ReleaseTableLocked(std::exchange(pool, pool->next), false);
      return vb::Err(ENOMEM, "iopt.retarget: split table allocation");
    }
    t->next = pool;
    pool = t;
  }
  for (uint64_t a = iova;;) {
    const Walk w = WalkTo(a);
    const uint64_t span = LevelSize(w.level);
    const uint64_t base = vb::AlignDown(a, span);
    if (IsLeaf(w.entry)) {
      const uint64_t target = new_phys + (base - iova);
      const bool inside = base >= iova && base + (span - 1) <= last;
      if (w.level > 0 && (!inside || !vb::IsAligned(target, span))) {
        SplitAtLocked(base + LevelSize(w.level - 1), pool);
        continue;  // walk the same address again, one level down
      }
      auto& slot = const_cast<std::atomic<uint64_t>&>(w.table->e[w.index]);
      slot.store(target | (slot.load(std::memory_order_relaxed) & kFlagMask), std::memory_order_release);
    }
    if (base + (span - 1) >= last) break;
    a = base + span;
  }
  while (pool) ReleaseTableLocked(std::exchange(pool, pool->next), false);
  // Cached translations of the old addresses must walk again.
  generation_.store(NextGeneration(), std::memory_order_release);
  return vb::Ok();
}

// ---- Dirty tracking ----

void IoPageTable::SetDirtyTracking(bool on) {
  vb::MutexLock l(mu_);
  dirty_tracking_.store(on, std::memory_order_release);
  // Cached write translations were made without setting dirty bits: make every cache re-walk.
  generation_.store(NextGeneration(), std::memory_order_release);
}

void IoPageTable::ReadAndClearDirty(uint64_t iova, uint64_t size,
                                    const std::function<void(uint64_t, uint64_t)>& fn) {
  if (size == 0) return;
  const auto last_or = vb::RangeLast(iova, size);
  if (!last_or.has_value()) return;
  const uint64_t last = std::min<uint64_t>(*last_or, (uint64_t{1} << address_bits_) - 1);
  bool cleared = false;
  {
    vb::MutexLock l(mu_);
    for (uint64_t a = iova; a <= last;) {
      const Walk w = WalkTo(a);
      const uint64_t leaf = LevelSize(w.level);
      const uint64_t leaf_last = vb::AlignDown(a, leaf) + (leaf - 1);
      const uint64_t run_last = std::min(leaf_last, last);
      if (IsLeaf(w.entry) && (w.entry & kDirty)) {
        auto& slot = const_cast<Table*>(w.table)->e[w.index];
        slot.fetch_and(~kDirty, std::memory_order_acq_rel);
        cleared = true;
        fn(a, run_last - a + 1);
      }
      if (run_last == last) break;
      a = run_last + 1;
    }
    // A cached write translation of a page just cleaned must walk again to re-dirty it.
    if (cleared) generation_.store(NextGeneration(), std::memory_order_release);
  }
}

// ---- Readers ----

void IoPageTable::ForEachLeaf(const std::function<void(const LeafVisit&)>& fn) {
  vb::MutexLock l(mu_);
  LeafVisit v;
  VisitLocked(root_, kLevels - 1, 0, v, fn);
}

void IoPageTable::VisitLocked(const Table* t, int level, uint64_t base, LeafVisit& v,
                              const std::function<void(const LeafVisit&)>& fn) const {
  v.tables[level] = reinterpret_cast<uintptr_t>(t);
  for (unsigned i = 0; i < kEntries; ++i) {
    const uint64_t e = t->e[i].load(std::memory_order_relaxed);
    const uint64_t iova = base + uint64_t{i} * LevelSize(level);
    if (IsTable(e)) {
      VisitLocked(reinterpret_cast<const Table*>(Addr(e)), level - 1, iova, v, fn);
      v.tables[level - 1] = 0;
    } else if (IsLeaf(e)) {
      v.iova = iova;
      v.size = LevelSize(level);
      v.phys = Addr(e);
      v.prot = ProtOf(e);
      v.level = level;
      fn(v);
    }
  }
}

std::optional<IovaTranslation> IoPageTable::IovaToPhys(uint64_t iova) const {
  if (iova >> address_bits_) return std::nullopt;
  const Walk w = WalkTo(iova);
  if (!IsLeaf(w.entry)) return std::nullopt;
  const uint64_t size = LevelSize(w.level);
  return IovaTranslation{Addr(w.entry) + (iova & (size - 1)), ProtOf(w.entry), size};
}

hw::DmaTranslateResult IoPageTable::Translate(uint64_t iova, uint64_t length,
                                              hw::DmaAccess access) const {
  using hw::DmaFaultReason;
  if (iova >> address_bits_) return {false, DmaFaultReason::kOutOfAperture, {}};
  Walk w = WalkTo(iova);
  if (!IsLeaf(w.entry)) return {false, DmaFaultReason::kNotMapped, {}};
  if (!Allows(w.entry, access)) return {false, DmaFaultReason::kPermission, {}};
  const bool mark = access == hw::DmaAccess::kWrite && dirty_tracking_.load(std::memory_order_acquire);
  if (mark && !(w.entry & kDirty)) const_cast<Table*>(w.table)->e[w.index].fetch_or(kDirty, std::memory_order_acq_rel);
  const uint64_t size = LevelSize(w.level);
  const uint64_t offset = iova & (size - 1);
  uint8_t* const host = reinterpret_cast<uint8_t*>(Addr(w.entry) + offset);
  uint64_t run = size - offset;
  // Extend over the following leaves while the host run continues: mostly the next entry of the
  // same table, a fresh walk only at a table boundary.
  while (run < length) {
    const uint64_t next = iova + run;
    if (next >> address_bits_) break;
    uint64_t e;
    if (w.index + 1 < kEntries && Index(w.level, next) == w.index + 1) {
      ++w.index;
      e = w.table->e[w.index].load(std::memory_order_acquire);
      if (IsTable(e)) {
        w = WalkTo(next);
        e = w.entry;
      } else {
        w.entry = e;
      }
    } else {
      w = WalkTo(next);
      e = w.entry;
    }
    if (!IsLeaf(e) || !Allows(e, access) ||
        reinterpret_cast<uint8_t*>(Addr(e)) != host + run)
      break;
    if (mark && !(e & kDirty)) const_cast<Table*>(w.table)->e[w.index].fetch_or(kDirty, std::memory_order_acq_rel);
    run += LevelSize(w.level);
  }
  return {true, DmaFaultReason::kNotMapped, {host, std::min(run, length)}};
}

}  // namespace iommu
