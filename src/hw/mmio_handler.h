// hw::MmioHandler: the behaviour behind a register BAR. A device model implements it and passes it
// to PciDevice::DefineBar; PciDevice calls it for accesses that reach the BAR while memory (or I/O)
// decode is on, after carving out the MSI-X table and PBA, which it emulates itself.
//
// Called on the accessing thread with the device's state lock held (PciDevice::state_mu_): an
// implementation may touch the device's guarded state and raise interrupts through the ...Locked
// helpers, but must not block or call the device's public access functions.
#pragma once

#include <cstdint>

namespace hw {

class MmioHandler {
 public:
  virtual ~MmioHandler() = default;
  // size is 1, 2, 4 or 8; offset + size <= the BAR's size. The value is little-endian in the low
  // `size` bytes.
  virtual uint64_t MmioRead(int bar, uint64_t offset, unsigned size) = 0;
  virtual void MmioWrite(int bar, uint64_t offset, unsigned size, uint64_t value) = 0;
  // One posted write of 16, 32 or 64 bytes (a CPU's SSE/AVX store or MOVDIR64B), if the device
  // takes such writes at `offset`; false (the default) makes the caller split it into accesses of
  // at most 8 bytes.
  virtual bool MmioWriteWide(int bar, uint64_t offset, const uint8_t* data, unsigned size) { return false; }
};

}  // namespace hw
