// INTx, MSI and MSI-X delivery of a PciDevice into an InterruptSink.
#include <gtest/gtest.h>

#include "hw/testing/recording_sink.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hw/pci_functions.h"
#include "hw/pci_regs.h"

namespace hw {
namespace {

using hw::testing::Events;
using hw::testing::RecordingSink;

uint32_t Cfg(PciDevice& d, uint32_t off, unsigned size) { return d.ConfigRead(off, size).value(); }
void SetCfg(PciDevice& d, uint32_t off, unsigned size, uint32_t v) { ASSERT_TRUE(d.ConfigWrite(off, size, v).has_value()); }

vb::RefPtr<Endpoint> MakeEndpoint(bool msi_mask = true) {
  EndpointConfig c;
  c.address = {0, 0, MakeDevfn(4, 0)};
  c.vendor_id = 0x1234;
  c.device_id = 0x0001;
  c.bars[0] = {.kind = BarKind::kMem32, .size = 4096};
  c.bars[2] = {.kind = BarKind::kMem32, .size = 8192};
  c.msi = MsiSpec{.vectors = 4, .is_64bit = true, .per_vector_mask = msi_mask};
  c.msix = MsixSpec{.table_size = 8, .table_bar = 2, .table_offset = 0x1000, .pba_bar = 2, .pba_offset = 0x1800};
  return Endpoint::Create(c).value();
}

TEST(InterruptsTest, IntxFollowsThePinAndTheDisableBit) {
  auto ep = MakeEndpoint();
  RecordingSink sink;
  ep->SetInterruptSink(&sink);
  ep->RaiseIntx();
  EXPECT_EQ(sink.Take(), (Events{"intx:1"}));
  EXPECT_TRUE(Cfg(*ep, pci::kStatus, 2) & pci::kStatusInterrupt);
  ep->RaiseIntx();
  EXPECT_EQ(sink.Take(), Events{}) << "level: no second edge";

  SetCfg(*ep, pci::kCommand, 2, pci::kCommandIntxDisable);
  EXPECT_EQ(sink.Take(), (Events{"intx:0"}));
  EXPECT_TRUE(Cfg(*ep, pci::kStatus, 2) & pci::kStatusInterrupt) << "status still shows the pin";
  EXPECT_FALSE(ep->interrupt_counters().intx_level);
  SetCfg(*ep, pci::kCommand, 2, 0);
  EXPECT_EQ(sink.Take(), (Events{"intx:1"}));
  ep->LowerIntx();
  EXPECT_EQ(sink.Take(), (Events{"intx:0"}));
  EXPECT_FALSE(Cfg(*ep, pci::kStatus, 2) & pci::kStatusInterrupt);

  // Raised while disabled: nothing until enabled.
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandIntxDisable);
  ep->RaiseIntx();
  EXPECT_EQ(sink.Take(), Events{});
  SetCfg(*ep, pci::kCommand, 2, 0);
  EXPECT_EQ(sink.Take(), (Events{"intx:1"}));
  EXPECT_EQ(ep->interrupt_counters().intx_assertions, 3u);
  ep->SetInterruptSink(nullptr);
}

TEST(InterruptsTest, IntxIsSilentWhileMsiIsEnabled) {
  auto ep = MakeEndpoint();
  RecordingSink sink;
  ep->SetInterruptSink(&sink);
  const uint8_t msi = *ep->msi_offset();
  SetCfg(*ep, msi + pci::kMsiFlags, 2, pci::kMsiFlagsEnable);
  ep->RaiseIntx();
  EXPECT_EQ(sink.Take(), Events{});
  SetCfg(*ep, msi + pci::kMsiFlags, 2, 0);
  EXPECT_EQ(sink.Take(), (Events{"intx:1"}));
  ep->SetInterruptSink(nullptr);
}

TEST(InterruptsTest, NoPinMeansNoIntx) {
  EndpointConfig c;
  c.interrupt_pin = 0;
  auto ep = Endpoint::Create(c).value();
  ep->RaiseIntx();
  EXPECT_EQ(ep->interrupt_counters().intx_assertions, 0u);
}

TEST(InterruptsTest, MsiNeedsEnableAndBusMasterAndHonoursMultipleMessageEnable) {
  auto ep = MakeEndpoint();
  RecordingSink sink;
  ep->SetInterruptSink(&sink);
  const uint8_t msi = *ep->msi_offset();
  EXPECT_EQ((Cfg(*ep, msi + pci::kMsiFlags, 2) & pci::kMsiFlagsQmask) >> 1, 2u) << "4 vectors capable";
  ep->SignalMsi(0);
  EXPECT_EQ(sink.Take(), Events{}) << "MSI disabled";
  SetCfg(*ep, msi + pci::kMsiFlags, 2, pci::kMsiFlagsEnable);
  ep->SignalMsi(0);
  EXPECT_EQ(sink.Take(), Events{}) << "bus mastering off: a message is a memory write";
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMaster);
  ep->SignalMsi(0);
  ep->SignalMsi(1);
  EXPECT_EQ(sink.Take(), (Events{"msi:0"})) << "only one vector enabled (MME 0)";
  SetCfg(*ep, msi + pci::kMsiFlags, 2, pci::kMsiFlagsEnable | (2 << 4));
  ep->SignalMsi(3);
  ep->SignalMsi(4);
  EXPECT_EQ(sink.Take(), (Events{"msi:3"}));
  EXPECT_EQ(ep->msi_count(0), 1u);
  EXPECT_EQ(ep->msi_count(3), 1u);
  EXPECT_EQ(ep->interrupt_counters().dropped, 4u);
  // Address and data are plain RW registers (low two address bits hardwired to zero).
  SetCfg(*ep, msi + pci::kMsiAddressLo, 4, 0xfee00003);
  EXPECT_EQ(Cfg(*ep, msi + pci::kMsiAddressLo, 4), 0xfee00000u);
  SetCfg(*ep, msi + pci::kMsiData64, 2, 0x4041);
  EXPECT_EQ(Cfg(*ep, msi + pci::kMsiData64, 2), 0x4041u);
  ep->SetInterruptSink(nullptr);
}

TEST(InterruptsTest, MaskedMsiBecomesPendingAndIsSentOnUnmask) {
  auto ep = MakeEndpoint();
  RecordingSink sink;
  ep->SetInterruptSink(&sink);
  const uint8_t msi = *ep->msi_offset();
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMaster);
  SetCfg(*ep, msi + pci::kMsiFlags, 2, pci::kMsiFlagsEnable | (2 << 4));
  SetCfg(*ep, msi + pci::kMsiMask64, 4, 0xffffffff);
  EXPECT_EQ(Cfg(*ep, msi + pci::kMsiMask64, 4), 0xfu) << "one mask bit per capable vector";
  ep->SignalMsi(2);
  ep->SignalMsi(2);
  EXPECT_EQ(sink.Take(), Events{});
  EXPECT_TRUE(ep->msi_pending(2));
  EXPECT_EQ(Cfg(*ep, msi + pci::kMsiPending64, 4), 0x4u);
  SetCfg(*ep, msi + pci::kMsiPending64, 4, 0);
  EXPECT_EQ(Cfg(*ep, msi + pci::kMsiPending64, 4), 0x4u) << "pending bits are read-only";
  SetCfg(*ep, msi + pci::kMsiMask64, 4, 0xb);  // unmask vector 2 only
  EXPECT_EQ(sink.Take(), (Events{"msi:2"})) << "one message for the pending bit";
  EXPECT_FALSE(ep->msi_pending(2));
  ep->SetInterruptSink(nullptr);
}

TEST(InterruptsTest, MsixHonoursFunctionAndVectorMasksWithPba) {
  auto ep = MakeEndpoint();
  RecordingSink sink;
  ep->SetInterruptSink(&sink);
  const uint8_t msix = *ep->msix_offset();
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMaster | pci::kCommandMemory);
  EXPECT_EQ(Cfg(*ep, msix + pci::kMsixFlags, 2), 7u) << "table size - 1";
  ep->SignalMsix(1);
  EXPECT_EQ(sink.Take(), Events{}) << "MSI-X disabled";
  EXPECT_FALSE(ep->msix_pending(1));

  SetCfg(*ep, msix + pci::kMsixFlags, 2, pci::kMsixFlagsEnable);
  // Entries power on masked.
  uint32_t ctrl = 0;
  ASSERT_TRUE(ep->BarRead(2, 0x1000 + 1 * 16 + 12, &ctrl, 4).has_value());
  EXPECT_EQ(ctrl, 1u);
  ep->SignalMsix(1);
  EXPECT_EQ(sink.Take(), Events{});
  EXPECT_TRUE(ep->msix_pending(1));
  uint64_t pba = 0;
  ASSERT_TRUE(ep->BarRead(2, 0x1800, &pba, 8).has_value());
  EXPECT_EQ(pba, 0x2u);

  // Program the entry and unmask: the pending message goes out, PBA clears.
  const uint64_t addr = 0xfee00000;
  ASSERT_TRUE(ep->BarWrite(2, 0x1000 + 16, &addr, 8).has_value());
  const uint32_t data = 0x31;
  ASSERT_TRUE(ep->BarWrite(2, 0x1000 + 16 + 8, &data, 4).has_value());
  const uint32_t unmask = 0;
  ASSERT_TRUE(ep->BarWrite(2, 0x1000 + 16 + 12, &unmask, 4).has_value());
  EXPECT_EQ(sink.Take(), (Events{"msix:1"}));
  ASSERT_TRUE(ep->BarRead(2, 0x1800, &pba, 8).has_value());
  EXPECT_EQ(pba, 0u);
  uint64_t back = 0;
  ASSERT_TRUE(ep->BarRead(2, 0x1000 + 16, &back, 8).has_value());
  EXPECT_EQ(back, addr);

  // Function mask holds every vector pending until cleared.
  SetCfg(*ep, msix + pci::kMsixFlags, 2, pci::kMsixFlagsEnable | pci::kMsixFlagsMaskAll);
  ep->SignalMsix(1);
  EXPECT_EQ(sink.Take(), Events{});
  EXPECT_TRUE(ep->msix_pending(1));
  const uint64_t ones = ~uint64_t{0};
  ASSERT_TRUE(ep->BarWrite(2, 0x1800, &ones, 8).has_value());
  EXPECT_TRUE(ep->msix_pending(1)) << "PBA writes are ignored";
  SetCfg(*ep, msix + pci::kMsixFlags, 2, pci::kMsixFlagsEnable);
  EXPECT_EQ(sink.Take(), (Events{"msix:1"}));
  ep->SignalMsix(1);
  ep->SignalMsix(8);
  EXPECT_EQ(sink.Take(), (Events{"msix:1"})) << "vector 8 is out of the table";
  EXPECT_EQ(ep->msix_count(1), 3u);
  // MSI-X enabled silences INTx as MSI does.
  ep->RaiseIntx();
  EXPECT_EQ(sink.Take(), Events{});
  // An access straddling the table's end is refused.
  EXPECT_EQ(vb::ErrnoOf(ep->BarRead(2, 0x1000 + 8 * 16 - 4, &back, 8)), EINVAL);
  ep->SetInterruptSink(nullptr);
}

TEST(InterruptsTest, WithoutASinkInterruptsAreCounted) {
  auto ep = MakeEndpoint();
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMaster | pci::kCommandMemory);
  SetCfg(*ep, *ep->msix_offset() + pci::kMsixFlags, 2, pci::kMsixFlagsEnable);
  const uint32_t unmask = 0;
  ASSERT_TRUE(ep->BarWrite(2, 0x1000 + 3 * 16 + 12, &unmask, 4).has_value());
  ep->SignalMsix(3);
  ep->SignalMsix(3);
  EXPECT_EQ(ep->msix_count(3), 2u);
  EXPECT_EQ(ep->interrupt_counters().msix, 2u);
}

// vfio-pci's INTx handler masks the line from inside the interrupt (DisINTx); that nested config
// write must not deadlock and its own edge arrives after the current call.
class MaskingSink : public RecordingSink {
 public:
  explicit MaskingSink(PciDevice& d) : d_(d) {}
  void Intx(bool level) override {
    RecordingSink::Intx(level);
    if (level) {
      EXPECT_TRUE(d_.ConfigWrite(pci::kCommand, 2, pci::kCommandIntxDisable).has_value());
      RecordingSink::Msi(99);  // marker: after the nested write returned
    }
  }

 private:
  PciDevice& d_;
};

TEST(InterruptsTest, SinkMayMaskIntxFromInsideItsCall) {
  auto ep = MakeEndpoint();
  MaskingSink sink(*ep);
  ep->SetInterruptSink(&sink);
  ep->RaiseIntx();
  EXPECT_EQ(sink.Take(), (Events{"intx:1", "msi:99", "intx:0"}));
  EXPECT_TRUE(Cfg(*ep, pci::kCommand, 2) & pci::kCommandIntxDisable);
  ep->SetInterruptSink(nullptr);
}

TEST(InterruptsTest, FunctionResetMasksMsixAgainAndDropsTheLine) {
  auto ep = MakeEndpoint();
  RecordingSink sink;
  ep->SetInterruptSink(&sink);
  ep->RaiseIntx();
  EXPECT_EQ(sink.Take(), (Events{"intx:1"}));
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory);
  const uint32_t unmask = 0;
  ASSERT_TRUE(ep->BarWrite(2, 0x1000 + 12, &unmask, 4).has_value());
  ep->FunctionReset();
  EXPECT_EQ(sink.Take(), (Events{"intx:0"}));
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory);
  uint32_t ctrl = 0;
  ASSERT_TRUE(ep->BarRead(2, 0x1000 + 12, &ctrl, 4).has_value());
  EXPECT_EQ(ctrl, 1u);
  ep->SetInterruptSink(nullptr);
}

class CountingSink : public InterruptSink {
 public:
  void Intx(bool) override {}
  void Msi(uint32_t) override {}
  void MsiX(uint32_t v) override {
    // Calls for one device never overlap.
    EXPECT_EQ(in_call.fetch_add(1), 0);
    count.fetch_add(1);
    in_call.fetch_sub(1);
  }
  std::atomic<int> in_call{0};
  std::atomic<uint64_t> count{0};
};

// Every message is counted; messages for a vector that is already queued merge into the queued
// one (the queue stays bounded however fast the device fires), and at least one per vector
// reaches the sink, one call at a time.
TEST(InterruptsTest, ConcurrentSignalsAreCountedAndDeliveredOneCallAtATime) {
  auto ep = MakeEndpoint();
  CountingSink sink;
  ep->SetInterruptSink(&sink);
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMaster | pci::kCommandMemory);
  SetCfg(*ep, *ep->msix_offset() + pci::kMsixFlags, 2, pci::kMsixFlagsEnable);
  for (uint32_t v = 0; v < 8; ++v) {
    const uint32_t unmask = 0;
    ASSERT_TRUE(ep->BarWrite(2, 0x1000 + v * 16 + 12, &unmask, 4).has_value());
  }
  const char* scale_env = std::getenv("VB_STRESS_SCALE");
  const double scale = scale_env ? std::atof(scale_env) : 1.0;
  const int per_thread = std::max(100, static_cast<int>(5000 * scale));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) ep->SignalMsix(static_cast<uint32_t>(t));
    });
  for (auto& th : threads) th.join();
  ep->SetInterruptSink(nullptr);  // waits for a delivery still in flight
  EXPECT_LE(sink.count.load(), 4u * per_thread);
  EXPECT_GE(sink.count.load(), 4u);
  EXPECT_EQ(ep->interrupt_counters().msix, 4u * per_thread);
  for (uint32_t v = 0; v < 4; ++v) EXPECT_EQ(ep->msix_count(v), static_cast<uint64_t>(per_thread));
}

}  // namespace
}  // namespace hw
