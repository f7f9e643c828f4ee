#include "hw/pci_functions.h"

namespace hw {

PciBridgeFunction::PciBridgeFunction(const BridgeConfig& c, PcieType type, uint16_t vendor, uint16_t device,
                                     uint32_t class_code)
    : PciDevice(c.address, Identity{
                               .vendor_id = c.vendor_id ? c.vendor_id : vendor,
                               .device_id = c.device_id ? c.device_id : device,
                               .class_code = class_code,
                               .header_type = 1,
                               .pcie_type = type,
                               .multifunction = c.multifunction,
                               .secondary_bus_number = c.secondary_bus,
                               .interrupt_pin = 0,
                               .link_speed = c.link_speed,
                               .link_width = c.link_width,
                               .slot = c.slot && (type == PcieType::kRootPort || type == PcieType::kDownstreamPort),
                               .port_number = c.port_number,
                           }) {
  // A fresh function has room for these; they cannot fail.
  (void)AddPmCapability();
  if (c.acs) set_acs(c.acs->capability, c.acs->control);
}

namespace {
constexpr uint32_t kClassPciBridge = 0x060400;
}

vb::RefPtr<RootPort> RootPort::Create(const BridgeConfig& c) {
  return vb::RefPtr<RootPort>(new RootPort(c, PcieType::kRootPort, 0x1b36, 0x000c, kClassPciBridge));
}

vb::RefPtr<SwitchUpstreamPort> SwitchUpstreamPort::Create(const BridgeConfig& c) {
  return vb::RefPtr<SwitchUpstreamPort>(new SwitchUpstreamPort(c, PcieType::kUpstreamPort, 0x104c, 0x8232, kClassPciBridge));
}

vb::RefPtr<SwitchDownstreamPort> SwitchDownstreamPort::Create(const BridgeConfig& c) {
  return vb::RefPtr<SwitchDownstreamPort>(
      new SwitchDownstreamPort(c, PcieType::kDownstreamPort, 0x104c, 0x8233, kClassPciBridge));
}

vb::RefPtr<PcieToPciBridge> PcieToPciBridge::Create(const BridgeConfig& c) {
  return vb::RefPtr<PcieToPciBridge>(new PcieToPciBridge(c, PcieType::kPcieToPciBridge, 0x1b36, 0x000e, kClassPciBridge));
}

vb::RefPtr<HostBridge> HostBridge::Create(PciAddress address, uint16_t vendor_id, uint16_t device_id) {
  return vb::RefPtr<HostBridge>(new HostBridge(address, Identity{
                                                            .vendor_id = vendor_id,
                                                            .device_id = device_id,
                                                            .class_code = 0x060000,
                                                        }));
}

PciDevice::Identity Endpoint::IdentityOf(const EndpointConfig& c) {
  return Identity{
      .vendor_id = c.vendor_id,
      .device_id = c.device_id,
      .class_code = c.class_code,
      .header_type = 0,
      .pcie_type = c.pcie_type,
      .multifunction = c.multifunction,
      .revision = c.revision,
      .subsystem_vendor_id = c.subsystem_vendor_id,
      .subsystem_id = c.subsystem_id,
      .interrupt_pin = c.interrupt_pin,
      .flr = c.flr,
  };
}

vb::Result<void> Endpoint::Setup(const EndpointConfig& c) {
  for (int i = 0; i < kMaxBars; ++i) {
    if (c.bars[i].kind == BarKind::kNone) continue;
    TRY(DefineBar(i, c.bars[i]));
  }
  if (c.pm) TRY(AddPmCapability());
  if (c.msi) TRY(AddMsiCapability(*c.msi));
  if (c.msix) TRY(AddMsixCapability(*c.msix));
  if (c.acs) set_acs(c.acs->capability, c.acs->control);
  return vb::Ok();
}

vb::Result<vb::RefPtr<Endpoint>> Endpoint::Create(const EndpointConfig& c) {
  switch (c.pcie_type) {
    case PcieType::kConventional:
    case PcieType::kEndpoint:
    case PcieType::kLegacyEndpoint:
    case PcieType::kRcIntegratedEndpoint:
      break;
    default:
      return vb::Err(EINVAL, "endpoint: pcie type is a port or bridge");
  }
  if (c.interrupt_pin > 4) return vb::Err(EINVAL, "endpoint: interrupt pin not 0..4");
  vb::RefPtr<Endpoint> ep(new Endpoint(c.address, IdentityOf(c)));
  TRY(ep->Setup(c));
  return ep;
}

}  // namespace hw
