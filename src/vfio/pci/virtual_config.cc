#include "vfio/pci/virtual_config.h"

#include <algorithm>

#include "hw/capability_builder.h"
#include "hw/pci_regs.h"

namespace vfio::pci {

namespace p = hw::pci;

namespace {
constexpr uint32_t kAll = 0xffffffffu;

// Bytes a visible standard capability spans in the user's view; 0 hides it. Only capabilities
// whose registers we give a meaning to are shown (the kernel shows more, with a length table;
// the simulated platform has no others).
uint32_t StdCapLength(std::span<const uint8_t> cfg, uint8_t id, uint8_t pos) {
  auto get16 = [&](uint32_t o) { return static_cast<uint16_t>(cfg[o] | cfg[o + 1] << 8); };
  switch (id) {
    case p::kCapIdPm: return p::kPmSizeof;
    case p::kCapIdMsi: {
      const uint16_t flags = get16(pos + p::kMsiFlags);
      const bool is64 = flags & p::kMsiFlags64Bit;
      const bool mask = flags & p::kMsiFlagsMaskBit;
      return mask ? (is64 ? 24u : 20u) : (is64 ? 14u : 10u);
    }
    case p::kCapIdMsix: return p::kMsixSizeof;
    case p::kCapIdExp: {
      const uint16_t flags = get16(pos + p::kExpFlags);
      return (flags & p::kExpFlagsVersMask) >= 2 ? p::kExpSizeofV2 : 20u;
    }
    case p::kCapIdVendor: return std::max<uint32_t>(cfg[pos + 2], 3);
    default: return 0;  // hidden
  }
}

uint32_t ExtCapLength(std::span<const uint8_t> cfg, uint16_t id, uint16_t pos) {
  auto get32 = [&](uint32_t o) { return uint32_t{cfg[o]} | cfg[o + 1] << 8 | cfg[o + 2] << 16 | uint32_t{cfg[o + 3]} << 24; };
  switch (id) {
    case p::kExtCapIdAcs: {
      const uint16_t cap = static_cast<uint16_t>(get32(pos + p::kAcsCap));
      if (!(cap & hw::kAcsEc)) return 8;
      uint32_t bits = cap >> 8;
      if (bits == 0) bits = 256;
      return 8 + (bits + 31) / 32 * 4;
    }
    case 0x000b: return std::max<uint32_t>(get32(pos + 4) >> 20, 8);  // vendor-specific
    default: return 0;
  }
}
}  // namespace

uint32_t VirtualConfig::Get(uint32_t off, unsigned sz) const {
  uint32_t v = 0;
  for (unsigned i = 0; i < sz; ++i) v |= uint32_t{shadow_[off + i]} << (8 * i);
  return v;
}

void VirtualConfig::Set(uint32_t off, unsigned sz, uint32_t v) {
  for (unsigned i = 0; i < sz; ++i) shadow_[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

void VirtualConfig::SetPerm(uint32_t off, unsigned sz, uint32_t virt, uint32_t write) {
  for (unsigned i = 0; i < sz; ++i) {
    virt_[off + i] = static_cast<uint8_t>(virt >> (8 * i));
    write_[off + i] = static_cast<uint8_t>(write >> (8 * i));
  }
}

void VirtualConfig::Raw(uint32_t off, uint32_t len) {
  for (uint32_t i = off; i < off + len && i < size(); ++i) {
    virt_[i] = 0;
    write_[i] = 0xff;
  }
}

void VirtualConfig::Build(const hw::PciDevice& dev, std::span<const uint8_t> phys) {
  const uint32_t n = static_cast<uint32_t>(phys.size());
  shadow_.assign(phys.begin(), phys.end());
  virt_.assign(n, 0);
  write_.assign(n, 0);
  w1c_.assign(n, 0);
  pm_ = msi_ = msix_ = pcie_ = first_cap_ = 0;
  visible_.clear();

  // ---- header ----
  SetPerm(p::kVendorId, 4, kAll, 0);
  SetPerm(p::kCommand, 2, p::kCommandIntxDisable, 0xffff);
  SetPerm(p::kStatus, 2, p::kStatusCapList, 0);
  for (uint32_t i = 0; i < 2; ++i) w1c_[p::kStatus + i] = static_cast<uint8_t>(p::kStatusW1cBits >> (8 * i));
  SetPerm(p::kCacheLineSize, 2, 0, 0xffff);  // cache line, latency timer
  SetPerm(p::kBist, 1, 0, 0xff);
  for (int i = 0; i < p::kType0Bars; ++i) SetPerm(p::kBar0 + 4 * i, 4, kAll, kAll);
  SetPerm(p::kRomAddress, 4, kAll, kAll);
  Set(p::kRomAddress, 4, 0);  // no expansion ROM in the simulated platform
  SetPerm(p::kCapabilityList, 1, 0xff, 0);
  SetPerm(p::kInterruptLine, 1, 0xff, 0xff);
  SetPerm(p::kInterruptPin, 1, 0xff, 0);
  Set(p::kInterruptPin, 1, dev.interrupt_pin());
  for (int i = 0; i < p::kType0Bars; ++i) bars_[i] = dev.bar(i);
  NormalizeBars();

  // Everything past the header defaults to raw pass-through (gaps, hidden capabilities).
  Raw(0x40, n - 0x40);

  // ---- standard capabilities ----
  std::vector<std::pair<uint8_t, uint8_t>> all;
  if (phys[p::kStatus] & p::kStatusCapList) {
    uint8_t pos = phys[p::kCapabilityList] & 0xfc;
    for (int guard = 0; pos >= 0x40 && guard < 48; ++guard) {
      all.push_back({phys[pos], pos});
      pos = phys[pos + 1] & 0xfc;
    }
  }
  for (auto [id, pos] : all) {
    const uint32_t len = StdCapLength(phys, id, pos);
    if (len == 0 || pos + len > 0x100) continue;
    visible_.push_back({id, pos});
    SetPerm(pos, 2, 0xffff, 0);  // id and next pointer: virtual, read-only
    switch (id) {
      case p::kCapIdPm:
        pm_ = pos;
        SetPerm(pos + p::kPmPmc, 2, 0, 0);
        // The power state is the kernel's to change; the user's writes land in the shadow.
        SetPerm(pos + p::kPmCtrl, 2, p::kPmCtrlStateMask, 0xffff);
        for (uint32_t i = 0; i < 2; ++i) w1c_[pos + p::kPmCtrl + i] = static_cast<uint8_t>(p::kPmCtrlPmeStatus >> (8 * i));
        SetPerm(pos + 6, 2, 0, 0);
        break;
      case p::kCapIdMsi: {
        msi_ = pos;
        const uint16_t flags = static_cast<uint16_t>(Get(pos + p::kMsiFlags, 2));
        const bool is64 = flags & p::kMsiFlags64Bit;
        const bool mask = flags & p::kMsiFlagsMaskBit;
        SetPerm(pos + p::kMsiFlags, 2, 0xffff, p::kMsiFlagsEnable | p::kMsiFlagsQsize);
        Set(pos + p::kMsiFlags, 2, flags & ~(p::kMsiFlagsEnable | p::kMsiFlagsQsize));
        SetPerm(pos + p::kMsiAddressLo, 4, kAll, 0xfffffffcu);
        Set(pos + p::kMsiAddressLo, 4, 0);
        uint32_t data = p::kMsiData32;
        if (is64) {
          SetPerm(pos + p::kMsiAddressHi, 4, kAll, kAll);
          Set(pos + p::kMsiAddressHi, 4, 0);
          data = p::kMsiData64;
        }
        SetPerm(pos + data, 2, 0xffff, 0xffff);
        SetPerm(pos + data + 2, 2, 0xffff, 0);
        Set(pos + data, 4, 0);
        if (mask) {
          SetPerm(pos + data + 4, 4, 0, kAll);  // mask bits: through to the hardware
          SetPerm(pos + data + 8, 4, 0, 0);     // pending bits: read-only
        }
        break;
      }
      case p::kCapIdMsix:
        msix_ = pos;
        // Read-only to the user: MSI-X is enabled through SET_IRQS only.
        for (uint32_t i = pos + 2u; i < pos + p::kMsixSizeof; ++i) virt_[i] = write_[i] = 0;
        break;
      case p::kCapIdExp: {
        pcie_ = pos;
        for (uint32_t i = pos + 2; i < pos + len; ++i) virt_[i] = write_[i] = 0;
        // Device control: writable but for phantom functions; FLR and max payload are virtual.
        constexpr uint16_t kPhantom = 0x0200, kPayload = 0x00e0;
        SetPerm(pos + p::kExpDevCtl, 2, p::kExpDevCtlBcrFlr | kPayload, 0xffff & ~kPhantom);
        Set(pos + p::kExpDevCtl, 2, Get(pos + p::kExpDevCtl, 2) & ~p::kExpDevCtlBcrFlr);
        w1c_[pos + p::kExpDevSta] = 0x0f;
        SetPerm(pos + p::kExpLnkCtl, 2, 0, 0xffff);
        if (len >= p::kExpSizeofV2) {
          constexpr uint16_t kAriForward = 0x0020;
          SetPerm(pos + p::kExpDevCtl2, 2, 0, 0xffff & ~kAriForward);
          SetPerm(pos + p::kExpLnkCtl2, 2, 0, 0xffff);
          for (uint32_t i = 0; i < 2; ++i) w1c_[pos + p::kExpSltSta + i] = static_cast<uint8_t>(0x011f >> (8 * i));
          w1c_[pos + p::kExpRtSta + 2] = 0x01;
        }
        break;
      }
      case p::kCapIdVendor:
        Raw(pos + 2, len - 2);
        break;
    }
  }
  // The chain as the user sees it: hidden capabilities are skipped.
  first_cap_ = visible_.empty() ? 0 : visible_[0].second;
  Set(p::kCapabilityList, 1, first_cap_);
  for (size_t i = 0; i < visible_.size(); ++i)
    Set(visible_[i].second + 1u, 1, i + 1 < visible_.size() ? visible_[i + 1].second : 0);
  Set(p::kStatus, 2, visible_.empty() ? 0 : p::kStatusCapList);

  // ---- extended capabilities ----
  if (n > hw::ConfigSpace::kConventionalSize) {
    auto get32 = [&](uint32_t o) { return uint32_t{phys[o]} | phys[o + 1] << 8 | phys[o + 2] << 16 | uint32_t{phys[o + 3]} << 24; };
    std::vector<std::pair<uint32_t, uint16_t>> vis;  // (header with next cleared, pos)
    uint16_t pos = p::kExtCapStart;
    for (int guard = 0; pos >= p::kExtCapStart && guard < 480; ++guard) {
      const uint32_t h = get32(pos);
      if (h == 0 || h == kAll) break;
      const uint32_t len = ExtCapLength(phys, p::ExtCapId(h), pos);
      if (len != 0 && pos + len <= n) {
        vis.push_back({h & 0x000fffffu, pos});
        // Bodies read-only (the kernel's default for these).
        for (uint32_t i = pos + 4u; i < pos + len; ++i) virt_[i] = write_[i] = 0;
      }
      pos = p::ExtCapNext(h);
    }
    for (size_t i = 0; i < vis.size(); ++i) {
      const uint32_t next = i + 1 < vis.size() ? vis[i + 1].second : 0;
      SetPerm(vis[i].second, 4, kAll, 0);
      Set(vis[i].second, 4, vis[i].first | next << 20);
    }
    if (vis.empty() || vis[0].second != p::kExtCapStart) {
      // A hidden first capability leaves a null header that still links to the first visible.
      SetPerm(p::kExtCapStart, 4, kAll, 0);
      Set(p::kExtCapStart, 4, vis.empty() ? 0 : uint32_t{vis[0].second} << 20);
    }
  }
}

void VirtualConfig::NormalizeBars() {
  for (int i = 0; i < p::kType0Bars; ++i) {
    const uint32_t reg = p::kBar0 + 4 * static_cast<uint32_t>(i);
    const hw::BarSpec& b = bars_[i];
    const uint64_t addr_mask = b.size ? ~(b.size - 1) : 0;
    switch (b.kind) {
      case hw::BarKind::kNone:
        Set(reg, 4, 0);
        break;
      case hw::BarKind::kIo:
        Set(reg, 4, (Get(reg, 4) & static_cast<uint32_t>(addr_mask) & p::kBarIoMask) | p::kBarSpaceIo);
        break;
      case hw::BarKind::kMem32:
        Set(reg, 4, (Get(reg, 4) & static_cast<uint32_t>(addr_mask) & p::kBarMemMask) |
                        (b.prefetchable ? p::kBarMemPrefetch : 0));
        break;
      case hw::BarKind::kMem64:
        Set(reg, 4, (Get(reg, 4) & static_cast<uint32_t>(addr_mask) & p::kBarMemMask) | p::kBarMemType64 |
                        (b.prefetchable ? p::kBarMemPrefetch : 0));
        Set(reg + 4, 4, Get(reg + 4, 4) & static_cast<uint32_t>(addr_mask >> 32));
        ++i;  // the upper half is done
        break;
    }
  }
  Set(p::kRomAddress, 4, 0);
}

bool VirtualConfig::NeedsHardware(uint32_t off, unsigned sz) const {
  for (unsigned i = 0; i < sz; ++i)
    if (virt_[off + i] != 0xff) return true;
  return false;
}

uint32_t VirtualConfig::Merge(uint32_t off, unsigned sz, uint32_t hw_value) const {
  uint32_t v = 0;
  for (unsigned i = 0; i < sz; ++i) {
    const uint8_t h = static_cast<uint8_t>(hw_value >> (8 * i));
    const uint8_t b = static_cast<uint8_t>((h & ~virt_[off + i]) | (shadow_[off + i] & virt_[off + i]));
    v |= uint32_t{b} << (8 * i);
  }
  return v;
}

uint32_t VirtualConfig::ApplyWrite(uint32_t off, unsigned sz, uint32_t value) {
  uint32_t pass = 0;
  for (unsigned i = 0; i < sz; ++i) {
    const uint8_t w = write_[off + i];
    const uint8_t vm = w & virt_[off + i];
    const uint8_t in = static_cast<uint8_t>(value >> (8 * i));
    shadow_[off + i] = static_cast<uint8_t>((shadow_[off + i] & ~vm) | (in & vm));
    pass |= uint32_t{static_cast<uint8_t>(w & ~virt_[off + i])} << (8 * i);
  }
  return pass;
}

uint32_t VirtualConfig::HardwareW1c(uint32_t off, unsigned sz) const {
  uint32_t v = 0;
  for (unsigned i = 0; i < sz; ++i) v |= uint32_t{w1c_[off + i]} << (8 * i);
  return v;
}

}  // namespace vfio::pci
