// vfio-pci benchmarks (issue 4): a config-space read through the C++ API (baseline: the raw
// hw::PciDevice::ConfigRead of the same register, measured in the same run), and the round trip
// of an MMIO write that makes the device send an MSI-X message until the user reads it from its
// eventfd (target <= 5 us; baseline: an eventfd write + read in the same run).
//
// Baselines are reported as counters measured inside the same benchmark function.
#include <benchmark/benchmark.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>

#include "devices/test_endpoint.h"
#include "hw/machine.h"
#include "hw/pci_regs.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"
#include "vfio/pci/vfio_pci_driver.h"
#include "vfio/type1/type1_iommu.h"
#include "vfio/vfio.h"

namespace {

using Clock = std::chrono::steady_clock;
using vfio::pci::RegionOffset;

// One machine for the whole process: root port 00:01.0 → 01:00.0 test endpoint, bound to
// vfio-pci, opened, memory decode and bus mastering on, MSI-X vector 0 on an eventfd.
struct Rig {
  hw::Machine machine;
  iommu::IommuCore core;
  vfio::Vfio vfio{core};
  vfio::type1::Type1Backend type1;
  vfio::pci::VfioPciDriver driver{vfio};
  hw::StubDriver pcieport{"pcieport", true};
  vb::RefPtr<devices::TestEndpoint> ep;
  vb::RefPtr<vfio::Container> container;
  vb::RefPtr<vfio::GroupFile> group;
  vb::RefPtr<vfio::DeviceFile> file;
  int efd = -1;

  Rig() {
    (void)machine.SetHooks(&core);
    auto rp = iommu::testtopo::MakePci("00:01.0", iommu::testtopo::RootPort(1).Acs());
    (void)machine.AddPciDevice(rp);
    (void)machine.BindDriver(*rp, pcieport);
    ep = devices::TestEndpoint::Create({0, 1, 0}).value();
    (void)machine.AddPciDevice(ep);
    (void)machine.BindDriver(*ep, driver);
    vfio.RegisterBackend(type1);
    container = vfio.OpenContainer();
    group = vfio.OpenGroup(core.GroupOf(*ep)->id()).value();
    (void)group->SetContainer(container);
    (void)container->SetIommu(vfio::type1::kExtType1v2);
    file = group->GetDevice(ep->name()).value();
    uint16_t cmd = hw::pci::kCommandMemory | hw::pci::kCommandMaster;
    (void)driver.Write(dev(), &cmd, 2, RegionOffset(vfio::pci::kRegionConfig) + hw::pci::kCommand);
    efd = eventfd(0, EFD_CLOEXEC);
    int32_t fd = efd;
    vfio::SetIrqsRequest req{.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                             .index = vfio::pci::kIrqMsix, .start = 0, .count = 1};
    req.fds = std::span<const int32_t>(&fd, 1);
    (void)driver.SetIrqs(dev(), req);
  }
  ~Rig() {
    file = nullptr;
    group = nullptr;
    container = nullptr;
    for (auto& d : machine.Devices()) (void)machine.RemoveDevice(*d);
    (void)machine.SetHooks(nullptr);
    close(efd);
  }
  vfio::Device& dev() { return file->device(); }
};

Rig& TheRig() {
  static Rig* rig = new Rig();  // leaked on purpose: lives until the process exits
  return *rig;
}

double NsPer(Clock::time_point t0, int n) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n;
}

void BM_VfioPci_ConfigRead(benchmark::State& state) {
  Rig& r = TheRig();
  // The command register mixes virtual (INTx-disable) and hardware bits: both paths are taken.
  const uint64_t off = RegionOffset(vfio::pci::kRegionConfig) + hw::pci::kCommand;
  uint32_t v = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(r.driver.Read(r.dev(), &v, 4, off));
  }
  constexpr int kN = 200000;
  auto t0 = Clock::now();
  for (int i = 0; i < kN; ++i) benchmark::DoNotOptimize(r.ep->ConfigRead(hw::pci::kCommand, 4));
  state.counters["raw_hw_config_read_ns"] = NsPer(t0, kN);
}
BENCHMARK(BM_VfioPci_ConfigRead);

void BM_VfioPci_MmioWriteToEventfd(benchmark::State& state) {
  Rig& r = TheRig();
  const uint64_t doorbell = RegionOffset(2) + devices::TestEndpoint::kRegDoorbell;
  const uint32_t vector = 0;
  uint64_t got = 0;
  for (auto _ : state) {
    (void)r.driver.Write(r.dev(), &vector, 4, doorbell);
    if (read(r.efd, &got, sizeof got) != sizeof got) state.SkipWithError("eventfd read failed");
  }
  // Baseline: the eventfd's own write + read round trip.
  constexpr int kN = 100000;
  const uint64_t one = 1;
  auto t0 = Clock::now();
  for (int i = 0; i < kN; ++i) {
    if (write(r.efd, &one, sizeof one) != sizeof one || read(r.efd, &got, sizeof got) != sizeof got) break;
  }
  state.counters["eventfd_roundtrip_ns"] = NsPer(t0, kN);
}
BENCHMARK(BM_VfioPci_MmioWriteToEventfd);

}  // namespace
