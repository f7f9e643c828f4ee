// vfio::pci::VirtualConfig: the user's view of one function's config space (Linux: vdev->vconfig
// plus the per-capability perm_bits tables of vfio_pci_config.c). For every byte it holds a shadow
// value and two bit masks: `virt` bits are read from / written to the shadow, `write` bits may be
// written by the user (virtual ones into the shadow, the others through to the hardware). Bits
// that are neither read through from the hardware and ignore writes. Built from the hardware's
// config bytes at first open; see docs/design/0006-vfio-pci-config-and-irqs.md for the table.
//
// Plain data, owned by a VfioPciDevice and guarded by its device set's lock.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "hw/pci_device.h"

namespace vfio::pci {

class VirtualConfig {
 public:
  // `phys`: the hardware's config bytes (dev.config_size() of them).
  void Build(const hw::PciDevice& dev, std::span<const uint8_t> phys);

  uint32_t size() const { return static_cast<uint32_t>(shadow_.size()); }
  // Whether any bit of [off, off+sz) reads through from the hardware.
  bool NeedsHardware(uint32_t off, unsigned sz) const;
  // The user's value of an aligned piece, given the hardware's value of the same piece.
  uint32_t Merge(uint32_t off, unsigned sz, uint32_t hw_value) const;
  // Applies a user write to the virtual bits; returns the mask of bits that go to the hardware.
  uint32_t ApplyWrite(uint32_t off, unsigned sz, uint32_t value);
  // Hardware bits that are write-1-to-clear and not the user's to write: a read-modify-write of
  // the hardware must write them as 0.
  uint32_t HardwareW1c(uint32_t off, unsigned sz) const;

  // Re-applies the BAR rules to the shadow BARs and the ROM BAR (after a user write): the
  // address bits below each BAR's size read as zero, the type bits are fixed, unimplemented
  // BARs (and the absent ROM) read 0.
  void NormalizeBars();

  uint32_t Get(uint32_t off, unsigned sz) const;
  void Set(uint32_t off, unsigned sz, uint32_t v);

  // Capability positions in the user's view (0 = absent or hidden).
  uint8_t pm() const { return pm_; }
  uint8_t msi() const { return msi_; }
  uint8_t msix() const { return msix_; }
  uint8_t pcie() const { return pcie_; }
  uint8_t first_cap() const { return first_cap_; }
  // Standard capabilities the user sees, in chain order (id, offset).
  const std::vector<std::pair<uint8_t, uint8_t>>& visible_caps() const { return visible_; }

 private:
  void SetPerm(uint32_t off, unsigned sz, uint32_t virt, uint32_t write);
  void Raw(uint32_t off, uint32_t len);  // gap / hidden bytes: hardware read and write

  hw::BarSpec bars_[6];
  std::vector<uint8_t> shadow_;
  std::vector<uint8_t> virt_;
  std::vector<uint8_t> write_;
  std::vector<uint8_t> w1c_;
  uint8_t pm_ = 0, msi_ = 0, msix_ = 0, pcie_ = 0, first_cap_ = 0;
  std::vector<std::pair<uint8_t, uint8_t>> visible_;
};

}  // namespace vfio::pci
