// I/OAT engine benchmarks (issue 13), on the default machine's ioat (0000:09:00.0) opened through
// the UAPI as a driver would: BAR0 mapped (each register access trapped and emulated), ring,
// buffers and completion word DMA-mapped, progress read from the completion write-back in memory
// (DPDK's way: every descriptor asks for a write-back, none for an interrupt).
//   BM_Ioat_Copy/4096, /65536  engine throughput in batches of descriptors of that size, 8 MiB
//       per batch, beside memcpy of the same bytes between the same buffers in the same iteration
//       (target: >= 80 % of memcpy at 64 KiB). Time is the engine's (manual time); the ratio is
//       given in wall time and in CPU time (the executor's vs the memcpy thread's), the second
//       being what the engine costs when the machine is loaded and it waits for a core.
//   BM_Ioat_DoorbellToCompletion64  one 64-byte copy: the DMACOUNT store (trapped) until its
//       completion write-back is seen; beside the bare executor hand-off (post a task to the
//       machine's executor and spin until it ran), interleaved.
//
// Ratios are counters computed from figures taken in the same benchmark function.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>

#include "uapi_machine.h"
#include "devices/ioat.h"
#include "hw/executor.h"

namespace {

using Clock = std::chrono::steady_clock;
using devices::Ioat;

struct Desc {
  uint32_t size, ctl;
  uint64_t src, dst, next;
  uint64_t rsv[4];
};
static_assert(sizeof(Desc) == 64);

constexpr uint64_t kBufBytes = (8 << 20) + (64 << 10);  // one batch plus one spare descriptor's worth
constexpr uint64_t kIovaSrc = 1ull << 32, kIovaDst = 2ull << 32, kIovaDrv = 3ull << 32;
constexpr uint64_t kDrvBytes = 2 << 20;  // ring (up to 4096 descriptors: 256 KiB), completion at the end
constexpr uint32_t kMaxRing = 4096;

// The default machine with the ioat opened (type1v2), BAR0's register page mapped, memory decode
// and bus mastering on, buffers mapped at fixed IOVAs, the channel reset and CHANCMP programmed.
struct Rig {
  bench::UapiMachine m;
  int container = -1, dev = -1;
  volatile uint8_t* bar = nullptr;
  uint8_t* src = nullptr;
  uint8_t* dst = nullptr;
  uint8_t* drv = nullptr;
  Desc* ring = nullptr;
  volatile uint64_t* completion = nullptr;
  uint32_t ring_n = 0;
  uint32_t posted = 0;  // descriptors rung since CHAINADDR

  Rig() {
    dev = m.OpenDevice("0000:09:00.0", &container);
    int e = 0;
    bar = static_cast<volatile uint8_t*>(Obj(dev)->Mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0, &e));
    if (!bar || bar == MAP_FAILED) Die("bar mmap");
    uint16_t cmd = 0x6;  // memory space, bus master
    if (Obj(dev)->Pwrite(&cmd, 2, (off_t{VFIO_PCI_CONFIG_REGION_INDEX} << 40) + 4) != 2) Die("command");
    src = Alloc(kBufBytes, kIovaSrc);
    dst = Alloc(kBufBytes, kIovaDst);
    drv = Alloc(kDrvBytes, kIovaDrv);
    ring = reinterpret_cast<Desc*>(drv);
    completion = reinterpret_cast<volatile uint64_t*>(drv + kDrvBytes - 4096);
    for (uint64_t i = 0; i < kBufBytes; ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
    memset(dst, 0, kBufBytes);
    // Channel reset, as the drivers do it.
    W32(Ioat::kRegChanErr, R32(Ioat::kRegChanErr));
    W8(Ioat::kRegChanCmd, Ioat::kCmdReset);
    while (R8(Ioat::kRegChanCmd) & Ioat::kCmdReset) {
    }
    W64(Ioat::kRegChanCmp, kIovaDrv + kDrvBytes - 4096);
  }
  [[noreturn]] static void Die(const char* what) { bench::UapiMachine::Die(what); }
  static std::shared_ptr<uapi::FileObject> Obj(int fd) { return bench::UapiMachine::Obj(fd); }
  uint8_t* Alloc(uint64_t size, uint64_t iova) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) Die("mmap");
    vfio_iommu_type1_dma_map map{.argsz = sizeof map,
                                 .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                                 .vaddr = reinterpret_cast<uint64_t>(p),
                                 .iova = iova,
                                 .size = size};
    if (Obj(container)->Ioctl(VFIO_IOMMU_MAP_DMA, reinterpret_cast<unsigned long>(&map)) != 0) Die("MAP_DMA");
    return static_cast<uint8_t*>(p);
  }
  uint8_t R8(uint32_t r) { return bar[r]; }
  uint32_t R32(uint32_t r) { return *reinterpret_cast<volatile uint32_t*>(bar + r); }
  void W8(uint32_t r, uint8_t v) { bar[r] = v; }
  void W16(uint32_t r, uint16_t v) { *reinterpret_cast<volatile uint16_t*>(bar + r) = v; }
  void W32(uint32_t r, uint32_t v) { *reinterpret_cast<volatile uint32_t*>(bar + r) = v; }
  void W64(uint32_t r, uint64_t v) { *reinterpret_cast<volatile uint64_t*>(bar + r) = v; }
  uint64_t DescIova(uint32_t slot) const { return kIovaDrv + uint64_t{slot} * sizeof(Desc); }

  // A circular ring of n descriptors, slot i copying `size` bytes at offset i*size (mod the
  // buffer), each with a completion write-back; CHAINADDR at slot 0.
  void BuildRing(uint32_t n, uint32_t size) {
    ring_n = n;
    const uint64_t slots = kBufBytes / size;
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t off = (i % slots) * size;
      ring[i] = Desc{.size = size, .ctl = Ioat::kCtlComplWrite, .src = kIovaSrc + off, .dst = kIovaDst + off,
                     .next = DescIova((i + 1) % n), .rsv = {}};
    }
    *completion = 0;
    posted = 0;
    W64(Ioat::kRegChainAddr, kIovaDrv);
  }
  // Rings `count` more descriptors and spins until the write-back names the last one as DONE.
  // `nap`: sleep 20 us between polls, leaving the CPU to the executor's thread that runs the
  // engine (on a loaded 2-core machine a spinning poller takes its core); else spin.
  bool RunBatch(uint32_t count, bool nap) {
    posted += count;
    const uint64_t want = DescIova((posted - 1) % ring_n) | Ioat::kStsDone;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    W16(Ioat::kRegDmaCount, static_cast<uint16_t>(posted));
    for (;;) {
      const uint64_t c = *completion;
      if (c == want) return true;
      if ((c & Ioat::kStsStateMask) == Ioat::kStsHalted) return false;
      if (nap) usleep(20);
    }
  }
};

Rig& TheRig() {
  static Rig* r = new Rig();  // leaked on purpose: lives until the process exits
  return *r;
}

double Ns(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::nano>(b - a).count(); }
double CpuNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

void BM_Ioat_Copy(benchmark::State& state) {
  Rig& r = TheRig();
  const auto size = static_cast<uint32_t>(state.range(0));
  const uint32_t batch = static_cast<uint32_t>((8u << 20) / size);
  r.BuildRing(batch + 1, size);  // descriptors shift by one slot per batch: every slot is used
  double engine_ns = 0, memcpy_ns = 0, engine_cpu_ns = 0, memcpy_cpu_ns = 0;
  for (auto _ : state) {
    const double p0 = CpuNs(CLOCK_PROCESS_CPUTIME_ID), th0 = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    auto t0 = Clock::now();
    if (!r.RunBatch(batch, true)) {
      state.SkipWithError("channel halted");
      break;
    }
    auto t1 = Clock::now();
    const double p1 = CpuNs(CLOCK_PROCESS_CPUTIME_ID), th1 = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    // The engine's CPU time: the process's minus this (polling) thread's, i.e. the executor's.
    engine_cpu_ns += (p1 - p0) - (th1 - th0);
    // The same bytes between the same buffers, descriptor by descriptor.
    const uint64_t slots = kBufBytes / size;
    for (uint32_t i = 0; i < batch; ++i) {
      const uint64_t off = (i % slots) * size;
      memcpy(r.dst + off, r.src + off, size);
    }
    benchmark::ClobberMemory();
    auto t2 = Clock::now();
    memcpy_cpu_ns += CpuNs(CLOCK_THREAD_CPUTIME_ID) - th1;
    engine_ns += Ns(t0, t1);
    memcpy_ns += Ns(t1, t2);
    state.SetIterationTime(Ns(t0, t1) * 1e-9);
  }
  const double bytes = double(state.iterations()) * batch * size;
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["engine_GBps"] = bytes / engine_ns;
  state.counters["memcpy_GBps"] = bytes / memcpy_ns;
  state.counters["ratio_vs_memcpy"] = memcpy_ns / engine_ns;  // throughput ratio (wall)
  // The same ratio in CPU time (engine thread vs memcpy thread): what the engine costs when it
  // has a core, whatever the machine's load.
  state.counters["cpu_ratio_vs_memcpy"] = memcpy_cpu_ns / engine_cpu_ns;
  if (memcmp(r.src, r.dst, size_t{batch} * size) != 0) state.SkipWithError("copied bytes differ");
}
BENCHMARK(BM_Ioat_Copy)->Arg(4 << 10)->Arg(64 << 10)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_Ioat_DoorbellToCompletion64(benchmark::State& state) {
  Rig& r = TheRig();
  r.BuildRing(kMaxRing, 64);
  hw::Executor& ex = r.m.sys().machine().executor();
  std::atomic<bool> ran{false};
  double ioat_ns = 0, handoff_ns = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (!r.RunBatch(1, false)) {
      state.SkipWithError("channel halted");
      break;
    }
    auto t1 = Clock::now();
    ran.store(false, std::memory_order_relaxed);
    ex.Post([&ran] { ran.store(true, std::memory_order_release); });
    while (!ran.load(std::memory_order_acquire)) {
    }
    auto t2 = Clock::now();
    ioat_ns += Ns(t0, t1);
    handoff_ns += Ns(t1, t2);
    state.SetIterationTime(Ns(t0, t1) * 1e-9);
  }
  state.counters["executor_handoff_ns"] = handoff_ns / double(state.iterations());
  state.counters["ratio_vs_handoff"] = ioat_ns / handoff_ns;
}
BENCHMARK(BM_Ioat_DoorbellToCompletion64)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
