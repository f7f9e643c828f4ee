#include "base/epoch.h"

#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "base/mutex.h"

namespace vb {
namespace {

struct alignas(64) Slot {
  // 0: quiescent; otherwise the global epoch observed when the section began.
  std::atomic<uint64_t> entered{0};
  std::atomic<bool> in_use{false};
};

Slot g_slots[Epoch::kMaxThreads];
std::atomic<int> g_high_water{0};     // slots [0, high_water) may be in use
std::atomic<uint64_t> g_epoch{1};
Mutex g_registry_mu(LockRank::kEpochRegistry);  // guards slot claiming and release

struct ThreadSlot {
  Slot* slot = nullptr;
  int depth = 0;
  ~ThreadSlot() {
    if (slot) {
      slot->entered.store(0, std::memory_order_release);
      MutexLock l(g_registry_mu);
      slot->in_use.store(false, std::memory_order_release);
    }
  }
};
thread_local ThreadSlot t_slot;

Slot* ClaimSlot() {
  MutexLock l(g_registry_mu);
  for (int i = 0; i < Epoch::kMaxThreads; ++i) {
    if (!g_slots[i].in_use.load(std::memory_order_relaxed)) {
      g_slots[i].in_use.store(true, std::memory_order_relaxed);
      if (i + 1 > g_high_water.load(std::memory_order_relaxed))
        g_high_water.store(i + 1, std::memory_order_release);
      return &g_slots[i];
    }
  }
  std::fprintf(stderr, "vfiobox: more than %d threads doing DMA\n", Epoch::kMaxThreads);
  std::abort();
}

}  // namespace

void Epoch::EnterRead() {
  ThreadSlot& ts = t_slot;
  if (ts.depth++ != 0) return;
  if (!ts.slot) [[unlikely]]
    ts.slot = ClaimSlot();
  // The fence pairs with the one in Synchronize() (store-buffering): either the writer's scan sees
  // this slot, or this section's later loads see every store the writer made before it. A seq_cst
  // store alone does not order the acquire (possibly RCpc) loads that follow it.
  ts.slot->entered.store(g_epoch.load(std::memory_order_acquire), std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void Epoch::ExitRead() {
  ThreadSlot& ts = t_slot;
  if (--ts.depth != 0) return;
  ts.slot->entered.store(0, std::memory_order_release);
}

void Epoch::Synchronize() {
  const uint64_t target = g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with EnterRead's fence
  const Slot* self = t_slot.slot;
  const int n = g_high_water.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    const Slot* s = &g_slots[i];
    if (s == self) continue;
    for (int spins = 0;; ++spins) {
      uint64_t e = s->entered.load(std::memory_order_acquire);
      if (e == 0 || e >= target) break;
      if (spins > 64) sched_yield();
    }
  }
}

int Epoch::ActiveReadersForTest() {
  int n = 0;
  const int hw = g_high_water.load(std::memory_order_acquire);
  for (int i = 0; i < hw; ++i)
    if (g_slots[i].entered.load(std::memory_order_acquire) != 0) ++n;
  return n;
}

}  // namespace vb
