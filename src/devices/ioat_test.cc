#include "devices/ioat.h"

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "hw/machine.h"
#include "hw/pci_regs.h"
#include "hw/testing/recording_sink.h"

namespace devices {
namespace {

using hw::DmaAccess;
using hw::DmaFaultReason;
using hw::DmaTranslateResult;
using hw::testing::Events;
using hw::testing::RecordingSink;

// Identity translation (iova = host address) limited to the windows a test maps; everything else
// faults as not mapped.
class WindowTranslation : public hw::DmaTranslation {
 public:
  DmaTranslateResult Translate(uint64_t iova, uint64_t length, DmaAccess) const override {
    std::lock_guard l(mu_);
    for (auto [begin, end] : windows_) {
      if (iova >= begin && iova < end)
        return {true, DmaFaultReason::kNotMapped, {reinterpret_cast<uint8_t*>(iova), std::min(length, end - iova)}};
    }
    return {false, DmaFaultReason::kNotMapped, {}};
  }
  uint64_t generation() const override { return 0; }
  uint64_t granule() const override { return 1; }  // no caching: windows are test-defined
  void Map(const void* p, size_t n) {
    std::lock_guard l(mu_);
    windows_.emplace_back(reinterpret_cast<uint64_t>(p), reinterpret_cast<uint64_t>(p) + n);
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> windows_;
};

class RecordingFaults : public hw::FaultSink {
 public:
  void RecordFault(const hw::DmaFault& f) override {
    std::lock_guard l(mu_);
    faults.push_back(f);
  }
  std::vector<hw::DmaFault> Take() {
    std::lock_guard l(mu_);
    return std::exchange(faults, {});
  }

 private:
  std::mutex mu_;
  std::vector<hw::DmaFault> faults;
};

// An IOVA nothing maps.
constexpr uint64_t kUnmapped = 0x7ead00000000;

struct alignas(64) Desc {
  uint32_t size = 0;
  uint32_t ctl = 0;
  uint64_t src = 0;
  uint64_t dst = 0;
  uint64_t next = 0;
  uint64_t reserved[4] = {};
};
static_assert(sizeof(Desc) == 64);

uint64_t Iova(const void* p) { return reinterpret_cast<uint64_t>(p); }
uint32_t Op(uint8_t op) { return uint32_t{op} << 24; }

class IoatTest : public ::testing::Test {
 protected:
  void SetUp() override { Plug({}); }
  void TearDown() override {
    if (dev_) {
      machine_.executor().Drain();
      dev_->SetInterruptSink(nullptr);
      dev_->dma().SetTranslation(nullptr);
      dev_->dma().SetFaultSink(nullptr);
    }
  }
  void Plug(const IoatOptions& options) {
    if (dev_) {
      TearDown();
      ASSERT_TRUE(machine_.RemoveDevice(*dev_).has_value());
    }
    dev_ = Ioat::Create({0, 0, hw::MakeDevfn(4, 0)}, options).value();
    ASSERT_TRUE(machine_.AddPciDevice(dev_).has_value());
    ASSERT_TRUE(dev_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory | hw::pci::kCommandMaster).has_value());
    dev_->SetInterruptSink(&sink_);
    dev_->dma().SetTranslation(&tr_);
    dev_->dma().SetFaultSink(&faults_);
  }
  uint64_t R(uint64_t off, unsigned size) {
    uint64_t v = 0;
    EXPECT_TRUE(dev_->BarRead(0, off, &v, size).has_value());
    return v;
  }
  void W(uint64_t off, unsigned size, uint64_t v) { EXPECT_TRUE(dev_->BarWrite(0, off, &v, size).has_value()); }
  uint64_t Sts() { return R(Ioat::kRegChanSts, 8); }
  uint64_t State() { return Sts() & Ioat::kStsStateMask; }
  uint32_t Cfg(uint32_t off) { return dev_->ConfigRead(off, 4).value(); }
  void Drain() { machine_.executor().Drain(); }
  std::promise<void> BlockExecutor() {
    std::promise<void> gate;
    auto fut = std::make_shared<std::shared_future<void>>(gate.get_future().share());
    machine_.executor().Post([fut] { fut->wait(); });
    return gate;
  }
  void EnableMsix() {
    const uint8_t cap = *dev_->msix_offset();
    ASSERT_TRUE(dev_->ConfigWrite(cap + hw::pci::kMsixFlags, 2, hw::pci::kMsixFlagsEnable).has_value());
    // Unmask vector 0 (vector control dword of table entry 0).
    uint32_t zero = 0;
    ASSERT_TRUE(dev_->BarWrite(0, Ioat::kMsixTableOffset + 12, &zero, 4).has_value());
  }
  void EnableMsi() {
    const uint8_t cap = *dev_->msi_offset();
    ASSERT_TRUE(dev_->ConfigWrite(cap + hw::pci::kMsiFlags, 2, hw::pci::kMsiFlagsEnable).has_value());
  }
  // Reset, then CHAINADDR (two 32-bit writes, as Linux) and CHANCMP, CHANCTRL as Linux programs them.
  void Start(const void* first, uint64_t chancmp, uint16_t chanctrl = 0x1d) {
    W(Ioat::kRegChanCmd, 1, Ioat::kCmdReset);
    W(Ioat::kRegChanCtrl, 2, chanctrl);
    W(Ioat::kRegChanCmp, 4, chancmp & 0xffffffff);
    W(Ioat::kRegChanCmp + 4, 4, chancmp >> 32);
    W(Ioat::kRegChainAddr, 4, Iova(first) & 0xffffffff);
    W(Ioat::kRegChainAddr + 4, 4, Iova(first) >> 32);
  }
  // A ring of n descriptors, spread out (not contiguous: one per 256 bytes, in reverse order) to
  // show the device follows `next`.
  std::vector<Desc*> Ring(size_t n) {
    ring_mem_ = std::make_unique<Desc[]>(4 * n + 4);
    tr_.Map(ring_mem_.get(), sizeof(Desc) * (4 * n + 4));
    std::vector<Desc*> ring;
    for (size_t i = 0; i < n; ++i) ring.push_back(&ring_mem_[4 * (n - i)]);
    for (size_t i = 0; i < n; ++i) ring[i]->next = Iova(ring[(i + 1) % n]);
    return ring;
  }

  WindowTranslation tr_;
  RecordingFaults faults_;
  RecordingSink sink_;
  hw::Machine machine_;
  vb::RefPtr<Ioat> dev_;
  std::unique_ptr<Desc[]> ring_mem_;
};

TEST_F(IoatTest, ConfigSpaceIsAPcieCbdmaFunctionWithErrorRegistersInExtendedSpace) {
  EXPECT_EQ(Cfg(hw::pci::kVendorId), 0x20218086u);
  EXPECT_EQ(Cfg(0x08) >> 8, Ioat::kClassCode);
  EXPECT_EQ(dev_->config_size(), 4096u);
  EXPECT_TRUE(dev_->is_pcie());
  EXPECT_EQ(dev_->interrupt_pin(), 1);
  ASSERT_TRUE(dev_->msix_spec().has_value());
  EXPECT_EQ(dev_->msix_spec()->table_size, 1) << "one vector per channel";
  EXPECT_EQ(dev_->msix_spec()->table_bar, 0);
  EXPECT_GE(dev_->msix_spec()->table_offset, 0x1000u) << "out of the first page of BAR0 (DPDK maps around it)";
  EXPECT_TRUE(dev_->msi_spec().has_value());
  EXPECT_EQ(dev_->bar(0).kind, hw::BarKind::kMem64);
  EXPECT_EQ(dev_->bar(0).size, Ioat::kBar0Size);
  // Error registers: zero, RW1C (CHANERR_INT, DMAUNCERRSTS) or RW (the masks, severities).
  for (uint32_t off : {Ioat::kCfgDmaUncErrSts, Ioat::kCfgDmaUncErrMsk, Ioat::kCfgDmaUncErrSev, Ioat::kCfgChanErrInt,
                       Ioat::kCfgChanErrMskInt, Ioat::kCfgChanErrSevInt})
    EXPECT_EQ(Cfg(off), 0u) << std::hex << off;
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgChanErrInt, 4, 0xffffffff).has_value());
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrInt), 0u) << "write-1-to-clear of nothing";
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgChanErrMskInt, 4, 0x300).has_value());
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrMskInt), 0x300u);
  // The extended capability list is empty (no header at 0x100 to walk into the registers).
  EXPECT_EQ(Cfg(0x100), 0u);
}

TEST_F(IoatTest, RegistersHaveTheirResetValues) {
  EXPECT_EQ(R(Ioat::kRegChanCnt, 1), 1u);
  EXPECT_EQ(R(Ioat::kRegXferCap, 1), 16u);
  EXPECT_EQ(R(Ioat::kRegGenCtrl, 1), 0u);
  EXPECT_EQ(R(Ioat::kRegIntrCtrl, 1), 0u);
  EXPECT_EQ(R(Ioat::kRegAttnStatus, 4), 0u);
  EXPECT_EQ(R(Ioat::kRegCbVer, 1), 0x33u);
  EXPECT_EQ(R(Ioat::kRegIntrDelay, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegCsStatus, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegDmaCap, 4), Ioat::kCapFillBlock) << "copy + fill only: no XOR/PQ/DCA/DPS";
  EXPECT_EQ(R(Ioat::kRegDcaOffset, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegChanCtrl, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegChanCmd, 1), 0u);
  EXPECT_EQ(R(Ioat::kRegDmaCount, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegChanSts, 8), Ioat::kStsHalted) << "power-on: halted, as after a reset";
  EXPECT_EQ(R(Ioat::kRegChainAddr, 8), 0u);
  EXPECT_EQ(R(Ioat::kRegChanCmp, 8), 0u);
  EXPECT_EQ(R(Ioat::kRegCdar, 8), 0u);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), 0u);
  EXPECT_EQ(R(Ioat::kRegChanErrMask, 4), 0u);
  EXPECT_EQ(R(Ioat::kRegDcaCtrl, 4), 0u);
  // The same bytes through wider and narrower accesses: the first qword, and CHANSTS halves.
  EXPECT_EQ(R(0x00, 8), uint64_t{1} | uint64_t{16} << 8);
  EXPECT_EQ(R(0x08, 4), 0x33u);
  EXPECT_EQ(R(Ioat::kRegChanSts, 4), Ioat::kStsHalted);
  EXPECT_EQ(R(Ioat::kRegChanSts + 4, 4), 0u);
  // Reserved offsets read 0; an access spanning registers reads each (CHANCMD, a reserved
  // byte, DMACOUNT).
  EXPECT_EQ(R(0x40, 4), 0u);
  EXPECT_EQ(R(0x1000, 8), 0u);
  W(Ioat::kRegDmaCount, 2, 0x1234);
  EXPECT_EQ(R(Ioat::kRegChanCmd, 4), 0x12340000u);
}

TEST_F(IoatTest, XfercapComesFromTheOptions) {
  Plug({.xfercap = 12});
  EXPECT_EQ(R(Ioat::kRegXferCap, 1), 12u);
  EXPECT_EQ(vb::ErrnoOf(Ioat::Create({0, 9, 0}, {.xfercap = 0})), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(Ioat::Create({0, 9, 0}, {.xfercap = 32})), EINVAL);
}

TEST_F(IoatTest, WritesFollowEachRegistersKind) {
  // Read-only general registers keep their values.
  W(Ioat::kRegChanCnt, 1, 7);
  W(Ioat::kRegXferCap, 1, 3);
  W(Ioat::kRegCbVer, 1, 0x12);
  W(Ioat::kRegDmaCap, 4, 0xffffffff);
  W(Ioat::kRegCsStatus, 2, 0xffff);
  W(Ioat::kRegDcaOffset, 2, 0x1234);
  EXPECT_EQ(R(0x00, 2), 0x1001u);
  EXPECT_EQ(R(Ioat::kRegCbVer, 1), 0x33u);
  EXPECT_EQ(R(Ioat::kRegDmaCap, 4), Ioat::kCapFillBlock);
  EXPECT_EQ(R(Ioat::kRegCsStatus, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegDcaOffset, 2), 0u);
  // GENCTRL: plain RW. INTRCTRL: only MASTER_INT_EN and MSIX_VECTOR_CONTROL are writable.
  W(Ioat::kRegGenCtrl, 1, 0x01);
  EXPECT_EQ(R(Ioat::kRegGenCtrl, 1), 0x01u);
  W(Ioat::kRegIntrCtrl, 1, 0xff);
  EXPECT_EQ(R(Ioat::kRegIntrCtrl, 1), 0x09u);
  // INTRDELAY: 14 bits; coalescing not supported (bit 15 reads 0).
  W(Ioat::kRegIntrDelay, 2, 0xffff);
  EXPECT_EQ(R(Ioat::kRegIntrDelay, 2), 0x3fffu);
  // CHANCTRL: RW; INT_REARM is a command bit and reads 0.
  W(Ioat::kRegChanCtrl, 2, 0x001d);
  EXPECT_EQ(R(Ioat::kRegChanCtrl, 2), 0x001cu);
  // CHANCMP: one 64-bit store (DPDK) or two 32-bit halves (Linux).
  W(Ioat::kRegChanCmp, 8, 0x1122334455667780);
  EXPECT_EQ(R(Ioat::kRegChanCmp, 8), 0x1122334455667780u);
  W(Ioat::kRegChanCmp + 4, 4, 0xaabbccdd);
  EXPECT_EQ(R(Ioat::kRegChanCmp, 8), 0xaabbccdd55667780u);
  // CHAINADDR: the same, and each write arms the channel with CHANSTS exactly ARMED.
  W(Ioat::kRegChainAddr, 8, 0x23456789abcdef00);
  EXPECT_EQ(R(Ioat::kRegChainAddr, 8), 0x23456789abcdef00u);
  EXPECT_EQ(Sts(), Ioat::kStsArmed);
  W(Ioat::kRegChainAddr, 4, 0x40);
  EXPECT_EQ(R(Ioat::kRegChainAddr, 8), 0x2345678900000040u);
  // CHANSTS and CDAR are read-only.
  W(Ioat::kRegChanSts, 8, 0xffffffffffffffc1);
  W(Ioat::kRegCdar, 8, 0x1000);
  EXPECT_EQ(Sts(), Ioat::kStsArmed);
  EXPECT_EQ(R(Ioat::kRegCdar, 8), 0u);
  // CHANERRMSK, DCACTRL: RW (DCA control is accepted and ignored, as Linux writes it).
  W(Ioat::kRegChanErrMask, 4, 0xffff);
  EXPECT_EQ(R(Ioat::kRegChanErrMask, 4), 0xffffu);
  W(Ioat::kRegDcaCtrl, 4, 0xffffffff);
  EXPECT_EQ(R(Ioat::kRegDcaCtrl, 4), 0xffffffffu);
  // CHANCMD: commands act at once and it reads 0 (a RAM-like register would hang a reset poll).
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdReset);
  EXPECT_EQ(R(Ioat::kRegChanCmd, 1), 0u);
  EXPECT_EQ(Sts(), Ioat::kStsHalted);
  // DMACOUNT: RW 16 bits (a halted channel keeps the count but does nothing).
  W(Ioat::kRegDmaCount, 2, 0xfffe);
  EXPECT_EQ(R(Ioat::kRegDmaCount, 2), 0xfffeu);
  EXPECT_EQ(Sts(), Ioat::kStsHalted);
  // Reserved offsets drop writes.
  W(0x40, 4, 0xffffffff);
  EXPECT_EQ(R(0x40, 4), 0u);
}

TEST_F(IoatTest, ChanErrIsWriteOneToClear) {
  // Provoke two error bits: a misaligned chain address, then (after clearing) a length error.
  Start(reinterpret_cast<void*>(0x1008), 0, 0x0009);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrNextDescAlign);
  Plug({.xfercap = 12});
  auto ring = Ring(1);
  std::vector<uint8_t> buf(8192);
  tr_.Map(buf.data(), buf.size());
  *ring[0] = {.size = 4097, .src = Iova(buf.data()), .dst = Iova(buf.data() + 4096), .next = Iova(ring[0])};
  Start(ring[0], 0, 0x0009);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrLength);
  W(Ioat::kRegChanErr, 4, 0);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrLength) << "writing 0 clears nothing";
  W(Ioat::kRegChanErr + 1, 1, Ioat::kErrLength >> 8);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), 0u) << "a byte write clears the bits of its byte";
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrInt), Ioat::kErrLength) << "latched in config space too";
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgChanErrInt, 4, Ioat::kErrLength).has_value());
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrInt), 0u);
}

TEST_F(IoatTest, CopiesAlongTheRingAcrossItsWrapWithCompletionWriteback) {
  constexpr size_t kRing = 4;
  auto ring = Ring(kRing);
  std::vector<uint8_t> src(4 * 9000), dst(4 * 9000, 0xee);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7 + 3);
  tr_.Map(src.data(), src.size());
  tr_.Map(dst.data(), dst.size());
  alignas(64) uint64_t completion = 0;
  tr_.Map(&completion, sizeof completion);
  Start(ring[0], Iova(&completion));
  EXPECT_EQ(Sts(), Ioat::kStsArmed);
  // Six copies of odd sizes at odd offsets through a ring of four: the doorbell count runs past
  // the ring's end and the device wraps with it, following `next`.
  const size_t sizes[] = {1, 9000, 777, 4096, 3, 5000};
  size_t at = 0;
  uint16_t count = 0;
  for (int batch = 0; batch < 2; ++batch) {
    for (int k = 0; k < 3; ++k, ++count) {
      Desc* d = ring[count % kRing];
      const size_t n = sizes[count];
      d->size = static_cast<uint32_t>(n);
      d->ctl = Op(Ioat::kOpCopy) | (k == 2 ? Ioat::kCtlComplWrite : 0);
      d->src = Iova(src.data() + at + 1);
      d->dst = Iova(dst.data() + at + 1);
      at += n + 3;
    }
    W(Ioat::kRegDmaCount, 2, count);
    Drain();
    EXPECT_EQ(Sts(), (Iova(ring[(count - 1) % kRing]) | Ioat::kStsDone));
    EXPECT_EQ(completion, Iova(ring[(count - 1) % kRing]) | Ioat::kStsDone) << "the last descriptor, done";
    EXPECT_EQ(R(Ioat::kRegCdar, 8), Iova(ring[(count - 1) % kRing]));
  }
  at = 0;
  for (size_t n : sizes) {
    EXPECT_EQ(dst[at], 0xee) << "nothing before";
    EXPECT_EQ(std::memcmp(dst.data() + at + 1, src.data() + at + 1, n), 0);
    EXPECT_EQ(dst[at + 1 + n], 0xee) << "nothing after";
    at += n + 3;
  }
  EXPECT_EQ(dev_->stats().descriptors, 6u);
  EXPECT_EQ(dev_->stats().bytes, 1u + 9000 + 777 + 4096 + 3 + 5000);
  EXPECT_TRUE(faults_.Take().empty());
  EXPECT_EQ(sink_.Take(), Events{}) << "no descriptor asked for an interrupt";
}

TEST_F(IoatTest, WritebackSaysActiveWhileMoreIsQueued) {
  auto ring = Ring(2);
  alignas(64) uint64_t completion = 0;
  tr_.Map(&completion, sizeof completion);
  ring[0]->ctl = Ioat::kCtlNull | Ioat::kCtlComplWrite;
  ring[1]->ctl = Ioat::kCtlNull;
  Start(ring[0], Iova(&completion));
  W(Ioat::kRegDmaCount, 2, 2);
  Drain();
  EXPECT_EQ(completion, Iova(ring[0]) | Ioat::kStsActive);
  EXPECT_EQ(Sts(), Iova(ring[1]) | Ioat::kStsDone);
}

TEST_F(IoatTest, NullDescriptorMovesNothingAndCompletes) {
  // Linux's channel start: null=1, int_en=1, compl_write=1, size 1, src = dst = 0 (unmapped).
  auto ring = Ring(2);
  alignas(64) uint64_t completion = 0;
  tr_.Map(&completion, sizeof completion);
  EnableMsix();
  W(Ioat::kRegIntrCtrl, 1, 0x09);
  *ring[0] = {.size = 1, .ctl = Ioat::kCtlNull | Ioat::kCtlIntEn | Ioat::kCtlComplWrite, .next = Iova(ring[1])};
  Start(ring[0], Iova(&completion));
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(completion, Iova(ring[0]) | Ioat::kStsDone);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), 0u);
  EXPECT_TRUE(faults_.Take().empty());
  EXPECT_EQ(sink_.Take(), Events{"msix:0"});
  EXPECT_EQ(dev_->stats().bytes, 0u);
}

TEST_F(IoatTest, FillWritesThePatternBytesAndNothingPast) {
  auto ring = Ring(8);
  std::vector<uint8_t> dst(4096);
  tr_.Map(dst.data(), dst.size());
  constexpr uint64_t kPattern = 0xfedcba9876543210;
  const uint32_t lens[] = {8, 64, 1024, 50, 100, 89};
  size_t at = 0;
  for (size_t i = 0; i < 6; ++i) {
    *ring[i] = {.size = lens[i], .ctl = Op(Ioat::kOpFill), .src = kPattern, .dst = Iova(dst.data() + at + 3),
                .next = ring[i]->next};
    at += lens[i] + 8;
  }
  Start(ring[0], 0);
  W(Ioat::kRegDmaCount, 2, 6);
  Drain();
  EXPECT_EQ(State(), Ioat::kStsDone);
  at = 0;
  for (uint32_t n : lens) {
    for (uint32_t j = 0; j < 3; ++j) EXPECT_EQ(dst[at + j], 0) << "before";
    for (uint32_t j = 0; j < n; ++j) ASSERT_EQ(dst[at + 3 + j], static_cast<uint8_t>(kPattern >> (8 * (j % 8)))) << n;
    EXPECT_EQ(dst[at + 3 + n], 0) << "past the end";
    at += n + 8;
  }
}

TEST_F(IoatTest, LargeFillAndCopyCrossChunks) {
  Plug({.xfercap = 20});
  auto ring = Ring(2);
  std::vector<uint8_t> a(1 << 20), b(1 << 20);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i ^ (i >> 9));
  tr_.Map(a.data(), a.size());
  tr_.Map(b.data(), b.size());
  *ring[0] = {.size = 1 << 20, .ctl = Op(Ioat::kOpCopy), .src = Iova(a.data()), .dst = Iova(b.data()), .next = Iova(ring[1])};
  *ring[1] = {.size = (1 << 20) - 5, .ctl = Op(Ioat::kOpFill), .src = 0x0706050403020100, .dst = Iova(a.data() + 1),
              .next = Iova(ring[0])};
  Start(ring[0], 0);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], static_cast<uint8_t>(i ^ (i >> 9))) << i;
  W(Ioat::kRegDmaCount, 2, 2);
  Drain();
  EXPECT_EQ(State(), Ioat::kStsDone);
  EXPECT_EQ(a[0], 0u);
  for (size_t j = 0; j < (1 << 20) - 5; ++j) ASSERT_EQ(a[1 + j], j % 8) << j;
  EXPECT_EQ(a[(1 << 20) - 4], static_cast<uint8_t>(((1 << 20) - 4) ^ (((1 << 20) - 4) >> 9)));
}

TEST_F(IoatTest, DoorbellReturnsAtOnceAndTheEngineRunsOnTheExecutor) {
  auto ring = Ring(1);
  std::vector<uint8_t> src(4096, 0x5a), dst(4096);
  tr_.Map(src.data(), src.size());
  tr_.Map(dst.data(), dst.size());
  *ring[0] = {.size = 4096, .ctl = Op(Ioat::kOpCopy), .src = Iova(src.data()), .dst = Iova(dst.data()), .next = Iova(ring[0])};
  Start(ring[0], 0);
  auto gate = BlockExecutor();
  W(Ioat::kRegDmaCount, 2, 1);
  EXPECT_EQ(Sts(), Ioat::kStsActive) << "ACTIVE as soon as DMACOUNT is ahead";
  EXPECT_EQ(dst[0], 0) << "nothing copied on the writer's thread";
  gate.set_value();
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsDone);
  EXPECT_EQ(dst[4095], 0x5a);
}

TEST_F(IoatTest, AStormOfRepeatedDescriptorsRunsInSlices) {
  // The VFIO selftest's memcpy_storm: one descriptor pointing at itself, DMACOUNT = 65535.
  auto ring = Ring(1);
  std::vector<uint8_t> src(1 << 16, 0x11), dst(1 << 16);
  tr_.Map(src.data(), src.size());
  tr_.Map(dst.data(), dst.size());
  *ring[0] = {.size = 1 << 16, .ctl = Op(Ioat::kOpCopy), .src = Iova(src.data()), .dst = Iova(dst.data()), .next = Iova(ring[0])};
  Start(ring[0], 0, Ioat::kChanCtrlIntRearm | Ioat::kChanCtrlAnyErrAbortEn);
  W(Ioat::kRegDmaCount, 2, 2000);
  // Registers stay reachable while it runs (polls are served between slices).
  while (State() == Ioat::kStsActive) {
  }
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsDone);
  const IoatStats s = dev_->stats();
  EXPECT_EQ(s.descriptors, 2000u);
  EXPECT_EQ(s.bytes, 2000u << 16);
  EXPECT_GE(s.slices, 2000u * (1 << 16) / Ioat::kSliceBytes) << "the lock is released between slices";
  EXPECT_EQ(dst[12345], 0x11);
}

TEST_F(IoatTest, InterruptOnlyForDescriptorsThatAskAndOnlyAfterTheWriteback) {
  auto ring = Ring(4);
  alignas(64) uint64_t completion = 0;
  tr_.Map(&completion, sizeof completion);
  for (Desc* d : ring) d->ctl = Ioat::kCtlNull | Ioat::kCtlComplWrite;
  ring[1]->ctl |= Ioat::kCtlIntEn;
  ring[3]->ctl |= Ioat::kCtlIntEn;
  EnableMsix();
  W(Ioat::kRegIntrCtrl, 1, Ioat::kIntrMsixVectorControl);  // what the VFIO selftest driver sets
  Start(ring[0], Iova(&completion));
  W(Ioat::kRegDmaCount, 2, 4);
  Drain();
  // Two messages (PciDevice merges a message into one still queued for the same vector).
  EXPECT_EQ(dev_->msix_count(0), 2u);
  EXPECT_EQ(sink_.Take(), Events{"msix:0"});
  EXPECT_EQ(completion, Iova(ring[3]) | Ioat::kStsDone);
  // INTRCTRL = 0 (a driver's remove): no interrupts.
  W(Ioat::kRegIntrCtrl, 1, 0);
  Start(ring[0], Iova(&completion));
  W(Ioat::kRegDmaCount, 2, 4);
  Drain();
  EXPECT_EQ(sink_.Take(), Events{});
}

TEST_F(IoatTest, MsiAndIntxModesUseAttnStatus) {
  auto ring = Ring(1);
  ring[0]->ctl = Ioat::kCtlNull | Ioat::kCtlIntEn;
  W(Ioat::kRegIntrCtrl, 1, Ioat::kIntrMasterIntEn);
  // INTx: the pin stays asserted until ATTNSTATUS is read.
  Start(ring[0], 0);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(sink_.Take(), Events{"intx:1"});
  EXPECT_EQ(R(Ioat::kRegIntrCtrl, 1), uint64_t{Ioat::kIntrMasterIntEn | Ioat::kIntrIntStatus | Ioat::kIntrInt});
  EXPECT_EQ(R(Ioat::kRegAttnStatus, 4), 1u);
  EXPECT_EQ(sink_.Take(), Events{"intx:0"});
  EXPECT_EQ(R(Ioat::kRegAttnStatus, 4), 0u) << "read-to-clear";
  EXPECT_EQ(R(Ioat::kRegIntrCtrl, 1), uint64_t{Ioat::kIntrMasterIntEn});
  // MSI.
  EnableMsi();
  Start(ring[0], 0);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(sink_.Take(), Events{"msi:0"});
  EXPECT_EQ(R(Ioat::kRegAttnStatus, 4), 1u);
  // Without MASTER_INT_EN nothing is sent in MSI/INTx mode.
  W(Ioat::kRegIntrCtrl, 1, 0);
  Start(ring[0], 0);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(sink_.Take(), Events{});
}

// ---- the error path ----

class IoatErrorTest : public IoatTest {
 protected:
  void SetUp() override {
    IoatTest::SetUp();
    ring = Ring(4);
    src.assign(8192, 0x77);
    dst.assign(8192, 0);
    tr_.Map(src.data(), src.size());
    tr_.Map(dst.data(), dst.size());
    tr_.Map(&completion, sizeof completion);
    EnableMsix();
    W(Ioat::kRegIntrCtrl, 1, 0x09);
    // Descriptor 0 copies fine and asks for a writeback and an interrupt; descriptor 1 is the
    // one a test breaks; it asks for both too.
    *ring[0] = {.size = 4096, .ctl = Op(Ioat::kOpCopy) | Ioat::kCtlComplWrite | Ioat::kCtlIntEn,
                .src = Iova(src.data()), .dst = Iova(dst.data()), .next = Iova(ring[1])};
    *ring[1] = {.size = 4096, .ctl = Op(Ioat::kOpCopy) | Ioat::kCtlComplWrite | Ioat::kCtlIntEn,
                .src = Iova(src.data() + 4096), .dst = Iova(dst.data() + 4096), .next = Iova(ring[2])};
    ring[2]->ctl = Ioat::kCtlNull | Ioat::kCtlIntEn;
  }
  // Runs the three descriptors; the channel must halt at descriptor 1 with `err`.
  void ExpectHaltAtSecond(uint32_t err, uint64_t fault_iova, DmaAccess access, uint16_t chanctrl = 0x0009) {
    Start(ring[0], Iova(&completion), chanctrl);
    W(Ioat::kRegDmaCount, 2, 3);
    Drain();
    EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsHalted) << "CHANSTS names the last completed descriptor";
    EXPECT_EQ(R(Ioat::kRegChanErr, 4), err);
    EXPECT_EQ(Cfg(Ioat::kCfgChanErrInt), err);
    EXPECT_EQ(R(Ioat::kRegCdar, 8), Iova(ring[1]));
    auto f = faults_.Take();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].iova, fault_iova);
    EXPECT_EQ(f[0].access, access);
    EXPECT_EQ(f[0].requester, "0000:00:04.0");
    EXPECT_EQ(sink_.Take(), Events{"msix:0"}) << "descriptor 0's interrupt only";
    EXPECT_EQ(dev_->stats().descriptors, 1u);
    EXPECT_EQ(dev_->stats().errors, 1u);
    // A halted channel ignores the doorbell until it is restarted.
    W(Ioat::kRegDmaCount, 2, 4);
    Drain();
    EXPECT_EQ(State(), Ioat::kStsHalted);
  }

  std::vector<Desc*> ring;
  std::vector<uint8_t> src, dst;
  alignas(64) uint64_t completion = 0;
};

TEST_F(IoatErrorTest, UnmappedSourceIsAReadDataError) {
  ring[1]->src = kUnmapped + 0x40;
  ExpectHaltAtSecond(Ioat::kErrReadData, kUnmapped + 0x40, DmaAccess::kRead);
  EXPECT_EQ(dst[4096], 0) << "nothing written";
  EXPECT_EQ(completion, Iova(ring[0]) | Ioat::kStsActive) << "descriptor 0's; no error write-back without ERR_COMPLETION_EN";
}

TEST_F(IoatErrorTest, UnmappedDestinationIsAWriteDataError) {
  ring[1]->dst = kUnmapped + 0x80;
  ExpectHaltAtSecond(Ioat::kErrWriteData, kUnmapped + 0x80, DmaAccess::kWrite);
}

TEST_F(IoatErrorTest, UnmappedNextDescriptorIsANextAddressError) {
  ring[0]->next = kUnmapped;
  Start(ring[0], Iova(&completion), 0x000d);
  W(Ioat::kRegDmaCount, 2, 2);
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsHalted);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrNextAddr);
  EXPECT_EQ(R(Ioat::kRegCdar, 8), kUnmapped);
  auto f = faults_.Take();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].iova, kUnmapped);
  EXPECT_EQ(f[0].access, DmaAccess::kRead);
  EXPECT_EQ(sink_.Take(), Events{"msix:0"});
}

TEST_F(IoatErrorTest, UnmappedChainAddressIsAChainAddressError) {
  W(Ioat::kRegChanCtrl, 2, 0x0009);
  W(Ioat::kRegChainAddr, 8, kUnmapped + 0x1000);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(Sts(), Ioat::kStsHalted) << "nothing completed yet";
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrChainAddrValue);
  EXPECT_EQ(faults_.Take().size(), 1u);
  EXPECT_EQ(sink_.Take(), Events{});
}

TEST_F(IoatErrorTest, UnmappedCompletionAddressIsACompletionAddressError) {
  Start(ring[0], kUnmapped + 0x200, 0x000d);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsHalted) << "its data moved; the write-back failed";
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrCompletionAddr);
  EXPECT_EQ(dst[0], 0x77);
  auto f = faults_.Take();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].iova, kUnmapped + 0x200);
  EXPECT_EQ(f[0].access, DmaAccess::kWrite);
  EXPECT_EQ(sink_.Take(), Events{}) << "no interrupt for a descriptor whose write-back failed";
}

TEST_F(IoatErrorTest, ErrorCompletionAndErrorInterruptWhenChanCtrlAsks) {
  // Linux's CHANCTRL 0x1d: ERR_COMPLETION_EN writes the halted state back, ERR_INT_EN interrupts.
  ring[1]->src = kUnmapped;
  Start(ring[0], Iova(&completion), 0x001d);
  W(Ioat::kRegDmaCount, 2, 3);
  Drain();
  EXPECT_EQ(completion, Iova(ring[0]) | Ioat::kStsHalted);
  EXPECT_EQ(dev_->msix_count(0), 2u) << "descriptor 0, then the error";
  sink_.Take();
  // A masked error bit raises no error interrupt (still halts and latches).
  W(Ioat::kRegChanErr, 4, 0xffffffff);
  W(Ioat::kRegChanErrMask, 4, Ioat::kErrReadData);
  Start(ring[0], Iova(&completion), 0x001d);
  W(Ioat::kRegDmaCount, 2, 3);
  Drain();
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrReadData);
  EXPECT_EQ(dev_->msix_count(0), 3u) << "descriptor 0's only";
}

TEST_F(IoatErrorTest, UnknownOpAndOversizeAreControlAndLengthErrors) {
  ring[1]->ctl = Op(0x87) | Ioat::kCtlIntEn;  // XOR: not implemented
  Start(ring[0], Iova(&completion), 0x000d);
  W(Ioat::kRegDmaCount, 2, 2);
  Drain();
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrControl);
  EXPECT_EQ(State(), Ioat::kStsHalted);
  W(Ioat::kRegChanErr, 4, 0xffffffff);
  ring[1]->ctl = Op(Ioat::kOpCopy);
  ring[1]->size = (1u << 16) + 1;
  Start(ring[0], Iova(&completion), 0x000d);
  W(Ioat::kRegDmaCount, 2, 2);
  Drain();
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrLength);
  EXPECT_TRUE(faults_.Take().empty()) << "checked before any DMA";
}

TEST_F(IoatErrorTest, BusMasteringOffFailsTheFetchWithoutAFault) {
  ASSERT_TRUE(dev_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory).has_value());
  Start(ring[0], Iova(&completion), 0x0009);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), Ioat::kErrChainAddrValue);
  EXPECT_TRUE(faults_.Take().empty());
  EXPECT_EQ(dst[0], 0);
}

TEST_F(IoatErrorTest, RecoveryAfterAnErrorAsLinuxDoesIt) {
  ring[1]->src = kUnmapped;
  ExpectHaltAtSecond(Ioat::kErrReadData, kUnmapped, DmaAccess::kRead);
  // ioat_eh: clear CHANERR and CHANERR_INT, reset, restart at the failed descriptor.
  W(Ioat::kRegChanErr, 4, R(Ioat::kRegChanErr, 4));
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgChanErrInt, 4, Cfg(Ioat::kCfgChanErrInt)).has_value());
  ring[1]->src = Iova(src.data() + 4096);
  Start(ring[1], Iova(&completion));
  W(Ioat::kRegDmaCount, 2, 2);
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[2]) | Ioat::kStsDone);
  EXPECT_EQ(dst[8191], 0x77);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), 0u);
}

// ---- reset, suspend, abort ----

TEST_F(IoatTest, ResetStopsQueuedWorkAndHalts) {
  auto ring = Ring(1);
  std::vector<uint8_t> src(4096, 1), dst(4096);
  tr_.Map(src.data(), src.size());
  tr_.Map(dst.data(), dst.size());
  *ring[0] = {.size = 4096, .ctl = Op(Ioat::kOpCopy), .src = Iova(src.data()), .dst = Iova(dst.data()), .next = Iova(ring[0])};
  Start(ring[0], 0x1000, 0x1d);
  W(Ioat::kRegChanErrMask, 4, 0x10);
  auto gate = BlockExecutor();
  W(Ioat::kRegDmaCount, 2, 5);
  EXPECT_EQ(State(), Ioat::kStsActive);
  // The SKX reset sequence: SUSPEND if active/done, clear errors, RESET, poll CHANCMD.
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdSuspend);
  EXPECT_EQ(State(), Ioat::kStsSuspended);
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdReset);
  EXPECT_EQ(R(Ioat::kRegChanCmd, 1), 0u);
  gate.set_value();
  Drain();
  EXPECT_EQ(dst[0], 0) << "queued work was dropped";
  EXPECT_EQ(Sts(), Ioat::kStsHalted);
  EXPECT_EQ(R(Ioat::kRegDmaCount, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegChainAddr, 8), 0u);
  EXPECT_EQ(R(Ioat::kRegChanCmp, 8), 0u);
  EXPECT_EQ(R(Ioat::kRegChanCtrl, 2), 0u);
  EXPECT_EQ(R(Ioat::kRegChanErrMask, 4), 0x10u) << "the mask survives a channel reset";
  // DPDK's restart after a reset: CHAINADDR → ARMED (exactly 4), then work.
  W(Ioat::kRegChainAddr, 8, Iova(ring[0]));
  EXPECT_EQ(Sts(), Ioat::kStsArmed);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsDone);
  EXPECT_EQ(dst[0], 1);
}

TEST_F(IoatTest, SuspendKeepsQueuedWorkUntilResume) {
  auto ring = Ring(1);
  std::vector<uint8_t> src(4096, 2), dst(4096);
  tr_.Map(src.data(), src.size());
  tr_.Map(dst.data(), dst.size());
  *ring[0] = {.size = 4096, .ctl = Op(Ioat::kOpCopy), .src = Iova(src.data()), .dst = Iova(dst.data()), .next = Iova(ring[0])};
  Start(ring[0], 0);
  auto gate = BlockExecutor();
  W(Ioat::kRegDmaCount, 2, 3);
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdSuspend);
  EXPECT_EQ(State(), Ioat::kStsSuspended);
  gate.set_value();
  Drain();
  EXPECT_EQ(dst[0], 0);
  EXPECT_EQ(dev_->stats().descriptors, 0u);
  W(Ioat::kRegDmaCount, 2, 4);  // a suspended channel counts but does not run
  Drain();
  EXPECT_EQ(State(), Ioat::kStsSuspended);
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdResume);
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsDone);
  EXPECT_EQ(dev_->stats().descriptors, 4u);
  // The VFIO selftest's wait: DONE, then SUSPEND must read SUSPENDED at once.
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdSuspend);
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsSuspended);
  // A halted channel is not suspended; a resume of a done channel does nothing.
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdReset);
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdSuspend);
  EXPECT_EQ(State(), Ioat::kStsHalted);
}

TEST_F(IoatTest, AbortDropsOutstandingDescriptorsAndHalts) {
  auto ring = Ring(1);
  std::vector<uint8_t> src(4096, 3), dst(4096);
  tr_.Map(src.data(), src.size());
  tr_.Map(dst.data(), dst.size());
  *ring[0] = {.size = 4096, .ctl = Op(Ioat::kOpCopy) | Ioat::kCtlIntEn, .src = Iova(src.data()),
              .dst = Iova(dst.data()), .next = Iova(ring[0])};
  EnableMsix();
  W(Ioat::kRegIntrCtrl, 1, 0x09);
  Start(ring[0], 0);
  auto gate = BlockExecutor();
  W(Ioat::kRegDmaCount, 2, 2);
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdAbort);
  EXPECT_EQ(State(), Ioat::kStsHalted);
  gate.set_value();
  Drain();
  EXPECT_EQ(dst[0], 0);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), 0u);
  EXPECT_EQ(sink_.Take(), Events{});
  W(Ioat::kRegChanCmd, 1, Ioat::kCmdResume);
  EXPECT_EQ(State(), Ioat::kStsHalted) << "only CHAINADDR or a reset restarts it";
}

TEST_F(IoatTest, ChainAddrIsIgnoredWhileActive) {
  auto ring = Ring(1);
  ring[0]->ctl = Ioat::kCtlNull;
  Start(ring[0], 0);
  auto gate = BlockExecutor();
  W(Ioat::kRegDmaCount, 2, 1);
  W(Ioat::kRegChainAddr, 8, 0x4000);
  EXPECT_EQ(R(Ioat::kRegChainAddr, 8), Iova(ring[0]));
  gate.set_value();
  Drain();
  EXPECT_EQ(Sts(), Iova(ring[0]) | Ioat::kStsDone);
}

TEST_F(IoatTest, FunctionLevelResetRestoresEverything) {
  W(Ioat::kRegIntrCtrl, 1, 0x09);
  W(Ioat::kRegChanErrMask, 4, 0xff);
  W(Ioat::kRegChainAddr, 8, 0x5000);
  W(Ioat::kRegChanCmp, 8, 0x6000);
  W(Ioat::kRegDmaCount, 2, 3);  // fetch from 0x5000 faults: CHANERR gets a bit
  Drain();
  EXPECT_NE(R(Ioat::kRegChanErr, 4), 0u);
  EXPECT_NE(Cfg(Ioat::kCfgChanErrInt), 0u);
  dev_->FunctionReset();
  ASSERT_TRUE(dev_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory).has_value());
  EXPECT_EQ(R(Ioat::kRegIntrCtrl, 1), 0u);
  EXPECT_EQ(R(Ioat::kRegChanErr, 4), 0u);
  EXPECT_EQ(R(Ioat::kRegChanErrMask, 4), 0u);
  EXPECT_EQ(Sts(), Ioat::kStsHalted);
  EXPECT_EQ(R(Ioat::kRegChanCmp, 8), 0u);
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrInt), 0u);
  // The error registers keep their kinds across the reset (VFIO resets at every open): RW1C
  // CHANERR_INT latches and clears, the masks take writes.
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgChanErrMskInt, 4, 0x300).has_value());
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrMskInt), 0x300u);
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgChanErrMskInt, 4, 0).has_value());
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgDmaUncErrSev, 4, 0x10).has_value());
  EXPECT_EQ(Cfg(Ioat::kCfgDmaUncErrSev), 0x10u);
  W(Ioat::kRegChainAddr, 8, 0x5000);
  W(Ioat::kRegDmaCount, 2, 1);
  Drain();
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrInt), Ioat::kErrChainAddrValue);
  ASSERT_TRUE(dev_->ConfigWrite(Ioat::kCfgChanErrInt, 4, Ioat::kErrChainAddrValue).has_value());
  EXPECT_EQ(Cfg(Ioat::kCfgChanErrInt), 0u);
}

TEST_F(IoatTest, SurpriseRemovalStopsTheEngine) {
  auto ring = Ring(1);
  ring[0]->ctl = Ioat::kCtlNull;
  Start(ring[0], 0);
  auto gate = BlockExecutor();
  W(Ioat::kRegDmaCount, 2, 100);
  ASSERT_TRUE(machine_.RemoveDevice(*dev_, hw::RemovalKind::kSurprise).has_value());
  gate.set_value();
  Drain();
  EXPECT_EQ(dev_->stats().descriptors, 0u);
}

TEST(IoatBare, RunsInlineWithoutAMachine) {
  auto dev = Ioat::Create({0, 1, 0}).value();
  ASSERT_TRUE(dev->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory | hw::pci::kCommandMaster).has_value());
  WindowTranslation tr;
  dev->dma().SetTranslation(&tr);
  alignas(64) Desc d{.size = 1, .ctl = Ioat::kCtlNull};
  d.next = Iova(&d);
  tr.Map(&d, sizeof d);
  uint64_t v = Iova(&d);
  ASSERT_TRUE(dev->BarWrite(0, Ioat::kRegChainAddr, &v, 8).has_value());
  v = 7;
  ASSERT_TRUE(dev->BarWrite(0, Ioat::kRegDmaCount, &v, 2).has_value());
  ASSERT_TRUE(dev->BarRead(0, Ioat::kRegChanSts, &v, 8).has_value());
  EXPECT_EQ(v, Iova(&d) | Ioat::kStsDone);
  EXPECT_EQ(dev->stats().descriptors, 7u);
  dev->dma().SetTranslation(nullptr);
}

}  // namespace
}  // namespace devices
