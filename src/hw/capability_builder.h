// hw::CapabilityBuilder: lays out a function's capability lists in its ConfigSpace, the way
// firmware-visible hardware has them: the standard list from 0x40 (pointer at 0x34, status bit 4)
// and the extended list from 0x100, each capability dword-aligned and chained by its next pointer,
// so an lspci -xxx style walk decodes it. Each Add* writes the capability's registers with their
// reset values and their RW / RW1C masks, and returns the capability's offset.
//
// Owned by the PciDevice whose config space it edits; used under that device's state lock.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "hw/config_space.h"
#include "hw/pci_types.h"

namespace hw {

struct PmSpec {
  bool d1 = false;
  bool d2 = false;
  bool no_soft_reset = true;  // D3hot → D0 keeps state (so PM reset is not a reset)
};

struct PcieCapSpec {
  PcieType type = PcieType::kEndpoint;  // must not be kConventional
  uint8_t link_speed = 3;               // 1: 2.5 GT/s, 2: 5, 3: 8, 4: 16
  uint8_t link_width = 1;               // x1 .. x32
  bool flr = false;                     // function-level reset capable (endpoints)
  bool slot = false;                    // slot implemented (root / downstream ports)
  uint8_t port_number = 0;
};

struct MsiSpec {
  uint8_t vectors = 1;          // multiple message capable: 1, 2, 4, 8, 16 or 32
  bool is_64bit = true;
  bool per_vector_mask = false;
};

struct MsixSpec {
  uint16_t table_size = 1;      // 1 .. 2048 vectors
  uint8_t table_bar = 0;        // BIR
  uint32_t table_offset = 0;    // 8-byte aligned, within the BAR
  uint8_t pba_bar = 0;
  uint32_t pba_offset = 0;      // 8-byte aligned, within the BAR
};

class CapabilityBuilder {
 public:
  explicit CapabilityBuilder(ConfigSpace& cs) : cs_(&cs) {}
  // Rebinds to another config space with the same layout (used after copying one).
  void Rebind(ConfigSpace& cs) { cs_ = &cs; }

  // Each returns the new capability's offset. ENOSPC: the list is full; EINVAL: a bad spec.
  vb::Result<uint8_t> AddStandard(uint8_t id, uint8_t length);  // header only; body zero, RO
  vb::Result<uint8_t> AddPm(const PmSpec& spec);
  vb::Result<uint8_t> AddPcie(const PcieCapSpec& spec);
  vb::Result<uint8_t> AddMsi(const MsiSpec& spec);
  vb::Result<uint8_t> AddMsix(const MsixSpec& spec);

  vb::Result<uint16_t> AddExtended(uint16_t id, uint8_t version, uint16_t length);
  // ACS: capability register RO, control register RW for the bits the capability has.
  vb::Result<uint16_t> AddAcs(uint16_t capability, uint16_t control);

  // Bytes a 32/64-bit MSI capability with or without per-vector masking occupies.
  static uint8_t MsiLength(const MsiSpec& spec);

 private:
  ConfigSpace* cs_;
  uint16_t next_std_ = 0x40;    // first free byte for a standard capability
  uint8_t last_std_ = 0;       // offset of the last standard capability (0: none yet)
  uint16_t next_ext_ = 0x100;
  uint16_t last_ext_ = 0;
};

}  // namespace hw
