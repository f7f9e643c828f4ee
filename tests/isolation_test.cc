// DMA isolation on the default machine under concurrency (the single-threaded rows are in
// src/vfio/type1/type1_iommu_test.cc): devices hammer DMA while the user maps and unmaps. Every
// refused attempt leaves one fault in its IOMMU's log and changes no byte:
//   * after UNMAP_DMA returns, no DMA reaches the old pages (strict unmap), round after round;
//   * a device in container A never reaches memory mapped only in container B, while B's own
//     device writes there;
//   * a read-only mapping is never written;
//   * a device in a non-viable group cannot be opened by any route.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "iommu/domain.h"
#include "iommu/group.h"
#include "iommu/iommu.h"
#include "topology/system.h"
#include "vfio/testing/vfio_fixture.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/type1_iommu.h"

namespace {

namespace t1 = vfio::type1;

using vfio::testing::Scaled;

struct Buffer {
  explicit Buffer(size_t n) : size(n) {
    p = static_cast<uint8_t*>(mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(p, MAP_FAILED);
  }
  ~Buffer() { munmap(p, size); }
  uint64_t addr() const { return reinterpret_cast<uint64_t>(p); }
  bool All(uint8_t v) const {
    for (size_t i = 0; i < size; ++i)
      if (p[i] != v) return false;
    return true;
  }
  uint8_t* p;
  size_t size;
};

class Isolation : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    sys = topology::System::Create(topology::DefaultTopology(), &err);
    ASSERT_TRUE(sys) << err;
  }
  struct Attached {
    vb::RefPtr<vfio::Container> container;
    vb::RefPtr<vfio::GroupFile> group;
    vb::RefPtr<hw::Device> dev;
    t1::Iommu* io = nullptr;
  };
  Attached Attach(const std::string& name) {
    Attached a;
    a.dev = sys->machine().FindDevice(name);
    a.container = sys->vfio().OpenContainer();
    auto g = sys->vfio().OpenGroup(sys->iommu_core().GroupOf(*a.dev)->id());
    EXPECT_TRUE(g.has_value());
    a.group = *g;
    EXPECT_TRUE(a.group->SetContainer(a.container).has_value());
    EXPECT_TRUE(a.container->SetIommu(t1::kExtType1v2).has_value());
    (void)a.container->WithBackendAs<t1::Iommu>([&](t1::Iommu& io) -> vb::Result<void> {
      a.io = &io;
      return vb::Ok();
    });
    return a;
  }
  iommu::FaultLog& Log(const Attached& a) { return sys->iommu_core().IommuOf(*a.dev)->fault_log(); }

  std::unique_ptr<topology::System> sys;
};

// A thread that writes `fill` through `dev` over [iova, iova+len) until stopped, counting
// successes and refusals.
struct Hammer {
  Hammer(hw::Device& dev, uint64_t iova, size_t len, uint8_t fill) {
    t = std::thread([&dev, iova, len, fill, this] {
      std::vector<uint8_t> data(len, fill);
      while (!stop.load()) {
        if (dev.dma().Write(iova, data.data(), len).has_value())
          ok.fetch_add(1);
        else
          refused.fetch_add(1);
      }
    });
  }
  ~Hammer() { Stop(); }
  void Stop() {
    stop = true;
    if (t.joinable()) t.join();
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0}, refused{0};
  std::thread t;
};

TEST_F(Isolation, AfterUnmapReturnsNoDmaReachesTheOldPagesRoundAfterRound) {
  Attached a = Attach("0000:01:00.0");
  Buffer buf(4 * 4096);
  Hammer h(*a.dev, 0x100000, buf.size, 0xd1);
  const int rounds = Scaled(200);
  for (int r = 0; r < rounds; ++r) {
    std::memset(buf.p, 0, buf.size);
    ASSERT_TRUE(a.io->MapDma({t1::kMapFlagRead | t1::kMapFlagWrite, buf.addr(), 0x100000, buf.size}).has_value());
    // Wait until a whole write landed while mapped (counted, not read: the buffer is the
    // device's until UNMAP returns).
    const uint64_t ok = h.ok.load();
    while (h.ok.load() < ok + 2) std::this_thread::yield();
    ASSERT_EQ(a.io->UnmapDma({0, 0x100000, buf.size}).value_or(0), buf.size);
    ASSERT_TRUE(buf.All(0xd1)) << "round " << r << ": the device did not reach the mapped pages";
    // Strict: once UNMAP has returned, the pages are the user's again.
    std::memset(buf.p, 0x5a, buf.size);
    const uint64_t refused = h.refused.load();
    while (h.refused.load() < refused + 3) std::this_thread::yield();
    ASSERT_TRUE(buf.All(0x5a)) << "round " << r << ": a DMA reached unmapped pages";
  }
  h.Stop();
  EXPECT_GT(Log(a).size() + Log(a).dropped(), 0u);
  for (const hw::DmaFault& f : Log(a).Snapshot()) {
    // The first page the transfer could not translate: a DMA racing the MAP or the UNMAP may
    // find its first pages still (or already) mapped and a later one not.
    EXPECT_GE(f.iova, 0x100000u);
    EXPECT_LT(f.iova, 0x100000u + buf.size);
    EXPECT_EQ(f.iova % 4096, 0u);
    EXPECT_EQ(f.reason, hw::DmaFaultReason::kNotMapped);
  }
}

TEST_F(Isolation, ADeviceNeverReachesMemoryMappedOnlyInAnotherContainer) {
  Attached a = Attach("0000:01:00.0");  // dmar0
  Attached b = Attach("0000:04:01.0");  // dmar0 as well: same hardware, other container
  Buffer buf_a(4096), buf_b(4096);
  std::memset(buf_a.p, 0, 4096);
  std::memset(buf_b.p, 0, 4096);
  ASSERT_TRUE(a.io->MapDma({t1::kMapFlagRead | t1::kMapFlagWrite, buf_a.addr(), 0x100000, 4096}).has_value());
  ASSERT_TRUE(b.io->MapDma({t1::kMapFlagRead | t1::kMapFlagWrite, buf_b.addr(), 0x200000, 4096}).has_value());
  Log(a).Clear();
  {
    Hammer own_b(*b.dev, 0x200000, 4096, 0xbb);   // B writes its own memory
    Hammer a_to_b(*a.dev, 0x200000, 4096, 0xaa);  // A tries B's iova: not in A's container
    while (own_b.ok.load() < 100 || a_to_b.refused.load() < static_cast<uint64_t>(Scaled(2000))) std::this_thread::yield();
    own_b.Stop();
    a_to_b.Stop();
    EXPECT_EQ(a_to_b.ok.load(), 0u);
    const uint64_t attempts = a_to_b.refused.load();
    EXPECT_EQ(Log(a).size() + Log(a).dropped(), attempts) << "one fault per refused attempt";
  }
  EXPECT_TRUE(buf_b.All(0xbb));
  EXPECT_TRUE(buf_a.All(0));  // A wrote nothing anywhere
  for (const hw::DmaFault& f : Log(a).Snapshot()) {
    EXPECT_EQ(f.requester, "0000:01:00.0");
    EXPECT_EQ(f.iova, 0x200000u);
    EXPECT_EQ(f.access, hw::DmaAccess::kWrite);
  }
}

TEST_F(Isolation, AReadOnlyMappingIsNeverWrittenWhileReadsSucceed) {
  Attached a = Attach("0000:07:00.0");
  Buffer buf(2 * 4096);
  std::memset(buf.p, 0x33, buf.size);
  ASSERT_TRUE(a.io->MapDma({t1::kMapFlagRead, buf.addr(), 0x100000, buf.size}).has_value());
  Log(a).Clear();
  std::atomic<uint64_t> reads{0};
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    uint8_t tmp[4096];
    while (!stop.load())
      if (a.dev->dma().Read(0x100000 + 4096, tmp, sizeof tmp).has_value() && tmp[0] == 0x33) reads.fetch_add(1);
  });
  Hammer w(*a.dev, 0x100000, buf.size, 0xee);
  while (w.refused.load() < static_cast<uint64_t>(Scaled(3000)) || reads.load() < 100) std::this_thread::yield();
  w.Stop();
  stop = true;
  reader.join();
  EXPECT_EQ(w.ok.load(), 0u);
  EXPECT_TRUE(buf.All(0x33));
  EXPECT_EQ(Log(a).size() + Log(a).dropped(), w.refused.load());
  for (const hw::DmaFault& f : Log(a).Snapshot()) EXPECT_EQ(f.reason, hw::DmaFaultReason::kPermission);
}

TEST_F(Isolation, ADeviceInANonViableGroupCannotBeOpenedByAnyRoute) {
  // 02:00.0 shares its group with 02:00.1, which a kernel DMA-API driver (kernel-dma) owns.
  vb::RefPtr<hw::Device> dev = sys->machine().FindDevice("0000:02:00.0");
  auto g = sys->vfio().OpenGroup(sys->iommu_core().GroupOf(*dev)->id());
  ASSERT_TRUE(g.has_value());
  vb::RefPtr<vfio::GroupFile> group = *g;
  EXPECT_EQ(group->GetStatus().value_or(~0u) & vfio::kGroupFlagViable, 0u);
  // No container: no device.
  EXPECT_EQ(vb::ErrnoOf(group->GetDevice("0000:02:00.0")), EINVAL);
  // A fresh container: attach refused, so still no device.
  auto c = sys->vfio().OpenContainer();
  EXPECT_EQ(vb::ErrnoOf(group->SetContainer(c)), EPERM);
  EXPECT_EQ(vb::ErrnoOf(group->GetDevice("0000:02:00.0")), EINVAL);
  // A container that already has a backend (another group attached first): refused the same way.
  Attached other = Attach("0000:01:00.0");
  EXPECT_EQ(vb::ErrnoOf(group->SetContainer(other.container)), EPERM);
  EXPECT_EQ(vb::ErrnoOf(group->GetDevice("0000:02:00.0")), EINVAL);
  EXPECT_EQ(other.container->group_count(), 1u);
  // The device cannot be reached through the other group either.
  EXPECT_EQ(vb::ErrnoOf(other.group->GetDevice("0000:02:00.0")), ENODEV);
  // The group stayed the kernel driver's: its default domain, one DMA-API owner, no user owner.
  vb::RefPtr<iommu::Group> ig = sys->iommu_core().GroupOf(*dev);
  EXPECT_TRUE(ig->IsCurrentDomain(ig->default_domain()));
  EXPECT_EQ(ig->owner_count(), 1u);
  EXPECT_EQ(ig->dma_owner(), nullptr);
}

}  // namespace
