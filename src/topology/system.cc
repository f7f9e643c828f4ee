#include "topology/system.h"

#include "devices/edu.h"
#include "devices/ioat.h"
#include "devices/test_endpoint.h"
#include "hw/pci_functions.h"
#include "hw/pci_regs.h"
#include "vfio/pci/vfio_pci_driver.h"

namespace topology {
namespace {

iommu::IommuCaps CapsOf(const IommuSpec& s) {
  iommu::IommuCaps caps;
  caps.kind = s.kind;
  caps.pgsize_bitmap = s.pgsize_bitmap;
  caps.aperture_first = 0;
  caps.aperture_last = (uint64_t{1} << s.address_bits) - 1;
  caps.cache_coherent = s.coherent;
  caps.enforce_cache_coherency = s.enforce_cache_coherency;
  caps.msi_isolated = s.msi_isolated;
  for (const ReservedSpec& r : s.reserved) {
    iommu::ReservedRegionType t = iommu::ReservedRegionType::kReserved;
    if (r.type == "msi") t = iommu::ReservedRegionType::kMsi;
    else if (r.type == "sw-msi") t = iommu::ReservedRegionType::kSwMsi;
    else if (r.type == "direct") t = iommu::ReservedRegionType::kDirect;
    else if (r.type == "direct-relaxable") t = iommu::ReservedRegionType::kDirectRelaxable;
    caps.reserved.push_back(iommu::ReservedRegion{r.first, r.last, t});
  }
  return caps;
}

std::optional<hw::AcsSpec> AcsOf(const PciSpec& d) {
  if (!d.acs) return std::nullopt;
  return hw::AcsSpec{d.acs->first, d.acs->second};
}

vb::Result<vb::RefPtr<hw::PciDevice>> MakeDevice(const PciSpec& d) {
  if (d.type == "host-bridge") return vb::RefPtr<hw::PciDevice>(hw::HostBridge::Create(d.address));
  if (d.is_bridge()) {
    hw::BridgeConfig c;
    c.address = d.address;
    c.secondary_bus = *d.secondary_bus;
    c.multifunction = d.multifunction;
    c.acs = AcsOf(d);
    if (d.type == "root-port") return vb::RefPtr<hw::PciDevice>(hw::RootPort::Create(c));
    if (d.type == "switch-upstream") return vb::RefPtr<hw::PciDevice>(hw::SwitchUpstreamPort::Create(c));
    if (d.type == "switch-downstream") return vb::RefPtr<hw::PciDevice>(hw::SwitchDownstreamPort::Create(c));
    return vb::RefPtr<hw::PciDevice>(hw::PcieToPciBridge::Create(c));
  }
  if (d.type == "edu") return vb::RefPtr<hw::PciDevice>(TRY(devices::Edu::Create(d.address)));
  if (d.type == "test-endpoint") return vb::RefPtr<hw::PciDevice>(TRY(devices::TestEndpoint::Create(d.address, d.multifunction)));
  if (d.type == "ioat") {
    auto dev = TRY(devices::Ioat::Create(d.address, {.xfercap = d.xfercap, .multifunction = d.multifunction}));
    if (d.acs) dev->set_acs(d.acs->first, d.acs->second);
    return vb::RefPtr<hw::PciDevice>(dev);
  }
  hw::EndpointConfig c;
  c.address = d.address;
  c.vendor_id = d.vendor;
  c.device_id = d.device;
  c.class_code = d.class_code;
  c.pcie_type = d.express ? hw::PcieType::kEndpoint : hw::PcieType::kConventional;
  c.multifunction = d.multifunction;
  c.acs = AcsOf(d);
  c.msi = hw::MsiSpec{};
  for (const BarEntry& b : d.bars) c.bars[b.index] = b.spec;
  return vb::RefPtr<hw::PciDevice>(TRY(hw::Endpoint::Create(c)));
}

}  // namespace

System::System(const TopologySpec& spec) : spec_(spec) {}

std::unique_ptr<System> System::Create(const TopologySpec& spec, std::string* error) {
  std::unique_ptr<System> sys(new System(spec));
  if (!sys->Build(error)) return nullptr;
  return sys;
}

bool System::Build(std::string* error) {
  auto fail = [&](const std::string& msg) {
    if (error) *error = msg;
    return false;
  };
  iommu_core_ = std::make_unique<iommu::IommuCore>(CapsOf(spec_.iommus[0]), spec_.iommus[0].name);
  for (size_t i = 1; i < spec_.iommus.size(); ++i) {
    auto r = iommu_core_->AddIommu(spec_.iommus[i].name, CapsOf(spec_.iommus[i]));
    if (!r.has_value()) return fail("iommu " + spec_.iommus[i].name + ": " + r.error().ToString());
  }
  vfio_ = std::make_unique<vfio::Vfio>(*iommu_core_, spec_.kernel);
  vfio_->RegisterBackend(type1_);
  vfio_platform_ = std::make_unique<vfio::BasicDriver>(*vfio_);
  vfio_pci_ = std::make_unique<vfio::pci::VfioPciDriver>(
      *vfio_, vfio::pci::VfioPciOptions{.mmap_register_bars = spec_.register_bars == RegisterBars::kTrap});

  for (const PciSpec& d : spec_.pci)
    iommu_core_->AssignDevice(d.address.ToString(), *iommu_core_->FindIommu(d.iommu));
  for (const PlatformSpec& p : spec_.platform)
    iommu_core_->AssignDevice("platform:" + p.name, *iommu_core_->FindIommu(p.iommu));
  if (auto r = machine_.SetHooks(iommu_core_.get()); !r.has_value()) return fail("iommu core: " + r.error().ToString());

  for (const PciSpec& d : spec_.pci) {
    const std::string name = d.address.ToString();
    auto dev = MakeDevice(d);
    if (!dev.has_value()) return fail(name + ": " + dev.error().ToString());
    if (d.acs_quirk) (*dev)->set_acs_quirk(d.acs_quirk);
    for (uint8_t alias : d.dma_aliases) (*dev)->add_dma_alias(alias);
    if (auto r = machine_.AddPciDevice(*dev); !r.has_value()) return fail(name + ": " + r.error().ToString());
    if (!d.driver.empty()) {
      if (auto r = machine_.BindDriver(**dev, DriverNamed(d.driver)); !r.has_value())
        return fail(name + ": bind " + d.driver + ": " + r.error().ToString());
    }
  }
  AssignBarAddresses();
  for (const PlatformSpec& p : spec_.platform) {
    auto dev = vb::MakeRef<hw::PlatformDevice>(p.name, p.stream_id, p.shares_group_with);
    if (auto r = machine_.AddPlatformDevice(dev); !r.has_value()) return fail(p.name + ": " + r.error().ToString());
    if (!p.driver.empty()) {
      if (auto r = machine_.BindDriver(*dev, DriverNamed(p.driver)); !r.has_value())
        return fail(p.name + ": bind " + p.driver + ": " + r.error().ToString());
    }
  }
  return true;
}

System::~System() {
  for (auto& d : machine_.Devices()) (void)machine_.RemoveDevice(*d);
  (void)machine_.SetHooks(nullptr);
}

hw::Driver& System::DriverNamed(const std::string& name) {
  if (name == "vfio-pci") return *vfio_pci_;
  if (name == "vfio-platform") return *vfio_platform_;
  auto it = other_drivers_.find(name);
  if (it == other_drivers_.end()) {
    // pcieport and pci-stub manage DMA themselves; any other name is a kernel DMA-API driver.
    const bool managed = name == "pcieport" || name == "pci-stub";
    it = other_drivers_.emplace(name, nullptr).first;
    it->second = std::make_unique<hw::StubDriver>(it->first, managed);
  }
  return *it->second;
}

void System::AssignBarAddresses() {
  uint64_t mem32 = 0xc0000000, mem64 = 0x800000000ull, io = 0xc000;
  auto take = [](uint64_t& cursor, uint64_t size) {
    cursor = (cursor + size - 1) & ~(size - 1);
    uint64_t at = cursor;
    cursor += size;
    return at;
  };
  for (auto& dev : machine_.PciDevices()) {
    for (int i = 0; i < 6; ++i) {
      const hw::BarSpec& bar = dev->bar(i);
      if (bar.kind == hw::BarKind::kNone || bar.size == 0) continue;
      uint64_t addr = bar.kind == hw::BarKind::kIo ? take(io, bar.size)
                      : bar.kind == hw::BarKind::kMem64 ? take(mem64, bar.size)
                                                        : take(mem32, bar.size);
      const uint32_t reg = hw::pci::kBar0 + 4 * i;
      (void)dev->ConfigWrite(reg, 4, static_cast<uint32_t>(addr));
      if (bar.kind == hw::BarKind::kMem64) (void)dev->ConfigWrite(reg + 4, 4, static_cast<uint32_t>(addr >> 32));
      bar_addresses_[{dev->name(), i}] = addr;
    }
  }
}

uint64_t System::BarAddress(const hw::PciDevice& dev, int bar) const {
  auto it = bar_addresses_.find({dev.name(), bar});
  return it == bar_addresses_.end() ? 0 : it->second;
}

std::string System::IommuNameOf(const hw::Device& dev) const {
  iommu::Iommu* i = iommu_core_->IommuOf(dev);
  return i ? i->name() : "";
}

}  // namespace topology
