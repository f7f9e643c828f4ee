// PinnedPages with the type1 backend: DMA-mapped pages stay reachable by the device, with their
// old contents and without IOMMU faults, after the program unmaps, discards or moves them
// (ARCHITECTURE "Pinning"); the aside memory goes with the last mapping; mappings that do not
// cover the range are untouched. Drives type1 and the device's DmaPort directly (no preload).
#include <sys/mman.h>

#include <cstring>
#include <vector>

#include "iommu/iommu.h"
#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/pinned_pages.h"

namespace vfio::type1 {
namespace {

using vfio::testing::Type1Of;

using vfio::testing::VfioFixture;

class Pinned : public VfioFixture {
 protected:
  hw::DmaPort& Port() { return Dev("01:00.0").dma(); }
  size_t FaultCount() { return core.IommuOf(Dev("01:00.0"))->fault_log().size(); }
  static uint8_t* Anon(size_t n) {
    return static_cast<uint8_t*>(mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  // n bytes of fresh memory filled with `byte` and MAP_DMA'd read-write at kIova; null if the
  // map failed (the caller asserts).
  static uint8_t* MappedFilled(Iommu& t1, size_t n, uint8_t byte);
  std::vector<uint8_t> DeviceRead(uint64_t iova, size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_TRUE(Port().Read(iova, out.data(), n).has_value());
    return out;
  }
};

constexpr uint64_t kIova = 0x400000;

uint8_t* Pinned::MappedFilled(Iommu& t1, size_t n, uint8_t byte) {
  uint8_t* buf = Anon(n);
  std::memset(buf, byte, n);
  return t1.MapDma(MapRequest{kMapFlagRead | kMapFlagWrite, reinterpret_cast<uint64_t>(buf), kIova, n}).has_value() ? buf : nullptr;
}

TEST_F(Pinned, MunmapOfMappedPagesKeepsTheirBytesForTheDevice) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  const size_t n = 8 * 4096;
  uint8_t* buf = Anon(n);
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(i * 7 + 3);
  std::vector<uint8_t> want(buf, buf + n);
  ASSERT_TRUE(t1.MapDma(MapRequest{kMapFlagRead | kMapFlagWrite, reinterpret_cast<uint64_t>(buf), kIova, n}).has_value());
  // The program unmaps the middle of the buffer: those pages move aside first.
  ASSERT_TRUE(PinnedPages::KeepAlive(reinterpret_cast<uint64_t>(buf) + 2 * 4096, 4 * 4096,
                                     PinnedPages::Keep::kMove).has_value());
  ASSERT_EQ(munmap(buf + 2 * 4096, 4 * 4096), 0);
  const size_t faults = FaultCount();
  EXPECT_EQ(DeviceRead(kIova, n), want);
  // Writes land in the kept pages too (and the untouched head is still the program's memory).
  const uint32_t v = 0xfeedf00d;
  ASSERT_TRUE(Port().Write(kIova + 3 * 4096, &v, 4).has_value());
  ASSERT_TRUE(Port().Write(kIova + 8, &v, 4).has_value());
  EXPECT_EQ(std::memcmp(buf + 8, &v, 4), 0);
  uint32_t back = 0;
  ASSERT_TRUE(Port().Read(kIova + 3 * 4096, &back, 4).has_value());
  EXPECT_EQ(back, v);
  EXPECT_EQ(FaultCount(), faults);
  EXPECT_EQ(t1.CheckInvariantsForTest(), "") << "page tables follow the moved-aside pieces";
  // Unmapping the record frees the aside memory; the iova then faults as usual.
  auto un = t1.UnmapDma(UnmapRequest{0, kIova, n});
  ASSERT_TRUE(un.has_value());
  EXPECT_EQ(*un, n);
  EXPECT_FALSE(Port().Read(kIova + 3 * 4096, &back, 4).has_value());
  munmap(buf, 2 * 4096);
  munmap(buf + 6 * 4096, 2 * 4096);
}

TEST_F(Pinned, DiscardedPagesKeepTheirBytesForTheDeviceWhileTheProgramSeesZeros) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  const size_t n = 4 * 4096;
  uint8_t* buf = MappedFilled(t1, n, 0xa5);
  ASSERT_NE(buf, nullptr);
  ASSERT_TRUE(PinnedPages::KeepAlive(reinterpret_cast<uint64_t>(buf), n, PinnedPages::Keep::kMove).has_value());
  ASSERT_EQ(madvise(buf, n, MADV_DONTNEED), 0);
  EXPECT_EQ(buf[0], 0);  // as after DONTNEED of pinned pages: the program gets fresh pages
  EXPECT_EQ(DeviceRead(kIova, n), std::vector<uint8_t>(n, 0xa5));
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, kIova, n}).has_value());
  munmap(buf, n);
}

TEST_F(Pinned, MovedPagesAreFollowedAndStaySharedWithTheProgram) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  const size_t n = 4 * 4096;
  uint8_t* buf = MappedFilled(t1, n, 0x3c);
  ASSERT_NE(buf, nullptr);
  void* place = mmap(nullptr, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* moved = mremap(buf, n, n, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, place);
  ASSERT_NE(moved, MAP_FAILED);
  PinnedPages::Moved(reinterpret_cast<uint64_t>(buf), n, reinterpret_cast<uint64_t>(moved));
  munmap(buf, n);
  auto* m = static_cast<uint8_t*>(moved);
  EXPECT_EQ(DeviceRead(kIova, n), std::vector<uint8_t>(n, 0x3c));
  m[100] = 0x77;  // the program's later write is the device's
  EXPECT_EQ(DeviceRead(kIova + 100, 1)[0], 0x77);
  // A munmap of the new place now keeps them alive too.
  ASSERT_TRUE(PinnedPages::KeepAlive(reinterpret_cast<uint64_t>(moved), n, PinnedPages::Keep::kMove).has_value());
  munmap(moved, n);
  EXPECT_EQ(DeviceRead(kIova + 100, 1)[0], 0x77);
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, kIova, n}).has_value());
}

TEST_F(Pinned, CopyKeepsTheDeviceViewAndLeavesTheProgramsPagesAlone) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  const size_t n = 2 * 4096;
  uint8_t* buf = MappedFilled(t1, n, 0x42);
  ASSERT_NE(buf, nullptr);
  ASSERT_TRUE(PinnedPages::KeepAlive(reinterpret_cast<uint64_t>(buf), n, PinnedPages::Keep::kCopy).has_value());
  EXPECT_EQ(buf[5], 0x42);
  buf[5] = 0;  // the copy is the device's now
  EXPECT_EQ(DeviceRead(kIova + 5, 1)[0], 0x42);
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, kIova, n}).has_value());
  munmap(buf, n);
}

TEST_F(Pinned, RangesWithoutMappingsAreLeftAlone) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  uint8_t* mapped = Anon(4096);
  uint8_t* other = Anon(4096);
  mapped[0] = 1;
  other[0] = 2;
  ASSERT_TRUE(t1.MapDma(MapRequest{kMapFlagRead, reinterpret_cast<uint64_t>(mapped), kIova, 4096}).has_value());
  ASSERT_TRUE(PinnedPages::KeepAlive(reinterpret_cast<uint64_t>(other), 4096, PinnedPages::Keep::kMove).has_value());
  EXPECT_EQ(other[0], 2);  // not moved: nothing maps it
  EXPECT_EQ(DeviceRead(kIova, 1)[0], 1);
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, kIova, 4096}).has_value());
  munmap(mapped, 4096);
  munmap(other, 4096);
}

TEST_F(Pinned, LargeLeavesSurviveAMoveToAnUnalignedAddress) {
  // 2 MiB of 2 MiB-aligned memory mapped at a 2 MiB iova uses a large leaf; moving it by one page
  // must split the leaf rather than translate to the wrong place.
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  const size_t n = 2 << 20;
  uint8_t* raw = static_cast<uint8_t*>(mmap(nullptr, 2 * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  uint8_t* buf = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + n - 1) & ~(uintptr_t{n} - 1));
  for (size_t i = 0; i < n; i += 4096) buf[i] = static_cast<uint8_t>(i >> 12);
  ASSERT_TRUE(t1.MapDma(MapRequest{kMapFlagRead | kMapFlagWrite, reinterpret_cast<uint64_t>(buf), 0x40000000, n}).has_value());
  uint8_t* dst = static_cast<uint8_t*>(mmap(nullptr, n + 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) + 4096;
  void* moved = mremap(buf, n, n, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, dst);
  ASSERT_EQ(moved, dst);
  PinnedPages::Moved(reinterpret_cast<uint64_t>(buf), n, reinterpret_cast<uint64_t>(dst));
  EXPECT_EQ(t1.CheckInvariantsForTest(), "");
  for (size_t i = 0; i < n; i += 64 * 4096) EXPECT_EQ(DeviceRead(0x40000000 + i, 1)[0], static_cast<uint8_t>(i >> 12)) << i;
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{0, 0x40000000, n}).has_value());
  munmap(raw, 2 * n);
  munmap(dst - 4096, n + 8192);
}

}  // namespace
}  // namespace vfio::type1
