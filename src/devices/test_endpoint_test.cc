#include "devices/test_endpoint.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "hw/machine.h"
#include "hw/pci_regs.h"

namespace devices {
namespace {

class IdentityTranslation : public hw::DmaTranslation {
 public:
  hw::DmaTranslateResult Translate(uint64_t iova, uint64_t length, hw::DmaAccess) const override {
    return {true, hw::DmaFaultReason::kNotMapped, {reinterpret_cast<uint8_t*>(iova), length}};
  }
  uint64_t generation() const override { return 0; }
  uint64_t granule() const override { return 4096; }
};

class VectorSink : public hw::InterruptSink {
 public:
  void Intx(bool level) override { Push(level ? -1 : -2); }
  void Msi(uint32_t) override { Push(-3); }
  void MsiX(uint32_t v) override { Push(static_cast<int>(v)); }
  std::vector<int> Take() {
    std::lock_guard l(mu_);
    return std::exchange(got_, {});
  }

 private:
  void Push(int v) {
    std::lock_guard l(mu_);
    got_.push_back(v);
  }
  std::mutex mu_;
  std::vector<int> got_;
};

class TestEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ep_ = TestEndpoint::Create({0, 0, hw::MakeDevfn(6, 0)}).value();
    ASSERT_TRUE(m_.AddPciDevice(ep_).has_value());
    ASSERT_TRUE(ep_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory | hw::pci::kCommandMaster).has_value());
    ep_->SetInterruptSink(&sink_);
  }
  void TearDown() override {
    ep_->SetInterruptSink(nullptr);
    ep_->dma().SetTranslation(nullptr);
  }
  void W(uint32_t off, uint64_t v) { ASSERT_TRUE(ep_->BarWrite(2, off, &v, 8).has_value()); }
  uint64_t R(uint32_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(ep_->BarRead(2, off, &v, 8).has_value());
    return v;
  }
  void EnableMsix() {
    ASSERT_TRUE(ep_->ConfigWrite(*ep_->msix_offset() + hw::pci::kMsixFlags, 2, hw::pci::kMsixFlagsEnable).has_value());
    for (uint32_t v = 0; v < TestEndpoint::kMsixVectors; ++v) {
      const uint32_t zero = 0;
      ASSERT_TRUE(ep_->BarWrite(2, TestEndpoint::kMsixTableOffset + v * 16 + 12, &zero, 4).has_value());
    }
  }

  IdentityTranslation identity_;
  VectorSink sink_;
  hw::Machine m_;
  vb::RefPtr<TestEndpoint> ep_;
};

TEST_F(TestEndpointTest, LayoutIsAnExpressEndpointWithMsixInBar2) {
  EXPECT_EQ(ep_->ConfigRead(0, 4).value(), 0x7e571234u);
  EXPECT_TRUE(ep_->is_pcie());
  EXPECT_TRUE(ep_->flr_capable());
  EXPECT_EQ(ep_->bar(0).kind, hw::BarKind::kMem64);
  EXPECT_TRUE(ep_->bar(0).mappable);
  EXPECT_GE(ep_->bar_fd(0), 0);
  EXPECT_EQ(ep_->bar(2).size, TestEndpoint::kBar2Size);
  EXPECT_EQ(ep_->bar_fd(2), -1);
  ASSERT_TRUE(ep_->msix_spec().has_value());
  EXPECT_EQ(ep_->msix_spec()->table_size, 8);
  EXPECT_EQ(ep_->ConfigRead(*ep_->msix_offset() + hw::pci::kMsixTable, 4).value(), 0x2002u);
  EXPECT_EQ(ep_->ConfigRead(*ep_->msix_offset() + hw::pci::kMsixPba, 4).value(), 0x3002u);
  EXPECT_EQ(R(TestEndpoint::kRegId) & 0xffffffff, TestEndpoint::kId);
  W(TestEndpoint::kRegScratch, 0xabcd);
  EXPECT_EQ(R(TestEndpoint::kRegScratch), 0xabcdu);
}

TEST_F(TestEndpointTest, DoorbellRaisesTheWrittenMsixVector) {
  W(TestEndpoint::kRegDoorbell, 3);
  EXPECT_EQ(sink_.Take(), std::vector<int>{}) << "MSI-X disabled";
  EnableMsix();
  W(TestEndpoint::kRegDoorbell, 3);
  W(TestEndpoint::kRegDoorbell, 7);
  EXPECT_EQ(sink_.Take(), (std::vector<int>{3, 7}));
  EXPECT_EQ(ep_->msix_count(3), 1u);
}

TEST_F(TestEndpointTest, IntxRegisterDrivesThePin) {
  W(TestEndpoint::kRegIntx, 1);
  W(TestEndpoint::kRegIntx, 0);
  EXPECT_EQ(sink_.Take(), (std::vector<int>{-1, -2}));
}

TEST_F(TestEndpointTest, DmaMovesBytesBetweenRamAndTheMappableBar) {
  EnableMsix();
  ep_->dma().SetTranslation(&identity_);
  void* user = mmap(nullptr, TestEndpoint::kBar0Size, PROT_READ | PROT_WRITE, MAP_SHARED, ep_->bar_fd(0), 0);
  ASSERT_NE(user, MAP_FAILED);
  std::vector<uint8_t> ram(1024);
  for (size_t i = 0; i < ram.size(); ++i) ram[i] = static_cast<uint8_t>(i * 7);
  W(TestEndpoint::kRegDmaSrc, reinterpret_cast<uint64_t>(ram.data()));
  W(TestEndpoint::kRegDmaDst, 0x800);
  W(TestEndpoint::kRegDmaCount, ram.size());
  W(TestEndpoint::kRegDmaCmd, TestEndpoint::kDmaCmdStart | TestEndpoint::kDmaCmdIrq | (5 << 8));
  m_.executor().Drain();
  EXPECT_EQ(std::memcmp(static_cast<uint8_t*>(user) + 0x800, ram.data(), ram.size()), 0) << "seen through the user's mmap";
  EXPECT_EQ(sink_.Take(), (std::vector<int>{5}));

  std::vector<uint8_t> out(1024, 0);
  W(TestEndpoint::kRegDmaSrc, 0x800);
  W(TestEndpoint::kRegDmaDst, reinterpret_cast<uint64_t>(out.data()));
  W(TestEndpoint::kRegDmaCmd, TestEndpoint::kDmaCmdStart | TestEndpoint::kDmaCmdToRam);
  m_.executor().Drain();
  EXPECT_EQ(out, ram);
  EXPECT_EQ(R(TestEndpoint::kRegDmaCmd), TestEndpoint::kDmaCmdToRam);

  // Without a translation the DMA faults and the BAR keeps its bytes.
  ep_->dma().SetTranslation(nullptr);
  std::vector<uint8_t> zeros(1024, 0);
  W(TestEndpoint::kRegDmaSrc, reinterpret_cast<uint64_t>(zeros.data()));
  W(TestEndpoint::kRegDmaDst, 0x800);
  W(TestEndpoint::kRegDmaCmd, TestEndpoint::kDmaCmdStart);
  m_.executor().Drain();
  EXPECT_EQ(std::memcmp(static_cast<uint8_t*>(user) + 0x800, ram.data(), ram.size()), 0);
  EXPECT_EQ(R(TestEndpoint::kRegDmaCmd), TestEndpoint::kDmaCmdError);
  EXPECT_EQ(ep_->dma().faults_for_test(), 1u);
  munmap(user, TestEndpoint::kBar0Size);
}

TEST_F(TestEndpointTest, FlrResetsRegistersAndMasksMsixAgain) {
  EnableMsix();
  W(TestEndpoint::kRegScratch, 0x42);
  const uint8_t exp = *ep_->pcie_offset();
  ASSERT_TRUE(ep_->ConfigWrite(exp + hw::pci::kExpDevCtl, 2, hw::pci::kExpDevCtlBcrFlr).has_value());
  EXPECT_FALSE(ep_->msix_enabled());
  ASSERT_TRUE(ep_->ConfigWrite(hw::pci::kCommand, 2, hw::pci::kCommandMemory).has_value());
  EXPECT_EQ(R(TestEndpoint::kRegScratch), 0u);
  uint32_t ctrl = 0;
  ASSERT_TRUE(ep_->BarRead(2, TestEndpoint::kMsixTableOffset + 12, &ctrl, 4).has_value());
  EXPECT_EQ(ctrl, 1u);
}

}  // namespace
}  // namespace devices
