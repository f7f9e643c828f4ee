// The seed's rule, as Linux merged it (v3): work on "one device of the group" runs inside
// Group::ForFirstDevice, under the IOMMU group's lock, so the device cannot leave the group (its
// hot-unplug's DeviceRemoved waits) until the callback returns. A deterministic test pauses in the
// callback while another thread removes the device; a stress test races hot-unplug/re-plug
// against callbacks, domain attach/detach and ownership changes (run it under TSan).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <thread>
#include <vector>

#include "hw/machine.h"
#include "iommu/domain.h"
#include "iommu/iommu_core.h"
#include "iommu/testing_topology.h"

namespace iommu {
namespace {

using namespace std::chrono_literals;
using testtopo::MakePci;

double StressScale() {
  const char* s = std::getenv("VB_STRESS_SCALE");
  double v = s ? std::atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

// A driver whose Remove blocks until released: keeps a device in the "removing" state.
class BlockingRemoveDriver final : public hw::Driver {
 public:
  std::string_view name() const override { return "blocking"; }
  bool driver_managed_dma() const override { return true; }
  vb::Result<void> Probe(hw::Device&) override { return vb::Ok(); }
  void Remove(hw::Device&) override {
    in_remove.count_down();
    release.wait();
  }
  std::latch in_remove{1};
  std::latch release{1};
};

class ForFirstDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(machine.SetHooks(&core).has_value());
    ASSERT_TRUE(machine.AddPciDevice(MakePci("00:01.0", testtopo::RootPort(1).Acs())).has_value());
  }
  IommuCore core;
  hw::Machine machine;
};

TEST_F(ForFirstDeviceTest, HotUnplugWaitsUntilTheCallbackReturns) {
  hw::PciDevice* ep = *machine.AddPciDevice(MakePci("01:00.0", testtopo::Endpoint()));
  vb::RefPtr<hw::Device> hold(ep);  // inspected after its removal
  vb::RefPtr<Group> group = core.GroupOf(*ep);
  const hw::DmaTranslation* attached = ep->dma().translation();
  ASSERT_NE(attached, nullptr);

  std::latch entered(1);
  std::latch release(1);
  std::atomic<bool> removal_returned{false};
  bool saw_present = false;
  hw::Device* seen = nullptr;
  hw::DeviceState state_at_end = hw::DeviceState::kPresent;
  const hw::DmaTranslation* translation_at_end = nullptr;
  vb::Result<int> result = vb::Err(EINVAL);
  Iommu* expected_iommu = &core.default_iommu();

  std::thread user([&] {
    result = group->ForFirstDevice([&](hw::Device& dev, Iommu& iommu) -> vb::Result<int> {
      saw_present = dev.present();
      seen = &dev;
      EXPECT_EQ(&iommu, expected_iommu);
      entered.count_down();
      release.wait();
      state_at_end = dev.state();
      translation_at_end = dev.dma().translation();
      return 42;
    });
  });
  entered.wait();
  std::thread remover([&] {
    EXPECT_TRUE(machine.RemoveDevice(*ep).has_value());
    removal_returned.store(true);
  });
  // The removal has started (present → removing) but must not get past the group lock.
  while (ep->state() == hw::DeviceState::kPresent) std::this_thread::yield();
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(removal_returned.load());
  EXPECT_NE(ep->state(), hw::DeviceState::kRemoved);
  release.count_down();
  user.join();
  remover.join();

  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 42);
  EXPECT_TRUE(saw_present);
  EXPECT_EQ(seen, ep);
  // During the whole callback the device stayed a member, still translating through the group's
  // domain, although its removal had begun.
  EXPECT_EQ(state_at_end, hw::DeviceState::kRemoving);
  EXPECT_EQ(translation_at_end, attached);
  // Afterwards it is gone.
  EXPECT_TRUE(removal_returned.load());
  EXPECT_EQ(ep->state(), hw::DeviceState::kRemoved);
  EXPECT_EQ(group->device_count(), 0u);
  EXPECT_EQ(ep->dma().translation(), nullptr);
  EXPECT_EQ(vb::ErrnoOf(group->ForFirstDevice([](hw::Device&, Iommu&) { return vb::Ok(); })), ENODEV);
}

TEST_F(ForFirstDeviceTest, SkipsAMemberThatIsBeingRemoved) {
  hw::PciDevice* f0 = *machine.AddPciDevice(MakePci("01:00.0", testtopo::Endpoint().Multi()));
  hw::PciDevice* f1 = *machine.AddPciDevice(MakePci("01:00.1", testtopo::Endpoint().Multi()));
  vb::RefPtr<Group> group = core.GroupOf(*f0);
  ASSERT_EQ(core.GroupOf(*f1), group);
  BlockingRemoveDriver drv;
  ASSERT_TRUE(machine.BindDriver(*f0, drv).has_value());
  std::thread remover([&] { EXPECT_TRUE(machine.RemoveDevice(*f0).has_value()); });
  drv.in_remove.wait();  // f0 is "removing" but still a member

  EXPECT_EQ(group->device_count(), 2u);
  hw::Device* chosen = nullptr;
  ASSERT_TRUE(group->ForFirstDevice([&](hw::Device& d, Iommu&) -> vb::Result<void> {
                      chosen = &d;
                      return vb::Ok();
                    }).has_value());
  EXPECT_EQ(chosen, f1);
  // With f1 gone too, nobody is present although f0 is still listed.
  ASSERT_TRUE(machine.RemoveDevice(*f1).has_value());
  EXPECT_EQ(group->device_count(), 1u);
  EXPECT_EQ(vb::ErrnoOf(group->ForFirstDevice([](hw::Device&, Iommu&) { return vb::Ok(); })), ENODEV);
  drv.release.count_down();
  remover.join();
  EXPECT_EQ(group->device_count(), 0u);
}

TEST_F(ForFirstDeviceTest, StressHotPlugAgainstCallbacksAttachAndOwnership) {
  const int iterations = static_cast<int>(1000 * StressScale()) + 10;
  std::atomic<bool> stop{false};
  std::atomic<int> callbacks{0};
  std::atomic<int> violations{0};

  // Two functions of one slot, without ACS: they share a group while both are plugged.
  auto plugger = [&](const char* bdf) {
    for (int i = 0; i < iterations; ++i) {
      hw::PciDevice* dev = nullptr;
      for (;;) {  // EEXIST while the previous object is still being unlinked
        auto r = machine.AddPciDevice(MakePci(bdf, testtopo::Endpoint().Multi()));
        if (r.has_value()) {
          dev = *r;
          break;
        }
        ASSERT_EQ(r.error().errnum, EEXIST);
        std::this_thread::yield();
      }
      std::this_thread::yield();
      ASSERT_TRUE(machine.RemoveDevice(*dev, i % 2 ? hw::RemovalKind::kSurprise : hw::RemovalKind::kOrderly).has_value());
    }
  };

  auto user = [&] {
    while (!stop.load()) {
      for (const auto& g : core.Groups()) {
        auto r = g->ForFirstDevice([&](hw::Device& d, Iommu&) -> vb::Result<void> {
          const hw::DmaTranslation* t = d.dma().translation();
          if (d.state() == hw::DeviceState::kRemoved) violations.fetch_add(1);
          for (int k = 0; k < 20; ++k) std::this_thread::yield();
          // Still a member: not removed, and its translation cannot have changed under us.
          if (d.state() == hw::DeviceState::kRemoved || d.dma().translation() != t) violations.fetch_add(1);
          callbacks.fetch_add(1);
          return vb::Ok();
        });
        if (!r.has_value() && r.error().errnum != ENODEV) violations.fetch_add(1);
      }
    }
  };

  // Claims the group, attaches a paging domain, detaches, releases — racing the same unplugs.
  auto owner = [&] {
    std::unique_ptr<Domain> d = *core.default_iommu().AllocDomain(DomainType::kPaging);
    int token = 0;
    while (!stop.load()) {
      for (const auto& g : core.Groups()) {
        if (g->id() == 0) continue;  // the root port
        if (!g->ClaimDmaOwner(&token).has_value()) continue;
        if (g->AttachDomain(*d).has_value()) {
          if (!g->DetachDomain(*d).has_value()) violations.fetch_add(1);
        }
        g->ReleaseDmaOwner(&token);
      }
      std::this_thread::yield();
    }
    EXPECT_EQ(d->attached_groups(), 0);
  };

  std::thread p0(plugger, "01:00.0"), p1(plugger, "01:00.1");
  std::thread u0(user), u1(user), o(owner);
  p0.join();
  p1.join();
  stop.store(true);
  u0.join();
  u1.join();
  o.join();

  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(callbacks.load(), 0);
  RecordProperty("callbacks", callbacks.load());
  // Everything behind the root port is gone; only its group remains, and its id is 0.
  EXPECT_EQ(testtopo::GroupLayout(core), (testtopo::Layout{{0, {"00:01.0"}}}));
  // And the ids are free again: the next device gets the lowest one.
  hw::PciDevice* again = *machine.AddPciDevice(MakePci("01:00.0", testtopo::Endpoint()));
  EXPECT_EQ(core.GroupOf(*again)->id(), 1);
}

}  // namespace
}  // namespace iommu
