// faults scalar ops: the general-purpose-register instructions with one memory operand that the
// emulator carries out: mov (both directions, imm, moffs), movzx/movsx/movsxd, movnti, the ALU
// group (add/or/adc/sbb/and/sub/xor/cmp with memory as either operand), test, inc/dec/not/neg on
// memory, and xchg. A lock prefix is accepted: a device access cannot be atomic anyway, and the
// CPU's locked read-modify-write is one read and one write, which is what the device sees.
#pragma once

#include "faults/instruction.h"

namespace faults {

// Whether EmulateScalar handles `m`.
bool IsScalarOp(ZydisMnemonic m);
OpOutcome EmulateScalar(const OpContext& ctx);

}  // namespace faults
