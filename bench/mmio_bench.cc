// Mapped-register benchmarks (issue 12): a trapped 4-byte read and write of an edu register
// through a BAR mapping, beside a bare fault round trip (a SIGSEGV handler that only skips the
// instruction: the floor any trap-and-emulate pays) and a pread of the same register through the
// device fd (target: trapped access <= 1.5x the bare round trip). And a plain-memory BAR page (the
// test endpoint's memfd BAR0) against ordinary memory (target: within 10 %).
//
// Ratios are counters computed from figures taken in the same benchmark function.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "faults/fault_dispatcher.h"
#include "topology/system.h"
#include "uapi/fd_table.h"
#include "uapi/node_table.h"

namespace {

using Clock = std::chrono::steady_clock;

// The default machine, edu (01:00.0) and test endpoint (07:00.0) opened through the UAPI, edu BAR0
// and endpoint BAR0 mapped.
struct Rig {
  std::unique_ptr<topology::System> sys;
  std::unique_ptr<uapi::VfioNodeTable> nodes;
  int edu = -1, ep = -1;
  volatile uint32_t* edu_bar = nullptr;
  uint8_t* ep_bar0 = nullptr;

  Rig() {
    faults::FaultDispatcher::Install();
    std::string err;
    sys = topology::System::Create(topology::DefaultTopology(), &err);
    nodes = std::make_unique<uapi::VfioNodeTable>(sys->vfio());
    edu = OpenDevice("0000:01:00.0");
    ep = OpenDevice("0000:07:00.0");
    int e = 0;
    edu_bar = static_cast<volatile uint32_t*>(Obj(edu)->Mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0, &e));
    ep_bar0 = static_cast<uint8_t*>(Obj(ep)->Mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0, &e));
  }
  static std::shared_ptr<uapi::FileObject> Obj(int fd) { return uapi::FdTable::Global().Lookup(fd).object; }
  int Open(const std::string& path) {
    int e = 0;
    return uapi::FdTable::Global().Install(nodes->Open(path, O_RDWR, &e), O_CLOEXEC);
  }
  int OpenDevice(const std::string& name) {
    auto* dev = sys->machine().FindDevice(name).get();
    const int c = Open("/dev/vfio/vfio");
    const int g = Open("/dev/vfio/" + std::to_string(sys->iommu_core().GroupOf(*dev)->id()));
    Obj(g)->Ioctl(VFIO_GROUP_SET_CONTAINER, reinterpret_cast<unsigned long>(&c));
    Obj(c)->Ioctl(VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    return static_cast<int>(Obj(g)->Ioctl(VFIO_GROUP_GET_DEVICE_FD, reinterpret_cast<unsigned long>(name.c_str())));
  }
};
Rig& TheRig() {
  static Rig* r = new Rig();
  return *r;
}

// ---- the bare round trip: fault, a handler that skips the 2-byte `mov (%rdi),%eax`, resume ----

void SkipTwoBytes(int, siginfo_t*, void* ctx) { static_cast<ucontext_t*>(ctx)->uc_mcontext.gregs[REG_RIP] += 2; }

__attribute__((noinline)) uint32_t LoadFrom(const void* p) {
  uint32_t v;
  asm volatile("mov (%1), %0" : "=a"(v) : "D"(p) : "memory");  // 8b 07: two bytes
  return v;
}

// ns per bare fault round trip, measured with the process's dispatcher set aside.
double BareRoundTripNs() {
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct sigaction act {}, old {};
  act.sa_sigaction = &SkipTwoBytes;
  act.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  sigaction(SIGSEGV, &act, &old);
  constexpr int kN = 20000;
  double best = 1e300;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    for (int i = 0; i < kN; ++i) benchmark::DoNotOptimize(LoadFrom(page));
    best = std::min(best, std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kN);
  }
  sigaction(SIGSEGV, &old, nullptr);
  munmap(page, 4096);
  return best;
}

void BM_Mmio_BareFaultRoundTrip(benchmark::State& state) {
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct sigaction act {}, old {};
  act.sa_sigaction = &SkipTwoBytes;
  act.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  sigaction(SIGSEGV, &act, &old);
  for (auto _ : state) benchmark::DoNotOptimize(LoadFrom(page));
  sigaction(SIGSEGV, &old, nullptr);
  munmap(page, 4096);
}
BENCHMARK(BM_Mmio_BareFaultRoundTrip);

void BM_Mmio_TrappedRead4(benchmark::State& state) {
  Rig& r = TheRig();
  const double bare = BareRoundTripNs();
  auto t0 = Clock::now();
  int64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(r.edu_bar[0]);  // edu identification register
    ++n;
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / std::max<int64_t>(n, 1);
  state.counters["bare_round_trip_ns"] = bare;
  state.counters["ratio_vs_bare"] = ns / bare;
}
BENCHMARK(BM_Mmio_TrappedRead4);

void BM_Mmio_TrappedWrite4(benchmark::State& state) {
  Rig& r = TheRig();
  const double bare = BareRoundTripNs();
  auto t0 = Clock::now();
  int64_t n = 0;
  for (auto _ : state) {
    r.edu_bar[1] = static_cast<uint32_t>(n);  // edu liveness register
    ++n;
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / std::max<int64_t>(n, 1);
  state.counters["bare_round_trip_ns"] = bare;
  state.counters["ratio_vs_bare"] = ns / bare;
}
BENCHMARK(BM_Mmio_TrappedWrite4);

void BM_Mmio_PreadRegister4(benchmark::State& state) {
  Rig& r = TheRig();
  auto obj = Rig::Obj(r.edu);
  uint32_t v = 0;
  for (auto _ : state) {
    obj->Pread(&v, 4, 0);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_Mmio_PreadRegister4);

// 4 KiB written then read through the test endpoint's plain-memory BAR0 mapping, against the same
// on an ordinary page.
void BM_Mmio_PlainBarPage4K(benchmark::State& state) {
  Rig& r = TheRig();
  alignas(64) static uint8_t src[4096], dst[4096];
  auto* ordinary = static_cast<uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto pass = [&](uint8_t* page) {
    std::memcpy(page, src, 4096);
    benchmark::ClobberMemory();
    std::memcpy(dst, page, 4096);
    benchmark::ClobberMemory();
  };
  double base = 1e300;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    for (int i = 0; i < 20000; ++i) pass(ordinary);
    base = std::min(base, std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / 20000);
  }
  auto t0 = Clock::now();
  int64_t n = 0;
  for (auto _ : state) {
    pass(r.ep_bar0);
    ++n;
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / std::max<int64_t>(n, 1);
  state.counters["ordinary_ns"] = base;
  state.counters["ratio_vs_ordinary"] = ns / base;
  munmap(ordinary, 4096);
}
BENCHMARK(BM_Mmio_PlainBarPage4K);

}  // namespace
