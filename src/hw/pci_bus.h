// hw::PciBus: one PCI bus of a Machine: its number, the bridge above it (null for a root bus) and
// the functions on it. Buses are owned by the Machine and live as long as it does (a bus behind a
// removed bridge stays valid memory, empty), so a PciBus* never dangles.
//
// Locks: the device list is guarded by the Machine's bus lock (LockRank::kHwBus); devices()
// returns a snapshot taken under it.
#pragma once

#include <cstdint>
#include <vector>

namespace hw {

class Machine;
class PciDevice;

// A PCI bus: its number, the bridge above it (null for a root bus), the functions on it.
class PciBus {
 public:
  PciBus(const PciBus&) = delete;
  PciBus& operator=(const PciBus&) = delete;

  uint8_t number() const { return number_; }
  PciDevice* self() const { return self_; }           // the bridge above; null for a root bus
  PciBus* parent() const;                             // self()->bus(); null for a root bus
  bool is_root() const { return self_ == nullptr; }
  // Functions currently present on this bus, ordered by devfn.
  std::vector<PciDevice*> devices() const;
  PciDevice* FindDevfn(uint8_t devfn) const;

 private:
  friend class Machine;
  PciBus(Machine& machine, uint8_t number, PciDevice* self)
      : machine_(machine), number_(number), self_(self) {}

  Machine& machine_;
  uint8_t number_ = 0;
  PciDevice* self_ = nullptr;        // meaningful only while !dead_
  bool dead_ = false;                // guarded by machine_.bus_mu_: its bridge was removed
  std::vector<PciDevice*> devices_;  // guarded by machine_.bus_mu_, sorted by devfn
};

}  // namespace hw
