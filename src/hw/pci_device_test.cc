#include "hw/pci_device.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <set>

#include "hw/machine.h"
#include "hw/pci_functions.h"
#include "hw/pci_regs.h"

namespace hw {
namespace {

uint32_t Cfg(PciDevice& d, uint32_t off, unsigned size) { return d.ConfigRead(off, size).value(); }
void SetCfg(PciDevice& d, uint32_t off, unsigned size, uint32_t v) { ASSERT_TRUE(d.ConfigWrite(off, size, v).has_value()); }

// An endpoint whose device side a test can poke (error status bits).
class PokeableEndpoint : public Endpoint {
 public:
  static vb::RefPtr<PokeableEndpoint> Create(const EndpointConfig& c) {
    vb::RefPtr<PokeableEndpoint> p(new PokeableEndpoint(c));
    EXPECT_TRUE(p->Setup(c).has_value());
    return p;
  }
  void SetStatusBits(uint16_t bits) {
    StateLock l(*this);
    config_locked().Set16(pci::kStatus, config_locked().Get16(pci::kStatus) | bits);
  }

 private:
  explicit PokeableEndpoint(const EndpointConfig& c) : Endpoint(c.address, IdentityOf(c)) {}
};

EndpointConfig BasicEndpoint() {
  EndpointConfig c;
  c.address = {0, 0, MakeDevfn(3, 0)};
  c.vendor_id = 0x8086;
  c.device_id = 0x10d3;
  c.class_code = 0x020000;
  c.revision = 0x05;
  c.subsystem_vendor_id = 0x1af4;
  c.subsystem_id = 0x0001;
  c.bars[0] = {.kind = BarKind::kMem32, .size = 4096};
  return c;
}

TEST(PciDeviceTest, Type0HeaderFieldsReadBackFromConfigSpace) {
  EndpointConfig c = BasicEndpoint();
  c.multifunction = true;
  c.interrupt_pin = 2;
  auto ep = Endpoint::Create(c).value();
  EXPECT_EQ(Cfg(*ep, pci::kVendorId, 2), 0x8086u);
  EXPECT_EQ(Cfg(*ep, pci::kDeviceId, 2), 0x10d3u);
  EXPECT_EQ(Cfg(*ep, pci::kVendorId, 4), 0x10d38086u);
  EXPECT_EQ(Cfg(*ep, pci::kRevision, 1), 0x05u);
  EXPECT_EQ(Cfg(*ep, pci::kRevision, 4) >> 8, 0x020000u) << "class code";
  EXPECT_EQ(Cfg(*ep, pci::kHeaderType, 1), 0x80u) << "type 0 + multifunction";
  EXPECT_EQ(Cfg(*ep, pci::kSubsystemVendorId, 2), 0x1af4u);
  EXPECT_EQ(Cfg(*ep, pci::kSubsystemId, 2), 0x0001u);
  EXPECT_EQ(Cfg(*ep, pci::kInterruptPin, 1), 2u);
  EXPECT_TRUE(Cfg(*ep, pci::kStatus, 2) & pci::kStatusCapList);
  EXPECT_EQ(Cfg(*ep, pci::kCommand, 2), 0u);
  EXPECT_EQ(ep->config_size(), 4096u);
  EXPECT_EQ(ep->ConfigSnapshot().size(), 4096u);

  c.pcie_type = PcieType::kConventional;
  c.multifunction = false;
  c.pm = false;
  auto conv = Endpoint::Create(c).value();
  EXPECT_EQ(conv->config_size(), 256u);
  EXPECT_EQ(Cfg(*conv, pci::kHeaderType, 1), 0x00u);
  EXPECT_FALSE(Cfg(*conv, pci::kStatus, 2) & pci::kStatusCapList) << "no capabilities at all";
  EXPECT_EQ(vb::ErrnoOf(conv->ConfigRead(0x100, 4)), EINVAL);
}

TEST(PciDeviceTest, ReadOnlyHeaderFieldsIgnoreWrites) {
  auto ep = Endpoint::Create(BasicEndpoint()).value();
  SetCfg(*ep, pci::kVendorId, 4, 0xffffffff);
  SetCfg(*ep, pci::kRevision, 4, 0xffffffff);
  SetCfg(*ep, pci::kInterruptPin, 1, 0x4);
  SetCfg(*ep, pci::kHeaderType, 1, 0x81);
  SetCfg(*ep, pci::kCapabilityList, 1, 0x80);
  EXPECT_EQ(Cfg(*ep, pci::kVendorId, 4), 0x10d38086u);
  EXPECT_EQ(Cfg(*ep, pci::kRevision, 4), 0x02000005u);
  EXPECT_EQ(Cfg(*ep, pci::kInterruptPin, 1), 1u);
  EXPECT_EQ(Cfg(*ep, pci::kHeaderType, 1), 0u);
  EXPECT_EQ(Cfg(*ep, pci::kCapabilityList, 1), *ep->pcie_offset());
  // Command keeps only its defined RW bits; the interrupt line is scratch RW.
  SetCfg(*ep, pci::kCommand, 2, 0xffff);
  EXPECT_EQ(Cfg(*ep, pci::kCommand, 2), 0x0547u);
  SetCfg(*ep, pci::kInterruptLine, 1, 0x0b);
  EXPECT_EQ(Cfg(*ep, pci::kInterruptLine, 1), 0x0bu);
}

TEST(PciDeviceTest, StatusErrorBitsAreWriteOneToClear) {
  auto ep = PokeableEndpoint::Create(BasicEndpoint());
  ep->SetStatusBits(0x8000 | 0x2000 | 0x0100);
  EXPECT_EQ(Cfg(*ep, pci::kStatus, 2), 0x8000u | 0x2000 | 0x0100 | pci::kStatusCapList);
  SetCfg(*ep, pci::kStatus, 2, 0x2000);
  EXPECT_EQ(Cfg(*ep, pci::kStatus, 2), 0x8000u | 0x0100 | pci::kStatusCapList);
  SetCfg(*ep, pci::kStatus, 2, 0xffff);
  EXPECT_EQ(Cfg(*ep, pci::kStatus, 2), uint32_t{pci::kStatusCapList}) << "cap-list bit is RO";
}

struct SizingCase {
  BarSpec spec;
  uint32_t low_after_ones;
  uint32_t high_after_ones;  // 64-bit only
};

TEST(PciDeviceTest, BarSizingProtocolReturnsTheSizeMaskWithTypeBits) {
  const SizingCase cases[] = {
      {{.kind = BarKind::kMem32, .size = 4096}, 0xfffff000u, 0},
      {{.kind = BarKind::kMem32, .size = 1 << 20, .prefetchable = true}, 0xfff00008u, 0},
      {{.kind = BarKind::kIo, .size = 32}, 0xffffffe1u, 0},
      {{.kind = BarKind::kMem64, .size = 64 << 10, .prefetchable = true, .mappable = true}, 0xffff000cu, 0xffffffffu},
      {{.kind = BarKind::kMem64, .size = uint64_t{8} << 30, .mappable = true}, 0x00000004u, 0xfffffffeu},
  };
  for (const SizingCase& sc : cases) {
    EndpointConfig c = BasicEndpoint();
    c.bars = {};
    c.bars[2] = sc.spec;
    auto ep = Endpoint::Create(c).value();
    const uint32_t reg = pci::kBar0 + 8;
    const uint32_t type_bits = sc.low_after_ones & (sc.spec.kind == BarKind::kIo ? 0x3 : 0xf);
    EXPECT_EQ(Cfg(*ep, reg, 4), type_bits) << "power-on: address 0, type bits";
    SetCfg(*ep, reg, 4, 0xffffffff);
    EXPECT_EQ(Cfg(*ep, reg, 4), sc.low_after_ones) << sc.spec.size;
    if (sc.spec.kind == BarKind::kMem64) {
      SetCfg(*ep, reg + 4, 4, 0xffffffff);
      EXPECT_EQ(Cfg(*ep, reg + 4, 4), sc.high_after_ones);
      EXPECT_EQ(ep->bar(3).kind, BarKind::kNone) << "upper half of a 64-bit BAR";
    }
    // Programming an address keeps the aligned bits.
    SetCfg(*ep, reg, 4, 0xfebc1234);
    const uint32_t mask = sc.spec.kind == BarKind::kIo ? ~uint32_t(sc.spec.size - 1) & ~3u
                                                       : ~uint32_t(sc.spec.size - 1) & ~0xfu;
    EXPECT_EQ(Cfg(*ep, reg, 4), (0xfebc1234 & mask) | type_bits);
    EXPECT_EQ(ep->bar(2).size, sc.spec.size);
  }
}

TEST(PciDeviceTest, UnusedBarsAndRomReadZeroAndStayZero) {
  auto ep = Endpoint::Create(BasicEndpoint()).value();
  SetCfg(*ep, pci::kBar0 + 4, 4, 0xffffffff);
  EXPECT_EQ(Cfg(*ep, pci::kBar0 + 4, 4), 0u);
  SetCfg(*ep, pci::kRomAddress, 4, 0xffffffff);
  EXPECT_EQ(Cfg(*ep, pci::kRomAddress, 4), 0u);
}

TEST(PciDeviceTest, BadBarSpecsAreRejected) {
  auto with_bar = [](int idx, BarSpec s) {
    EndpointConfig c = BasicEndpoint();
    c.bars = {};
    c.bars[idx] = s;
    return vb::ErrnoOf(Endpoint::Create(c));
  };
  EXPECT_EQ(with_bar(0, {.kind = BarKind::kMem32, .size = 3000}), EINVAL);
  EXPECT_EQ(with_bar(0, {.kind = BarKind::kMem32, .size = 8}), EINVAL);
  EXPECT_EQ(with_bar(0, {.kind = BarKind::kIo, .size = 512}), EINVAL);
  EXPECT_EQ(with_bar(0, {.kind = BarKind::kIo, .size = 16, .mappable = true}), EINVAL);
  EXPECT_EQ(with_bar(5, {.kind = BarKind::kMem64, .size = 4096}), EINVAL) << "needs two slots";
  EndpointConfig c = BasicEndpoint();
  c.bars[0] = {.kind = BarKind::kMem64, .size = 4096};
  c.bars[1] = {.kind = BarKind::kMem32, .size = 4096};
  EXPECT_EQ(vb::ErrnoOf(Endpoint::Create(c)), EINVAL) << "slot 1 is the upper half of BAR0";
}

// Walks both lists as lspci does and checks they are well formed.
void ExpectWellFormedCapabilities(PciDevice& d, std::vector<uint8_t> want_ids, std::vector<uint16_t> want_ext) {
  ASSERT_TRUE(Cfg(d, pci::kStatus, 2) & pci::kStatusCapList);
  std::vector<uint8_t> ids;
  std::set<uint32_t> seen;
  for (uint32_t pos = Cfg(d, pci::kCapabilityList, 1); pos != 0; pos = Cfg(d, pos + 1, 1)) {
    ASSERT_GE(pos, 0x40u);
    ASSERT_EQ(pos % 4, 0u);
    ASSERT_TRUE(seen.insert(pos).second) << "loop at " << pos;
    ids.push_back(static_cast<uint8_t>(Cfg(d, pos, 1)));
  }
  EXPECT_EQ(ids, want_ids);
  std::vector<uint16_t> ext;
  if (d.config_size() == 4096) {
    for (uint32_t pos = 0x100; pos != 0;) {
      uint32_t h = Cfg(d, pos, 4);
      if (h == 0) break;
      ASSERT_TRUE(seen.insert(pos).second);
      ext.push_back(pci::ExtCapId(h));
      pos = pci::ExtCapNext(h);
      if (pos) {
        ASSERT_GE(pos, 0x100u);
      }
    }
  }
  EXPECT_EQ(ext, want_ext);
}

TEST(PciDeviceTest, CapabilityChainsAreWellFormed) {
  EndpointConfig c = BasicEndpoint();
  c.bars[2] = {.kind = BarKind::kMem32, .size = 16384};
  c.msi = MsiSpec{.vectors = 8, .is_64bit = true, .per_vector_mask = true};
  c.msix = MsixSpec{.table_size = 4, .table_bar = 2, .table_offset = 0, .pba_bar = 2, .pba_offset = 0x1000};
  c.acs = AcsSpec{.capability = kAcsSv | kAcsRr | kAcsCr | kAcsUf, .control = 0};
  auto ep = Endpoint::Create(c).value();
  ExpectWellFormedCapabilities(*ep, {pci::kCapIdExp, pci::kCapIdPm, pci::kCapIdMsi, pci::kCapIdMsix},
                               {pci::kExtCapIdAcs});
  // PCIe flags: version 2, endpoint type.
  EXPECT_EQ(Cfg(*ep, *ep->pcie_offset() + pci::kExpFlags, 2), 0x0002u);

  auto rp = RootPort::Create({.address = {0, 0, MakeDevfn(1, 0)}, .secondary_bus = 1,
                              .acs = AcsSpec{kAcsSv | kAcsRr, kAcsSv}});
  ExpectWellFormedCapabilities(*rp, {pci::kCapIdExp, pci::kCapIdPm}, {pci::kExtCapIdAcs});
  EXPECT_EQ(Cfg(*rp, *rp->pcie_offset() + pci::kExpFlags, 2), 0x0142u) << "root port with slot";
  auto up = SwitchUpstreamPort::Create({.address = {0, 1, 0}, .secondary_bus = 2});
  EXPECT_EQ((Cfg(*up, *up->pcie_offset() + pci::kExpFlags, 2) >> 4) & 0xf, 5u);
  ExpectWellFormedCapabilities(*up, {pci::kCapIdExp, pci::kCapIdPm}, {});
  auto down = SwitchDownstreamPort::Create({.address = {0, 2, 0}, .secondary_bus = 3});
  EXPECT_EQ((Cfg(*down, *down->pcie_offset() + pci::kExpFlags, 2) >> 4) & 0xf, 6u);
  auto p2p = PcieToPciBridge::Create({.address = {0, 3, 0}, .secondary_bus = 4});
  EXPECT_EQ((Cfg(*p2p, *p2p->pcie_offset() + pci::kExpFlags, 2) >> 4) & 0xf, 7u);
  EXPECT_EQ(p2p->pcie_type(), PcieType::kPcieToPciBridge);
}

TEST(PciDeviceTest, AcsLivesInConfigSpace) {
  EndpointConfig c = BasicEndpoint();
  auto ep = Endpoint::Create(c).value();
  EXPECT_EQ(ep->acs_capability(), std::nullopt);
  EXPECT_EQ(ep->acs_control(), std::nullopt);
  ep->set_acs(kAcsSv | kAcsRr | kAcsCr | kAcsUf, kAcsSv);
  const uint16_t acs = ep->acs_offset().value();
  EXPECT_EQ(Cfg(*ep, acs, 4) & 0xffff, pci::kExtCapIdAcs);
  EXPECT_EQ(Cfg(*ep, acs + pci::kAcsCap, 2), uint32_t{kAcsSv | kAcsRr | kAcsCr | kAcsUf});
  EXPECT_EQ(Cfg(*ep, acs + pci::kAcsCtrl, 2), uint32_t{kAcsSv});

  // Software enables what the capability has; the rest stays zero; the capability is RO.
  SetCfg(*ep, acs + pci::kAcsCtrl, 2, 0x7f);
  EXPECT_EQ(ep->acs_control(), kAcsSv | kAcsRr | kAcsCr | kAcsUf);
  SetCfg(*ep, acs + pci::kAcsCap, 2, 0x7f);
  EXPECT_EQ(ep->acs_capability(), kAcsSv | kAcsRr | kAcsCr | kAcsUf);
  SetCfg(*ep, acs + pci::kAcsCtrl, 2, kAcsRr);
  EXPECT_EQ(ep->acs_control(), uint16_t{kAcsRr});

  // Rewriting keeps one capability.
  ep->set_acs(kAcsSv, 0);
  EXPECT_EQ(ep->acs_offset(), acs);
  EXPECT_EQ(ep->acs_capability(), uint16_t{kAcsSv});
  EXPECT_EQ(ep->acs_control(), uint16_t{0});
  EXPECT_EQ(Cfg(*ep, acs, 4) >> 20, 0u) << "still the last extended capability";

  // Egress control adds its vector; the size field stays out of acs_capability().
  auto ec = Endpoint::Create(c).value();
  ec->set_acs(kAcsSv | kAcsEc, 0);
  EXPECT_EQ(ec->acs_capability(), kAcsSv | kAcsEc);
  EXPECT_EQ(Cfg(*ec, *ec->acs_offset() + pci::kAcsCap, 2) >> 8, 32u);
}

TEST(PciDeviceTest, BridgeHeaderCarriesBusNumbersAndSubordinateFollowsWhatIsBelow) {
  Machine m;
  auto rp = RootPort::Create({.address = {0, 0, MakeDevfn(2, 0)}, .secondary_bus = 1});
  ASSERT_TRUE(m.AddPciDevice(rp).has_value());
  EXPECT_EQ(Cfg(*rp, pci::kHeaderType, 1), 1u);
  EXPECT_EQ(Cfg(*rp, pci::kRevision, 4) >> 8, 0x060400u);
  EXPECT_EQ(Cfg(*rp, pci::kPrimaryBus, 1), 0u);
  EXPECT_EQ(Cfg(*rp, pci::kSecondaryBus, 1), 1u);
  EXPECT_EQ(Cfg(*rp, pci::kSubordinateBus, 1), 1u);
  auto up = SwitchUpstreamPort::Create({.address = {0, 1, 0}, .secondary_bus = 2});
  auto down = SwitchDownstreamPort::Create({.address = {0, 2, 0}, .secondary_bus = 5});
  ASSERT_TRUE(m.AddPciDevice(up).has_value());
  ASSERT_TRUE(m.AddPciDevice(down).has_value());
  EXPECT_EQ(Cfg(*rp, pci::kPrimaryBus, 4), 0x00050100u) << "primary 0, secondary 1, subordinate 5";
  EXPECT_EQ(Cfg(*up, pci::kSubordinateBus, 1), 5u);
  ASSERT_TRUE(m.RemoveDevice(*down).has_value());
  EXPECT_EQ(Cfg(*rp, pci::kSubordinateBus, 1), 2u);
  // Bus numbers are fixed by the topology; windows are RW.
  SetCfg(*rp, pci::kSecondaryBus, 1, 9);
  EXPECT_EQ(Cfg(*rp, pci::kSecondaryBus, 1), 1u);
  SetCfg(*rp, pci::kMemoryBase, 4, 0xffffffff);
  EXPECT_EQ(Cfg(*rp, pci::kMemoryBase, 4), 0xfff0fff0u);
  EXPECT_EQ(Cfg(*rp, pci::kPrefMemoryBase, 2) & 0xf, 1u) << "64-bit prefetchable window";
}

TEST(PciDeviceTest, HostBridgeIsAType0BridgeClassFunction) {
  auto hb = HostBridge::Create();
  EXPECT_EQ(hb->name(), "0000:00:00.0");
  EXPECT_EQ(Cfg(*hb, pci::kVendorId, 4), 0x00081b36u);
  EXPECT_EQ(Cfg(*hb, pci::kRevision, 4) >> 8, 0x060000u);
  EXPECT_FALSE(hb->is_bridge());
  EXPECT_FALSE(hb->is_pcie());
}

TEST(PciDeviceTest, MemoryDecodeOffMakesBarAccessesEioWithAllOnes) {
  EndpointConfig c = BasicEndpoint();
  c.bars[1] = {.kind = BarKind::kIo, .size = 16};
  auto ep = Endpoint::Create(c).value();
  uint32_t v = 0x12345678;
  EXPECT_EQ(vb::ErrnoOf(ep->BarWrite(0, 0x10, &v, 4)), EIO);
  v = 0;
  EXPECT_EQ(vb::ErrnoOf(ep->BarRead(0, 0x10, &v, 4)), EIO);
  EXPECT_EQ(v, 0xffffffffu);
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory);
  ASSERT_TRUE(ep->BarRead(0, 0x10, &v, 4).has_value());
  EXPECT_EQ(v, 0u) << "the write while decode was off was dropped";
  v = 0xcafe;
  ASSERT_TRUE(ep->BarWrite(0, 0x10, &v, 4).has_value());
  v = 0;
  ASSERT_TRUE(ep->BarRead(0, 0x10, &v, 4).has_value());
  EXPECT_EQ(v, 0xcafeu);
  // I/O BARs follow the I/O enable bit, not the memory one.
  uint8_t b = 0;
  EXPECT_EQ(vb::ErrnoOf(ep->BarRead(1, 0, &b, 1)), EIO);
  EXPECT_EQ(b, 0xff);
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory | pci::kCommandIo);
  EXPECT_TRUE(ep->BarRead(1, 0, &b, 1).has_value());
  // Out of range and no-such-BAR.
  EXPECT_EQ(vb::ErrnoOf(ep->BarRead(0, 4094, &v, 4)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(ep->BarRead(4, 0, &v, 4)), EINVAL);
}

TEST(PciDeviceTest, MappableBarSharesBytesWithAUserMapping) {
  EndpointConfig c = BasicEndpoint();
  c.bars = {};
  c.bars[0] = {.kind = BarKind::kMem64, .size = 64 << 10, .prefetchable = true, .mappable = true};
  c.bars[2] = {.kind = BarKind::kMem32, .size = 4096};
  auto ep = Endpoint::Create(c).value();
  ASSERT_GE(ep->bar_fd(0), 0);
  ASSERT_NE(ep->bar_host(0), nullptr);
  EXPECT_EQ(ep->bar_fd(2), -1) << "plain memory is not mappable";
  EXPECT_EQ(ep->bar_host(2), nullptr);
  void* user = mmap(nullptr, 64 << 10, PROT_READ | PROT_WRITE, MAP_SHARED, ep->bar_fd(0), 0);
  ASSERT_NE(user, MAP_FAILED);
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory);
  const char msg[] = "through the device";
  ASSERT_TRUE(ep->BarWrite(0, 0x1000, msg, sizeof msg).has_value());
  EXPECT_EQ(std::memcmp(static_cast<char*>(user) + 0x1000, msg, sizeof msg), 0);
  std::memcpy(static_cast<char*>(user) + 0x2000, "user", 4);
  char back[4];
  ASSERT_TRUE(ep->BarRead(0, 0x2000, back, 4).has_value());
  EXPECT_EQ(std::memcmp(back, "user", 4), 0);
  munmap(user, 64 << 10);
}

TEST(PciDeviceTest, SurpriseRemovalReadsAllOnesAndDropsWrites) {
  Machine m;
  EndpointConfig c = BasicEndpoint();
  auto ep = Endpoint::Create(c).value();
  ASSERT_TRUE(m.AddPciDevice(ep).has_value());
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory);
  uint32_t v = 0x55;
  ASSERT_TRUE(ep->BarWrite(0, 0, &v, 4).has_value());
  ASSERT_TRUE(m.RemoveDevice(*ep, RemovalKind::kSurprise).has_value());
  EXPECT_TRUE(ep->disconnected());
  EXPECT_EQ(Cfg(*ep, pci::kVendorId, 4), 0xffffffffu);
  EXPECT_EQ(Cfg(*ep, pci::kVendorId, 2), 0xffffu);
  EXPECT_EQ(Cfg(*ep, pci::kRevision, 1), 0xffu);
  v = 0;
  ASSERT_TRUE(ep->BarRead(0, 0, &v, 4).has_value());
  EXPECT_EQ(v, 0xffffffffu);
  EXPECT_TRUE(ep->ConfigWrite(pci::kCommand, 2, 0).has_value());
  EXPECT_TRUE(ep->memory_enabled()) << "the write was dropped";
  EXPECT_EQ(vb::ErrnoOf(ep->ConfigRead(0x1, 2)), EINVAL) << "argument checks still apply";
}

TEST(PciDeviceTest, OrderlyRemovalKeepsTheDeviceReadable) {
  Machine m;
  auto ep = Endpoint::Create(BasicEndpoint()).value();
  ASSERT_TRUE(m.AddPciDevice(ep).has_value());
  ASSERT_TRUE(m.RemoveDevice(*ep, RemovalKind::kOrderly).has_value());
  EXPECT_FALSE(ep->disconnected());
  EXPECT_EQ(Cfg(*ep, pci::kVendorId, 2), 0x8086u);
}

TEST(PciDeviceTest, FunctionLevelResetRestoresPowerOnConfig) {
  EndpointConfig c = BasicEndpoint();
  c.flr = true;
  c.acs = AcsSpec{kAcsSv | kAcsRr, 0};
  auto ep = Endpoint::Create(c).value();
  ASSERT_TRUE(ep->flr_capable());
  const uint8_t exp = *ep->pcie_offset();
  EXPECT_TRUE(Cfg(*ep, exp + pci::kExpDevCap, 4) & pci::kExpDevCapFlr);
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory | pci::kCommandMaster);
  SetCfg(*ep, pci::kBar0, 4, 0xfe000000);
  SetCfg(*ep, *ep->acs_offset() + pci::kAcsCtrl, 2, kAcsRr);
  SetCfg(*ep, pci::kCommand, 2, pci::kCommandMemory);
  uint32_t v = 0x77;
  ASSERT_TRUE(ep->BarWrite(0, 0, &v, 4).has_value());
  SetCfg(*ep, exp + pci::kExpDevCtl, 2, Cfg(*ep, exp + pci::kExpDevCtl, 2) | pci::kExpDevCtlBcrFlr);
  EXPECT_EQ(Cfg(*ep, pci::kCommand, 2), 0u);
  EXPECT_EQ(Cfg(*ep, pci::kBar0, 4), 0u);
  EXPECT_EQ(ep->acs_control(), uint16_t{0});
  EXPECT_EQ(Cfg(*ep, exp + pci::kExpDevCtl, 2) & pci::kExpDevCtlBcrFlr, 0u) << "initiate-FLR reads zero";

  // Without FLR capability the bit does nothing.
  auto no_flr = Endpoint::Create(BasicEndpoint()).value();
  SetCfg(*no_flr, pci::kCommand, 2, pci::kCommandMemory);
  const uint8_t e2 = *no_flr->pcie_offset();
  SetCfg(*no_flr, e2 + pci::kExpDevCtl, 2, pci::kExpDevCtlBcrFlr);
  EXPECT_EQ(Cfg(*no_flr, pci::kCommand, 2), uint32_t{pci::kCommandMemory});
}

TEST(PciDeviceTest, EndpointRejectsPortTypes) {
  EndpointConfig c = BasicEndpoint();
  c.pcie_type = PcieType::kRootPort;
  EXPECT_EQ(vb::ErrnoOf(Endpoint::Create(c)), EINVAL);
  c = BasicEndpoint();
  c.msix = MsixSpec{.table_size = 512, .table_bar = 0, .table_offset = 0, .pba_bar = 0, .pba_offset = 0};
  EXPECT_EQ(vb::ErrnoOf(Endpoint::Create(c)), EINVAL) << "table does not fit a 4 KiB BAR and overlaps PBA";
  c.msix = MsixSpec{.table_size = 4, .table_bar = 3, .table_offset = 0, .pba_bar = 0, .pba_offset = 0x800};
  EXPECT_EQ(vb::ErrnoOf(Endpoint::Create(c)), EINVAL) << "table BAR undefined";
}

}  // namespace
}  // namespace hw
