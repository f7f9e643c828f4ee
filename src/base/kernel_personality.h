// vb::KernelPersonality: which Linux a machine answers as (ARCHITECTURE.md, "Decisions already
// made"). 6.1 is the default and the ABI of the machine's <linux/vfio.h>; 6.12 adds iommufd
// (/dev/iommu) and the VFIO device cdevs (/dev/vfio/devices/vfioN) and answers the legacy
// container, group and vfio-pci paths as 6.12 does where it differs from 6.1
// (docs/kernel-6.12.md lists every such place). Chosen once per machine: the topology's "kernel"
// key, `vfiobox run --kernel`, or $VFIOBOX_KERNEL.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vb {

enum class KernelPersonality : uint8_t { kLinux6_1, kLinux6_12 };

// "6.1" / "6.12".
constexpr std::string_view KernelPersonalityName(KernelPersonality k) {
  return k == KernelPersonality::kLinux6_12 ? "6.12" : "6.1";
}
constexpr std::optional<KernelPersonality> ParseKernelPersonality(std::string_view s) {
  if (s == "6.1") return KernelPersonality::kLinux6_1;
  if (s == "6.12") return KernelPersonality::kLinux6_12;
  return std::nullopt;
}
// Whether the personality has iommufd and the VFIO device cdev.
constexpr bool HasIommufd(KernelPersonality k) { return k == KernelPersonality::kLinux6_12; }

}  // namespace vb
