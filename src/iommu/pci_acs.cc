#include "iommu/pci_acs.h"

#include <algorithm>

namespace iommu {
namespace {

bool AcsFlagsEnabled(const hw::PciDevice& dev, uint16_t flags) {
  std::optional<uint16_t> cap = dev.acs_capability();
  std::optional<uint16_t> ctrl = dev.acs_control();
  if (!cap || !ctrl) return false;
  // A flag the hardware does not implement cannot be violated; EC is demanded whenever asked.
  const uint16_t required = flags & (*cap | hw::kAcsEc);
  return (*ctrl & required) == required;
}

}  // namespace

bool PciAcsEnabled(const hw::PciDevice& dev, uint16_t flags) {
  if (std::optional<bool> quirk = dev.acs_quirk()) return *quirk;
  if (!dev.is_pcie()) return false;
  switch (dev.pcie_type()) {
    case hw::PcieType::kPciToPcieBridge:
    case hw::PcieType::kPcieToPciBridge:
    case hw::PcieType::kRcEventCollector:
      return false;
    case hw::PcieType::kDownstreamPort:
    case hw::PcieType::kRootPort:
      return AcsFlagsEnabled(dev, flags);
    case hw::PcieType::kEndpoint:
    case hw::PcieType::kLegacyEndpoint:
    case hw::PcieType::kRcIntegratedEndpoint:
    case hw::PcieType::kUpstreamPort:
      // A single function cannot do peer-to-peer with itself; only a multifunction device must
      // keep its functions apart.
      return !dev.multifunction() || AcsFlagsEnabled(dev, flags);
    case hw::PcieType::kConventional:
      return false;
  }
  return true;
}

bool PciAcsPathEnabled(const hw::PciDevice& start, uint16_t flags) {
  for (const hw::PciDevice* dev = &start; dev;) {
    if (!PciAcsEnabled(*dev, flags)) return false;
    const hw::PciBus* bus = dev->bus();
    if (!bus || bus->is_root()) return true;
    dev = bus->self();
  }
  return true;
}

bool PciDevsAreDmaAliases(const hw::PciDevice& a, const hw::PciDevice& b) {
  auto lists = [](const hw::PciDevice& x, uint8_t devfn) {
    return std::find(x.dma_aliases().begin(), x.dma_aliases().end(), devfn) != x.dma_aliases().end();
  };
  return lists(a, b.address().devfn) || lists(b, a.address().devfn);
}

}  // namespace iommu
