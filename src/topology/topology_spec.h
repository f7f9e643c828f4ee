// topology::TopologySpec: a machine description parsed and validated from a topology file (JSON,
// docs/topology.md), before anything is built. Parsing either yields a complete spec or one
// error line naming the place ("file:line:col" for syntax, "file: /json/pointer" for meaning) and
// the problem; nothing is half-built from a bad file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/kernel_personality.h"
#include "hw/pci_types.h"
#include "iommu/iommu.h"

namespace topology {

struct ReservedSpec {
  uint64_t first = 0;
  uint64_t last = 0;
  std::string type;  // msi, sw-msi, direct, direct-relaxable, reserved
};

struct IommuSpec {
  std::string name;
  iommu::IommuKind kind = iommu::IommuKind::kDmar;  // "kind": "dmar" (default) or "smmu"
  uint64_t pgsize_bitmap = 0;
  unsigned address_bits = 48;
  bool coherent = true;
  bool enforce_cache_coherency = true;
  bool msi_isolated = true;
  std::vector<ReservedSpec> reserved;
};

struct BarEntry {
  int index = 0;
  hw::BarSpec spec;
};

struct PciSpec {
  hw::PciAddress address;
  std::string type;  // host-bridge, root-port, switch-upstream, switch-downstream, pcie-to-pci-bridge,
                     // endpoint, edu, test-endpoint, ioat
  std::optional<uint8_t> secondary_bus;
  bool multifunction = false;
  bool express = true;
  uint16_t vendor = 0x1234;  // vfiobox's generic endpoint ID (docs/topology.md, "Device IDs")
  uint16_t device = 0x7e50;
  uint32_t class_code = 0xff0000;
  std::optional<std::pair<uint16_t, uint16_t>> acs;  // capability, control
  std::optional<bool> acs_quirk;
  std::vector<uint8_t> dma_aliases;  // devfns
  std::string iommu;                 // resolved: inherited from the bridge above when empty
  std::string driver;                // resolved: "pcieport" for PCIe ports when empty
  std::vector<BarEntry> bars;
  uint8_t xfercap = 16;              // ioat: log2 of the largest descriptor
  std::string origin;                // JSON pointer of the entry it came from ("functions" expands one entry)
  bool is_bridge() const { return secondary_bus.has_value(); }
};

struct PlatformSpec {
  std::string name;
  uint32_t stream_id = 0;
  std::string iommu;
  std::string shares_group_with;
  std::string driver;
};

// How vfio-pci offers register BARs for mmap ("register_bars" in the file).
enum class RegisterBars {
  kTrap,    // as Linux: MMAP on every memory BAR; register pages trap and are emulated per access
  kNoMmap,  // register BARs without MMAP (read/write only), for clients that cannot live with
            // trapped mappings, such as QEMU with KVM (docs/qemu.md)
};

struct TopologySpec {
  // "kernel": "6.1" (default) or "6.12": which Linux the machine answers as.
  vb::KernelPersonality kernel = vb::KernelPersonality::kLinux6_1;
  RegisterBars register_bars = RegisterBars::kTrap;
  std::vector<IommuSpec> iommus;
  std::vector<PciSpec> pci;
  std::vector<PlatformSpec> platform;
};

// `origin` names the source in error messages (a file name, or "<default>").
struct ParseError {
  std::string message;  // one line
};

std::optional<TopologySpec> ParseTopology(const std::string& text, const std::string& origin,
                                          ParseError* error);
std::optional<TopologySpec> LoadTopologyFile(const std::string& path, ParseError* error);
// The built-in default machine (docs/topology.md).
const std::string& DefaultTopologyJson();
TopologySpec DefaultTopology();

}  // namespace topology
