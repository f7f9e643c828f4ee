// PCI configuration-space register offsets and bits (the subset of Linux's pci_regs.h vocabulary
// that the simulated platform models). Values are from the PCI Local Bus 3.0 and PCIe 4.0 specs;
// names follow the kernel's so code above reads like the kernel it mirrors.
#pragma once

#include <cstdint>

namespace hw::pci {

// ---- common header (types 0 and 1) ----
inline constexpr uint32_t kVendorId = 0x00;
inline constexpr uint32_t kDeviceId = 0x02;
inline constexpr uint32_t kCommand = 0x04;
inline constexpr uint32_t kStatus = 0x06;
inline constexpr uint32_t kRevision = 0x08;
inline constexpr uint32_t kClassProgIf = 0x09;   // 24-bit class code at 0x09..0x0b
inline constexpr uint32_t kCacheLineSize = 0x0c;
inline constexpr uint32_t kLatencyTimer = 0x0d;
inline constexpr uint32_t kHeaderType = 0x0e;
inline constexpr uint32_t kBist = 0x0f;
inline constexpr uint32_t kBar0 = 0x10;
inline constexpr uint32_t kCapabilityList = 0x34;
inline constexpr uint32_t kInterruptLine = 0x3c;
inline constexpr uint32_t kInterruptPin = 0x3d;

// type 0
inline constexpr uint32_t kSubsystemVendorId = 0x2c;
inline constexpr uint32_t kSubsystemId = 0x2e;
inline constexpr uint32_t kRomAddress = 0x30;
inline constexpr int kType0Bars = 6;

// type 1
inline constexpr uint32_t kPrimaryBus = 0x18;
inline constexpr uint32_t kSecondaryBus = 0x19;
inline constexpr uint32_t kSubordinateBus = 0x1a;
inline constexpr uint32_t kSecLatencyTimer = 0x1b;
inline constexpr uint32_t kIoBase = 0x1c;
inline constexpr uint32_t kIoLimit = 0x1d;
inline constexpr uint32_t kSecStatus = 0x1e;
inline constexpr uint32_t kMemoryBase = 0x20;
inline constexpr uint32_t kMemoryLimit = 0x22;
inline constexpr uint32_t kPrefMemoryBase = 0x24;
inline constexpr uint32_t kPrefMemoryLimit = 0x26;
inline constexpr uint32_t kPrefBaseUpper32 = 0x28;
inline constexpr uint32_t kPrefLimitUpper32 = 0x2c;
inline constexpr uint32_t kIoBaseUpper16 = 0x30;
inline constexpr uint32_t kIoLimitUpper16 = 0x32;
inline constexpr uint32_t kRomAddress1 = 0x38;
inline constexpr uint32_t kBridgeControl = 0x3e;
inline constexpr int kType1Bars = 2;

inline constexpr uint8_t kHeaderTypeMultifunction = 0x80;

// command register
inline constexpr uint16_t kCommandIo = 0x0001;
inline constexpr uint16_t kCommandMemory = 0x0002;
inline constexpr uint16_t kCommandMaster = 0x0004;
inline constexpr uint16_t kCommandParity = 0x0040;
inline constexpr uint16_t kCommandSerr = 0x0100;
inline constexpr uint16_t kCommandIntxDisable = 0x0400;

// status register
inline constexpr uint16_t kStatusInterrupt = 0x0008;
inline constexpr uint16_t kStatusCapList = 0x0010;
inline constexpr uint16_t kStatusW1cBits = 0xf900;  // parity/abort/SERR error bits

// BAR low bits
inline constexpr uint32_t kBarSpaceIo = 0x01;
inline constexpr uint32_t kBarMemType64 = 0x04;
inline constexpr uint32_t kBarMemPrefetch = 0x08;
inline constexpr uint32_t kBarMemMask = 0xfffffff0u;
inline constexpr uint32_t kBarIoMask = 0xfffffffcu;

// ---- standard capabilities ----
inline constexpr uint8_t kCapIdPm = 0x01;
inline constexpr uint8_t kCapIdMsi = 0x05;
inline constexpr uint8_t kCapIdVendor = 0x09;
inline constexpr uint8_t kCapIdExp = 0x10;
inline constexpr uint8_t kCapIdMsix = 0x11;

// PM
inline constexpr uint32_t kPmPmc = 2;
inline constexpr uint32_t kPmCtrl = 4;
inline constexpr uint16_t kPmCtrlStateMask = 0x0003;
inline constexpr uint16_t kPmCtrlNoSoftReset = 0x0008;
inline constexpr uint16_t kPmCtrlPmeEnable = 0x0100;
inline constexpr uint16_t kPmCtrlPmeStatus = 0x8000;
inline constexpr uint32_t kPmSizeof = 8;

// MSI
inline constexpr uint32_t kMsiFlags = 2;
inline constexpr uint16_t kMsiFlagsEnable = 0x0001;
inline constexpr uint16_t kMsiFlagsQmask = 0x000e;  // multiple message capable (log2)
inline constexpr uint16_t kMsiFlagsQsize = 0x0070;  // multiple message enable (log2)
inline constexpr uint16_t kMsiFlags64Bit = 0x0080;
inline constexpr uint16_t kMsiFlagsMaskBit = 0x0100;
inline constexpr uint32_t kMsiAddressLo = 4;
inline constexpr uint32_t kMsiAddressHi = 8;   // 64-bit only
inline constexpr uint32_t kMsiData32 = 8;
inline constexpr uint32_t kMsiMask32 = 12;
inline constexpr uint32_t kMsiPending32 = 16;
inline constexpr uint32_t kMsiData64 = 12;
inline constexpr uint32_t kMsiMask64 = 16;
inline constexpr uint32_t kMsiPending64 = 20;

// MSI-X
inline constexpr uint32_t kMsixFlags = 2;
inline constexpr uint16_t kMsixFlagsQsize = 0x07ff;
inline constexpr uint16_t kMsixFlagsMaskAll = 0x4000;
inline constexpr uint16_t kMsixFlagsEnable = 0x8000;
inline constexpr uint32_t kMsixTable = 4;
inline constexpr uint32_t kMsixPba = 8;
inline constexpr uint32_t kMsixBirMask = 0x7;
inline constexpr uint32_t kMsixSizeof = 12;
inline constexpr uint32_t kMsixEntrySize = 16;
inline constexpr uint32_t kMsixEntryLowerAddr = 0;
inline constexpr uint32_t kMsixEntryUpperAddr = 4;
inline constexpr uint32_t kMsixEntryData = 8;
inline constexpr uint32_t kMsixEntryVectorCtrl = 12;
inline constexpr uint32_t kMsixEntryCtrlMaskBit = 0x1;

// PCI Express capability
inline constexpr uint32_t kExpFlags = 2;
inline constexpr uint16_t kExpFlagsVersMask = 0x000f;
inline constexpr uint16_t kExpFlagsTypeMask = 0x00f0;
inline constexpr uint16_t kExpFlagsSlot = 0x0100;
inline constexpr uint32_t kExpDevCap = 4;
inline constexpr uint32_t kExpDevCapRber = 0x00008000;
inline constexpr uint32_t kExpDevCapFlr = 0x10000000;
inline constexpr uint32_t kExpDevCtl = 8;
inline constexpr uint16_t kExpDevCtlBcrFlr = 0x8000;
inline constexpr uint32_t kExpDevSta = 10;
inline constexpr uint32_t kExpLnkCap = 12;
inline constexpr uint32_t kExpLnkCapDllla = 0x00100000;
inline constexpr uint32_t kExpLnkCtl = 16;
inline constexpr uint32_t kExpLnkSta = 18;
inline constexpr uint16_t kExpLnkStaDllla = 0x2000;
inline constexpr uint32_t kExpSltCap = 20;
inline constexpr uint32_t kExpSltCtl = 24;
inline constexpr uint32_t kExpSltSta = 26;
inline constexpr uint16_t kExpSltStaPds = 0x0040;  // presence detect state
inline constexpr uint32_t kExpRtCtl = 28;
inline constexpr uint32_t kExpRtCap = 30;
inline constexpr uint32_t kExpRtSta = 32;
inline constexpr uint32_t kExpDevCap2 = 36;
inline constexpr uint32_t kExpDevCtl2 = 40;
inline constexpr uint32_t kExpLnkCap2 = 44;
inline constexpr uint32_t kExpLnkCtl2 = 48;
inline constexpr uint32_t kExpLnkSta2 = 50;
inline constexpr uint32_t kExpSizeofV2 = 60;

// ---- extended capabilities (config offsets 0x100..0xfff) ----
inline constexpr uint32_t kExtCapStart = 0x100;
inline constexpr uint16_t kExtCapIdAcs = 0x000d;
inline constexpr uint32_t kAcsCap = 4;
inline constexpr uint32_t kAcsCtrl = 6;
inline constexpr uint32_t kAcsEgressCtlV = 8;
constexpr uint32_t ExtCapHeader(uint16_t id, uint8_t version, uint16_t next) {
  return uint32_t{id} | uint32_t{version & 0xfu} << 16 | uint32_t{next & 0xfffu} << 20;
}
constexpr uint16_t ExtCapId(uint32_t header) { return header & 0xffff; }
constexpr uint16_t ExtCapNext(uint32_t header) { return (header >> 20) & 0xffc; }

}  // namespace hw::pci
