// hw::Bar: the storage behind one BAR of a PCI function. Three flavours:
//  - mappable: plain memory in a memfd mapped MAP_SHARED, so a later user mmap of the fd and the
//    device model see the same bytes (no side effects; vfio-pci may offer it for mmap);
//  - register: accesses go to an MmioHandler (not mappable);
//  - plain: non-mappable memory held privately (reads return what was written).
// Owned by its PciDevice; the fd and mapping live as long as the Bar. Access to non-shared storage
// is guarded by the owning device's state lock; the shared memory itself is, like real memory
// behind a BAR, unsynchronized.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "hw/mmio_handler.h"
#include "hw/pci_types.h"

namespace hw {

class Bar {
 public:
  // EINVAL: the spec is not valid (see ValidateSpec), or a mappable BAR is given a handler.
  // ENOMEM: the memfd or memory could not be made.
  static vb::Result<std::unique_ptr<Bar>> Create(const BarSpec& spec, MmioHandler* handler);
  // EINVAL unless: kind is set; memory BARs are a power of two of 16 bytes .. 1 TiB (32-bit ones
  // at most 2 GiB); I/O BARs a power of two of 4..256 bytes, neither prefetchable nor mappable.
  static vb::Result<void> ValidateSpec(const BarSpec& spec);
  ~Bar();
  Bar(const Bar&) = delete;
  Bar& operator=(const Bar&) = delete;

  const BarSpec& spec() const { return spec_; }
  MmioHandler* handler() const { return handler_; }
  int fd() const { return fd_; }                 // -1 unless mappable
  uint8_t* host() const { return host_; }        // null for register BARs
  // Restores the power-on contents of plain and mappable memory (zeroes).
  void Clear();

 private:
  Bar(const BarSpec& spec, MmioHandler* handler) : spec_(spec), handler_(handler) {}

  BarSpec spec_;
  MmioHandler* handler_ = nullptr;
  int fd_ = -1;
  uint8_t* host_ = nullptr;
  std::vector<uint8_t> plain_;
};

}  // namespace hw
