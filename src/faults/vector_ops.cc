#include "faults/vector_ops.h"

#include <cstring>

namespace faults {
namespace {

enum class Align { kNone, kFull };

struct VectorForm {
  ZydisMnemonic mnemonic;
  Align align;
};

constexpr VectorForm kForms[] = {
    {ZYDIS_MNEMONIC_MOVD, Align::kNone},       {ZYDIS_MNEMONIC_MOVQ, Align::kNone},
    {ZYDIS_MNEMONIC_VMOVD, Align::kNone},      {ZYDIS_MNEMONIC_VMOVQ, Align::kNone},
    {ZYDIS_MNEMONIC_MOVDQU, Align::kNone},     {ZYDIS_MNEMONIC_MOVUPS, Align::kNone},
    {ZYDIS_MNEMONIC_MOVUPD, Align::kNone},     {ZYDIS_MNEMONIC_MOVDQA, Align::kFull},
    {ZYDIS_MNEMONIC_MOVAPS, Align::kFull},     {ZYDIS_MNEMONIC_MOVAPD, Align::kFull},
    {ZYDIS_MNEMONIC_VMOVDQU, Align::kNone},    {ZYDIS_MNEMONIC_VMOVUPS, Align::kNone},
    {ZYDIS_MNEMONIC_VMOVUPD, Align::kNone},    {ZYDIS_MNEMONIC_VMOVDQU8, Align::kNone},
    {ZYDIS_MNEMONIC_VMOVDQU16, Align::kNone},  {ZYDIS_MNEMONIC_VMOVDQU32, Align::kNone},
    {ZYDIS_MNEMONIC_VMOVDQU64, Align::kNone},  {ZYDIS_MNEMONIC_VMOVDQA, Align::kFull},
    {ZYDIS_MNEMONIC_VMOVAPS, Align::kFull},    {ZYDIS_MNEMONIC_VMOVAPD, Align::kFull},
    {ZYDIS_MNEMONIC_VMOVDQA32, Align::kFull},  {ZYDIS_MNEMONIC_VMOVDQA64, Align::kFull},
    {ZYDIS_MNEMONIC_MOVNTDQ, Align::kFull},    {ZYDIS_MNEMONIC_MOVNTPS, Align::kFull},
    {ZYDIS_MNEMONIC_MOVNTPD, Align::kFull},    {ZYDIS_MNEMONIC_VMOVNTDQ, Align::kFull},
    {ZYDIS_MNEMONIC_VMOVNTPS, Align::kFull},   {ZYDIS_MNEMONIC_VMOVNTPD, Align::kFull},
    {ZYDIS_MNEMONIC_MOVNTDQA, Align::kFull},   {ZYDIS_MNEMONIC_VMOVNTDQA, Align::kFull},
};

const VectorForm* FormOf(ZydisMnemonic m) {
  for (const VectorForm& f : kForms) {
    if (f.mnemonic == m) return &f;
  }
  return nullptr;
}

// xmm/ymm/zmm register number 0-31, or -1.
int VectorIndex(ZydisRegister r) {
  if (r >= ZYDIS_REGISTER_XMM0 && r <= ZYDIS_REGISTER_XMM31) return r - ZYDIS_REGISTER_XMM0;
  if (r >= ZYDIS_REGISTER_YMM0 && r <= ZYDIS_REGISTER_YMM31) return r - ZYDIS_REGISTER_YMM0;
  if (r >= ZYDIS_REGISTER_ZMM0 && r <= ZYDIS_REGISTER_ZMM31) return r - ZYDIS_REGISTER_ZMM0;
  return -1;
}

OpOutcome Finish(const OpContext& ctx) {
  ctx.cpu.set_rip(ctx.insn.NextRip(ctx.cpu));
  return OpOutcome::Done();
}

// Whether the trapped address is one of the enabled bytes of [addr, addr + size).
bool CoversEnabled(const OpContext& ctx, uint64_t addr, unsigned size, const uint8_t* enable) {
  return ctx.Covers(addr, size) && enable[ctx.fault_addr - addr] != 0;
}

OpOutcome Move(const OpContext& ctx, const VectorForm& form) {
  const Instruction& insn = ctx.insn;
  const ZydisDecodedInstruction& info = insn.info();
  // Find the memory operand, the vector register and (EVEX) the opmask among the visible ones.
  int mem = -1, vreg = -1;
  ZydisRegister mask_reg = ZYDIS_REGISTER_NONE;
  for (unsigned i = 0; i < insn.visible_count(); ++i) {
    const ZydisDecodedOperand& op = insn.op(i);
    if (op.type == ZYDIS_OPERAND_TYPE_MEMORY) {
      mem = static_cast<int>(i);
    } else if (op.type == ZYDIS_OPERAND_TYPE_REGISTER && VectorIndex(op.reg.value) >= 0) {
      vreg = static_cast<int>(i);
    } else if (op.type == ZYDIS_OPERAND_TYPE_REGISTER && op.reg.value >= ZYDIS_REGISTER_K0 &&
               op.reg.value <= ZYDIS_REGISTER_K7) {
      mask_reg = op.reg.value;
    } else {
      return OpOutcome::Unsupported();  // an MMX register, a GPR (movq rax, xmm0), ...
    }
  }
  if (mem < 0 || vreg < 0 || info.avx.broadcast.mode != ZYDIS_BROADCAST_MODE_INVALID) {
    return OpOutcome::Unsupported();
  }
  const ZydisDecodedOperand& mop = insn.op(static_cast<unsigned>(mem));
  const unsigned size = OperandBytes(mop);
  const unsigned index = static_cast<unsigned>(VectorIndex(insn.op(static_cast<unsigned>(vreg)).reg.value));
  const bool store = (mop.actions & (ZYDIS_OPERAND_ACTION_WRITE | ZYDIS_OPERAND_ACTION_CONDWRITE)) != 0;
  if (size == 0 || size > 64) return OpOutcome::Unsupported();

  // Opmask: which bytes of the operand are accessed (k0 in the mask field means no masking).
  const bool masked = info.encoding == ZYDIS_INSTRUCTION_ENCODING_EVEX &&
                      (info.avx.mask.mode == ZYDIS_MASK_MODE_MERGING || info.avx.mask.mode == ZYDIS_MASK_MODE_ZEROING) &&
                      mask_reg != ZYDIS_REGISTER_NONE && mask_reg != ZYDIS_REGISTER_K0;
  const bool zeroing = masked && info.avx.mask.mode == ZYDIS_MASK_MODE_ZEROING;
  if (zeroing && store) return OpOutcome::Unsupported();  // #UD on the CPU
  uint8_t enable[64];
  std::memset(enable, 1, sizeof enable);
  if (masked) {
    uint64_t k = 0;
    const unsigned elem = mop.element_size / 8;
    if (!ctx.cpu.ReadOpmask(static_cast<unsigned>(mask_reg - ZYDIS_REGISTER_K0), &k) ||
        (elem != 1 && elem != 2 && elem != 4 && elem != 8) || size % elem != 0) {
      return OpOutcome::Unsupported();
    }
    for (unsigned i = 0; i < size; ++i) enable[i] = (k >> (i / elem)) & 1;
  }

  uint64_t addr = 0;
  if (!insn.Address(ctx.cpu, static_cast<unsigned>(mem), &addr) || !CoversEnabled(ctx, addr, size, enable)) {
    return OpOutcome::Unsupported();
  }
  // The alignment check comes before any access and ignores the mask.
  if (form.align == Align::kFull && addr % size != 0) return OpOutcome::Segv(addr);

  uint8_t data[64] = {};
  if (store) {
    if (!ctx.cpu.ReadVector(index, size, data)) return OpOutcome::Unsupported();
    AccessStatus s = BusWriteMasked(ctx.bus, addr, data, size, enable);
    if (!s.ok()) return OpOutcome::Failed(s);
    return Finish(ctx);
  }
  // Legacy SSE writes bits 127:0 (movd/movq zero 127:size) and keeps the rest; VEX and EVEX zero
  // up to the widest vector.
  const unsigned zero_to = info.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY ? 16 : 64;
  if (!ctx.cpu.CanWriteVector(index, size, zero_to)) return OpOutcome::Unsupported();
  if (masked && !zeroing && !ctx.cpu.ReadVector(index, size, data)) return OpOutcome::Unsupported();
  AccessStatus s = BusReadMasked(ctx.bus, addr, data, size, enable);
  if (!s.ok()) return OpOutcome::Failed(s);
  ctx.cpu.WriteVector(index, data, size, zero_to);
  return Finish(ctx);
}

// MOVDIR64B reg, m512: 64 bytes from [m512] (ordinary reads) posted to es:[reg] as one write.
OpOutcome Movdir64b(const OpContext& ctx) {
  const Instruction& insn = ctx.insn;
  const ZydisDecodedOperand& dreg = insn.op(0);
  if (insn.visible_count() != 2 || dreg.type != ZYDIS_OPERAND_TYPE_REGISTER || !CpuState::IsGpr(dreg.reg.value)) {
    return OpOutcome::Unsupported();
  }
  uint64_t src = 0;
  if (!insn.Address(ctx.cpu, 1, &src)) return OpOutcome::Unsupported();
  const uint64_t dst = ctx.cpu.ReadGpr(dreg.reg.value);  // 32-bit with a 67 prefix: zero-extended
  if (!ctx.Covers(dst, 64) && !ctx.Covers(src, 64)) return OpOutcome::Unsupported();
  if (dst % 64 != 0) return OpOutcome::Segv(dst);
  uint8_t data[64];
  AccessStatus s = BusRead(ctx.bus, src, data, 64);
  if (s.ok()) s = BusWrite(ctx.bus, dst, data, 64);
  if (!s.ok()) return OpOutcome::Failed(s);
  return Finish(ctx);
}

}  // namespace

bool IsVectorOp(ZydisMnemonic m) { return m == ZYDIS_MNEMONIC_MOVDIR64B || FormOf(m) != nullptr; }

OpOutcome EmulateVector(const OpContext& ctx) {
  if (ctx.insn.mnemonic() == ZYDIS_MNEMONIC_MOVDIR64B) return Movdir64b(ctx);
  const VectorForm* form = FormOf(ctx.insn.mnemonic());
  return form == nullptr ? OpOutcome::Unsupported() : Move(ctx, *form);
}

}  // namespace faults
