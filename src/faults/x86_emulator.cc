#include "faults/x86_emulator.h"

#include <cstring>

#include "faults/cpu_state.h"
#include "faults/instruction.h"
#include "faults/scalar_ops.h"
#include "faults/string_ops.h"
#include "faults/vector_ops.h"

namespace faults {
namespace {

void CopyMnemonic(const char* s, char (&out)[24]) {
  size_t n = 0;
  for (; s != nullptr && s[n] != '\0' && n + 1 < sizeof out; ++n) out[n] = s[n];
  out[n] = '\0';
}

}  // namespace

EmulationResult EmulateAccess(ucontext_t* uc, uint64_t fault_addr, MemoryBus& bus) {
  EmulationResult result;
  CpuState cpu(uc);
  size_t fetched = bus.FetchCode(cpu.rip(), result.bytes, sizeof result.bytes);
  if (fetched > sizeof result.bytes) fetched = sizeof result.bytes;
  result.length = static_cast<uint8_t>(fetched);

  Instruction insn;
  if (fetched == 0 || !insn.Decode(result.bytes, fetched)) {
    CopyMnemonic("(bad)", result.mnemonic);
    return result;
  }
  result.length = static_cast<uint8_t>(insn.length());
  CopyMnemonic(ZydisMnemonicGetString(insn.mnemonic()), result.mnemonic);

  OpContext ctx{cpu, bus, insn, fault_addr};
  OpOutcome out;
  if (IsStringOp(insn)) {
    out = EmulateString(ctx);
  } else if (IsScalarOp(insn.mnemonic())) {
    out = EmulateScalar(ctx);
  } else if (IsVectorOp(insn.mnemonic())) {
    out = EmulateVector(ctx);
  }
  result.outcome = out.outcome;
  result.fault_addr = out.fault_addr;
  return result;
}

}  // namespace faults
