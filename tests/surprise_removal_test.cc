// Surprise removal on the default machine, the cases the layer tests do not cover: a device
// removed while it is doing DMA, while another thread runs MAP/UNMAP on its container, while its
// interrupts are in flight, and while its group is being attached. In each case: unregistration
// waits for the user's handles while REQ is signalled, the user closes on REQ, the removal then
// completes, nothing the device had is used after it is gone (ASan/TSan builds), no DMA of the
// removed device reaches memory, and the type1 state and the locked-memory account end consistent.
#include <gtest/gtest.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "devices/test_endpoint.h"
#include "hw/pci_regs.h"
#include "iommu/iommu.h"
#include "topology/system.h"
#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/type1_iommu.h"

namespace {

namespace t1 = vfio::type1;

using vfio::testing::Scaled;

struct Efd {
  Efd() : fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Efd() { close(fd); }
  uint64_t Take() const {
    uint64_t v = 0;
    return read(fd, &v, sizeof v) == sizeof v ? v : 0;
  }
  uint64_t Wait(int ms) const {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 ? Take() : 0;
  }
  int fd;
};

class SurpriseRemoval : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    sys = topology::System::Create(topology::DefaultTopology(), &err);
    ASSERT_TRUE(sys) << err;
    buf = static_cast<uint8_t*>(mmap(nullptr, kBuf, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(buf, MAP_FAILED);
    locked_before = t1::LockedMemory::ForProcess().locked_bytes();
    live_before = Live();
  }
  void TearDown() override {
    dev_file = nullptr;
    group_file = nullptr;
    container = nullptr;
    sys.reset();
    munmap(buf, kBuf);
  }
  static std::vector<int64_t> Live() {
    return {vb::LiveCount<vfio::Container>::live(), vb::LiveCount<vfio::GroupFile>::live(),
            vb::LiveCount<vfio::DeviceFile>::live(), vb::LiveCount<t1::Iommu>::live()};
  }

  // Container + group + type1 v2 + device fd for `name`, bus mastering and memory decode on.
  void Open(const std::string& name) {
    hwdev = sys->machine().FindDevice(name);
    ASSERT_TRUE(hwdev);
    container = sys->vfio().OpenContainer();
    auto g = sys->vfio().OpenGroup(sys->iommu_core().GroupOf(*hwdev)->id());
    ASSERT_TRUE(g.has_value());
    group_file = *g;
    ASSERT_TRUE(group_file->SetContainer(container).has_value());
    ASSERT_TRUE(container->SetIommu(t1::kExtType1v2).has_value());
    auto d = group_file->GetDevice(name);
    ASSERT_TRUE(d.has_value());
    dev_file = *d;
    uint16_t cmd = hw::pci::kCommandMemory | hw::pci::kCommandMaster;
    ASSERT_EQ(Ops().Write(Dev(), &cmd, 2, (uint64_t{7} << 40) + hw::pci::kCommand).value_or(0), 2u);
    ASSERT_EQ(SetIrq(VFIO_PCI_REQ_IRQ_INDEX, 0, req.fd), 0);
  }
  vfio::Device& Dev() { return dev_file->device(); }
  vfio::DeviceOps& Ops() { return Dev().ops(); }
  int SetIrq(uint32_t index, uint32_t start, int32_t fd) {
    vfio::SetIrqsRequest r{VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, start, 1};
    r.fds = std::span<const int32_t>(&fd, 1);
    return vb::ErrnoOf(Ops().SetIrqs(Dev(), r));
  }
  vb::Result<void> Map(uint64_t iova, uint64_t off, uint64_t size) {
    return container->WithBackendAs<t1::Iommu>([&](t1::Iommu& io) {
      return io.MapDma({t1::kMapFlagRead | t1::kMapFlagWrite, reinterpret_cast<uint64_t>(buf) + off, iova, size});
    });
  }
  // Starts removing the device on a thread; returns once REQ has been signalled at least once
  // (unregistration is waiting for our handles).
  void RemoveAndWaitForReq(std::thread& t, std::atomic<bool>& removed) {
    t = std::thread([&] {
      EXPECT_TRUE(sys->machine().RemoveDevice(*hwdev, hw::RemovalKind::kSurprise).has_value());
      removed = true;
    });
    EXPECT_GE(req.Wait(5000), 1u) << "REQ not signalled";
    EXPECT_FALSE(removed.load()) << "removal finished with a device fd open";
  }
  // The user's answer to REQ: close everything.
  void CloseAll() {
    dev_file = nullptr;
    group_file = nullptr;
    container = nullptr;
  }
  void ExpectAllReleased() {
    EXPECT_EQ(t1::LockedMemory::ForProcess().locked_bytes(), locked_before);
    EXPECT_EQ(Live(), live_before);
  }

  static constexpr size_t kBuf = 64 << 10;
  std::unique_ptr<topology::System> sys;
  uint8_t* buf = nullptr;
  vb::RefPtr<hw::Device> hwdev;
  vb::RefPtr<vfio::Container> container;
  vb::RefPtr<vfio::GroupFile> group_file;
  vb::RefPtr<vfio::DeviceFile> dev_file;
  Efd req;
  uint64_t locked_before = 0;
  std::vector<int64_t> live_before;
};

TEST_F(SurpriseRemoval, DuringDeviceDmaNoDmaReachesMemoryOnceRemoved) {
  Open("0000:07:00.0");
  ASSERT_TRUE(Map(0x100000, 0, kBuf).has_value());
  std::atomic<bool> stop{false}, removed{false};
  std::atomic<uint64_t> ok{0}, after_removal_ok{0};
  std::thread dma([&] {
    uint8_t data[256];
    std::memset(data, 0xa5, sizeof data);
    for (uint64_t i = 0; !stop.load(); ++i) {
      const bool was_removed = removed.load();
      if (hwdev->dma().Write(0x100000 + (i * 256) % kBuf, data, sizeof data).has_value()) {
        ok.fetch_add(1);
        if (was_removed) after_removal_ok.fetch_add(1);
      }
    }
  });
  while (ok.load() < 100) std::this_thread::yield();
  std::thread remover;
  RemoveAndWaitForReq(remover, removed);
  CloseAll();
  remover.join();
  ASSERT_TRUE(removed.load());
  // From here the device is out of its group: its DMA translates through nothing.
  std::memset(buf, 0x11, kBuf);
  const uint64_t ok_at_removal = ok.load();
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  stop = true;
  dma.join();
  EXPECT_EQ(after_removal_ok.load(), 0u);
  // The one transfer that was in flight at removal finished its copy before removal returned (its
  // bytes are under the memset above) but may count itself afterwards.
  EXPECT_LE(ok.load(), ok_at_removal + 1);
  for (size_t i = 0; i < kBuf; ++i) ASSERT_EQ(buf[i], 0x11) << "byte " << i << " written after removal";
  ExpectAllReleased();
}

TEST_F(SurpriseRemoval, DuringMapDmaType1StaysConsistentAndEverythingIsUncharged) {
  Open("0000:01:00.0");
  ASSERT_TRUE(Map(0x800000, 0, 0x4000).has_value());
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  std::string bad;
  vb::RefPtr<vfio::Container> c = container;  // the mapper's own handle
  std::thread mapper([&, c] {
    for (uint64_t i = 0; !stop.load(); ++i) {
      const uint64_t iova = 0x100000 + (i % 8) * 0x2000;
      auto r = c->WithBackendAs<t1::Iommu>([&](t1::Iommu& io) -> vb::Result<void> {
        (void)io.MapDma({t1::kMapFlagRead | t1::kMapFlagWrite, reinterpret_cast<uint64_t>(buf) + 0x4000 + (i % 8) * 0x2000,
                         iova, 0x2000});
        if (i % 3) (void)io.UnmapDma({0, iova, 0x2000});
        std::string s = io.CheckInvariantsForTest();
        if (!s.empty() && bad.empty()) bad = s;
        return vb::Ok();
      });
      if (!r.has_value()) break;  // the backend went with the group
      rounds.fetch_add(1);
    }
  });
  while (rounds.load() < 50) std::this_thread::yield();
  std::thread remover;
  std::atomic<bool> removed{false};
  RemoveAndWaitForReq(remover, removed);
  CloseAll();
  remover.join();
  mapper.join();  // ends on its own: the container has no backend any more
  EXPECT_EQ(bad, "");
  EXPECT_FALSE(c->has_backend());
  c = nullptr;
  ExpectAllReleased();
}

TEST_F(SurpriseRemoval, WithInterruptsInFlightNothingIsSignalledAfterTheLastClose) {
  Open("0000:07:00.0");
  Efd vec0;
  ASSERT_EQ(SetIrq(VFIO_PCI_MSIX_IRQ_INDEX, 0, vec0.fd), 0);
  auto* ep = static_cast<hw::PciDevice*>(hwdev.get());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rung{0};
  // The device keeps raising its vector 0 (doorbell register) before, during and after removal.
  std::thread doorbell([&] {
    while (!stop.load()) {
      uint64_t v = 0;
      (void)ep->BarWrite(2, devices::TestEndpoint::kRegDoorbell, &v, 4);
      rung.fetch_add(1);
    }
  });
  ASSERT_GE(vec0.Wait(5000), 1u) << "the vector does not fire before removal";
  std::thread remover;
  std::atomic<bool> removed{false};
  RemoveAndWaitForReq(remover, removed);
  CloseAll();
  remover.join();
  const uint64_t rung_at_removal = rung.load();
  while (rung.load() < rung_at_removal + 1000) std::this_thread::yield();
  sys->machine().executor().Drain();
  (void)vec0.Take();  // whatever was delivered before the last close
  for (int i = 0; i < 100; ++i) std::this_thread::yield();
  EXPECT_EQ(vec0.Wait(20), 0u) << "an interrupt was signalled after the device fd was closed";
  stop = true;
  doorbell.join();
  ExpectAllReleased();
}

TEST_F(SurpriseRemoval, DuringAttachTheContainerKeepsOneConsistentDomain) {
  // A container kept alive by another group of the same IOMMU instance, with a mapping.
  container = sys->vfio().OpenContainer();
  auto other = sys->vfio().OpenGroup(sys->iommu_core().GroupOf(*sys->machine().FindDevice("0000:04:01.0"))->id());
  ASSERT_TRUE(other.has_value());
  ASSERT_TRUE((*other)->SetContainer(container).has_value());
  ASSERT_TRUE(container->SetIommu(t1::kExtType1v2).has_value());
  ASSERT_TRUE(Map(0x100000, 0, 0x8000).has_value());
  hwdev = sys->machine().FindDevice("0000:01:00.0");
  auto edu_group = sys->vfio().OpenGroup(sys->iommu_core().GroupOf(*hwdev)->id());
  ASSERT_TRUE(edu_group.has_value());
  std::atomic<int> attaches{0};
  std::atomic<int> last_errno{0};
  std::string bad;
  vb::RefPtr<vfio::Container> c = container;
  vb::RefPtr<vfio::GroupFile> gf = *edu_group;
  const int rounds = Scaled(2000);
  std::thread attacher([&, c, gf] {
    for (int i = 0; i < rounds; ++i) {
      auto r = gf->SetContainer(c);
      if (!r.has_value()) {
        last_errno = r.error().errnum;
        if (r.error().errnum == ENODEV) break;  // the group is gone
        continue;
      }
      attaches.fetch_add(1);
      (void)c->WithBackendAs<t1::Iommu>([&](t1::Iommu& io) -> vb::Result<void> {
        std::string s = io.CheckInvariantsForTest();
        if (!s.empty() && bad.empty()) bad = s;
        return vb::Ok();
      });
      (void)gf->UnsetContainer();
    }
  });
  while (attaches.load() < 5 && last_errno.load() == 0) std::this_thread::yield();
  ASSERT_TRUE(sys->machine().RemoveDevice(*hwdev, hw::RemovalKind::kSurprise).has_value());
  attacher.join();
  EXPECT_EQ(bad, "");
  EXPECT_EQ(vb::ErrnoOf(gf->SetContainer(c)), ENODEV);
  EXPECT_EQ(container->group_count(), 1u);
  (void)container->WithBackendAs<t1::Iommu>([&](t1::Iommu& io) -> vb::Result<void> {
    EXPECT_EQ(io.CheckInvariantsForTest(), "");
    EXPECT_EQ(io.domain_count(), 1u);
    EXPECT_EQ(io.mapping_count(), 1u);
    return vb::Ok();
  });
  gf = nullptr;
  c = nullptr;
  edu_group = vb::Err(0);
  *other = nullptr;
  CloseAll();
  ExpectAllReleased();
}

}  // namespace
