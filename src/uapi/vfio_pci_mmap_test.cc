// A vfio-pci BAR mapped through the UAPI at a non-zero offset shows exactly those bytes of the BAR
// (regression for a fuzzer find: the driver returned the offset within the BAR as the target's
// file offset and the UAPI layer added it again, so the mapping landed at twice the offset —
// wrong bytes, or SIGBUS past the BAR's memory).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/vfio.h>
#include <sys/mman.h>

#include <cstring>

#include "devices/test_endpoint.h"
#include "topology/system.h"
#include "uapi/fd_table.h"
#include "uapi/node_table.h"

namespace uapi {
namespace {

TEST(UapiVfioPciMmap, FuzzBarMmapAtAnOffsetMapsThoseBytesOfTheBar) {
  std::string err;
  auto sys = topology::System::Create(topology::DefaultTopology(), &err);
  ASSERT_TRUE(sys) << err;
  VfioNodeTable nodes(sys->vfio());
  const std::string name = "0000:07:00.0";  // test endpoint: BAR0 64 KiB of mappable memory
  auto* dev = static_cast<hw::PciDevice*>(sys->machine().FindDevice(name).get());
  auto open = [&](const std::string& path) {
    int e = 0;
    auto obj = nodes.Open(path, O_RDWR, &e);
    EXPECT_TRUE(obj) << path << " " << e;
    return FdTable::Global().Install(std::move(obj), O_CLOEXEC);
  };
  const int c = open("/dev/vfio/vfio");
  const int g = open("/dev/vfio/" + std::to_string(sys->iommu_core().GroupOf(*dev)->id()));
  auto ioctl = [](int fd, unsigned long req, unsigned long arg) {
    return FdTable::Global().Lookup(fd).object->Ioctl(req, arg);
  };
  ASSERT_EQ(ioctl(g, VFIO_GROUP_SET_CONTAINER, reinterpret_cast<unsigned long>(&c)), 0);
  ASSERT_EQ(ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  const int d = static_cast<int>(ioctl(g, VFIO_GROUP_GET_DEVICE_FD, reinterpret_cast<unsigned long>(name.c_str())));
  ASSERT_GE(d, 0);
  // Each page of the BAR holds its own number.
  constexpr size_t kBar = devices::TestEndpoint::kBar0Size;
  for (uint64_t page = 0; page < kBar / 4096; ++page) {
    uint32_t v = static_cast<uint32_t>(0xba000000 + page);
    ASSERT_TRUE(dev->BarWrite(0, page * 4096, &v, 4).has_value());
  }
  auto obj = FdTable::Global().Lookup(d).object;
  for (uint64_t page : {1u, 5u, 8u, 12u, 15u}) {
    int e = -1;
    void* m = obj->Mmap(nullptr, 4096, PROT_READ, MAP_SHARED, static_cast<off_t>(page * 4096), &e);
    ASSERT_NE(m, MAP_FAILED) << page << " errno " << e;
    uint32_t v = 0;
    std::memcpy(&v, m, 4);  // 2 * page would be past the BAR for page >= 8: SIGBUS
    EXPECT_EQ(v, 0xba000000 + page) << "mmap at BAR offset page " << page;
    munmap(m, 4096);
  }
  // The whole BAR from offset 0 still works, and a mapping past the BAR is refused.
  int e = -1;
  void* all = obj->Mmap(nullptr, kBar, PROT_READ, MAP_SHARED, 0, &e);
  ASSERT_NE(all, MAP_FAILED);
  uint32_t last = 0;
  std::memcpy(&last, static_cast<uint8_t*>(all) + kBar - 4096, 4);
  EXPECT_EQ(last, 0xba000000 + kBar / 4096 - 1);
  munmap(all, kBar);
  EXPECT_EQ(obj->Mmap(nullptr, 8192, PROT_READ, MAP_SHARED, static_cast<off_t>(kBar - 4096), &e), MAP_FAILED);
  EXPECT_EQ(e, EINVAL);
  obj.reset();
  for (int fd : {d, g, c}) ASSERT_EQ(FdTable::Global().Close(fd), 0);
}

}  // namespace
}  // namespace uapi
