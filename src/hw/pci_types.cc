#include "hw/pci_types.h"

#include <cstdio>

namespace hw {

std::string PciAddress::ToString() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, device(), function());
  return buf;
}

const char* PcieTypeName(PcieType t) {
  switch (t) {
    case PcieType::kEndpoint: return "endpoint";
    case PcieType::kLegacyEndpoint: return "legacy-endpoint";
    case PcieType::kRcIntegratedEndpoint: return "rc-integrated-endpoint";
    case PcieType::kRcEventCollector: return "rc-event-collector";
    case PcieType::kRootPort: return "root-port";
    case PcieType::kUpstreamPort: return "upstream-port";
    case PcieType::kDownstreamPort: return "downstream-port";
    case PcieType::kPcieToPciBridge: return "pcie-to-pci-bridge";
    case PcieType::kPciToPcieBridge: return "pci-to-pcie-bridge";
    case PcieType::kConventional: return "conventional";
  }
  return "?";
}

}  // namespace hw
