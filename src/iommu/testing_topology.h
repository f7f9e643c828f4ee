// Test-only PCI topology helpers for the IOMMU core's tests: a concrete hw::PciDevice that only
// has topology (no config space behaviour), a small spec builder for the function kinds of
// reference §7 (root/switch ports, PCIe<->PCI bridges, endpoints, RC integrated endpoints,
// conventional devices), and GroupLayout(), which renders a core's groups as (id, members) for
// exact comparison. Header-only; not part of vb_iommu.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hw/machine.h"
#include "hw/pci_device.h"
#include "iommu/iommu_core.h"

namespace iommu::testtopo {

class TestPciDevice final : public hw::PciDevice {
 public:
  using hw::PciDevice::Identity;
  TestPciDevice(hw::PciAddress address, const Identity& id) : hw::PciDevice(address, id) {}
};

// What one function is. Build with the factories below and the chained modifiers.
struct Fn {
  hw::PcieType type = hw::PcieType::kEndpoint;
  bool bridge = false;
  uint8_t secondary = 0;
  bool multifunction = false;
  std::optional<std::pair<uint16_t, uint16_t>> acs;  // capability, control
  std::optional<bool> quirk;
  std::vector<uint8_t> aliases;  // devfns on the same bus

  // An ACS capability; by default SV|RR|CR|UF implemented and enabled.
  Fn& Acs(uint16_t cap = hw::kAcsIsolationFlags, uint16_t ctrl = hw::kAcsIsolationFlags) {
    acs = {cap, ctrl};
    return *this;
  }
  Fn& Multi() {
    multifunction = true;
    return *this;
  }
  Fn& Quirk(bool isolated) {
    quirk = isolated;
    return *this;
  }
  Fn& Alias(uint8_t dev, uint8_t fn) {
    aliases.push_back(hw::MakeDevfn(dev, fn));
    return *this;
  }
};

inline Fn Bridge(hw::PcieType type, uint8_t secondary) {
  Fn f;
  f.type = type;
  f.bridge = true;
  f.secondary = secondary;
  return f;
}
inline Fn RootPort(uint8_t secondary) { return Bridge(hw::PcieType::kRootPort, secondary); }
inline Fn UpstreamPort(uint8_t secondary) { return Bridge(hw::PcieType::kUpstreamPort, secondary); }
inline Fn DownstreamPort(uint8_t secondary) { return Bridge(hw::PcieType::kDownstreamPort, secondary); }
inline Fn PcieToPciBridge(uint8_t secondary) { return Bridge(hw::PcieType::kPcieToPciBridge, secondary); }
inline Fn PciToPcieBridge(uint8_t secondary) { return Bridge(hw::PcieType::kPciToPcieBridge, secondary); }
inline Fn ConventionalBridge(uint8_t secondary) { return Bridge(hw::PcieType::kConventional, secondary); }
inline Fn Endpoint() { return Fn{}; }
inline Fn RcIntegratedEndpoint() {
  Fn f;
  f.type = hw::PcieType::kRcIntegratedEndpoint;
  return f;
}
inline Fn Conventional() {
  Fn f;
  f.type = hw::PcieType::kConventional;
  return f;
}

// "BB:DD.F" (domain 0).
inline hw::PciAddress ParseBdf(std::string_view bdf) {
  unsigned bus = 0, dev = 0, fn = 0;
  if (std::sscanf(std::string(bdf).c_str(), "%x:%x.%x", &bus, &dev, &fn) != 3) {
    std::fprintf(stderr, "testing_topology: bad bdf %.*s\n", static_cast<int>(bdf.size()), bdf.data());
    std::abort();
  }
  return hw::PciAddress{0, static_cast<uint8_t>(bus), hw::MakeDevfn(static_cast<uint8_t>(dev), static_cast<uint8_t>(fn))};
}

inline vb::RefPtr<TestPciDevice> MakePci(std::string_view bdf, const Fn& f) {
  TestPciDevice::Identity id;
  id.vendor_id = 0x1b36;
  id.device_id = 0x0001;
  id.header_type = f.bridge ? 1 : 0;
  id.class_code = f.bridge ? 0x060400 : 0x020000;
  id.pcie_type = f.type;
  id.multifunction = f.multifunction;
  id.secondary_bus_number = f.secondary;
  auto dev = vb::MakeRef<TestPciDevice>(ParseBdf(bdf), id);
  if (f.acs) dev->set_acs(f.acs->first, f.acs->second);
  dev->set_acs_quirk(f.quirk);
  for (uint8_t a : f.aliases) dev->add_dma_alias(a);
  return dev;
}

// "0000:01:00.0" → "01:00.0"; platform names unchanged.
inline std::string ShortName(const std::string& name) {
  return name.rfind("0000:", 0) == 0 ? name.substr(5) : name;
}

using Layout = std::vector<std::pair<int, std::vector<std::string>>>;

// Every registered group as (id, short member names sorted), by id.
inline Layout GroupLayout(const IommuCore& core) {
  Layout out;
  for (const auto& g : core.Groups()) {
    std::vector<std::string> names;
    for (const auto& d : g->Devices()) names.push_back(ShortName(d->name()));
    out.emplace_back(g->id(), std::move(names));
  }
  return out;
}

}  // namespace iommu::testtopo
