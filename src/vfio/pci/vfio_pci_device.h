// vfio::pci::VfioPciDevice: vfio-pci's state for one bound PCI function (Linux: struct
// vfio_pci_core_device): whether it is open, whether a function reset works, the virtual config
// space, the interrupt mode and the router that turns the device's interrupts into eventfd
// signals, the ioeventfds registered during this open, the low-power (runtime PM) state with its
// wakeup eventfd, and the hardware state saved at open. It implements the typed device-fd
// operations; the driver (VfioPciDriver) finds it, takes its device set's lock and calls in.
//
// Owned by the driver from probe until remove. Locks: every mutable field is guarded by the
// device set's lock (mu(), kVfioPciDevSet); the InterruptRouter has its own (kIrq) and is the
// only part the device's interrupt delivery touches. Calls into the hw device (kDeviceState)
// are made with the set lock held. The ioeventfd watcher thread takes the set lock to write (so the
// set of ioeventfds is destroyed only after that lock is released: CloseLocked hands it back).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "base/ref_counted.h"
#include "base/result.h"
#include "hw/pci_device.h"
#include "vfio/device.h"
#include "vfio/device_ops.h"
#include "vfio/pci/dev_set.h"
#include "vfio/pci/eventfd.h"
#include "vfio/pci/interrupt_router.h"
#include "vfio/pci/ioeventfd_set.h"
#include "vfio/pci/virtual_config.h"

namespace vfio::pci {

// VFIO_PCI_* region and IRQ indexes (<linux/vfio.h>).
inline constexpr uint32_t kRegionBar0 = 0;
inline constexpr uint32_t kRegionRom = 6;
inline constexpr uint32_t kRegionConfig = 7;
inline constexpr uint32_t kRegionVga = 8;
inline constexpr uint32_t kNumRegions = 9;
inline constexpr uint32_t kIrqIntx = 0, kIrqMsi = 1, kIrqMsix = 2, kIrqErr = 3, kIrqReq = 4;
inline constexpr uint32_t kNumIrqs = 5;
inline constexpr int kOffsetShift = 40;
inline constexpr uint64_t RegionOffset(uint32_t index) { return uint64_t{index} << kOffsetShift; }

struct VfioPciOptions {
  // Interrupt vectors the platform can give one device for MSI/MSI-X (0: as many as asked).
  // With fewer, an enable answers the positive number available (§6.7).
  uint32_t max_vectors = 0;
  // Register BARs (no shared memory behind them) are offered for mmap, trapped and emulated per
  // access, as Linux maps every memory BAR. Off: only memory-backed BARs carry MMAP.
  bool mmap_register_bars = true;
};

class VfioPciDevice {
 public:
  VfioPciDevice(hw::PciDevice& hw, vb::RefPtr<DevSet> set, const VfioPciOptions& options);
  ~VfioPciDevice();
  VfioPciDevice(const VfioPciDevice&) = delete;
  VfioPciDevice& operator=(const VfioPciDevice&) = delete;

  hw::PciDevice& hw() const { return *hw_; }
  DevSet& set() const { return *set_; }
  vb::Mutex& mu() const RETURN_CAPABILITY(set_->mu) { return set_->mu; }
  InterruptRouter& router() { return router_; }
  // The registered VFIO device (set by the driver after registration).
  void set_vfio_device(vb::RefPtr<Device> d) { vdev_ = std::move(d); }
  Device* vfio_device() const { return vdev_.get(); }

  // ---- open / close (§6.2) ----
  vb::Result<void> OpenLocked() REQUIRES(set_->mu);
  // Returns the device's ioeventfds, dropped from it here: the caller destroys them after
  // releasing the set's lock (their watcher thread may be waiting for it).
  [[nodiscard]] std::unique_ptr<IoeventfdSet> CloseLocked() REQUIRES(set_->mu);
  bool open_locked() const REQUIRES(set_->mu) { return open_; }
  bool needs_reset_locked() const REQUIRES(set_->mu) { return needs_reset_; }

  // ---- device fd ----
  DeviceInfo GetInfoLocked() const REQUIRES(set_->mu);
  vb::Result<RegionInfo> GetRegionInfo(uint32_t index) const;
  vb::Result<IrqInfo> GetIrqInfo(uint32_t index) const;
  vb::Result<int> SetIrqsLocked(const SetIrqsRequest& req) REQUIRES(set_->mu);
  vb::Result<size_t> ReadLocked(void* buf, size_t count, uint64_t offset) REQUIRES(set_->mu);
  vb::Result<size_t> WriteLocked(const void* buf, size_t count, uint64_t offset) REQUIRES(set_->mu);
  vb::Result<MmapTarget> Mmap(uint64_t offset, uint64_t length) const;
  // One CPU access through a trapped BAR mapping (DeviceOps::MmioAccess), of the CPU's width.
  vb::Result<void> MmioAccessLocked(uint64_t offset, void* data, unsigned size, bool write) const REQUIRES(set_->mu);
  // A 16/32/64-byte posted write through a trapped mapping; false: split it (the MSI-X table, a
  // device that takes no wide write there).
  bool MmioWriteWideLocked(uint64_t offset, const void* data, unsigned size) const REQUIRES(set_->mu);
  vb::Result<void> ResetLocked() REQUIRES(set_->mu);
  // VFIO_DEVICE_IOEVENTFD (§6.11): EINVAL for a region that is not an implemented BAR, a write
  // beyond the BAR or one touching the MSI-X table; then IoeventfdSet::Assign's answers.
  vb::Result<void> IoeventfdLocked(const IoeventfdRequest& req) REQUIRES(set_->mu);
  // Entries registered now; signals handled since probe: writes made, and writes the device
  // refused (decode off).
  struct IoeventfdStats {
    uint64_t registered = 0;
    uint64_t written = 0;
    uint64_t dropped = 0;
  };
  IoeventfdStats ioeventfd_stats() const EXCLUDES(set_->mu);

  // A reset of the function by any method (FLR, PM, bus), with the hardware state saved and
  // restored around it as the PCI core does; the interrupt setup survives. Clears needs_reset.
  void HardResetLocked() REQUIRES(set_->mu);
  // Whether some function-level reset method exists (FLR, PM reset, or a bus reset that hits
  // only this function).
  bool ResetMethodAvailable() const;
  // ---- runtime PM / low power (6.1's VFIO_DEVICE_FEATURE_LOW_POWER_*) ----
  // LOW_POWER_ENTRY (no eventfd) or ..._WITH_WAKEUP: the device may runtime-suspend while the
  // user keeps it open. EINVAL: already engaged.
  vb::Result<void> LowPowerEntryLocked(EventFd wake) REQUIRES(set_->mu);
  // LOW_POWER_EXIT: leave low power (a no-op when not engaged); signals nothing.
  void LowPowerExitLocked() REQUIRES(set_->mu);
  // The device resumes (every device ioctl, every read/write of a region): with a wakeup eventfd
  // engaged, signal it and leave low power (6.1's runtime_resume); without one the device only
  // resumes for the access and suspends again, staying engaged.
  void RuntimeResumeLocked() REQUIRES(set_->mu);
  bool low_power_locked() const REQUIRES(set_->mu) { return pm_engaged_; }

  // Unregistration request: signal the REQ eventfd.
  void Request() { router_.SignalReq(); }
  // Mmappable BAR: memory (not I/O), backed by shared memory, at least a page.
  bool BarMmappable(int bar) const;

 private:
  enum class IrqMode : uint8_t { kNone, kIntx, kMsi, kMsix };

  // Hardware config state saved/restored around resets (Linux pci_save_state/pci_restore_state).
  std::vector<uint8_t> SaveHardware() const;
  void RestoreHardwareLocked(const std::vector<uint8_t>& saved) REQUIRES(set_->mu);
  void ApplyIrqHardwareLocked() REQUIRES(set_->mu);  // MSI/MSI-X enable and MSI-X entry masks
  void SetMsixEntryMasked(uint32_t vector, bool masked);
  void WriteHw(uint32_t off, unsigned size, uint32_t value);

  vb::Result<uint32_t> ConfigReadPieceLocked(uint32_t off, unsigned size) REQUIRES(set_->mu);
  vb::Result<void> ConfigWritePieceLocked(uint32_t off, unsigned size, uint32_t value) REQUIRES(set_->mu);
  vb::Result<size_t> ConfigRwLocked(uint8_t* buf, size_t count, uint64_t pos, bool write) REQUIRES(set_->mu);
  // [start, end) of the MSI-X table within `bar`, or {0, 0} if the table is not in it.
  std::pair<uint64_t, uint64_t> MsixTableSpan(int bar) const;
  vb::Result<size_t> BarRwLocked(int bar, uint8_t* buf, size_t count, uint64_t pos, bool write) REQUIRES(set_->mu);

  // An ioeventfd fired (watcher thread): writes its data unless the entry is gone by now; a write
  // the BAR refuses (memory decode off) is dropped, as the kernel's test_mem path does.
  void FireIoeventfd(uint64_t id, const IoeventfdKey& key) EXCLUDES(set_->mu);

  vb::Result<int> SetIntxLocked(const SetIrqsRequest& req) REQUIRES(set_->mu);
  vb::Result<int> SetMsiLocked(const SetIrqsRequest& req, MsiKind kind) REQUIRES(set_->mu);
  vb::Result<int> SetErrReqLocked(const SetIrqsRequest& req) REQUIRES(set_->mu);
  vb::Result<int> EnableMsiLocked(MsiKind kind, uint32_t nvec) REQUIRES(set_->mu);
  void DisableMsiLocked(MsiKind kind) REQUIRES(set_->mu);
  vb::Result<void> SetVectorLocked(MsiKind kind, uint32_t vector, int32_t fd) REQUIRES(set_->mu);
  void DisableIrqsLocked() REQUIRES(set_->mu);

  const vb::RefPtr<hw::PciDevice> hw_;
  const vb::RefPtr<DevSet> set_;
  const VfioPciOptions options_;
  vb::RefPtr<Device> vdev_;
  InterruptRouter router_;

  bool open_ GUARDED_BY(set_->mu) = false;
  bool pm_engaged_ GUARDED_BY(set_->mu) = false;  // low power entered (Linux pm_runtime_engaged)
  EventFd pm_wake_ GUARDED_BY(set_->mu);          // the wakeup eventfd of ..._WITH_WAKEUP
  bool reset_works_ GUARDED_BY(set_->mu) = false;
  bool needs_reset_ GUARDED_BY(set_->mu) = false;
  VirtualConfig vconfig_ GUARDED_BY(set_->mu);
  std::vector<uint8_t> saved_at_open_ GUARDED_BY(set_->mu);
  IrqMode mode_ GUARDED_BY(set_->mu) = IrqMode::kNone;
  uint32_t num_vectors_ GUARDED_BY(set_->mu) = 0;  // allocated MSI/MSI-X vectors
  std::unique_ptr<IoeventfdSet> ioeventfds_ GUARDED_BY(set_->mu);  // made at the first IOEVENTFD
  IoeventfdStats ioeventfd_stats_ GUARDED_BY(set_->mu);
};

}  // namespace vfio::pci
