#include "faults/alu_flags.h"

namespace faults {
namespace {

uint64_t Parity(uint64_t v) { return (__builtin_popcountll(v & 0xff) & 1) == 0 ? kFlagPf : 0; }

}  // namespace

AluResult Alu(AluOp op, uint64_t a, uint64_t b, unsigned width_bytes, uint64_t rflags) {
  const unsigned bits = width_bytes * 8;
  const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  const uint64_t sign = uint64_t{1} << (bits - 1);
  a &= mask;
  b &= mask;
  const uint64_t carry_in = rflags & kFlagCf ? 1 : 0;

  uint64_t r = 0;
  bool cf = false, of = false, af = false;
  bool keep_cf = false;
  switch (op) {
    case AluOp::kInc:
      b = 1;
      keep_cf = true;
      [[fallthrough]];
    case AluOp::kAdd:
    case AluOp::kAdc: {
      uint64_t c = op == AluOp::kAdc ? carry_in : 0;
      unsigned __int128 wide = static_cast<unsigned __int128>(a) + b + c;
      r = static_cast<uint64_t>(wide) & mask;
      cf = (wide >> bits) & 1;
      of = ((a ^ r) & (b ^ r) & sign) != 0;
      af = ((a ^ b ^ r) & 0x10) != 0;
      break;
    }
    case AluOp::kNeg:
      b = a;
      a = 0;
      [[fallthrough]];
    case AluOp::kDec:
      if (op == AluOp::kDec) {
        b = 1;
        keep_cf = true;
      }
      [[fallthrough]];
    case AluOp::kSub:
    case AluOp::kCmp:
    case AluOp::kSbb: {
      uint64_t c = op == AluOp::kSbb ? carry_in : 0;
      r = (a - b - c) & mask;
      cf = static_cast<unsigned __int128>(a) < static_cast<unsigned __int128>(b) + c;
      of = ((a ^ b) & (a ^ r) & sign) != 0;
      af = ((a ^ b ^ r) & 0x10) != 0;
      break;
    }
    case AluOp::kAnd:
    case AluOp::kTest:
      r = a & b;
      break;
    case AluOp::kOr:
      r = a | b;
      break;
    case AluOp::kXor:
      r = a ^ b;
      break;
    case AluOp::kNot:
      return {~a & mask, rflags};  // no flags
  }
  uint64_t flags = (cf ? kFlagCf : 0) | Parity(r) | (af ? kFlagAf : 0) | (r == 0 ? kFlagZf : 0) |
                   (r & sign ? kFlagSf : 0) | (of ? kFlagOf : 0);
  uint64_t changed = keep_cf ? kArithFlags & ~kFlagCf : kArithFlags;
  return {r, (rflags & ~changed) | (flags & changed)};
}

}  // namespace faults
