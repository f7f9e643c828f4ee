#include "preload/fake_backend.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/sysmacros.h>

#include <cstring>

#include "uapi/fd_table.h"

namespace preload {
namespace {

constexpr uint64_t kConfigOffset = uint64_t{7} << 40;

std::vector<uint8_t> Config(uint16_t vendor, uint16_t device, uint32_t class_code) {
  std::vector<uint8_t> c(256, 0);
  c[0] = vendor & 0xff;
  c[1] = vendor >> 8;
  c[2] = device & 0xff;
  c[3] = device >> 8;
  c[9] = class_code & 0xff;
  c[10] = (class_code >> 8) & 0xff;
  c[11] = (class_code >> 16) & 0xff;
  return c;
}

PciFunctionDesc Fn(std::string bdf, std::vector<std::string> parents, uint16_t vendor,
                   uint16_t device, uint32_t class_code, std::string driver, std::optional<int> group) {
  PciFunctionDesc f;
  f.bdf = std::move(bdf);
  f.parents = std::move(parents);
  f.vendor = vendor;
  f.device = device;
  f.subsystem_vendor = 0x1af4;
  f.subsystem_device = 0x1100;
  f.class_code = class_code;
  f.revision = 0x10;
  f.irq = 10;
  f.driver = std::move(driver);
  f.iommu_group = group;
  f.config = Config(vendor, device, class_code);
  return f;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class FakeDevice : public uapi::FileObject {
 public:
  explicit FakeDevice(std::vector<uint8_t> config) : config_(std::move(config)) {}
  const char* kind() const override { return "device"; }
  long Ioctl(unsigned long request, unsigned long arg) override { return -ENOTTY; }
  ssize_t Pread(void* buf, size_t count, off_t offset) override {
    uint64_t off = static_cast<uint64_t>(offset);
    if (off < kConfigOffset || off - kConfigOffset >= config_.size()) return -EINVAL;
    size_t at = off - kConfigOffset, n = std::min(count, config_.size() - at);
    memcpy(buf, config_.data() + at, n);
    return static_cast<ssize_t>(n);
  }

 private:
  std::vector<uint8_t> config_;
};

class FakeContainer : public uapi::FileObject {
 public:
  const char* kind() const override { return "container"; }
  long Ioctl(unsigned long request, unsigned long arg) override {
    switch (request) {
      case VFIO_GET_API_VERSION: return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION: return (arg == VFIO_TYPE1_IOMMU || arg == VFIO_TYPE1v2_IOMMU) ? 1 : 0;
      default: return -ENOTTY;
    }
  }
};

class FakeGroup : public uapi::FileObject {
 public:
  FakeGroup(FakeBackend* backend, int id) : backend_(backend), id_(id) {}
  const char* kind() const override { return "group"; }
  long Ioctl(unsigned long request, unsigned long arg) override {
    switch (request) {
      case VFIO_GROUP_GET_STATUS: {
        auto* st = reinterpret_cast<vfio_group_status*>(arg);
        if (st->argsz < sizeof *st) return -EINVAL;
        st->flags = backend_->GroupViable(id_) ? VFIO_GROUP_FLAGS_VIABLE : 0;
        return 0;
      }
      case VFIO_GROUP_GET_DEVICE_FD: {
        std::string name(reinterpret_cast<const char*>(arg));
        if (backend_->GroupOf(name) != id_) return -ENODEV;
        return uapi::FdTable::Global().Install(
            std::make_shared<FakeDevice>(backend_->ConfigOf(name)), O_CLOEXEC);
      }
      default: return -ENOTTY;
    }
  }

 private:
  FakeBackend* backend_;
  int id_;
};

}  // namespace

FakeBackend::FakeBackend() {
  PciFunctionDesc bridge =
      Fn("0000:00:01.0", {}, 0x1b36, 0x000c, 0x060400, "pcieport", 1);
  bridge.is_bridge = true;
  PciFunctionDesc edu = Fn("0000:01:00.0", {"0000:00:01.0"}, 0x1234, 0x11e8, 0x00ff00, "vfio-pci", 7);
  edu.resources.resize(7);
  edu.resources[0] = PciResource{0xfea00000, 0xfeafffff, 0x40200};
  edu.enable_count = 0;
  PciFunctionDesc nic = Fn("0000:00:03.0", {}, 0x8086, 0x10d3, 0x020000, "e1000e", 3);
  PciFunctionDesc gen = Fn("0000:00:04.0", {}, 0x1b36, 0x0010, 0x010802, "vfio-pci", 3);
  vb::MutexLock l(mu_);
  desc_.pci = {bridge, edu, nic, gen};
  desc_.platform = {PlatformDeviceDesc{"fake-dma.0", "vfio-platform", "", 3}};
  desc_.iommu_groups = {IommuGroupDesc{7, "DMA", {{0xfee00000, 0xfeefffff, "msi"}}},
                        IommuGroupDesc{3, "DMA-FQ", {{0xfee00000, 0xfeefffff, "msi"}}}};
}

SysfsDescription FakeBackend::Describe() {
  vb::MutexLock l(mu_);
  return desc_;
}

int FakeBackend::GroupOf(const std::string& name) {
  vb::MutexLock l(mu_);
  for (const auto& f : desc_.pci)
    if (f.bdf == name) return f.iommu_group.value_or(-1);
  for (const auto& p : desc_.platform)
    if (p.name == name) return p.iommu_group.value_or(-1);
  return -1;
}

bool FakeBackend::GroupViable(int group) {
  vb::MutexLock l(mu_);
  auto ok = [](const std::string& d) { return d.empty() || d == "vfio-pci" || d == "vfio-platform"; };
  for (const auto& f : desc_.pci)
    if (f.iommu_group == group && !ok(f.driver)) return false;
  for (const auto& p : desc_.platform)
    if (p.iommu_group == group && !ok(p.driver)) return false;
  return true;
}

std::vector<uint8_t> FakeBackend::ConfigOf(const std::string& bdf) {
  vb::MutexLock l(mu_);
  for (const auto& f : desc_.pci)
    if (f.bdf == bdf) return f.config;
  return {};
}

std::shared_ptr<uapi::FileObject> FakeBackend::Open(const std::string& path, int flags, int* err) {
  if (path == "/dev/vfio/vfio") return std::make_shared<FakeContainer>();
  const char* p = path.c_str();
  if (strncmp(p, "/dev/vfio/", 10) == 0) {
    char* end;
    long id = strtol(p + 10, &end, 10);
    if (*end == '\0' && end != p + 10) {
      bool has_vfio_member = false;
      {
        vb::MutexLock l(mu_);
        for (const auto& f : desc_.pci)
          has_vfio_member |= f.iommu_group == id && f.driver == "vfio-pci";
        for (const auto& d : desc_.platform)
          has_vfio_member |= d.iommu_group == id && d.driver == "vfio-platform";
        if (has_vfio_member) {
          if (!open_groups_[id].expired()) {
            *err = EBUSY;
            return nullptr;
          }
          auto g = std::make_shared<FakeGroup>(this, static_cast<int>(id));
          open_groups_[id] = g;
          return g;
        }
      }
    }
  }
  *err = ENOENT;
  return nullptr;
}

PciFunctionDesc* FakeBackend::FindLocked(const std::string& bdf) {
  for (auto& f : desc_.pci)
    if (f.bdf == bdf) return &f;
  return nullptr;
}

int FakeBackend::OnWrite(const SysfsWrite& w) {
  std::string data = Trim(w.data);
  vb::MutexLock l(mu_);
  switch (w.file.kind) {
    case ControlKind::kDriverOverride: {
      if (w.file.bus != "pci") return EINVAL;
      PciFunctionDesc* f = FindLocked(w.file.device);
      if (!f) return ENODEV;
      f->driver_override = data;
      return 0;
    }
    case ControlKind::kUnbind: {
      PciFunctionDesc* f = FindLocked(data);
      if (!f || f->driver != w.file.driver) return ENODEV;
      f->driver.clear();
      return 0;
    }
    case ControlKind::kBind: {
      PciFunctionDesc* f = FindLocked(data);
      if (!f || (!f->driver_override.empty() && f->driver_override != w.file.driver)) return ENODEV;
      if (!f->driver.empty()) return EBUSY;
      f->driver = w.file.driver;
      return 0;
    }
    case ControlKind::kDriversProbe: {
      PciFunctionDesc* f = FindLocked(data);
      if (!f) return EINVAL;
      if (f->driver.empty() && !f->driver_override.empty()) f->driver = f->driver_override;
      return 0;
    }
    default: return 0;
  }
}

}  // namespace preload
