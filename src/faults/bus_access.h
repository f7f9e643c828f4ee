// faults bus access helpers: how one architectural memory operand becomes MemoryBus calls.
// Operands of 1, 2, 4 or 8 bytes are one access of that width at that address, aligned or not
// (the bus sees what the CPU would have put on the wire). Wider operands (vector moves,
// MOVDIR64B) and the enabled bytes of a masked vector access are split into naturally aligned
// pieces of at most 8 bytes, in address order, so a device register is never hit by a piece that
// straddles it; a full-width store is first offered whole through WriteWide.
//
// Every function stops at the first access that fails and reports it; the accesses before it
// have happened (the device saw them), as on the CPU.
#pragma once

#include <cstdint>

#include "faults/x86_emulator.h"

namespace faults {

struct AccessStatus {
  BusStatus status = BusStatus::kOk;
  uint64_t addr = 0;  // the failing access's address when status != kOk
  bool ok() const { return status == BusStatus::kOk; }
};

// `size` bytes at `addr` (1..64) into `out`.
AccessStatus BusRead(MemoryBus& bus, uint64_t addr, uint8_t* out, unsigned size);
// `size` bytes at `addr` (1..64); 16, 32 and 64 are offered to WriteWide first.
AccessStatus BusWrite(MemoryBus& bus, uint64_t addr, const uint8_t* data, unsigned size);
// Only the bytes whose `enable` entry is nonzero are accessed; the rest of `out` is untouched. A
// fully enabled operand is the same as the unmasked call.
AccessStatus BusReadMasked(MemoryBus& bus, uint64_t addr, uint8_t* out, unsigned size, const uint8_t* enable);
AccessStatus BusWriteMasked(MemoryBus& bus, uint64_t addr, const uint8_t* data, unsigned size,
                            const uint8_t* enable);

}  // namespace faults
