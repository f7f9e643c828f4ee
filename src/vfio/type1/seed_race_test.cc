// The seed's race (shared/seed, docs/design/0001): attach derives the domain from one member of
// the IOMMU group, and that member must stay present for as long as it is used. These tests race
// attach/detach and MAP/UNMAP against hot-unplug and re-plug of the group's members, and pause
// inside attach while another thread removes the chosen device.
#include <sys/mman.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"

namespace vfio::type1 {
namespace {

using vfio::testing::Scaled;
using vfio::testing::VfioFixture;

class Type1SeedRace : public VfioFixture {
 protected:
  void TearDown() override {
    Iommu::SetAttachHookForTest(nullptr);
    VfioFixture::TearDown();
  }
};

// A one-shot gate.
struct Latch {
  void Open() {
    std::lock_guard<std::mutex> l(mu);
    open = true;
    cv.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return open; });
  }
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
};

TEST_F(Type1SeedRace, UnplugWaitsForAttachCallback) {
  const int id = GroupIdOf("02:00.0");
  Latch in_attach, release;
  std::atomic<hw::Device*> chosen{nullptr};
  std::atomic<bool> present_throughout{true};
  Iommu::SetAttachHookForTest([&](hw::Device& dev) {
    chosen = &dev;
    in_attach.Open();
    release.Wait();
    // The other thread has started removing it (state kRemoving, driver unbound), but it cannot
    // leave the IOMMU group while this callback holds the group's lock.
    present_throughout = present_throughout && dev.state() != hw::DeviceState::kRemoved;
  });

  auto c = vfio.OpenContainer();
  auto g = *vfio.OpenGroup(id);
  ASSERT_TRUE(g->SetContainer(c).has_value());
  std::thread attacher([&] { EXPECT_TRUE(c->SetIommu(kExtType1v2).has_value()); });
  in_attach.Wait();
  ASSERT_NE(chosen.load(), nullptr);
  vb::RefPtr<hw::Device> victim(chosen.load());

  std::atomic<bool> removed{false};
  std::thread unplugger([&] {
    EXPECT_TRUE(machine.RemoveDevice(*victim).has_value());
    removed = true;
  });
  // The removal cannot finish while attach is using the device.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(removed.load());
  EXPECT_NE(victim->state(), hw::DeviceState::kRemoved);
  EXPECT_EQ(victim->state(), hw::DeviceState::kRemoving);
  release.Open();
  attacher.join();
  unplugger.join();
  EXPECT_TRUE(removed.load());
  EXPECT_TRUE(present_throughout.load());
  EXPECT_EQ(victim->state(), hw::DeviceState::kRemoved);
  EXPECT_FALSE(core.GroupOf(*victim));
  // The departed device's DMA is blocked; the remaining member still translates through type1.
  uint8_t x = 0;
  EXPECT_EQ(vb::ErrnoOf(victim->dma().Write(0x1000, &x, 1)), EFAULT);
}

TEST_F(Type1SeedRace, AttachFailsCleanlyWhenEveryMemberIsGone) {
  // With the IOMMU group empty there is no member to derive ops from: ENODEV, nothing half-done.
  auto c = vfio.OpenContainer();
  auto g = *vfio.OpenGroup(GroupIdOf("01:00.0"));
  ASSERT_TRUE(g->SetContainer(c).has_value());
  iommu::Group& ig = g->group().iommu_group();
  vb::RefPtr<iommu::Group> hold(&ig);
  // Unplugging the only device tears the VFIO group down (and detaches it).
  ASSERT_TRUE(machine.RemoveDevice(Dev("01:00.0")).has_value());
  EXPECT_EQ(c->group_count(), 0u);
  // Asking the emptied IOMMU group directly is ENODEV.
  auto r = ig.ForFirstDevice([](hw::Device&, iommu::Iommu&) -> vb::Result<void> { return vb::Ok(); });
  EXPECT_EQ(vb::ErrnoOf(r), ENODEV);
}

// Threads hot-unplug and re-plug the members of a two-device group while others attach and
// detach that group to containers and map/unmap. Every attach callback checks that the device it
// was handed is present; every operation either succeeds or answers a kernel errno.
TEST_F(Type1SeedRace, StressUnplugReplugAgainstAttachDetachAndMap) {
  const int kIterations = Scaled(100000);
  std::atomic<int> iterations{0};
  std::atomic<int> attach_callbacks{0};
  std::atomic<int> departed_in_callback{0};
  std::atomic<bool> stop{false};
  Iommu::SetAttachHookForTest([&](hw::Device& dev) {
    attach_callbacks.fetch_add(1, std::memory_order_relaxed);
    // Removal may have begun, but the device cannot have left its IOMMU group.
    if (dev.state() == hw::DeviceState::kRemoved) departed_in_callback.fetch_add(1);
    std::this_thread::yield();  // widen the window for the unplug threads
    if (dev.state() == hw::DeviceState::kRemoved) departed_in_callback.fetch_add(1);
  });
  void* mem = mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);

  auto plug_cycle = [&](const std::string& bdf, bool multi) {
    while (!stop) {
      vb::RefPtr<hw::Device> dev = machine.FindDevice("0000:" + bdf);
      if (dev) (void)machine.RemoveDevice(*dev);
      auto fn = vfio::testing::Endpoint();
      if (multi) fn.Multi();
      auto fresh = MakePci(bdf, fn);
      if (machine.AddPciDevice(fresh).has_value()) (void)machine.BindDriver(*fresh, vfio_driver);
      iterations.fetch_add(1, std::memory_order_relaxed);
    }
  };
  auto attach_cycle = [&] {
    while (!stop) {
      auto ig = core.GroupOf(*machine.FindDevice("0000:00:02.0"));  // the root port never leaves
      vb::RefPtr<vfio::Group> vg;
      for (auto& g : vfio.Groups())
        if (g->iommu_group().id() != ig->id()) vg = g;
      if (!vg) {
        std::this_thread::yield();
        continue;
      }
      auto gf = vfio.OpenGroup(vg->id());
      if (!gf.has_value()) {
        EXPECT_TRUE(gf.error().errnum == ENODEV || gf.error().errnum == EBUSY) << gf.error().ToString();
        continue;
      }
      auto c = vfio.OpenContainer();
      auto set = (*gf)->SetContainer(c);
      if (set.has_value()) {
        auto iommu = c->SetIommu(kExtType1v2);
        if (iommu.has_value()) {
          (void)c->WithBackendAs<Iommu>([&](Iommu& b) -> vb::Result<void> {
            auto m = b.MapDma(MapRequest{kMapFlagRead | kMapFlagWrite, reinterpret_cast<uint64_t>(mem), 0x100000, 1 << 16});
            EXPECT_TRUE(m.has_value()) << m.error().ToString();
            auto u = b.UnmapDma(UnmapRequest{0, 0x100000, 1 << 16});
            EXPECT_TRUE(u.has_value());
            return vb::Ok();
          });
        } else {
          // The group emptied under us (ENODEV from ForFirstDevice) or was torn down.
          EXPECT_TRUE(iommu.error().errnum == ENODEV || iommu.error().errnum == EINVAL) << iommu.error().ToString();
        }
      } else {
        EXPECT_EQ(set.error().errnum, ENODEV) << set.error().ToString();
      }
      iterations.fetch_add(1, std::memory_order_relaxed);
    }
  };

  std::thread p1(plug_cycle, "02:00.0", true);
  std::thread p2(plug_cycle, "02:00.1", true);
  std::thread a1(attach_cycle);
  std::thread a2(attach_cycle);
  while (iterations.load() < kIterations) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  p1.join();
  p2.join();
  a1.join();
  a2.join();
  munmap(mem, 1 << 16);
  EXPECT_GE(iterations.load(), kIterations);
  EXPECT_GT(attach_callbacks.load(), 0);
  EXPECT_EQ(departed_in_callback.load(), 0);
  std::printf("seed race: %d iterations, %d attach callbacks\n", iterations.load(), attach_callbacks.load());
}

}  // namespace
}  // namespace vfio::type1
