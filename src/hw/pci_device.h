// hw::PciDevice: one PCI function: its address, its place in the hierarchy (the bus it sits on
// and, for bridges, the bus behind it), its config space, BARs and interrupt pins/vectors.
// Endpoints with behaviour (edu, the test endpoint) subclass it and handle BAR accesses.
//
// Locks: state_mu_ (kDeviceState) guards config space, BAR contents that are not shared memory,
// and interrupt state. MMIO and config handlers run on the caller's thread with it held.
// (Topology fields are fixed once the device is plugged in and need no lock.)
//
// NOTE for implementers: this header is the contract the IOMMU core's group formation uses; the
// topology accessors below must keep their names and meaning.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "hw/device.h"
#include "hw/pci_bus.h"
#include "hw/pci_types.h"

namespace hw {

class PciBus;

class PciDevice : public Device {
 public:
  ~PciDevice() override;

  // ---- identity and topology (fixed while plugged in) ----
  const PciAddress& address() const { return address_; }
  uint32_t requester_id() const override { return address_.requester_id(); }
  PciBus* bus() const { return bus_; }                    // the bus this function sits on
  PciBus* secondary_bus() const { return secondary_; }    // bridges: the bus behind; else null
  bool is_bridge() const { return header_type_ == 1; }
  uint8_t secondary_bus_number() const { return secondary_bus_number_; }
  PcieType pcie_type() const { return pcie_type_; }
  bool is_pcie() const { return pcie_type_ != PcieType::kConventional; }
  bool multifunction() const { return multifunction_; }   // header type bit 7
  uint16_t vendor_id() const { return vendor_id_; }
  uint16_t device_id() const { return device_id_; }
  uint32_t class_code() const { return class_code_; }     // 24 bits: base, sub, prog-if

  // ACS: nullopt when the function has no ACS capability.
  std::optional<uint16_t> acs_capability() const;
  std::optional<uint16_t> acs_control() const;
  // Gives the function an ACS extended capability with these capability and control registers.
  void set_acs(uint16_t capability, uint16_t control);
  // Simulated device-specific quirk (Linux pci_dev_specific_acs_enabled): when set, the answer of
  // the "ACS enabled" test for this device, whatever its capability says.
  std::optional<bool> acs_quirk() const { return acs_quirk_; }
  void set_acs_quirk(std::optional<bool> v) { acs_quirk_ = v; }
  // Extra DMA alias functions on the same bus (Linux dma_alias_mask), as devfns.
  const std::vector<uint8_t>& dma_aliases() const { return dma_aliases_; }
  void add_dma_alias(uint8_t devfn) { dma_aliases_.push_back(devfn); }

 protected:
  struct Identity {
    uint16_t vendor_id = 0;
    uint16_t device_id = 0;
    uint32_t class_code = 0;
    uint8_t header_type = 0;   // 0 endpoint, 1 bridge (bit 7 multifunction is separate)
    PcieType pcie_type = PcieType::kConventional;
    bool multifunction = false;
    uint8_t secondary_bus_number = 0;  // bridges: the bus number behind the bridge
  };
  PciDevice(PciAddress address, const Identity& id);

 private:
  friend class Machine;
  friend class PciBus;

  PciAddress address_;
  PciBus* bus_ = nullptr;
  PciBus* secondary_ = nullptr;
  uint16_t vendor_id_;
  uint16_t device_id_;
  uint32_t class_code_;
  uint8_t header_type_;
  PcieType pcie_type_;
  bool multifunction_;
  uint8_t secondary_bus_number_;
  std::optional<bool> acs_quirk_;
  std::optional<uint16_t> acs_cap_;   // TODO(hw): live in the config space's ACS capability
  std::optional<uint16_t> acs_ctrl_;
  std::vector<uint8_t> dma_aliases_;
};

}  // namespace hw
