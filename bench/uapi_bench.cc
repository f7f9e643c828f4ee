// Benchmarks of the UAPI layer (issue 5 target: a 4 KiB MAP_DMA + UNMAP_DMA pair through the real
// ioctl path in <= 0.5 us), each beside the same operation through the C++ API in the same run:
//   BM_MapUnmap4K_Ioctl    FileObject::Ioctl(VFIO_IOMMU_MAP_DMA / UNMAP_DMA) with real structs on a
//                          container fd from the FdTable (lookup included), as the preload
//                          library's ioctl() does
//   BM_MapUnmap4K_Cxx      type1::Iommu::MapDma / UnmapDma on the same container's backend
//   BM_Baseline_EmptyIoctl VFIO_GET_API_VERSION through the same path (no user copy)
//   BM_Baseline_UserCopy   one 32-byte CopyFromUser: what every struct read or write-back of the
//                          ioctl path costs
// Ioctl args: {copy mode, check caches}; copy mode 0 = fault-catching user copies (default, no
// syscall), 1 = process_vm_readv/writev (one syscall per copy); caches 1 = type1's VMA and memlock
// caches on, as the preload library runs (0007), 0 = exact checks. The C++ pair takes the caches
// argument alone. The ioctl pair does three user copies (MAP in, UNMAP in, UNMAP out); the C++
// pair already pays type1's vaddr check (one madvise syscall) and an epoch grace period.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/mman.h>

#include <cstring>
#include <memory>

#include "hw/machine.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"
#include "uapi/container_file.h"
#include "uapi/fd_table.h"
#include "uapi/node_table.h"
#include "uapi/user_copy.h"
#include "vfio/basic_driver.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/type1_iommu.h"
#include "vfio/type1/user_memory.h"
#include "vfio/vfio.h"

namespace {

using iommu::testtopo::Endpoint;
using iommu::testtopo::MakePci;
using iommu::testtopo::RootPort;

// One machine with 01:00.0 behind a root port, its group attached to a type1 v2 container opened
// through the node table, and a 4 KiB buffer. Built once per process, never torn down.
struct Rig {
  hw::Machine machine;
  iommu::IommuCore core;
  vfio::Vfio vfio{core};
  vfio::type1::Type1Backend type1;
  vfio::BasicDriver driver{vfio};
  hw::StubDriver pcieport{"pcieport", true};
  uapi::VfioNodeTable nodes{vfio};
  int container = -1;
  int group = -1;
  std::shared_ptr<uapi::FileObject> container_obj;
  vfio::type1::Iommu* iommu = nullptr;
  void* buf = nullptr;

  Rig() {
    (void)machine.SetHooks(&core);
    auto rp = MakePci("00:01.0", RootPort(1).Acs());
    (void)machine.AddPciDevice(rp);
    (void)machine.BindDriver(*rp, pcieport);
    auto ep = MakePci("01:00.0", Endpoint());
    (void)machine.AddPciDevice(ep);
    (void)machine.BindDriver(*ep, driver);
    vfio.RegisterBackend(type1);
    auto& fds = uapi::FdTable::Global();
    int err = 0;
    container = fds.Install(nodes.Open("/dev/vfio/vfio", O_RDWR, &err), O_CLOEXEC);
    int gid = core.GroupOf(*ep)->id();
    group = fds.Install(nodes.Open("/dev/vfio/" + std::to_string(gid), O_RDWR, &err), O_CLOEXEC);
    container_obj = fds.Lookup(container).object;
    auto group_obj = fds.Lookup(group).object;
    if (!container_obj || !group_obj ||
        group_obj->Ioctl(VFIO_GROUP_SET_CONTAINER, reinterpret_cast<unsigned long>(&container)) != 0 ||
        container_obj->Ioctl(VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0) {
      std::abort();
    }
    auto* cf = static_cast<uapi::ContainerFileObject*>(container_obj.get());
    (void)cf->container().WithBackendAs<vfio::type1::Iommu>([&](vfio::type1::Iommu& i) {
      iommu = &i;
      return vb::Result<void>{};
    });
    buf = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    std::memset(buf, 0, 4096);
  }
};

Rig& R() {
  static Rig* rig = new Rig();
  return *rig;
}

constexpr uint64_t kIova = 0x100000;

// Switches type1's check caches (docs/design/0007) for one benchmark: on is what a program under
// `vfiobox run` gets (the preload library turns them on), off is the C++ API's exact default.
struct CheckCaches {
  explicit CheckCaches(bool on) {
    vfio::type1::UserMemory::SetVmaCache(on);
    vfio::type1::LockedMemory::SetLimitCache(on);
  }
  ~CheckCaches() {
    vfio::type1::UserMemory::SetVmaCache(false);
    vfio::type1::LockedMemory::SetLimitCache(false);
  }
};

// Arg 0: fault-catching user copies (the default); 1: process_vm_readv/writev copies.
void BM_MapUnmap4K_Ioctl(benchmark::State& state) {
  Rig& r = R();
  const uapi::CopyMode saved = uapi::GetCopyMode();
  uapi::SetCopyMode(state.range(0) ? uapi::CopyMode::kSyscall : uapi::CopyMode::kFaultCatching);
  CheckCaches caches(state.range(1) != 0);
  for (auto _ : state) {
    // What a program does: look its fd up (the preload library's ioctl) and pass real structs.
    auto obj = uapi::FdTable::Global().Lookup(r.container).object;
    vfio_iommu_type1_dma_map map{sizeof(map), VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                                 reinterpret_cast<uint64_t>(r.buf), kIova, 4096};
    if (obj->Ioctl(VFIO_IOMMU_MAP_DMA, reinterpret_cast<unsigned long>(&map)) != 0) std::abort();
    vfio_iommu_type1_dma_unmap unmap{sizeof(unmap), 0, kIova, 4096};
    if (obj->Ioctl(VFIO_IOMMU_UNMAP_DMA, reinterpret_cast<unsigned long>(&unmap)) != 0 ||
        unmap.size != 4096)
      std::abort();
  }
  uapi::SetCopyMode(saved);
}
// Args: copy mode (0 fault-catching, 1 syscall), check caches (0 exact, 1 cached as under the preload).
BENCHMARK(BM_MapUnmap4K_Ioctl)->Args({0, 0})->Args({0, 1})->Args({1, 0})->Args({1, 1});

void BM_MapUnmap4K_Cxx(benchmark::State& state) {
  Rig& r = R();
  CheckCaches caches(state.range(0) != 0);
  for (auto _ : state) {
    if (!r.iommu->MapDma({vfio::type1::kMapFlagRead | vfio::type1::kMapFlagWrite,
                          reinterpret_cast<uint64_t>(r.buf), kIova, 4096}))
      std::abort();
    auto n = r.iommu->UnmapDma({0, kIova, 4096});
    if (!n || *n != 4096) std::abort();
  }
}
BENCHMARK(BM_MapUnmap4K_Cxx)->Arg(0)->Arg(1);  // check caches off / on

void BM_Baseline_EmptyIoctl(benchmark::State& state) {
  Rig& r = R();
  for (auto _ : state) {
    auto obj = uapi::FdTable::Global().Lookup(r.container).object;
    benchmark::DoNotOptimize(obj->Ioctl(VFIO_GET_API_VERSION, 0));
  }
}
BENCHMARK(BM_Baseline_EmptyIoctl);

void BM_Baseline_UserCopy(benchmark::State& state) {
  const uapi::CopyMode saved = uapi::GetCopyMode();
  uapi::SetCopyMode(state.range(0) ? uapi::CopyMode::kSyscall : uapi::CopyMode::kFaultCatching);
  vfio_iommu_type1_dma_map src{32, 3, 0, 0, 4096}, dst;
  for (auto _ : state) {
    benchmark::DoNotOptimize(uapi::CopyFromUser(&dst, reinterpret_cast<uint64_t>(&src), sizeof(dst)));
  }
  uapi::SetCopyMode(saved);
}
BENCHMARK(BM_Baseline_UserCopy)->Arg(0)->Arg(1);

}  // namespace
