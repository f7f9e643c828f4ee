#include "iommu/dmar_debugfs.h"
#include "preload/system_backend.h"

#include <linux/mman.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string_view>
#include <cstdlib>

#include "hw/dma.h"
#include "hw/pci_regs.h"
#include "uapi/trace.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/pinned_pages.h"
#include "vfio/type1/user_memory.h"

namespace preload {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

std::string DriverOf(const hw::Device& d) {
  hw::Driver* drv = d.driver();
  return drv ? std::string(drv->name()) : "";
}

// IORESOURCE_* flags as the kernel prints them in `resource`.
// With --trace, every completed device DMA is one line (what the IOMMU translated it to).
class TraceDmaObserver final : public hw::DmaObserver {
 public:
  void OnDma(const std::string& device, hw::DmaAccess access, uint64_t iova, uint64_t length,
             const void* host) override {
    uapi::trace::Dma(device.c_str(), access == hw::DmaAccess::kWrite, iova, length, host);
  }
};

constexpr uint64_t kIoResIo = 0x100, kIoResMem = 0x200, kIoResPrefetch = 0x2000, kIoResMem64 = 0x100000,
                   kIoResSizeAlign = 0x40000;

}  // namespace

std::unique_ptr<SystemBackend> SystemBackend::Create() {
  topology::TopologySpec spec;
  if (const char* file = std::getenv("VFIOBOX_TOPOLOGY"); file && *file) {
    topology::ParseError err;
    auto parsed = topology::LoadTopologyFile(file, &err);
    if (!parsed) {
      std::fprintf(stderr, "vfiobox: %s\n", err.message.c_str());
      return nullptr;
    }
    spec = std::move(*parsed);
  } else {
    spec = topology::DefaultTopology();
  }
  // `vfiobox run --register-bars=...` overrides the topology's choice.
  if (const char* bars = std::getenv("VFIOBOX_REGISTER_BARS"); bars && *bars) {
    if (std::string_view(bars) == "no-mmap") spec.register_bars = topology::RegisterBars::kNoMmap;
    else if (std::string_view(bars) == "trap") spec.register_bars = topology::RegisterBars::kTrap;
  }
  // `vfiobox run --kernel=...` overrides the topology's personality.
  if (const char* kernel = std::getenv("VFIOBOX_KERNEL"); kernel && *kernel) {
    auto k = vb::ParseKernelPersonality(kernel);
    if (!k) {
      std::fprintf(stderr, "vfiobox: VFIOBOX_KERNEL=%s: expected 6.1 or 6.12\n", kernel);
      return nullptr;
    }
    spec.kernel = *k;
  }
  std::string error;
  auto sys = topology::System::Create(spec, &error);
  if (!sys) {
    std::fprintf(stderr, "vfiobox: %s\n", error.c_str());
    return nullptr;
  }
  // The interposers report every address-space, memlock-limit and capability change, so type1's
  // The program's mlock()ed pages share RLIMIT_MEMLOCK with type1's pins, as mm->locked_vm does
  // on Linux (docs/design/0011; the mlock interposers keep the count current).
  vfio::type1::LockedMemory::SetMlockShared(true);
  // user-pointer check caches may be on (docs/design/0007); VFIOBOX_EXACT_CHECKS=1 keeps them off.
  if (const char* exact = std::getenv("VFIOBOX_EXACT_CHECKS"); !exact || std::string_view(exact) != "1") {
    vfio::type1::UserMemory::SetVmaCache(true);
    vfio::type1::LockedMemory::SetLimitCache(true);
  }
  return std::unique_ptr<SystemBackend>(new SystemBackend(std::move(sys)));
}

SystemBackend::SystemBackend(std::unique_ptr<topology::System> system)
    : system_(std::move(system)), nodes_(std::make_unique<uapi::VfioNodeTable>(system_->vfio())) {
  static SystemBackend* self;
  self = this;
  // The process keeps its files until it ends (like the kernel), so the machine is never torn
  // down; the fault log is the one thing to report at exit.
  std::atexit([] { self->PrintFaultLog(); });
  if (uapi::trace::Enabled()) {
    static TraceDmaObserver observer;
    hw::SetDmaObserver(&observer);
  }
}

SystemBackend::~SystemBackend() = default;

bool SystemBackend::CurrentConfig(const std::string& device, std::vector<uint8_t>* out) {
  vb::RefPtr<hw::Device> dev = system_->machine().FindDevice(device);
  auto* pci = dynamic_cast<hw::PciDevice*>(dev.get());
  if (!pci) return false;
  *out = pci->ConfigSnapshot();
  return true;
}

bool SystemBackend::CurrentText(const std::string& path, std::string* out) {
  if (path == kDmarDomainTranslationStruct) {
    *out = iommu::DmarDomainTranslationStruct(system_->iommu_core(), system_->machine().PciDevices());
    return true;
  }
  // One device's file (6.8+ layout): the same text, for that device's domain only.
  const std::string bdf = DmarDebugfsDeviceOf(path);
  if (bdf.empty()) return false;
  std::vector<vb::RefPtr<hw::PciDevice>> one;
  for (auto& d : system_->machine().PciDevices())
    if (d->name() == bdf) one.push_back(d);
  if (one.empty()) return false;
  *out = iommu::DmarDomainTranslationStruct(system_->iommu_core(), one);
  return true;
}

void SystemBackend::PrintFaultLog() {
  size_t total = 0;
  for (iommu::Iommu* instance : system_->iommu_core().Iommus()) total += instance->fault_log().size();
  if (total == 0) return;
  std::fprintf(stderr, "vfiobox: IOMMU fault log (%zu):\n", total);
  for (iommu::Iommu* instance : system_->iommu_core().Iommus()) {
    for (const hw::DmaFault& f : instance->fault_log().Snapshot()) {
      std::fprintf(stderr, "vfiobox:   %s: %s %s of iova %#llx (%s)\n", instance->name().c_str(), f.requester.c_str(),
                   hw::DmaAccessName(f.access), static_cast<unsigned long long>(f.iova), hw::DmaFaultReasonName(f.reason));
    }
  }
}

SysfsDescription SystemBackend::Describe() {
  SysfsDescription d;
  topology::System& sys = *system_;
  std::map<std::string, std::string> overrides;
  {
    vb::MutexLock l(mu_);
    overrides = driver_overrides_;
  }
  for (auto& dev : sys.machine().PciDevices()) {
    PciFunctionDesc f;
    f.bdf = dev->name();
    for (hw::PciBus* bus = dev->bus(); bus && !bus->is_root(); bus = bus->parent())
      f.parents.insert(f.parents.begin(), bus->self()->name());
    f.vendor = dev->vendor_id();
    f.device = dev->device_id();
    f.subsystem_vendor = static_cast<uint16_t>(dev->ConfigRead(0x2c, 2).value_or(0));
    f.subsystem_device = static_cast<uint16_t>(dev->ConfigRead(0x2e, 2).value_or(0));
    f.class_code = dev->class_code();
    f.revision = dev->revision();
    f.is_bridge = dev->is_bridge();
    f.driver = DriverOf(*dev);
    if (auto it = overrides.find(f.bdf); it != overrides.end()) f.driver_override = it->second;
    if (auto g = sys.iommu_core().GroupOf(*dev)) f.iommu_group = g->id();
    f.config = dev->ConfigSnapshot();
    f.resources.resize(f.is_bridge ? 17 : 13);
    for (int i = 0; i < 6; ++i) {
      const hw::BarSpec& bar = dev->bar(i);
      if (bar.kind == hw::BarKind::kNone || bar.size == 0) continue;
      PciResource& r = f.resources[i];
      r.start = sys.BarAddress(*dev, i);
      r.end = r.start + bar.size - 1;
      r.flags = kIoResSizeAlign | (bar.kind == hw::BarKind::kIo ? kIoResIo : kIoResMem) |
                (bar.kind == hw::BarKind::kMem64 ? kIoResMem64 : 0) | (bar.prefetchable ? kIoResPrefetch : 0);
    }
    d.pci.push_back(std::move(f));
  }
  for (auto& dev : sys.machine().Devices()) {
    if (dev->bus_type() != hw::BusType::kPlatform) continue;
    PlatformDeviceDesc p;
    p.name = dev->name().substr(dev->name().find(':') + 1);
    p.driver = DriverOf(*dev);
    if (auto g = sys.iommu_core().GroupOf(*dev)) p.iommu_group = g->id();
    d.platform.push_back(std::move(p));
  }
  for (auto& g : sys.iommu_core().Groups()) {
    IommuGroupDesc gd;
    gd.id = g->id();
    gd.type = g->iommu().caps().passthrough ? "identity" : "DMA";
    for (const iommu::ReservedRegion& r : g->iommu().caps().reserved)
      gd.reserved.push_back({r.first, r.last, iommu::ReservedRegionTypeName(r.type)});
    d.iommu_groups.push_back(std::move(gd));
  }
  for (iommu::Iommu* unit : sys.iommu_core().Iommus())
    d.intel_iommu_debugfs |= unit->caps().kind == iommu::IommuKind::kDmar;
  for (auto& dev : sys.machine().PciDevices()) {
    iommu::Iommu* unit = sys.iommu_core().IommuOf(*dev);
    if (unit && unit->caps().kind == iommu::IommuKind::kDmar) d.intel_iommu_devices.push_back(dev->name());
  }
  d.vfio.allow_unsafe_interrupts = sys.type1().options().allow_unsafe_interrupts;
  d.vfio.dma_entry_limit = static_cast<unsigned>(sys.type1().options().dma_entry_limit);
  return d;
}

int SystemBackend::OnWrite(const SysfsWrite& w) {
  const std::string data = Trim(w.data);
  hw::Machine& machine = system_->machine();
  auto find = [&](const std::string& name) -> vb::RefPtr<hw::Device> {
    return machine.FindDevice(w.file.bus == "platform" ? "platform:" + name : name);
  };
  switch (w.file.kind) {
    case ControlKind::kDriverOverride: {
      if (!find(w.file.device)) return ENODEV;
      vb::MutexLock l(mu_);
      if (data.empty()) driver_overrides_.erase(w.file.device);
      else driver_overrides_[w.file.device] = data;
      return 0;
    }
    case ControlKind::kUnbind: {
      auto dev = find(data.empty() ? w.file.device : data);
      if (!dev || DriverOf(*dev) != w.file.driver) return ENODEV;
      auto r = machine.UnbindDriver(*dev);
      return r.has_value() ? 0 : r.error().errnum;
    }
    case ControlKind::kBind: {
      auto dev = find(data);
      if (!dev) return ENODEV;
      {
        vb::MutexLock l(mu_);
        auto it = driver_overrides_.find(data);
        if (it != driver_overrides_.end() && it->second != w.file.driver) return ENODEV;
      }
      if (dev->driver()) return EBUSY;
      auto r = machine.BindDriver(*dev, system_->DriverNamed(w.file.driver));
      return r.has_value() ? 0 : r.error().errnum;
    }
    case ControlKind::kDriversProbe: {
      auto dev = find(data);
      if (!dev) return EINVAL;
      std::string target;
      {
        vb::MutexLock l(mu_);
        auto it = driver_overrides_.find(data);
        if (it != driver_overrides_.end()) target = it->second;
      }
      if (!dev->driver() && !target.empty()) (void)machine.BindDriver(*dev, system_->DriverNamed(target));
      return 0;
    }
    case ControlKind::kRemove: {
      auto dev = find(w.file.device);
      if (!dev) return ENODEV;
      // Blocks while user handles of the device are open (the REQ eventfd is signalled).
      auto r = machine.RemoveDevice(*dev);
      return r.has_value() ? 0 : r.error().errnum;
    }
    default:
      return 0;
  }
}

int SystemBackend::Munmap(void* addr, size_t length, const RealMemoryCalls& real) {
  using vfio::type1::PinnedPages;
  if (PinnedPages::Any()) {
    int saved = errno;
    (void)PinnedPages::KeepAlive(reinterpret_cast<uint64_t>(addr), length, PinnedPages::Keep::kMove);
    errno = saved;
  }
  return real.munmap(addr, length);
}

void* SystemBackend::Mremap(void* old_addr, size_t old_size, size_t new_size, int flags, void* new_addr,
                            const RealMemoryCalls& real) {
  using vfio::type1::PinnedPages;
  if (!PinnedPages::Any()) return real.mremap(old_addr, old_size, new_size, flags, new_addr);
  const int saved = errno;
  const uint64_t old = reinterpret_cast<uint64_t>(old_addr);
  // A shrink drops the tail: its pages go aside as for munmap.
  if (new_size < old_size && old_size != 0)
    (void)PinnedPages::KeepAlive(old + new_size, old_size - new_size, PinnedPages::Keep::kMove);
  errno = saved;
  const uint64_t kept = std::min(old_size, new_size);
  // A same-size move: leave the old range mapped (MREMAP_DONTUNMAP) until the mappings follow the
  // pages, so a DMA racing the move never reaches an unmapped address; then unmap it as asked.
  if ((flags & MREMAP_MAYMOVE) && !(flags & MREMAP_DONTUNMAP) && old_size == new_size && old_size != 0) {
    void* r = real.mremap(old_addr, old_size, new_size, flags | MREMAP_DONTUNMAP, new_addr);
    if (r != MAP_FAILED) {
      PinnedPages::Moved(old, kept, reinterpret_cast<uint64_t>(r));
      syscall(SYS_munmap, old_addr, old_size);
      errno = saved;
      return r;
    }
    errno = saved;  // not supported for this mapping: the plain move below
  }
  void* r = real.mremap(old_addr, old_size, new_size, flags, new_addr);
  if (r != MAP_FAILED && r != old_addr && kept != 0) {
    const int e = errno;
    PinnedPages::Moved(old, kept, reinterpret_cast<uint64_t>(r));
    errno = e;
  }
  return r;
}

int SystemBackend::Madvise(void* addr, size_t length, int advice, const RealMemoryCalls& real) {
  using vfio::type1::PinnedPages;
  if (PinnedPages::Any()) {
    // The advice that drop pages. MADV_DONTNEED_LOCKED (24) is 5.18+ and absent from older headers.
    const bool drop = advice == MADV_DONTNEED || advice == MADV_FREE || advice == 24;
    if (drop || advice == MADV_REMOVE) {
      int saved = errno;
      (void)PinnedPages::KeepAlive(reinterpret_cast<uint64_t>(addr), length,
                                   drop ? PinnedPages::Keep::kMove : PinnedPages::Keep::kCopy);
      errno = saved;
    }
  }
  return real.madvise(addr, length, advice);
}

}  // namespace preload
