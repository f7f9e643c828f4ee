// Small PCI vocabulary shared by the platform and the IOMMU core: addresses, PCIe port types,
// ACS bits, BAR descriptions.
#pragma once

#include <cstdint>
#include <string>

namespace hw {

struct PciAddress {
  uint16_t domain = 0;
  uint8_t bus = 0;
  uint8_t devfn = 0;  // device << 3 | function
  uint8_t device() const { return devfn >> 3; }
  uint8_t function() const { return devfn & 7; }
  uint32_t requester_id() const { return (uint32_t{bus} << 8) | devfn; }
  std::string ToString() const;  // "0000:01:00.0"
  friend bool operator==(const PciAddress&, const PciAddress&) = default;
};
constexpr uint8_t MakeDevfn(uint8_t dev, uint8_t fn) { return static_cast<uint8_t>(dev << 3 | fn); }

// PCIe capability "device/port type" (PCI_EXP_TYPE_*), plus kConventional for plain PCI.
enum class PcieType : uint8_t {
  kEndpoint = 0x0,
  kLegacyEndpoint = 0x1,
  kRcIntegratedEndpoint = 0x9,
  kRcEventCollector = 0xa,
  kRootPort = 0x4,
  kUpstreamPort = 0x5,
  kDownstreamPort = 0x6,
  kPcieToPciBridge = 0x7,
  kPciToPcieBridge = 0x8,
  kConventional = 0xff,  // no PCIe capability
};
const char* PcieTypeName(PcieType t);

// ACS capability/control bits (PCI_ACS_*).
enum AcsBits : uint16_t {
  kAcsSv = 0x01,  // source validation
  kAcsTb = 0x02,  // translation blocking
  kAcsRr = 0x04,  // P2P request redirect
  kAcsCr = 0x08,  // P2P completion redirect
  kAcsUf = 0x10,  // upstream forwarding
  kAcsEc = 0x20,  // P2P egress control
  kAcsDt = 0x40,  // direct translated P2P
};
constexpr uint16_t kAcsIsolationFlags = kAcsSv | kAcsRr | kAcsCr | kAcsUf;

enum class BarKind : uint8_t { kNone, kMem32, kMem64, kIo };

struct BarSpec {
  BarKind kind = BarKind::kNone;
  uint64_t size = 0;          // power of two (>= 16 for memory, >= 4 for I/O)
  bool prefetchable = false;
  bool mappable = false;      // backed by shared memory the user may mmap (no side effects)
};

}  // namespace hw
