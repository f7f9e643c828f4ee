#include "base/mutex.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>

namespace vb {

const char* LockRankName(LockRank rank) {
  switch (rank) {
    case LockRank::kPreloadRegenerate: return "preload-regenerate";
    case LockRank::kVfioGroupRegistry: return "vfio-group-registry";
    case LockRank::kVfioGroup: return "vfio-group";
    case LockRank::kVfioDeviceSet: return "vfio-device-set";
    case LockRank::kVfioPciDevSet: return "vfio-pci-dev-set";
    case LockRank::kVfioContainer: return "vfio-container";
    case LockRank::kVfioDeviceList: return "vfio-device-list";
    case LockRank::kPinnedPages: return "type1-pinned-pages";
    case LockRank::kBackend: return "backend";
    case LockRank::kBackendDeviceList: return "backend-device-list";
    case LockRank::kHwBus: return "hw-bus";
    case LockRank::kIommuRegistry: return "iommu-registry";
    case LockRank::kIommuGroup: return "iommu-group";
    case LockRank::kDomain: return "domain";
    case LockRank::kDeviceDriver: return "device-driver";
    case LockRank::kDeviceState: return "device-state";
    case LockRank::kIrq: return "irq";
    case LockRank::kFaultLog: return "fault-log";
    case LockRank::kExecutor: return "executor";
    case LockRank::kEpochRegistry: return "epoch-registry";
    case LockRank::kFdTable: return "fd-table";
    case LockRank::kLeaf: return "leaf";
  }
  return "?";
}

namespace lock_order {
namespace {
constexpr int kMaxHeld = 32;
struct Held {
  LockRank rank;
  const void* lock;
};
thread_local Held t_held[kMaxHeld];
thread_local int t_count = 0;
}  // namespace

void OnAcquire(LockRank rank, const void* lock) {
  for (int i = 0; i < t_count; ++i) {
    if (t_held[i].rank >= rank) {
      std::fprintf(stderr, "vfiobox: lock order violation: taking %s (%d) while holding %s (%d)\n",
                   LockRankName(rank), static_cast<int>(rank), LockRankName(t_held[i].rank),
                   static_cast<int>(t_held[i].rank));
      std::abort();
    }
  }
  if (t_count == kMaxHeld) {
    std::fprintf(stderr, "vfiobox: more than %d locks held\n", kMaxHeld);
    std::abort();
  }
  t_held[t_count++] = Held{rank, lock};
}

void OnRelease(LockRank rank, const void* lock) {
  for (int i = t_count - 1; i >= 0; --i) {
    if (t_held[i].lock == lock) {
      for (int j = i; j + 1 < t_count; ++j) t_held[j] = t_held[j + 1];
      --t_count;
      return;
    }
  }
  std::fprintf(stderr, "vfiobox: releasing %s that this thread does not hold\n", LockRankName(rank));
  std::abort();
}

int HeldCount() { return t_count; }

}  // namespace lock_order

void CondVar::Wait(Mutex& mu) {
  std::unique_lock<std::mutex> lk(mu.native(), std::adopt_lock);
  cv_.wait(lk);
  lk.release();
}

bool CondVar::WaitFor(Mutex& mu, int64_t timeout_ns) {
  std::unique_lock<std::mutex> lk(mu.native(), std::adopt_lock);
  auto st = cv_.wait_for(lk, std::chrono::nanoseconds(timeout_ns));
  lk.release();
  return st == std::cv_status::no_timeout;
}

}  // namespace vb
