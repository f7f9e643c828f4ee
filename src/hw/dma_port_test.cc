// Tests of hw::DmaPort: checked copies, one fault and no byte written on a miss, and the
// per-port translation cache (hits, exact invalidation, concurrent use).
#include "hw/dma_port.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "base/epoch.h"
#include "hw/device.h"

namespace hw {
namespace {

constexpr uint64_t kPage = 4096;

double StressScale() {
  const char* s = std::getenv("VB_STRESS_SCALE");
  const double v = s ? std::atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

class TestDevice : public Device {
 public:
  TestDevice() : Device("test:dma0", BusType::kPlatform) {}
  uint32_t requester_id() const override { return 0x42; }
  void Disconnect() { OnSurpriseRemoval(); }
};

// A tiny page-granular translation: iova page i (of kPages) maps to a host address with a prot.
// Map does not bump the generation (nothing is removed); Unmap does and then synchronizes, as an
// IOMMU domain must.
class TestTranslation final : public DmaTranslation {
 public:
  static constexpr int kPages = 64;
  explicit TestTranslation(uint64_t granule = kPage) : granule_(granule) {}

  void Map(int page, uint8_t* host, bool read, bool write) {
    perm_[page].store((read ? 1 : 0) | (write ? 2 : 0), std::memory_order_relaxed);
    host_[page].store(host, std::memory_order_release);
  }
  void Unmap(int page) {
    host_[page].store(nullptr, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
    vb::Epoch::Synchronize();
  }

  DmaTranslateResult Translate(uint64_t iova, uint64_t length, DmaAccess access) const override {
    translates_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t page = iova / granule_;
    if (page >= kPages) return {false, DmaFaultReason::kOutOfAperture, {}};
    uint8_t* host = host_[page].load(std::memory_order_acquire);
    if (!host) return {false, DmaFaultReason::kNotMapped, {}};
    if (!(perm_[page].load(std::memory_order_relaxed) & static_cast<int>(access)))
      return {false, DmaFaultReason::kPermission, {}};
    const uint64_t off = iova % granule_;
    return {true, DmaFaultReason::kNotMapped, {host + off, std::min(length, granule_ - off)}};
  }
  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }
  uint64_t granule() const override { return granule_; }
  uint64_t translates() const { return translates_.load(); }

 private:
  const uint64_t granule_;
  std::array<std::atomic<uint8_t*>, kPages> host_{};
  std::array<std::atomic<int>, kPages> perm_{};
  std::atomic<uint64_t> generation_{0};
  mutable std::atomic<uint64_t> translates_{0};
};

class RecordingSink final : public FaultSink {
 public:
  void RecordFault(const DmaFault& f) override {
    std::lock_guard<std::mutex> l(mu_);
    faults_.push_back(f);
  }
  std::vector<DmaFault> faults() {
    std::lock_guard<std::mutex> l(mu_);
    return faults_;
  }

 private:
  std::mutex mu_;
  std::vector<DmaFault> faults_;
};

class DmaPortTest : public ::testing::Test {
 protected:
  DmaPortTest() : dev_(vb::MakeRef<TestDevice>()), mem_(TestTranslation::kPages * kPage) {
    for (size_t i = 0; i < mem_.size(); ++i) mem_[i] = static_cast<uint8_t>(i * 7 + 3);
    port().SetFaultSink(&sink_);
  }
  DmaPort& port() { return dev_->dma(); }
  uint8_t* host(int page) { return mem_.data() + page * kPage; }

  vb::RefPtr<TestDevice> dev_;
  std::vector<uint8_t> mem_;
  RecordingSink sink_;
};

TEST_F(DmaPortTest, BlockedWithoutTranslationFaultsAndCopiesNothing) {
  uint8_t buf[16];
  std::memset(buf, 0xaa, sizeof buf);
  EXPECT_EQ(vb::ErrnoOf(port().Read(0x1000, buf, sizeof buf)), EFAULT);
  EXPECT_EQ(buf[0], 0xaa);
  auto f = sink_.faults();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].reason, DmaFaultReason::kBlocked);
  EXPECT_EQ(f[0].iova, 0x1000u);
  EXPECT_EQ(f[0].requester_id, 0x42u);
  EXPECT_EQ(f[0].requester, "test:dma0");
}

TEST_F(DmaPortTest, ReadAndWriteMoveTheBytesAcrossDiscontiguousPages) {
  TestTranslation t;
  // iova page i -> host page (20 - i): every page is its own segment; 12 pages is more than the
  // segments remembered between passes.
  for (int i = 0; i < 12; ++i) t.Map(i, host(20 - i), true, true);
  port().SetTranslation(&t);
  std::vector<uint8_t> out(12 * kPage - 100);
  ASSERT_TRUE(port().Read(50, out.data(), out.size()));
  for (size_t k = 0; k < out.size(); ++k) {
    const uint64_t iova = 50 + k;
    ASSERT_EQ(out[k], host(20 - iova / kPage)[iova % kPage]) << k;
  }
  std::vector<uint8_t> in(3 * kPage);
  for (size_t k = 0; k < in.size(); ++k) in[k] = static_cast<uint8_t>(k ^ 0x5a);
  ASSERT_TRUE(port().Write(kPage + 7, in.data(), in.size()));
  for (size_t k = 0; k < in.size(); ++k) {
    const uint64_t iova = kPage + 7 + k;
    ASSERT_EQ(host(20 - iova / kPage)[iova % kPage], in[k]) << k;
  }
  EXPECT_TRUE(sink_.faults().empty());
  port().SetTranslation(nullptr);
}

// The --trace observer sees each completed transfer once, with the host address the first byte
// was translated to, both for few-segment and many-segment transfers, and never a faulted one.
TEST_F(DmaPortTest, ObserverSeesCompletedTransfersWithTheirTranslatedHostAddress) {
  struct Seen {
    std::string device;
    DmaAccess access;
    uint64_t iova, length;
    const void* host;
  };
  struct Recorder final : DmaObserver {
    std::vector<Seen> seen;
    void OnDma(const std::string& d, DmaAccess a, uint64_t iova, uint64_t len, const void* host) override {
      seen.push_back({d, a, iova, len, host});
    }
  } recorder;
  TestTranslation t;
  for (int i = 0; i < 12; ++i) t.Map(i, host(20 - i), true, i != 11);
  port().SetTranslation(&t);
  SetDmaObserver(&recorder);
  std::vector<uint8_t> buf(12 * kPage);
  ASSERT_TRUE(port().Read(3 * kPage + 5, buf.data(), 100));
  ASSERT_TRUE(port().Write(kPage + 9, buf.data(), 10 * kPage - 9));  // many segments: second pass
  EXPECT_FALSE(port().Write(10 * kPage, buf.data(), 2 * kPage));   // page 11 is read-only
  SetDmaObserver(nullptr);
  port().SetTranslation(nullptr);
  ASSERT_EQ(recorder.seen.size(), 2u);
  EXPECT_EQ(recorder.seen[0].device, "test:dma0");
  EXPECT_EQ(recorder.seen[0].access, DmaAccess::kRead);
  EXPECT_EQ(recorder.seen[0].iova, 3 * kPage + 5);
  EXPECT_EQ(recorder.seen[0].length, 100u);
  EXPECT_EQ(recorder.seen[0].host, host(17) + 5);
  EXPECT_EQ(recorder.seen[1].access, DmaAccess::kWrite);
  EXPECT_EQ(recorder.seen[1].iova, kPage + 9);
  EXPECT_EQ(recorder.seen[1].length, 10 * kPage - 9);
  EXPECT_EQ(recorder.seen[1].host, host(19) + 9);
}

TEST_F(DmaPortTest, MissOnTheLastPageFaultsOnceAndWritesNothing) {
  TestTranslation t;
  t.Map(0, host(0), true, true);
  t.Map(1, host(1), true, true);
  port().SetTranslation(&t);
  const std::vector<uint8_t> before(mem_);
  std::vector<uint8_t> in(3 * kPage, 0xee);
  EXPECT_EQ(vb::ErrnoOf(port().Write(0x10, in.data(), in.size())), EFAULT);
  EXPECT_EQ(mem_, before);
  auto f = sink_.faults();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].iova, 2 * kPage);
  EXPECT_EQ(f[0].access, DmaAccess::kWrite);
  EXPECT_EQ(f[0].reason, DmaFaultReason::kNotMapped);
  EXPECT_EQ(port().faults_for_test(), 1u);
  port().SetTranslation(nullptr);
}

TEST_F(DmaPortTest, CopyMovesHostToHostAndChecksBothSidesFirst) {
  TestTranslation t;
  // Source iova pages 0..2 → host pages 30, 29, 28 (three pieces), destination pages 8..10 → 40..42
  // (one piece); page 11 is read-only, page 12 unmapped.
  for (int i = 0; i < 3; ++i) t.Map(i, host(30 - i), true, true);
  for (int i = 0; i < 3; ++i) t.Map(8 + i, host(40 + i), true, true);
  t.Map(11, host(43), true, false);
  port().SetTranslation(&t);
  const uint64_t len = 2 * kPage + 100;
  std::vector<uint8_t> want(len);
  for (uint64_t k = 0; k < len; ++k) want[k] = host(30 - int((50 + k) / kPage))[(50 + k) % kPage];
  DmaAccess failed = DmaAccess::kWrite;
  ASSERT_TRUE(port().Copy(50, 8 * kPage + 9, len, &failed));
  EXPECT_EQ(std::memcmp(host(40) + 9, want.data(), len), 0);
  // A source miss (page 12) and a destination that is read-only (page 11): nothing written,
  // one fault each, and the side named.
  const std::vector<uint8_t> before(mem_);
  EXPECT_EQ(vb::ErrnoOf(port().Copy(11 * kPage, 8 * kPage, 2 * kPage, &failed)), EFAULT);
  EXPECT_EQ(failed, DmaAccess::kRead);
  EXPECT_EQ(vb::ErrnoOf(port().Copy(0, 10 * kPage, 2 * kPage, &failed)), EFAULT);
  EXPECT_EQ(failed, DmaAccess::kWrite);
  EXPECT_EQ(mem_, before);
  auto f = sink_.faults();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].iova, 12 * kPage);
  EXPECT_EQ(f[0].access, DmaAccess::kRead);
  EXPECT_EQ(f[1].iova, 11 * kPage);
  EXPECT_EQ(f[1].reason, DmaFaultReason::kPermission);
  EXPECT_EQ(vb::ErrnoOf(port().Copy(~0ull - 2, 0, 8, &failed)), EINVAL);
  port().SetTranslation(nullptr);
}

TEST_F(DmaPortTest, CopyOfASourceInTooManyPiecesIsEnotsupAndWritesNothing) {
  TestTranslation t;
  for (int i = 0; i < 12; ++i) t.Map(i, host(30 - i), true, true);  // 12 pieces
  for (int i = 0; i < 12; ++i) t.Map(16 + i, host(40 + i), true, true);
  port().SetTranslation(&t);
  const std::vector<uint8_t> before(mem_);
  DmaAccess failed;
  EXPECT_EQ(vb::ErrnoOf(port().Copy(0, 16 * kPage, 12 * kPage, &failed)), ENOTSUP);
  EXPECT_EQ(mem_, before);
  EXPECT_TRUE(sink_.faults().empty());
  port().SetTranslation(nullptr);
}

TEST_F(DmaPortTest, WriteToReadOnlyPageIsAPermissionFault) {
  TestTranslation t;
  t.Map(0, host(0), true, false);
  t.Map(1, host(1), false, true);
  port().SetTranslation(&t);
  uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  // Read first so a read-only entry sits in the cache; the write must not hit it.
  ASSERT_TRUE(port().Read(0x10, buf, sizeof buf));
  const std::vector<uint8_t> before(mem_);
  EXPECT_EQ(vb::ErrnoOf(port().Write(0x10, buf, sizeof buf)), EFAULT);
  EXPECT_EQ(vb::ErrnoOf(port().Read(kPage + 0x10, buf, sizeof buf)), EFAULT);
  EXPECT_EQ(mem_, before);
  auto f = sink_.faults();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].reason, DmaFaultReason::kPermission);
  EXPECT_EQ(f[0].access, DmaAccess::kWrite);
  EXPECT_EQ(f[1].reason, DmaFaultReason::kPermission);
  EXPECT_EQ(f[1].iova, kPage + 0x10);
  port().SetTranslation(nullptr);
}

TEST_F(DmaPortTest, WrappingRangeIsEinvalAndDisconnectedIsEnodev) {
  TestTranslation t;
  port().SetTranslation(&t);
  uint8_t buf[8];
  EXPECT_EQ(vb::ErrnoOf(port().Read(~0ull - 2, buf, sizeof buf)), EINVAL);
  EXPECT_TRUE(port().Read(0, buf, 0)) << "an empty transfer touches nothing";
  dev_->Disconnect();
  t.Map(0, host(0), true, true);
  EXPECT_EQ(vb::ErrnoOf(port().Read(0, buf, sizeof buf)), ENODEV);
  EXPECT_TRUE(sink_.faults().empty());
  port().SetTranslation(nullptr);
}

TEST_F(DmaPortTest, SmallTransfersWithinAPageHitTheCache) {
  TestTranslation t;
  t.Map(3, host(9), true, true);
  port().SetTranslation(&t);
  uint64_t v = 0;
  ASSERT_TRUE(port().Read(3 * kPage + 8, &v, sizeof v));
  const uint64_t translates = t.translates();
  const uint64_t hits = port().cache_hits_for_test();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(port().Read(3 * kPage + 8 * (i % 64), &v, sizeof v));
    uint64_t expect;
    std::memcpy(&expect, host(9) + 8 * (i % 64), sizeof expect);
    ASSERT_EQ(v, expect);
  }
  EXPECT_EQ(t.translates(), translates) << "every read was served by the cache";
  EXPECT_EQ(port().cache_hits_for_test(), hits + 100);
  // A write to the same page needs its own (write) check once, then hits as well.
  ASSERT_TRUE(port().Write(3 * kPage, &v, sizeof v));
  ASSERT_TRUE(port().Write(3 * kPage + 64, &v, sizeof v));
  ASSERT_TRUE(port().Read(3 * kPage, &v, sizeof v));
  EXPECT_EQ(t.translates(), translates + 1);
  port().SetTranslation(nullptr);
}

TEST_F(DmaPortTest, GenerationBumpInvalidatesTheCacheExactly) {
  TestTranslation t;
  t.Map(5, host(5), true, true);
  port().SetTranslation(&t);
  uint8_t b = 0;
  ASSERT_TRUE(port().Read(5 * kPage, &b, 1));
  ASSERT_TRUE(port().Read(5 * kPage, &b, 1));  // cached now
  t.Unmap(5);
  EXPECT_EQ(vb::ErrnoOf(port().Read(5 * kPage, &b, 1)), EFAULT);
  ASSERT_EQ(sink_.faults().size(), 1u);
  EXPECT_EQ(sink_.faults()[0].reason, DmaFaultReason::kNotMapped);
  // Remapped elsewhere: the new bytes, never the old page.
  host(30)[0] = 0x99;
  host(5)[0] = 0x11;
  t.Map(5, host(30), true, true);
  ASSERT_TRUE(port().Read(5 * kPage, &b, 1));
  EXPECT_EQ(b, 0x99);
  port().SetTranslation(nullptr);
}

TEST_F(DmaPortTest, CacheIsNotReusedAcrossSetTranslation) {
  // Two translations with the same generation (0) mapping the same iova differently.
  TestTranslation a, b;
  a.Map(0, host(1), true, true);
  b.Map(0, host(2), true, true);
  host(1)[0] = 0xa1;
  host(2)[0] = 0xb2;
  uint8_t v = 0;
  port().SetTranslation(&a);
  ASSERT_TRUE(port().Read(0, &v, 1));
  ASSERT_TRUE(port().Read(0, &v, 1));
  EXPECT_EQ(v, 0xa1);
  port().SetTranslation(&b);
  ASSERT_TRUE(port().Read(0, &v, 1));
  EXPECT_EQ(v, 0xb2);
  port().SetTranslation(&a);  // the same object again: old entries stay dead
  b.Map(0, host(3), true, true);
  host(3)[0] = 0xc3;
  ASSERT_TRUE(port().Read(0, &v, 1));
  EXPECT_EQ(v, 0xa1);
  port().SetTranslation(nullptr);
  EXPECT_EQ(vb::ErrnoOf(port().Read(0, &v, 1)), EFAULT);
}

TEST_F(DmaPortTest, SubPageGranuleIsNotCachedAsAWholePage) {
  TestTranslation t(/*granule=*/2048);
  t.Map(0, host(10), true, true);  // iova [0, 2K) -> page 10
  t.Map(1, host(12), true, true);  // iova [2K, 4K) -> page 12
  port().SetTranslation(&t);
  uint8_t v = 0;
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(port().Read(16, &v, 1));
    EXPECT_EQ(v, host(10)[16]);
    ASSERT_TRUE(port().Read(2048 + 16, &v, 1));
    EXPECT_EQ(v, host(12)[16]);
  }
  port().SetTranslation(nullptr);
}

// Several threads DMA through one port (mostly cache hits) while a writer remaps a page between
// two host pages and poisons each right after its Unmap returned. No reader may copy poison, and
// under TSan the poisoning would race with any copy the epoch failed to wait for.
TEST_F(DmaPortTest, ConcurrentDmaThroughOnePortNeverSeesAnUnmappedPage) {
  constexpr uint8_t kPoison = 0xde;
  TestTranslation t;
  for (int i = 0; i < 4; ++i) {
    std::memset(host(i), 0x10 + i, kPage);
    t.Map(i, host(i), true, true);
  }
  port().SetTranslation(&t);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, ok{0};
  auto reader = [&](int seed) {
    unsigned x = seed;
    uint8_t buf[64];
    while (!stop.load(std::memory_order_relaxed)) {
      x = x * 1103515245 + 12345;
      const uint64_t iova = ((x >> 8) % 5) * kPage + ((x >> 4) % 60);
      if (!port().Read(iova, buf, sizeof buf)) continue;  // page 4 is being remapped
      ok.fetch_add(1, std::memory_order_relaxed);
      for (uint8_t c : buf)
        if (c == kPoison || c != buf[0]) bad.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(reader, i + 11);
  // Bounded by time too: on a loaded machine a reader preempted inside its section stretches
  // every grace period.
  const int rounds = static_cast<int>(3000 * StressScale());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  // And long enough for the readers to have started (a scaled-down run can end before they do).
  for (int round = 0; (round < rounds || ok.load() == 0) && std::chrono::steady_clock::now() < deadline; ++round) {
    uint8_t* page = host(40 + round % 2);
    std::memset(page, 0x20 + round % 100, kPage);
    t.Map(4, page, true, false);
    if (round % 4 == 0) std::this_thread::yield();
    t.Unmap(4);
    std::memset(page, kPoison, kPage);
  }
  stop.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(ok.load(), 0u);
  port().SetTranslation(nullptr);
}

}  // namespace
}  // namespace hw
