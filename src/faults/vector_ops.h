// faults vector ops: the SSE/AVX/AVX-512 moves between a vector register and memory that
// memcpy/memset implementations and hand-written drivers use (movd/movq, movdqu/movdqa/movups/
// movaps/movupd/movapd and their VEX/EVEX forms incl. vmovdqu8/16/32/64 and vmovdqa32/64, the
// non-temporal movnt* stores and movntdqa loads), EVEX opmask-masked loads and stores ({k1},
// {k1}{z}), and MOVDIR64B. A load writes the register as the encoding does: legacy SSE keeps bits
// above 127, VEX/EVEX zero everything above the vector length. Aligned forms at a misaligned
// address fault as the CPU does (#GP: SIGSEGV) before any access.
#pragma once

#include "faults/instruction.h"

namespace faults {

bool IsVectorOp(ZydisMnemonic m);
OpOutcome EmulateVector(const OpContext& ctx);

}  // namespace faults
