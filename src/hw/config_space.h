// hw::ConfigSpace: the bytes of one PCI function's configuration space with, per bit, whether
// software may write it and whether a written 1 clears it (RW1C). The visible size is 256 bytes
// for conventional PCI and 4 KiB for PCI Express; storage is always 4 KiB so that an extended
// capability given to a conventional function for a test still has somewhere to live (it is then
// invisible to Read/Write, as on real hardware).
//
// Two faces: Get/Set are the device's own raw access (ignore the masks, never fail); Read/Write
// are the bus's access (size 1/2/4, naturally aligned, inside the visible size; masks apply).
// Not thread-safe: the owning PciDevice guards it with its state lock.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace hw {

class ConfigSpace {
 public:
  static constexpr uint32_t kConventionalSize = 256;
  static constexpr uint32_t kExpressSize = 4096;

  // visible_size: kConventionalSize or kExpressSize.
  explicit ConfigSpace(uint32_t visible_size);

  uint32_t size() const { return visible_size_; }

  // ---- device side: raw, little-endian, ignore masks. offset + size <= kExpressSize. ----
  uint32_t Get(uint32_t offset, unsigned size) const;
  void Set(uint32_t offset, unsigned size, uint32_t value);
  uint8_t Get8(uint32_t offset) const { return static_cast<uint8_t>(Get(offset, 1)); }
  uint16_t Get16(uint32_t offset) const { return static_cast<uint16_t>(Get(offset, 2)); }
  uint32_t Get32(uint32_t offset) const { return Get(offset, 4); }
  void Set8(uint32_t offset, uint8_t v) { Set(offset, 1, v); }
  void Set16(uint32_t offset, uint16_t v) { Set(offset, 2, v); }
  void Set32(uint32_t offset, uint32_t v) { Set(offset, 4, v); }
  // Bits software may write (a 1 bit is RW). Default: everything read-only.
  void SetWritable(uint32_t offset, unsigned size, uint32_t mask);
  // Bits that a written 1 clears (RW1C). A bit is never both writable and RW1C.
  void SetW1c(uint32_t offset, unsigned size, uint32_t mask);
  uint32_t writable(uint32_t offset, unsigned size) const;
  uint32_t w1c(uint32_t offset, unsigned size) const;

  // ---- bus side ----
  // EINVAL: size not 1/2/4, offset not aligned to size, or beyond the visible size.
  static vb::Result<void> CheckAccess(uint32_t offset, unsigned size, uint32_t visible_size);
  vb::Result<uint32_t> Read(uint32_t offset, unsigned size) const;
  // Writes the RW bits, clears the RW1C bits written as 1, leaves read-only bits alone.
  vb::Result<void> Write(uint32_t offset, unsigned size, uint32_t value);

  // Walks the standard capability list (status bit 4, pointer at 0x34) / the extended list at
  // 0x100 with a loop bound, as the kernel's pci_find_capability does. nullopt if absent.
  std::optional<uint8_t> FindCapability(uint8_t id) const;
  std::optional<uint16_t> FindExtCapability(uint16_t id) const;

  std::span<const uint8_t> bytes() const { return {bytes_.data(), visible_size_}; }

  // Copies bytes and masks (used to restore the power-on state on a function reset).
  ConfigSpace(const ConfigSpace&) = default;
  ConfigSpace& operator=(const ConfigSpace&) = default;

 private:
  uint32_t visible_size_;
  std::vector<uint8_t> bytes_;
  std::vector<uint8_t> wmask_;
  std::vector<uint8_t> w1cmask_;
};

}  // namespace hw
