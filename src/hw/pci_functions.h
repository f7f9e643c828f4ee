// Generic PCI functions that topology files and the default machine are built from: the host
// bridge, PCIe root ports, switch upstream/downstream ports, PCIe-to-PCI bridges (type 1 headers
// with the right PCIe port type and optional ACS), and a generic endpoint (conventional or
// express, multifunction or not, with BARs, MSI/MSI-X, ACS) that has no behaviour beyond its
// config space and plain BAR memory. Each is created by a factory and owned by RefPtr, like every
// Device; the Machine takes its own reference when it is plugged in.
//
// Default ids are those QEMU uses for the same functions, so lspci output looks familiar.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/pci_device.h"

namespace hw {

struct AcsSpec {
  uint16_t capability = 0;  // AcsBits the function has
  uint16_t control = 0;     // AcsBits enabled
};

struct BridgeConfig {
  PciAddress address;
  uint8_t secondary_bus = 0;
  uint16_t vendor_id = 0;   // 0: the function type's default
  uint16_t device_id = 0;
  bool multifunction = false;
  std::optional<AcsSpec> acs;
  uint8_t link_speed = 3;
  uint8_t link_width = 1;
  bool slot = true;         // root and downstream ports: a slot is implemented
  uint8_t port_number = 0;
};

// A type 1 function. The concrete classes below only choose the PCIe port type and default ids.
class PciBridgeFunction : public PciDevice {
 protected:
  PciBridgeFunction(const BridgeConfig& config, PcieType type, uint16_t vendor, uint16_t device, uint32_t class_code);
};

class RootPort final : public PciBridgeFunction {  // default 1b36:000c (QEMU pcie-root-port)
 public:
  static vb::RefPtr<RootPort> Create(const BridgeConfig& config);

 private:
  using PciBridgeFunction::PciBridgeFunction;
};

class SwitchUpstreamPort final : public PciBridgeFunction {  // default 104c:8232 (XIO3130 upstream)
 public:
  static vb::RefPtr<SwitchUpstreamPort> Create(const BridgeConfig& config);

 private:
  using PciBridgeFunction::PciBridgeFunction;
};

class SwitchDownstreamPort final : public PciBridgeFunction {  // default 104c:8233 (XIO3130 downstream)
 public:
  static vb::RefPtr<SwitchDownstreamPort> Create(const BridgeConfig& config);

 private:
  using PciBridgeFunction::PciBridgeFunction;
};

class PcieToPciBridge final : public PciBridgeFunction {  // default 1b36:000e (QEMU pcie-pci-bridge)
 public:
  static vb::RefPtr<PcieToPciBridge> Create(const BridgeConfig& config);

 private:
  using PciBridgeFunction::PciBridgeFunction;
};

// 00:00.0 host bridge (default 1b36:0008, QEMU's generic PCIe host bridge, which has no
// registers a driver could use: not Q35's 8086:29c0, which intel-agp claims), a conventional
// type 0 function of class 0x0600.
class HostBridge final : public PciDevice {
 public:
  static vb::RefPtr<HostBridge> Create(PciAddress address = {}, uint16_t vendor_id = 0x1b36,
                                       uint16_t device_id = 0x0008);

 private:
  HostBridge(PciAddress address, const Identity& id) : PciDevice(address, id) {}
};

struct EndpointConfig {
  PciAddress address;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0xff0000;
  uint8_t revision = 0;
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
  // kConventional (plain PCI), kEndpoint, kLegacyEndpoint or kRcIntegratedEndpoint.
  PcieType pcie_type = PcieType::kEndpoint;
  bool multifunction = false;
  uint8_t interrupt_pin = 1;           // 0 none, 1..4 INTA..INTD
  std::array<BarSpec, 6> bars = {};    // a kMem64 BAR also takes the next slot (leave it kNone)
  bool pm = true;
  std::optional<MsiSpec> msi;
  std::optional<MsixSpec> msix;        // table and PBA inside BARs given above
  std::optional<AcsSpec> acs;
  bool flr = false;
};

// An endpoint with no behaviour: plain (or mappable, memfd-backed) BAR memory and config space.
class Endpoint : public PciDevice {
 public:
  // EINVAL: a port/bridge pcie_type, an invalid BAR spec or slot, an MSI/MSI-X spec that does not
  // fit; ENOMEM: BAR memory could not be made.
  static vb::Result<vb::RefPtr<Endpoint>> Create(const EndpointConfig& config);

 protected:
  Endpoint(PciAddress address, const Identity& id) : PciDevice(address, id) {}
  // Lays out BARs and capabilities from `config` (factories of subclasses reuse it).
  vb::Result<void> Setup(const EndpointConfig& config);
  static Identity IdentityOf(const EndpointConfig& config);
};

}  // namespace hw
