// topology::System: a whole simulated machine with the VFIO stack on top, built from a
// TopologySpec: the hw::Machine and its devices, the IOMMU core with its instances and the
// device → instance assignment, the Vfio core with the type1 backend registered, and the drivers
// (vfio-pci, vfio-platform, pcieport, pci-stub and kernel DMA-API drivers by name) bound as the
// spec says. It is what the CLI, the preload library and embedders instantiate.
//
// Destruction unplugs every device first (so drivers unregister from VFIO while VFIO still
// exists), then tears the layers down from the top.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "hw/machine.h"
#include "iommu/iommu_core.h"
#include "topology/topology_spec.h"
#include "vfio/basic_driver.h"
#include "vfio/type1/type1_iommu.h"
#include "vfio/vfio.h"

namespace topology {

class System {
 public:
  // Builds and boots the machine. On failure (a device the hardware model refuses, a driver bind
  // the IOMMU core refuses) `error` says which device and why, and nothing is left behind.
  static std::unique_ptr<System> Create(const TopologySpec& spec, std::string* error);
  ~System();
  System(const System&) = delete;
  System& operator=(const System&) = delete;

  hw::Machine& machine() { return machine_; }
  iommu::IommuCore& iommu_core() { return *iommu_core_; }
  vfio::Vfio& vfio() { return *vfio_; }
  vfio::type1::Type1Backend& type1() { return type1_; }
  const TopologySpec& spec() const { return spec_; }

  // The driver registered under `name`; kernel DMA-API drivers are created on first use.
  hw::Driver& DriverNamed(const std::string& name);
  // The IOMMU instance that serves `dev` (name), or "" for none.
  std::string IommuNameOf(const hw::Device& dev) const;
  // The address firmware assigned to a BAR at boot (0 if the BAR is absent).
  uint64_t BarAddress(const hw::PciDevice& dev, int bar) const;

 private:
  explicit System(const TopologySpec& spec);
  bool Build(std::string* error);
  // What firmware does before the OS boots: gives every BAR a naturally aligned address (32-bit
  // memory below 4 GiB, 64-bit memory above, I/O ports) and programs it into the BAR.
  void AssignBarAddresses();

  TopologySpec spec_;
  hw::Machine machine_;
  std::unique_ptr<iommu::IommuCore> iommu_core_;
  std::unique_ptr<vfio::Vfio> vfio_;
  vfio::type1::Type1Backend type1_;
  std::unique_ptr<hw::Driver> vfio_pci_;
  std::unique_ptr<vfio::BasicDriver> vfio_platform_;
  std::map<std::string, std::unique_ptr<hw::Driver>> other_drivers_;
  std::map<std::pair<std::string, int>, uint64_t> bar_addresses_;  // (device name, bar) → address
};

}  // namespace topology
