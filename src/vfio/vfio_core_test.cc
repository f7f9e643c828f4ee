// The VFIO core's user-visible rules (reference §1.2, §2, §3), through the C++ API.
#include <atomic>
#include <thread>

#include "vfio/testing/vfio_fixture.h"

namespace vfio {
namespace {

using testing::VfioFixture;

class VfioCore : public VfioFixture {};

TEST_F(VfioCore, GroupsExistPerIommuGroupWithRegisteredDevices) {
  EXPECT_EQ(vfio.Groups().size(), 2u);
  EXPECT_TRUE(vfio.FindGroup(GroupIdOf("01:00.0")));
  EXPECT_EQ(vfio.FindGroup(GroupIdOf("02:00.0"))->Devices().size(), 2u);
  // Root ports are in IOMMU groups too, but no VFIO device registered there: no VFIO group.
  EXPECT_FALSE(vfio.FindGroup(GroupIdOf("00:01.0")));
}

TEST_F(VfioCore, GroupOpensOnceAndUnknownGroupIsEnodev) {
  auto g = vfio.OpenGroup(GroupIdOf("01:00.0"));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(vb::ErrnoOf(vfio.OpenGroup(GroupIdOf("01:00.0"))), EBUSY);
  EXPECT_EQ(vb::ErrnoOf(vfio.OpenGroup(999)), ENODEV);
  EXPECT_EQ(vb::ErrnoOf(vfio.OpenGroup(GroupIdOf("00:01.0"))), ENODEV);
  g->reset();
  EXPECT_TRUE(vfio.OpenGroup(GroupIdOf("01:00.0")).has_value());
}

TEST_F(VfioCore, StatusViableUntilAKernelDriverIsBound) {
  auto g = *vfio.OpenGroup(GroupIdOf("02:00.0"));
  EXPECT_EQ(*g->GetStatus(), kGroupFlagViable);
  // Replace vfio on 02:00.1 with a DMA-API kernel driver: the group is no longer viable.
  ASSERT_TRUE(machine.UnbindDriver(Dev("02:00.1")).has_value());
  ASSERT_TRUE(machine.BindDriver(Dev("02:00.1"), kernel_driver).has_value());
  EXPECT_EQ(*g->GetStatus(), 0u);
  auto c = vfio.OpenContainer();
  EXPECT_EQ(vb::ErrnoOf(g->SetContainer(c)), EPERM);
  EXPECT_EQ(c->group_count(), 0u);
  // Unbinding it makes the group viable again.
  ASSERT_TRUE(machine.UnbindDriver(Dev("02:00.1")).has_value());
  EXPECT_EQ(*g->GetStatus(), kGroupFlagViable);
  EXPECT_TRUE(g->SetContainer(c).has_value());
  EXPECT_EQ(*g->GetStatus(), kGroupFlagViable | kGroupFlagContainerSet);
}

TEST_F(VfioCore, KernelDriverCannotBindIntoAnOwnedGroup) {
  auto a = AttachNew("02:00.0");
  ASSERT_TRUE(machine.UnbindDriver(Dev("02:00.1")).has_value());
  EXPECT_EQ(vb::ErrnoOf(machine.BindDriver(Dev("02:00.1"), kernel_driver)), EBUSY);
  EXPECT_EQ(Dev("02:00.1").driver(), nullptr);
  // pci-stub-like drivers manage DMA themselves and do not count.
  hw::StubDriver stub("pci-stub", true);
  EXPECT_TRUE(machine.BindDriver(Dev("02:00.1"), stub).has_value());
  ASSERT_TRUE(machine.UnbindDriver(Dev("02:00.1")).has_value());
}

TEST_F(VfioCore, ContainerStateMachine) {
  auto c = vfio.OpenContainer();
  EXPECT_EQ(c->GetApiVersion(), 0);
  EXPECT_EQ(vb::ErrnoOf(c->SetIommu(type1::kExtType1v2)), EINVAL);  // no group yet
  auto g = *vfio.OpenGroup(GroupIdOf("01:00.0"));
  ASSERT_TRUE(g->SetContainer(c).has_value());
  EXPECT_EQ(vb::ErrnoOf(g->SetContainer(c)), EINVAL);                // already in a container
  EXPECT_EQ(vb::ErrnoOf(c->SetIommu(2 /* SPAPR */)), ENODEV);
  EXPECT_EQ(vb::ErrnoOf(c->SetIommu(8 /* NOIOMMU */)), ENODEV);
  EXPECT_FALSE(c->has_backend());
  ASSERT_TRUE(c->SetIommu(type1::kExtType1v2).has_value());
  EXPECT_EQ(vb::ErrnoOf(c->SetIommu(type1::kExtType1v2)), EINVAL);  // already set
  EXPECT_TRUE(g->UnsetContainer().has_value());
  // The last group leaving released the backend.
  EXPECT_FALSE(c->has_backend());
  EXPECT_EQ(vb::ErrnoOf(g->UnsetContainer()), EINVAL);
}

TEST_F(VfioCore, CheckExtensionBeforeAndAfterSetIommu) {
  auto c = vfio.OpenContainer();
  EXPECT_EQ(c->CheckExtension(type1::kExtType1), 1);
  EXPECT_EQ(c->CheckExtension(type1::kExtType1v2), 1);
  EXPECT_EQ(c->CheckExtension(type1::kExtUnmapAll), 1);
  EXPECT_EQ(c->CheckExtension(type1::kExtDmaCc), 0);
  EXPECT_EQ(c->CheckExtension(type1::kExtUpdateVaddr), 0);
  EXPECT_EQ(c->CheckExtension(2), 0);
  EXPECT_EQ(c->CheckExtension(12345), 0);
  auto g = *vfio.OpenGroup(GroupIdOf("01:00.0"));
  ASSERT_TRUE(g->SetContainer(c).has_value());
  ASSERT_TRUE(c->SetIommu(type1::kExtType1v2).has_value());
  EXPECT_EQ(c->CheckExtension(type1::kExtDmaCc), 1);  // the x86-like IOMMU enforces coherency
  EXPECT_EQ(c->CheckExtension(type1::kExtUpdateVaddr), 1);
  EXPECT_EQ(c->CheckExtension(type1::kExtType1), 1);
}

TEST_F(VfioCore, GetDeviceRules) {
  auto c = vfio.OpenContainer();
  auto g = *vfio.OpenGroup(GroupIdOf("02:00.0"));
  EXPECT_EQ(vb::ErrnoOf(g->GetDevice("0000:02:00.0")), EINVAL);  // no container
  ASSERT_TRUE(g->SetContainer(c).has_value());
  EXPECT_EQ(vb::ErrnoOf(g->GetDevice("0000:02:00.0")), EINVAL);  // no backend
  ASSERT_TRUE(c->SetIommu(type1::kExtType1v2).has_value());
  EXPECT_EQ(vb::ErrnoOf(g->GetDevice("0000:01:00.0")), ENODEV);  // another group's device
  EXPECT_EQ(vb::ErrnoOf(g->GetDevice("02:00.0")), ENODEV);       // not the exact name
  auto d1 = g->GetDevice("0000:02:00.0");
  ASSERT_TRUE(d1.has_value());
  auto d2 = g->GetDevice("0000:02:00.0");  // the same device may be opened again
  ASSERT_TRUE(d2.has_value());
  EXPECT_EQ((*d1)->device().open_count(), 2);
  EXPECT_EQ((*d1)->device().registrations(), 3u);
  d1->reset();
  EXPECT_EQ((*d2)->device().open_count(), 1);
}

TEST_F(VfioCore, UnsetContainerRefusedWhileDevicesAreOpen) {
  auto a = AttachNew("01:00.0");
  auto d = *a.group->GetDevice("0000:01:00.0");
  EXPECT_EQ(vb::ErrnoOf(a.group->UnsetContainer()), EBUSY);
  EXPECT_TRUE(a.container->has_backend());
  d.reset();
  EXPECT_TRUE(a.group->UnsetContainer().has_value());
}

TEST_F(VfioCore, DeviceHandleKeepsGroupInContainerAfterGroupClose) {
  auto a = AttachNew("01:00.0");
  auto d = *a.group->GetDevice("0000:01:00.0");
  a.group.reset();  // the user closed the group fd
  EXPECT_EQ(a.container->group_count(), 1u);
  EXPECT_TRUE(a.container->has_backend());
  EXPECT_EQ(vb::ErrnoOf(vfio.OpenGroup(GroupIdOf("01:00.0"))), EBUSY);  // release has not run
  d.reset();  // last device handle: the group file's release runs now
  EXPECT_EQ(a.container->group_count(), 0u);
  EXPECT_FALSE(a.container->has_backend());
  EXPECT_TRUE(vfio.OpenGroup(GroupIdOf("01:00.0")).has_value());
}

TEST_F(VfioCore, ClosingTheContainerAloneTearsNothingDown) {
  auto a = AttachNew("01:00.0");
  vb::RefPtr<Container> held = a.container;
  a.container.reset();  // user closed the container fd; the group still holds it
  EXPECT_TRUE(held->has_backend());
  EXPECT_EQ(held->group_count(), 1u);
}

TEST_F(VfioCore, UnregistrationWaitsForHandlesAndRequestsThem) {
  vfio.set_request_interval(std::chrono::milliseconds(5));
  auto a = AttachNew("02:00.0");
  auto d = *a.group->GetDevice("0000:02:00.0");
  std::atomic<bool> done{false};
  std::thread unplug([&] {
    EXPECT_TRUE(machine.RemoveDevice(Dev("02:00.0")).has_value());
    done = true;
  });
  // The removal blocks while the handle is open, re-requesting it.
  while (vfio_driver.requests() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(done.load());
  // As in Linux 6.1, the registration count is not zero while a handle is open, so another open
  // still succeeds (and the unregistration waits for it too).
  auto again = a.group->GetDevice("0000:02:00.0");
  ASSERT_TRUE(again.has_value());
  d.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(done.load());
  again->reset();
  unplug.join();
  // Once it has finished, the name is gone.
  EXPECT_EQ(vb::ErrnoOf(a.group->GetDevice("0000:02:00.0")), ENODEV);
  EXPECT_TRUE(done.load());
  // The group lives on with its other device.
  EXPECT_EQ(*a.group->GetStatus(), kGroupFlagViable | kGroupFlagContainerSet);
}

TEST_F(VfioCore, GroupGoesAwayWithItsLastDevice) {
  auto a = AttachNew("01:00.0");
  const int id = GroupIdOf("01:00.0");
  ASSERT_TRUE(machine.RemoveDevice(Dev("01:00.0")).has_value());
  EXPECT_FALSE(vfio.FindGroup(id));
  EXPECT_EQ(vb::ErrnoOf(a.group->GetStatus()), ENODEV);  // a zombie for its opener
  EXPECT_EQ(vb::ErrnoOf(a.group->GetDevice("0000:01:00.0")), ENODEV);
  EXPECT_EQ(a.container->group_count(), 0u);  // detached: backend released
  EXPECT_FALSE(a.container->has_backend());
  a.group.reset();  // closing the zombie is harmless
  // Re-plugging the device creates a fresh VFIO group with the same number.
  Plug("01:00.0", vfio::testing::Endpoint(), &vfio_driver);
  EXPECT_EQ(GroupIdOf("01:00.0"), id);
  EXPECT_TRUE(vfio.OpenGroup(id).has_value());
}

TEST_F(VfioCore, RegistrationRefusesDevicesWithoutGroupOrCoherency) {
  // A device that was never probed into an IOMMU group.
  auto stray = MakePci("05:00.0", vfio::testing::Endpoint());
  EXPECT_EQ(vb::ErrnoOf(vfio.RegisterDevice(*stray, vfio_driver)), EINVAL);
  // Registering the same device twice.
  EXPECT_EQ(vb::ErrnoOf(vfio.RegisterDevice(Dev("01:00.0"), vfio_driver)), EINVAL);
}

}  // namespace
}  // namespace vfio
