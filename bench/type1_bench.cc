// Benchmarks of the type1 backend through its C++ API (issue 3 targets), each beside a baseline
// measured in the same benchmark function (counters), so a ratio compares figures taken on the same
// machine state:
//   BM_Type1MapUnmap4K        4 KiB MAP_DMA + UNMAP_DMA pair (<= 0.3 us); baseline: the bare
//                             IoPageTable Map+Unmap pair, and one syscall (getppid).
//   BM_Type1Map1GiB           one MAP_DMA of 1 GiB (>= 100 GB/s, cost by extent); baseline: the
//                             bare IoPageTable Map+Unmap of the same range.
//   BM_Type1MapUnmapAtCount   the pair at 1, 1,000 and 65,535 existing mappings (flat within
//                             1.5x); baseline: the pair at 0 existing mappings, same run.
//   BM_Type1UnmapAll          UNMAP ALL of 65,535 mappings (<= 5 ms); baseline: freeing 65,535
//                             std::map nodes.
//   BM_Type1AttachDetach      group attach + detach (<= 20 us), /0 on the backend, /1 through the
//                             VFIO core (SetContainer + SetIommu + UnsetContainer); baseline: the
//                             IOMMU core's share (AllocDomain + AttachDomain + DetachDomain).
// Mode argument: 0 = the exact user-pointer checks (default: madvise / /proc/self/maps and
// getrlimit per MAP), 1 = the opt-in caches (UserMemory::SetVmaCache, LockedMemory::SetLimitCache;
// docs/design/0007-user-pointer-checks.md).
//
// The process raises RLIMIT_MEMLOCK as far as it may (to infinity with CAP_SYS_RESOURCE; else to
// the hard limit). Past the limit a charge needs CAP_IPC_LOCK (root): without either, the 1 GiB and
// 65,535-mapping benchmarks fail with ENOMEM.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hw/driver.h"
#include "hw/machine.h"
#include "iommu/io_page_table.h"
#include "iommu/iommu.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"
#include "vfio/basic_driver.h"
#include "vfio/container.h"
#include "vfio/group_file.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/type1_iommu.h"
#include "vfio/type1/user_memory.h"
#include "vfio/vfio.h"

namespace {

using vfio::type1::Iommu;
using vfio::type1::kMapFlagRead;
using vfio::type1::kMapFlagWrite;
using vfio::type1::kUnmapFlagAll;
using vfio::type1::MapRequest;
using vfio::type1::UnmapRequest;

constexpr uint64_t k4K = 4096;
constexpr uint64_t k1G = 1ull << 30;
constexpr uint64_t kIovaBase = 1ull << 32;  // above the x86 MSI window, inside the aperture

// The counters use the calling thread's CPU time, like the benchmark's CPU column: the dev VM's 2
// vCPUs are shared with builds, and wall time there measures the neighbours as much as the code.
struct Clock {
  using time_point = double;
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  }
};
double NsSince(Clock::time_point t0) { return Clock::now() - t0; }

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "type1_bench: %s\n", what);
  std::abort();
}

void RaiseMemlock() {
  static const bool done = [] {
    rlimit rl{RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
      // Not root: take what the hard limit allows (the 1 GiB benchmark then needs CAP_IPC_LOCK).
      getrlimit(RLIMIT_MEMLOCK, &rl);
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_MEMLOCK, &rl);
    }
    return true;
  }();
  (void)done;
}

// Mode 1 turns both caches on for the benchmark's lifetime.
class ScopedMode {
 public:
  explicit ScopedMode(int64_t mode) : cached_(mode == 1) {
    RaiseMemlock();
    vfio::type1::UserMemory::SetVmaCache(cached_);
    vfio::type1::LockedMemory::SetLimitCache(cached_);
  }
  ~ScopedMode() {
    vfio::type1::UserMemory::SetVmaCache(false);
    vfio::type1::LockedMemory::SetLimitCache(false);
  }
  const char* label() const { return cached_ ? "cached checks" : "exact checks"; }

 private:
  bool cached_;
};

// Anonymous memory the benchmark owns (MAP_NORESERVE: large sizes are never touched).
struct Buffer {
  explicit Buffer(uint64_t n) : size(n) {
    p = static_cast<uint8_t*>(
        mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (p == MAP_FAILED) Die("mmap");
  }
  ~Buffer() { munmap(p, size); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint64_t addr() const { return reinterpret_cast<uint64_t>(p); }
  uint8_t* p;
  uint64_t size;
};

// The machine of the VFIO tests, without gtest: two root ports, endpoint 01:00.0 (group A) and
// endpoint 02:00.0 (group B), both bound to the VFIO driver, one x86-like IOMMU.
class Env {
 public:
  Env() {
    if (!machine.SetHooks(&core).has_value()) Die("SetHooks");
    using iommu::testtopo::Endpoint;
    using iommu::testtopo::RootPort;
    Plug("00:01.0", RootPort(1).Acs(), &pcieport);
    Plug("01:00.0", Endpoint(), &vfio_driver);
    Plug("00:02.0", RootPort(2).Acs(), &pcieport);
    Plug("02:00.0", Endpoint(), &vfio_driver);
    vfio.RegisterBackend(type1);
  }
  ~Env() {
    for (auto& d : machine.Devices()) (void)machine.RemoveDevice(*d);
    (void)machine.SetHooks(nullptr);
  }
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  hw::Device& Dev(const std::string& bdf) { return *machine.FindDevice("0000:" + bdf); }
  int GroupIdOf(const std::string& bdf) { return core.GroupOf(Dev(bdf))->id(); }

  // A fresh type1 v2 container with the group of `bdf` attached.
  struct Attached {
    vb::RefPtr<vfio::Container> container;
    vb::RefPtr<vfio::GroupFile> group;
    Iommu* backend = nullptr;
  };
  Attached AttachNew(const std::string& bdf) {
    Attached a;
    a.container = vfio.OpenContainer();
    auto g = vfio.OpenGroup(GroupIdOf(bdf));
    if (!g.has_value()) Die("OpenGroup");
    a.group = *g;
    if (!a.group->SetContainer(a.container).has_value()) Die("SetContainer");
    if (!a.container->SetIommu(vfio::type1::kExtType1v2).has_value()) Die("SetIommu");
    (void)a.container->WithBackendAs<Iommu>([&](Iommu& b) -> vb::Result<void> {
      a.backend = &b;
      return vb::Ok();
    });
    if (!a.backend) Die("backend");
    return a;
  }

  hw::Machine machine;
  iommu::IommuCore core;
  vfio::Vfio vfio{core};
  vfio::type1::Type1Backend type1;
  vfio::BasicDriver vfio_driver{vfio};
  hw::StubDriver pcieport{"pcieport", true};

 private:
  void Plug(const std::string& bdf, const iommu::testtopo::Fn& fn, hw::Driver* driver) {
    auto dev = iommu::testtopo::MakePci(bdf, fn);
    if (!machine.AddPciDevice(dev).has_value()) Die("AddPciDevice");
    if (driver && !machine.BindDriver(*dev, *driver).has_value()) Die("BindDriver");
  }
};

MapRequest Map4K(uint64_t iova, uint64_t vaddr) {
  return MapRequest{kMapFlagRead | kMapFlagWrite, vaddr, iova, k4K};
}

void MapOrDie(Iommu& b, const MapRequest& req) {
  if (!b.MapDma(req).has_value()) Die("MapDma");
}

// ns per 4 KiB pair on `b` at `iova` (best of 3 rounds of n pairs).
double PairNs(Iommu& b, uint64_t iova, uint64_t vaddr, int n) {
  double best = 1e300;
  for (int round = 0; round < 3; ++round) {
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      MapOrDie(b, Map4K(iova, vaddr));
      auto r = b.UnmapDma(UnmapRequest{0, iova, k4K});
      benchmark::DoNotOptimize(r);
    }
    best = std::min(best, NsSince(t0) / n);
  }
  return best;
}

// The benchmark's own timed loop: one MAP + UNMAP pair per iteration, mean ns per pair.
double StatePairNs(benchmark::State& state, Iommu& b, const MapRequest& map, const UnmapRequest& unmap) {
  auto t0 = Clock::now();
  for (auto _ : state) {
    auto m = b.MapDma(map);
    benchmark::DoNotOptimize(m);
    auto u = b.UnmapDma(unmap);
    benchmark::DoNotOptimize(u);
  }
  return NsSince(t0) / static_cast<double>(state.iterations());
}

// The bare page-table pair (what the backend's pair must at least pay), best of 3.
double IoptPairNs(int n) {
  iommu::IoPageTable t;
  double best = 1e300;
  for (int round = 0; round < 3; ++round) {
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      auto m = t.Map(kIovaBase, 0x7000'0000'0000ull, k4K, iommu::kProtRead | iommu::kProtWrite);
      benchmark::DoNotOptimize(m);
      auto u = t.Unmap(kIovaBase, k4K);
      benchmark::DoNotOptimize(u);
    }
    best = std::min(best, NsSince(t0) / n);
  }
  return best;
}

double SyscallNs() {
  static const double ns = [] {
    double best = 1e300;
    for (int round = 0; round < 3; ++round) {
      auto t0 = Clock::now();
      for (int i = 0; i < 20000; ++i) benchmark::DoNotOptimize(syscall(SYS_getppid));
      best = std::min(best, NsSince(t0) / 20000);
    }
    return best;
  }();
  return ns;
}

// ---- 1. 4 KiB MAP + UNMAP pair ----

void BM_Type1MapUnmap4K(benchmark::State& state) {
  ScopedMode mode(state.range(0));
  Env env;
  auto a = env.AttachNew("01:00.0");
  Buffer buf(k4K);
  const MapRequest map = Map4K(kIovaBase, buf.addr());
  const UnmapRequest unmap{0, kIovaBase, k4K};
  const double pair_ns = StatePairNs(state, *a.backend, map, unmap);
  const double iopt_ns = IoptPairNs(20000);
  state.counters["pair_ns"] = pair_ns;
  state.counters["iopt_pair_ns"] = iopt_ns;
  state.counters["ratio_vs_iopt"] = pair_ns / iopt_ns;
  state.counters["syscall_ns"] = SyscallNs();
  state.SetLabel(mode.label());
}
BENCHMARK(BM_Type1MapUnmap4K)->Arg(0)->Arg(1);

// ---- 2. one MAP_DMA of 1 GiB ----

// range(0): mode; range(1): 1 = the host buffer is 4 KiB- but not 2 MiB-aligned (4 KiB leaves,
// 262,144 of them), 0 = 2 MiB-aligned (2 MiB leaves).
void BM_Type1Map1GiB(benchmark::State& state) {
  ScopedMode mode(state.range(0));
  const bool leaves_4k = state.range(1) == 1;
  Env env;
  auto a = env.AttachNew("01:00.0");
  Buffer raw(k1G + (4ull << 20));
  const uint64_t aligned = (raw.addr() + (2ull << 20) - 1) & ~((2ull << 20) - 1);
  const uint64_t vaddr = leaves_4k ? aligned + k4K : aligned;
  const MapRequest map{kMapFlagRead | kMapFlagWrite, vaddr, kIovaBase, k1G};
  const UnmapRequest unmap{0, kIovaBase, k1G};
  double map_ns = 0, unmap_ns = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto m = a.backend->MapDma(map);
    map_ns += NsSince(t0);
    if (!m.has_value()) Die("MapDma 1 GiB");
    t0 = Clock::now();
    auto u = a.backend->UnmapDma(unmap);
    unmap_ns += NsSince(t0);
    if (!u.has_value() || *u != k1G) Die("UnmapDma 1 GiB");
  }
  const double n = static_cast<double>(state.iterations());
  // Baseline: the page table alone, same range, same leaves.
  double iopt_map_ns = 1e300, iopt_unmap_ns = 1e300;
  {
    iommu::IoPageTable t;
    for (int round = 0; round < 3; ++round) {
      auto t0 = Clock::now();
      (void)t.Map(kIovaBase, vaddr, k1G, iommu::kProtRead | iommu::kProtWrite);
      iopt_map_ns = std::min(iopt_map_ns, NsSince(t0));
      t0 = Clock::now();
      (void)t.Unmap(kIovaBase, k1G);
      iopt_unmap_ns = std::min(iopt_unmap_ns, NsSince(t0));
    }
  }
  state.counters["map_GBps"] = static_cast<double>(k1G) * n / map_ns;
  state.counters["unmap_GBps"] = static_cast<double>(k1G) * n / unmap_ns;
  state.counters["map_us"] = map_ns / n / 1e3;
  state.counters["unmap_us"] = unmap_ns / n / 1e3;
  state.counters["iopt_map_us"] = iopt_map_ns / 1e3;
  state.counters["iopt_unmap_us"] = iopt_unmap_ns / 1e3;
  state.counters["ratio_vs_iopt"] = (map_ns + unmap_ns) / n / (iopt_map_ns + iopt_unmap_ns);
  state.SetLabel(std::string(mode.label()) + (leaves_4k ? ", 4K leaves" : ", 2M leaves"));
}
BENCHMARK(BM_Type1Map1GiB)->Args({0, 1})->Args({1, 1})->Args({0, 0})->Args({1, 0})->Unit(benchmark::kMicrosecond);

// ---- 3. the pair at 1, 1,000 and 65,535 existing mappings ----

// range(0): mode; range(1): existing mappings. The entry limit (a module parameter) is raised by
// one so 65,535 existing mappings leave room for the measured one.
void BM_Type1MapUnmapAtCount(benchmark::State& state) {
  ScopedMode mode(state.range(0));
  const int64_t existing = state.range(1);
  // Every level (and the baseline) runs with the same locked total, so the comparison isolates
  // the mapping count: 65,535 pages pre-charged to the containers' account. On the dev VM that is
  // past the 8 MiB RLIMIT_MEMLOCK (the hard limit cannot be raised there: no CAP_SYS_RESOURCE),
  // so every charge takes the CAP_IPC_LOCK path (exact mode: getrlimit + capget).
  vfio::type1::LockedMemory account;
  (void)account.Charge(vfio::type1::kDefaultDmaEntryLimit * k4K);
  Env env;
  env.type1.options().dma_entry_limit = vfio::type1::kDefaultDmaEntryLimit + 1;
  env.type1.options().account = &account;
  Buffer buf(k4K);
  // Baseline in the same run: the pair in an empty container of the same kind.
  double empty_ns;
  {
    auto e = env.AttachNew("02:00.0");
    empty_ns = PairNs(*e.backend, kIovaBase, buf.addr(), 20000);
  }
  auto a = env.AttachNew("01:00.0");
  // Existing mappings every other page; the measured page is the hole in the middle.
  for (int64_t i = 0; i < existing; ++i) MapOrDie(*a.backend, Map4K(kIovaBase + uint64_t(2 * i) * k4K, buf.addr()));
  const uint64_t iova = kIovaBase + uint64_t(2 * (existing / 2) + 1) * k4K;
  const MapRequest map = Map4K(iova, buf.addr());
  const UnmapRequest unmap{0, iova, k4K};
  const double pair_ns = StatePairNs(state, *a.backend, map, unmap);
  state.counters["pair_ns"] = pair_ns;
  state.counters["empty_pair_ns"] = empty_ns;
  state.counters["ratio_vs_empty"] = pair_ns / empty_ns;
  state.SetLabel(mode.label());
  (void)a.backend->UnmapDma(UnmapRequest{kUnmapFlagAll, 0, 0});
}
BENCHMARK(BM_Type1MapUnmapAtCount)
    ->Args({0, 1})->Args({0, 1000})->Args({0, 65535})
    ->Args({1, 1})->Args({1, 1000})->Args({1, 65535});

// ---- 4. UNMAP ALL of 65,535 mappings ----

void BM_Type1UnmapAll(benchmark::State& state) {
  ScopedMode mode(state.range(0));
  constexpr int kCount = 65535;
  Env env;
  auto a = env.AttachNew("01:00.0");
  Buffer buf(k4K);
  double unmap_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int i = 0; i < kCount; ++i) MapOrDie(*a.backend, Map4K(kIovaBase + uint64_t(2 * i) * k4K, buf.addr()));
    state.ResumeTiming();
    auto t0 = Clock::now();
    auto u = a.backend->UnmapDma(UnmapRequest{kUnmapFlagAll, 0, 0});
    unmap_ns += NsSince(t0);
    if (!u.has_value() || *u != kCount * k4K) Die("UNMAP ALL");
  }
  // Baseline: freeing as many ordered-map nodes (the floor of dropping 65,535 records).
  double free_ns = 1e300;
  for (int round = 0; round < 3; ++round) {
    std::map<uint64_t, vfio::type1::Dma> m;
    for (int i = 0; i < kCount; ++i) m.emplace(uint64_t(i) * k4K, vfio::type1::Dma{});
    auto t0 = Clock::now();
    m.clear();
    free_ns = std::min(free_ns, NsSince(t0));
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["unmap_all_ms"] = unmap_ns / n / 1e6;
  state.counters["map_free_ms"] = free_ns / 1e6;
  state.counters["ratio_vs_map_free"] = unmap_ns / n / free_ns;
  state.SetLabel(mode.label());
}
// Each iteration first re-creates the 65,535 mappings (untimed, up to 0.5 s): a fixed count.
BENCHMARK(BM_Type1UnmapAll)->Arg(0)->Arg(1)->Iterations(5)->Unit(benchmark::kMillisecond);

// ---- 5. group attach + detach ----

// range(0): 0 = Iommu::AttachGroup + DetachGroup on an open backend instance (the group's DMA
// ownership claimed once, as SetContainer does); 1 = GroupFile::SetContainer + Container::SetIommu
// + GroupFile::UnsetContainer (the whole VFIO core path, including backend open and release).
void BM_Type1AttachDetach(benchmark::State& state) {
  const bool full = state.range(0) == 1;
  Env env;
  vb::RefPtr<iommu::Group> group = env.core.GroupOf(env.Dev("01:00.0"));
  iommu::Iommu& instance = *env.core.IommuOf(env.Dev("01:00.0"));
  double op_ns = 0;
  if (full) {
    auto g = env.vfio.OpenGroup(group->id());
    if (!g.has_value()) Die("OpenGroup");
    auto t0 = Clock::now();
    for (auto _ : state) {
      auto c = env.vfio.OpenContainer();
      if (!(*g)->SetContainer(c).has_value()) Die("SetContainer");
      if (!c->SetIommu(vfio::type1::kExtType1v2).has_value()) Die("SetIommu");
      if (!(*g)->UnsetContainer().has_value()) Die("UnsetContainer");
    }
    op_ns = NsSince(t0);
  } else {
    static const int owner = 0;
    if (!group->ClaimDmaOwner(&owner).has_value()) Die("ClaimDmaOwner");
    auto inst = env.type1.Open(vfio::type1::kExtType1v2);
    if (!inst.has_value()) Die("Open");
    auto t0 = Clock::now();
    for (auto _ : state) {
      if (!(*inst)->AttachGroup(*group, vfio::GroupType::kIommu).has_value()) Die("AttachGroup");
      (*inst)->DetachGroup(*group);
    }
    op_ns = NsSince(t0);
    inst->reset();
    group->ReleaseDmaOwner(&owner);
  }
  // Baseline: the IOMMU core's share — a paging domain allocated, attached, detached, freed.
  static const int owner2 = 0;
  if (!group->ClaimDmaOwner(&owner2).has_value()) Die("ClaimDmaOwner (baseline)");
  double core_ns = 1e300;
  for (int round = 0; round < 3; ++round) {
    constexpr int kN = 2000;
    auto t0 = Clock::now();
    for (int i = 0; i < kN; ++i) {
      auto d = instance.AllocDomain(iommu::DomainType::kPaging);
      if (!d.has_value()) Die("AllocDomain");
      if (!group->AttachDomain(**d).has_value()) Die("AttachDomain");
      (void)group->DetachDomain(**d);
    }
    core_ns = std::min(core_ns, NsSince(t0) / kN);
  }
  group->ReleaseDmaOwner(&owner2);
  const double per = op_ns / static_cast<double>(state.iterations());
  state.counters["attach_detach_us"] = per / 1e3;
  state.counters["core_domain_us"] = core_ns / 1e3;
  state.counters["ratio_vs_core"] = per / core_ns;
  state.SetLabel(full ? "SetContainer+SetIommu+UnsetContainer" : "AttachGroup+DetachGroup");
}
BENCHMARK(BM_Type1AttachDetach)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
