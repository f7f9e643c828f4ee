// hw::InterruptSink: where a PCI function's interrupts go. The layer above (vfio-pci) installs one
// per device with PciDevice::SetInterruptSink and turns the calls into eventfd signals.
//
// Calls are made with no hw lock held, one at a time per device and in the order the device
// raised them; a sink may call back into the device (e.g. set the command register's INTx-disable
// bit to mask a level interrupt, as vfio-pci's INTx handler does): such a nested call's own
// interrupts are delivered after the current call returns.
#pragma once

#include <cstdint>

namespace hw {

class InterruptSink {
 public:
  virtual ~InterruptSink() = default;
  // The function's effective INTx line changed level (pin asserted and not disabled by the
  // command register's INTx-disable bit, and MSI/MSI-X off).
  virtual void Intx(bool level) = 0;
  // One MSI message for `vector` (< the enabled vector count).
  virtual void Msi(uint32_t vector) = 0;
  // One MSI-X message for table entry `vector`.
  virtual void MsiX(uint32_t vector) = 0;
};

}  // namespace hw
