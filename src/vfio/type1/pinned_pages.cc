#include "vfio/type1/pinned_pages.h"

#include <linux/mman.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/checked.h"
#include "base/epoch.h"
#include "base/mutex.h"
#include "vfio/type1/type1_iommu.h"
#include "vfio/type1/user_memory.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

namespace vfio::type1 {
namespace {

constexpr uint64_t k1G = 1ull << 30;

vb::Mutex& Mu() {
  static vb::Mutex* mu = new vb::Mutex(vb::LockRank::kPinnedPages);  // guards Instances()
  return *mu;
}
std::vector<Iommu*>& Instances() {
  static auto* v = new std::vector<Iommu*>();
  return *v;
}

void* RawMmap(void* addr, uint64_t len, int prot, int flags) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, -1, 0));
}
bool Failed(void* p) { return reinterpret_cast<intptr_t>(p) < 0 && reinterpret_cast<intptr_t>(p) > -4096; }

// Aside memory: [base, base + len), unmapped when the last record using it goes.
struct Aside {
  uint64_t base, len;
  ~Aside() { syscall(SYS_munmap, base, len); }
};

// An address range of `len` bytes congruent to `h` modulo 1 GiB, so that large IO page-table
// leaves stay aligned when their pages move there. 0 on failure.
uint64_t ReserveLike(uint64_t h, uint64_t len) {
  void* p = RawMmap(nullptr, len + k1G, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  if (Failed(p)) return 0;
  const uint64_t base = reinterpret_cast<uint64_t>(p);
  const uint64_t at = base + ((h - base) & (k1G - 1));
  if (at > base) syscall(SYS_munmap, base, at - base);
  if (base + len + k1G > at + len) syscall(SYS_munmap, at + len, base + len + k1G - (at + len));
  return at;
}

// Sorted, merged union of the runs.
std::vector<vb::Interval> Merge(std::vector<vb::Interval> runs) {
  std::sort(runs.begin(), runs.end(), [](const vb::Interval& a, const vb::Interval& b) { return a.first < b.first; });
  std::vector<vb::Interval> out;
  for (const vb::Interval& r : runs) {
    if (!out.empty() && r.first <= out.back().last + 1) out.back().last = std::max(out.back().last, r.last);
    else out.push_back(r);
  }
  return out;
}

}  // namespace

std::atomic<int> PinnedPages::instances_{0};

void PinnedPages::Register(Iommu* iommu) {
  vb::MutexLock l(Mu());
  Instances().push_back(iommu);
  instances_.fetch_add(1, std::memory_order_release);
}

void PinnedPages::Unregister(Iommu* iommu) {
  vb::MutexLock l(Mu());
  std::erase(Instances(), iommu);
  instances_.fetch_sub(1, std::memory_order_release);
}

vb::Result<void> PinnedPages::KeepAlive(uint64_t addr, uint64_t len, Keep how) {
  if (!Any() || len == 0) return vb::Ok();
  const uint64_t first = vb::AlignDown(addr, uint64_t{4096});
  const auto last_or = vb::RangeLast(addr, len);
  if (!last_or.has_value()) return vb::Ok();  // the caller's call fails on its own
  const uint64_t last = *last_or | 4095;
  vb::MutexLock l(Mu());
  std::vector<vb::Interval> runs;
  for (Iommu* i : Instances()) i->CollectUserHostRuns(first, last, &runs);
  if (runs.empty()) return vb::Ok();
  vb::Result<void> result = vb::Ok();
  for (const vb::Interval& run : Merge(std::move(runs))) {
    const uint64_t n = run.last - run.first + 1;
    const uint64_t at = ReserveLike(run.first, n);
    if (at == 0) {
      result = vb::Err(ENOMEM, "pinned pages: no address space for aside memory");
      continue;
    }
    auto aside = std::make_shared<Aside>(Aside{at, n});
    bool moved = false;
    if (how == Keep::kMove) {
      moved = syscall(SYS_mremap, run.first, n, n, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, at) ==
              static_cast<long>(at);
    }
    if (!moved) {
      void* p = RawMmap(reinterpret_cast<void*>(at), n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
      if (Failed(p)) {
        result = vb::Err(ENOMEM, "pinned pages: aside memory");
        continue;
      }
      // The range may hold unreadable parts (PROT_NONE, already unmapped): copy without faulting.
      (void)UserMemory::CopyFromUser(reinterpret_cast<void*>(at), run.first, n);
    }
    for (Iommu* i : Instances()) {
      if (auto r = i->RetargetHost(run.first, n, at, aside); !r.has_value()) result = r;
    }
  }
  // No DMA still uses a translation to the old pages once this returns.
  vb::Epoch::Synchronize();
  return result;
}

void PinnedPages::Moved(uint64_t old_addr, uint64_t len, uint64_t new_addr) {
  if (!Any() || len == 0 || old_addr == new_addr) return;
  vb::MutexLock l(Mu());
  for (Iommu* i : Instances()) (void)i->RetargetHost(old_addr, len, new_addr, nullptr);
  vb::Epoch::Synchronize();
}

}  // namespace vfio::type1
