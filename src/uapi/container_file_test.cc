// The container fd's ioctl table on real fds: the value-argument ioctls, EINVAL without a backend,
// ENOTTY for requests type1 does not know, every argsz/flags row the UAPI layer decides for
// MAP/UNMAP/DIRTY/GET_INFO, EFAULT for unreadable arguments, the GET_INFO capability chain and
// its argsz-grow rule, and UNMAP's size written back only on success.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "uapi/uapi_test_util.h"

namespace uapi {
namespace {

using testing::GuardPage;

class ContainerFileTest : public testing::UapiFixture {
 protected:
  // A container with 01:00.0's group attached and SET_IOMMU(type) done.
  void Attach(unsigned long type = VFIO_TYPE1v2_IOMMU) {
    container = Open("/dev/vfio/vfio");
    group = Open(GroupPath("01:00.0"));
    ASSERT_GE(container, 0);
    ASSERT_GE(group, 0);
    ASSERT_EQ(Ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), 0);
    ASSERT_EQ(Ioctl(container, VFIO_SET_IOMMU, type), 0);
  }
  void* Buffer(size_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    std::memset(p, 0, size);
    buffers_.push_back({p, size});
    return p;
  }
  void TearDown() override {
    UapiFixture::TearDown();
    for (auto [p, s] : buffers_) munmap(p, s);
  }
  long Map(uint64_t iova, void* vaddr, uint64_t size, uint32_t flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) {
    vfio_iommu_type1_dma_map m{sizeof(m), flags, reinterpret_cast<uint64_t>(vaddr), iova, size};
    return Ioctl(container, VFIO_IOMMU_MAP_DMA, &m);
  }

  int container = -1;
  int group = -1;
  std::vector<std::pair<void*, size_t>> buffers_;
};

TEST_F(ContainerFileTest, ValueArgumentIoctlsAnswerWithoutAGroup) {
  int c = Open("/dev/vfio/vfio");
  ASSERT_GE(c, 0);
  EXPECT_EQ(Ioctl(c, VFIO_GET_API_VERSION, 0ul), VFIO_API_VERSION);
  EXPECT_EQ(Ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU), 1);
  EXPECT_EQ(Ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU), 1);
  EXPECT_EQ(Ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU), 0);
  EXPECT_EQ(Ioctl(c, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL), 1);
  EXPECT_EQ(Ioctl(c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR), 0);  // needs a backend on 6.1.y
  EXPECT_EQ(Ioctl(c, VFIO_CHECK_EXTENSION, 12345ul), 0);
  // The argument is the value itself: a "pointer" is just a large unknown extension.
  EXPECT_EQ(Ioctl(c, VFIO_CHECK_EXTENSION, 1ul << 40), 0);
  EXPECT_EQ(Ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), -EINVAL);  // no group attached
}

TEST_F(ContainerFileTest, EveryOtherRequestWithoutBackendIsEinvalNotEnotty) {
  int c = Open("/dev/vfio/vfio");
  vfio_iommu_type1_dma_map m{sizeof(m), 3, 0, 0, 4096};
  for (unsigned long req : std::initializer_list<unsigned long>{VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_GET_INFO,
                            VFIO_IOMMU_DIRTY_PAGES, VFIO_GROUP_GET_STATUS,
                            static_cast<unsigned long>(_IO(VFIO_TYPE, VFIO_BASE + 40)), 0x5401ul}) {
    EXPECT_EQ(Ioctl(c, req, &m), -EINVAL) << std::hex << req;
  }
}

TEST_F(ContainerFileTest, Type1AnswersEnottyForRequestsItDoesNotKnow) {
  Attach();
  for (unsigned long req : std::initializer_list<unsigned long>{VFIO_GROUP_GET_STATUS, VFIO_GROUP_GET_DEVICE_FD, VFIO_DEVICE_GET_INFO,
                            VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_RESET,
                            static_cast<unsigned long>(_IO(VFIO_TYPE, VFIO_BASE + 15)),
                            static_cast<unsigned long>(_IO(VFIO_TYPE, VFIO_BASE + 16)), 0x5401ul}) {
    EXPECT_EQ(Ioctl(container, req, 0ul), -ENOTTY) << std::hex << req;
  }
  // DEVICE_FEATURE's number is DIRTY_PAGES here: decoded (and its argument read) as such.
  EXPECT_EQ(Ioctl(container, VFIO_DEVICE_FEATURE, 0ul), -EFAULT);
  // The value-argument ioctls keep working with a backend.
  EXPECT_EQ(Ioctl(container, VFIO_GET_API_VERSION, 0ul), 0);
  EXPECT_EQ(Ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR), 1);
  EXPECT_EQ(Ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), -EINVAL);  // already set
}

TEST_F(ContainerFileTest, PciHotResetNumberOnAContainerIsMapDma) {
  // One request number, two meanings: the table is per fd kind.
  static_assert(VFIO_DEVICE_PCI_HOT_RESET == VFIO_IOMMU_MAP_DMA);
  Attach();
  void* buf = Buffer(4096);
  vfio_iommu_type1_dma_map m{sizeof(m), VFIO_DMA_MAP_FLAG_READ, reinterpret_cast<uint64_t>(buf), 0x100000, 4096};
  EXPECT_EQ(Ioctl(container, VFIO_DEVICE_PCI_HOT_RESET, &m), 0);
  EXPECT_EQ(Map(0x100000, buf, 4096), -EEXIST);
}

struct MapRow {
  const char* what;
  uint32_t argsz;
  uint32_t flags;
  uint64_t iova;
  uint64_t size;
  int err;
};

TEST_F(ContainerFileTest, MapDmaArgszAndFlagRows) {
  Attach();
  void* buf = Buffer(8192);
  const MapRow rows[] = {
      {"argsz 31", 31, 3, 0x100000, 4096, EINVAL},
      {"argsz 0", 0, 3, 0x100000, 4096, EINVAL},
      {"unknown flag 8", 32, 3 | 8, 0x100000, 4096, EINVAL},
      {"flags 0", 32, 0, 0x100000, 4096, EINVAL},
      {"rw with vaddr", 32, 1 | 4, 0x100000, 4096, EINVAL},
      {"size 0", 32, 3, 0x100000, 0, EINVAL},
      {"unaligned iova", 32, 3, 0x100800, 4096, EINVAL},
      {"iova wraps", 32, 3, ~0ull - 4095, 8192, EINVAL},
      {"vaddr flag, nothing mapped", 32, 4, 0x100000, 4096, ENOENT},
      {"argsz larger is fine", 64, 3, 0x100000, 4096, 0},
      {"overlap", 32, 3, 0x100000, 4096, EEXIST},
  };
  for (const auto& r : rows) {
    vfio_iommu_type1_dma_map m{r.argsz, r.flags, reinterpret_cast<uint64_t>(buf), r.iova, r.size};
    EXPECT_EQ(Ioctl(container, VFIO_IOMMU_MAP_DMA, &m), r.err ? -r.err : 0) << r.what;
  }
}

TEST_F(ContainerFileTest, UnreadableArgumentsAnswerEfault) {
  Attach();
  GuardPage g;
  for (unsigned long req : std::initializer_list<unsigned long>{VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_GET_INFO,
                            VFIO_IOMMU_DIRTY_PAGES}) {
    EXPECT_EQ(Ioctl(container, req, 1ul), -EFAULT) << std::hex << req;
    EXPECT_EQ(Ioctl(container, req, 0ul), -EFAULT) << std::hex << req;
    EXPECT_EQ(Ioctl(container, req, g.edge), -EFAULT) << std::hex << req;
  }
  // A MAP struct whose last 8 bytes (size) lie in the PROT_NONE page.
  auto* m = g.At<vfio_iommu_type1_dma_map>(24);
  m->argsz = 32;
  m->flags = 3;
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_MAP_DMA, m), -EFAULT);
  // MAP of an unmapped vaddr: the type1 pin check.
  EXPECT_EQ(Map(0x100000, g.edge, 4096), -EFAULT);
}

TEST_F(ContainerFileTest, UnmapArgszFlagsAndBitmapRows) {
  Attach();
  auto unmap = [&](uint32_t argsz, uint32_t flags, uint64_t iova, uint64_t size) {
    vfio_iommu_type1_dma_unmap u{argsz, flags, iova, size};
    return Ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u);
  };
  EXPECT_EQ(unmap(23, 0, 0x100000, 4096), -EINVAL);
  EXPECT_EQ(unmap(24, 8, 0x100000, 4096), -EINVAL);
  EXPECT_EQ(unmap(48, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL, 0, 0), -EINVAL);
  EXPECT_EQ(unmap(48, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR, 0x100000, 4096), -EINVAL);
  // GET_DIRTY_BITMAP needs room for struct vfio_bitmap after the 24 bytes.
  EXPECT_EQ(unmap(47, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0x100000, 4096), -EINVAL);
  // ...which must be readable.
  GuardPage g;
  auto* pu = g.At<vfio_iommu_type1_dma_unmap>(24);
  *pu = vfio_iommu_type1_dma_unmap{48, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0x100000, 4096};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_UNMAP_DMA, pu), -EFAULT);
  // Readable bitmap, but dirty tracking is off: the planner's EINVAL.
  testing::WithTail<vfio_iommu_type1_dma_unmap, vfio_bitmap> ub;
  uint64_t word = 0;
  *ub.h() = {48, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0x100000, 4096};
  *ub.t() = {4096, 8, reinterpret_cast<__u64*>(&word)};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_UNMAP_DMA, ub.bytes), -EINVAL);
}

TEST_F(ContainerFileTest, UnmappedSizeIsWrittenBackOnlyOnSuccess) {
  Attach();
  void* buf = Buffer(3 * 4096);
  ASSERT_EQ(Map(0x100000, buf, 4096), 0);
  ASSERT_EQ(Map(0x102000, static_cast<char*>(buf) + 8192, 4096), 0);
  // v2: a range that bisects the first mapping fails and leaves size as given.
  vfio_iommu_type1_dma_unmap u{sizeof(u), 0, 0x100000, 0x800};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u), -EINVAL);
  EXPECT_EQ(u.size, 0x800u);
  EXPECT_EQ(u.argsz, sizeof(u));
  // A range covering both mappings and the hole between: the bytes of the mappings removed.
  u = {sizeof(u), 0, 0x100000, 0x10000};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u), 0);
  EXPECT_EQ(u.size, 0x2000u);
  EXPECT_EQ(u.iova, 0x100000u);
  // Nothing left: success with 0.
  u = {sizeof(u), 0, 0x100000, 0x10000};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u), 0);
  EXPECT_EQ(u.size, 0u);
  // An unwritable struct after a successful unmap: EFAULT (the mapping is gone anyway).
  ASSERT_EQ(Map(0x100000, buf, 4096), 0);
  void* ro = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  auto* pu = static_cast<vfio_iommu_type1_dma_unmap*>(ro);
  *pu = {sizeof(u), 0, 0x100000, 4096};
  ASSERT_EQ(mprotect(ro, 4096, PROT_READ), 0);
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_UNMAP_DMA, pu), -EFAULT);
  EXPECT_EQ(Map(0x100000, buf, 4096), 0);  // the unmap happened
  munmap(ro, 4096);
}

TEST_F(ContainerFileTest, DirtyPagesRows) {
  Attach();
  auto dirty = [&](uint32_t argsz, uint32_t flags) {
    vfio_iommu_type1_dirty_bitmap d{argsz, flags};
    return Ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &d);
  };
  EXPECT_EQ(dirty(7, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), -EINVAL);
  EXPECT_EQ(dirty(8, 0), -EINVAL);
  EXPECT_EQ(dirty(8, 8), -EINVAL);
  EXPECT_EQ(dirty(8, VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), -EINVAL);
  // GET_BITMAP: the 40-byte payload must fit in argsz - 8.
  EXPECT_EQ(dirty(8 + 39, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP), -EINVAL);
  EXPECT_EQ(dirty(8, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
  EXPECT_EQ(dirty(8, VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);  // already started: no-op
  // A payload in a PROT_NONE page.
  GuardPage g;
  auto* pd = g.At<vfio_iommu_type1_dirty_bitmap>(8);
  *pd = {48, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_DIRTY_PAGES, pd), -EFAULT);

  // A full GET_BITMAP: every mapped page reported dirty (6.1's IOMMU-backed answer).
  void* buf = Buffer(2 * 4096);
  ASSERT_EQ(Map(0x100000, buf, 2 * 4096), 0);
  uint64_t bits = 0;
  testing::WithTail<vfio_iommu_type1_dirty_bitmap, vfio_iommu_type1_dirty_bitmap_get> req;
  *req.h() = {sizeof(req.bytes), VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP};
  *req.t() = {0x100000, 2 * 4096, {4096, 8, reinterpret_cast<__u64*>(&bits)}};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_DIRTY_PAGES, req.bytes), 0);
  EXPECT_EQ(bits, 0x3u);
  EXPECT_EQ(dirty(8, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
}

TEST_F(ContainerFileTest, DirtyPagesOnV1IsEaccesBeforeReadingTheArgument) {
  Attach(VFIO_TYPE1_IOMMU);
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_DIRTY_PAGES, 1ul), -EACCES);
  vfio_iommu_type1_dirty_bitmap d{0, 0};
  EXPECT_EQ(Ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &d), -EACCES);
}

// The chain as the kernel lays it out: MIGRATION at 24, DMA_AVAIL right after it (no padding on
// 6.1), IOVA_RANGE last.
TEST_F(ContainerFileTest, GetInfoCapabilityChainAndArgszGrowRule) {
  Attach();
  vfio_iommu_type1_info info{};
  EXPECT_EQ((info = {15}, Ioctl(container, VFIO_IOMMU_GET_INFO, &info)), -EINVAL);

  // A 24-byte caller: success, CAPS set, argsz := the size needed, cap_offset 0.
  info = {sizeof(info), 0, 0, 0xdead};
  ASSERT_EQ(Ioctl(container, VFIO_IOMMU_GET_INFO, &info), 0);
  EXPECT_EQ(info.flags, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
  EXPECT_NE(info.iova_pgsizes & 4096, 0u);
  EXPECT_EQ(info.cap_offset, 0u);
  const uint32_t need = info.argsz;
  ASSERT_GT(need, 24u + 32 + 12 + 16);
  EXPECT_EQ((need - (24 + 32 + 12 + 16)) % 16, 0u);

  // A 16-byte caller: argsz grows too, but only 16 bytes come back (no cap_offset write).
  struct {
    vfio_iommu_type1_info i;
    uint64_t canary;
  } small{{16, 0, 0, 0x5a5a5a5a}, 0x1111};
  ASSERT_EQ(Ioctl(container, VFIO_IOMMU_GET_INFO, &small), 0);
  EXPECT_EQ(small.i.argsz, need);
  EXPECT_EQ(small.i.cap_offset, 0x5a5a5a5au);
  EXPECT_EQ(small.canary, 0x1111u);

  // Enough room: the chain.
  std::vector<uint8_t> buf(need + 16, 0xee);
  auto* full = reinterpret_cast<vfio_iommu_type1_info*>(buf.data());
  full->argsz = need;
  ASSERT_EQ(Ioctl(container, VFIO_IOMMU_GET_INFO, full), 0);
  EXPECT_EQ(full->argsz, need);
  EXPECT_EQ(full->cap_offset, 24u);
  auto* mig = reinterpret_cast<vfio_iommu_type1_info_cap_migration*>(buf.data() + 24);
  EXPECT_EQ(mig->header.id, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
  EXPECT_EQ(mig->header.version, 1);
  EXPECT_EQ(mig->header.next, 56u);
  EXPECT_EQ(mig->pgsize_bitmap, 4096u);
  EXPECT_EQ(mig->max_dirty_bitmap_size, 256ull << 20);
  auto* avail = reinterpret_cast<vfio_iommu_type1_info_dma_avail*>(buf.data() + 56);
  EXPECT_EQ(avail->header.id, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
  EXPECT_EQ(avail->header.next, 68u);
  EXPECT_EQ(avail->avail, 65535u);
  vfio_iommu_type1_info_cap_iova_range range;
  std::memcpy(&range, buf.data() + 68, sizeof(range));
  EXPECT_EQ(range.header.id, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
  EXPECT_EQ(range.header.next, 0u);
  EXPECT_EQ(68 + 16 + 16 * range.nr_iovas, need);
  EXPECT_EQ(buf[need], 0xee);  // nothing past argsz

  // DMA_AVAIL counts down with mappings.
  void* mem = Buffer(4096);
  ASSERT_EQ(Map(0x100000, mem, 4096), 0);
  ASSERT_EQ(Ioctl(container, VFIO_IOMMU_GET_INFO, full), 0);
  EXPECT_EQ(avail->avail, 65534u);
}

// Issue 14 item 4: type1 GET_INFO copies back 16 bytes, or 20 once argsz reaches the end of
// cap_offset; the tail padding (20-23) is never written, the chain only when it fits. DIRTY_PAGES
// GET_BITMAP writes only the bitmap; UNMAP_DMA its 24-byte struct and nothing after it.
TEST_F(ContainerFileTest, GetInfoAndUnmapWriteOnlyWhat61CopiesBack) {
  using testing::Ranges;
  using testing::U32s;
  using testing::WrittenBytes;
  Attach();
  vfio_iommu_type1_info probe{sizeof(probe)};
  ASSERT_EQ(Ioctl(container, VFIO_IOMMU_GET_INFO, &probe), 0);
  const uint32_t need = probe.argsz;
  long r[2];
  auto get_info = [this](uint8_t* p) { return Ioctl(container, VFIO_IOMMU_GET_INFO, p); };
  for (uint32_t argsz : {16u, 17u, 18u, 19u, 20u, 21u, 23u, 24u, 25u, 28u, need - 1, need, need + 1, need + 8}) {
    auto w = WrittenBytes(U32s({argsz}), need + 16, get_info, &r);
    EXPECT_EQ(r[0], 0);
    std::string want = argsz < 20 ? "[4,16)" : argsz < need ? "[4,20)" : "[4,20) [24," + std::to_string(need) + ")";
    EXPECT_EQ(Ranges(w), want) << "argsz " << argsz;
  }
  // DIRTY_PAGES GET_BITMAP writes the bitmap only, never its own struct nor past it.
  void* buf = Buffer(2 * 4096);
  ASSERT_EQ(Map(0x300000, buf, 2 * 4096), 0);
  vfio_iommu_type1_dirty_bitmap start{8, VFIO_IOMMU_DIRTY_PAGES_FLAG_START};
  ASSERT_EQ(Ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &start), 0);
  uint64_t bits = 0;
  std::vector<uint8_t> head(8 + sizeof(vfio_iommu_type1_dirty_bitmap_get));
  vfio_iommu_type1_dirty_bitmap h{static_cast<uint32_t>(head.size() + 8), VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP};
  vfio_iommu_type1_dirty_bitmap_get g{0x300000, 2 * 4096, {4096, 8, reinterpret_cast<__u64*>(&bits)}};
  std::memcpy(head.data(), &h, 8);
  std::memcpy(head.data() + 8, &g, sizeof(g));
  auto w = WrittenBytes(head, head.size() + 16,
                        [this](uint8_t* p) { return Ioctl(container, VFIO_IOMMU_DIRTY_PAGES, p); }, &r);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], 0);
  EXPECT_EQ(Ranges(w), "");
  EXPECT_EQ(bits, 0x3u);
  auto unmap = [this](uint8_t* p) { return Ioctl(container, VFIO_IOMMU_UNMAP_DMA, p); };
  for (uint32_t argsz : {24u, 28u, 32u}) {
    std::vector<uint8_t> head = U32s({argsz, 0, 0x100000, 0, 0x1000, 0});  // iova, size: nothing mapped there
    auto w = WrittenBytes(head, 40, unmap, &r);
    EXPECT_EQ(r[0], 0);
    EXPECT_EQ(Ranges(w), "") << "argsz " << argsz;
  }
}

}  // namespace
}  // namespace uapi
