#include "faults/string_ops.h"

#include <cstring>

#include "faults/alu_flags.h"

namespace faults {
namespace {

bool IsMovs(const Instruction& insn) { return insn.info().opcode == 0xA4 || insn.info().opcode == 0xA5; }

// Whether the trapped address lies in one of the `count` elements of `size` bytes starting at
// `start` and stepping down (DF=1) or up. Modular arithmetic: no overflow to check.
bool RangeCovers(uint64_t fault, uint64_t start, uint64_t count, unsigned size, bool down) {
  uint64_t offset = down ? start + size - 1 - fault : fault - start;
  return offset / size < count;
}

}  // namespace

bool IsStringOp(const Instruction& insn) {
  const ZydisDecodedInstruction& i = insn.info();
  if (i.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY || i.opcode_map != ZYDIS_OPCODE_MAP_DEFAULT) return false;
  return i.opcode == 0xA4 || i.opcode == 0xA5 || i.opcode == 0xAA || i.opcode == 0xAB;
}

OpOutcome EmulateString(const OpContext& ctx) {
  const Instruction& insn = ctx.insn;
  CpuState& cpu = ctx.cpu;
  // 32-bit addressing (ESI/EDI/ECX) is not something compilers emit in 64-bit code; repne on
  // movs/stos is a quirk nobody relies on.
  if (insn.info().address_width != 64 || insn.HasAttribute(ZYDIS_ATTRIB_HAS_REPNE)) {
    return OpOutcome::Unsupported();
  }
  const bool movs = IsMovs(insn);
  const bool rep = insn.HasAttribute(ZYDIS_ATTRIB_HAS_REP);
  const unsigned size = OperandBytes(insn.op(0));  // es:[rdi]
  if (size != 1 && size != 2 && size != 4 && size != 8) return OpOutcome::Unsupported();
  uint64_t probe = 0;
  // The source's segment may be overridden (fs: movsb); the destination's cannot.
  if (movs && !insn.Address(cpu, 1, &probe)) return OpOutcome::Unsupported();

  const bool down = (cpu.rflags() & kFlagDf) != 0;
  const uint64_t step = down ? uint64_t{0} - size : size;
  uint64_t rdi = cpu.ReadGpr(ZYDIS_REGISTER_RDI);
  uint64_t rsi = cpu.ReadGpr(ZYDIS_REGISTER_RSI);
  uint64_t rcx = cpu.ReadGpr(ZYDIS_REGISTER_RCX);
  const uint64_t count = rep ? rcx : 1;
  // With RCX = 0 the CPU touches nothing and cannot have trapped: not our instruction.
  if (!RangeCovers(ctx.fault_addr, rdi, count, size, down) &&
      !(movs && RangeCovers(ctx.fault_addr, rsi, count, size, down))) {
    return OpOutcome::Unsupported();
  }

  const uint64_t rax = cpu.ReadGpr(ZYDIS_REGISTER_RAX);
  uint8_t buf[8];
  std::memcpy(buf, &rax, sizeof buf);
  for (uint64_t done = 0; done < count; ++done) {
    AccessStatus s;
    if (movs) s = BusRead(ctx.bus, rsi, buf, size);
    if (s.ok()) s = BusWrite(ctx.bus, rdi, buf, size);
    if (!s.ok()) {
      // The CPU's state at a fault inside a rep: the elements before this one are complete.
      if (rep && done > 0) {
        cpu.WriteGpr(ZYDIS_REGISTER_RCX, rcx);
        cpu.WriteGpr(ZYDIS_REGISTER_RDI, rdi);
        if (movs) cpu.WriteGpr(ZYDIS_REGISTER_RSI, rsi);
      }
      return OpOutcome::Failed(s);
    }
    rdi += step;
    if (movs) rsi += step;
    if (rep) --rcx;
  }
  cpu.WriteGpr(ZYDIS_REGISTER_RDI, rdi);
  if (movs) cpu.WriteGpr(ZYDIS_REGISTER_RSI, rsi);
  if (rep) cpu.WriteGpr(ZYDIS_REGISTER_RCX, rcx);
  cpu.set_rip(insn.NextRip(cpu));
  return OpOutcome::Done();
}

}  // namespace faults
