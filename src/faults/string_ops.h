// faults string ops: movs{b,w,d,q} and stos{b,w,d,q}, with and without rep, honouring DF. Each
// element is one read (movs) and one write of the element width, in the CPU's order; either side
// may be a device. A fault part-way through a rep leaves RCX/RSI/RDI counting the elements done
// and RIP on the instruction, as the CPU leaves them, so the program can resume it.
#pragma once

#include "faults/instruction.h"

namespace faults {

// Whether `insn` is one of the string forms EmulateString handles (by opcode: Zydis's mnemonic
// for A5 is shared with SSE movsd).
bool IsStringOp(const Instruction& insn);
OpOutcome EmulateString(const OpContext& ctx);

}  // namespace faults
