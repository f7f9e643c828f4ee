// The group fd's ioctl table on real fds: GET_STATUS, SET_CONTAINER (fd lookup: EFAULT, EBADF,
// 6.1's EINVAL for a non-container), UNSET_CONTAINER, GET_DEVICE_FD (name copy rules, a new
// O_CLOEXEC fd), ENOTTY for anything else; and the node table's open errors.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "uapi/group_file.h"
#include "uapi/uapi_test_util.h"

namespace uapi {
namespace {

using testing::GuardPage;

class GroupFileTest : public testing::UapiFixture {};

TEST_F(GroupFileTest, NodeTableOpenErrors) {
  EXPECT_EQ(Open("/dev/vfio/999"), -ENOENT);
  EXPECT_EQ(Open("/dev/vfio/x"), -ENOENT);
  EXPECT_EQ(Open("/dev/vfio/"), -ENOENT);
  EXPECT_EQ(Open("/dev/vfio/vfio2"), -ENOENT);
  int g = Open(GroupPath("01:00.0"));
  ASSERT_GE(g, 0);
  EXPECT_EQ(Open(GroupPath("01:00.0")), -EBUSY);  // single open
  EXPECT_STREQ(Obj(g)->kind(), "group");
  EXPECT_EQ(nodes.Rdev("/dev/vfio/vfio"), makedev(10, 196));
  EXPECT_FALSE(nodes.Rdev("/dev/vfio/999").has_value());
  // Two containers are two objects.
  int c1 = Open("/dev/vfio/vfio"), c2 = Open("/dev/vfio/vfio");
  EXPECT_NE(Obj(c1).get(), Obj(c2).get());
  // Closing the group fd lets it be opened again.
  Close(g);
  EXPECT_GE(Open(GroupPath("01:00.0")), 0);
}

TEST_F(GroupFileTest, GetStatusRows) {
  int g = Open(GroupPath("01:00.0"));
  struct {
    vfio_group_status s;
    uint32_t canary;
  } st{{7, 0}, 0xabcd};
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_STATUS, &st), -EINVAL);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_STATUS, 1ul), -EFAULT);
  GuardPage gp;
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_STATUS, gp.At<vfio_group_status>(4)), -EFAULT);
  st = {{16, 0}, 0xabcd};
  ASSERT_EQ(Ioctl(g, VFIO_GROUP_GET_STATUS, &st), 0);
  EXPECT_EQ(st.s.flags, VFIO_GROUP_FLAGS_VIABLE);
  EXPECT_EQ(st.s.argsz, 16u);
  EXPECT_EQ(st.canary, 0xabcdu);  // only 8 bytes copied back
  int c = Open("/dev/vfio/vfio");
  ASSERT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &c), 0);
  ASSERT_EQ(Ioctl(g, VFIO_GROUP_GET_STATUS, &st), 0);
  EXPECT_EQ(st.s.flags, VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
}

TEST_F(GroupFileTest, SetContainerFdRows) {
  int g = Open(GroupPath("01:00.0"));
  int c = Open("/dev/vfio/vfio");
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, 1ul), -EFAULT);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, 0ul), -EFAULT);
  int bad = -1;
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &bad), -EBADF);
  bad = 1000000;
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &bad), -EBADF);
  // An open fd that is not ours, and one of ours that is not a container: 6.1's EINVAL.
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  ASSERT_GE(devnull, 0);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &devnull), -EINVAL);
  close(devnull);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &g), -EINVAL);
  // A closed container number: EBADF.
  int c2 = Open("/dev/vfio/vfio");
  Close(c2);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &c2), -EBADF);
  // The container fd: attached; twice: EINVAL.
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &c), 0);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &c), -EINVAL);
  // A dup of the container fd names the same container.
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_UNSET_CONTAINER, 0ul), 0);
  int cd = Track(FdTable::Global().DupFd(c, 0, O_CLOEXEC));
  ASSERT_GE(cd, 0);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &cd), 0);
  EXPECT_EQ(Ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
}

TEST_F(GroupFileTest, UnsetContainerRows) {
  int g = Open(GroupPath("01:00.0"));
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_UNSET_CONTAINER, 0ul), -EINVAL);
  Close(g);
  auto o = OpenAll();
  EXPECT_EQ(Ioctl(o.group, VFIO_GROUP_UNSET_CONTAINER, 0ul), -EBUSY);  // a device fd is open
  Close(o.device);
  EXPECT_EQ(Ioctl(o.group, VFIO_GROUP_UNSET_CONTAINER, 0ul), 0);
}

TEST_F(GroupFileTest, GetDeviceFdNameRules) {
  int g = Open(GroupPath("01:00.0"));
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0"), -EINVAL);  // no container
  int c = Open("/dev/vfio/vfio");
  ASSERT_EQ(Ioctl(g, VFIO_GROUP_SET_CONTAINER, &c), 0);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0"), -EINVAL);  // no backend
  ASSERT_EQ(Ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);

  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, 1ul), -EFAULT);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, 0ul), -EFAULT);
  // No NUL within PAGE_SIZE bytes: EINVAL; exactly PAGE_SIZE with the NUL last: read, no match.
  std::string long_name(4096, 'a');
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, long_name.c_str()), -EINVAL);
  long_name.resize(4095);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, long_name.c_str()), -ENODEV);
  // A name running into an unmapped page: EFAULT; one ending right before it: read fine.
  GuardPage gp;
  std::memcpy(gp.edge - 4, "0000", 4);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, gp.edge - 4), -EFAULT);
  std::memcpy(gp.edge - 13, "0000:01:00.0", 13);
  int d = Track(static_cast<int>(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, gp.edge - 13)));
  ASSERT_GE(d, 0);
  EXPECT_STREQ(Obj(d)->kind(), "device");
  EXPECT_EQ(fcntl(d, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  // Several opens of one device; another group's device by name: ENODEV.
  int d2 = Track(static_cast<int>(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0")));
  EXPECT_GE(d2, 0);
  EXPECT_NE(d, d2);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "0000:02:00.0"), -ENODEV);
  EXPECT_EQ(Ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "vfio0"), -ENODEV);
}

TEST_F(GroupFileTest, UnknownRequestsAnswerEnotty) {
  int g = Open(GroupPath("01:00.0"));
  for (unsigned long req : std::initializer_list<unsigned long>{VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU,
                            VFIO_IOMMU_MAP_DMA, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_FEATURE,
                            static_cast<unsigned long>(_IO(VFIO_TYPE, VFIO_BASE + 18)), 0x5401ul}) {
    EXPECT_EQ(Ioctl(g, req, 0ul), -ENOTTY) << std::hex << req;
  }
}

TEST_F(GroupFileTest, ClosingTheGroupFdDetachesOnlyAfterDeviceFdsClose) {
  auto o = OpenAll();
  auto* gobj = dynamic_cast<GroupFileObject*>(Obj(o.group).get());
  ASSERT_NE(gobj, nullptr);
  vfio::Group& grp = gobj->group_file().group();
  Close(o.group);
  EXPECT_TRUE(grp.attached_to_container());
  EXPECT_EQ(Open(GroupPath("01:00.0")), -EBUSY);  // still open through the device fd
  Close(o.device);
  EXPECT_FALSE(grp.attached_to_container());
  EXPECT_GE(Open(GroupPath("01:00.0")), 0);
}

}  // namespace
}  // namespace uapi
