// faults::CpuState: a view of the register file a signal frame holds (ucontext_t), as the x86
// emulator needs it: GPRs by Zydis register with the CPU's partial-write rules, RIP, RFLAGS, vector
// registers xmm/ymm/zmm 0-31 and opmasks k0-7. Nothing is copied: reads and writes go straight to
// the frame, so the caller decides when to commit (after every device access has succeeded).
//
// Vector state beyond xmm0-15 lives in the XSAVE area the kernel appends to the 512-byte FXSAVE
// image (standard, non-compacted format; found through sw_reserved.magic1). Component offsets come
// from CPUID leaf 0xD, read once and cached in relaxed atomics (signal-safe, no lock). A component
// whose xstate_bv bit is clear is in its init state (zero); writing it materialises the zeros
// first and sets the bit, so the kernel's XRSTOR on sigreturn picks the value up.
#pragma once

#include <Zydis/Zydis.h>
#include <ucontext.h>

#include <cstdint>

namespace faults {

// XSAVE state components the emulator touches.
enum XsaveComponent : unsigned {
  kXsaveSse = 1,       // xmm0-15 (the legacy FXSAVE area)
  kXsaveYmmHi128 = 2,  // bits 255:128 of ymm0-15
  kXsaveOpmask = 5,    // k0-7
  kXsaveZmmHi256 = 6,  // bits 511:256 of zmm0-15
  kXsaveHi16Zmm = 7,   // zmm16-31
};

// sw_reserved.magic1 of a frame with an XSAVE area, and the word after that area (the kernel's
// FP_XSTATE_MAGIC1/2; <asm/sigcontext.h> clashes with <signal.h>, hence our own copies).
inline constexpr uint32_t kFpXstateMagic1 = 0x46505853;
inline constexpr uint32_t kFpXstateMagic2 = 0x46505845;

// The standard-format offset and size of XSAVE component `c` on this CPU (CPUID 0xD), 0 when the
// CPU lacks it. Exposed so tests can build frames laid out like the kernel's.
uint32_t XsaveComponentOffset(unsigned c);
uint32_t XsaveComponentSize(unsigned c);

class CpuState {
 public:
  explicit CpuState(ucontext_t* uc) : uc_(uc) {}

  uint64_t rip() const;
  void set_rip(uint64_t v);
  uint64_t rflags() const;
  void set_rflags(uint64_t v);

  // True for the 8/16/32/64-bit general registers (incl. AH-BH, SPL-DIL, R8B-R15B).
  static bool IsGpr(ZydisRegister r);
  // The register's value, zero-extended. `r` must satisfy IsGpr.
  uint64_t ReadGpr(ZydisRegister r) const;
  // As the CPU writes: 32-bit writes zero bits 63:32; 8/16-bit writes keep the rest.
  void WriteGpr(ZydisRegister r, uint64_t v);

  // Vector register `index` (0-31) as the register file of a CPU with the frame's components.
  // Read: the low `bytes` (<= 64) bytes into `out`; false when some of them cannot be found
  // (no XSAVE area, or a component the frame does not carry).
  bool ReadVector(unsigned index, unsigned bytes, uint8_t* out) const;
  // Whether WriteVector with these arguments would succeed (checked before any device access so
  // that a refused write leaves everything untouched).
  bool CanWriteVector(unsigned index, unsigned bytes, unsigned zero_to) const;
  // Writes the low `bytes` bytes and zeroes bytes [bytes, zero_to) (zero_to <= 64; parts of the
  // register the OS does not enable do not exist and need no zeroing). False, with nothing
  // written, when CanWriteVector is false.
  bool WriteVector(unsigned index, const uint8_t* data, unsigned bytes, unsigned zero_to);

  // Opmask register k`index` (0-7); false when the frame carries no opmask component.
  bool ReadOpmask(unsigned index, uint64_t* out) const;

 private:
  // The component's bytes for register `index` within it, or null if the frame lacks it.
  // `for_write` materialises an init-state component (zeroes it, sets its xstate_bv bit).
  uint8_t* Component(unsigned c, bool for_write) const;
  bool HasComponent(unsigned c) const;
  uint8_t* Fxsave() const;

  ucontext_t* uc_;
};

}  // namespace faults
