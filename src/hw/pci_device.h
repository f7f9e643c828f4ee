// hw::PciDevice: one PCI function: its address, its place in the hierarchy (the bus it sits on
// and, for bridges, the bus behind it), its config space (header, capability lists, ACS), its BARs
// and its interrupts (INTx pin, MSI, MSI-X). Device models (edu, the test endpoint, the topology
// functions in hw/pci_functions.h) subclass it: they describe BARs and capabilities in their
// factory, before the function is plugged in, and implement register BARs with an MmioHandler.
//
// Locks: state_mu_ (kDeviceState) guards config space, the MSI-X table and PBA, non-shared BAR
// storage, interrupt state and the device model's registers. MMIO handlers run on the caller's
// thread with it held. Interrupts raised under it are queued and delivered to the InterruptSink
// after it is released (no hw lock held during a sink call). Device models run their DMA under it
// (DmaReadLocked/DmaWriteLocked), so a DmaPort FaultSink may only take locks ranked after
// kDeviceState (the fault log is). Reading a bridge's subordinate bus number walks the buses below
// under the Machine's bus lock (kHwBus) before taking state_mu_. Topology fields are fixed once
// the device is plugged in and need no lock.
//
// NOTE for implementers: the topology accessors below are the contract the IOMMU core's group
// formation uses; they keep their names and meaning.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "hw/bar.h"
#include "hw/capability_builder.h"
#include "hw/config_space.h"
#include "hw/device.h"
#include "hw/interrupt_sink.h"
#include "hw/mmio_handler.h"
#include "hw/pci_bus.h"
#include "hw/pci_types.h"

namespace hw {

class PciBus;

// What a PciDevice has counted of its interrupts since creation (whether or not a sink is
// installed): messages sent, INTx assertions (low → high edges of the effective line), and
// messages dropped because MSI/MSI-X was off, bus mastering was off, or the vector was invalid.
struct InterruptCounters {
  uint64_t intx_assertions = 0;
  bool intx_level = false;   // the effective INTx line now
  uint64_t msi = 0;
  uint64_t msix = 0;
  uint64_t dropped = 0;
};

class PciDevice : public Device {
 public:
  static constexpr int kMaxBars = 6;

  ~PciDevice() override;

  // ---- identity and topology (fixed while plugged in) ----
  const PciAddress& address() const { return address_; }
  uint32_t requester_id() const override { return address_.requester_id(); }
  PciBus* bus() const { return bus_; }                    // the bus this function sits on
  PciBus* secondary_bus() const { return secondary_; }    // bridges: the bus behind; else null
  bool is_bridge() const { return header_type_ == 1; }
  uint8_t secondary_bus_number() const { return secondary_bus_number_; }
  PcieType pcie_type() const { return pcie_type_; }
  bool is_pcie() const { return pcie_type_ != PcieType::kConventional; }
  bool multifunction() const { return multifunction_; }   // header type bit 7
  uint16_t vendor_id() const { return vendor_id_; }
  uint16_t device_id() const { return device_id_; }
  uint32_t class_code() const { return class_code_; }     // 24 bits: base, sub, prog-if
  uint8_t header_type() const { return header_type_; }    // 0 or 1, without bit 7
  uint8_t revision() const { return revision_; }
  uint8_t interrupt_pin() const { return interrupt_pin_; } // 0 none, 1..4 = INTA..INTD

  // ACS, living in the config space's ACS extended capability. nullopt when the function has no
  // ACS capability. acs_capability() is the capability register's feature bits (AcsBits);
  // acs_control() the control register as software last left it.
  std::optional<uint16_t> acs_capability() const EXCLUDES(state_mu_);
  std::optional<uint16_t> acs_control() const EXCLUDES(state_mu_);
  // Gives the function an ACS extended capability with these capability and control registers
  // (or rewrites the existing one). The control register is then writable, through config
  // writes, in the bits the capability has. (A conventional function's config space is 256
  // bytes: the capability is stored but not visible to ConfigRead, as it could not be in real
  // hardware; the accessors above still report it.)
  void set_acs(uint16_t capability, uint16_t control) EXCLUDES(state_mu_);
  // Simulated device-specific quirk (Linux pci_dev_specific_acs_enabled): when set, the answer of
  // the "ACS enabled" test for this device, whatever its capability says.
  std::optional<bool> acs_quirk() const { return acs_quirk_; }
  void set_acs_quirk(std::optional<bool> v) { acs_quirk_ = v; }
  // Extra DMA alias functions on the same bus (Linux dma_alias_mask), as devfns.
  const std::vector<uint8_t>& dma_aliases() const { return dma_aliases_; }
  void add_dma_alias(uint8_t devfn) { dma_aliases_.push_back(devfn); }

  // ---- config space (the bus's view) ----
  uint32_t config_size() const { return is_pcie() ? ConfigSpace::kExpressSize : ConfigSpace::kConventionalSize; }
  // EINVAL: size not 1/2/4, unaligned, or beyond config_size(). A disconnected (surprise-removed)
  // function reads all-ones and drops writes, successfully, as the hardware would look.
  vb::Result<uint32_t> ConfigRead(uint32_t offset, unsigned size) EXCLUDES(state_mu_);
  vb::Result<void> ConfigWrite(uint32_t offset, unsigned size, uint32_t value) EXCLUDES(state_mu_);
  // The visible config bytes, as `lspci -xxxx` would dump them (device-side view, no side effects).
  std::vector<uint8_t> ConfigSnapshot() const EXCLUDES(state_mu_);

  // Capability offsets (nullopt when absent).
  std::optional<uint8_t> pcie_offset() const { return pcie_off_ ? std::optional<uint8_t>(pcie_off_) : std::nullopt; }
  std::optional<uint8_t> pm_offset() const { return pm_off_ ? std::optional<uint8_t>(pm_off_) : std::nullopt; }
  std::optional<uint8_t> msi_offset() const { return msi_off_ ? std::optional<uint8_t>(msi_off_) : std::nullopt; }
  std::optional<uint8_t> msix_offset() const { return msix_off_ ? std::optional<uint8_t>(msix_off_) : std::nullopt; }
  std::optional<uint16_t> acs_offset() const EXCLUDES(state_mu_);
  const std::optional<MsiSpec>& msi_spec() const { return msi_spec_; }
  const std::optional<MsixSpec>& msix_spec() const { return msix_spec_; }
  // Whether PCIe device capabilities advertise FLR.
  bool flr_capable() const { return flr_; }

  // ---- command register ----
  uint16_t command() const EXCLUDES(state_mu_);
  bool memory_enabled() const EXCLUDES(state_mu_);
  bool io_enabled() const EXCLUDES(state_mu_);
  bool bus_master_enabled() const EXCLUDES(state_mu_);

  // ---- BARs ----
  int num_bars() const { return header_type_ == 1 ? 2 : kMaxBars; }
  // The BAR's description; kind kNone for an unused slot, the upper half of a 64-bit BAR, or an
  // index out of range.
  const BarSpec& bar(int index) const;
  // Mappable BARs only: the memfd (owned by the device; dup it to keep it) and the device's own
  // mapping of it. -1 / null otherwise.
  int bar_fd(int index) const;
  void* bar_host(int index) const;
  // BAR access by the CPU (the layer above routes by BAR index; the address programmed into the
  // BAR register is not used for routing). Register BARs take sizes 1, 2, 4 and 8; memory BARs
  // any size. Accesses to the MSI-X table/PBA are emulated here (an access straddling their edge
  // is EINVAL).
  // Errors: EINVAL: no such BAR, range outside the BAR, bad size. EIO: memory (I/O) decode is off
  // in the command register: the read returns all-ones and the write is dropped (vfio-pci answers
  // EIO then). A disconnected function reads all-ones and drops writes, successfully.
  vb::Result<void> BarRead(int bar, uint64_t offset, void* data, size_t size) EXCLUDES(state_mu_);
  vb::Result<void> BarWrite(int bar, uint64_t offset, const void* data, size_t size) EXCLUDES(state_mu_);
  // One posted write of 16, 32 or 64 bytes to a register BAR, as one access. false: the device
  // takes no such write there (or decode is off, or it is removed); nothing was written.
  bool BarWriteWide(int bar, uint64_t offset, const void* data, unsigned size) EXCLUDES(state_mu_);

  // ---- interrupts ----
  // Installs (or with null removes) the sink. When this returns, no call into the previous sink is
  // in progress (unless this is called from inside that sink's own call).
  void SetInterruptSink(InterruptSink* sink) EXCLUDES(state_mu_);
  // The device model's interrupt lines; each takes the state lock and delivers after releasing
  // it. Models that already hold the lock use the ...Locked forms below.
  void RaiseIntx() EXCLUDES(state_mu_);     // assert the pin (level): status bit 3 set
  void LowerIntx() EXCLUDES(state_mu_);
  void SignalMsi(uint32_t vector) EXCLUDES(state_mu_);
  void SignalMsix(uint32_t vector) EXCLUDES(state_mu_);
  InterruptCounters interrupt_counters() const EXCLUDES(state_mu_);
  uint64_t msi_count(uint32_t vector) const EXCLUDES(state_mu_);
  uint64_t msix_count(uint32_t vector) const EXCLUDES(state_mu_);
  bool msi_pending(uint32_t vector) const EXCLUDES(state_mu_);    // MSI pending register bit
  bool msix_pending(uint32_t vector) const EXCLUDES(state_mu_);   // MSI-X PBA bit
  bool msi_enabled() const EXCLUDES(state_mu_);
  bool msix_enabled() const EXCLUDES(state_mu_);

  // ---- reset ----
  // Function-level reset: config space back to its power-on state (BAR addresses, command,
  // capabilities' control registers, ACS control), MSI-X table masked and cleared, pending bits
  // and the INTx pin cleared, then the model's own registers (OnResetLocked). Also triggered by
  // writing "initiate FLR" to the PCIe device control register when flr_capable().
  void FunctionReset() EXCLUDES(state_mu_);

 protected:
  struct Identity {
    uint16_t vendor_id = 0;
    uint16_t device_id = 0;
    uint32_t class_code = 0;
    uint8_t header_type = 0;   // 0 endpoint, 1 bridge (bit 7 multifunction is separate)
    PcieType pcie_type = PcieType::kConventional;
    bool multifunction = false;
    uint8_t secondary_bus_number = 0;  // bridges: the bus number behind the bridge
    uint8_t revision = 0;
    uint16_t subsystem_vendor_id = 0;  // type 0 only
    uint16_t subsystem_id = 0;
    uint8_t interrupt_pin = 0;         // 0 none, 1 INTA .. 4 INTD
    // PCIe capability details (pcie_type != kConventional).
    uint8_t link_speed = 3;
    uint8_t link_width = 1;
    bool flr = false;
    bool slot = false;
    uint8_t port_number = 0;
  };
  // Lays out the header and, for PCIe functions, the PCI Express capability (first in the list).
  PciDevice(PciAddress address, const Identity& id);

  // ---- setup, from a subclass factory before the device is plugged in ----
  // EINVAL: bad index (a 64-bit BAR needs two slots: index < num_bars() - 1), slot taken, bad spec;
  // ENOMEM: no memory for the backing.
  vb::Result<void> DefineBar(int index, const BarSpec& spec, MmioHandler* handler = nullptr) EXCLUDES(state_mu_);
  vb::Result<uint8_t> AddPmCapability(const PmSpec& spec = {}) EXCLUDES(state_mu_);
  vb::Result<uint8_t> AddMsiCapability(const MsiSpec& spec) EXCLUDES(state_mu_);
  // The table and PBA BARs must already be defined and be memory BARs that hold them.
  vb::Result<uint8_t> AddMsixCapability(const MsixSpec& spec) EXCLUDES(state_mu_);

  // ---- for device models, under the state lock ----
  // Locks the device state; on destruction unlocks and delivers queued interrupts.
  class SCOPED_CAPABILITY StateLock {
   public:
    explicit StateLock(PciDevice& d) ACQUIRE(d.state_mu_) : d_(d) { d_.state_mu_.Lock(); }
    ~StateLock() RELEASE() {
      d_.state_mu_.Unlock();
      d_.FlushInterrupts();
    }
    StateLock(const StateLock&) = delete;
    StateLock& operator=(const StateLock&) = delete;

   private:
    PciDevice& d_;
  };

  ConfigSpace& config_locked() REQUIRES(state_mu_) { return config_; }
  // Takes the config space as it is now (bytes and write masks) as the power-on state that a
  // function reset restores: a model that declares registers in config_locked() after its
  // capabilities calls this, or the first FLR turns those registers read-only.
  void SaveResetStateLocked() REQUIRES(state_mu_);
  void RaiseIntxLocked() REQUIRES(state_mu_);
  void LowerIntxLocked() REQUIRES(state_mu_);
  void SignalMsiLocked(uint32_t vector) REQUIRES(state_mu_);
  void SignalMsixLocked(uint32_t vector) REQUIRES(state_mu_);
  bool msi_enabled_locked() const REQUIRES(state_mu_);
  bool msix_enabled_locked() const REQUIRES(state_mu_);
  bool bus_master_locked() const REQUIRES(state_mu_);
  // Delivers interrupts queued under the lock. Call with the lock released (StateLock does).
  void FlushInterrupts() EXCLUDES(state_mu_);

  // The device's DMA, gated as hardware gates it: EIO (nothing transferred, no fault recorded)
  // when bus mastering is off, ENODEV when the device is disconnected; otherwise DmaPort's answer
  // (EFAULT with a fault recorded and nothing written on a translation miss).
  vb::Result<void> DmaReadLocked(uint64_t iova, void* dst, size_t len) REQUIRES(state_mu_);
  vb::Result<void> DmaWriteLocked(uint64_t iova, const void* src, size_t len) REQUIRES(state_mu_);
  // Memory to memory, gated the same way (DmaPort::Copy: ENOTSUP means use Read and Write).
  vb::Result<void> DmaCopyLocked(uint64_t src, uint64_t dst, size_t len, DmaAccess* failed) REQUIRES(state_mu_);

  // Hooks for models.
  virtual void OnConfigWriteLocked(uint32_t offset, unsigned size) REQUIRES(state_mu_) {}
  virtual void OnResetLocked() REQUIRES(state_mu_) {}
  // Stops interrupts (the line drops) and marks the device disconnected; models that override it
  // call this first, then stop their background work.
  void OnSurpriseRemoval() override;

  mutable vb::Mutex state_mu_{vb::LockRank::kDeviceState};  // guards config, BAR storage, interrupts, model registers

 private:
  friend class Machine;
  friend class PciBus;

  struct IrqEvent {
    enum Kind : uint8_t { kIntx, kMsi, kMsix } kind;
    uint32_t value;  // level for kIntx, vector otherwise
  };

  uint16_t CommandLocked() const REQUIRES(state_mu_) { return config_.Get16(0x04); }
  void UpdateIntxLocked() REQUIRES(state_mu_);
  void DeliverPendingLocked() REQUIRES(state_mu_);
  void QueueIrqLocked(IrqEvent e) REQUIRES(state_mu_);
  void DeliverMsiLocked(uint32_t vector) REQUIRES(state_mu_);
  void DeliverMsixLocked(uint32_t vector) REQUIRES(state_mu_);
  void ResetMsixTableLocked() REQUIRES(state_mu_);
  void FunctionResetLocked() REQUIRES(state_mu_);
  uint8_t ComputeSubordinateBus() const;
  uint32_t MsiMaskOffset() const;
  uint32_t MsiPendingOffset() const;
  // Where an access lands in the MSI-X structures: table, PBA, neither, or straddling (error).
  enum class MsixRegion { kNone, kTable, kPba, kStraddle };
  MsixRegion ClassifyMsix(int bar, uint64_t offset, size_t size, uint64_t* rel) const;
  vb::Result<void> BarAccess(int bar, uint64_t offset, void* data, size_t size, bool write) EXCLUDES(state_mu_);

  PciAddress address_;
  PciBus* bus_ = nullptr;
  PciBus* secondary_ = nullptr;
  uint16_t vendor_id_;
  uint16_t device_id_;
  uint32_t class_code_;
  uint8_t header_type_;
  PcieType pcie_type_;
  bool multifunction_;
  uint8_t secondary_bus_number_;
  uint8_t revision_;
  uint8_t interrupt_pin_;
  bool flr_;
  std::optional<bool> acs_quirk_;
  std::vector<uint8_t> dma_aliases_;

  // Capability offsets and specs: written during setup (before plugging), then read-only.
  uint8_t pcie_off_ = 0;
  uint8_t pm_off_ = 0;
  uint8_t msi_off_ = 0;
  uint8_t msix_off_ = 0;
  std::optional<MsiSpec> msi_spec_;
  std::optional<MsixSpec> msix_spec_;
  std::array<std::unique_ptr<Bar>, kMaxBars> bars_;  // set during setup, then fixed

  ConfigSpace config_ GUARDED_BY(state_mu_);
  ConfigSpace reset_config_ GUARDED_BY(state_mu_);   // power-on state for FunctionReset
  CapabilityBuilder caps_ GUARDED_BY(state_mu_);
  uint16_t acs_off_ GUARDED_BY(state_mu_) = 0;
  std::vector<uint8_t> msix_table_ GUARDED_BY(state_mu_);   // 16 bytes per entry
  std::vector<uint8_t> msix_pba_ GUARDED_BY(state_mu_);     // 1 bit per entry, qword-padded

  bool pin_asserted_ GUARDED_BY(state_mu_) = false;
  bool intx_line_ GUARDED_BY(state_mu_) = false;
  InterruptCounters counters_ GUARDED_BY(state_mu_);
  std::array<uint64_t, 32> msi_counts_ GUARDED_BY(state_mu_) = {};
  std::vector<uint64_t> msix_counts_ GUARDED_BY(state_mu_);
  InterruptSink* sink_ GUARDED_BY(state_mu_) = nullptr;
  std::vector<IrqEvent> irq_queue_ GUARDED_BY(state_mu_);  // bounded: see QueueIrqLocked
  bool delivering_ GUARDED_BY(state_mu_) = false;
  std::thread::id deliverer_ GUARDED_BY(state_mu_);
  vb::CondVar delivered_cv_;  // signalled when a delivery round ends
};

}  // namespace hw
