#include "hw/capability_builder.h"

#include "base/checked.h"
#include "hw/pci_regs.h"

namespace hw {

vb::Result<uint8_t> CapabilityBuilder::AddStandard(uint8_t id, uint8_t length) {
  if (length < 2) return vb::Err(EINVAL, "cap: length below header size");
  const uint32_t pos = next_std_;
  if (pos + length > ConfigSpace::kConventionalSize) return vb::Err(ENOSPC, "cap: standard list full");
  ConfigSpace& cs = *cs_;
  cs.Set8(pos, id);
  cs.Set8(pos + 1, 0);
  if (last_std_ == 0) {
    cs.Set8(pci::kCapabilityList, static_cast<uint8_t>(pos));
    cs.Set16(pci::kStatus, cs.Get16(pci::kStatus) | pci::kStatusCapList);
  } else {
    cs.Set8(last_std_ + 1u, static_cast<uint8_t>(pos));
  }
  last_std_ = static_cast<uint8_t>(pos);
  next_std_ = static_cast<uint16_t>((pos + length + 3) & ~3u);
  return static_cast<uint8_t>(pos);
}

vb::Result<uint8_t> CapabilityBuilder::AddPm(const PmSpec& spec) {
  uint8_t pos = TRY(AddStandard(pci::kCapIdPm, pci::kPmSizeof));
  ConfigSpace& cs = *cs_;
  uint16_t pmc = 0x3;  // version 1.2
  if (spec.d1) pmc |= 1u << 9;
  if (spec.d2) pmc |= 1u << 10;
  cs.Set16(pos + pci::kPmPmc, pmc);
  cs.Set16(pos + pci::kPmCtrl, spec.no_soft_reset ? pci::kPmCtrlNoSoftReset : 0);
  cs.SetWritable(pos + pci::kPmCtrl, 2, pci::kPmCtrlStateMask | pci::kPmCtrlPmeEnable);
  cs.SetW1c(pos + pci::kPmCtrl, 2, pci::kPmCtrlPmeStatus);
  return pos;
}

vb::Result<uint8_t> CapabilityBuilder::AddPcie(const PcieCapSpec& spec) {
  if (spec.type == PcieType::kConventional) return vb::Err(EINVAL, "cap: PCIe cap for a conventional function");
  if (spec.link_speed < 1 || spec.link_speed > 5) return vb::Err(EINVAL, "cap: bad link speed");
  if (spec.link_width < 1 || spec.link_width > 32) return vb::Err(EINVAL, "cap: bad link width");
  uint8_t pos = TRY(AddStandard(pci::kCapIdExp, pci::kExpSizeofV2));
  ConfigSpace& cs = *cs_;
  const bool port = spec.type == PcieType::kRootPort || spec.type == PcieType::kDownstreamPort;
  const bool root = spec.type == PcieType::kRootPort;
  const bool endpoint = spec.type == PcieType::kEndpoint || spec.type == PcieType::kLegacyEndpoint ||
                        spec.type == PcieType::kRcIntegratedEndpoint;
  const bool has_link = spec.type != PcieType::kRcIntegratedEndpoint &&
                        spec.type != PcieType::kRcEventCollector;

  uint16_t flags = 2 | (static_cast<uint16_t>(spec.type) << 4);
  if (port && spec.slot) flags |= pci::kExpFlagsSlot;
  cs.Set16(pos + pci::kExpFlags, flags);

  uint32_t devcap = pci::kExpDevCapRber;  // max payload 128 bytes (0)
  if (endpoint && spec.flr) devcap |= pci::kExpDevCapFlr;
  cs.Set32(pos + pci::kExpDevCap, devcap);
  // Device control: error reporting enables, relaxed ordering, max payload, extended tags,
  // no-snoop, max read request; bit 15 (initiate FLR) reads as zero and is handled by the device.
  cs.Set16(pos + pci::kExpDevCtl, 0x2810);  // 512-byte max read request, relaxed ordering, no-snoop
  cs.SetWritable(pos + pci::kExpDevCtl, 2, 0x7fff);
  cs.SetW1c(pos + pci::kExpDevSta, 2, 0x000f);

  if (has_link) {
    uint32_t lnkcap = spec.link_speed | uint32_t{spec.link_width} << 4 | uint32_t{spec.port_number} << 24;
    if (port) lnkcap |= pci::kExpLnkCapDllla;
    cs.Set32(pos + pci::kExpLnkCap, lnkcap);
    cs.SetWritable(pos + pci::kExpLnkCtl, 2, 0x0fcb);
    uint16_t lnksta = static_cast<uint16_t>(spec.link_speed | spec.link_width << 4);
    if (port) lnksta |= pci::kExpLnkStaDllla;
    cs.Set16(pos + pci::kExpLnkSta, lnksta);
    // Supported link speeds vector: every speed up to the maximum.
    cs.Set32(pos + pci::kExpLnkCap2, ((1u << spec.link_speed) - 1) << 1);
    cs.Set16(pos + pci::kExpLnkCtl2, spec.link_speed);
    cs.SetWritable(pos + pci::kExpLnkCtl2, 2, 0x000f);
  }
  if (port && spec.slot) {
    cs.Set32(pos + pci::kExpSltCap, uint32_t{spec.port_number} << 19);  // physical slot number
    cs.SetWritable(pos + pci::kExpSltCtl, 2, 0x17ff);
    cs.Set16(pos + pci::kExpSltSta, pci::kExpSltStaPds);
    cs.SetW1c(pos + pci::kExpSltSta, 2, 0x011f);
  }
  if (root) {
    cs.SetWritable(pos + pci::kExpRtCtl, 2, 0x001f);
    cs.SetW1c(pos + pci::kExpRtSta, 4, 0x00010000);  // PME status
  }
  cs.SetWritable(pos + pci::kExpDevCtl2, 2, 0x041f);  // completion timeout, ARI, LTR
  return pos;
}

uint8_t CapabilityBuilder::MsiLength(const MsiSpec& spec) {
  if (spec.is_64bit) return spec.per_vector_mask ? 24 : 14;
  return spec.per_vector_mask ? 20 : 10;
}

vb::Result<uint8_t> CapabilityBuilder::AddMsi(const MsiSpec& spec) {
  if (!vb::IsPowerOfTwo(spec.vectors) || spec.vectors > 32) return vb::Err(EINVAL, "cap: MSI vectors not 1..32 power of two");
  uint8_t pos = TRY(AddStandard(pci::kCapIdMsi, MsiLength(spec)));
  ConfigSpace& cs = *cs_;
  uint16_t flags = static_cast<uint16_t>(__builtin_ctz(spec.vectors) << 1);
  if (spec.is_64bit) flags |= pci::kMsiFlags64Bit;
  if (spec.per_vector_mask) flags |= pci::kMsiFlagsMaskBit;
  cs.Set16(pos + pci::kMsiFlags, flags);
  cs.SetWritable(pos + pci::kMsiFlags, 2, pci::kMsiFlagsEnable | pci::kMsiFlagsQsize);
  cs.SetWritable(pos + pci::kMsiAddressLo, 4, 0xfffffffcu);
  if (spec.is_64bit) cs.SetWritable(pos + pci::kMsiAddressHi, 4, 0xffffffffu);
  const uint32_t data = spec.is_64bit ? pci::kMsiData64 : pci::kMsiData32;
  cs.SetWritable(pos + data, 2, 0xffff);
  if (spec.per_vector_mask) {
    const uint32_t mask = spec.is_64bit ? pci::kMsiMask64 : pci::kMsiMask32;
    const uint32_t bits = spec.vectors == 32 ? 0xffffffffu : (1u << spec.vectors) - 1;
    cs.SetWritable(pos + mask, 4, bits);
    // Pending bits are set by the function only (read-only to software).
  }
  return pos;
}

vb::Result<uint8_t> CapabilityBuilder::AddMsix(const MsixSpec& spec) {
  if (spec.table_size < 1 || spec.table_size > 2048) return vb::Err(EINVAL, "cap: MSI-X table size not 1..2048");
  if (spec.table_bar > 5 || spec.pba_bar > 5) return vb::Err(EINVAL, "cap: MSI-X BIR out of range");
  if ((spec.table_offset & 7) || (spec.pba_offset & 7)) return vb::Err(EINVAL, "cap: MSI-X offset not 8-byte aligned");
  uint8_t pos = TRY(AddStandard(pci::kCapIdMsix, pci::kMsixSizeof));
  ConfigSpace& cs = *cs_;
  cs.Set16(pos + pci::kMsixFlags, static_cast<uint16_t>(spec.table_size - 1));
  cs.SetWritable(pos + pci::kMsixFlags, 2, pci::kMsixFlagsEnable | pci::kMsixFlagsMaskAll);
  cs.Set32(pos + pci::kMsixTable, spec.table_offset | spec.table_bar);
  cs.Set32(pos + pci::kMsixPba, spec.pba_offset | spec.pba_bar);
  return pos;
}

vb::Result<uint16_t> CapabilityBuilder::AddExtended(uint16_t id, uint8_t version, uint16_t length) {
  if (length < 4) return vb::Err(EINVAL, "cap: extended length below header size");
  const uint32_t pos = next_ext_;
  if (pos + length > ConfigSpace::kExpressSize) return vb::Err(ENOSPC, "cap: extended space full");
  ConfigSpace& cs = *cs_;
  cs.Set32(pos, pci::ExtCapHeader(id, version, 0));
  if (last_ext_ != 0) {
    const uint32_t prev = cs.Get32(last_ext_);
    cs.Set32(last_ext_, (prev & 0x000fffffu) | pos << 20);
  }
  last_ext_ = static_cast<uint16_t>(pos);
  next_ext_ = static_cast<uint16_t>((pos + length + 3) & ~3u);
  return static_cast<uint16_t>(pos);
}

vb::Result<uint16_t> CapabilityBuilder::AddAcs(uint16_t capability, uint16_t control) {
  capability &= 0x7f;
  const bool egress = capability & kAcsEc;
  uint16_t pos = TRY(AddExtended(pci::kExtCapIdAcs, 1, egress ? 12 : 8));
  ConfigSpace& cs = *cs_;
  // With egress control, one dword of egress control vector (size field 32: 32 functions).
  cs.Set16(pos + pci::kAcsCap, static_cast<uint16_t>(capability | (egress ? 32u << 8 : 0u)));
  cs.Set16(pos + pci::kAcsCtrl, control);
  cs.SetWritable(pos + pci::kAcsCtrl, 2, capability);
  if (egress) cs.SetWritable(pos + pci::kAcsEgressCtlV, 4, 0xffffffffu);
  return pos;
}

}  // namespace hw
