#include "faults/cpu_state.h"

#include <cpuid.h>

#include <atomic>
#include <cstring>

namespace faults {
namespace {

// Offsets into the 512-byte FXSAVE image and the XSAVE header after it.
constexpr unsigned kFxXmmOffset = 160;
constexpr unsigned kFxSwReservedOffset = 464;  // struct _fpx_sw_bytes
constexpr unsigned kXsaveHeaderOffset = 512;   // xstate_bv first
constexpr unsigned kXsaveMinSize = 512 + 64;
constexpr unsigned kMaxComponent = 8;

// CPUID 0xD, read once. Relaxed atomics: two threads racing to fill it store the same values.
std::atomic<bool> g_layout_ready{false};
std::atomic<uint32_t> g_offset[kMaxComponent];
std::atomic<uint32_t> g_size[kMaxComponent];

void EnsureLayout() {
  if (g_layout_ready.load(std::memory_order_acquire)) [[likely]] return;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  for (unsigned c = 2; c < kMaxComponent; ++c) {
    unsigned a = 0, b = 0, cx = 0, d = 0;
    if (max_leaf >= 0xD) __cpuid_count(0xD, c, a, b, cx, d);
    g_offset[c].store(b, std::memory_order_relaxed);
    g_size[c].store(a, std::memory_order_relaxed);
  }
  g_offset[kXsaveSse].store(kFxXmmOffset, std::memory_order_relaxed);
  g_size[kXsaveSse].store(256, std::memory_order_relaxed);
  g_layout_ready.store(true, std::memory_order_release);
}

// gregs index of the GPR with encoding number n (rax=0 ... r15=15).
constexpr int kGregOfEncoding[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                     REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

struct GprRef {
  int greg;
  unsigned width;  // bytes
  bool high_byte;  // AH, CH, DH, BH
};

GprRef Resolve(ZydisRegister r) {
  if (r >= ZYDIS_REGISTER_AL && r <= ZYDIS_REGISTER_R15B) {
    unsigned i = r - ZYDIS_REGISTER_AL;
    if (i < 4) return {kGregOfEncoding[i], 1, false};
    if (i < 8) return {kGregOfEncoding[i - 4], 1, true};
    return {kGregOfEncoding[i - 4], 1, false};
  }
  if (r >= ZYDIS_REGISTER_AX && r <= ZYDIS_REGISTER_R15W) return {kGregOfEncoding[r - ZYDIS_REGISTER_AX], 2, false};
  if (r >= ZYDIS_REGISTER_EAX && r <= ZYDIS_REGISTER_R15D) return {kGregOfEncoding[r - ZYDIS_REGISTER_EAX], 4, false};
  if (r >= ZYDIS_REGISTER_RAX && r <= ZYDIS_REGISTER_R15) return {kGregOfEncoding[r - ZYDIS_REGISTER_RAX], 8, false};
  return {-1, 0, false};
}

// One contiguous run of a vector register's bytes and where the frame keeps it.
struct Piece {
  unsigned begin, end;  // byte range within the register
  unsigned component;
  unsigned offset;      // within the component (for kXsaveSse: within the FXSAVE image)
};

// The pieces of register `index`, in byte order; returns how many.
unsigned PiecesOf(unsigned index, Piece out[3]) {
  if (index >= 16) {
    out[0] = {0, 64, kXsaveHi16Zmm, (index - 16) * 64};
    return 1;
  }
  out[0] = {0, 16, kXsaveSse, kFxXmmOffset + index * 16};
  out[1] = {16, 32, kXsaveYmmHi128, index * 16};
  out[2] = {32, 64, kXsaveZmmHi256, index * 32};
  return 3;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

uint32_t XsaveComponentOffset(unsigned c) {
  EnsureLayout();
  return c < kMaxComponent ? g_offset[c].load(std::memory_order_relaxed) : 0;
}

uint32_t XsaveComponentSize(unsigned c) {
  EnsureLayout();
  return c < kMaxComponent ? g_size[c].load(std::memory_order_relaxed) : 0;
}

uint64_t CpuState::rip() const { return static_cast<uint64_t>(uc_->uc_mcontext.gregs[REG_RIP]); }
void CpuState::set_rip(uint64_t v) { uc_->uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(v); }
uint64_t CpuState::rflags() const { return static_cast<uint64_t>(uc_->uc_mcontext.gregs[REG_EFL]); }
void CpuState::set_rflags(uint64_t v) { uc_->uc_mcontext.gregs[REG_EFL] = static_cast<greg_t>(v); }

bool CpuState::IsGpr(ZydisRegister r) { return Resolve(r).greg >= 0; }

uint64_t CpuState::ReadGpr(ZydisRegister r) const {
  GprRef g = Resolve(r);
  if (g.greg < 0) return 0;
  uint64_t full = static_cast<uint64_t>(uc_->uc_mcontext.gregs[g.greg]);
  if (g.high_byte) return (full >> 8) & 0xff;
  return g.width == 8 ? full : full & ((uint64_t{1} << (g.width * 8)) - 1);
}

void CpuState::WriteGpr(ZydisRegister r, uint64_t v) {
  GprRef g = Resolve(r);
  if (g.greg < 0) return;
  uint64_t full = static_cast<uint64_t>(uc_->uc_mcontext.gregs[g.greg]);
  if (g.high_byte) {
    full = (full & ~uint64_t{0xff00}) | ((v & 0xff) << 8);
  } else if (g.width == 8) {
    full = v;
  } else if (g.width == 4) {
    full = v & 0xffffffff;
  } else {
    uint64_t mask = (uint64_t{1} << (g.width * 8)) - 1;
    full = (full & ~mask) | (v & mask);
  }
  uc_->uc_mcontext.gregs[g.greg] = static_cast<greg_t>(full);
}

uint8_t* CpuState::Fxsave() const { return reinterpret_cast<uint8_t*>(uc_->uc_mcontext.fpregs); }

// Whether the frame carries component `c` (the XSAVE area, when needed, is present, the kernel
// saved that feature, and the frame is long enough for it).
bool CpuState::HasComponent(unsigned c) const {
  uint8_t* fx = Fxsave();
  if (fx == nullptr || c >= kMaxComponent) return false;
  if (c == kXsaveSse) return true;
  uint32_t magic1 = Load<uint32_t>(fx + kFxSwReservedOffset);
  if (magic1 != kFpXstateMagic1) return false;
  uint64_t xfeatures = Load<uint64_t>(fx + kFxSwReservedOffset + 8);
  uint32_t xstate_size = Load<uint32_t>(fx + kFxSwReservedOffset + 16);
  uint32_t off = XsaveComponentOffset(c), size = XsaveComponentSize(c);
  return xstate_size >= kXsaveMinSize && (xfeatures >> c & 1) && size != 0 && off >= kXsaveMinSize &&
         uint64_t{off} + size <= xstate_size;
}

uint8_t* CpuState::Component(unsigned c, bool for_write) const {
  uint8_t* fx = Fxsave();
  bool has_xsave = Load<uint32_t>(fx + kFxSwReservedOffset) == kFpXstateMagic1;
  uint8_t* base = c == kXsaveSse ? fx : fx + XsaveComponentOffset(c);
  if (!has_xsave) return base;  // legacy frame: only the FXSAVE area, always live
  uint64_t bv = Load<uint64_t>(fx + kXsaveHeaderOffset);
  if (bv >> c & 1) return base;
  if (!for_write) return nullptr;  // init state: all zero
  uint8_t* region = c == kXsaveSse ? fx + kFxXmmOffset : base;
  std::memset(region, 0, XsaveComponentSize(c));
  bv |= uint64_t{1} << c;
  std::memcpy(fx + kXsaveHeaderOffset, &bv, sizeof bv);
  return base;
}

bool CpuState::ReadVector(unsigned index, unsigned bytes, uint8_t* out) const {
  if (index >= 32 || bytes > 64) return false;
  Piece pieces[3];
  unsigned n = PiecesOf(index, pieces);
  for (unsigned i = 0; i < n; ++i) {
    const Piece& p = pieces[i];
    if (p.begin >= bytes) break;
    if (!HasComponent(p.component)) return false;
  }
  for (unsigned i = 0; i < n; ++i) {
    const Piece& p = pieces[i];
    if (p.begin >= bytes) break;
    unsigned len = (bytes < p.end ? bytes : p.end) - p.begin;
    const uint8_t* src = Component(p.component, false);
    if (src == nullptr) {
      std::memset(out + p.begin, 0, len);
    } else {
      std::memcpy(out + p.begin, src + p.offset, len);
    }
  }
  return true;
}

bool CpuState::CanWriteVector(unsigned index, unsigned bytes, unsigned zero_to) const {
  if (index >= 32 || bytes > 64 || zero_to > 64 || Fxsave() == nullptr) return false;
  uint8_t* fx = Fxsave();
  bool has_xsave = Load<uint32_t>(fx + kFxSwReservedOffset) == kFpXstateMagic1;
  uint64_t xfeatures = has_xsave ? Load<uint64_t>(fx + kFxSwReservedOffset + 8) : 0;
  Piece pieces[3];
  unsigned n = PiecesOf(index, pieces);
  for (unsigned i = 0; i < n; ++i) {
    const Piece& p = pieces[i];
    if (p.begin < bytes && !HasComponent(p.component)) return false;
    // Zeroing a part the OS does not enable is a no-op (that part does not exist); zeroing one
    // the frame cannot hold although the CPU has it cannot be done.
    if (p.begin >= bytes && p.begin < zero_to && !HasComponent(p.component) &&
        XsaveComponentSize(p.component) != 0 && (!has_xsave || (xfeatures >> p.component & 1)))
      return false;
  }
  return true;
}

bool CpuState::WriteVector(unsigned index, const uint8_t* data, unsigned bytes, unsigned zero_to) {
  if (!CanWriteVector(index, bytes, zero_to)) return false;
  Piece pieces[3];
  unsigned n = PiecesOf(index, pieces);
  for (unsigned i = 0; i < n; ++i) {
    const Piece& p = pieces[i];
    unsigned zend = zero_to < p.end ? zero_to : p.end;
    if (p.begin < bytes) {
      uint8_t* dst = Component(p.component, true);
      unsigned end = bytes < p.end ? bytes : p.end;
      std::memcpy(dst + p.offset, data + p.begin, end - p.begin);
      if (end < zend) std::memset(dst + p.offset + (end - p.begin), 0, zend - end);
    } else if (p.begin < zero_to && HasComponent(p.component)) {
      uint8_t* dst = Component(p.component, false);
      if (dst != nullptr) std::memset(dst + p.offset, 0, zend - p.begin);  // else already init (zero)
    }
  }
  return true;
}

bool CpuState::ReadOpmask(unsigned index, uint64_t* out) const {
  if (index >= 8 || !HasComponent(kXsaveOpmask)) return false;
  const uint8_t* base = Component(kXsaveOpmask, false);
  *out = base == nullptr ? 0 : Load<uint64_t>(base + index * 8);
  return true;
}

}  // namespace faults
