#include "faults/trap_map.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace faults {

// One entry. Readers see begin/end/target only between two equal even values of seq.
struct Slot {
  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> users{0};
  std::atomic<uint64_t> begin{0};
  std::atomic<uint64_t> end{0};  // 0: free
  std::atomic<uint64_t> region_offset{0};
  std::atomic<MmioTarget*> target{nullptr};
  std::atomic<int> pid{0};  // the process that made the mapping
  std::shared_ptr<MmioTarget> owner;  // TrapMap::mu_
};

namespace {

void BeginChange(Slot& s) { s.seq.fetch_add(1, std::memory_order_seq_cst); }
void EndChange(Slot& s) { s.seq.fetch_add(1, std::memory_order_release); }

// After BeginChange: no lookup that started before can still be using the old contents.
void WaitForUsers(const Slot& s) {
  while (s.users.load(std::memory_order_seq_cst) != 0) sched_yield();
}

}  // namespace

namespace {
std::atomic<int> g_pid{0};
void RefreshPid() { g_pid.store(static_cast<int>(getpid()), std::memory_order_relaxed); }
}  // namespace

int TrapMap::CurrentPid() {
  int pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) [[unlikely]] {
    static const int once = [] {
      pthread_atfork(nullptr, nullptr, RefreshPid);
      return 0;
    }();
    (void)once;
    RefreshPid();
    pid = g_pid.load(std::memory_order_relaxed);
  }
  return pid;
}

TrapMap& TrapMap::Global() {
  static TrapMap* map = new TrapMap();  // never destroyed: faults may come during exit
  return *map;
}

TrapMap::TrapMap() : slots_(new Slot[kMaxEntries]) {}
TrapMap::~TrapMap() = default;

TrapMap::Hit::~Hit() {
  if (slot_) slot_->users.fetch_sub(1, std::memory_order_seq_cst);
}

TrapMap::Hit TrapMap::Find(uint64_t addr) const {
  if (count_.load(std::memory_order_acquire) == 0) return {};
  const int high = high_.load(std::memory_order_acquire);
  for (int i = 0; i < high; ++i) {
    Slot& s = slots_[i];
    for (;;) {
      const uint32_t seq = s.seq.load(std::memory_order_acquire);
      if (seq & 1) {
        sched_yield();
        continue;
      }
      const uint64_t end = s.end.load(std::memory_order_relaxed);
      const uint64_t begin = s.begin.load(std::memory_order_relaxed);
      if (end == 0 || addr < begin || addr >= end) {
        if (s.seq.load(std::memory_order_acquire) != seq) continue;
        break;
      }
      s.users.fetch_add(1, std::memory_order_seq_cst);
      if (s.seq.load(std::memory_order_seq_cst) != seq) {
        s.users.fetch_sub(1, std::memory_order_seq_cst);
        continue;
      }
      Hit h;
      h.slot_ = &s;
      h.target_ = s.target.load(std::memory_order_relaxed);
      h.offset_ = s.region_offset.load(std::memory_order_relaxed) + (addr - begin);
      h.end_ = end - addr;
      h.pid_ = s.pid.load(std::memory_order_relaxed);
      return h;
    }
  }
  return {};
}

vb::Result<void> TrapMap::Add(uint64_t begin, uint64_t length, std::shared_ptr<MmioTarget> target,
                              uint64_t region_offset) {
  if (length == 0 || begin + length < begin || !target) return vb::Err(EINVAL, "trap map: bad range");
  vb::MutexLock l(mu_);
  const int high = high_.load(std::memory_order_relaxed);
  for (int i = 0; i < high; ++i) {
    const Slot& s = slots_[i];
    const uint64_t e = s.end.load(std::memory_order_relaxed);
    if (e != 0 && begin < e && s.begin.load(std::memory_order_relaxed) < begin + length)
      return vb::Err(EEXIST, "trap map: overlaps a trapped mapping");
  }
  return AddLocked(begin, length, std::move(target), region_offset);
}

vb::Result<void> TrapMap::AddLocked(uint64_t begin, uint64_t length, std::shared_ptr<MmioTarget> target,
                                    uint64_t region_offset) {
  const int high = high_.load(std::memory_order_relaxed);
  int free_slot = -1;
  for (int i = 0; i < high && free_slot < 0; ++i)
    if (slots_[i].end.load(std::memory_order_relaxed) == 0) free_slot = i;
  if (free_slot < 0) {
    if (high == kMaxEntries) return vb::Err(ENOMEM, "trap map: full");
    free_slot = high;
  }
  Slot& s = slots_[free_slot];
  BeginChange(s);
  s.begin.store(begin, std::memory_order_relaxed);
  s.region_offset.store(region_offset, std::memory_order_relaxed);
  s.target.store(target.get(), std::memory_order_relaxed);
  s.pid.store(CurrentPid(), std::memory_order_relaxed);
  s.end.store(begin + length, std::memory_order_relaxed);
  s.owner = std::move(target);
  EndChange(s);
  if (free_slot == high) high_.store(high + 1, std::memory_order_release);
  count_.fetch_add(1, std::memory_order_release);
  return vb::Ok();
}

void TrapMap::ClearSlotLocked(int i) {
  Slot& s = slots_[i];
  BeginChange(s);
  WaitForUsers(s);
  s.end.store(0, std::memory_order_relaxed);
  s.begin.store(0, std::memory_order_relaxed);
  s.target.store(nullptr, std::memory_order_relaxed);
  EndChange(s);
  count_.fetch_sub(1, std::memory_order_release);
}

uint64_t TrapMap::Remove(uint64_t begin, uint64_t length) {
  if (empty() || length == 0) return 0;
  const uint64_t rend = begin + length < begin ? UINT64_MAX : begin + length;
  std::vector<std::shared_ptr<MmioTarget>> dropped;  // released after the lock: a target's
                                                    // destructor may release a device file
  uint64_t removed = 0;
  {
    vb::MutexLock l(mu_);
    const int high = high_.load(std::memory_order_relaxed);
    for (int i = 0; i < high; ++i) {
      Slot& s = slots_[i];
      const uint64_t e = s.end.load(std::memory_order_relaxed);
      const uint64_t b = s.begin.load(std::memory_order_relaxed);
      if (e == 0 || e <= begin || b >= rend) continue;
      const uint64_t cut_b = std::max(b, begin), cut_e = std::min(e, rend);
      removed += cut_e - cut_b;
      const uint64_t off = s.region_offset.load(std::memory_order_relaxed);
      if (cut_b == b && cut_e == e) {
        std::shared_ptr<MmioTarget> owner = std::move(s.owner);
        ClearSlotLocked(i);
        dropped.push_back(std::move(owner));
        continue;
      }
      // A piece remains on the right: publish it first, so the part that stays trapped is never
      // missing from the map.
      if (cut_e < e) (void)AddLocked(cut_e, e - cut_e, s.owner, off + (cut_e - b));
      BeginChange(s);
      WaitForUsers(s);
      if (cut_b > b) {
        s.end.store(cut_b, std::memory_order_relaxed);  // the left piece stays in this slot
        EndChange(s);
      } else {
        std::shared_ptr<MmioTarget> owner = std::move(s.owner);
        s.end.store(0, std::memory_order_relaxed);
        s.target.store(nullptr, std::memory_order_relaxed);
        EndChange(s);
        count_.fetch_sub(1, std::memory_order_release);
        dropped.push_back(std::move(owner));
      }
    }
  }
  return removed;
}

std::shared_ptr<MmioTarget> TrapMap::TargetOf(uint64_t addr, uint64_t* region_offset) const {
  vb::MutexLock l(mu_);
  const int high = high_.load(std::memory_order_relaxed);
  for (int i = 0; i < high; ++i) {
    const Slot& s = slots_[i];
    const uint64_t e = s.end.load(std::memory_order_relaxed);
    const uint64_t b = s.begin.load(std::memory_order_relaxed);
    if (e != 0 && addr >= b && addr < e) {
      if (region_offset) *region_offset = s.region_offset.load(std::memory_order_relaxed) + (addr - b);
      return s.owner;
    }
  }
  return nullptr;
}

}  // namespace faults
