// An embedder's program: drives a vfiobox machine from C++ with no /dev/vfio and no preload.
// It builds the machine from a topology file, opens the edu's group and device through the VFIO
// core (what open()/ioctl() on /dev/vfio do under `vfiobox run`), maps a buffer with type1,
// runs the edu's DMA engine RAM -> device -> RAM, checks the bytes, unmaps, shows that the IOMMU
// stops a DMA to the old iova (and reads it back from the fault log), then hot-unplugs the edu.
//   embed_edu_dma TOPOLOGY.json       exit 0 and "embed: all steps passed" on success
#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "devices/edu.h"
#include "hw/pci_regs.h"
#include "iommu/iommu.h"
#include "topology/system.h"
#include "vfio/pci/vfio_pci_device.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/type1_iommu.h"

namespace {

using devices::Edu;
namespace t1 = vfio::type1;

constexpr char kEdu[] = "0000:01:00.0";
constexpr uint64_t kIova = 0x100000;
constexpr size_t kBytes = 256;

int Fail(const std::string& what) {
  std::fprintf(stderr, "embed: FAILED: %s\n", what.c_str());
  return 1;
}

// Region accesses through the vfio-pci device, as pread/pwrite on the device fd would do them.
bool Write(vfio::Device& dev, uint32_t region, uint64_t offset, uint64_t value, unsigned size) {
  auto r = dev.ops().Write(dev, &value, size, vfio::pci::RegionOffset(region) + offset);
  return r.has_value() && *r == size;
}
uint64_t Read(vfio::Device& dev, uint32_t region, uint64_t offset, unsigned size) {
  uint64_t value = 0;
  auto r = dev.ops().Read(dev, &value, size, vfio::pci::RegionOffset(region) + offset);
  return r.has_value() ? value : ~uint64_t{0};
}

// One edu DMA, run to its end on the machine's executor; true when the IOMMU let it through (the
// edu, as QEMU's, has no error bit: the model counts refused DMAs).
bool Dma(topology::System& sys, vfio::Device& dev, Edu& edu, uint64_t src, uint64_t dst, uint64_t cmd) {
  const uint64_t errors = edu.dma_errors();
  Write(dev, vfio::pci::kRegionBar0, Edu::kRegDmaSrc, src, 8);
  Write(dev, vfio::pci::kRegionBar0, Edu::kRegDmaDst, dst, 8);
  Write(dev, vfio::pci::kRegionBar0, Edu::kRegDmaCount, kBytes, 8);
  Write(dev, vfio::pci::kRegionBar0, Edu::kRegDmaCmd, cmd | Edu::kDmaCmdStart, 8);
  sys.machine().executor().Drain();
  return edu.dma_errors() == errors;
}

int Run(const std::string& topology_file) {
  topology::ParseError parse_error;
  auto spec = topology::LoadTopologyFile(topology_file, &parse_error);
  if (!spec) return Fail(parse_error.message);
  std::string error;
  auto sys = topology::System::Create(*spec, &error);
  if (!sys) return Fail(error);
  auto hwdev = sys->machine().FindDevice(kEdu);
  if (!hwdev) return Fail(std::string("no ") + kEdu + " in " + topology_file);
  auto group = sys->iommu_core().GroupOf(*hwdev);
  std::printf("embed: machine from %s: edu %s in IOMMU group %d (%s)\n", topology_file.c_str(), kEdu, group->id(),
              group->iommu().name().c_str());

  {
    // open("/dev/vfio/vfio"), open("/dev/vfio/N"), VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU,
    // VFIO_GROUP_GET_DEVICE_FD.
    auto container = sys->vfio().OpenContainer();
    auto group_file = sys->vfio().OpenGroup(group->id());
    if (!group_file) return Fail("OpenGroup");
    if (!(*group_file)->SetContainer(container)) return Fail("SetContainer");
    if (!container->SetIommu(t1::kExtType1v2)) return Fail("SetIommu(type1v2)");
    auto device_file = (*group_file)->GetDevice(kEdu);
    if (!device_file) return Fail("GetDevice");
    vfio::Device& dev = (*device_file)->device();
    Edu& edu = static_cast<Edu&>(*hwdev);
    if (Read(dev, vfio::pci::kRegionBar0, Edu::kRegId, 4) != Edu::kId) return Fail("edu id");
    if (!Write(dev, vfio::pci::kRegionConfig, hw::pci::kCommand, hw::pci::kCommandMemory | hw::pci::kCommandMaster, 2))
      return Fail("enable bus mastering");

    auto* buf = static_cast<uint8_t*>(mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (buf == MAP_FAILED) return Fail("mmap");
    for (size_t i = 0; i < kBytes; ++i) buf[i] = static_cast<uint8_t>(i * 7 + 1);
    auto type1 = [&](auto fn) { return container->WithBackendAs<t1::Iommu>(fn); };
    if (!type1([&](t1::Iommu& io) {
          return io.MapDma({t1::kMapFlagRead | t1::kMapFlagWrite, reinterpret_cast<uint64_t>(buf), kIova, 2 * 4096});
        }))
      return Fail("MAP_DMA");

    // RAM (iova) -> the edu's buffer -> RAM one page further on.
    if (!Dma(*sys, dev, edu, kIova, Edu::kDmaBufferAddr, 0)) return Fail("DMA RAM -> edu");
    if (!Dma(*sys, dev, edu, Edu::kDmaBufferAddr, kIova + 4096, Edu::kDmaCmdToRam)) return Fail("DMA edu -> RAM");
    if (std::memcmp(buf, buf + 4096, kBytes) != 0) return Fail("bytes differ after the round trip");
    std::printf("embed: DMA RAM -> edu -> RAM through iova %#llx: %zu bytes verified\n",
                static_cast<unsigned long long>(kIova), kBytes);

    // After UNMAP_DMA the old iova faults: nothing is written, the fault log says why.
    if (!type1([&](t1::Iommu& io) { return io.UnmapDma({0, kIova, 2 * 4096}); })) return Fail("UNMAP_DMA");
    iommu::FaultLog& faults = group->iommu().fault_log();
    faults.Clear();
    std::memset(buf + 4096, 0, kBytes);
    if (Dma(*sys, dev, edu, Edu::kDmaBufferAddr, kIova + 4096, Edu::kDmaCmdToRam))
      return Fail("a DMA after unmap completed");
    for (size_t i = 0; i < kBytes; ++i)
      if (buf[4096 + i] != 0) return Fail("a DMA after unmap reached memory");
    auto log = faults.Snapshot();
    if (log.size() != 1 || log[0].requester != kEdu || log[0].iova != kIova + 4096)
      return Fail("the fault log does not hold the DMA after unmap");
    std::printf("embed: DMA after unmap stopped by the IOMMU: fault log: %s %s of iova %#llx (%s)\n",
                log[0].requester.c_str(), hw::DmaAccessName(log[0].access),
                static_cast<unsigned long long>(log[0].iova), hw::DmaFaultReasonName(log[0].reason));
    munmap(buf, 2 * 4096);
  }  // close the device, group and container

  // echo 1 > /sys/bus/pci/devices/0000:01:00.0/remove
  if (!sys->machine().RemoveDevice(*hwdev)) return Fail("hot-unplug");
  if (sys->machine().FindDevice(kEdu)) return Fail("the edu is still there after hot-unplug");
  std::printf("embed: edu hot-unplugged\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TOPOLOGY.json\n", argv[0]);
    return 2;
  }
  if (Run(argv[1]) != 0) return 1;
  std::printf("embed: all steps passed\n");
  return 0;
}
