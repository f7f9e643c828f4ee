// Tests of iommu::IoPageTable: leaf choice, map/unmap semantics and errors, all-or-nothing under
// failure injection, the lock-free Translate run, and strict unmap against concurrent readers.
#include "iommu/io_page_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "base/epoch.h"
#include "base/checked.h"
#include "base/fail_point.h"

namespace iommu {
namespace {

using hw::DmaAccess;
using hw::DmaFaultReason;
using vb::ErrnoOf;

constexpr uint64_t k4K = kPage4K, k2M = kPage2M, k1G = kPage1G;
// Fake "physical" addresses: IovaToPhys never dereferences them.
constexpr uint64_t kPhysBase = 0x7000'0000'0000ull;

double StressScale() {
  const char* s = std::getenv("VB_STRESS_SCALE");
  const double v = s ? std::atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

uint64_t LeafSize(const IoPageTable& t, uint64_t iova) {
  auto tr = t.IovaToPhys(iova);
  return tr ? tr->leaf_size : 0;
}

uint64_t PhysOf(const IoPageTable& t, uint64_t iova) {
  auto tr = t.IovaToPhys(iova);
  return tr ? tr->phys : ~0ull;
}

// A comparable picture of the table over a set of probe iovas.
struct Snapshot {
  uint64_t tables, mapped, generation;
  std::vector<uint64_t> phys, leaf;
  bool operator==(const Snapshot&) const = default;
};
Snapshot Take(const IoPageTable& t, const std::vector<uint64_t>& probes) {
  Snapshot s{t.table_count(), t.mapped_bytes(), t.generation(), {}, {}};
  for (uint64_t p : probes) {
    s.phys.push_back(PhysOf(t, p));
    s.leaf.push_back(LeafSize(t, p));
  }
  return s;
}

TEST(IoPageTableTest, MapTranslatesEveryPageWithItsProt) {
  IoPageTable t;
  ASSERT_TRUE(t.Map(0x10000, kPhysBase, 3 * k4K, kProtRead));
  for (uint64_t i = 0; i < 3; ++i) {
    auto tr = t.IovaToPhys(0x10000 + i * k4K + 0x123);
    ASSERT_TRUE(tr);
    EXPECT_EQ(tr->phys, kPhysBase + i * k4K + 0x123);
    EXPECT_EQ(tr->prot, kProtRead);
    EXPECT_EQ(tr->leaf_size, k4K);
  }
  EXPECT_FALSE(t.IovaToPhys(0x10000 - 1));
  EXPECT_FALSE(t.IovaToPhys(0x13000));
  EXPECT_EQ(t.mapped_bytes(), 3 * k4K);
  EXPECT_EQ(t.table_count(), 4u);  // root + one table per lower level
}

TEST(IoPageTableTest, LargeLeavesOnlyWhenIovaAndPhysAreBothAligned) {
  IoPageTable t;
  // Both 2M aligned: one 2M leaf.
  ASSERT_TRUE(t.Map(2 * k2M, kPhysBase + 4 * k2M, k2M, kProtRead | kProtWrite));
  EXPECT_EQ(LeafSize(t, 2 * k2M), k2M);
  EXPECT_EQ(PhysOf(t, 2 * k2M + 0x5000), kPhysBase + 4 * k2M + 0x5000);
  // iova 2M aligned, phys only 4K aligned: 4K leaves.
  ASSERT_TRUE(t.Map(8 * k2M, kPhysBase + 8 * k2M + k4K, k2M, kProtRead));
  EXPECT_EQ(LeafSize(t, 8 * k2M), k4K);
  EXPECT_EQ(LeafSize(t, 9 * k2M - k4K), k4K);
  EXPECT_EQ(PhysOf(t, 9 * k2M - k4K), kPhysBase + 9 * k2M);
  // phys 2M aligned, iova only 4K aligned: 4K leaves.
  ASSERT_TRUE(t.Map(16 * k2M + k4K, kPhysBase + 16 * k2M, k2M, kProtRead));
  EXPECT_EQ(LeafSize(t, 16 * k2M + k4K), k4K);
  // Both 1G aligned and the range covers 1G: a 1G leaf.
  ASSERT_TRUE(t.Map(4 * k1G, kPhysBase + 2 * k1G, k1G, kProtRead));
  EXPECT_EQ(LeafSize(t, 4 * k1G + 12345 * k4K), k1G);
  EXPECT_EQ(PhysOf(t, 5 * k1G - 8), kPhysBase + 3 * k1G - 8);
  // A range with ragged ends: 4K at the edges, 2M where it covers an aligned block.
  const uint64_t iova = 10 * k1G + k2M - 2 * k4K, phys = kPhysBase + 6 * k2M - 2 * k4K;
  ASSERT_TRUE(t.Map(iova, phys, 2 * k4K + 2 * k2M + 3 * k4K, kProtRead));
  EXPECT_EQ(LeafSize(t, iova), k4K);
  EXPECT_EQ(LeafSize(t, iova + k4K), k4K);
  EXPECT_EQ(LeafSize(t, iova + 2 * k4K), k2M);
  EXPECT_EQ(LeafSize(t, iova + 2 * k4K + k2M), k2M);
  EXPECT_EQ(LeafSize(t, iova + 2 * k4K + 2 * k2M), k4K);
  EXPECT_EQ(LeafSize(t, iova + 2 * k4K + 2 * k2M + 2 * k4K), k4K);
  EXPECT_EQ(PhysOf(t, iova + 2 * k4K + k2M + 7), phys + 2 * k4K + k2M + 7);
  // 1G aligned but 1G not covered: 2M leaves, not 1G.
  ASSERT_TRUE(t.Map(20 * k1G, kPhysBase, k1G - k2M, kProtRead));
  EXPECT_EQ(LeafSize(t, 20 * k1G), k2M);
}

TEST(IoPageTableTest, PgsizeBitmapLimitsLeafSizes) {
  IoPageTable only4k(kPage4K);
  ASSERT_TRUE(only4k.Map(k1G, kPhysBase, k1G, kProtRead));
  EXPECT_EQ(LeafSize(only4k, k1G), k4K);
  EXPECT_EQ(LeafSize(only4k, 2 * k1G - k4K), k4K);
  EXPECT_EQ(only4k.mapped_bytes(), k1G);

  IoPageTable no1g(kPage4K | kPage2M);
  ASSERT_TRUE(no1g.Map(k1G, kPhysBase, k1G, kProtRead));
  EXPECT_EQ(LeafSize(no1g, k1G), k2M);
}

TEST(IoPageTableTest, UnmapInsideA2MLeafSplitsItAndKeepsTheRest) {
  IoPageTable t;
  const uint64_t iova = 3 * k2M, phys = kPhysBase + 5 * k2M;
  ASSERT_TRUE(t.Map(iova, phys, k2M, kProtRead | kProtWrite));
  const uint64_t tables = t.table_count();
  const uint64_t gen = t.generation();

  auto r = t.Unmap(iova + 10 * k4K, k4K);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, k4K);
  EXPECT_EQ(t.table_count(), tables + 1);  // the 2M leaf became a table of 4K leaves
  EXPECT_NE(t.generation(), gen);
  EXPECT_FALSE(t.IovaToPhys(iova + 10 * k4K));
  for (uint64_t page : {0ull, 9ull, 11ull, 511ull}) {
    auto tr = t.IovaToPhys(iova + page * k4K + 8);
    ASSERT_TRUE(tr) << page;
    EXPECT_EQ(tr->phys, phys + page * k4K + 8);
    EXPECT_EQ(tr->leaf_size, k4K);
    EXPECT_EQ(tr->prot, kProtRead | kProtWrite);
  }
  EXPECT_EQ(t.mapped_bytes(), k2M - k4K);

  // Unmapping the remaining halves empties the split table: it is freed.
  ASSERT_EQ(*t.Unmap(iova, 10 * k4K), 10 * k4K);
  ASSERT_EQ(*t.Unmap(iova + 11 * k4K, k2M - 11 * k4K), k2M - 11 * k4K);
  EXPECT_EQ(t.mapped_bytes(), 0u);
  EXPECT_EQ(t.table_count(), 1u);
}

TEST(IoPageTableTest, UnmapInsideA1GLeafSplitsDownTo4K) {
  IoPageTable t;
  const uint64_t iova = 2 * k1G, phys = kPhysBase + k1G;
  ASSERT_TRUE(t.Map(iova, phys, k1G, kProtRead));
  ASSERT_EQ(t.table_count(), 2u);  // root + the table holding the 1G leaf
  // [iova + 6M + 4K, iova + 10M + 4K): both ends inside 2M blocks of the 1G leaf.
  const uint64_t first = iova + 3 * k2M + k4K;
  auto r = t.Unmap(first, 2 * k2M);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 2 * k2M);
  // One 1G -> 2M split, then two 2M -> 4K splits.
  EXPECT_EQ(t.table_count(), 2u + 3u);
  EXPECT_EQ(LeafSize(t, iova), k2M);
  EXPECT_EQ(LeafSize(t, first - k4K), k4K);
  EXPECT_FALSE(t.IovaToPhys(first));
  EXPECT_FALSE(t.IovaToPhys(first + 2 * k2M - k4K));
  EXPECT_EQ(LeafSize(t, first + 2 * k2M), k4K);
  EXPECT_EQ(LeafSize(t, first + 3 * k2M), k2M);
  for (uint64_t off : std::initializer_list<uint64_t>{0, 3 * k2M, first - iova - k4K, first - iova + 2 * k2M, k1G - 8})
    EXPECT_EQ(PhysOf(t, iova + off), phys + off) << off;
  EXPECT_EQ(t.mapped_bytes(), k1G - 2 * k2M);
}

TEST(IoPageTableTest, UnmapReturnsOnlyWhatWasMapped) {
  IoPageTable t;
  ASSERT_TRUE(t.Map(0x100000, kPhysBase, 4 * k4K, kProtRead));
  ASSERT_TRUE(t.Map(0x200000, kPhysBase, 2 * k4K, kProtRead));
  const uint64_t gen = t.generation();
  EXPECT_EQ(*t.Unmap(0x400000, k2M), 0u);
  EXPECT_EQ(t.generation(), gen) << "nothing removed, nothing invalidated";
  EXPECT_EQ(*t.Unmap(0x100000 - 4 * k4K, 6 * k4K), 2 * k4K);
  EXPECT_EQ(*t.Unmap(0, 1ull << 48), 4 * k4K);
  EXPECT_EQ(t.mapped_bytes(), 0u);
  EXPECT_EQ(t.table_count(), 1u);
}

TEST(IoPageTableTest, BadArgumentsAreRejectedAndChangeNothing) {
  IoPageTable t(kPage4K | kPage2M | kPage1G, /*address_bits=*/39);
  ASSERT_TRUE(t.Map(0x1000, kPhysBase, k4K, kProtRead));
  const std::vector<uint64_t> probes = {0x1000, 0x2000, (1ull << 39) - k4K};
  const Snapshot before = Take(t, probes);

  EXPECT_EQ(ErrnoOf(t.Map(0x2000, kPhysBase, 0, kProtRead)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Map(0x2001, kPhysBase, k4K, kProtRead)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Map(0x2000, kPhysBase + 1, k4K, kProtRead)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Map(0x2000, kPhysBase, k4K + 1, kProtRead)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Map(0x2000, kPhysBase, k4K, 0)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Map(0x2000, kPhysBase, k4K, 4)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Map(~0ull - k4K + 1, kPhysBase, 2 * k4K, kProtRead)), EINVAL) << "wraps";
  EXPECT_EQ(ErrnoOf(t.Map(0x2000, ~0ull - k4K + 1, 2 * k4K, kProtRead)), EINVAL) << "phys wraps";
  EXPECT_EQ(ErrnoOf(t.Map(1ull << 39, kPhysBase, k4K, kProtRead)), ERANGE);
  EXPECT_EQ(ErrnoOf(t.Map((1ull << 39) - k4K, kPhysBase, 2 * k4K, kProtRead)), ERANGE);
  EXPECT_EQ(Take(t, probes), before);

  EXPECT_EQ(ErrnoOf(t.Unmap(0x1000, 0)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Unmap(0x1800, k4K)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Unmap(0x1000, 0x800)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Unmap(~0ull - k4K + 1, 2 * k4K)), EINVAL);
  EXPECT_EQ(ErrnoOf(t.Unmap(0, (1ull << 39) + k4K)), ERANGE);
  EXPECT_EQ(Take(t, probes), before);

  // The top of the address space itself is mappable.
  ASSERT_TRUE(t.Map((1ull << 39) - k4K, kPhysBase, k4K, kProtWrite));
  EXPECT_EQ(*t.Unmap((1ull << 39) - k4K, k4K), k4K);
}

TEST(IoPageTableTest, OverlappingMapFailsWithEexistAndLeavesTableUnchanged) {
  IoPageTable t;
  ASSERT_TRUE(t.Map(k1G + 5 * k4K, kPhysBase, 2 * k4K, kProtRead));
  ASSERT_TRUE(t.Map(4 * k2M, kPhysBase, k2M, kProtRead));  // a 2M leaf
  const std::vector<uint64_t> probes = {k1G, k1G + 4 * k4K, k1G + 7 * k4K, k1G + k2M,
                                        4 * k2M, 5 * k2M, 3 * k2M, 2 * k1G};
  const Snapshot before = Take(t, probes);
  // Overlaps the tail page only; the range also spans into fresh tables.
  EXPECT_EQ(ErrnoOf(t.Map(k1G + 6 * k4K, kPhysBase, k2M + 3 * k4K, kProtRead)), EEXIST);
  // Would be a 2M leaf where a table with a 4K page already is.
  EXPECT_EQ(ErrnoOf(t.Map(k1G, kPhysBase, k2M, kProtRead)), EEXIST);
  // Would be 4K pages inside an existing 2M leaf.
  EXPECT_EQ(ErrnoOf(t.Map(3 * k2M, kPhysBase, k2M + k4K, kProtRead)), EEXIST);
  // Would be a 1G leaf over both.
  EXPECT_EQ(ErrnoOf(t.Map(0, 0, k1G, kProtRead)), EEXIST);
  EXPECT_EQ(Take(t, probes), before);
}

TEST(IoPageTableTest, FailedTableAllocationAtEveryPointLeavesMapUnchanged) {
  IoPageTable t;
  ASSERT_TRUE(t.Map(k1G + k4K, kPhysBase, k4K, kProtRead));
  // Spans two 1G regions, several 2M regions, and needs new tables at every level.
  const uint64_t iova = 2 * k1G - 3 * k2M - k4K, size = 3 * k2M + k4K + k2M + 2 * k4K;
  const std::vector<uint64_t> probes = {k1G + k4K, iova, iova + k4K, 2 * k1G - k2M, 2 * k1G,
                                        iova + size - k4K, iova + size};
  const Snapshot before = Take(t, probes);
  uint64_t n = 1;
  for (;; ++n) {
    vb::FailInjector::ArmNth(n);
    auto r = t.Map(iova, kPhysBase + k1G - 3 * k2M - k4K, size, kProtRead | kProtWrite);
    const bool fired = vb::FailInjector::Fired();
    vb::FailInjector::Disarm();
    if (r) {
      EXPECT_FALSE(fired);
      break;
    }
    EXPECT_TRUE(fired);
    EXPECT_EQ(ErrnoOf(r), ENOMEM) << "n=" << n;
    EXPECT_EQ(Take(t, probes), before) << "n=" << n;
    ASSERT_LT(n, 100u);
  }
  EXPECT_GE(n, 4u) << "the map should have needed several tables";
  EXPECT_EQ(LeafSize(t, 2 * k1G), k2M);
  EXPECT_EQ(LeafSize(t, iova), k4K);
  EXPECT_EQ(t.mapped_bytes(), k4K + size);
}

TEST(IoPageTableTest, FailedSplitAllocationLeavesUnmapUnchanged) {
  IoPageTable t;
  ASSERT_TRUE(t.Map(k1G, kPhysBase, k1G, kProtRead));
  const uint64_t iova = k1G + 7 * k2M + 3 * k4K;  // needs 1G->2M and 2M->4K at both ends
  const std::vector<uint64_t> probes = {k1G, iova - k4K, iova, iova + k4K, iova + 2 * k4K};
  const Snapshot before = Take(t, probes);
  uint64_t n = 1;
  for (;; ++n) {
    vb::FailInjector::ArmNth(n);
    auto r = t.Unmap(iova, k4K);
    vb::FailInjector::Disarm();
    if (r) {
      EXPECT_EQ(*r, k4K);
      break;
    }
    EXPECT_EQ(ErrnoOf(r), ENOMEM);
    EXPECT_EQ(Take(t, probes), before) << "n=" << n;
    ASSERT_LT(n, 10u);
  }
  EXPECT_EQ(n, 3u) << "exactly two tables: one 2M table, one 4K table";
  EXPECT_EQ(t.table_count(), before.tables + 2);
  EXPECT_FALSE(t.IovaToPhys(iova));
  EXPECT_EQ(PhysOf(t, iova + k4K), kPhysBase + (iova + k4K - k1G));
}

TEST(IoPageTableTest, TranslateRunsOverContiguousLeaves) {
  std::vector<uint8_t> buf(16 * k4K + k4K);
  const uint64_t host = vb::AlignDown(reinterpret_cast<uint64_t>(buf.data()) + k4K - 1, k4K);
  IoPageTable t;
  ASSERT_TRUE(t.Map(0x40000, host, 8 * k4K, kProtRead | kProtWrite));
  auto r = t.Translate(0x40010, 8 * k4K - 0x10, DmaAccess::kRead);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.segment.host, reinterpret_cast<uint8_t*>(host + 0x10));
  EXPECT_EQ(r.segment.length, 8 * k4K - 0x10);
  // Clipped to the length asked for.
  r = t.Translate(0x40010, 100, DmaAccess::kWrite);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.segment.length, 100u);
  // Stops where the mapping stops.
  r = t.Translate(0x40000, 64 * k4K, DmaAccess::kRead);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.segment.length, 8 * k4K);
  // Stops where the host run is discontiguous.
  ASSERT_TRUE(t.Map(0x48000, host + 9 * k4K, k4K, kProtRead | kProtWrite));
  r = t.Translate(0x44000, 8 * k4K, DmaAccess::kRead);
  EXPECT_EQ(r.segment.length, 4 * k4K);
  // Stops where the permission changes.
  ASSERT_TRUE(t.Map(0x50000, host, 2 * k4K, kProtWrite));
  ASSERT_TRUE(t.Map(0x52000, host + 2 * k4K, k4K, kProtRead));
  r = t.Translate(0x50000, 3 * k4K, DmaAccess::kWrite);
  EXPECT_EQ(r.segment.length, 2 * k4K);
}

TEST(IoPageTableTest, TranslateRunCrossesTableBoundaries) {
  // Fake host addresses: Translate never dereferences them.
  IoPageTable t(kPage4K);
  const uint64_t iova = k1G - 2 * k4K;  // crosses a level-0 and a level-1 table boundary
  ASSERT_TRUE(t.Map(iova, kPhysBase, 4 * k2M, kProtRead));
  auto r = t.Translate(iova, 4 * k2M, DmaAccess::kRead);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.segment.length, 4 * k2M);
  IoPageTable big;
  ASSERT_TRUE(big.Map(k1G, kPhysBase, k1G + k2M + k4K, kProtRead));  // 1G, 2M, 4K leaves
  r = big.Translate(k1G + 5, k1G + k2M + k4K, DmaAccess::kRead);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.segment.length, k1G + k2M + k4K - 5);
}

TEST(IoPageTableTest, TranslateReportsTheFaultReason) {
  IoPageTable t(kPage4K | kPage2M | kPage1G, /*address_bits=*/40);
  ASSERT_TRUE(t.Map(0x1000, kPhysBase, k4K, kProtRead));
  ASSERT_TRUE(t.Map(0x2000, kPhysBase, k4K, kProtWrite));
  EXPECT_EQ(t.Translate(0x1000, 8, DmaAccess::kWrite).reason, DmaFaultReason::kPermission);
  EXPECT_FALSE(t.Translate(0x1000, 8, DmaAccess::kWrite).ok);
  EXPECT_EQ(t.Translate(0x2000, 8, DmaAccess::kRead).reason, DmaFaultReason::kPermission);
  EXPECT_TRUE(t.Translate(0x2000, 8, DmaAccess::kWrite).ok);
  EXPECT_EQ(t.Translate(0x3000, 8, DmaAccess::kRead).reason, DmaFaultReason::kNotMapped);
  EXPECT_FALSE(t.Translate(0x3000, 8, DmaAccess::kRead).ok);
  EXPECT_EQ(t.Translate(1ull << 40, 8, DmaAccess::kRead).reason, DmaFaultReason::kOutOfAperture);
  EXPECT_FALSE(t.Translate(1ull << 40, 8, DmaAccess::kRead).ok);
  EXPECT_FALSE(t.IovaToPhys(1ull << 40));
}

TEST(IoPageTableTest, EmptiedTablesAreFreed) {
  IoPageTable t;
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(t.Map(i * (1ull << 39), kPhysBase, k4K, kProtRead));
  EXPECT_EQ(t.table_count(), 1u + 4 * 3);
  ASSERT_EQ(*t.Unmap(1ull << 39, k4K), k4K);
  EXPECT_EQ(t.table_count(), 1u + 3 * 3);
  ASSERT_EQ(*t.Unmap(0, 1ull << 48), 3 * k4K);
  EXPECT_EQ(t.table_count(), 1u);
}

TEST(IoPageTableTest, MapsA1GRangeOfUnaligned4KPhys) {
  IoPageTable t;
  ASSERT_TRUE(t.Map(k1G, kPhysBase + k4K, k1G, kProtRead));
  EXPECT_EQ(t.table_count(), 1u + 1 + 1 + 512);
  EXPECT_EQ(PhysOf(t, 2 * k1G - 1), kPhysBase + k4K + k1G - 1);
  EXPECT_EQ(*t.Unmap(k1G, k1G), k1G);
  EXPECT_EQ(t.table_count(), 1u);
}

TEST(IoPageTableTest, UnmapReturnsOnlyAfterAReaderThatTranslatedLeavesItsSection) {
  IoPageTable t;
  struct alignas(4096) Page {
    uint8_t bytes[4096];
  };
  auto page = std::make_unique<Page>();
  std::memset(page->bytes, 0x5a, k4K);
  ASSERT_TRUE(t.Map(0x1000, reinterpret_cast<uint64_t>(page->bytes), k4K, kProtRead));
  std::atomic<bool> translated{false}, release{false};
  std::atomic<int> seen{-1};
  std::thread reader([&] {
    vb::EpochReadSection section;
    auto r = t.Translate(0x1000, k4K, DmaAccess::kRead);
    translated.store(true);
    while (!release.load()) std::this_thread::yield();
    seen.store(r.ok ? r.segment.host[100] : -2);  // still allowed: Unmap has not returned
  });
  while (!translated.load()) std::this_thread::yield();
  auto unmap = std::async(std::launch::async, [&] { return t.Unmap(0x1000, k4K); });
  EXPECT_EQ(unmap.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  release.store(true);
  reader.join();
  ASSERT_EQ(unmap.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(*unmap.get(), k4K);
  EXPECT_EQ(seen.load(), 0x5a);
  vb::EpochReadSection section;
  EXPECT_FALSE(t.Translate(0x1000, k4K, DmaAccess::kRead).ok);
}

// Readers translate and copy inside epoch sections while a writer maps and unmaps. After each
// Unmap returns, the writer poisons the page; no reader may ever copy poison (and TSan sees the
// poisoning as a race if a reader could still be copying from the page).
TEST(IoPageTableTest, NoReaderSeesAPageAfterUnmapReturns) {
  constexpr int kPages = 8;
  constexpr uint8_t kPoison = 0xde;
  void* mem = mmap(nullptr, kPages * k4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* pages = static_cast<uint8_t*>(mem);
  std::memset(pages, kPoison, kPages * k4K);
  IoPageTable t;
  const uint64_t iova0 = 0x100000;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> copies{0}, poisoned{0}, torn{0};
  std::atomic<int> current{0};

  auto reader = [&](int seed) {
    uint8_t local[k4K];
    while (!stop.load(std::memory_order_relaxed)) {
      // Mostly the page the writer works on right now.
      const int p = current.load(std::memory_order_relaxed) + (seed & 1);
      const uint64_t iova = iova0 + (p % kPages) * k4K;
      uint64_t n;
      {
        vb::EpochReadSection section;
        auto r = t.Translate(iova, k4K, DmaAccess::kRead);
        if (!r.ok) continue;
        n = r.segment.length;
        // Widen the window between translating and copying, where a missing grace period shows.
        volatile int spin = 0;
        while (spin < 300) spin = spin + 1;
        std::memcpy(local, r.segment.host, n);
      }
      copies.fetch_add(1, std::memory_order_relaxed);
      // Outside the section, so that the writer's grace periods stay short on a busy machine.
      if (copies.load(std::memory_order_relaxed) % 64 == 0) std::this_thread::yield();
      for (uint64_t i = 0; i < n; ++i) {
        if (local[i] == kPoison) {
          poisoned.fetch_add(1);
          break;
        }
        if (local[i] != local[0]) {
          torn.fetch_add(1);
          break;
        }
      }
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) readers.emplace_back(reader, i);

  // Bounded by time too: on a loaded machine a reader preempted inside its section stretches
  // every grace period.
  const int rounds = static_cast<int>(4000 * StressScale());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  int round = 0;
  for (; round < rounds && std::chrono::steady_clock::now() < deadline; ++round) {
    const int p = round % kPages;
    uint8_t* page = pages + p * k4K;
    current.store(p, std::memory_order_relaxed);
    std::memset(page, 1 + round % 200, k4K);  // never kPoison
    ASSERT_TRUE(t.Map(iova0 + p * k4K, reinterpret_cast<uint64_t>(page), k4K, kProtRead));
    // Let the readers get going on this page, so an Unmap lands while some copy is under way.
    const uint64_t seen = copies.load();
    for (int spin = 0; spin < 1000 && copies.load() < seen + 2; ++spin) std::this_thread::yield();
    ASSERT_EQ(*t.Unmap(iova0 + p * k4K, k4K), k4K);
    std::memset(page, kPoison, k4K);
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  EXPECT_EQ(poisoned.load(), 0u);
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(copies.load(), 0u);
  EXPECT_EQ(t.table_count(), 1u);
  RecordProperty("rounds", round);
  RecordProperty("reader_copies", std::to_string(copies.load()));
  munmap(mem, kPages * k4K);
}

// Concurrent splits and unmaps of large leaves while readers walk: the tables they retire are
// freed only after readers are done (ASan/TSan would see a use after free otherwise), and
// readers always get the right address for pages not being removed.
TEST(IoPageTableTest, ReadersWalkSafelyWhileLeavesSplitAndTablesAreFreed) {
  IoPageTable t;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0};
  const uint64_t base = 4 * k1G;
  // Readers probe the first 2M of the region, which is a 1G leaf, then split 2M leaves, then a
  // lone 2M leaf, then unmapped: they may miss, but never get a wrong address.
  auto reader = [&] {
    unsigned x = 7;
    while (!stop.load(std::memory_order_relaxed)) {
      x = x * 1103515245 + 12345;
      const uint64_t off = ((x >> 4) % 512) * k4K;
      vb::EpochReadSection section;
      auto tr = t.IovaToPhys(base + off);
      if (tr && tr->phys != kPhysBase + off) wrong.fetch_add(1);
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) readers.emplace_back(reader);
  const int rounds = static_cast<int>(300 * StressScale());
  for (int round = 0; round < rounds; ++round) {
    ASSERT_TRUE(t.Map(base, kPhysBase, k1G, kProtRead));
    ASSERT_EQ(LeafSize(t, base), k1G);
    const uint64_t hole = base + k2M + (round % 100) * k2M + k4K;
    ASSERT_EQ(*t.Unmap(hole, k4K), k4K);
    ASSERT_EQ(*t.Unmap(base + k2M, k1G - k2M), k1G - k2M - k4K);
    ASSERT_EQ(*t.Unmap(base, k2M), k2M);
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(t.table_count(), 1u);
}

}  // namespace
}  // namespace iommu
