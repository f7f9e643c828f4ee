#include "hw/config_space.h"

#include <gtest/gtest.h>

#include "hw/capability_builder.h"
#include "hw/pci_regs.h"

namespace hw {
namespace {

TEST(ConfigSpaceTest, ReadOnlyBitsIgnoreWritesAndWritableBitsTakeThem) {
  ConfigSpace cs(ConfigSpace::kConventionalSize);
  cs.Set16(0x00, 0x1234);
  cs.Set16(0x04, 0x0000);
  cs.SetWritable(0x04, 2, 0x0007);
  ASSERT_TRUE(cs.Write(0x00, 2, 0xffff).has_value());
  EXPECT_EQ(*cs.Read(0x00, 2), 0x1234u);
  ASSERT_TRUE(cs.Write(0x04, 2, 0xffff).has_value());
  EXPECT_EQ(*cs.Read(0x04, 2), 0x0007u);
  ASSERT_TRUE(cs.Write(0x04, 1, 0x02).has_value());
  EXPECT_EQ(*cs.Read(0x04, 2), 0x0002u);
}

TEST(ConfigSpaceTest, WriteOneToClearBitsClearOnlyTheOnesWritten) {
  ConfigSpace cs(ConfigSpace::kConventionalSize);
  cs.Set16(0x06, 0xf910);
  cs.SetW1c(0x06, 2, 0xf900);
  ASSERT_TRUE(cs.Write(0x06, 2, 0x8000).has_value());
  EXPECT_EQ(*cs.Read(0x06, 2), 0x7910u);
  ASSERT_TRUE(cs.Write(0x06, 2, 0x0000).has_value());
  EXPECT_EQ(*cs.Read(0x06, 2), 0x7910u);
  ASSERT_TRUE(cs.Write(0x06, 2, 0xffff).has_value());
  EXPECT_EQ(*cs.Read(0x06, 2), 0x0010u) << "the RO capability-list bit survives";
}

TEST(ConfigSpaceTest, ValuesAreLittleEndianAcrossSizes) {
  ConfigSpace cs(ConfigSpace::kConventionalSize);
  cs.Set32(0x10, 0x11223344);
  EXPECT_EQ(*cs.Read(0x10, 1), 0x44u);
  EXPECT_EQ(*cs.Read(0x11, 1), 0x33u);
  EXPECT_EQ(*cs.Read(0x12, 2), 0x1122u);
  EXPECT_EQ(*cs.Read(0x10, 4), 0x11223344u);
}

TEST(ConfigSpaceTest, BadAccessesAreEinval) {
  ConfigSpace cs(ConfigSpace::kConventionalSize);
  EXPECT_EQ(vb::ErrnoOf(cs.Read(0x01, 2)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(cs.Read(0x02, 4)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(cs.Read(0x00, 3)), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(cs.Read(0x100, 4)), EINVAL) << "conventional space is 256 bytes";
  EXPECT_EQ(vb::ErrnoOf(cs.Write(0xfe, 4, 0)), EINVAL);
  ConfigSpace ex(ConfigSpace::kExpressSize);
  EXPECT_TRUE(ex.Read(0xffc, 4).has_value());
  EXPECT_EQ(vb::ErrnoOf(ex.Read(0x1000, 1)), EINVAL);
}

TEST(ConfigSpaceTest, FindCapabilityStopsOnALoop) {
  ConfigSpace cs(ConfigSpace::kConventionalSize);
  cs.Set16(pci::kStatus, pci::kStatusCapList);
  cs.Set8(pci::kCapabilityList, 0x40);
  cs.Set8(0x40, 0x01);
  cs.Set8(0x41, 0x40);  // points at itself
  EXPECT_EQ(cs.FindCapability(0x01), 0x40);
  EXPECT_EQ(cs.FindCapability(0x05), std::nullopt);
}

TEST(CapabilityBuilderTest, ChainsStandardAndExtendedCapabilitiesWithNextPointers) {
  ConfigSpace cs(ConfigSpace::kExpressSize);
  CapabilityBuilder b(cs);
  uint8_t pm = *b.AddPm({});
  uint8_t exp = *b.AddPcie({.type = PcieType::kEndpoint});
  uint8_t msi = *b.AddMsi({.vectors = 4, .is_64bit = false, .per_vector_mask = true});
  uint8_t msix = *b.AddMsix({.table_size = 16, .table_bar = 1, .table_offset = 0, .pba_bar = 1, .pba_offset = 0x800});
  uint16_t acs = *b.AddAcs(kAcsSv | kAcsRr, kAcsSv);
  uint16_t vsec = *b.AddExtended(0x000b, 1, 16);

  EXPECT_TRUE(cs.Get16(pci::kStatus) & pci::kStatusCapList);
  EXPECT_EQ(cs.Get8(pci::kCapabilityList), pm);
  EXPECT_EQ(cs.Get8(pm + 1), exp);
  EXPECT_EQ(cs.Get8(exp + 1), msi);
  EXPECT_EQ(cs.Get8(msi + 1), msix);
  EXPECT_EQ(cs.Get8(msix + 1), 0);
  for (uint8_t off : {pm, exp, msi, msix}) EXPECT_EQ(off % 4, 0) << int(off);
  EXPECT_EQ(msi - exp, 0x3c) << "PCIe v2 capability is 60 bytes";
  EXPECT_EQ(cs.FindCapability(pci::kCapIdMsi), msi);
  EXPECT_EQ(cs.FindCapability(pci::kCapIdMsix), msix);

  EXPECT_EQ(acs, 0x100);
  EXPECT_EQ(pci::ExtCapId(cs.Get32(acs)), pci::kExtCapIdAcs);
  EXPECT_EQ((cs.Get32(acs) >> 16) & 0xf, 1u);
  EXPECT_EQ(pci::ExtCapNext(cs.Get32(acs)), vsec);
  EXPECT_EQ(pci::ExtCapNext(cs.Get32(vsec)), 0);
  EXPECT_EQ(cs.FindExtCapability(0x000b), vsec);

  // MSI: 32-bit with masking: flags carry 4 vectors capable and the mask bit.
  EXPECT_EQ(cs.Get16(msi + pci::kMsiFlags), (2 << 1) | pci::kMsiFlagsMaskBit);
  EXPECT_EQ(cs.Get16(msix + pci::kMsixFlags), 15);
  EXPECT_EQ(cs.Get32(msix + pci::kMsixTable), 0x0u | 1);
  EXPECT_EQ(cs.Get32(msix + pci::kMsixPba), 0x800u | 1);
}

TEST(CapabilityBuilderTest, RejectsBadSpecsAndAFullList) {
  ConfigSpace cs(ConfigSpace::kConventionalSize);
  CapabilityBuilder b(cs);
  EXPECT_EQ(vb::ErrnoOf(b.AddMsi({.vectors = 3})), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(b.AddMsix({.table_size = 0})), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(b.AddMsix({.table_size = 4, .table_offset = 4})), EINVAL);
  EXPECT_EQ(vb::ErrnoOf(b.AddPcie({.type = PcieType::kConventional})), EINVAL);
  int added = 0;
  while (b.AddStandard(pci::kCapIdVendor, 16).has_value()) ++added;
  EXPECT_EQ(added, (256 - 0x40) / 16);
  EXPECT_EQ(vb::ErrnoOf(b.AddStandard(pci::kCapIdVendor, 16)), ENOSPC);
}

}  // namespace
}  // namespace hw
