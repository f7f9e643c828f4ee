// The type1 backend end to end through the VFIO core: attach rules (§4.2), DMA through container
// mappings, MAP/UNMAP errno rows that need a domain or user memory (§5.1–5.3), dirty tracking
// (§5.6), GET_INFO (§5.5). The argument-only rows are in the planners' tests.
#include <sys/mman.h>

#include <cstring>
#include <vector>

#include "iommu/iommu.h"
#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/memlock_test_util.h"

namespace vfio::type1 {
namespace {

using vfio::testing::Type1Of;

using vfio::testing::VfioFixture;

// Page-aligned anonymous memory the test owns.
struct Buffer {
  explicit Buffer(size_t n, int prot = PROT_READ | PROT_WRITE) : size(n) {
    p = static_cast<uint8_t*>(mmap(nullptr, n, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(p, MAP_FAILED);
  }
  ~Buffer() { munmap(p, size); }
  uint64_t addr() const { return reinterpret_cast<uint64_t>(p); }
  uint8_t* p;
  size_t size;
};

class Type1 : public VfioFixture {
 protected:
  MapRequest Map(uint64_t iova, const Buffer& b, uint64_t size = 0, uint32_t flags = kMapFlagRead | kMapFlagWrite) {
    return MapRequest{flags, b.addr(), iova, size ? size : b.size};
  }
  hw::DmaPort& Port(const std::string& bdf) { return Dev(bdf).dma(); }
  iommu::FaultLog& Faults(const std::string& bdf) { return core.IommuOf(Dev(bdf))->fault_log(); }
};

TEST_F(Type1, DeviceDmaReachesContainerMappingAndFaultsAfterUnmap) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  Buffer buf(16384);
  ASSERT_TRUE(t1.MapDma(Map(0x100000, buf)).has_value());
  const char msg[] = "hello from the device";
  ASSERT_TRUE(Port("01:00.0").Write(0x100000 + 4096 + 10, msg, sizeof msg).has_value());
  EXPECT_EQ(std::memcmp(buf.p + 4096 + 10, msg, sizeof msg), 0);
  char back[sizeof msg] = {};
  ASSERT_TRUE(Port("01:00.0").Read(0x100000 + 4096 + 10, back, sizeof back).has_value());
  EXPECT_STREQ(back, msg);

  auto unmapped = t1.UnmapDma(UnmapRequest{0, 0x100000, 16384});
  ASSERT_TRUE(unmapped.has_value());
  EXPECT_EQ(*unmapped, 16384u);
  std::memset(buf.p, 0x5a, buf.size);
  Faults("01:00.0").Clear();
  EXPECT_EQ(vb::ErrnoOf(Port("01:00.0").Write(0x100000, msg, sizeof msg)), EFAULT);
  EXPECT_EQ(buf.p[0], 0x5a);  // nothing written
  auto log = Faults("01:00.0").Snapshot();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].iova, 0x100000u);
  EXPECT_EQ(log[0].access, hw::DmaAccess::kWrite);
  EXPECT_EQ(log[0].reason, hw::DmaFaultReason::kNotMapped);
}

TEST_F(Type1, ReadOnlyMappingIsNeverWritten) {
  auto a = AttachNew("01:00.0");
  Buffer buf(4096);
  std::memset(buf.p, 0x11, 4096);
  ASSERT_TRUE(Type1Of(*a.container).MapDma(Map(0x200000, buf, 0, kMapFlagRead)).has_value());
  uint32_t v = 0xdeadbeef;
  EXPECT_EQ(vb::ErrnoOf(Port("01:00.0").Write(0x200000, &v, 4)), EFAULT);
  EXPECT_EQ(buf.p[0], 0x11);
  EXPECT_TRUE(Port("01:00.0").Read(0x200000, &v, 4).has_value());
  EXPECT_EQ(v, 0x11111111u);
}

TEST_F(Type1, DeviceInAnotherContainerCannotReachTheMapping) {
  auto a = AttachNew("01:00.0");
  auto b = AttachNew("02:00.0");
  Buffer buf(4096);
  std::memset(buf.p, 0x22, 4096);
  ASSERT_TRUE(Type1Of(*a.container).MapDma(Map(0x300000, buf)).has_value());
  uint8_t x = 0x99;
  EXPECT_EQ(vb::ErrnoOf(Port("02:00.0").Write(0x300000, &x, 1)), EFAULT);
  EXPECT_EQ(buf.p[0], 0x22);
  EXPECT_TRUE(Port("01:00.0").Write(0x300000, &x, 1).has_value());
  EXPECT_EQ(buf.p[0], 0x99);
}

TEST_F(Type1, GroupsOfOneIommuShareADomainAndMappingsReplay) {
  auto c = vfio.OpenContainer();
  auto g1 = *vfio.OpenGroup(GroupIdOf("01:00.0"));
  auto g2 = *vfio.OpenGroup(GroupIdOf("02:00.0"));
  ASSERT_TRUE(g1->SetContainer(c).has_value());
  ASSERT_TRUE(c->SetIommu(kExtType1v2).has_value());
  Buffer buf(8192);
  ASSERT_TRUE(Type1Of(*c).MapDma(Map(0x400000, buf)).has_value());
  ASSERT_TRUE(g2->SetContainer(c).has_value());  // attached after the map: replayed
  EXPECT_EQ(Type1Of(*c).domain_count(), 1u);
  uint32_t v = 0x12345678;
  ASSERT_TRUE(Port("02:00.1").Write(0x400000 + 8188, &v, 4).has_value());
  EXPECT_EQ(std::memcmp(buf.p + 8188, &v, 4), 0);
  // Detaching one group keeps the mappings; the last one wipes them.
  ASSERT_TRUE(g2->UnsetContainer().has_value());
  EXPECT_EQ(Type1Of(*c).mapping_count(), 1u);
  ASSERT_TRUE(g1->UnsetContainer().has_value());
  EXPECT_FALSE(c->has_backend());
  EXPECT_EQ(vb::ErrnoOf(Port("01:00.0").Write(0x400000, &v, 4)), EFAULT);
}

TEST_F(Type1, DomainsAreNotReusedAcrossIommuInstancesAndReplayIntoTheNewOne) {
  iommu::IommuCaps caps = iommu::IommuCaps::X86();
  caps.pgsize_bitmap = iommu::kPage4K | iommu::kPage2M;
  caps.aperture_last = (1ull << 39) - 1;
  iommu::Iommu* second = *core.AddIommu("iommu1", caps);
  core.AssignSubtree("0000:00:03.0", *second);
  Plug("00:03.0", vfio::testing::RootPort(3).Acs(), &pcieport);
  Plug("03:00.0", vfio::testing::Endpoint(), &vfio_driver);

  auto a = AttachNew("01:00.0");
  Buffer buf(4096);
  ASSERT_TRUE(Type1Of(*a.container).MapDma(Map(0x500000, buf)).has_value());
  EXPECT_EQ(Type1Of(*a.container).pgsize_bitmap() & 0x40000000u, 0x40000000u);
  auto g3 = *vfio.OpenGroup(GroupIdOf("03:00.0"));
  ASSERT_TRUE(g3->SetContainer(a.container).has_value());
  EXPECT_EQ(Type1Of(*a.container).domain_count(), 2u);
  // pgsize_bitmap is the AND of the domains'.
  EXPECT_EQ(Type1Of(*a.container).pgsize_bitmap() & 0x40000000u, 0u);
  uint16_t v = 0xbeef;
  ASSERT_TRUE(Port("03:00.0").Write(0x500000, &v, 2).has_value());
  EXPECT_EQ(std::memcmp(buf.p, &v, 2), 0);
  // The IOVA list is the intersection of the apertures.
  Info info = Type1Of(*a.container).GetInfo();
  ASSERT_FALSE(info.iova_ranges.empty());
  EXPECT_EQ(info.iova_ranges.back().last, (1ull << 39) - 1);
}

TEST_F(Type1, AttachRefusals) {
  // EPERM: the IOMMU does not isolate MSIs.
  iommu::IommuCaps unsafe = iommu::IommuCaps::X86();
  unsafe.msi_isolated = false;
  core.AssignSubtree("0000:00:03.0", **core.AddIommu("unsafe", unsafe));
  Plug("00:03.0", vfio::testing::RootPort(3).Acs(), &pcieport);
  Plug("03:00.0", vfio::testing::Endpoint(), &vfio_driver);
  {
    auto c = vfio.OpenContainer();
    auto g = *vfio.OpenGroup(GroupIdOf("03:00.0"));
    ASSERT_TRUE(g->SetContainer(c).has_value());
    EXPECT_EQ(vb::ErrnoOf(c->SetIommu(kExtType1v2)), EPERM);
    EXPECT_FALSE(c->has_backend());
    // Nothing half-done: the group is back in its blocking domain, still owned by the container.
    EXPECT_EQ(core.GroupOf(Dev("03:00.0"))->current_domain_type(), iommu::DomainType::kBlocked);
  }
  // allow_unsafe_interrupts lets it through.
  type1.options().allow_unsafe_interrupts = true;
  {
    auto c = vfio.OpenContainer();
    auto g = *vfio.OpenGroup(GroupIdOf("03:00.0"));
    ASSERT_TRUE(g->SetContainer(c).has_value());
    EXPECT_TRUE(c->SetIommu(kExtType1v2).has_value());
  }
  type1.options().allow_unsafe_interrupts = false;

  // EINVAL: an existing mapping lies in the new group's reserved MSI window. The first group's
  // IOMMU has no reserved regions; the second's has the x86 window.
  iommu::IommuCaps plain = iommu::IommuCaps::X86();
  plain.reserved.clear();
  core.AssignSubtree("0000:00:04.0", **core.AddIommu("plain", plain));
  Plug("00:04.0", vfio::testing::RootPort(4).Acs(), &pcieport);
  Plug("04:00.0", vfio::testing::Endpoint(), &vfio_driver);
  auto a = AttachNew("04:00.0");
  Buffer buf(4096);
  ASSERT_TRUE(Type1Of(*a.container).MapDma(Map(0xfee00000, buf)).has_value());
  auto g1 = *vfio.OpenGroup(GroupIdOf("01:00.0"));
  EXPECT_EQ(vb::ErrnoOf(g1->SetContainer(a.container)), EINVAL);
  EXPECT_EQ(a.container->group_count(), 1u);
  EXPECT_EQ(Type1Of(*a.container).domain_count(), 1u);
  EXPECT_EQ(*g1->GetStatus(), kGroupFlagViable);  // ownership given back

  // EBUSY: a vaddr is invalidated.
  ASSERT_TRUE(Type1Of(*a.container).UnmapDma(UnmapRequest{kUnmapFlagVaddr, 0xfee00000, 4096}).has_value());
  auto g2 = *vfio.OpenGroup(GroupIdOf("02:00.0"));
  EXPECT_EQ(vb::ErrnoOf(g2->SetContainer(a.container)), EBUSY);
  ASSERT_TRUE(Type1Of(*a.container).MapDma(MapRequest{kMapFlagVaddr, buf.addr(), 0xfee00000, 4096}).has_value());
}

TEST_F(Type1, MapEfaultAndNothingChanged) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  Buffer ro(8192, PROT_READ);
  const uint64_t locked = t1.locked_bytes();
  // A writable mapping of read-only memory.
  EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Map(0x600000, ro))), EFAULT);
  // Memory that cannot be read at all.
  Buffer none(4096, PROT_NONE);
  EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Map(0x600000, none, 0, kMapFlagRead))), EFAULT);
  EXPECT_EQ(t1.mapping_count(), 0u);
  EXPECT_EQ(t1.locked_bytes(), locked);
  uint8_t x;
  EXPECT_EQ(vb::ErrnoOf(Port("01:00.0").Read(0x600000, &x, 1)), EFAULT);
  // Read-only memory mapped read-only is fine.
  EXPECT_TRUE(t1.MapDma(Map(0x600000, ro, 0, kMapFlagRead)).has_value());
}

TEST_F(Type1, MemlockLimitGivesEnomemAndMemoryMappedTwiceIsChargedTwice) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  Buffer buf(8 * 4096);
  LockedMemory& acct = LockedMemory::ForProcess();
  const uint64_t before = acct.locked_bytes();
  testing::ScopedMemlockLimit limit(before + 12 * 4096);
  ASSERT_TRUE(t1.MapDma(Map(0x700000, buf)).has_value());
  EXPECT_EQ(acct.locked_bytes(), before + 8 * 4096);
  // The same memory again at another iova: charged again, and over the limit.
  EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Map(0x800000, buf))), ENOMEM);
  EXPECT_EQ(t1.mapping_count(), 1u);
  EXPECT_EQ(acct.locked_bytes(), before + 8 * 4096);
  ASSERT_TRUE(t1.MapDma(Map(0x800000, buf, 4 * 4096)).has_value());
  EXPECT_EQ(acct.locked_bytes(), before + 12 * 4096);
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{kUnmapFlagAll, 0, 0}).has_value());
  EXPECT_EQ(acct.locked_bytes(), before);
}

// Issue 14 item 1, 6.1: a MAP_DMA without WRITE pins never-written anonymous memory as the shared
// zero page, which is not charged — even with no room left under the limit — while the same
// memory mapped with WRITE, or written before a read-only map, is charged.
TEST_F(Type1, ReadOnlyMapOfNeverWrittenMemoryPinsTheUnchargedZeroPage) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  const uint64_t len = 8 * 4096;
  auto* fresh = static_cast<uint8_t*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(fresh, MAP_FAILED);
  auto map = [&](uint64_t iova, uint32_t flags, uint64_t size) {
    return t1.MapDma(MapRequest{flags, reinterpret_cast<uint64_t>(fresh), iova, size});
  };
  LockedMemory& acct = LockedMemory::ForProcess();
  const uint64_t before = acct.locked_bytes();
  {
    testing::ScopedMemlockLimit limit(before + LockedMemory::MlockedPages() * 4096);  // no room
    ASSERT_TRUE(map(0x900000, kMapFlagRead, len).has_value());
    EXPECT_EQ(acct.locked_bytes(), before);
    (void)*static_cast<volatile uint8_t*>(fresh + 4096);  // read: still the zero page
    ASSERT_TRUE(map(0xa00000, kMapFlagRead, len).has_value()) << "the same pages twice, both uncharged";
    EXPECT_EQ(acct.locked_bytes(), before);
    // With WRITE the pin faults real pages in: charged. (Like the kernel's pin, the failed
    // attempt leaves them behind, so it maps another never-written buffer.)
    auto* other = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(other, MAP_FAILED);
    EXPECT_EQ(vb::ErrnoOf(t1.MapDma(MapRequest{kMapFlagRead | kMapFlagWrite, reinterpret_cast<uint64_t>(other),
                                               0xb00000, len})),
              ENOMEM);
    munmap(other, len);
    fresh[2 * 4096] = 1;  // written: a real page
    EXPECT_EQ(vb::ErrnoOf(map(0xb00000, kMapFlagRead, len)), ENOMEM);
    EXPECT_EQ(t1.mapping_count(), 2u);
  }
  {
    testing::ScopedMemlockLimit limit(before + (LockedMemory::MlockedPages() + 1) * 4096);  // one page
    ASSERT_TRUE(map(0xb00000, kMapFlagRead, len).has_value());
    EXPECT_EQ(acct.locked_bytes(), before + 4096) << "only the written page is charged";
  }
  ASSERT_TRUE(t1.UnmapDma(UnmapRequest{kUnmapFlagAll, 0, 0}).has_value());
  EXPECT_EQ(acct.locked_bytes(), before);
  munmap(fresh, len);
}

TEST_F(Type1, MapErrnoRowsThroughTheBackend) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  Buffer buf(4 * 4096);
  ASSERT_TRUE(t1.MapDma(Map(0x1000000, buf, 2 * 4096)).has_value());
  struct Row {
    const char* what;
    MapRequest req;
    int err;
  } rows[] = {
      {"unknown flag", {kMapFlagRead | 8, buf.addr(), 0x2000000, 4096}, EINVAL},
      {"no prot", {0, buf.addr(), 0x2000000, 4096}, EINVAL},
      {"prot with vaddr", {kMapFlagRead | kMapFlagVaddr, buf.addr(), 0x2000000, 4096}, EINVAL},
      {"size 0", {kMapFlagRead, buf.addr(), 0x2000000, 0}, EINVAL},
      {"iova unaligned", {kMapFlagRead, buf.addr(), 0x2000800, 4096}, EINVAL},
      {"vaddr unaligned", {kMapFlagRead, buf.addr() + 8, 0x2000000, 4096}, EINVAL},
      {"iova wraps", {kMapFlagRead, buf.addr(), ~0ull - 4095 + 4096 * 0, 8192}, EINVAL},
      {"overlap", {kMapFlagRead, buf.addr(), 0x1001000, 8192}, EEXIST},
      {"msi window", {kMapFlagRead, buf.addr(), 0xfee00000, 4096}, EINVAL},
      {"beyond aperture", {kMapFlagRead, buf.addr(), 1ull << 48, 4096}, EINVAL},
      {"vaddr update of nothing", {kMapFlagVaddr, buf.addr(), 0x3000000, 4096}, ENOENT},
      {"vaddr update of a valid mapping", {kMapFlagVaddr, buf.addr(), 0x1000000, 8192}, EINVAL},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(vb::ErrnoOf(t1.MapDma(r.req)), r.err) << r.what;
    EXPECT_EQ(t1.mapping_count(), 1u) << r.what;
  }
}

TEST_F(Type1, EntryLimitIsEnospc) {
  type1.options().dma_entry_limit = 3;
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  Buffer buf(4096);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(t1.MapDma(Map(0x100000 + i * 0x1000, buf)).has_value());
  EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Map(0x200000, buf))), ENOSPC);
  EXPECT_EQ(t1.GetInfo().dma_avail, 0u);
  type1.options().dma_entry_limit = kDefaultDmaEntryLimit;
}

TEST_F(Type1, V1UnmapRemovesWholeMappingsAndV2RefusesBisection) {
  auto v2 = AttachNew("01:00.0", kExtType1v2);
  Buffer buf(4 * 4096);
  Iommu& b2 = Type1Of(*v2.container);
  ASSERT_TRUE(b2.MapDma(Map(0x100000, buf)).has_value());
  EXPECT_EQ(vb::ErrnoOf(b2.UnmapDma(UnmapRequest{0, 0x100000, 4096})), EINVAL);
  EXPECT_EQ(b2.mapping_count(), 1u);

  auto v1 = AttachNew("02:00.0", kExtType1);
  Iommu& b1 = Type1Of(*v1.container);
  ASSERT_TRUE(b1.MapDma(Map(0x100000, buf)).has_value());
  auto r = b1.UnmapDma(UnmapRequest{0, 0x100000, 4096});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 4u * 4096);  // the whole mapping, more than asked
  EXPECT_EQ(b1.mapping_count(), 0u);
  uint8_t x;
  EXPECT_EQ(vb::ErrnoOf(Port("02:00.0").Read(0x103000, &x, 1)), EFAULT);
  // v1 containers refuse dirty tracking.
  EXPECT_EQ(vb::ErrnoOf(b1.DirtyPages(DirtyRequest{kDirtyFlagStart})), EACCES);
}

TEST_F(Type1, UpdateVaddrKeepsDmaOnTheOriginalPages) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  Buffer first(4096), second(4096);
  ASSERT_TRUE(t1.MapDma(Map(0x100000, first)).has_value());
  auto inval = t1.UnmapDma(UnmapRequest{kUnmapFlagVaddr, 0x100000, 4096});
  ASSERT_TRUE(inval.has_value());
  EXPECT_EQ(*inval, 4096u);
  EXPECT_EQ(vb::ErrnoOf(t1.MapDma(Map(0x100000, second))), EEXIST);
  // A second invalidation of the same mapping is EINVAL.
  EXPECT_EQ(vb::ErrnoOf(t1.UnmapDma(UnmapRequest{kUnmapFlagVaddr, 0x100000, 4096})), EINVAL);
  uint8_t v = 0x77;
  ASSERT_TRUE(Port("01:00.0").Write(0x100000, &v, 1).has_value());  // DMA still works
  EXPECT_EQ(first.p[0], 0x77);
  ASSERT_TRUE(t1.MapDma(MapRequest{kMapFlagVaddr, second.addr(), 0x100000, 4096}).has_value());
  v = 0x78;
  ASSERT_TRUE(Port("01:00.0").Write(0x100000, &v, 1).has_value());
  EXPECT_EQ(first.p[0], 0x78);  // 6.1: not re-pinned
  EXPECT_EQ(second.p[0], 0);
}

TEST_F(Type1, GetInfoReportsPageSizesRangesAndAvailability) {
  auto a = AttachNew("01:00.0");
  Info info = Type1Of(*a.container).GetInfo();
  EXPECT_EQ(info.iova_pgsizes, iommu::kPage4K | iommu::kPage2M | iommu::kPage1G);
  EXPECT_EQ(info.migration_pgsize_bitmap, 4096u);
  EXPECT_EQ(info.dma_avail, kDefaultDmaEntryLimit);
  ASSERT_EQ(info.iova_ranges.size(), 2u);  // the aperture minus the MSI window
  EXPECT_EQ(info.iova_ranges[0].first, 0u);
  EXPECT_EQ(info.iova_ranges[0].last, 0xfedfffffu);
  EXPECT_EQ(info.iova_ranges[1].first, 0xfef00000u);
  EXPECT_EQ(info.iova_ranges[1].last, (1ull << 48) - 1);
}

TEST_F(Type1, DirtyPagesReportsEveryMappedPageByDefault) {
  auto a = AttachNew("01:00.0");
  Iommu& t1 = Type1Of(*a.container);
  Buffer buf(8 * 4096);
  ASSERT_TRUE(t1.MapDma(Map(0x100000, buf)).has_value());
  ASSERT_TRUE(t1.DirtyPages(DirtyRequest{kDirtyFlagStart}).has_value());
  uint64_t bitmap = 0;
  DirtyRequest get{kDirtyFlagGetBitmap, 0x100000, 8 * 4096, 4096, 8, reinterpret_cast<uint64_t>(&bitmap)};
  ASSERT_TRUE(t1.DirtyPages(get).has_value());
  EXPECT_EQ(bitmap, 0xffu);  // no device wrote anything, yet every page is reported
}

TEST_F(Type1, PreciseDirtyReportsExactlyThePagesTheDeviceWrote) {
  type1.options().precise_dirty = true;
  auto a = AttachNew("01:00.0");
  type1.options().precise_dirty = false;
  Iommu& t1 = Type1Of(*a.container);
  Buffer buf(8 * 4096);
  ASSERT_TRUE(t1.MapDma(Map(0x100000, buf)).has_value());
  uint8_t v = 1;
  ASSERT_TRUE(Port("01:00.0").Write(0x100000, &v, 1).has_value());  // before START: not reported
  ASSERT_TRUE(t1.DirtyPages(DirtyRequest{kDirtyFlagStart}).has_value());
  ASSERT_TRUE(Port("01:00.0").Write(0x100000 + 2 * 4096 + 5, &v, 1).has_value());
  std::vector<uint8_t> span(4096 + 2);
  ASSERT_TRUE(Port("01:00.0").Write(0x100000 + 5 * 4096 - 1, span.data(), span.size()).has_value());
  uint8_t r;
  ASSERT_TRUE(Port("01:00.0").Read(0x100000 + 7 * 4096, &r, 1).has_value());  // reads don't dirty
  uint64_t bitmap = 0;
  DirtyRequest get{kDirtyFlagGetBitmap, 0x100000, 8 * 4096, 4096, 8, reinterpret_cast<uint64_t>(&bitmap)};
  ASSERT_TRUE(t1.DirtyPages(get).has_value());
  EXPECT_EQ(bitmap, (1u << 2) | (1u << 4) | (1u << 5) | (1u << 6));
  bitmap = 0;
  ASSERT_TRUE(t1.DirtyPages(get).has_value());
  EXPECT_EQ(bitmap, 0u);  // reported pages are clean again
  // Unmap with the bitmap reports what was written since.
  ASSERT_TRUE(Port("01:00.0").Write(0x100000 + 3 * 4096, &v, 1).has_value());
  UnmapRequest unmap{kUnmapFlagGetDirtyBitmap, 0x100000, 8 * 4096, 4096, 8, reinterpret_cast<uint64_t>(&bitmap)};
  auto n = t1.UnmapDma(unmap);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(bitmap, 1u << 3);
}

}  // namespace
}  // namespace vfio::type1
