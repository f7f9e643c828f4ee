#include "faults/instruction.h"

namespace faults {

bool Instruction::Decode(const uint8_t* bytes, size_t n) {
  ZydisDecoder decoder;
  if (!ZYAN_SUCCESS(ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64))) return false;
  return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes, n, &info_, ops_));
}

bool Instruction::Address(const CpuState& cpu, unsigned i, uint64_t* addr) const {
  if (i >= info_.operand_count) return false;
  const ZydisDecodedOperand& op = ops_[i];
  if (op.type != ZYDIS_OPERAND_TYPE_MEMORY || op.mem.type != ZYDIS_MEMOP_TYPE_MEM) return false;
  // In 64-bit mode only fs and gs have a base; the frame does not carry those bases.
  if (op.mem.segment == ZYDIS_REGISTER_FS || op.mem.segment == ZYDIS_REGISTER_GS) return false;
  uint64_t a = static_cast<uint64_t>(op.mem.disp.value);
  if (op.mem.base == ZYDIS_REGISTER_RIP || op.mem.base == ZYDIS_REGISTER_EIP) {
    a += NextRip(cpu);
  } else if (op.mem.base != ZYDIS_REGISTER_NONE) {
    if (!CpuState::IsGpr(op.mem.base)) return false;
    a += cpu.ReadGpr(op.mem.base);
  }
  if (op.mem.index != ZYDIS_REGISTER_NONE) {
    if (!CpuState::IsGpr(op.mem.index)) return false;  // VSIB
    a += cpu.ReadGpr(op.mem.index) * (op.mem.scale == 0 ? 1 : op.mem.scale);
  }
  if (info_.address_width == 32) a &= 0xffffffff;
  *addr = a;
  return true;
}

}  // namespace faults
