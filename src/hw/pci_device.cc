#include "hw/pci_device.h"

namespace hw {

PciDevice::PciDevice(PciAddress address, const Identity& id)
    : Device(address.ToString(), BusType::kPci),
      address_(address),
      vendor_id_(id.vendor_id),
      device_id_(id.device_id),
      class_code_(id.class_code),
      header_type_(id.header_type),
      pcie_type_(id.pcie_type),
      multifunction_(id.multifunction),
      secondary_bus_number_(id.secondary_bus_number) {}

PciDevice::~PciDevice() = default;

std::optional<uint16_t> PciDevice::acs_capability() const { return acs_cap_; }
std::optional<uint16_t> PciDevice::acs_control() const { return acs_ctrl_; }

void PciDevice::set_acs(uint16_t capability, uint16_t control) {
  acs_cap_ = capability;
  acs_ctrl_ = control;
}

}  // namespace hw
