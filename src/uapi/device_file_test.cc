// The device fd on real fds over a fake vfio-pci-shaped driver: GET_INFO, GET_REGION_INFO and its
// capability chain (SPARSE_MMAP, TYPE, MSIX_MAPPABLE) with the argsz-grow rule, GET_IRQ_INFO,
// SET_IRQS's generic validation rows, RESET, the hot-reset pair, DEVICE_FEATURE, ENOTTY, pread /
// pwrite, mmap; and the whole flow container → group → device → MAP_DMA → device DMA → UNMAP →
// fault.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <cstring>
#include <vector>

#include "uapi/group_file.h"
#include "uapi/trace.h"
#include "uapi/uapi_test_util.h"

namespace uapi {
namespace {

using testing::FakePciDriver;
using testing::GuardPage;

class DeviceFileTest : public testing::UapiFixture {
 protected:
  void SetUp() override {
    UapiFixture::SetUp();
    o = OpenAll();
    dev = o.device;
  }
  Opened o;
  int dev = -1;
};

TEST_F(DeviceFileTest, GetInfoRows) {
  struct {
    vfio_device_info i;
    uint32_t canary;
  } b{{15}, 0x77};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_INFO, &b), -EINVAL);
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_INFO, 1ul), -EFAULT);
  // 16 bytes: no cap_offset written.
  b = {{16, 0, 0, 0, 0x99}, 0x77};
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_INFO, &b), 0);
  EXPECT_EQ(b.i.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
  EXPECT_EQ(b.i.num_regions, 9u);
  EXPECT_EQ(b.i.num_irqs, 5u);
  EXPECT_EQ(b.i.cap_offset, 0x99u);
  // 20 and more: cap_offset written (0: no device caps), nothing past the struct.
  b = {{24, 0, 0, 0, 0x99}, 0x77};
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_INFO, &b), 0);
  EXPECT_EQ(b.i.cap_offset, 0u);
  EXPECT_EQ(b.i.argsz, 24u);
  EXPECT_EQ(b.canary, 0x77u);
}

// Issue 14 item 4: every INFO-style device ioctl writes exactly the bytes 6.1 copies back, for
// argsz values around every field boundary; the rest of the caller's buffer keeps its canary.
TEST_F(DeviceFileTest, InfoIoctlsWriteOnlyWhat61CopiesBack) {
  using testing::Ranges;
  using testing::U32s;
  using testing::WrittenBytes;
  auto ioctl_on = [&](unsigned long req) { return [this, req](uint8_t* p) { return Ioctl(dev, req, p); }; };
  long r[2];
  // GET_INFO: 16 bytes, or 20 from argsz 20 on (no partial cap_offset, never bytes 20-23).
  for (uint32_t argsz = 16; argsz <= 32; ++argsz) {
    auto w = WrittenBytes(U32s({argsz}), 40, ioctl_on(VFIO_DEVICE_GET_INFO), &r);
    EXPECT_EQ(r[0], 0);
    EXPECT_EQ(Ranges(w), argsz < 20 ? "[4,16)" : "[4,20)") << "argsz " << argsz;
  }
  // GET_REGION_INFO, a region without caps: the 32-byte struct (argsz, index and cap_offset as
  // the caller passed them), nothing after it. (flags lies in the head here: asserted elsewhere.)
  for (uint32_t argsz = 32; argsz <= 48; ++argsz) {
    auto w = WrittenBytes(U32s({argsz, 0, 7}), 64, ioctl_on(VFIO_DEVICE_GET_REGION_INFO), &r);
    EXPECT_EQ(r[0], 0);
    EXPECT_EQ(Ranges(w), "[16,32)") << "argsz " << argsz;
  }
  // ... and BAR0 with its 8-byte MSIX_MAPPABLE cap: cap_offset := 0 until argsz reaches 40, then
  // the cap at 32.
  for (uint32_t argsz = 32; argsz <= 48; ++argsz) {
    auto w = WrittenBytes(U32s({argsz, 0, 0}), 64, ioctl_on(VFIO_DEVICE_GET_REGION_INFO), &r);
    EXPECT_EQ(r[0], 0);
    EXPECT_EQ(Ranges(w), argsz < 40 ? "[12,32)" : "[12,40)") << "argsz " << argsz;
  }
  // GET_IRQ_INFO: count (argsz, flags and index are in the head), never more.
  for (uint32_t argsz = 16; argsz <= 24; ++argsz) {
    auto w = WrittenBytes(U32s({argsz, 0, 1}), 32, ioctl_on(VFIO_DEVICE_GET_IRQ_INFO), &r);
    EXPECT_EQ(r[0], 0);
    EXPECT_EQ(Ranges(w), "[12,16)") << "argsz " << argsz;
  }
  // GET_PCI_HOT_RESET_INFO: the 12-byte header (ENOSPC below 12 + 2 * 8), then the entries.
  for (uint32_t argsz = 12; argsz <= 36; ++argsz) {
    auto w = WrittenBytes(U32s({argsz}), 40, ioctl_on(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO), &r);
    EXPECT_EQ(r[0], argsz < 28 ? -ENOSPC : 0) << "argsz " << argsz;
    EXPECT_EQ(Ranges(w), argsz < 28 ? "[4,12)" : "[4,28)") << "argsz " << argsz;
  }
  // DEVICE_FEATURE writes nothing back.
  for (uint32_t argsz = 8; argsz <= 16; ++argsz) {
    auto w = WrittenBytes(U32s({argsz, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
                                           VFIO_DEVICE_FEATURE_LOW_POWER_EXIT}),
                          24, ioctl_on(VFIO_DEVICE_FEATURE));
    EXPECT_EQ(Ranges(w), "") << "argsz " << argsz;
  }
}

// 6.1 counts the affected devices (ENOSPC, count written) before the fill finds one without an
// IOMMU group; that EPERM still copies the header back: flags 0, the caller's count.
TEST_F(DeviceFileTest, HotResetInfoGrouplessDeviceIsEpermAfterEnospc) {
  fake.hot_reset_groupless = true;
  vfio_pci_hot_reset_info h{12, 0xff, 0x55};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &h), -ENOSPC);
  EXPECT_EQ(h.count, 2u);
  EXPECT_EQ(h.flags, 0u);
  testing::WithTail<vfio_pci_hot_reset_info, vfio_pci_dependent_device, 2> full;
  std::memset(full.bytes, 0xa5, sizeof(full.bytes));
  *full.h() = {sizeof(full.bytes), 0xff, 0x55};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, full.bytes), -EPERM);
  EXPECT_EQ(full.h()->flags, 0u);
  EXPECT_EQ(full.h()->count, 0x55u);
  EXPECT_EQ(full.t()[0].group_id, 0xa5a5a5a5u);  // no entry written
}

TEST_F(DeviceFileTest, RegionInfoWithoutCapsEchoesArgszAndCapOffset) {
  vfio_region_info r{31, 0, 7};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r), -EINVAL);
  r = {sizeof(r), 0, 9};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r), -EINVAL);
  r = {sizeof(r), 0, ~0u};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r), -EINVAL);
  GuardPage g;
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, g.At<vfio_region_info>(24)), -EFAULT);
  r = {sizeof(r), 0xffff, 7, 0x1234, 0, 0};
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r), 0);
  EXPECT_EQ(r.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
  EXPECT_EQ(r.size, 256u);
  EXPECT_EQ(r.offset, 7ull << 40);
  EXPECT_EQ(r.cap_offset, 0x1234u);  // not cleared
  EXPECT_EQ(r.argsz, 32u);
}

TEST_F(DeviceFileTest, RegionInfoMsixMappableCapAndGrowRule) {
  vfio_region_info r{sizeof(r), 0, 0, 0x1234};
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r), 0);
  EXPECT_EQ(r.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                         VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS);
  EXPECT_EQ(r.argsz, 40u);  // 32 + the 8-byte header-only cap
  EXPECT_EQ(r.cap_offset, 0u);
  EXPECT_EQ(r.size, FakePciDriver::kBar0Size);
  struct {
    vfio_region_info r;
    vfio_info_cap_header h;
  } b{{40, 0, 0}, {0xffff, 0xffff, 0xffff}};
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &b), 0);
  EXPECT_EQ(b.r.cap_offset, 32u);
  EXPECT_EQ(b.h.id, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
  EXPECT_EQ(b.h.version, 1);
  EXPECT_EQ(b.h.next, 0u);
}

TEST_F(DeviceFileTest, RegionInfoChainOrderSparseTypeMsix) {
  vfio_region_info r{sizeof(r), 0, 2};
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r), 0);
  // sparse: 8 + 8 + 2*16 = 48; type: 16; msix: 8.
  const uint32_t need = 32 + 48 + 16 + 8;
  ASSERT_EQ(r.argsz, need);
  std::vector<uint8_t> buf(need, 0);
  auto* ri = reinterpret_cast<vfio_region_info*>(buf.data());
  ri->argsz = need;
  ri->index = 2;
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, ri), 0);
  ASSERT_EQ(ri->cap_offset, 32u);
  auto* sp = reinterpret_cast<vfio_region_info_cap_sparse_mmap*>(buf.data() + 32);
  EXPECT_EQ(sp->header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
  EXPECT_EQ(sp->header.next, 80u);
  ASSERT_EQ(sp->nr_areas, 2u);
  EXPECT_EQ(sp->areas[1].offset, 0x2000u);
  EXPECT_EQ(sp->areas[1].size, 0x2000u);
  auto* ty = reinterpret_cast<vfio_region_info_cap_type*>(buf.data() + 80);
  EXPECT_EQ(ty->header.id, VFIO_REGION_INFO_CAP_TYPE);
  EXPECT_EQ(ty->header.next, 96u);
  EXPECT_EQ(ty->type, 0x8086u);
  EXPECT_EQ(ty->subtype, 3u);
  auto* mx = reinterpret_cast<vfio_info_cap_header*>(buf.data() + 96);
  EXPECT_EQ(mx->id, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
  EXPECT_EQ(mx->next, 0u);
  // An unwritable cap area: EFAULT.
  GuardPage g;
  auto* edge = g.At<vfio_region_info>(32);
  *edge = {need, 0, 2};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, edge), -EFAULT);
}

TEST_F(DeviceFileTest, IrqInfoRows) {
  vfio_irq_info i{15, 0, 0};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &i), -EINVAL);
  i = {sizeof(i), 0, 5};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &i), -EINVAL);
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, 1ul), -EFAULT);
  i = {sizeof(i), 0, 1};
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &i), 0);
  EXPECT_EQ(i.count, 4u);
  EXPECT_EQ(i.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
  EXPECT_EQ(i.index, 1u);
}

struct IrqRow {
  const char* what;
  uint32_t argsz, flags, index, start, count;
  int err;
};

TEST_F(DeviceFileTest, SetIrqsGenericValidationRows) {
  constexpr uint32_t kNone = VFIO_IRQ_SET_DATA_NONE, kBool = VFIO_IRQ_SET_DATA_BOOL,
                     kFd = VFIO_IRQ_SET_DATA_EVENTFD, kTrig = VFIO_IRQ_SET_ACTION_TRIGGER,
                     kMask = VFIO_IRQ_SET_ACTION_MASK, kUnmask = VFIO_IRQ_SET_ACTION_UNMASK;
  const IrqRow rows[] = {
      {"argsz 19", 19, kNone | kTrig, 1, 0, 1, EINVAL},
      {"index 5", 20, kNone | kTrig, 5, 0, 1, EINVAL},
      {"count >= U32_MAX - start", 20, kNone | kTrig, 1, 1, 0xfffffffe, EINVAL},
      {"unknown flag", 20, kNone | kTrig | (1u << 6), 1, 0, 1, EINVAL},
      {"start >= n", 20, kNone | kTrig, 1, 4, 0, EINVAL},
      {"start + count > n", 20, kNone | kTrig, 1, 2, 3, EINVAL},
      {"index with 0 irqs", 20, kNone | kTrig, 2, 0, 0, EINVAL},
      {"two data types", 20, kNone | kBool | kTrig, 1, 0, 1, EINVAL},
      {"no data type", 20, kTrig, 1, 0, 1, EINVAL},
      {"bool data short", 20 + 1, kBool | kTrig, 1, 0, 2, EINVAL},
      {"eventfd data short", 20 + 7, kFd | kTrig, 1, 0, 2, EINVAL},
      {"two actions", 20, kNone | kMask | kUnmask, 0, 0, 1, ENOTTY},
      {"no action", 20, kNone, 0, 0, 1, ENOTTY},
      {"disable: count 0", 20, kNone | kTrig, 1, 0, 0, 0},
      {"bool data fits", 20 + 2, kBool | kTrig, 1, 0, 2, 0},
  };
  for (const auto& r : rows) {
    testing::WithTail<vfio_irq_set, uint8_t, 16> b;
    *b.h() = {r.argsz, r.flags, r.index, r.start, r.count};
    b.t()[0] = b.t()[1] = 1;
    int before = fake.set_irqs_calls;
    EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_SET_IRQS, b.bytes), r.err ? -r.err : 0) << r.what;
    EXPECT_EQ(fake.set_irqs_calls, before + (r.err ? 0 : 1)) << r.what;
  }
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_SET_IRQS, 1ul), -EFAULT);
}

TEST_F(DeviceFileTest, SetIrqsHandsEventfdsToTheDriver) {
  int efd = eventfd(0, EFD_CLOEXEC);
  testing::WithTail<vfio_irq_set, int32_t, 3> b;
  *b.h() = {sizeof(b.bytes), VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 1, 3};
  b.t()[0] = efd;
  b.t()[1] = -1;
  b.t()[2] = efd;
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_SET_IRQS, b.bytes), 0);
  EXPECT_EQ(fake.last_irqs.index, 1u);
  EXPECT_EQ(fake.last_irqs.start, 1u);
  EXPECT_EQ(fake.last_irqs.count, 3u);
  EXPECT_EQ(fake.last_fds, (std::vector<int32_t>{efd, -1, efd}));
  // The fd array in an unreadable page: EFAULT after validation, the driver is not called.
  GuardPage g;
  auto* s = g.At<vfio_irq_set>(20);
  *s = {32, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 3};
  int before = fake.set_irqs_calls;
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_SET_IRQS, s), -EFAULT);
  EXPECT_EQ(fake.set_irqs_calls, before);
  close(efd);
}

TEST_F(DeviceFileTest, ResetAndHotResetInfo) {
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_RESET, 0ul), 0);
  EXPECT_EQ(fake.resets, 1);
  vfio_pci_hot_reset_info h{11};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &h), -EINVAL);
  // Too small: ENOSPC with the count written back.
  h = {12, 0xff, 0};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &h), -ENOSPC);
  EXPECT_EQ(h.count, 2u);
  EXPECT_EQ(h.flags, 0u);
  testing::WithTail<vfio_pci_hot_reset_info, vfio_pci_dependent_device, 2> full;
  full.h()->argsz = sizeof(full.bytes);
  ASSERT_EQ(Ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, full.bytes), 0);
  EXPECT_EQ(full.h()->count, 2u);
  EXPECT_EQ(full.t()[1].group_id, 2u);
  EXPECT_EQ(full.t()[1].bus, 2);
  EXPECT_EQ(full.t()[1].devfn, 8);
  // No slot/bus reset: the driver's ENODEV, nothing copied back.
  fake.hot_reset_errno = ENODEV;
  h = {12, 0xff, 0x55};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &h), -ENODEV);
  EXPECT_EQ(h.flags, 0xffu);
  EXPECT_EQ(h.count, 0x55u);
}

TEST_F(DeviceFileTest, HotResetGroupFdRows) {
  testing::WithTail<vfio_pci_hot_reset, int32_t, 4> b;
  auto reset = [&](uint32_t argsz, uint32_t flags, std::vector<int32_t> fds) {
    *b.h() = {argsz, flags, static_cast<uint32_t>(fds.size())};
    for (size_t i = 0; i < fds.size(); ++i) b.t()[i] = fds[i];
    return Ioctl(dev, VFIO_DEVICE_PCI_HOT_RESET, b.bytes);
  };
  EXPECT_EQ(reset(11, 0, {o.group}), -EINVAL);
  EXPECT_EQ(reset(16, 1, {o.group}), -EINVAL);
  EXPECT_EQ(reset(16, 0, {}), -EINVAL);                                // count 0
  EXPECT_EQ(reset(28, 0, {o.group, o.group, o.group}), -EINVAL);       // more than affected
  EXPECT_EQ(reset(16, 0, {-1}), -EBADF);
  EXPECT_EQ(reset(16, 0, {999999}), -EBADF);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_EQ(reset(16, 0, {devnull}), -EINVAL);                         // not a group fd
  close(devnull);
  EXPECT_EQ(reset(16, 0, {o.container}), -EINVAL);
  EXPECT_EQ(reset(16, 0, {o.device}), -EINVAL);
  EXPECT_TRUE(fake.hot_reset_groups.empty());
  // 6.1 reads `count` fds whatever argsz says.
  ASSERT_EQ(reset(12, 0, {o.group}), 0);
  ASSERT_EQ(fake.hot_reset_groups.size(), 1u);
  EXPECT_EQ(fake.hot_reset_groups[0],
            &dynamic_cast<GroupFileObject*>(Obj(o.group).get())->group_file());
  fake.hot_reset_errno = ENODEV;
  EXPECT_EQ(reset(16, 0, {o.group}), -ENODEV);
}

TEST_F(DeviceFileTest, DeviceFeatureRows) {
  vfio_device_feature f{7, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, &f), -EINVAL);
  f = {8, 1u << 19};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, &f), -EINVAL);
  f = {8, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIGRATION};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, &f), -EINVAL);
  f = {8, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
              VFIO_DEVICE_FEATURE_MIGRATION};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, &f), -ENOTTY);  // no migration ops
  f = {8, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, &f), -ENOTTY);
  f = {8, 0};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, &f), -ENOTTY);
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, 1ul), -EFAULT);
}

// Issue 14 item 3: 6.1's core answers EINVAL for every non-core feature of a driver without a
// feature hook (vfio-platform), ENOTTY for the core's own features (no migration/logging ops);
// a driver with a hook (the fake, vfio-pci-shaped) answers ENOTTY for a feature it lacks, PROBE
// included.
TEST_F(DeviceFileTest, DeviceFeatureWithoutADriverHookIsEinval) {
  Opened p = OpenAll("02:00.0");
  vfio_device_feature f{8, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY};
  EXPECT_EQ(Ioctl(p.device, VFIO_DEVICE_FEATURE, &f), -EINVAL);
  f.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION;
  EXPECT_EQ(Ioctl(p.device, VFIO_DEVICE_FEATURE, &f), -ENOTTY);
  f.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY;
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_FEATURE, &f), -ENOTTY);
}

TEST_F(DeviceFileTest, IoeventfdRows) {
  // The driver sees only requests that pass the header checks (argsz ≥ 28, flags within the size
  // mask with exactly one size bit, fd ≥ -1); the BAR/offset/eventfd rows are the driver's.
  struct Row {
    uint32_t argsz, flags;
    int32_t fd;
    int err;
  } rows[] = {
      {27, VFIO_DEVICE_IOEVENTFD_32, 5, -EINVAL},
      {28, 0, 5, -EINVAL},
      {28, VFIO_DEVICE_IOEVENTFD_8 | VFIO_DEVICE_IOEVENTFD_16, 5, -EINVAL},
      {28, VFIO_DEVICE_IOEVENTFD_32 | 0x10, 5, -EINVAL},
      {28, 0x80000000u | VFIO_DEVICE_IOEVENTFD_64, 5, -EINVAL},
      {28, VFIO_DEVICE_IOEVENTFD_64, -2, -EINVAL},
      {28, VFIO_DEVICE_IOEVENTFD_64, -1, 0},
      {28, VFIO_DEVICE_IOEVENTFD_8, 5, 0},
      {64, VFIO_DEVICE_IOEVENTFD_16, 5, 0},
  };
  for (const Row& r : rows) {
    const int before = fake.ioeventfd_calls;
    vfio_device_ioeventfd e{r.argsz, r.flags, (uint64_t{2} << 40) | 0x10, 0x1122334455667788, r.fd};
    EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_IOEVENTFD, &e), r.err) << r.argsz << " " << r.flags << " " << r.fd;
    EXPECT_EQ(fake.ioeventfd_calls, before + (r.err == 0)) << r.argsz << " " << r.flags;
  }
  EXPECT_EQ(fake.last_ioeventfd.offset, (uint64_t{2} << 40) | 0x10);
  EXPECT_EQ(fake.last_ioeventfd.data, 0x1122334455667788u);
  EXPECT_EQ(fake.last_ioeventfd.width, 2u);
  EXPECT_EQ(fake.last_ioeventfd.fd, 5);
  // The 28 bytes are read whatever argsz says: a struct ending in an unreadable page faults.
  GuardPage g;
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_IOEVENTFD, g.At<uint8_t>(27)), -EFAULT);
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_IOEVENTFD, 1ul), -EFAULT);
}

TEST_F(DeviceFileTest, UnknownRequestsAnswerEnotty) {
  for (unsigned long req : std::initializer_list<unsigned long>{VFIO_GET_API_VERSION, VFIO_GROUP_GET_STATUS, VFIO_GROUP_GET_DEVICE_FD,
                            VFIO_IOMMU_UNMAP_DMA /* = +14 */,
                            static_cast<unsigned long>(_IO(VFIO_TYPE, VFIO_BASE + 18)),
                            static_cast<unsigned long>(_IO(VFIO_TYPE, VFIO_BASE + 40)), 0x5401ul}) {
    EXPECT_EQ(Ioctl(dev, req, 0ul), -ENOTTY) << std::hex << req;
  }
}

TEST_F(DeviceFileTest, PreadPwriteReachTheDriverAndFaultOnBadBuffers) {
  auto obj = Obj(dev);
  uint8_t id[2] = {};
  EXPECT_EQ(obj->Pread(id, 2, 7ll << 40), 2);
  EXPECT_EQ(id[0], 0x86);
  EXPECT_EQ(id[1], 0x80);
  uint8_t v = 0x5a;
  EXPECT_EQ(obj->Pwrite(&v, 1, (7ll << 40) + 0x40), 1);
  uint8_t back = 0;
  EXPECT_EQ(obj->Pread(&back, 1, (7ll << 40) + 0x40), 1);
  EXPECT_EQ(back, 0x5a);
  EXPECT_EQ(obj->Pread(id, 0, 7ll << 40), 0);
  EXPECT_EQ(obj->Pread(id, 2, -1), -EINVAL);
  EXPECT_EQ(obj->Pread(id, 2, 1ll << 40), -EINVAL);              // the driver's answer
  EXPECT_EQ(obj->Pread(id, 2, (7ll << 40) + 255), -EFAULT);      // crossing config's end
  EXPECT_EQ(obj->Pread(reinterpret_cast<void*>(1), 2, 7ll << 40), -EFAULT);
  EXPECT_EQ(obj->Pwrite(reinterpret_cast<void*>(1), 2, 7ll << 40), -EFAULT);
}

TEST_F(DeviceFileTest, MmapRows) {
  auto obj = Obj(dev);
  int err = 0;
  const int rw = PROT_READ | PROT_WRITE;
  EXPECT_EQ(obj->Mmap(nullptr, 4096, rw, MAP_PRIVATE, 0, &err), MAP_FAILED);
  EXPECT_EQ(err, EINVAL);
  EXPECT_EQ(obj->Mmap(nullptr, 4096, rw, MAP_SHARED, 7ll << 40, &err), MAP_FAILED);  // config
  EXPECT_EQ(err, EINVAL);
  EXPECT_EQ(obj->Mmap(nullptr, 4096, rw, MAP_SHARED, 3ll << 40, &err), MAP_FAILED);  // no MMAP
  EXPECT_EQ(err, EINVAL);
  EXPECT_EQ(obj->Mmap(nullptr, 8192, rw, MAP_SHARED, 0x3000, &err), MAP_FAILED);  // past the end
  EXPECT_EQ(err, EINVAL);
  EXPECT_EQ(obj->Mmap(nullptr, 4096, rw, MAP_SHARED, 0x800, &err), MAP_FAILED);  // unaligned
  EXPECT_EQ(err, EINVAL);
  EXPECT_EQ(obj->Mmap(nullptr, 0, rw, MAP_SHARED, 0, &err), MAP_FAILED);
  EXPECT_EQ(err, EINVAL);
  // BAR2's second page lands at the driver's target offset + 0x1000.
  void* p = obj->Mmap(nullptr, 4096, rw, MAP_SHARED, (2ll << 40) + 0x1000, &err);
  ASSERT_NE(p, MAP_FAILED) << err;
  EXPECT_EQ(err, 0);
  std::memcpy(p, "bar2", 4);
  char back[4] = {};
  ASSERT_EQ(pread(fake.memfd(), back, 4, FakePciDriver::kBar0Size + 0x1000), 4);
  EXPECT_EQ(std::memcmp(back, "bar2", 4), 0);
  munmap(p, 4096);
  // MAP_SHARED_VALIDATE is shared too.
  p = obj->Mmap(nullptr, FakePciDriver::kBar0Size, PROT_READ, MAP_SHARED_VALIDATE, 0, &err);
  ASSERT_NE(p, MAP_FAILED) << err;
  munmap(p, FakePciDriver::kBar0Size);
}

TEST_F(DeviceFileTest, TraceDecodesFieldsAndErrno) {
  vfio_iommu_type1_dma_map m{32, 3, 0x1000, 0x200000, 0x2000};
  std::string s = trace::FormatIoctl("container", VFIO_IOMMU_MAP_DMA, reinterpret_cast<unsigned long>(&m), -EEXIST);
  EXPECT_NE(s.find("VFIO_IOMMU_MAP_DMA {argsz=32, flags=0x3, vaddr=0x1000, iova=0x200000, size=0x2000}"), std::string::npos) << s;
  EXPECT_NE(s.find("= -1 EEXIST"), std::string::npos) << s;
  // One number, per-kind names.
  EXPECT_EQ(trace::RequestName("device", VFIO_DEVICE_PCI_HOT_RESET), "VFIO_DEVICE_PCI_HOT_RESET");
  EXPECT_EQ(trace::RequestName("container", VFIO_DEVICE_PCI_HOT_RESET), "VFIO_IOMMU_MAP_DMA");
  EXPECT_EQ(trace::FormatIoctl("group", VFIO_GROUP_GET_DEVICE_FD, reinterpret_cast<unsigned long>("0000:01:00.0"), 7),
            "vfio: group fd=? VFIO_GROUP_GET_DEVICE_FD \"0000:01:00.0\" = 7");
  EXPECT_EQ(trace::FormatIoctl("device", VFIO_DEVICE_GET_INFO, 1ul, -EFAULT),
            "vfio: device fd=? VFIO_DEVICE_GET_INFO 0x1 = -1 EFAULT (Bad address)");
  // Enabled: the file objects write one line per call to the trace fd.
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  trace::Enable(p[1]);
  trace::SetCurrentFd(dev);
  vfio_irq_info i{sizeof(i), 0, 1};
  EXPECT_EQ(Ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &i), 0);
  trace::Enable(-1);
  trace::SetCurrentFd(-1);
  char buf[512] = {};
  ssize_t n = read(p[0], buf, sizeof(buf) - 1);
  close(p[0]);
  close(p[1]);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, n), "vfio: device fd=" + std::to_string(dev) +
                                     " VFIO_DEVICE_GET_IRQ_INFO {argsz=16, flags=0x9, index=1, count=4} = 0\n");
}

// The whole path a program takes, on real fds: DMA reaches the mapped buffer, and faults after
// UNMAP with the unmapped size written back.
TEST_F(DeviceFileTest, FullFlowMapDmaDeviceWritesUnmapFaults) {
  const size_t size = 2 * 4096;
  auto* buf = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(buf, MAP_FAILED);
  std::memset(buf, 0, size);
  vfio_iommu_type1_dma_map m{sizeof(m), VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                             reinterpret_cast<uint64_t>(buf), 0x400000, size};
  ASSERT_EQ(Ioctl(o.container, VFIO_IOMMU_MAP_DMA, &m), 0);
  hw::DmaPort& port = Dev("01:00.0").dma();
  const char msg[] = "hello through the iommu";
  ASSERT_TRUE(port.Write(0x400000 + 4096 + 8, msg, sizeof(msg)).has_value());
  EXPECT_EQ(std::memcmp(buf + 4096 + 8, msg, sizeof(msg)), 0);
  std::memcpy(buf, "cpu->dev", 8);
  char in[8] = {};
  ASSERT_TRUE(port.Read(0x400000, in, 8).has_value());
  EXPECT_EQ(std::memcmp(in, "cpu->dev", 8), 0);
  // The other group's device is not in this container: its DMA faults.
  EXPECT_EQ(vb::ErrnoOf(Dev("02:00.0").dma().Write(0x400000, msg, 4)), EFAULT);

  vfio_iommu_type1_dma_unmap u{sizeof(u), 0, 0x400000, size};
  ASSERT_EQ(Ioctl(o.container, VFIO_IOMMU_UNMAP_DMA, &u), 0);
  EXPECT_EQ(u.size, size);
  uint64_t faults = port.faults_for_test();
  uint8_t before = buf[0];
  EXPECT_EQ(vb::ErrnoOf(port.Write(0x400000, msg, 4)), EFAULT);
  EXPECT_EQ(port.faults_for_test(), faults + 1);
  EXPECT_EQ(buf[0], before);
  munmap(buf, size);
}

}  // namespace
}  // namespace uapi
