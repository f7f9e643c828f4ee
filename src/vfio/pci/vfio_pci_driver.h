// vfio::pci::VfioPciDriver ("vfio-pci"): the VFIO bus driver for PCI functions (Linux:
// vfio-pci + vfio_pci_core). Probe binds a type-0 function, puts it in its device set (the
// functions sharing a bus reset) and registers a vfio::Device; Remove unregisters, which blocks
// until every user handle is closed while REQ is signalled. As DeviceOps it answers the device fd:
// regions (BARs, ROM, config, VGA) at index << 40, config space virtualization, INTx/MSI/MSI-X/
// ERR/REQ on eventfds, ioeventfds (BAR writes on an eventfd signal), function reset and bus (hot)
// reset, and 6.1's runtime-PM features (LOW_POWER_ENTRY[_WITH_WAKEUP], LOW_POWER_EXIT). Like
// every VFIO driver it manages DMA itself.
//
// Bus mastering is the user's job, as on real hardware: SET_IRQS enables MSI/MSI-X in the
// function's capability, but a message (or a DMA) only goes out once the user has set the bus
// master bit through the config region.
//
// Locks: mu_ (kLeaf) guards the table of bound devices and device sets; it is never held across a
// call out. A device's state is guarded by its set's lock (kVfioPciDevSet), taken by each
// DeviceOps entry point; see vfio_pci_device.h.
#pragma once

#include <map>
#include <memory>

#include "base/mutex.h"
#include "hw/driver.h"
#include "vfio/pci/vfio_pci_device.h"
#include "vfio/vfio.h"

namespace vfio::pci {

class VfioPciDriver final : public hw::Driver, public DeviceOps {
 public:
  explicit VfioPciDriver(Vfio& vfio, VfioPciOptions options = {}) : vfio_(vfio), options_(options) {}
  ~VfioPciDriver() override;

  // ---- hw::Driver ----
  std::string_view name() const override { return "vfio-pci"; }
  bool driver_managed_dma() const override { return true; }
  // ENODEV: not a PCI function; EINVAL: not a type-0 header (bridges); registration's errors.
  vb::Result<void> Probe(hw::Device& dev) override EXCLUDES(mu_);
  void Remove(hw::Device& dev) override EXCLUDES(mu_);

  // ---- DeviceOps ----
  std::string_view driver_name() const override { return name(); }
  vb::Result<void> OpenDevice(Device& dev) override;
  void CloseDevice(Device& dev) override;
  void Request(Device& dev, unsigned count) override;
  DeviceInfo GetInfo(Device& dev) override;
  vb::Result<RegionInfo> GetRegionInfo(Device& dev, uint32_t index) override;
  vb::Result<IrqInfo> GetIrqInfo(Device& dev, uint32_t index) override;
  vb::Result<int> SetIrqs(Device& dev, const SetIrqsRequest& req) override;
  vb::Result<size_t> Read(Device& dev, void* buf, size_t count, uint64_t offset) override;
  vb::Result<size_t> Write(Device& dev, const void* buf, size_t count, uint64_t offset) override;
  vb::Result<MmapTarget> Mmap(Device& dev, uint64_t offset, uint64_t length, int prot) override;
  vb::Result<void> MmioAccess(Device& dev, uint64_t offset, void* data, unsigned size, bool write) override;
  bool MmioWriteWide(Device& dev, uint64_t offset, const void* data, unsigned size) override;
  vb::Result<void> Ioeventfd(Device& dev, const IoeventfdRequest& req) override;
  vb::Result<void> Reset(Device& dev) override;
  // ENODEV: no bus reset possible (root bus). An affected device without an IOMMU group is listed
  // with has_group false (the UAPI layer answers EPERM after its ENOSPC check, as 6.1 does).
  vb::Result<std::vector<HotResetDependent>> GetPciHotResetInfo(Device& dev) override;
  // ENODEV as above; EINVAL: no groups, more groups than affected devices, an affected device not
  // in this device's set (not bound to vfio-pci), or a set member in none of the groups.
  vb::Result<void> PciHotReset(Device& dev, std::span<GroupFile* const> groups) override;
  // 6.1's vfio-pci features: LOW_POWER_ENTRY, LOW_POWER_EXIT (SET only, no payload),
  // LOW_POWER_ENTRY_WITH_WAKEUP (SET only, 8 bytes); PCI_VF_TOKEN and everything else ENOTTY (no
  // function here is an SR-IOV PF, so none has a VF token).
  vb::Result<FeatureSupport> Feature(Device& dev, uint32_t index) override;
  // ENTRY(_WITH_WAKEUP): EINVAL if already in low power; WITH_WAKEUP: EINVAL for a negative fd,
  // EBADF for one not open, EINVAL for one that is not an eventfd.
  vb::Result<void> SetFeature(Device& dev, uint32_t index, std::span<const uint8_t> payload) override;
  void RuntimeResume(Device& dev) override;

  vb::RefPtr<Device> VfioDeviceOf(const hw::Device& dev) const EXCLUDES(mu_);
  // The driver's state for a bound function (tests and benchmarks), or null.
  VfioPciDevice* StateOf(const hw::Device& dev) const EXCLUDES(mu_);

 private:
  VfioPciDevice& Get(Device& dev) const EXCLUDES(mu_);
  // Every function a secondary bus reset of `dev`'s bus hits (that bus and everything below).
  static vb::Result<std::vector<hw::PciDevice*>> AffectedByBusReset(const hw::PciDevice& dev);
  // After a last close: if no member of the set is open, some member needs a reset, and every
  // function a bus reset hits is in the set, reset the bus (Linux vfio_pci_dev_set_try_reset).
  void TryBusResetLocked(VfioPciDevice& closed) REQUIRES(closed.mu());

  Vfio& vfio_;
  const VfioPciOptions options_;
  mutable vb::Mutex mu_{vb::LockRank::kLeaf};  // guards bound_ and sets_
  std::map<const hw::Device*, std::unique_ptr<VfioPciDevice>> bound_ GUARDED_BY(mu_);
  std::map<const void*, vb::RefPtr<DevSet>> sets_ GUARDED_BY(mu_);
};

}  // namespace vfio::pci
