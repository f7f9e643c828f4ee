#include "faults/scalar_ops.h"

#include <cstring>

#include "faults/alu_flags.h"

namespace faults {
namespace {

bool AluOpOf(ZydisMnemonic m, AluOp* op) {
  switch (m) {
    case ZYDIS_MNEMONIC_ADD: *op = AluOp::kAdd; return true;
    case ZYDIS_MNEMONIC_OR: *op = AluOp::kOr; return true;
    case ZYDIS_MNEMONIC_ADC: *op = AluOp::kAdc; return true;
    case ZYDIS_MNEMONIC_SBB: *op = AluOp::kSbb; return true;
    case ZYDIS_MNEMONIC_AND: *op = AluOp::kAnd; return true;
    case ZYDIS_MNEMONIC_SUB: *op = AluOp::kSub; return true;
    case ZYDIS_MNEMONIC_XOR: *op = AluOp::kXor; return true;
    case ZYDIS_MNEMONIC_CMP: *op = AluOp::kCmp; return true;
    case ZYDIS_MNEMONIC_TEST: *op = AluOp::kTest; return true;
    case ZYDIS_MNEMONIC_INC: *op = AluOp::kInc; return true;
    case ZYDIS_MNEMONIC_DEC: *op = AluOp::kDec; return true;
    case ZYDIS_MNEMONIC_NEG: *op = AluOp::kNeg; return true;
    case ZYDIS_MNEMONIC_NOT: *op = AluOp::kNot; return true;
    default: return false;
  }
}

uint64_t SignExtend(uint64_t v, unsigned bytes) {
  if (bytes >= 8) return v;
  unsigned shift = 64 - bytes * 8;
  return static_cast<uint64_t>(static_cast<int64_t>(v << shift) >> shift);
}

// The value of a register or immediate source operand; false for anything else (segment
// registers, ...).
bool SourceValue(const CpuState& cpu, const ZydisDecodedOperand& op, uint64_t* v) {
  if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
    *v = op.imm.value.u;  // Zydis already sign-extends signed immediates to 64 bits
    return true;
  }
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER && CpuState::IsGpr(op.reg.value)) {
    *v = cpu.ReadGpr(op.reg.value);
    return true;
  }
  return false;
}

bool IsGprOperand(const ZydisDecodedOperand& op) {
  return op.type == ZYDIS_OPERAND_TYPE_REGISTER && CpuState::IsGpr(op.reg.value);
}

bool IsMemOperand(const ZydisDecodedOperand& op) { return op.type == ZYDIS_OPERAND_TYPE_MEMORY; }

// A single memory operand, `bytes` wide, that covers the trapped address.
bool MemAddress(const OpContext& ctx, unsigned i, unsigned bytes, uint64_t* addr) {
  if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8) return false;
  return ctx.insn.Address(ctx.cpu, i, addr) && ctx.Covers(*addr, bytes);
}

uint64_t Load(const uint8_t* p, unsigned bytes) {
  uint64_t v = 0;
  std::memcpy(&v, p, bytes);  // little-endian host
  return v;
}

OpOutcome Finish(const OpContext& ctx) {
  ctx.cpu.set_rip(ctx.insn.NextRip(ctx.cpu));
  return OpOutcome::Done();
}

// mov / movnti / movzx / movsx / movsxd.
OpOutcome Move(const OpContext& ctx) {
  const Instruction& insn = ctx.insn;
  if (insn.visible_count() != 2) return OpOutcome::Unsupported();
  const ZydisDecodedOperand& dst = insn.op(0);
  const ZydisDecodedOperand& src = insn.op(1);
  ZydisMnemonic m = insn.mnemonic();
  uint64_t addr = 0;
  if (IsMemOperand(dst)) {
    if (m != ZYDIS_MNEMONIC_MOV && m != ZYDIS_MNEMONIC_MOVNTI) return OpOutcome::Unsupported();
    unsigned bytes = OperandBytes(dst);
    uint64_t v = 0;
    if (!SourceValue(ctx.cpu, src, &v) || !MemAddress(ctx, 0, bytes, &addr)) return OpOutcome::Unsupported();
    uint8_t buf[8];
    std::memcpy(buf, &v, sizeof buf);
    AccessStatus s = BusWrite(ctx.bus, addr, buf, bytes);
    if (!s.ok()) return OpOutcome::Failed(s);
    return Finish(ctx);
  }
  if (!IsGprOperand(dst) || !IsMemOperand(src)) return OpOutcome::Unsupported();
  unsigned bytes = OperandBytes(src);
  if (!MemAddress(ctx, 1, bytes, &addr)) return OpOutcome::Unsupported();
  uint8_t buf[8] = {};
  AccessStatus s = BusRead(ctx.bus, addr, buf, bytes);
  if (!s.ok()) return OpOutcome::Failed(s);
  uint64_t v = Load(buf, bytes);
  if (m == ZYDIS_MNEMONIC_MOVSX || m == ZYDIS_MNEMONIC_MOVSXD) v = SignExtend(v, bytes);
  ctx.cpu.WriteGpr(dst.reg.value, v);  // narrows, zero-extends 32-bit, keeps 8/16-bit neighbours
  return Finish(ctx);
}

// The ALU group, test, and the unary read-modify-write ops.
OpOutcome Arith(const OpContext& ctx, AluOp op) {
  const Instruction& insn = ctx.insn;
  const bool unary = op == AluOp::kInc || op == AluOp::kDec || op == AluOp::kNeg || op == AluOp::kNot;
  if (insn.visible_count() != (unary ? 1u : 2u)) return OpOutcome::Unsupported();
  const ZydisDecodedOperand& dst = insn.op(0);
  uint64_t addr = 0;
  uint8_t buf[8] = {};
  if (IsMemOperand(dst)) {
    unsigned bytes = OperandBytes(dst);
    uint64_t b = 0;
    if (!unary && !SourceValue(ctx.cpu, insn.op(1), &b)) return OpOutcome::Unsupported();
    if (!MemAddress(ctx, 0, bytes, &addr)) return OpOutcome::Unsupported();
    AccessStatus s = BusRead(ctx.bus, addr, buf, bytes);
    if (!s.ok()) return OpOutcome::Failed(s);
    AluResult r = Alu(op, Load(buf, bytes), b, bytes, ctx.cpu.rflags());
    if (AluWritesResult(op)) {
      std::memcpy(buf, &r.value, sizeof buf);
      s = BusWrite(ctx.bus, addr, buf, bytes);
      if (!s.ok()) return OpOutcome::Failed(s);
    }
    ctx.cpu.set_rflags(r.rflags);
    return Finish(ctx);
  }
  // Register destination, memory source: `add eax, [mem]`, `cmp rax, [mem]`, `test [mem], reg`
  // as Zydis may order it.
  if (unary || !IsGprOperand(dst) || !IsMemOperand(insn.op(1))) return OpOutcome::Unsupported();
  unsigned bytes = OperandBytes(insn.op(1));
  if (!MemAddress(ctx, 1, bytes, &addr)) return OpOutcome::Unsupported();
  AccessStatus s = BusRead(ctx.bus, addr, buf, bytes);
  if (!s.ok()) return OpOutcome::Failed(s);
  AluResult r = Alu(op, ctx.cpu.ReadGpr(dst.reg.value), Load(buf, bytes), bytes, ctx.cpu.rflags());
  if (AluWritesResult(op)) ctx.cpu.WriteGpr(dst.reg.value, r.value);
  ctx.cpu.set_rflags(r.rflags);
  return Finish(ctx);
}

// xchg with memory: one read, one write (the implicit lock adds nothing a device can see).
OpOutcome Exchange(const OpContext& ctx) {
  const Instruction& insn = ctx.insn;
  if (insn.visible_count() != 2) return OpOutcome::Unsupported();
  unsigned mem = IsMemOperand(insn.op(0)) ? 0 : 1;
  const ZydisDecodedOperand& reg = insn.op(1 - mem);
  if (!IsMemOperand(insn.op(mem)) || !IsGprOperand(reg)) return OpOutcome::Unsupported();
  unsigned bytes = OperandBytes(insn.op(mem));
  uint64_t addr = 0;
  if (!MemAddress(ctx, mem, bytes, &addr)) return OpOutcome::Unsupported();
  uint8_t old[8] = {};
  AccessStatus s = BusRead(ctx.bus, addr, old, bytes);
  if (!s.ok()) return OpOutcome::Failed(s);
  uint64_t v = ctx.cpu.ReadGpr(reg.reg.value);
  uint8_t buf[8];
  std::memcpy(buf, &v, sizeof buf);
  s = BusWrite(ctx.bus, addr, buf, bytes);
  if (!s.ok()) return OpOutcome::Failed(s);
  ctx.cpu.WriteGpr(reg.reg.value, Load(old, bytes));
  return Finish(ctx);
}

}  // namespace

bool IsScalarOp(ZydisMnemonic m) {
  AluOp op;
  return m == ZYDIS_MNEMONIC_MOV || m == ZYDIS_MNEMONIC_MOVNTI || m == ZYDIS_MNEMONIC_MOVZX ||
         m == ZYDIS_MNEMONIC_MOVSX || m == ZYDIS_MNEMONIC_MOVSXD || m == ZYDIS_MNEMONIC_XCHG || AluOpOf(m, &op);
}

OpOutcome EmulateScalar(const OpContext& ctx) {
  ZydisMnemonic m = ctx.insn.mnemonic();
  if (m == ZYDIS_MNEMONIC_XCHG) return Exchange(ctx);
  AluOp op;
  if (AluOpOf(m, &op)) return Arith(ctx, op);
  if (IsScalarOp(m)) return Move(ctx);
  return OpOutcome::Unsupported();
}

}  // namespace faults
