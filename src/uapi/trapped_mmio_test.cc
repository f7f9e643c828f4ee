// Register BARs mapped through the UAPI (issue 12): region info offers MMAP on every memory BAR,
// a mapping of register pages traps each access into one device access of the CPU's width, memory
// decode off turns an access into SIGBUS, the mapping keeps the device file as a vma keeps its
// file, and the "no-mmap" switch brings back register BARs without MMAP.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <sys/mman.h>

#include <cpuid.h>

#include <atomic>
#include <thread>
#include <vector>
#include <cstdlib>
#include <cstring>

#include "devices/edu.h"
#include "devices/test_endpoint.h"
#include "faults/fault_dispatcher.h"
#include "faults/trap_map.h"
#include "hw/pci_regs.h"
#include "topology/system.h"
#include "vfio/type1/locked_memory.h"
#include "uapi/fd_table.h"
#include "uapi/node_table.h"

namespace uapi {
namespace {

using devices::TestEndpoint;

constexpr uint64_t kPage = 4096;
constexpr uint64_t RegionOffset(int index) { return uint64_t(index) << 40; }
// Stress iterations scale with VB_STRESS_SCALE (CI runs the sanitizer builds scaled down).
double Scale() {
  const char* s = std::getenv("VB_STRESS_SCALE");
  return s && *s ? std::atof(s) : 1.0;
}

// The default machine with edu (01:00.0) and a test endpoint (07:00.0) opened through the UAPI.
class TrappedMmio : public ::testing::Test {
 protected:
  void SetUp() override { Build(topology::RegisterBars::kTrap); }
  void TearDown() override { CloseAll(); }

  void Build(topology::RegisterBars mode) {
    if (!faults::FaultDispatcher::Install()) GTEST_SKIP() << "no fault dispatcher in this build (TSan)";
    topology::TopologySpec spec = topology::DefaultTopology();
    spec.register_bars = mode;
    std::string err;
    sys_ = topology::System::Create(spec, &err);
    ASSERT_TRUE(sys_) << err;
    nodes_ = std::make_unique<VfioNodeTable>(sys_->vfio());
  }
  void CloseAll() {
    for (int fd : fds_) (void)FdTable::Global().Close(fd);
    fds_.clear();
    nodes_.reset();
    sys_.reset();
  }
  int Open(const std::string& path) {
    int e = 0;
    auto obj = nodes_->Open(path, O_RDWR, &e);
    EXPECT_TRUE(obj) << path << " errno " << e;
    int fd = FdTable::Global().Install(std::move(obj), O_CLOEXEC);
    fds_.push_back(fd);
    return fd;
  }
  static long Ioctl(int fd, unsigned long req, const void* arg) {
    return FdTable::Global().Lookup(fd).object->Ioctl(req, reinterpret_cast<unsigned long>(arg));
  }
  hw::PciDevice& Hw(const std::string& bdf) {
    return *static_cast<hw::PciDevice*>(sys_->machine().FindDevice("0000:" + bdf).get());
  }
  // container, group and device fd of `bdf`
  int OpenDevice(const std::string& bdf) {
    const int c = Open("/dev/vfio/vfio");
    const int g = Open("/dev/vfio/" + std::to_string(sys_->iommu_core().GroupOf(Hw(bdf))->id()));
    EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &c), 0);
    EXPECT_EQ(FdTable::Global().Lookup(c).object->Ioctl(VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
    const std::string name = "0000:" + bdf;
    const int d = static_cast<int>(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, name.c_str()));
    EXPECT_GE(d, 0);
    fds_.push_back(d);
    return d;
  }
  vfio_region_info RegionInfo(int d, uint32_t index) {
    vfio_region_info ri{};
    ri.argsz = sizeof ri;
    ri.index = index;
    EXPECT_EQ(Ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &ri), 0);
    return ri;
  }
  void* Map(int d, int bar, size_t length, uint64_t within = 0, int prot = PROT_READ | PROT_WRITE, int* err = nullptr) {
    int e = 0;
    void* p = FdTable::Global().Lookup(d).object->Mmap(nullptr, length, prot, MAP_SHARED,
                                                      static_cast<off_t>(RegionOffset(bar) + within), &e);
    if (err) *err = e;
    return p;
  }
  // What the preload library's munmap does for a trapped mapping.
  static void Unmap(void* p, size_t length) {
    faults::TrapMap::Global().Remove(reinterpret_cast<uint64_t>(p), length);
    munmap(p, length);
  }
  void SetCommand(int d, uint16_t value) {
    ASSERT_EQ(FdTable::Global().Lookup(d).object->Pwrite(&value, 2, RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX) + hw::pci::kCommand), 2);
  }
  uint16_t Command(int d) {
    uint16_t v = 0;
    EXPECT_EQ(FdTable::Global().Lookup(d).object->Pread(&v, 2, RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX) + hw::pci::kCommand), 2);
    return v;
  }

  std::unique_ptr<topology::System> sys_;
  std::unique_ptr<VfioNodeTable> nodes_;
  std::vector<int> fds_;
};

// ---- a program's own SIGBUS/SIGSEGV handler, through the dispatcher ----

thread_local sigjmp_buf* volatile t_jump = nullptr;  // volatile: stored before the faulting access
thread_local siginfo_t t_info;
void JumpOut(int, siginfo_t* info, void*) {
  t_info = *info;
  siglongjmp(*t_jump, 1);
}
// Runs fn; returns the signal that interrupted it (0 if none) and leaves its siginfo in t_info.
template <typename F>
int CatchSignal(F&& fn) {
  struct sigaction act {}, old_bus {}, old_segv {};
  act.sa_sigaction = &JumpOut;
  act.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  faults::FaultDispatcher::ProgramSigaction(SIGBUS, &act, &old_bus);
  faults::FaultDispatcher::ProgramSigaction(SIGSEGV, &act, &old_segv);
  sigjmp_buf jb;
  int sig = 0;
  if (sigsetjmp(jb, 1) == 0) {
    t_jump = &jb;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    fn();
  } else {
    sig = t_info.si_signo;
  }
  t_jump = nullptr;
  faults::FaultDispatcher::ProgramSigaction(SIGBUS, &old_bus, nullptr);
  faults::FaultDispatcher::ProgramSigaction(SIGSEGV, &old_segv, nullptr);
  return sig;
}

TEST_F(TrappedMmio, RegionInfoOffersMmapOnEveryMemoryBarAsLinux) {
  const int edu = OpenDevice("01:00.0");
  vfio_region_info bar0 = RegionInfo(edu, 0);
  EXPECT_EQ(bar0.size, 1u << 20);
  EXPECT_EQ(bar0.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP);
  const int ep = OpenDevice("07:00.0");
  // BAR2 holds the MSI-X table: MMAP and the MSIX_MAPPABLE capability (6.1 on x86 with IRQ remapping).
  struct {
    vfio_region_info ri;
    uint8_t caps[64];
  } big{};
  big.ri.argsz = sizeof big;
  big.ri.index = 2;
  ASSERT_EQ(Ioctl(ep, VFIO_DEVICE_GET_REGION_INFO, &big), 0);
  EXPECT_TRUE(big.ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
  ASSERT_TRUE(big.ri.flags & VFIO_REGION_INFO_FLAG_CAPS);
  ASSERT_GE(big.ri.cap_offset, sizeof(vfio_region_info));
  auto* hdr = reinterpret_cast<vfio_info_cap_header*>(reinterpret_cast<uint8_t*>(&big) + big.ri.cap_offset);
  EXPECT_EQ(hdr->id, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
}

TEST_F(TrappedMmio, EduRegistersThroughTheMapping) {
  const int edu = OpenDevice("01:00.0");
  auto* bar = static_cast<volatile uint8_t*>(Map(edu, 0, 1 << 20));
  ASSERT_NE(bar, MAP_FAILED);
  auto r32 = [&](uint64_t off) { return *reinterpret_cast<volatile uint32_t*>(bar + off); };
  auto w32 = [&](uint64_t off, uint32_t v) { *reinterpret_cast<volatile uint32_t*>(bar + off) = v; };
  const uint64_t before = faults::FaultDispatcher::emulated_count();
  EXPECT_EQ(r32(0x00), 0x010000edu);  // identification
  w32(0x04, 0x12345678);
  EXPECT_EQ(r32(0x04), ~0x12345678u);  // liveness check: inverts
  w32(0x08, 5);
  uint32_t status;
  do status = r32(0x20); while (status & 1);  // factorial busy bit
  EXPECT_EQ(r32(0x08), 120u);
  // An 8-byte register takes one 8-byte access.
  *reinterpret_cast<volatile uint64_t*>(bar + 0x80) = 0x1122334455667788ull;
  EXPECT_EQ(*reinterpret_cast<volatile uint64_t*>(bar + 0x80), 0x1122334455667788ull);
  EXPECT_GE(faults::FaultDispatcher::emulated_count() - before, 8u);
  Unmap(const_cast<uint8_t*>(bar), 1 << 20);
}

// The device sees each CPU access once, at its width, offset and value, in program order; a plain
// store makes no read.
TEST_F(TrappedMmio, EveryAccessIsOneDeviceAccessOfItsWidth) {
  const int ep = OpenDevice("07:00.0");
  auto* bar = static_cast<volatile uint8_t*>(Map(ep, 2, TestEndpoint::kBar2Size));
  ASSERT_NE(bar, MAP_FAILED);
  volatile uint8_t* win = bar + TestEndpoint::kScratchWindow;
  *reinterpret_cast<volatile uint32_t*>(bar + TestEndpoint::kRegLogCount) = 0;
  *reinterpret_cast<volatile uint8_t*>(win + 1) = 0xa1;
  *reinterpret_cast<volatile uint16_t*>(win + 2) = 0xb2c3;
  *reinterpret_cast<volatile uint32_t*>(win + 4) = 0xd4e5f607;
  *reinterpret_cast<volatile uint64_t*>(win + 8) = 0x0123456789abcdefull;
  EXPECT_EQ(*reinterpret_cast<volatile uint8_t*>(win + 1), 0xa1);
  EXPECT_EQ(*reinterpret_cast<volatile uint16_t*>(win + 2), 0xb2c3);
  EXPECT_EQ(*reinterpret_cast<volatile uint32_t*>(win + 4), 0xd4e5f607u);
  EXPECT_EQ(*reinterpret_cast<volatile uint64_t*>(win + 8), 0x0123456789abcdefull);
  struct Want {
    uint64_t offset;
    unsigned size;
    bool write;
    uint64_t value;
  } want[] = {{0x101, 1, true, 0xa1}, {0x102, 2, true, 0xb2c3}, {0x104, 4, true, 0xd4e5f607},
              {0x108, 8, true, 0x0123456789abcdefull}, {0x101, 1, false, 0xa1}, {0x102, 2, false, 0xb2c3},
              {0x104, 4, false, 0xd4e5f607}, {0x108, 8, false, 0x0123456789abcdefull}};
  const uint32_t n = *reinterpret_cast<volatile uint32_t*>(bar + TestEndpoint::kRegLogCount);
  ASSERT_EQ(n, std::size(want));
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t what = *reinterpret_cast<volatile uint64_t*>(bar + TestEndpoint::kAccessLog + 16 * i);
    const uint64_t value = *reinterpret_cast<volatile uint64_t*>(bar + TestEndpoint::kAccessLog + 16 * i + 8);
    EXPECT_EQ(what & 0xffffffff, want[i].offset) << i;
    EXPECT_EQ((what >> 32) & 0xff, want[i].size) << i;
    EXPECT_EQ(bool(what & TestEndpoint::kLogWrite), want[i].write) << i;
    EXPECT_EQ(value, want[i].value) << i;
  }
  Unmap(const_cast<uint8_t*>(bar), TestEndpoint::kBar2Size);
}

// 6.1: with COMMAND.MEMORY clear, an access through the mapping raises SIGBUS (at the address)
// until the bit is set again.
TEST_F(TrappedMmio, MemoryDecodeOffRaisesSigbusUntilSetAgain) {
  const int edu = OpenDevice("01:00.0");
  auto* bar = static_cast<volatile uint32_t*>(Map(edu, 0, kPage));
  ASSERT_NE(bar, MAP_FAILED);
  const uint16_t cmd = Command(edu);
  ASSERT_TRUE(cmd & hw::pci::kCommandMemory);
  SetCommand(edu, cmd & ~hw::pci::kCommandMemory);
  uint32_t v = 0;
  EXPECT_EQ(CatchSignal([&] { v = bar[0]; }), SIGBUS);
  EXPECT_EQ(t_info.si_code, BUS_ADRERR);
  EXPECT_EQ(t_info.si_addr, const_cast<uint32_t*>(bar));
  EXPECT_EQ(CatchSignal([&] { bar[1] = 7; }), SIGBUS);
  SetCommand(edu, cmd);
  EXPECT_EQ(CatchSignal([&] { v = bar[0]; }), 0);
  EXPECT_EQ(v, 0x010000edu);
  Unmap(const_cast<uint32_t*>(bar), kPage);
}

// 6.1: while the device is in low power (LOW_POWER_ENTRY), a fault on its BAR mapping is a
// SIGBUS, and does not wake it; LOW_POWER_EXIT brings the registers back.
TEST_F(TrappedMmio, LowPowerRaisesSigbusUntilExit) {
  const int edu = OpenDevice("01:00.0");
  auto* bar = static_cast<volatile uint32_t*>(Map(edu, 0, kPage));
  ASSERT_NE(bar, MAP_FAILED);
  auto feature = [&](uint32_t which) {
    vfio_device_feature f{.argsz = sizeof f, .flags = VFIO_DEVICE_FEATURE_SET | which};
    return Ioctl(edu, VFIO_DEVICE_FEATURE, &f);
  };
  ASSERT_EQ(feature(VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), 0);
  uint32_t v = 0;
  EXPECT_EQ(CatchSignal([&] { v = bar[0]; }), SIGBUS);
  EXPECT_EQ(t_info.si_addr, const_cast<uint32_t*>(bar));
  EXPECT_EQ(CatchSignal([&] { v = bar[0]; }), SIGBUS) << "a fault does not wake the device";
  ASSERT_EQ(feature(VFIO_DEVICE_FEATURE_LOW_POWER_EXIT), 0);
  EXPECT_EQ(CatchSignal([&] { v = bar[0]; }), 0);
  EXPECT_EQ(v, 0x010000edu);
  Unmap(const_cast<uint32_t*>(bar), kPage);
}

TEST_F(TrappedMmio, StoreThroughAReadOnlyMappingIsSigsegv) {
  const int edu = OpenDevice("01:00.0");
  auto* bar = static_cast<volatile uint32_t*>(Map(edu, 0, kPage, 0, PROT_READ));
  ASSERT_NE(bar, MAP_FAILED);
  EXPECT_EQ(bar[0], 0x010000edu);
  EXPECT_EQ(CatchSignal([&] { bar[1] = 7; }), SIGSEGV);
  EXPECT_EQ(t_info.si_code, SEGV_ACCERR);
  EXPECT_EQ(t_info.si_addr, const_cast<uint32_t*>(bar + 1));
  Unmap(const_cast<uint32_t*>(bar), kPage);
}

// mmap of any page-aligned part of the BAR; the pieces reach the right offsets.
TEST_F(TrappedMmio, PartOfTheBarAtAnOffset) {
  const int ep = OpenDevice("07:00.0");
  auto* page0 = static_cast<volatile uint8_t*>(Map(ep, 2, kPage));
  auto* page1 = static_cast<volatile uint8_t*>(Map(ep, 2, kPage, kPage));
  ASSERT_NE(page0, MAP_FAILED);
  ASSERT_NE(page1, MAP_FAILED);
  *reinterpret_cast<volatile uint32_t*>(page0 + TestEndpoint::kRegLogCount) = 0;
  *reinterpret_cast<volatile uint8_t*>(page0 + TestEndpoint::kScratchWindow) = 1;
  // page 1 is the access log: entry 0 is the store above.
  EXPECT_EQ(*reinterpret_cast<volatile uint64_t*>(page1) & 0xffffffff, TestEndpoint::kScratchWindow);
  int e = 0;
  EXPECT_EQ(Map(ep, 2, 2 * kPage, TestEndpoint::kBar2Size - kPage, PROT_READ, &e), MAP_FAILED);
  EXPECT_EQ(e, EINVAL);
  Unmap(const_cast<uint8_t*>(page0), kPage);
  Unmap(const_cast<uint8_t*>(page1), kPage);
}

// The mapping holds the device file as a vma holds vm_file: closing every fd keeps the device
// open and the registers reachable; the munmap is the last release.
TEST_F(TrappedMmio, MappingOutlivesTheDeviceFd) {
  const int edu = OpenDevice("01:00.0");
  auto* bar = static_cast<volatile uint32_t*>(Map(edu, 0, kPage));
  ASSERT_NE(bar, MAP_FAILED);
  ASSERT_EQ(FdTable::Global().Close(edu), 0);
  std::erase(fds_, edu);
  bar[1] = 0x0f0f0f0f;
  EXPECT_EQ(bar[1], 0xf0f0f0f0u);
  Unmap(const_cast<uint32_t*>(bar), kPage);
  EXPECT_FALSE(faults::TrapMap::Global().Find(reinterpret_cast<uint64_t>(bar)));
}

TEST_F(TrappedMmio, PartialUnmapKeepsTheRestTrapped) {
  const int ep = OpenDevice("07:00.0");
  auto* bar = static_cast<volatile uint8_t*>(Map(ep, 2, 3 * kPage));
  ASSERT_NE(bar, MAP_FAILED);
  faults::TrapMap::Global().Remove(reinterpret_cast<uint64_t>(bar + kPage), kPage);
  munmap(const_cast<uint8_t*>(bar + kPage), kPage);
  EXPECT_EQ(*reinterpret_cast<volatile uint32_t*>(bar), TestEndpoint::kId);
  // Page 2 still reaches BAR offset 0x2000: the MSI-X table, all-ones as through read().
  EXPECT_EQ(*reinterpret_cast<volatile uint32_t*>(bar + 2 * kPage), 0xffffffffu);
  Unmap(const_cast<uint8_t*>(bar), kPage);
  Unmap(const_cast<uint8_t*>(bar + 2 * kPage), kPage);
}

// The switch for clients that cannot live with trapped mappings: register BARs without MMAP.
TEST_F(TrappedMmio, NoMmapSwitchKeepsRegisterBarsUnmapped) {
  CloseAll();
  Build(topology::RegisterBars::kNoMmap);
  const int edu = OpenDevice("01:00.0");
  EXPECT_EQ(RegionInfo(edu, 0).flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
  int e = 0;
  EXPECT_EQ(Map(edu, 0, kPage, 0, PROT_READ, &e), MAP_FAILED);
  EXPECT_EQ(e, EINVAL);
  // Memory BARs stay mappable.
  const int ep = OpenDevice("07:00.0");
  EXPECT_TRUE(RegionInfo(ep, 0).flags & VFIO_REGION_INFO_FLAG_MMAP);
  EXPECT_FALSE(RegionInfo(ep, 2).flags & VFIO_REGION_INFO_FLAG_MMAP);
}

// Several threads using one device's registers at once: each access stays one device access, and
// no thread sees another's bytes.
TEST_F(TrappedMmio, ThreadsShareOneDevicesRegisters) {
  const int ep = OpenDevice("07:00.0");
  auto* bar = static_cast<volatile uint8_t*>(Map(ep, 2, TestEndpoint::kBar2Size));
  ASSERT_NE(bar, MAP_FAILED);
  const int iterations = static_cast<int>(2000 * Scale());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto* slot = reinterpret_cast<volatile uint64_t*>(bar + TestEndpoint::kScratchWindow + 8 * t);
      for (int i = 0; i < iterations; ++i) {
        const uint64_t v = (uint64_t(t) << 56) | uint64_t(i);
        *slot = v;
        if (*slot != v) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  Unmap(const_cast<uint8_t*>(bar), TestEndpoint::kBar2Size);
}

// MMIO racing device resets, unmaps of other pages and fd closes: every read of the identification
// register answers it (a reset does not change it), nothing crashes or deadlocks.
TEST_F(TrappedMmio, MmioRacesResetCloseAndMunmap) {
  const int ep = OpenDevice("07:00.0");
  auto* bar = static_cast<volatile uint32_t*>(Map(ep, 2, kPage));
  ASSERT_NE(bar, MAP_FAILED);
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0}, reads{0};
  std::thread reader([&] {
    while (!stop.load()) {
      if (bar[0] != TestEndpoint::kId) wrong.fetch_add(1);
      reads.fetch_add(1);
    }
  });
  const int rounds = static_cast<int>(200 * Scale()) + 1;
  for (int i = 0; i < rounds; ++i) {
    EXPECT_EQ(FdTable::Global().Lookup(ep).object->Ioctl(VFIO_DEVICE_RESET, 0), 0);
    // Another mapping of the same BAR comes and goes, with its own fd.
    const int dup = FdTable::Global().DupFd(ep, 0, O_CLOEXEC);
    ASSERT_GE(dup, 0);
    void* other = Map(dup, 2, kPage);
    ASSERT_NE(other, MAP_FAILED);
    ASSERT_EQ(FdTable::Global().Close(dup), 0);
    EXPECT_EQ(static_cast<volatile uint32_t*>(other)[0], TestEndpoint::kId);
    Unmap(other, kPage);
  }
  while (reads.load() < 10) std::this_thread::yield();
  stop.store(true);
  reader.join();
  EXPECT_EQ(wrong.load(), 0);
  Unmap(const_cast<uint32_t*>(bar), kPage);
}

// A device removed by surprise while mapped answers as real hardware does: reads all-ones, writes
// dropped; its removal completes when the last mapping (which holds the device file) goes.
TEST_F(TrappedMmio, SurpriseRemovedDeviceReadsAllOnes) {
  const int edu = OpenDevice("01:00.0");
  auto* bar = static_cast<volatile uint32_t*>(Map(edu, 0, kPage));
  ASSERT_NE(bar, MAP_FAILED);
  ASSERT_EQ(FdTable::Global().Close(edu), 0);
  std::erase(fds_, edu);
  vb::RefPtr<hw::Device> dev = sys_->machine().FindDevice("0000:01:00.0");
  std::atomic<bool> removed{false};
  std::thread remover([&] {
    EXPECT_TRUE(sys_->machine().RemoveDevice(*dev, hw::RemovalKind::kSurprise).has_value());
    removed.store(true);
  });
  // The removal cannot finish while the mapping holds the device file; accesses meanwhile reach
  // a disconnected device.
  while (!static_cast<hw::PciDevice&>(*dev).disconnected()) std::this_thread::yield();
  EXPECT_EQ(bar[0], 0xffffffffu);
  bar[1] = 0x1234;
  EXPECT_EQ(bar[1], 0xffffffffu);
  EXPECT_FALSE(removed.load());
  Unmap(const_cast<uint32_t*>(bar), kPage);
  remover.join();
  EXPECT_TRUE(removed.load());
}

// Peer-to-peer (6.1: MAP_DMA of a VM_PFNMAP vma pins PFNs and charges nothing): a BAR mapping
// can be DMA-mapped. A DMA into a memory BAR's pages is a copy; into register pages it is not
// carried out yet and stops with a logged peer-to-peer fault — here the device's own register BAR,
// the case that would deadlock if vfiobox touched the mapping itself.
TEST_F(TrappedMmio, PeerToPeerMapDmaOfBarMappings) {
  const int ep = OpenDevice("07:00.0");
  auto* regs = static_cast<volatile uint8_t*>(Map(ep, 2, TestEndpoint::kBar2Size));
  auto* mem = static_cast<uint8_t*>(Map(ep, 0, TestEndpoint::kBar0Size));
  ASSERT_NE(regs, MAP_FAILED);
  ASSERT_NE(mem, MAP_FAILED);
  auto& locked = vfio::type1::LockedMemory::ForProcess();
  const uint64_t locked_before = locked.locked_bytes();
  // The container is the first fd opened for this device.
  const int container = fds_[0];
  auto map_dma = [&](const volatile void* vaddr, uint64_t iova, uint64_t size) {
    vfio_iommu_type1_dma_map m{.argsz = sizeof m, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                               .vaddr = reinterpret_cast<uint64_t>(vaddr), .iova = iova, .size = size};
    return FdTable::Global().Lookup(container).object->Ioctl(VFIO_IOMMU_MAP_DMA, reinterpret_cast<unsigned long>(&m));
  };
  constexpr uint64_t kRegsIova = 0x100000, kMemIova = 0x200000;
  ASSERT_EQ(map_dma(regs, kRegsIova, TestEndpoint::kBar2Size), 0);
  EXPECT_EQ(locked.locked_bytes(), locked_before) << "register pages are never charged";
  // (A memory BAR's pages are shared memory to type1, pinned and charged like any: a documented
  // difference from 6.1, design 0008.)
  ASSERT_EQ(map_dma(mem, kMemIova, TestEndpoint::kBar0Size), 0);
  auto reg64 = [&](uint32_t off) -> volatile uint64_t& { return *reinterpret_cast<volatile uint64_t*>(regs + off); };
  auto run_dma = [&](uint64_t src_in_bar0, uint64_t dst_iova, uint64_t count) {
    reg64(TestEndpoint::kRegDmaSrc) = src_in_bar0;
    reg64(TestEndpoint::kRegDmaDst) = dst_iova;
    reg64(TestEndpoint::kRegDmaCount) = count;
    reg64(TestEndpoint::kRegDmaCmd) = TestEndpoint::kDmaCmdStart | TestEndpoint::kDmaCmdToRam;
    uint64_t cmd;
    while ((cmd = reg64(TestEndpoint::kRegDmaCmd)) & TestEndpoint::kDmaCmdStart) std::this_thread::yield();
    return cmd;
  };
  SetCommand(ep, Command(ep) | hw::pci::kCommandMaster);
  // Into a memory BAR (its own BAR0, through the IOMMU): a copy.
  std::memcpy(mem, "peer-to-peer", 12);
  EXPECT_EQ(run_dma(0, kMemIova + 0x1000, 12) & TestEndpoint::kDmaCmdError, 0u);
  EXPECT_EQ(std::memcmp(mem + 0x1000, "peer-to-peer", 12), 0);
  // Into register pages: stopped, with the reason in the fault log.
  auto& log = sys_->iommu_core().IommuOf(Hw("07:00.0"))->fault_log();
  const size_t faults_before = log.Snapshot().size();
  EXPECT_NE(run_dma(0, kRegsIova + TestEndpoint::kScratchWindow, 8) & TestEndpoint::kDmaCmdError, 0u);
  auto faults = log.Snapshot();
  ASSERT_EQ(faults.size(), faults_before + 1);
  EXPECT_EQ(faults.back().reason, hw::DmaFaultReason::kPeerToPeer);
  EXPECT_EQ(faults.back().iova, kRegsIova + TestEndpoint::kScratchWindow);
  Unmap(const_cast<uint8_t*>(regs), TestEndpoint::kBar2Size);
  Unmap(mem, TestEndpoint::kBar0Size);
}

// Wide stores are one posted write where the device takes them (the test endpoint's portal), and
// accesses of at most 8 bytes in address order where it does not (the scratch window).
TEST_F(TrappedMmio, WideStoresArePostedWholeWhereTheDeviceTakesThem) {
  const int ep = OpenDevice("07:00.0");
  auto* bar = static_cast<volatile uint8_t*>(Map(ep, 2, 2 * kPage));  // registers and the log
  ASSERT_NE(bar, MAP_FAILED);
  alignas(64) uint8_t src[64];
  for (int i = 0; i < 64; ++i) src[i] = static_cast<uint8_t>(0x40 + i);
  auto log_count = [&] { return *reinterpret_cast<volatile uint32_t*>(bar + TestEndpoint::kRegLogCount); };
  auto log_entry = [&](uint32_t i) {
    return std::pair<uint64_t, uint64_t>{*reinterpret_cast<volatile uint64_t*>(bar + TestEndpoint::kAccessLog + 16 * i),
                                         *reinterpret_cast<volatile uint64_t*>(bar + TestEndpoint::kAccessLog + 16 * i + 8)};
  };
  uint64_t first8;
  std::memcpy(&first8, src, 8);
  // movdqu: 16 bytes, one access at the portal.
  *reinterpret_cast<volatile uint32_t*>(bar + TestEndpoint::kRegLogCount) = 0;
  asm volatile("movdqu (%0), %%xmm0\n\tmovdqu %%xmm0, (%1)" : : "r"(src), "r"(bar + TestEndpoint::kPortal) : "xmm0", "memory");
  ASSERT_EQ(log_count(), 1u);
  EXPECT_EQ(log_entry(0).first, TestEndpoint::kPortal | uint64_t{16} << 32 | TestEndpoint::kLogWrite);
  EXPECT_EQ(log_entry(0).second, first8);
  // The same store to the scratch window: two 8-byte writes in address order.
  *reinterpret_cast<volatile uint32_t*>(bar + TestEndpoint::kRegLogCount) = 0;
  asm volatile("movdqu (%0), %%xmm0\n\tmovdqu %%xmm0, (%1)" : : "r"(src), "r"(bar + TestEndpoint::kScratchWindow) : "xmm0", "memory");
  ASSERT_EQ(log_count(), 2u);
  EXPECT_EQ(log_entry(0).first, TestEndpoint::kScratchWindow | uint64_t{8} << 32 | TestEndpoint::kLogWrite);
  EXPECT_EQ(log_entry(1).first, (TestEndpoint::kScratchWindow + 8) | uint64_t{8} << 32 | TestEndpoint::kLogWrite);
  // MOVDIR64B (where the CPU has it): 64 bytes, one posted write.
  unsigned a, b, c, d;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 28))) {
    *reinterpret_cast<volatile uint32_t*>(bar + TestEndpoint::kRegLogCount) = 0;
    // movdir64b (%rsi), %rdi
    asm volatile(".byte 0x66, 0x0f, 0x38, 0xf8, 0x3e" : : "S"(src), "D"(bar + TestEndpoint::kPortal + 0x40) : "memory");
    ASSERT_EQ(log_count(), 1u);
    EXPECT_EQ(log_entry(0).first, (TestEndpoint::kPortal + 0x40) | uint64_t{64} << 32 | TestEndpoint::kLogWrite);
    EXPECT_EQ(log_entry(0).second, first8);
  }
  Unmap(const_cast<uint8_t*>(bar), 2 * kPage);
}

}  // namespace
}  // namespace uapi
