#include "hw/config_space.h"

#include <cassert>

#include "hw/pci_regs.h"

namespace hw {

ConfigSpace::ConfigSpace(uint32_t visible_size)
    : visible_size_(visible_size),
      bytes_(kExpressSize, 0),
      wmask_(kExpressSize, 0),
      w1cmask_(kExpressSize, 0) {
  assert(visible_size == kConventionalSize || visible_size == kExpressSize);
}

namespace {
uint32_t LoadLe(const std::vector<uint8_t>& v, uint32_t offset, unsigned size) {
  assert(size <= 4 && offset + size <= v.size());
  uint32_t r = 0;
  for (unsigned i = 0; i < size; ++i) r |= uint32_t{v[offset + i]} << (8 * i);
  return r;
}
void StoreLe(std::vector<uint8_t>& v, uint32_t offset, unsigned size, uint32_t value) {
  assert(size <= 4 && offset + size <= v.size());
  for (unsigned i = 0; i < size; ++i) v[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}
}  // namespace

uint32_t ConfigSpace::Get(uint32_t offset, unsigned size) const { return LoadLe(bytes_, offset, size); }
void ConfigSpace::Set(uint32_t offset, unsigned size, uint32_t value) { StoreLe(bytes_, offset, size, value); }

void ConfigSpace::SetWritable(uint32_t offset, unsigned size, uint32_t mask) {
  StoreLe(wmask_, offset, size, mask);
  // Keep the two masks disjoint: RW wins where a caller re-declares a register.
  StoreLe(w1cmask_, offset, size, LoadLe(w1cmask_, offset, size) & ~mask);
}

void ConfigSpace::SetW1c(uint32_t offset, unsigned size, uint32_t mask) {
  StoreLe(w1cmask_, offset, size, mask);
  StoreLe(wmask_, offset, size, LoadLe(wmask_, offset, size) & ~mask);
}

uint32_t ConfigSpace::writable(uint32_t offset, unsigned size) const { return LoadLe(wmask_, offset, size); }
uint32_t ConfigSpace::w1c(uint32_t offset, unsigned size) const { return LoadLe(w1cmask_, offset, size); }

vb::Result<void> ConfigSpace::CheckAccess(uint32_t offset, unsigned size, uint32_t visible_size) {
  if (size != 1 && size != 2 && size != 4) return vb::Err(EINVAL, "config: access size not 1/2/4");
  if (offset & (size - 1)) return vb::Err(EINVAL, "config: unaligned access");
  if (offset >= visible_size || size > visible_size - offset)
    return vb::Err(EINVAL, "config: offset beyond config space");
  return vb::Ok();
}

vb::Result<uint32_t> ConfigSpace::Read(uint32_t offset, unsigned size) const {
  TRY(CheckAccess(offset, size, visible_size_));
  return Get(offset, size);
}

vb::Result<void> ConfigSpace::Write(uint32_t offset, unsigned size, uint32_t value) {
  TRY(CheckAccess(offset, size, visible_size_));
  for (unsigned i = 0; i < size; ++i) {
    const uint8_t v = static_cast<uint8_t>(value >> (8 * i));
    const uint8_t wm = wmask_[offset + i];
    const uint8_t cm = w1cmask_[offset + i];
    uint8_t& b = bytes_[offset + i];
    b = static_cast<uint8_t>(((b & ~wm) | (v & wm)) & ~(v & cm));
  }
  return vb::Ok();
}

std::optional<uint8_t> ConfigSpace::FindCapability(uint8_t id) const {
  if (!(Get16(pci::kStatus) & pci::kStatusCapList)) return std::nullopt;
  uint8_t pos = Get8(pci::kCapabilityList) & ~3u;
  // 48 = (256 - 64) / 4: the most capabilities that fit; bounds a malformed loop.
  for (int ttl = 48; ttl > 0 && pos >= 0x40; --ttl) {
    if (Get8(pos) == id) return pos;
    pos = Get8(pos + 1) & ~3u;
  }
  return std::nullopt;
}

std::optional<uint16_t> ConfigSpace::FindExtCapability(uint16_t id) const {
  uint16_t pos = pci::kExtCapStart;
  for (int ttl = (kExpressSize - pci::kExtCapStart) / 8; ttl > 0; --ttl) {
    const uint32_t header = Get32(pos);
    if (header == 0 || header == 0xffffffffu) return std::nullopt;
    if (pci::ExtCapId(header) == id) return pos;
    pos = pci::ExtCapNext(header);
    if (pos < pci::kExtCapStart) return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace hw
