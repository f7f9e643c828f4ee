// faults::Alu: the integer operations the MMIO emulator performs on a memory operand (add, or,
// adc, sbb, and, sub, xor, cmp, test, inc, dec, neg, not), computing the result and RFLAGS exactly
// as the CPU leaves them. Pure functions of their inputs: no state, safe in a signal handler.
//
// Only the six arithmetic flags (CF, PF, AF, ZF, SF, OF) change; other RFLAGS bits (DF, IF, TF,
// ...) pass through. Where the SDM calls a flag undefined (AF after and/or/xor/test) we leave what
// the Intel cores the tests compare against leave: cleared.
#pragma once

#include <cstdint>

namespace faults {

enum class AluOp { kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor, kCmp, kTest, kInc, kDec, kNeg, kNot };

inline constexpr uint64_t kFlagCf = 1u << 0;
inline constexpr uint64_t kFlagPf = 1u << 2;
inline constexpr uint64_t kFlagAf = 1u << 4;
inline constexpr uint64_t kFlagZf = 1u << 6;
inline constexpr uint64_t kFlagSf = 1u << 7;
inline constexpr uint64_t kFlagDf = 1u << 10;
inline constexpr uint64_t kFlagOf = 1u << 11;
inline constexpr uint64_t kArithFlags = kFlagCf | kFlagPf | kFlagAf | kFlagZf | kFlagSf | kFlagOf;

struct AluResult {
  uint64_t value;   // truncated to the operand width
  uint64_t rflags;  // the input RFLAGS with the op's flags updated
};

// `a` is the destination (first) operand, `b` the source (ignored by the unary ops), both taken
// modulo 2^(8*width_bytes); width_bytes is 1, 2, 4 or 8.
AluResult Alu(AluOp op, uint64_t a, uint64_t b, unsigned width_bytes, uint64_t rflags);

// Whether the op writes its result back (cmp and test only set flags).
inline bool AluWritesResult(AluOp op) { return op != AluOp::kCmp && op != AluOp::kTest; }

}  // namespace faults
