// faults::EmulateAccess: one x86-64 instruction that touched a trapped MMIO page, decoded with
// Zydis (Debian's libzydis 4.0; see docs/design/0008-mapped-registers.md for why not Capstone) and
// carried out as device accesses, with the thread's registers, flags and RIP updated in the
// signal frame exactly as the CPU would have left them.
//
// Pure: no locks, no allocation, no global state but a cached CPUID read; safe to call from a
// SIGSEGV handler. Every memory operand goes through the MemoryBus the caller provides, which
// routes each access to a device (a trapped page) or to ordinary memory. Architectural widths are
// kept (a 4-byte load is one 4-byte device read; a plain store makes no read). Vector moves
// wider than 8 bytes are offered to the bus as one wide write (WriteWide); if the bus refuses,
// they become device accesses of at most 8 bytes in address order. Loads wider than 8 bytes are
// reads of at most 8 bytes in address order.
#pragma once

#include <signal.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdint>

namespace faults {

enum class BusStatus {
  kOk,
  kBusError,  // the device refused the access (memory decode off, ...): SIGBUS at that address
  kSegv,      // ordinary memory that cannot be accessed: SIGSEGV at that address
};

class MemoryBus {
 public:
  virtual ~MemoryBus() = default;
  // Copies up to `max` instruction bytes at `rip` into `out`; returns how many could be read
  // (fewer near an unreadable page; 0 when none).
  virtual size_t FetchCode(uint64_t rip, uint8_t* out, size_t max) = 0;
  // One access of `size` bytes (1, 2, 4 or 8), little-endian in `data`.
  virtual BusStatus Read(uint64_t addr, void* data, unsigned size) = 0;
  virtual BusStatus Write(uint64_t addr, const void* data, unsigned size) = 0;
  // One posted write of 16, 32 or 64 bytes. kOk when taken as one access; returning false in
  // `*accepted` (with kOk) asks the emulator to split it into accesses of at most 8 bytes.
  virtual BusStatus WriteWide(uint64_t addr, const void* data, unsigned size, bool* accepted) = 0;
};

enum class Outcome {
  kDone,         // emulated; registers and RIP updated
  kUnsupported,  // not an instruction we emulate: nothing accessed, registers untouched
  kBusError,     // an access answered kBusError; fault_addr says where
  kSegv,         // an access answered kSegv; fault_addr says where
};

struct EmulationResult {
  Outcome outcome = Outcome::kUnsupported;
  uint64_t fault_addr = 0;   // kBusError / kSegv: the address of the failing access
  uint8_t bytes[15] = {};    // the instruction's bytes as fetched (for the diagnostic line)
  uint8_t length = 0;        // how many of `bytes` were fetched / belong to the instruction
  char mnemonic[24] = {};    // Zydis's mnemonic ("mov", "vmovdqu64"), "(bad)" if undecodable
};

// Emulates the instruction at uc's RIP. `fault_addr` is the si_addr of the trap (used only to
// sanity-check that a memory operand of the instruction covers it; if none does: kUnsupported).
// On kBusError / kSegv the registers are as the CPU leaves them at a fault: unchanged, except
// that a REP string instruction keeps the iterations it completed (RCX/RSI/RDI advanced).
EmulationResult EmulateAccess(ucontext_t* uc, uint64_t fault_addr, MemoryBus& bus);

}  // namespace faults
