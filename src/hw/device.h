// hw::Device: one device of the simulated platform, on the PCI bus or the platform bus (so an
// IOMMU group can span buses, the seed's odd topology). Refcounted: the Machine holds one
// reference while the device is plugged in; drivers and VFIO objects that use it hold their own,
// so memory stays valid after a surprise removal. "Present" is the state that matters to the
// seed's rule: a removed device is still valid memory but must not be used for IOMMU operations.
//
// Locks: driver_mu_ (kDeviceDriver) guards the bound driver. The IOMMU link is written by the
// IOMMU layer under its own group lock (Linux: dev->iommu / dev->iommu_group).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/mutex.h"
#include "base/ref_counted.h"
#include "hw/dma_port.h"

namespace hw {

class Driver;
class Machine;

enum class BusType : uint8_t { kPci, kPlatform };

// What the IOMMU layer hangs off a device (Linux: dev->iommu). hw never looks inside it.
class IommuLink {
 public:
  virtual ~IommuLink() = default;
};

enum class DeviceState : uint8_t {
  kDetached,   // created, not yet plugged into a machine
  kPresent,    // plugged in and probed
  kRemoving,   // hot-unplug in progress: drivers are being unbound
  kRemoved,    // gone from the machine; memory alive only through references
};

class Device : public vb::RefCounted<Device> {
 public:
  virtual ~Device();

  const std::string& name() const { return name_; }  // "0000:00:02.0", "platform:smmu-client0"
  BusType bus_type() const { return bus_type_; }
  // PCI requester id (bus << 8 | devfn) or the platform stream id.
  virtual uint32_t requester_id() const = 0;

  DmaPort& dma() { return dma_; }

  DeviceState state() const { return state_.load(std::memory_order_acquire); }
  bool present() const { return state() == DeviceState::kPresent; }
  void set_state(DeviceState s) { state_.store(s, std::memory_order_release); }

  // The driver currently bound, or null. Bind/unbind go through Machine::BindDriver/UnbindDriver.
  Driver* driver() const EXCLUDES(driver_mu_);

  IommuLink* iommu_link() const { return iommu_link_.get(); }
  void set_iommu_link(std::unique_ptr<IommuLink> link) { iommu_link_ = std::move(link); }

  Machine* machine() const { return machine_.load(std::memory_order_acquire); }

  // Set by a surprise removal before drivers unbind: the hardware is gone. PCI config and BAR
  // reads return all-ones, writes are dropped, and the device starts no new DMA.
  bool disconnected() const { return disconnected_.load(std::memory_order_acquire); }

 protected:
  Device(std::string name, BusType bus) : name_(std::move(name)), bus_type_(bus), dma_(*this) {}
  void set_name(std::string name) { name_ = std::move(name); }
  // Subclasses stop background work here (the executor may still run a task that then sees
  // disconnected()).
  virtual void OnSurpriseRemoval() { disconnected_.store(true, std::memory_order_release); }

 private:
  friend class Machine;

  std::string name_;
  const BusType bus_type_;
  DmaPort dma_;
  std::atomic<DeviceState> state_{DeviceState::kDetached};
  std::atomic<bool> disconnected_{false};
  std::unique_ptr<IommuLink> iommu_link_;
  std::atomic<Machine*> machine_{nullptr};  // set while plugged in (read by device models' threads)

  mutable vb::Mutex driver_mu_{vb::LockRank::kDeviceDriver};  // guards driver_
  Driver* driver_ GUARDED_BY(driver_mu_) = nullptr;
};

}  // namespace hw
