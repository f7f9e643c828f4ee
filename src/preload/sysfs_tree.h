// preload::SysfsDescription and GenerateSysfsTree: the machine as sysfs shows it, and the real
// directory tree (files, relative symlinks like the kernel's) that the preload library serves
// under /sys and /dev/vfio by rewriting paths into it (docs/design/0005-preload-path-rewrite.md).
//
// The description is plain data so that the system layer fills it from its own model; the
// generator only formats. Formats follow Linux 6.1 (drivers/pci/pci-sysfs.c, iommu.c, module
// params): "0x%04x\n" ids, "0x%06x\n" class, 13 "0x%016llx 0x%016llx 0x%016llx\n" resource lines
// for an endpoint (17 for a bridge), "(null)\n" for an unset driver_override, and so on.
//
// No state, no locks: GenerateSysfsTree writes one immutable snapshot; a change (bind, unbind,
// driver_override) is served by generating a new snapshot in a fresh directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace preload {

// One line of the `resource` file, as the kernel's struct resource (all zero: unused).
struct PciResource {
  uint64_t start = 0;
  uint64_t end = 0;    // inclusive
  uint64_t flags = 0;  // IORESOURCE_* (IO 0x100, MEM 0x200, PREFETCH 0x2000, MEM_64 0x100000)
};

struct PciFunctionDesc {
  std::string bdf;                   // "0000:01:00.0"
  std::vector<std::string> parents;  // bridge BDFs from the root bus down; empty: on a root bus
  uint16_t vendor = 0, device = 0, subsystem_vendor = 0, subsystem_device = 0;
  uint32_t class_code = 0;  // 24 bits: base, sub, prog-if
  uint8_t revision = 0;
  unsigned irq = 0;
  int numa_node = -1;
  unsigned enable_count = 0;     // the `enable` file
  bool is_bridge = false;        // a bridge prints 17 resource lines (its windows too)
  std::string driver;            // "" when unbound
  std::string driver_override;   // "" when unset (shows "(null)")
  std::optional<int> iommu_group;
  std::vector<uint8_t> config;   // the `config` file: 256 or 4096 bytes
  std::vector<PciResource> resources;  // index 0-5 BARs, 6 ROM, 7-12 IOV, 13-16 bridge windows
};

struct PlatformDeviceDesc {
  std::string name;  // "fee00000.smmu-test" style: the directory name under /sys/devices/platform
  std::string driver;
  std::string driver_override;
  std::optional<int> iommu_group;
};

struct IommuGroupDesc {
  struct Reserved {
    uint64_t start = 0, end = 0;  // inclusive
    std::string type;             // "direct", "direct-relaxable", "reserved", "msi"
  };
  int id = 0;
  std::string type = "DMA";  // default domain type: "DMA", "DMA-FQ", "identity", "blocked"
  std::vector<Reserved> reserved;
};

struct VfioModuleParams {
  bool allow_unsafe_interrupts = false;
  unsigned dma_entry_limit = 65535;
  bool disable_hugepages = false;
  bool enable_unsafe_noiommu_mode = false;
};

struct SysfsDescription {
  std::vector<PciFunctionDesc> pci;
  std::vector<PlatformDeviceDesc> platform;
  // Groups named by devices but missing here are generated with no reserved regions, type DMA.
  std::vector<IommuGroupDesc> iommu_groups;
  VfioModuleParams vfio;
  // The machine has a dmar-kind (intel-iommu) unit: serve intel-iommu's debugfs directory with
  // 6.1's domain_translation_struct (its text comes from the Backend at each open).
  bool intel_iommu_debugfs = false;
  // ...and the functions behind a dmar-kind unit, each with its own directory there holding its
  // domain_translation_struct (the layout of Linux 6.8+, which the kernel's VFIO selftests read;
  // vfiobox serves both, see docs/design/0010-iommu-driver-quirks.md).
  std::vector<std::string> intel_iommu_devices;
};

// intel-iommu's debugfs file of every device's translation (Linux 6.1).
inline constexpr char kDmarDomainTranslationStruct[] = "/sys/kernel/debug/iommu/intel/domain_translation_struct";
inline constexpr char kDmarDebugfsDir[] = "/sys/kernel/debug/iommu/intel/";
// The BDF of a per-device domain_translation_struct path ("" if `path` is not one).
std::string DmarDebugfsDeviceOf(const std::string& path);

// The sysfs files whose writes change the machine (served through preload::SysfsControl).
enum class ControlKind {
  kDriverOverride,  // <dev>/driver_override
  kRemove,          // <dev>/remove
  kReset,           // <dev>/reset
  kDeviceRescan,    // <dev>/rescan
  kBind,            // <bus>/drivers/<drv>/bind
  kUnbind,          // <bus>/drivers/<drv>/unbind
  kNewId,           // <bus>/drivers/<drv>/new_id
  kRemoveId,        // <bus>/drivers/<drv>/remove_id
  kDriversProbe,    // /sys/bus/pci/drivers_probe
  kRescan,          // /sys/bus/pci/rescan
};
const char* ControlKindName(ControlKind kind);

struct ControlFile {
  ControlKind kind;
  std::string path;    // canonical /sys path of the file
  std::string bus;     // "pci" or "platform"
  std::string device;  // BDF or platform name (per-device files)
  std::string driver;  // driver name (driver files)
};

struct DevNode {
  std::string path;  // "/dev/vfio/vfio", "/dev/vfio/7"
  dev_t rdev;        // makedev(10, 196); makedev(kVfioGroupMajor, minor) for groups
  mode_t mode;       // S_IFCHR | permissions, what stat shows
};

// /dev/vfio/<N> majors are dynamic on Linux; this is the one vfiobox shows.
inline constexpr unsigned kVfioGroupMajor = 243;

struct GeneratedTree {
  std::string root;                // the directory holding sys/ and dev/
  dev_t dev = 0;                   // st_dev of the tree's filesystem
  std::vector<std::string> owned;  // absolute paths whose whole subtree the tree serves
  std::map<ino_t, ControlFile> controls;  // control files, by inode in the tree
  std::vector<DevNode> dev_nodes;
};

// Writes the tree for `desc` under `root` (an existing, empty directory): root/sys/...,
// root/dev/vfio/... EINVAL for a malformed BDF or parent chain; filesystem errors as they come.
vb::Result<GeneratedTree> GenerateSysfsTree(const SysfsDescription& desc, const std::string& root);

// The relative symlink target from the link at `link` to `target` (both absolute), as sysfs
// writes it: "/sys/bus/pci/devices/X" → "/sys/devices/pci0000:00/X" gives
// "../../../devices/pci0000:00/X".
std::string RelativeLinkTarget(const std::string& link, const std::string& target);

// Removes a generated tree (best effort; for the creating process at exit).
void RemoveTree(const std::string& root);

}  // namespace preload
