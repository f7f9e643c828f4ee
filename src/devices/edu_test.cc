#include "devices/edu.h"

#include <gtest/gtest.h>

#include "hw/testing/recording_sink.h"

#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "hw/machine.h"
#include "hw/pci_regs.h"

namespace devices {
namespace {

using hw::DmaAccess;
using hw::DmaFaultReason;
using hw::DmaTranslateResult;

// Test-local translations: identity (iova = host address), and one that faults everything while
// remembering what it was asked.
class IdentityTranslation : public hw::DmaTranslation {
 public:
  DmaTranslateResult Translate(uint64_t iova, uint64_t length, DmaAccess access) const override {
    if (read_only && access == DmaAccess::kWrite) return {false, DmaFaultReason::kPermission, {}};
    return {true, DmaFaultReason::kNotMapped, {reinterpret_cast<uint8_t*>(iova), length}};
  }
  uint64_t generation() const override { return 0; }
  uint64_t granule() const override { return 4096; }
  bool read_only = false;
};

class RefusingTranslation : public hw::DmaTranslation {
 public:
  DmaTranslateResult Translate(uint64_t iova, uint64_t, DmaAccess) const override {
    last_iova.store(iova);
    return {false, DmaFaultReason::kNotMapped, {}};
  }
  uint64_t generation() const override { return 0; }
  uint64_t granule() const override { return 4096; }
  mutable std::atomic<uint64_t> last_iova{0};
};

using hw::testing::Events;
using hw::testing::RecordingSink;

class EduTest : public ::testing::Test {
 protected:
  void SetUp() override { Plug({}); }
  void TearDown() override {
    if (edu_) {
      edu_->SetInterruptSink(nullptr);
      edu_->dma().SetTranslation(nullptr);
    }
  }
  void Plug(const EduOptions& options) {
    edu_ = Edu::Create({0, 0, hw::MakeDevfn(2, 0)}, options).value();
    ASSERT_TRUE(machine_.AddPciDevice(edu_).has_value());
    ASSERT_TRUE(edu_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory | hw::pci::kCommandMaster).has_value());
    edu_->SetInterruptSink(&sink_);
  }
  uint32_t R32(uint64_t off) {
    uint32_t v = 0;
    EXPECT_TRUE(edu_->BarRead(0, off, &v, 4).has_value());
    return v;
  }
  uint64_t R64(uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(edu_->BarRead(0, off, &v, 8).has_value());
    return v;
  }
  void W32(uint64_t off, uint32_t v) { EXPECT_TRUE(edu_->BarWrite(0, off, &v, 4).has_value()); }
  void W64(uint64_t off, uint64_t v) { EXPECT_TRUE(edu_->BarWrite(0, off, &v, 8).has_value()); }
  void Drain() { machine_.executor().Drain(); }
  // Occupies the executor until the returned promise is fulfilled.
  std::promise<void> BlockExecutor() {
    std::promise<void> gate;
    auto fut = std::make_shared<std::shared_future<void>>(gate.get_future().share());
    machine_.executor().Post([fut] { fut->wait(); });
    return gate;
  }
  void StartDma(uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd) {
    W64(Edu::kRegDmaSrc, src);
    W64(Edu::kRegDmaDst, dst);
    W64(Edu::kRegDmaCount, count);
    W64(Edu::kRegDmaCmd, cmd);
  }
  void StateLockedReset() { edu_->FunctionReset(); }
  void EnableMsi() {
    const uint8_t msi = *edu_->msi_offset();
    ASSERT_TRUE(edu_->ConfigWrite(msi + hw::pci::kMsiFlags, 2, hw::pci::kMsiFlagsEnable).has_value());
  }

  IdentityTranslation identity_;
  RefusingTranslation refusing_;
  RecordingSink sink_;
  hw::Machine machine_;
  vb::RefPtr<Edu> edu_;
};

TEST_F(EduTest, ConfigSpaceMatchesQemuEdu) {
  auto cfg = [&](uint32_t off, unsigned size) { return edu_->ConfigRead(off, size).value(); };
  EXPECT_EQ(cfg(hw::pci::kVendorId, 4), 0x11e81234u);
  EXPECT_EQ(cfg(hw::pci::kRevision, 4) >> 8, 0x00ff00u);
  EXPECT_EQ(cfg(hw::pci::kHeaderType, 1), 0u);
  EXPECT_EQ(cfg(hw::pci::kInterruptPin, 1), 1u);
  EXPECT_EQ(edu_->config_size(), 256u);
  EXPECT_FALSE(edu_->is_pcie());
  EXPECT_EQ(edu_->pcie_offset(), std::nullopt);
  // Exactly one capability: MSI, 64-bit, one vector, no per-vector masking.
  const uint8_t msi = cfg(hw::pci::kCapabilityList, 1);
  EXPECT_EQ(msi, *edu_->msi_offset());
  EXPECT_EQ(cfg(msi, 1), hw::pci::kCapIdMsi);
  EXPECT_EQ(cfg(msi + 1, 1), 0u);
  EXPECT_EQ(cfg(msi + hw::pci::kMsiFlags, 2), uint32_t{hw::pci::kMsiFlags64Bit}) << "64-bit, 1 vector, disabled";
  // BAR0: 1 MiB, 32-bit, non-prefetchable, not mappable.
  EXPECT_EQ(edu_->bar(0).size, Edu::kBar0Size);
  EXPECT_EQ(edu_->bar(0).kind, hw::BarKind::kMem32);
  EXPECT_EQ(edu_->bar_fd(0), -1);
  ASSERT_TRUE(edu_->ConfigWrite(hw::pci::kBar0, 4, 0xffffffff).has_value());
  EXPECT_EQ(cfg(hw::pci::kBar0, 4), 0xfff00000u);
  for (int i = 1; i < 6; ++i) EXPECT_EQ(edu_->bar(i).kind, hw::BarKind::kNone);
}

TEST_F(EduTest, IdentificationAndLivenessRegisters) {
  EXPECT_EQ(R32(Edu::kRegId), 0x010000edu);
  W32(Edu::kRegId, 0);
  EXPECT_EQ(R32(Edu::kRegId), 0x010000edu) << "read-only";
  W32(Edu::kRegLiveness, 0x12345678);
  EXPECT_EQ(R32(Edu::kRegLiveness), 0xedcba987u);
  W32(Edu::kRegLiveness, 0);
  EXPECT_EQ(R32(Edu::kRegLiveness), 0xffffffffu);
}

// Issue 14 item 5. QEMU's memory core refuses widths other than 4 and 8 and unaligned accesses
// (edu_mmio_ops.valid): such reads answer 0 and writes are dropped. The edu itself answers
// all-ones to 8-byte accesses below 0x80 and to offsets it does not implement.
TEST_F(EduTest, InvalidAccessesReadZeroAndEdusOwnRefusalsReadAllOnes) {
  auto read = [&](uint64_t off, unsigned size) {
    uint64_t v = 0x5a5a5a5a5a5a5a5a;
    EXPECT_TRUE(edu_->BarRead(0, off, &v, size).has_value());
    return size == 8 ? v : v & ((uint64_t{1} << (8 * size)) - 1);
  };
  EXPECT_EQ(read(Edu::kRegId, 1), 0u);
  EXPECT_EQ(read(Edu::kRegId, 2), 0u);
  EXPECT_EQ(read(Edu::kRegId + 2, 4), 0u) << "unaligned";
  EXPECT_EQ(read(Edu::kRegLiveness, 8), 0u) << "8 bytes at 4: unaligned";
  EXPECT_EQ(read(Edu::kRegDmaSrc + 4, 8), 0u) << "unaligned";
  EXPECT_EQ(read(Edu::kRegId, 8), ~uint64_t{0}) << "8-byte accesses only reach 0x80..0x98";
  EXPECT_EQ(read(Edu::kRegDmaSrc + 4, 4), 0xffffffffu) << "the upper half is no register";
  EXPECT_EQ(read(0x40, 4), 0xffffffffu) << "unassigned register";
  EXPECT_EQ(read(Edu::kDmaBufferAddr, 4), 0xffffffffu) << "the buffer is not on the BAR";
  EXPECT_EQ(read(0x40, 2), 0u);
  W32(Edu::kRegLiveness, 0x1);
  const uint16_t w = 0x55;
  ASSERT_TRUE(edu_->BarWrite(0, Edu::kRegLiveness, &w, 2).has_value());
  const uint8_t b = 0x55;
  ASSERT_TRUE(edu_->BarWrite(0, Edu::kRegLiveness, &b, 1).has_value());
  const uint32_t unaligned = 0x55;
  ASSERT_TRUE(edu_->BarWrite(0, Edu::kRegLiveness + 1, &unaligned, 4).has_value());
  W64(Edu::kRegLiveness - 4, 0x55);  // 8 bytes below 0x80: the edu drops it
  EXPECT_EQ(R32(Edu::kRegLiveness), 0xfffffffeu);
}

// QEMU's edu has no reset handler: a reset touches config space only.
TEST_F(EduTest, ResetKeepsRegistersAndTheBufferAsQemusEduDoes) {
  W32(Edu::kRegLiveness, 0x12345678);
  W64(Edu::kRegDmaSrc, 0x1000);
  std::array<uint8_t, Edu::kDmaBufferSize> pattern;
  pattern.fill(0x3c);
  edu_->set_dma_buffer(pattern);
  W32(Edu::kRegIrqRaise, 0x40);
  EXPECT_EQ(sink_.Take(), (Events{"intx:1"}));
  StateLockedReset();
  EXPECT_EQ(edu_->ConfigRead(hw::pci::kCommand, 2).value(), 0u) << "config space is reset";
  ASSERT_TRUE(edu_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory).has_value());
  EXPECT_EQ(R32(Edu::kRegLiveness), 0xedcba987u);
  EXPECT_EQ(R64(Edu::kRegDmaSrc), 0x1000u);
  EXPECT_EQ(R32(Edu::kRegIrqStatus), 0x40u);
  EXPECT_EQ(edu_->dma_buffer(), pattern);
}

TEST_F(EduTest, FactorialComputesInTheBackgroundWithTheBusyBit) {
  auto gate = BlockExecutor();
  W32(Edu::kRegFactorial, 10);
  EXPECT_EQ(R32(Edu::kRegStatus) & Edu::kStatusComputing, 1u);
  EXPECT_EQ(R32(Edu::kRegFactorial), 10u) << "still the input while busy";
  W32(Edu::kRegFactorial, 3);  // ignored while busy
  W32(Edu::kRegStatus, 0x1);   // the busy bit is read-only
  gate.set_value();
  Drain();
  EXPECT_EQ(R32(Edu::kRegStatus), 0u);
  EXPECT_EQ(R32(Edu::kRegFactorial), 3628800u);
  EXPECT_EQ(R32(Edu::kRegIrqStatus), 0u) << "no interrupt unless status bit 7";
  EXPECT_EQ(sink_.Take(), Events{});

  W32(Edu::kRegFactorial, 13);
  Drain();
  EXPECT_EQ(R32(Edu::kRegFactorial), 1932053504u) << "13! mod 2^32";
  W32(Edu::kRegFactorial, 0);
  Drain();
  EXPECT_EQ(R32(Edu::kRegFactorial), 1u);
}

// Regression (fuzzer): a factorial of 0xffffffff looped 4 G times holding the state lock.
TEST_F(EduTest, FuzzFactorialOfAHugeValueDoesNotHoldTheDeviceForSeconds) {
  W32(Edu::kRegFactorial, 33);
  Drain();
  EXPECT_EQ(R32(Edu::kRegFactorial), 2147483648u) << "33! mod 2^32";
  const auto t0 = std::chrono::steady_clock::now();
  W32(Edu::kRegFactorial, 0xffffffffu);
  Drain();
  EXPECT_EQ(R32(Edu::kRegFactorial), 0u) << "n! mod 2^32 for n >= 34";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  W32(Edu::kRegFactorial, 34);
  Drain();
  EXPECT_EQ(R32(Edu::kRegFactorial), 0u);
}

TEST_F(EduTest, FactorialRaisesInterruptOneWhenAsked) {
  W32(Edu::kRegStatus, Edu::kStatusIrqFactorial);
  EXPECT_EQ(R32(Edu::kRegStatus), Edu::kStatusIrqFactorial);
  W32(Edu::kRegFactorial, 5);
  Drain();
  EXPECT_EQ(R32(Edu::kRegFactorial), 120u);
  EXPECT_EQ(R32(Edu::kRegIrqStatus), Edu::kIrqFactorial);
  EXPECT_EQ(sink_.Take(), (Events{"intx:1"}));
  W32(Edu::kRegIrqAck, Edu::kIrqFactorial);
  EXPECT_EQ(sink_.Take(), (Events{"intx:0"}));
}

TEST_F(EduTest, IntxIsAssertedWhileInterruptStatusIsNonZero) {
  W32(Edu::kRegIrqRaise, 0x10);
  EXPECT_EQ(sink_.Take(), (Events{"intx:1"}));
  EXPECT_TRUE(edu_->ConfigRead(hw::pci::kStatus, 2).value() & hw::pci::kStatusInterrupt);
  W32(Edu::kRegIrqRaise, 0x20);
  EXPECT_EQ(R32(Edu::kRegIrqStatus), 0x30u);
  W32(Edu::kRegIrqStatus, 0);  // read-only
  EXPECT_EQ(R32(Edu::kRegIrqStatus), 0x30u);
  W32(Edu::kRegIrqAck, 0x10);
  EXPECT_EQ(sink_.Take(), Events{}) << "still 0x20 pending: level stays high";
  W32(Edu::kRegIrqAck, 0x20);
  EXPECT_EQ(sink_.Take(), (Events{"intx:0"}));
  EXPECT_EQ(R32(Edu::kRegIrqStatus), 0u);
  EXPECT_EQ(R32(Edu::kRegIrqRaise), 0xffffffffu) << "write-only";
}

// QEMU: enabling MSI (any write to its capability while enabled) deasserts INTx; an ack leaves
// the pin alone while MSI is on; after MSI is turned off the line stays low until a raise.
TEST_F(EduTest, MsiEnableDropsIntxAndAnAckUnderMsiLeavesThePinAlone) {
  auto status_int = [&] { return edu_->ConfigRead(hw::pci::kStatus, 2).value() & hw::pci::kStatusInterrupt; };
  W32(Edu::kRegIrqRaise, 0x10);
  EXPECT_EQ(sink_.Take(), (Events{"intx:1"}));
  EXPECT_TRUE(status_int());
  EnableMsi();
  EXPECT_FALSE(status_int()) << "enabling MSI deasserted INTx";
  W32(Edu::kRegIrqAck, 0x10);
  EXPECT_FALSE(status_int());
  W32(Edu::kRegIrqRaise, 0x20);  // MSI: a message, no pin
  EXPECT_FALSE(status_int());
  const uint8_t msi = *edu_->msi_offset();
  ASSERT_TRUE(edu_->ConfigWrite(msi + hw::pci::kMsiFlags, 2, 0).has_value());
  EXPECT_FALSE(status_int()) << "the pin stays low after MSI is off";
  EXPECT_EQ(sink_.Take(), (Events{"intx:0", "msi:0"}));
  W32(Edu::kRegIrqRaise, 0);  // status still 0x20: a raise asserts again
  EXPECT_TRUE(status_int());
}

TEST_F(EduTest, WithMsiEnabledEveryRaiseSendsOneMessage) {
  EnableMsi();
  W32(Edu::kRegIrqRaise, 0x1);
  W32(Edu::kRegIrqRaise, 0x1);
  EXPECT_EQ(sink_.Take(), (Events{"msi:0", "msi:0"}));
  W32(Edu::kRegIrqAck, 0x1);
  EXPECT_EQ(sink_.Take(), Events{});
  EXPECT_EQ(edu_->msi_count(0), 2u);
}

TEST_F(EduTest, DmaRamToBufferAndBackMovesTheRightBytes) {
  edu_->dma().SetTranslation(&identity_);
  std::vector<uint8_t> src(4096), dst(4096, 0xee);
  std::iota(src.begin(), src.end(), 0);
  StartDma(reinterpret_cast<uint64_t>(src.data()) + 16, Edu::kDmaBufferAddr + 0x100, 256,
           Edu::kDmaCmdStart | Edu::kDmaCmdIrq);
  Drain();
  auto buf = edu_->dma_buffer();
  EXPECT_TRUE(std::equal(buf.begin() + 0x100, buf.begin() + 0x200, src.begin() + 16));
  EXPECT_EQ(buf[0xff], 0);
  EXPECT_EQ(buf[0x200], 0);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdIrq) << "start bit cleared, no error";
  EXPECT_EQ(R32(Edu::kRegIrqStatus), Edu::kIrqDma);
  EXPECT_EQ(sink_.Take(), (Events{"intx:1"}));
  W32(Edu::kRegIrqAck, Edu::kIrqDma);
  EXPECT_EQ(sink_.Take(), (Events{"intx:0"}));

  StartDma(Edu::kDmaBufferAddr + 0x100, reinterpret_cast<uint64_t>(dst.data()) + 1000, 256,
           Edu::kDmaCmdStart | Edu::kDmaCmdToRam);
  Drain();
  EXPECT_TRUE(std::equal(dst.begin() + 1000, dst.begin() + 1256, src.begin() + 16));
  EXPECT_EQ(dst[999], 0xee);
  EXPECT_EQ(dst[1256], 0xee);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdToRam);
  EXPECT_EQ(R32(Edu::kRegIrqStatus), 0u) << "bit 2 not set: no interrupt";
  EXPECT_EQ(edu_->dma_completions(), 2u);
  EXPECT_EQ(edu_->dma().faults_for_test(), 0u);
}

TEST_F(EduTest, DmaOfTheWholeBufferAndOfZeroBytesWork) {
  edu_->dma().SetTranslation(&identity_);
  std::vector<uint8_t> src(4096, 0x5a);
  StartDma(reinterpret_cast<uint64_t>(src.data()), Edu::kDmaBufferAddr, 4096, Edu::kDmaCmdStart);
  Drain();
  auto buf = edu_->dma_buffer();
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0x5a; }));
  StartDma(reinterpret_cast<uint64_t>(src.data()), Edu::kDmaBufferAddr, 0, Edu::kDmaCmdStart | Edu::kDmaCmdIrq);
  Drain();
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdIrq);
  EXPECT_EQ(R32(Edu::kRegIrqStatus), Edu::kIrqDma);
  EXPECT_EQ(edu_->dma_errors(), 0u);
}

TEST_F(EduTest, DmaWithoutTranslationFaultsAndChangesNoByte) {
  std::array<uint8_t, Edu::kDmaBufferSize> pattern;
  pattern.fill(0xab);
  edu_->set_dma_buffer(pattern);
  alignas(4096) static std::array<uint8_t, 4096> ram;  // one page: one fault per transfer
  ram.fill(0x11);
  // RAM → buffer: the read faults (logged); as QEMU's DMA read of a refused address, the buffer
  // gets zeros, and the transfer completes as any other.
  StartDma(reinterpret_cast<uint64_t>(ram.data()), Edu::kDmaBufferAddr, 4096, Edu::kDmaCmdStart | Edu::kDmaCmdIrq);
  Drain();
  auto buf = edu_->dma_buffer();
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(edu_->dma().faults_for_test(), 1u);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdIrq) << "start cleared, nothing else";
  EXPECT_EQ(R32(Edu::kRegIrqStatus), Edu::kIrqDma) << "completion still raised";
  EXPECT_EQ(sink_.Take(), (Events{"intx:1"}));
  // buffer → RAM: nothing written.
  StartDma(Edu::kDmaBufferAddr, reinterpret_cast<uint64_t>(ram.data()), 4096, Edu::kDmaCmdStart | Edu::kDmaCmdToRam);
  Drain();
  EXPECT_TRUE(std::all_of(ram.begin(), ram.end(), [](uint8_t b) { return b == 0x11; }));
  EXPECT_EQ(edu_->dma().faults_for_test(), 2u);
  EXPECT_EQ(edu_->dma_errors(), 2u);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdToRam);
}

// Page by page: the pages the IOMMU maps move, a refused page reads as zeros (and is logged) or
// drops the write.
TEST_F(EduTest, DmaAcrossAMappedAndARefusedPageMovesTheMappedPage) {
  class FirstPageOnly : public hw::DmaTranslation {
   public:
    DmaTranslateResult Translate(uint64_t iova, uint64_t length, DmaAccess) const override {
      if (iova >= limit) return {false, DmaFaultReason::kNotMapped, {}};
      return {true, DmaFaultReason::kNotMapped, {reinterpret_cast<uint8_t*>(iova), std::min(length, limit - iova)}};
    }
    uint64_t generation() const override { return 0; }
    uint64_t granule() const override { return 4096; }
    uint64_t limit = 0;
  } half;
  alignas(4096) static uint8_t ram[8192];
  std::memset(ram, 0x77, sizeof ram);
  half.limit = reinterpret_cast<uint64_t>(ram) + 4096;
  edu_->dma().SetTranslation(&half);
  std::array<uint8_t, Edu::kDmaBufferSize> pattern;
  pattern.fill(0xab);
  edu_->set_dma_buffer(pattern);
  // RAM → buffer from the last 64 bytes of the mapped page into the refused one.
  StartDma(half.limit - 64, Edu::kDmaBufferAddr, 128, Edu::kDmaCmdStart);
  Drain();
  auto buf = edu_->dma_buffer();
  EXPECT_EQ(buf[0], 0x77);
  EXPECT_EQ(buf[63], 0x77);
  EXPECT_EQ(buf[64], 0);
  EXPECT_EQ(buf[127], 0);
  EXPECT_EQ(buf[128], 0xab);
  EXPECT_EQ(edu_->dma().faults_for_test(), 1u);
  // buffer → RAM: the mapped page is written, the refused one is not.
  edu_->set_dma_buffer(pattern);
  StartDma(Edu::kDmaBufferAddr, half.limit - 64, 128, Edu::kDmaCmdStart | Edu::kDmaCmdToRam);
  Drain();
  EXPECT_EQ(ram[4096 - 64], 0xab);
  EXPECT_EQ(ram[4095], 0xab);
  EXPECT_EQ(ram[4096], 0x77);
  EXPECT_EQ(edu_->dma().faults_for_test(), 2u);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdToRam);
}

TEST_F(EduTest, DmaToAReadOnlyMappingFaultsAndWritesNothing) {
  identity_.read_only = true;
  edu_->dma().SetTranslation(&identity_);
  std::array<uint8_t, Edu::kDmaBufferSize> pattern;
  pattern.fill(0xcd);
  edu_->set_dma_buffer(pattern);
  std::vector<uint8_t> ram(512, 0);
  StartDma(Edu::kDmaBufferAddr, reinterpret_cast<uint64_t>(ram.data()), 512, Edu::kDmaCmdStart | Edu::kDmaCmdToRam);
  Drain();
  EXPECT_TRUE(std::all_of(ram.begin(), ram.end(), [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(edu_->dma().faults_for_test(), 1u);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdToRam);
  EXPECT_EQ(edu_->dma_errors(), 1u);
}

TEST_F(EduTest, DmaOutsideTheBufferCopiesNothingAndCompletes) {
  edu_->dma().SetTranslation(&identity_);
  std::vector<uint8_t> ram(8192, 0x22);
  const uint64_t bad[][2] = {{Edu::kDmaBufferAddr + 1, 4096}, {Edu::kDmaBufferAddr - 1, 2}, {0, 16},
                             {Edu::kDmaBufferAddr, 4097}, {Edu::kDmaBufferAddr + 4096, 1}};
  for (const auto& [addr, count] : bad) {
    StartDma(reinterpret_cast<uint64_t>(ram.data()), addr, count, Edu::kDmaCmdStart);
    Drain();
    EXPECT_EQ(R64(Edu::kRegDmaCmd), 0u) << addr << "+" << count;
  }
  EXPECT_EQ(edu_->dma_errors(), 5u);
  EXPECT_EQ(edu_->dma().faults_for_test(), 0u) << "never reached the IOMMU";
  auto buf = edu_->dma_buffer();
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; }));
}

// QEMU: with bus mastering off the device's address space is empty: reads give zeros, writes are
// dropped, and the IOMMU never sees the access.
TEST_F(EduTest, DmaWithBusMasteringOffReadsZerosAndWritesNothing) {
  edu_->dma().SetTranslation(&identity_);
  ASSERT_TRUE(edu_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory).has_value());
  std::array<uint8_t, Edu::kDmaBufferSize> pattern;
  pattern.fill(0xab);
  edu_->set_dma_buffer(pattern);
  std::vector<uint8_t> ram(64, 0x33);
  StartDma(reinterpret_cast<uint64_t>(ram.data()), Edu::kDmaBufferAddr, 64, Edu::kDmaCmdStart);
  Drain();
  auto buf = edu_->dma_buffer();
  EXPECT_EQ(buf[0], 0);
  EXPECT_EQ(buf[63], 0);
  EXPECT_EQ(buf[64], 0xab);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), 0u);
  StartDma(Edu::kDmaBufferAddr + 64, reinterpret_cast<uint64_t>(ram.data()), 64, Edu::kDmaCmdStart | Edu::kDmaCmdToRam);
  Drain();
  EXPECT_EQ(ram[0], 0x33);
  EXPECT_EQ(edu_->dma().faults_for_test(), 0u);
  EXPECT_EQ(edu_->dma_errors(), 2u);
}

TEST_F(EduTest, DmaRegistersAreFrozenWhileATransferRunsAndTakeEightByteAccesses) {
  edu_->dma().SetTranslation(&identity_);
  std::vector<uint8_t> ram(64, 0x44);
  W32(Edu::kRegDmaSrc, 0xdeadbeef);
  EXPECT_EQ(R64(Edu::kRegDmaSrc), 0xdeadbeefu) << "a 4-byte write replaces the whole register";
  W64(Edu::kRegDmaSrc, 0x1122334455667788);
  EXPECT_EQ(R64(Edu::kRegDmaSrc), 0x1122334455667788u);
  EXPECT_EQ(R32(Edu::kRegDmaSrc), 0x55667788u);
  W64(Edu::kRegDmaCmd, Edu::kDmaCmdIrq);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), 0u) << "a command write without start is ignored";

  auto gate = BlockExecutor();
  StartDma(reinterpret_cast<uint64_t>(ram.data()), Edu::kDmaBufferAddr, 64, Edu::kDmaCmdStart);
  W64(Edu::kRegDmaCount, 1);
  W64(Edu::kRegDmaSrc, 0);
  W64(Edu::kRegDmaCmd, Edu::kDmaCmdStart | Edu::kDmaCmdToRam);
  EXPECT_EQ(R64(Edu::kRegDmaCount), 64u);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), Edu::kDmaCmdStart);
  gate.set_value();
  Drain();
  auto buf = edu_->dma_buffer();
  EXPECT_EQ(buf[63], 0x44);
  EXPECT_EQ(buf[64], 0);
  EXPECT_EQ(R64(Edu::kRegDmaCmd), 0u);
}

TEST_F(EduTest, DmaCompletionUsesMsiWhenEnabled) {
  EnableMsi();
  edu_->dma().SetTranslation(&identity_);
  std::vector<uint8_t> ram(16, 1);
  StartDma(reinterpret_cast<uint64_t>(ram.data()), Edu::kDmaBufferAddr, 16, Edu::kDmaCmdStart | Edu::kDmaCmdIrq);
  Drain();
  EXPECT_EQ(sink_.Take(), (Events{"msi:0"}));
  EXPECT_EQ(edu_->interrupt_counters().intx_assertions, 0u);
}

TEST_F(EduTest, SurpriseRemovalCancelsAPendingDma) {
  edu_->dma().SetTranslation(&identity_);
  std::vector<uint8_t> ram(16, 9);
  auto gate = BlockExecutor();
  StartDma(reinterpret_cast<uint64_t>(ram.data()), Edu::kDmaBufferAddr, 16, Edu::kDmaCmdStart | Edu::kDmaCmdIrq);
  ASSERT_TRUE(machine_.RemoveDevice(*edu_, hw::RemovalKind::kSurprise).has_value());
  gate.set_value();
  Drain();
  EXPECT_EQ(edu_->dma_buffer()[0], 0);
  EXPECT_EQ(edu_->dma_completions() + edu_->dma_errors(), 0u);
  EXPECT_EQ(R32(Edu::kRegId), 0xffffffffu);
  EXPECT_EQ(sink_.Take(), Events{});
}

TEST(EduOptionsTest, DmaDelayAndTwentyEightBitMasking) {
  RefusingTranslation refusing;
  hw::Machine m;
  auto edu = Edu::Create({0, 0, hw::MakeDevfn(3, 0)},
                         EduOptions{.dma_delay = std::chrono::milliseconds(20), .mask_dma_to_28_bits = true})
                 .value();
  ASSERT_TRUE(m.AddPciDevice(edu).has_value());
  ASSERT_TRUE(edu->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory | hw::pci::kCommandMaster).has_value());
  edu->dma().SetTranslation(&refusing);
  auto w64 = [&](uint32_t off, uint64_t v) { ASSERT_TRUE(edu->BarWrite(0, off, &v, 8).has_value()); };
  w64(Edu::kRegDmaSrc, 0x7654321012345678);
  w64(Edu::kRegDmaDst, Edu::kDmaBufferAddr);
  w64(Edu::kRegDmaCount, 8);
  w64(Edu::kRegDmaCmd, Edu::kDmaCmdStart);
  uint64_t cmd = 0;
  ASSERT_TRUE(edu->BarRead(0, Edu::kRegDmaCmd, &cmd, 8).has_value());
  EXPECT_EQ(cmd, Edu::kDmaCmdStart) << "still running during the delay";
  m.executor().Drain();
  EXPECT_EQ(refusing.last_iova.load(), 0x2345678u) << "address masked to 28 bits";
  edu->dma().SetTranslation(nullptr);
}

TEST(EduUnpluggedTest, WorkRunsInlineWithoutAMachine) {
  auto edu = Edu::Create({0, 0, hw::MakeDevfn(3, 0)}).value();
  ASSERT_TRUE(edu->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory).has_value());
  uint32_t v = 6;
  ASSERT_TRUE(edu->BarWrite(0, Edu::kRegFactorial, &v, 4).has_value());
  ASSERT_TRUE(edu->BarRead(0, Edu::kRegFactorial, &v, 4).has_value());
  EXPECT_EQ(v, 720u);
}

}  // namespace
}  // namespace devices
