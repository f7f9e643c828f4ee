#include "preload/sysfs_tree.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <set>

namespace preload {
namespace {

constexpr uint64_t kIoresourceMem = 0x200;
constexpr uint64_t kIoresourcePrefetch = 0x2000;
constexpr int kEndpointResourceLines = 13;  // BARs, ROM, IOV BARs (CONFIG_PCI_IOV=y)
constexpr int kBridgeResourceLines = 17;    // ... and the four bridge windows

std::string Fmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return std::string(buf, n < 0 ? 0 : std::min<size_t>(n, sizeof buf - 1));
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

bool ValidBdf(const std::string& bdf) {
  unsigned d, b, s, f;
  char tail;
  return bdf.size() == 12 && sscanf(bdf.c_str(), "%4x:%2x:%2x.%1x%c", &d, &b, &s, &f, &tail) == 4 &&
         s < 32 && f < 8;
}

// Writes files and links under root; every path argument is the logical /sys or /dev path.
class Writer {
 public:
  explicit Writer(std::string root) : root_(std::move(root)) {}

  vb::Result<void> Dir(const std::string& path) {
    if (made_.count(path)) return vb::Ok();
    std::string cur = root_, logical;
    for (const std::string& c : Split(path)) {
      cur += "/" + c;
      logical += "/" + c;
      if (made_.count(logical)) continue;
      if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return vb::Err(errno, "sysfs: mkdir");
      made_.insert(logical);
    }
    return vb::Ok();
  }

  vb::Result<ino_t> File(const std::string& path, const std::string& content, mode_t mode,
                         off_t size = -1) {
    TRY(Dir(path.substr(0, path.rfind('/'))));
    std::string real = root_ + path;
    int fd = open(real.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return vb::Err(errno, "sysfs: create file");
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = write(fd, content.data() + done, content.size() - done);
      if (n < 0) {
        int e = errno;
        close(fd);
        return vb::Err(e, "sysfs: write file");
      }
      done += static_cast<size_t>(n);
    }
    if (size >= 0 && ftruncate(fd, size) != 0) {
      int e = errno;
      close(fd);
      return vb::Err(e, "sysfs: size file");
    }
    struct stat st;
    fstat(fd, &st);
    close(fd);
    // The owner keeps write permission on read-only attributes so that a later generation could
    // rewrite them; what others see (and stat shows) is the kernel's mode otherwise.
    if (chmod(real.c_str(), mode) != 0) return vb::Err(errno, "sysfs: chmod");
    return st.st_ino;
  }

  vb::Result<void> Link(const std::string& link, const std::string& target) {
    TRY(Dir(link.substr(0, link.rfind('/'))));
    std::string real = root_ + link;
    if (symlink(RelativeLinkTarget(link, target).c_str(), real.c_str()) != 0 && errno != EEXIST)
      return vb::Err(errno, "sysfs: symlink");
    return vb::Ok();
  }

 private:
  std::string root_;
  std::set<std::string> made_;  // directories already created (logical paths)
};

std::string DeviceDir(const PciFunctionDesc& f) {
  const std::string& top = f.parents.empty() ? f.bdf : f.parents.front();
  std::string dir = "/sys/devices/pci" + top.substr(0, 7);  // "pci0000:00"
  for (const std::string& p : f.parents) dir += "/" + p;
  return dir + "/" + f.bdf;
}

std::string RootDir(const PciFunctionDesc& f) {
  const std::string& top = f.parents.empty() ? f.bdf : f.parents.front();
  return "/sys/devices/pci" + top.substr(0, 7);
}

std::string ModuleOf(const std::string& driver) {
  std::string m = driver;
  for (char& c : m)
    if (c == '-') c = '_';
  return m;
}

uint64_t ResourceLen(const PciResource& r) {
  return (r.start == 0 && r.end == 0) ? 0 : r.end - r.start + 1;
}

const char* YesNo(bool b) { return b ? "Y\n" : "N\n"; }

bool IsVfioDriver(const std::string& d) { return d == "vfio-pci" || d == "vfio-platform"; }

}  // namespace

const char* ControlKindName(ControlKind kind) {
  switch (kind) {
    case ControlKind::kDriverOverride: return "driver_override";
    case ControlKind::kRemove: return "remove";
    case ControlKind::kReset: return "reset";
    case ControlKind::kDeviceRescan: return "rescan (device)";
    case ControlKind::kBind: return "bind";
    case ControlKind::kUnbind: return "unbind";
    case ControlKind::kNewId: return "new_id";
    case ControlKind::kRemoveId: return "remove_id";
    case ControlKind::kDriversProbe: return "drivers_probe";
    case ControlKind::kRescan: return "rescan";
  }
  return "?";
}

std::string RelativeLinkTarget(const std::string& link, const std::string& target) {
  std::vector<std::string> from = Split(link);
  std::vector<std::string> to = Split(target);
  from.pop_back();  // the link's directory is what the target is relative to
  size_t common = 0;
  while (common < from.size() && common < to.size() && from[common] == to[common]) ++common;
  std::string out;
  for (size_t i = common; i < from.size(); ++i) out += "../";
  for (size_t i = common; i < to.size(); ++i) out += to[i] + (i + 1 < to.size() ? "/" : "");
  return out;
}

vb::Result<GeneratedTree> GenerateSysfsTree(const SysfsDescription& desc, const std::string& root) {
  GeneratedTree tree;
  tree.root = root;
  Writer w(root);
  std::set<std::string> pci_roots, pci_drivers{"vfio-pci"}, platform_drivers;
  std::map<int, IommuGroupDesc> groups;
  for (const IommuGroupDesc& g : desc.iommu_groups) groups[g.id] = g;
  std::map<int, std::vector<std::pair<std::string, std::string>>> members;  // group → (name, dir)
  std::set<int> vfio_groups;

  auto control = [&](ControlKind kind, const std::string& path, const std::string& bus,
                     const std::string& device, const std::string& driver) -> vb::Result<void> {
    ino_t ino = TRY(w.File(path, "", 0200));
    tree.controls[ino] = ControlFile{kind, path, bus, device, driver};
    return vb::Ok();
  };

  for (const PciFunctionDesc& f : desc.pci) {
    if (!ValidBdf(f.bdf)) return vb::Err(EINVAL, "sysfs: malformed BDF");
    for (const std::string& p : f.parents)
      if (!ValidBdf(p)) return vb::Err(EINVAL, "sysfs: malformed parent BDF");
    if (!f.parents.empty() && f.parents.front().substr(0, 4) != f.bdf.substr(0, 4))
      return vb::Err(EINVAL, "sysfs: parent in another PCI domain");
    const std::string dir = DeviceDir(f);
    pci_roots.insert(RootDir(f));
    uint8_t base = f.class_code >> 16, sub = (f.class_code >> 8) & 0xff, pi = f.class_code & 0xff;
    std::string modalias = Fmt("pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X", f.vendor, f.device,
                               f.subsystem_vendor, f.subsystem_device, base, sub, pi);
    TRY(w.File(dir + "/vendor", Fmt("0x%04x\n", f.vendor), 0444));
    TRY(w.File(dir + "/device", Fmt("0x%04x\n", f.device), 0444));
    TRY(w.File(dir + "/subsystem_vendor", Fmt("0x%04x\n", f.subsystem_vendor), 0444));
    TRY(w.File(dir + "/subsystem_device", Fmt("0x%04x\n", f.subsystem_device), 0444));
    TRY(w.File(dir + "/class", Fmt("0x%06x\n", f.class_code), 0444));
    TRY(w.File(dir + "/revision", Fmt("0x%02x\n", f.revision), 0444));
    TRY(w.File(dir + "/irq", Fmt("%u\n", f.irq), 0444));
    TRY(w.File(dir + "/numa_node", Fmt("%d\n", f.numa_node), 0644));
    TRY(w.File(dir + "/enable", Fmt("%u\n", f.enable_count), 0644));
    TRY(w.File(dir + "/msi_bus", "1\n", 0644));
    TRY(w.File(dir + "/broken_parity_status", "0\n", 0644));
    TRY(w.File(dir + "/d3cold_allowed", "1\n", 0644));
    TRY(w.File(dir + "/dma_mask_bits", "64\n", 0444));
    TRY(w.File(dir + "/consistent_dma_mask_bits", "64\n", 0444));
    TRY(w.File(dir + "/local_cpulist", "0\n", 0444));
    TRY(w.File(dir + "/modalias", modalias + "\n", 0444));
    std::string uevent;
    if (!f.driver.empty()) uevent += "DRIVER=" + f.driver + "\n";
    uevent += Fmt("PCI_CLASS=%X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\nPCI_SLOT_NAME=%s\n",
                  f.class_code, f.vendor, f.device, f.subsystem_vendor, f.subsystem_device,
                  f.bdf.c_str());
    uevent += "MODALIAS=" + modalias + "\n";
    TRY(w.File(dir + "/uevent", uevent, 0644));
    TRY(w.File(dir + "/config", std::string(f.config.begin(), f.config.end()), 0644));
    std::string res;
    int lines = f.is_bridge ? kBridgeResourceLines : kEndpointResourceLines;
    for (int i = 0; i < lines; ++i) {
      PciResource r = i < static_cast<int>(f.resources.size()) ? f.resources[i] : PciResource{};
      res += Fmt("0x%016llx 0x%016llx 0x%016llx\n", static_cast<unsigned long long>(r.start),
                 static_cast<unsigned long long>(r.end), static_cast<unsigned long long>(r.flags));
    }
    TRY(w.File(dir + "/resource", res, 0444));
    for (int i = 0; i < 6 && i < static_cast<int>(f.resources.size()); ++i) {
      const PciResource& r = f.resources[i];
      uint64_t len = ResourceLen(r);
      if (len == 0) continue;
      // Sized like the kernel's (stat shows the BAR size); the bytes are not the device's.
      TRY(w.File(dir + Fmt("/resource%d", i), "", 0600, static_cast<off_t>(len)));
      if ((r.flags & kIoresourceMem) && (r.flags & kIoresourcePrefetch))
        TRY(w.File(dir + Fmt("/resource%d_wc", i), "", 0600, static_cast<off_t>(len)));
    }
    ino_t ino = TRY(w.File(dir + "/driver_override",
                           (f.driver_override.empty() ? std::string("(null)") : f.driver_override) +
                               "\n",
                           0644));
    tree.controls[ino] = ControlFile{ControlKind::kDriverOverride, dir + "/driver_override", "pci",
                                     f.bdf, ""};
    TRY(control(ControlKind::kRemove, dir + "/remove", "pci", f.bdf, ""));
    TRY(control(ControlKind::kDeviceRescan, dir + "/rescan", "pci", f.bdf, ""));
    TRY(control(ControlKind::kReset, dir + "/reset", "pci", f.bdf, ""));
    TRY(w.Dir(dir + "/power"));
    TRY(w.File(dir + "/power/control", "on\n", 0644));
    TRY(w.Link(dir + "/subsystem", "/sys/bus/pci"));
    TRY(w.Link("/sys/bus/pci/devices/" + f.bdf, dir));
    if (!f.driver.empty()) {
      pci_drivers.insert(f.driver);
      TRY(w.Link(dir + "/driver", "/sys/bus/pci/drivers/" + f.driver));
      TRY(w.Link("/sys/bus/pci/drivers/" + f.driver + "/" + f.bdf, dir));
    }
    if (f.iommu_group) {
      int g = *f.iommu_group;
      if (!groups.count(g)) groups[g] = IommuGroupDesc{g, "DMA", {}};
      TRY(w.Link(dir + "/iommu_group", Fmt("/sys/kernel/iommu_groups/%d", g)));
      members[g].push_back({f.bdf, dir});
      if (IsVfioDriver(f.driver)) vfio_groups.insert(g);
    }
  }

  for (const PlatformDeviceDesc& p : desc.platform) {
    if (p.name.empty() || p.name.find('/') != std::string::npos)
      return vb::Err(EINVAL, "sysfs: malformed platform device name");
    const std::string dir = "/sys/devices/platform/" + p.name;
    tree.owned.push_back(dir);
    tree.owned.push_back("/sys/bus/platform/devices/" + p.name);
    TRY(w.File(dir + "/modalias", "platform:" + p.name + "\n", 0444));
    std::string uevent;
    if (!p.driver.empty()) uevent += "DRIVER=" + p.driver + "\n";
    uevent += "MODALIAS=platform:" + p.name + "\n";
    TRY(w.File(dir + "/uevent", uevent, 0644));
    ino_t ino = TRY(w.File(dir + "/driver_override",
                           (p.driver_override.empty() ? std::string("(null)") : p.driver_override) +
                               "\n",
                           0644));
    tree.controls[ino] =
        ControlFile{ControlKind::kDriverOverride, dir + "/driver_override", "platform", p.name, ""};
    TRY(w.Link(dir + "/subsystem", "/sys/bus/platform"));
    TRY(w.Link("/sys/bus/platform/devices/" + p.name, dir));
    platform_drivers.insert("vfio-platform");
    if (!p.driver.empty()) {
      platform_drivers.insert(p.driver);
      TRY(w.Link(dir + "/driver", "/sys/bus/platform/drivers/" + p.driver));
      TRY(w.Link("/sys/bus/platform/drivers/" + p.driver + "/" + p.name, dir));
    }
    if (p.iommu_group) {
      int g = *p.iommu_group;
      if (!groups.count(g)) groups[g] = IommuGroupDesc{g, "DMA", {}};
      TRY(w.Link(dir + "/iommu_group", Fmt("/sys/kernel/iommu_groups/%d", g)));
      members[g].push_back({p.name, dir});
      if (IsVfioDriver(p.driver)) vfio_groups.insert(g);
    }
  }

  // /sys/bus/pci and its drivers.
  TRY(w.Dir("/sys/bus/pci/devices"));
  TRY(w.Dir("/sys/bus/pci/slots"));
  TRY(w.File("/sys/bus/pci/drivers_autoprobe", "1\n", 0644));
  TRY(w.File("/sys/bus/pci/resource_alignment", "\n", 0644));
  TRY(w.File("/sys/bus/pci/uevent", "", 0200));
  TRY(control(ControlKind::kDriversProbe, "/sys/bus/pci/drivers_probe", "pci", "", ""));
  TRY(control(ControlKind::kRescan, "/sys/bus/pci/rescan", "pci", "", ""));
  auto driver_dir = [&](const std::string& bus, const std::string& drv) -> vb::Result<void> {
    std::string d = "/sys/bus/" + bus + "/drivers/" + drv;
    TRY(w.Dir(d));
    TRY(control(ControlKind::kBind, d + "/bind", bus, "", drv));
    TRY(control(ControlKind::kUnbind, d + "/unbind", bus, "", drv));
    TRY(w.File(d + "/uevent", "", 0200));
    if (bus == "pci") {
      TRY(control(ControlKind::kNewId, d + "/new_id", bus, "", drv));
      TRY(control(ControlKind::kRemoveId, d + "/remove_id", bus, "", drv));
    }
    if (IsVfioDriver(drv)) TRY(w.Link(d + "/module", "/sys/module/" + ModuleOf(drv)));
    return vb::Ok();
  };
  for (const std::string& d : pci_drivers) TRY(driver_dir("pci", d));
  for (const std::string& d : platform_drivers) {
    TRY(driver_dir("platform", d));
    tree.owned.push_back("/sys/bus/platform/drivers/" + d);
  }

  // IOMMU groups.
  TRY(w.Dir("/sys/kernel/iommu_groups"));
  for (const auto& [id, g] : groups) {
    std::string gd = Fmt("/sys/kernel/iommu_groups/%d", id);
    TRY(w.Dir(gd + "/devices"));
    std::string rr;
    for (const auto& r : g.reserved)
      rr += Fmt("0x%016llx 0x%016llx %s\n", static_cast<unsigned long long>(r.start),
                static_cast<unsigned long long>(r.end), r.type.c_str());
    TRY(w.File(gd + "/reserved_regions", rr, 0444));
    TRY(w.File(gd + "/type", g.type + "\n", 0644));
    for (const auto& [name, dir] : members[id]) TRY(w.Link(gd + "/devices/" + name, dir));
  }

  // Modules.
  TRY(w.File("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
             YesNo(desc.vfio.enable_unsafe_noiommu_mode), 0644));
  TRY(w.File("/sys/module/vfio/initstate", "live\n", 0444));
  TRY(w.Dir("/sys/module/vfio/holders"));
  TRY(w.File("/sys/module/vfio_pci/parameters/nointxmask", "N\n", 0644));
  TRY(w.File("/sys/module/vfio_pci/parameters/disable_vga", "N\n", 0444));
  TRY(w.File("/sys/module/vfio_pci/parameters/disable_idle_d3", "N\n", 0644));
  TRY(w.File("/sys/module/vfio_pci/parameters/enable_sriov", "N\n", 0644));
  TRY(w.File("/sys/module/vfio_pci/parameters/disable_denylist", "N\n", 0444));
  TRY(w.File("/sys/module/vfio_pci/initstate", "live\n", 0444));
  TRY(w.Link("/sys/module/vfio_pci/drivers/pci:vfio-pci", "/sys/bus/pci/drivers/vfio-pci"));
  TRY(w.File("/sys/module/vfio_pci_core/initstate", "live\n", 0444));
  TRY(w.File("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
             YesNo(desc.vfio.allow_unsafe_interrupts), 0644));
  TRY(w.File("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit",
             Fmt("%u\n", desc.vfio.dma_entry_limit), 0644));
  TRY(w.File("/sys/module/vfio_iommu_type1/parameters/disable_hugepages",
             YesNo(desc.vfio.disable_hugepages), 0444));
  TRY(w.File("/sys/module/vfio_iommu_type1/initstate", "live\n", 0444));
  if (!desc.platform.empty()) {
    TRY(w.File("/sys/module/vfio_platform/parameters/reset_required", "Y\n", 0444));
    TRY(w.File("/sys/module/vfio_platform/initstate", "live\n", 0444));
    TRY(w.Link("/sys/module/vfio_platform/drivers/platform:vfio-platform",
               "/sys/bus/platform/drivers/vfio-platform"));
    tree.owned.push_back("/sys/module/vfio_platform");
  }

  // /dev/vfio: the container node, and a node per group with a member bound to a VFIO driver
  // (Linux creates /dev/vfio/<N> when the first such member registers). The placeholders are
  // empty regular files so that readdir lists them; stat is corrected to a character device.
  TRY(w.File("/dev/vfio/vfio", "", 0666));
  tree.dev_nodes.push_back({"/dev/vfio/vfio", makedev(10, 196), S_IFCHR | 0666});
  unsigned minor = 0;
  for (int g : vfio_groups) {
    std::string node = Fmt("/dev/vfio/%d", g);
    TRY(w.File(node, "", 0600));
    tree.dev_nodes.push_back({node, makedev(kVfioGroupMajor, minor++), S_IFCHR | 0600});
  }

  // debugfs: intel-iommu's directory (only the file a program reads the page tables from). The
  // file is empty here; the preload library rewrites it from the machine at each open.
  if (desc.intel_iommu_debugfs) {
    TRY(w.File(kDmarDomainTranslationStruct, "", 0444));
    for (const std::string& bdf : desc.intel_iommu_devices)
      TRY(w.File(std::string(kDmarDebugfsDir) + bdf + "/domain_translation_struct", "", 0444));
    tree.owned.push_back("/sys/kernel/debug/iommu");
  }

  for (const std::string& r : pci_roots) tree.owned.push_back(r);
  for (const char* p : {"/sys/bus/pci", "/sys/kernel/iommu_groups", "/sys/module/vfio",
                        "/sys/module/vfio_pci", "/sys/module/vfio_pci_core",
                        "/sys/module/vfio_iommu_type1", "/dev/vfio"})
    tree.owned.push_back(p);
  struct stat st;
  if (stat(root.c_str(), &st) != 0) return vb::Err(errno, "sysfs: stat root");
  tree.dev = st.st_dev;
  return tree;
}

std::string DmarDebugfsDeviceOf(const std::string& path) {
  constexpr std::string_view kDir = kDmarDebugfsDir, kFile = "/domain_translation_struct";
  const std::string_view p(path);
  if (p.size() <= kDir.size() + kFile.size() || !p.starts_with(kDir) || !p.ends_with(kFile)) return "";
  const std::string_view bdf = p.substr(kDir.size(), p.size() - kDir.size() - kFile.size());
  return bdf.empty() || bdf.find('/') != std::string_view::npos ? "" : std::string(bdf);
}

void RemoveTree(const std::string& root) {
  nftw(
      root.c_str(),
      [](const char* path, const struct stat*, int type, struct FTW*) {
        if (type == FTW_DP)
          rmdir(path);
        else
          unlink(path);
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace preload
