// Failure injection along every ioctl path, as iommufd's fail_nth selftest does: for each step of
// a container/group/device lifecycle on the default machine (vfio-pci devices, type1 v2, three
// IOMMU instances), fail the 1st, 2nd, ... fallible internal operation (VB_FAIL_POINT) the call
// reaches, until the call reaches no more and succeeds. After every injected failure the errno is
// the kernel's for that allocation (ENOMEM; EMFILE for the fd; EIO for type1's domain allocation)
// and a full snapshot of the state equals the one taken before the call: fd table, locked memory,
// live containers/group files/device files/backends/domains, every type1 mapping record and the
// page tables (CheckInvariantsForTest), dirty tracking, every group's container binding, DMA
// owner and current domain, every device's open count and registrations. Leaks are LSan's (ASan
// build) and the live counters' (every build) business at the end.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/fail_point.h"
#include "iommu/domain.h"
#include "topology/system.h"
#include "uapi/container_file.h"
#include "uapi/fd_table.h"
#include "uapi/node_table.h"
#include "vfio/pci/vfio_pci_driver.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/type1_iommu.h"

namespace uapi {
namespace {

namespace t1 = vfio::type1;

struct Snapshot {
  size_t fds = 0;
  uint64_t locked = 0;
  std::vector<int64_t> live;
  std::vector<std::vector<t1::Iommu::MappingView>> mappings;
  std::vector<std::string> checker;
  std::vector<int> dirty, domains;
  std::map<std::string, std::vector<uint64_t>> groups, devices;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

std::string Describe(const Snapshot& s) {
  std::string o = "fds=" + std::to_string(s.fds) + " locked=" + std::to_string(s.locked) + " live=";
  for (auto v : s.live) o += std::to_string(v) + ",";
  for (size_t i = 0; i < s.mappings.size(); ++i)
    o += " c" + std::to_string(i) + "{maps=" + std::to_string(s.mappings[i].size()) + " dirty=" +
         std::to_string(s.dirty[i]) + " domains=" + std::to_string(s.domains[i]) + " check='" + s.checker[i] + "'}";
  for (auto& [k, v] : s.groups) {
    o += " " + k + "[";
    for (auto x : v) o += std::to_string(x) + ",";
    o += "]";
  }
  for (auto& [k, v] : s.devices) {
    o += " " + k + "[";
    for (auto x : v) o += std::to_string(x) + ",";
    o += "]";
  }
  return o;
}

class FailNth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string err;
    sys_ = topology::System::Create(topology::DefaultTopology(), &err).release();
    ASSERT_NE(sys_, nullptr) << err;
    nodes_ = new VfioNodeTable(sys_->vfio());
  }
  static void TearDownTestSuite() {
    delete nodes_;
    delete sys_;
  }
  void SetUp() override {
    arena = static_cast<uint8_t*>(mmap(nullptr, kArena, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(arena, MAP_FAILED);
    // A 2 MiB-aligned window, so that a 2 MiB MAP makes a large leaf (one more table level).
    aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(arena) + (2 << 20) - 1) & ~uintptr_t{(2 << 20) - 1});
    efd = eventfd(0, EFD_CLOEXEC);
    baseline = Take();
  }
  void TearDown() override {
    vb::FailInjector::Disarm();
    for (int fd : fds) (void)FdTable::Global().Close(fd);
    close(efd);
    munmap(arena, kArena);
  }

  Snapshot Take() {
    Snapshot s;
    s.fds = FdTable::Global().size();
    s.locked = t1::LockedMemory::ForProcess().locked_bytes();
    s.live = {vb::LiveCount<vfio::Container>::live(), vb::LiveCount<vfio::GroupFile>::live(),
              vb::LiveCount<vfio::DeviceFile>::live(), vb::LiveCount<t1::Iommu>::live(),
              vb::LiveCount<iommu::Domain>::live(),    vb::LiveCount<vfio::Group>::live(),
              vb::LiveCount<vfio::Device>::live()};
    for (int fd : fds) {
      auto* c = dynamic_cast<ContainerFileObject*>(FdTable::Global().Lookup(fd).object.get());
      if (!c) continue;
      s.mappings.emplace_back();
      s.checker.emplace_back("no backend");
      s.dirty.push_back(-1);
      s.domains.push_back(-1);
      (void)c->container().WithBackendAs<t1::Iommu>([&](t1::Iommu& io) -> vb::Result<void> {
        s.mappings.back() = io.MappingsForTest();
        s.checker.back() = io.CheckInvariantsForTest();
        s.dirty.back() = io.dirty_tracking();
        s.domains.back() = static_cast<int>(io.domain_count());
        return vb::Ok();
      });
    }
    for (const auto& g : sys_->iommu_core().Groups())
      s.groups["iommu" + std::to_string(g->id())] = {g->DmaOwnerClaimed(),
                                                     static_cast<uint64_t>(g->current_domain_type())};
    for (const auto& g : sys_->vfio().Groups()) {
      s.groups["vfio" + std::to_string(g->id())] = {g->attached_to_container(), g->dead()};
      for (const auto& d : g->Devices()) {
        s.devices[d->name()] = {static_cast<uint64_t>(d->open_count()), d->registrations()};
        if (auto* pci = dynamic_cast<vfio::pci::VfioPciDriver*>(&d->ops())) {
          if (auto* state = pci->StateOf(d->hw())) s.devices[d->name()].push_back(state->ioeventfd_stats().registered);
        }
      }
    }
    return s;
  }

  // The errno the kernel answers when the allocation behind `point` fails on an ioctl path.
  static int ExpectedErrno(const std::string& point) {
    if (point == "fd_table.install") return EMFILE;
    if (point == "iommu.alloc_domain") return EIO;  // type1 attach: iommu_domain_alloc → -EIO
    return ENOMEM;
  }

  // Fails the 1st, 2nd, ... point `op` reaches until it reaches no more; then `op` must succeed.
  // Returns op's successful result.
  long FailNthPath(const char* path, const std::function<long()>& op) {
    for (uint64_t n = 1; n < 500; ++n) {
      const Snapshot before = Take();
      vb::FailInjector::ArmNth(n);
      const long r = op();
      const bool fired = vb::FailInjector::Fired();
      const std::string point = vb::FailInjector::FiredName();
      vb::FailInjector::Disarm();
      if (!fired) {
        EXPECT_GE(r, 0) << path << ": failed with no failure injected (n=" << n << ")";
        points_[path] = n - 1;
        return r;
      }
      ++cases_;
      EXPECT_EQ(r, -ExpectedErrno(point)) << path << " n=" << n << " point " << point;
      const Snapshot after = Take();
      EXPECT_TRUE(after == before) << path << " n=" << n << " point " << point << "\nbefore: " << Describe(before)
                                   << "\nafter:  " << Describe(after);
      if (r >= 0 && r != -ExpectedErrno(point)) {
        // Injected failure swallowed: the op succeeded. Keep the result's fd so it is closed.
        return r;
      }
    }
    ADD_FAILURE() << path << ": never succeeded";
    return -1;
  }

  int OpenNode(const std::string& path) {
    int err = 0;
    auto obj = nodes_->Open(path, O_RDWR, &err);
    if (!obj) return -err;
    return FdTable::Global().Install(std::move(obj), O_CLOEXEC, nodes_->Rdev(path).value_or(0));
  }
  int Track(long fd) {
    if (fd >= 0) fds.push_back(static_cast<int>(fd));
    return static_cast<int>(fd);
  }
  static long Ioctl(int fd, unsigned long req, const void* arg) {
    FdTable::Entry e = FdTable::Global().Lookup(fd);
    if (e.state != FdTable::State::kOurs) return -EBADF;
    return e.object->Ioctl(req, reinterpret_cast<unsigned long>(arg));
  }
  static long Ioctl(int fd, unsigned long req, unsigned long arg) {
    FdTable::Entry e = FdTable::Global().Lookup(fd);
    if (e.state != FdTable::State::kOurs) return -EBADF;
    return e.object->Ioctl(req, arg);
  }
  std::string GroupPath(const std::string& dev) {
    return "/dev/vfio/" + std::to_string(sys_->iommu_core().GroupOf(*sys_->machine().FindDevice(dev))->id());
  }
  long Map(int c, uint64_t iova, const void* vaddr, uint64_t size, uint32_t flags) {
    vfio_iommu_type1_dma_map m{sizeof(m), flags, reinterpret_cast<uint64_t>(vaddr), iova, size};
    return Ioctl(c, VFIO_IOMMU_MAP_DMA, &m);
  }

  // Prints "path: failures" per path; returns the total.
  uint64_t PrintSummary() const {
    uint64_t total = 0;
    std::printf("fail-nth: %d injected failures over %zu paths\n", cases_, points_.size());
    for (auto& [path, n] : points_) {
      std::printf("  %s: %lu\n", path.c_str(), static_cast<unsigned long>(n));
      total += n;
    }
    return total;
  }

  static constexpr size_t kArena = 8 << 20;
  static inline topology::System* sys_ = nullptr;
  static inline VfioNodeTable* nodes_ = nullptr;
  uint8_t* arena = nullptr;
  uint8_t* aligned = nullptr;
  int efd = -1;
  std::vector<int> fds;
  Snapshot baseline;
  int cases_ = 0;
  std::map<std::string, uint64_t> points_;
};

TEST_F(FailNth, EveryIoctlPathFailsCleanlyAtEveryFailPoint) {
  constexpr uint32_t kRW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  const int c = Track(FailNthPath("open container", [&] { return static_cast<long>(OpenNode("/dev/vfio/vfio")); }));
  ASSERT_GE(c, 0);
  const std::string edu = "0000:01:00.0", tep = "0000:07:00.0", pbr = "0000:04:01.0";
  const int g1 = Track(FailNthPath("open group", [&] { return static_cast<long>(OpenNode(GroupPath(edu))); }));
  ASSERT_GE(g1, 0);
  FailNthPath("SET_CONTAINER (no backend)", [&] { return Ioctl(g1, VFIO_GROUP_SET_CONTAINER, &c); });
  FailNthPath("SET_IOMMU type1v2", [&] { return Ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU); });
  const int d1 = Track(FailNthPath("GET_DEVICE_FD edu", [&] { return Ioctl(g1, VFIO_GROUP_GET_DEVICE_FD, edu.c_str()); }));
  ASSERT_GE(d1, 0);
  FailNthPath("MAP_DMA 16K", [&] { return Map(c, 0x100000, arena, 0x4000, kRW); });
  FailNthPath("MAP_DMA 2M leaf", [&] { return Map(c, 0x40000000, aligned, 2 << 20, kRW); });
  FailNthPath("MAP_DMA read-only", [&] { return Map(c, 0x200000, arena + 0x4000, 0x1000, VFIO_DMA_MAP_FLAG_READ); });

  // A group of another IOMMU instance: a new domain that replays every mapping.
  const int g2 = Track(FailNthPath("open group 2", [&] { return static_cast<long>(OpenNode(GroupPath(tep))); }));
  ASSERT_GE(g2, 0);
  FailNthPath("SET_CONTAINER (new domain, replay)", [&] { return Ioctl(g2, VFIO_GROUP_SET_CONTAINER, &c); });
  // A group of the same instance: the domain is reused.
  const int g3 = Track(FailNthPath("open group 3", [&] { return static_cast<long>(OpenNode(GroupPath(pbr))); }));
  ASSERT_GE(g3, 0);
  FailNthPath("SET_CONTAINER (domain reuse)", [&] { return Ioctl(g3, VFIO_GROUP_SET_CONTAINER, &c); });
  const int d2 = Track(FailNthPath("GET_DEVICE_FD test-endpoint", [&] { return Ioctl(g2, VFIO_GROUP_GET_DEVICE_FD, tep.c_str()); }));
  ASSERT_GE(d2, 0);
  FailNthPath("MAP_DMA (two domains)", [&] { return Map(c, 0x300000, arena + 0x5000, 0x3000, kRW); });

  // Dirty tracking.
  alignas(8) uint8_t start[sizeof(vfio_iommu_type1_dirty_bitmap)];
  auto* sh = reinterpret_cast<vfio_iommu_type1_dirty_bitmap*>(start);
  *sh = {sizeof(start), VFIO_IOMMU_DIRTY_PAGES_FLAG_START};
  FailNthPath("DIRTY_PAGES START", [&] { return Ioctl(c, VFIO_IOMMU_DIRTY_PAGES, start); });
  FailNthPath("MAP_DMA while tracking", [&] { return Map(c, 0x500000, arena + 0x8000, 0x2000, kRW); });
  __u64 bits[8] = {};
  alignas(8) uint8_t getb[sizeof(vfio_iommu_type1_dirty_bitmap) + sizeof(vfio_iommu_type1_dirty_bitmap_get)];
  *reinterpret_cast<vfio_iommu_type1_dirty_bitmap*>(getb) = {sizeof(getb), VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP};
  *reinterpret_cast<vfio_iommu_type1_dirty_bitmap_get*>(getb + sizeof(vfio_iommu_type1_dirty_bitmap)) = {
      0x100000, 0x4000, {4096, sizeof(bits), bits}};
  FailNthPath("DIRTY_PAGES GET_BITMAP", [&] { return Ioctl(c, VFIO_IOMMU_DIRTY_PAGES, getb); });
  alignas(8) uint8_t ub[sizeof(vfio_iommu_type1_dma_unmap) + sizeof(vfio_bitmap)];
  *reinterpret_cast<vfio_iommu_type1_dma_unmap*>(ub) = {sizeof(ub), VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0x500000, 0x2000};
  *reinterpret_cast<vfio_bitmap*>(ub + sizeof(vfio_iommu_type1_dma_unmap)) = {4096, sizeof(bits), bits};
  FailNthPath("UNMAP_DMA GET_DIRTY_BITMAP", [&] { return Ioctl(c, VFIO_IOMMU_UNMAP_DMA, ub); });
  alignas(8) uint8_t stop[sizeof(vfio_iommu_type1_dirty_bitmap)];
  *reinterpret_cast<vfio_iommu_type1_dirty_bitmap*>(stop) = {sizeof(stop), VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP};
  FailNthPath("DIRTY_PAGES STOP", [&] { return Ioctl(c, VFIO_IOMMU_DIRTY_PAGES, stop); });

  // INFO ioctls with capability chains.
  alignas(8) uint8_t info[512];
  FailNthPath("IOMMU_GET_INFO", [&] {
    std::memset(info, 0, sizeof(info));
    reinterpret_cast<vfio_iommu_type1_info*>(info)->argsz = sizeof(info);
    return Ioctl(c, VFIO_IOMMU_GET_INFO, info);
  });
  for (uint32_t index = 0; index < 8; ++index) {  // 8 (VGA): not on these devices
    FailNthPath(("GET_REGION_INFO " + std::to_string(index)).c_str(), [&] {
      std::memset(info, 0, sizeof(info));
      auto* ri = reinterpret_cast<vfio_region_info*>(info);
      ri->argsz = sizeof(info);
      ri->index = index;
      return Ioctl(d2, VFIO_DEVICE_GET_REGION_INFO, info);
    });
  }
  // Interrupts on eventfds.
  alignas(8) uint8_t irq[sizeof(vfio_irq_set) + sizeof(int32_t)];
  auto* is = reinterpret_cast<vfio_irq_set*>(irq);
  *is = {sizeof(irq), VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1};
  std::memcpy(irq + sizeof(vfio_irq_set), &efd, sizeof(efd));
  FailNthPath("SET_IRQS MSI-X eventfd", [&] { return Ioctl(d2, VFIO_DEVICE_SET_IRQS, irq); });
  is->index = VFIO_PCI_INTX_IRQ_INDEX;
  FailNthPath("SET_IRQS INTx eventfd", [&] { return Ioctl(d1, VFIO_DEVICE_SET_IRQS, irq); });
  is->index = VFIO_PCI_REQ_IRQ_INDEX;
  FailNthPath("SET_IRQS REQ eventfd", [&] { return Ioctl(d1, VFIO_DEVICE_SET_IRQS, irq); });
  // An ioeventfd on the test endpoint's scratch register (BAR2 + 4), then its delete.
  vfio_device_ioeventfd io{sizeof(io), VFIO_DEVICE_IOEVENTFD_32, (uint64_t{VFIO_PCI_BAR2_REGION_INDEX} << 40) | 4, 1, efd};
  FailNthPath("IOEVENTFD", [&] { return Ioctl(d2, VFIO_DEVICE_IOEVENTFD, &io); });
  io.fd = -1;
  FailNthPath("IOEVENTFD delete", [&] { return Ioctl(d2, VFIO_DEVICE_IOEVENTFD, &io); });
  // Region read/write (bounce buffers).
  auto dobj = FdTable::Global().Lookup(d1).object;
  uint32_t cfg = 0;
  FailNthPath("pread config", [&] { return static_cast<long>(dobj->Pread(&cfg, 4, off_t{7} << 40)); });
  FailNthPath("pwrite config", [&] { return static_cast<long>(dobj->Pwrite(&cfg, 4, off_t{7} << 40)); });
  alignas(8) uint8_t hr[sizeof(vfio_pci_hot_reset_info) + 8 * sizeof(vfio_pci_dependent_device)] = {};
  FailNthPath("GET_PCI_HOT_RESET_INFO", [&] {
    reinterpret_cast<vfio_pci_hot_reset_info*>(hr)->argsz = sizeof(hr);
    long r = Ioctl(d1, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, hr);
    return r == -ENODEV || r == -EPERM ? 0 : r;  // edu alone on its bus: no dependents needed
  });
  FailNthPath("RESET", [&] {
    long r = Ioctl(d1, VFIO_DEVICE_RESET, 0ul);
    return r == -ENOTTY ? 0 : r;
  });
  alignas(8) uint8_t all[sizeof(vfio_iommu_type1_dma_unmap)];
  *reinterpret_cast<vfio_iommu_type1_dma_unmap*>(all) = {sizeof(all), VFIO_DMA_UNMAP_FLAG_ALL, 0, 0};
  FailNthPath("UNMAP_DMA ALL", [&] { return Ioctl(c, VFIO_IOMMU_UNMAP_DMA, all); });
  // Detach cannot fail (the kernel keeps the old IOVA list when rebuilding it cannot allocate):
  // with each of its points failed UNSET still succeeds and leaves a consistent container.
  for (uint64_t n = 1;; ++n) {
    vb::FailInjector::ArmNth(n);
    const long r = Ioctl(g3, VFIO_GROUP_UNSET_CONTAINER, 0ul);
    const bool fired = vb::FailInjector::Fired();
    vb::FailInjector::Disarm();
    ASSERT_EQ(r, 0) << "UNSET_CONTAINER n=" << n;
    const Snapshot s = Take();
    for (const std::string& check : s.checker) EXPECT_EQ(check, "") << "UNSET_CONTAINER n=" << n;
    if (!fired) break;
    ++cases_;
    points_["UNSET_CONTAINER (absorbed)"] = n;
    ASSERT_EQ(Ioctl(g3, VFIO_GROUP_SET_CONTAINER, &c), 0);
  }
  dobj.reset();

  // Everything closes back to the machine's idle state.
  for (int fd : fds) ASSERT_EQ(FdTable::Global().Close(fd), 0);
  fds.clear();
  sys_->machine().executor().Drain();
  EXPECT_TRUE(Take() == baseline) << Describe(Take()) << "\nbaseline: " << Describe(baseline);

  EXPECT_EQ(static_cast<uint64_t>(cases_), PrintSummary());
  EXPECT_GT(cases_, 40);
}


TEST_F(FailNth, SetIommuOverTwoGroupsV1AndVaddrPathsFailCleanly) {
  // SET_IOMMU with two groups of different IOMMU instances already in the container: the second
  // attach failing must detach the first and release the instance.
  const int c = Track(OpenNode("/dev/vfio/vfio"));
  const int ga = Track(OpenNode(GroupPath("0000:01:00.0")));
  const int gb = Track(OpenNode(GroupPath("0000:07:00.0")));
  ASSERT_GE(gb, 0);
  ASSERT_EQ(Ioctl(ga, VFIO_GROUP_SET_CONTAINER, &c), 0);
  ASSERT_EQ(Ioctl(gb, VFIO_GROUP_SET_CONTAINER, &c), 0);
  FailNthPath("SET_IOMMU type1 v1 (two groups, two domains)", [&] { return Ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU); });
  constexpr uint32_t kRW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  FailNthPath("MAP_DMA v1 (two domains)", [&] { return Map(c, 0x100000, arena, 0x10000, kRW); });
  FailNthPath("MAP_DMA v1 2M (two domains)", [&] { return Map(c, 0x40000000, aligned, 2 << 20, kRW); });
  // The update-vaddr protocol: invalidate, then map the new vaddr.
  alignas(8) uint8_t u[sizeof(vfio_iommu_type1_dma_unmap)];
  *reinterpret_cast<vfio_iommu_type1_dma_unmap*>(u) = {sizeof(u), VFIO_DMA_UNMAP_FLAG_VADDR, 0x100000, 0x10000};
  FailNthPath("UNMAP_DMA VADDR", [&] { return Ioctl(c, VFIO_IOMMU_UNMAP_DMA, u); });
  FailNthPath("MAP_DMA VADDR", [&] { return Map(c, 0x100000, arena + 0x10000, 0x10000, VFIO_DMA_MAP_FLAG_VADDR); });
  // v1 unmap that ends inside a mapping removes it whole.
  *reinterpret_cast<vfio_iommu_type1_dma_unmap*>(u) = {sizeof(u), 0, 0x40000000, 0x1000};
  FailNthPath("UNMAP_DMA v1 partial", [&] { return Ioctl(c, VFIO_IOMMU_UNMAP_DMA, u); });
  // Hot reset with the group fds (the 04:0x.0 pair shares a bus; edu is alone on its own).
  const int d = Track(FailNthPath("GET_DEVICE_FD edu (v1)", [&] { return Ioctl(ga, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0"); }));
  ASSERT_GE(d, 0);
  alignas(8) uint8_t hr[sizeof(vfio_pci_hot_reset) + sizeof(int32_t)];
  *reinterpret_cast<vfio_pci_hot_reset*>(hr) = {sizeof(hr), 0, 1};
  std::memcpy(hr + sizeof(vfio_pci_hot_reset), &ga, sizeof(int32_t));
  FailNthPath("PCI_HOT_RESET", [&] {
    long r = Ioctl(d, VFIO_DEVICE_PCI_HOT_RESET, hr);
    return r == -ENODEV || r == -EPERM || r == -EINVAL ? 0 : r;  // whatever the topology allows
  });
  for (int fd : fds) ASSERT_EQ(FdTable::Global().Close(fd), 0);
  fds.clear();
  sys_->machine().executor().Drain();
  EXPECT_TRUE(Take() == baseline) << Describe(Take()) << "\nbaseline: " << Describe(baseline);
  EXPECT_EQ(static_cast<uint64_t>(cases_), PrintSummary());
  EXPECT_GT(cases_, 10);
}


// Regression (fuzzer, injection at random states): SET_IOMMU over the groups of edu (dmar0),
// 07:00.0 (smmu0) and 08:00.0 (dmar1) attaches two domains, is refused on the third (dmar1 has no
// interrupt remapping: EPERM) and detaches the first two again; a failure injected into the
// detach that leaves a domain behind (the IOVA list rebuild, absorbed by design) must leave the
// call's answer EPERM and the state as before.
TEST_F(FailNth, FuzzRollbackDetachAbsorbsItsFailureAndSetIommuStillAnswersEperm) {
  const int c = Track(OpenNode("/dev/vfio/vfio"));
  const int ga = Track(OpenNode(GroupPath("0000:01:00.0")));
  const int gs = Track(OpenNode(GroupPath("0000:07:00.0")));
  const int gb = Track(OpenNode(GroupPath("0000:08:00.0")));
  ASSERT_GE(gb, 0);
  ASSERT_EQ(Ioctl(ga, VFIO_GROUP_SET_CONTAINER, &c), 0);
  ASSERT_EQ(Ioctl(gs, VFIO_GROUP_SET_CONTAINER, &c), 0);
  ASSERT_EQ(Ioctl(gb, VFIO_GROUP_SET_CONTAINER, &c), 0);
  bool saw_rebuild = false;
  for (uint64_t n = 1;; ++n) {
    const Snapshot before = Take();
    vb::FailInjector::ArmNth(n);
    const long r = Ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    const bool fired = vb::FailInjector::Fired();
    const std::string point = vb::FailInjector::FiredName();
    vb::FailInjector::Disarm();
    EXPECT_TRUE(Take() == before) << "n=" << n << " point " << point;
    if (!fired) {
      EXPECT_EQ(r, -EPERM);
      break;
    }
    if (point == "type1.iova_list_rebuild") {
      saw_rebuild = true;
      EXPECT_EQ(r, -EPERM) << "n=" << n;
    } else {
      EXPECT_EQ(r, -ExpectedErrno(point)) << "n=" << n << " point " << point;
    }
  }
  EXPECT_TRUE(saw_rebuild);
}

}  // namespace
}  // namespace uapi
