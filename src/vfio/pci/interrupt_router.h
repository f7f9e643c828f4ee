// vfio::pci::InterruptRouter: the hw::InterruptSink vfio-pci installs on a device at first open.
// It turns the device's INTx level changes, MSI and MSI-X messages into signals on the eventfds
// the user registered with SET_IRQS, and keeps the INTx masking state (Linux: vfio_pci_irq_ctx
// triggers plus the `masked` / `virq_disabled` state under vdev->irqlock).
//
// INTx is level-triggered and auto-masked: an assertion while unmasked signals the trigger and
// masks; while masked the line simply stays high (pending) and the next unmask signals again.
// The masking is done here, virtually, not with the device's INTx-disable bit, so the sink never
// has to call back into the device (the device's own command register stays as the user set it);
// unmasking reads the device's current level (without holding mu_).
// An optional unmask eventfd (Linux virqfd, KVM's resample fd) is watched by a small thread that
// unmasks when it is signalled.
//
// Owned by the VfioPciDevice. Locks: mu_ (kIrq) guards every field; the device calls the sink
// with no hw lock held, and the IRQ configuration code (under the device set's lock) calls in
// here, so nothing under mu_ calls out except eventfd writes. The unmask watcher thread takes
// only mu_; it is started and joined with mu_ not held.
#pragma once

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "hw/interrupt_sink.h"
#include "hw/pci_device.h"
#include "vfio/pci/eventfd.h"

namespace vfio::pci {

enum class MsiKind : uint8_t { kMsi, kMsix };

class InterruptRouter final : public hw::InterruptSink {
 public:
  // `dev` is asked for its INTx level when unmasking (as the kernel checks the hardware's
  // interrupt status), since the level changes reported to the sink may still be in flight.
  explicit InterruptRouter(hw::PciDevice& dev);
  ~InterruptRouter() override;
  InterruptRouter(const InterruptRouter&) = delete;
  InterruptRouter& operator=(const InterruptRouter&) = delete;

  // ---- hw::InterruptSink ----
  void Intx(bool level) override EXCLUDES(mu_);
  void Msi(uint32_t vector) override EXCLUDES(mu_);
  void MsiX(uint32_t vector) override EXCLUDES(mu_);

  // ---- INTx ----
  // INTx mode on: masked from the start iff the user's virtual INTx-disable is set. An already
  // asserted line fires right away (as a freshly requested level IRQ would).
  void EnableIntx() EXCLUDES(mu_);
  void DisableIntx() EXCLUDES(mu_);  // also drops the trigger and the unmask eventfd
  bool intx_enabled() const EXCLUDES(mu_);
  void SetIntxTrigger(EventFd fd) EXCLUDES(mu_);  // an invalid EventFd removes it
  void MaskIntx() EXCLUDES(mu_);
  void UnmaskIntx() EXCLUDES(mu_);  // a still-asserted line signals again (and stays masked)
  void LoopbackIntx() EXCLUDES(mu_);
  bool intx_masked() const EXCLUDES(mu_);
  // The command register's virtual INTx-disable bit: setting masks, clearing unmasks.
  void SetVirqDisabled(bool disabled) EXCLUDES(mu_);
  // Linux virqfd: an eventfd whose signal unmasks INTx. Invalid EventFd removes it.
  void SetIntxUnmaskFd(EventFd fd) EXCLUDES(mu_, watcher_mu_);

  // ---- MSI / MSI-X ----
  // The vector slots of the active message mode (0: none). Drops every trigger.
  void SetVectorCount(MsiKind kind, uint32_t n) EXCLUDES(mu_);
  void SetVectorTrigger(MsiKind kind, uint32_t vector, EventFd fd) EXCLUDES(mu_);
  bool HasVectorTrigger(MsiKind kind, uint32_t vector) const EXCLUDES(mu_);
  void LoopbackVector(MsiKind kind, uint32_t vector) EXCLUDES(mu_);

  // ---- ERR / REQ ----
  void SetErr(EventFd fd) EXCLUDES(mu_);
  void SetReq(EventFd fd) EXCLUDES(mu_);
  bool has_err() const EXCLUDES(mu_);
  bool has_req() const EXCLUDES(mu_);
  void SignalErr() EXCLUDES(mu_);
  void SignalReq() EXCLUDES(mu_);

  // Everything off (last close).
  void Clear() EXCLUDES(mu_, watcher_mu_);

 private:
  class Watcher;
  // `level`: the device's INTx line, read before taking mu_ (the device lock ranks outside it).
  void UnmaskIntxLocked(bool level) REQUIRES(mu_);
  bool HardwareLevel() const EXCLUDES(mu_) { return dev_.interrupt_counters().intx_level; }

  hw::PciDevice& dev_;
  std::vector<EventFd>& VectorsLocked(MsiKind kind) REQUIRES(mu_) { return kind == MsiKind::kMsi ? msi_ : msix_; }

  mutable vb::Mutex mu_{vb::LockRank::kIrq};  // guards everything below
  bool intx_enabled_ GUARDED_BY(mu_) = false;
  bool intx_masked_ GUARDED_BY(mu_) = false;
  bool virq_disabled_ GUARDED_BY(mu_) = false;
  EventFd intx_trigger_ GUARDED_BY(mu_);
  std::vector<EventFd> msi_ GUARDED_BY(mu_);
  std::vector<EventFd> msix_ GUARDED_BY(mu_);
  EventFd err_ GUARDED_BY(mu_);
  EventFd req_ GUARDED_BY(mu_);

  // The unmask watcher is replaced with mu_ not held (its thread takes mu_).
  vb::Mutex watcher_mu_{vb::LockRank::kLeaf};  // guards watcher_ (held only to swap it)
  std::unique_ptr<Watcher> watcher_ GUARDED_BY(watcher_mu_);
};

}  // namespace vfio::pci
