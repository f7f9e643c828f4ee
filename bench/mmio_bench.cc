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

#include "uapi_machine.h"
#include "faults/fault_dispatcher.h"

namespace {

using Clock = std::chrono::steady_clock;

// The default machine, edu (01:00.0) and test endpoint (07:00.0) opened through the UAPI, edu BAR0
// and endpoint BAR0 mapped.
struct Rig {
  bench::UapiMachine m;
  int edu = m.OpenDevice("0000:01:00.0");
  int ep = m.OpenDevice("0000:07:00.0");
  volatile uint32_t* edu_bar = static_cast<volatile uint32_t*>(Map(edu));
  uint8_t* ep_bar0 = static_cast<uint8_t*>(Map(ep));

  static std::shared_ptr<uapi::FileObject> Obj(int fd) { return bench::UapiMachine::Obj(fd); }
  // The first page of BAR0.
  static void* Map(int dev) {
    int e = 0;
    void* p = Obj(dev)->Mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0, &e);
    if (!p || p == MAP_FAILED) bench::UapiMachine::Die("BAR0 mmap");
    return p;
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

// Trapped accesses against the bare round trip, interleaved in batches so that both see the same
// machine state: each iteration times kBatch bare faults (the dispatcher set aside for them) and
// kBatch trapped accesses. The benchmark's time is the trapped access's (manual time).
constexpr int kBatch = 32;

template <typename Access>
void TrappedVsBare(benchmark::State& state, Access access) {
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct sigaction bare {}, dispatcher {};
  bare.sa_sigaction = &SkipTwoBytes;
  bare.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&bare.sa_mask);
  double bare_ns = 0, trapped_ns = 0;
  const uint64_t emulated_before = faults::FaultDispatcher::emulated_count();
  for (auto _ : state) {
    sigaction(SIGSEGV, &bare, &dispatcher);
    auto t0 = Clock::now();
    for (int i = 0; i < kBatch; ++i) benchmark::DoNotOptimize(LoadFrom(page));
    auto t1 = Clock::now();
    sigaction(SIGSEGV, &dispatcher, nullptr);
    auto t2 = Clock::now();
    for (int i = 0; i < kBatch; ++i) access(i);
    auto t3 = Clock::now();
    bare_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    const double trapped = std::chrono::duration<double, std::nano>(t3 - t2).count();
    trapped_ns += trapped;
    state.SetIterationTime(trapped * 1e-9 / kBatch);
  }
  munmap(page, 4096);
  state.counters["bare_round_trip_ns"] = bare_ns / (double(state.iterations()) * kBatch);
  state.counters["ratio_vs_bare"] = trapped_ns / bare_ns;
  state.counters["traps_per_access"] =
      double(faults::FaultDispatcher::emulated_count() - emulated_before) / (double(state.iterations()) * kBatch);
}

void BM_Mmio_TrappedRead4(benchmark::State& state) {
  Rig& r = TheRig();
  TrappedVsBare(state, [&](int) {
    uint32_t v = r.edu_bar[0];  // edu identification; one volatile read (DoNotOptimize of the
    benchmark::DoNotOptimize(v);  // volatile lvalue itself would read it twice)
  });
}
BENCHMARK(BM_Mmio_TrappedRead4)->UseManualTime();

void BM_Mmio_TrappedWrite4(benchmark::State& state) {
  Rig& r = TheRig();
  TrappedVsBare(state, [&](int i) { r.edu_bar[1] = static_cast<uint32_t>(i); });  // edu liveness
}
BENCHMARK(BM_Mmio_TrappedWrite4)->UseManualTime();

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
// on an ordinary page, interleaved in batches; the benchmark's time is the BAR page's.
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
  pass(ordinary);
  pass(r.ep_bar0);
  double ordinary_ns = 0, bar_ns = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    for (int i = 0; i < kBatch; ++i) pass(ordinary);
    auto t1 = Clock::now();
    for (int i = 0; i < kBatch; ++i) pass(r.ep_bar0);
    auto t2 = Clock::now();
    ordinary_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    const double bar = std::chrono::duration<double, std::nano>(t2 - t1).count();
    bar_ns += bar;
    state.SetIterationTime(bar * 1e-9 / kBatch);
  }
  state.counters["ordinary_ns"] = ordinary_ns / (double(state.iterations()) * kBatch);
  state.counters["ratio_vs_ordinary"] = bar_ns / ordinary_ns;
  munmap(ordinary, 4096);
}
BENCHMARK(BM_Mmio_PlainBarPage4K)->UseManualTime();

}  // namespace
