// faults::Instruction: one decoded x86-64 instruction (Zydis, on the stack: decoding allocates
// nothing) plus what every emulation routine asks of it: its memory operands' effective addresses
// under the frame's registers, whether an access covers the trapped address, and where execution
// continues. OpContext bundles it with the register view and the bus for the routines in
// scalar_ops, string_ops and vector_ops; each returns an OpOutcome and commits registers only
// after its last access succeeded.
#pragma once

#include <Zydis/Zydis.h>

#include <cstddef>
#include <cstdint>

#include "faults/bus_access.h"
#include "faults/cpu_state.h"
#include "faults/x86_emulator.h"

namespace faults {

class Instruction {
 public:
  // Decodes up to `n` bytes (64-bit mode); false if they are not one whole valid instruction.
  bool Decode(const uint8_t* bytes, size_t n);

  const ZydisDecodedInstruction& info() const { return info_; }
  ZydisMnemonic mnemonic() const { return info_.mnemonic; }
  unsigned length() const { return info_.length; }
  // Operands, hidden ones included (Zydis order: visible first).
  unsigned operand_count() const { return info_.operand_count; }
  unsigned visible_count() const { return info_.operand_count_visible; }
  const ZydisDecodedOperand& op(unsigned i) const { return ops_[i]; }
  bool HasAttribute(ZydisInstructionAttributes a) const { return (info_.attributes & a) != 0; }

  // The effective (linear) address of memory operand `i`. False for what we do not model: an fs/gs
  // segment, vector-indexed (VSIB) addressing, or an operand that is not a memory access.
  bool Address(const CpuState& cpu, unsigned i, uint64_t* addr) const;

  uint64_t NextRip(const CpuState& cpu) const { return cpu.rip() + info_.length; }

 private:
  ZydisDecodedInstruction info_{};
  ZydisDecodedOperand ops_[ZYDIS_MAX_OPERAND_COUNT]{};
};

struct OpOutcome {
  Outcome outcome = Outcome::kUnsupported;
  uint64_t fault_addr = 0;

  static OpOutcome Unsupported() { return {}; }
  static OpOutcome Done() { return {Outcome::kDone, 0}; }
  static OpOutcome Failed(const AccessStatus& s) {
    return {s.status == BusStatus::kBusError ? Outcome::kBusError : Outcome::kSegv, s.addr};
  }
  // A fault the CPU raises itself (alignment): SIGSEGV.
  static OpOutcome Segv(uint64_t addr) { return {Outcome::kSegv, addr}; }
};

struct OpContext {
  CpuState& cpu;
  MemoryBus& bus;
  const Instruction& insn;
  uint64_t fault_addr;

  // Whether [addr, addr + size) contains the trapped address.
  bool Covers(uint64_t addr, uint64_t size) const { return fault_addr - addr < size; }
};

// Operand width in bytes of an operand whose size Zydis gives in bits.
inline unsigned OperandBytes(const ZydisDecodedOperand& op) { return op.size / 8; }

}  // namespace faults
