// Test fixtures for the x86 emulator: a MemoryBus fake that logs every access and serves a device
// page plus an ordinary-memory page (and the instruction bytes), a signal-frame builder with an
// XSAVE area laid out like the kernel's, and a native runner that executes one instruction on the
// real CPU with given registers (the oracle the emulator's results are compared against).
#pragma once

#include <sys/mman.h>
#include <ucontext.h>

#include <cpuid.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "faults/cpu_state.h"
#include "faults/x86_emulator.h"

namespace faults::testing {

inline constexpr uint64_t kCodeAddr = 0x0000'6000'0000'1000;
inline constexpr uint64_t kDevAddr = 0x0000'7000'0000'0000;
inline constexpr uint64_t kMemAddr = 0x0000'7100'0000'0000;
inline constexpr size_t kPage = 4096;

struct Access {
  char kind;  // 'R', 'W', or 'V' (WriteWide)
  uint64_t addr;
  unsigned size;
  std::vector<uint8_t> data;
  bool operator==(const Access&) const = default;
};

inline std::string ToString(const std::vector<Access>& log) {
  std::string s;
  for (const Access& a : log) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%c %#llx/%u:", a.kind, static_cast<unsigned long long>(a.addr), a.size);
    s += buf;
    for (uint8_t b : a.data) {
      std::snprintf(buf, sizeof buf, "%02x", b);
      s += buf;
    }
    s += "\n";
  }
  return s;
}

// Little-endian bytes of v, `size` long.
inline std::vector<uint8_t> Le(uint64_t v, unsigned size) {
  std::vector<uint8_t> out(size);
  std::memcpy(out.data(), &v, size);
  return out;
}

class FakeBus : public MemoryBus {
 public:
  struct Region {
    uint64_t base;
    std::vector<uint8_t> bytes;
  };

  FakeBus() {
    regions.push_back({kDevAddr, std::vector<uint8_t>(kPage)});
    regions.push_back({kMemAddr, std::vector<uint8_t>(kPage)});
    for (size_t i = 0; i < kPage; ++i) {
      regions[0].bytes[i] = static_cast<uint8_t>(0xA0 + i * 7);
      regions[1].bytes[i] = static_cast<uint8_t>(0x11 + i * 3);
    }
  }

  void SetCode(std::vector<uint8_t> bytes, size_t readable = SIZE_MAX) {
    code = std::move(bytes);
    code_readable = readable;
  }

  size_t FetchCode(uint64_t rip, uint8_t* out, size_t max) override {
    ++fetches;
    if (rip < code_base) return 0;
    uint64_t off = rip - code_base;
    size_t limit = code_readable < code.size() ? code_readable : code.size();
    if (off >= limit) return 0;
    size_t n = limit - off < max ? limit - off : max;
    std::memcpy(out, code.data() + off, n);
    return n;
  }

  BusStatus Read(uint64_t addr, void* data, unsigned size) override {
    uint8_t* p = Find(addr, size);
    if (fail_at == static_cast<int>(log.size())) return Fail('R', addr, size, nullptr);
    if (p == nullptr) return Stray('R', addr, size);
    std::memcpy(data, p, size);
    log.push_back({'R', addr, size, std::vector<uint8_t>(p, p + size)});
    return BusStatus::kOk;
  }

  BusStatus Write(uint64_t addr, const void* data, unsigned size) override {
    uint8_t* p = Find(addr, size);
    if (fail_at == static_cast<int>(log.size())) return Fail('W', addr, size, data);
    if (p == nullptr) return Stray('W', addr, size);
    std::memcpy(p, data, size);
    const uint8_t* d = static_cast<const uint8_t*>(data);
    log.push_back({'W', addr, size, std::vector<uint8_t>(d, d + size)});
    return BusStatus::kOk;
  }

  BusStatus WriteWide(uint64_t addr, const void* data, unsigned size, bool* accepted) override {
    *accepted = false;
    if (!accept_wide) return BusStatus::kOk;
    uint8_t* p = Find(addr, size);
    if (fail_at == static_cast<int>(log.size())) return Fail('V', addr, size, data);
    if (p == nullptr) return Stray('V', addr, size);
    std::memcpy(p, data, size);
    const uint8_t* d = static_cast<const uint8_t*>(data);
    log.push_back({'V', addr, size, std::vector<uint8_t>(d, d + size)});
    *accepted = true;
    return BusStatus::kOk;
  }

  uint8_t* Find(uint64_t addr, unsigned size) {
    for (Region& r : regions) {
      if (addr >= r.base && addr - r.base < r.bytes.size() && r.bytes.size() - (addr - r.base) >= size)
        return r.bytes.data() + (addr - r.base);
    }
    return nullptr;
  }
  uint8_t* Dev(size_t off) { return regions[0].bytes.data() + off; }
  uint8_t* Mem(size_t off) { return regions[1].bytes.data() + off; }

  std::vector<Region> regions;
  std::vector<uint8_t> code;
  uint64_t code_base = kCodeAddr;
  size_t code_readable = SIZE_MAX;
  std::vector<Access> log;
  int fail_at = -1;  // the log index at which an access answers fail_status
  BusStatus fail_status = BusStatus::kBusError;
  bool accept_wide = true;
  int strays = 0;
  int fetches = 0;

 private:
  BusStatus Fail(char kind, uint64_t addr, unsigned size, const void* data) {
    failed.push_back({kind, addr, size, {}});
    return fail_status;
  }
  BusStatus Stray(char kind, uint64_t addr, unsigned size) {
    ++strays;
    return BusStatus::kSegv;
  }

 public:
  std::vector<Access> failed;
};

// A signal frame: gregs plus an FXSAVE image followed by an XSAVE area in the kernel's format.
struct Frame {
  ucontext_t uc{};
  alignas(64) uint8_t fp[8192]{};

  explicit Frame(bool xsave = true) {
    uc.uc_mcontext.fpregs = reinterpret_cast<fpregset_t>(fp);
    if (!xsave) return;
    // The kernel's frame holds the XCR0 features except dynamically enabled ones (AMX tile data,
    // which CPUID 0xD.0 counts in and a process gets only on request).
    uint64_t xcr0 = XCr0() & 0x3ff;
    uint32_t size = 576;
    for (unsigned c = 2; c < 10; ++c) {
      uint32_t a, b, cx, d;
      __cpuid_count(0xD, c, a, b, cx, d);
      if ((xcr0 >> c & 1) && a + b > size) size = a + b;
    }
    uint32_t magic1 = kFpXstateMagic1, magic2 = kFpXstateMagic2, ext = size + 4;
    std::memcpy(fp + 464, &magic1, 4);
    std::memcpy(fp + 468, &ext, 4);
    std::memcpy(fp + 472, &xcr0, 8);
    std::memcpy(fp + 480, &size, 4);
    std::memcpy(fp + size, &magic2, 4);
    uint64_t bv = 3;  // the kernel always sets FP|SSE
    std::memcpy(fp + 512, &bv, 8);
  }

  static uint64_t XCr0() {
    uint32_t lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t{hi} << 32) | lo;
  }

  greg_t& g(int r) { return uc.uc_mcontext.gregs[r]; }
  uint64_t xstate_bv() const {
    uint64_t v;
    std::memcpy(&v, fp + 512, 8);
    return v;
  }
  void set_xstate_bv(uint64_t v) { std::memcpy(fp + 512, &v, 8); }

  // Where byte `byte` of vector register `index` lives in the frame (independent of CpuState's
  // own mapping: computed from the SDM layout).
  uint8_t* VecByte(unsigned index, unsigned byte) {
    if (index >= 16) return fp + XsaveComponentOffset(7) + (index - 16) * 64 + byte;
    if (byte < 16) return fp + 160 + index * 16 + byte;
    if (byte < 32) return fp + XsaveComponentOffset(2) + index * 16 + (byte - 16);
    return fp + XsaveComponentOffset(6) + index * 32 + (byte - 32);
  }
  // Fills all 64 bytes of register `index` with seed-derived bytes; marks components in use.
  void FillVec(unsigned index, uint8_t seed) {
    for (unsigned i = 0; i < 64; ++i) *VecByte(index, i) = static_cast<uint8_t>(seed + i);
    set_xstate_bv(xstate_bv() | (index >= 16 ? 0x80 : 0x44) | 0x2);
  }
  std::vector<uint8_t> Vec(unsigned index, unsigned bytes = 64) {
    std::vector<uint8_t> v(bytes);
    for (unsigned i = 0; i < bytes; ++i) v[i] = *VecByte(index, i);
    return v;
  }
  void SetOpmask(unsigned k, uint64_t v) {
    std::memcpy(fp + XsaveComponentOffset(5) + k * 8, &v, 8);
    set_xstate_bv(xstate_bv() | 0x20);
  }
};

// Runs one instruction natively. Registers in encoding order (rax, rcx, ..., r15; rsp is ignored
// and must not be used by the instruction), RFLAGS arithmetic bits and DF.
struct NativeState {
  uint64_t gpr[16];
  uint64_t rflags;
};

class NativeRunner {
 public:
  NativeRunner() {
    code_ = static_cast<uint8_t*>(mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  ~NativeRunner() { munmap(code_, kPage); }

  void Run(const std::vector<uint8_t>& insn, NativeState* st) {
    static uint64_t scratch;
    std::vector<uint8_t> c;
    auto imm64 = [&](uint64_t v) {
      for (int i = 0; i < 8; ++i) c.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    auto disp32 = [&](uint32_t v) {
      for (int i = 0; i < 4; ++i) c.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    c.insert(c.end(), {0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57});
    c.insert(c.end(), {0x48, 0xB8});
    imm64(reinterpret_cast<uint64_t>(st));
    c.insert(c.end(), {0xFF, 0xB0});
    disp32(128);
    c.push_back(0x9D);  // popfq
    for (unsigned r = 1; r < 16; ++r) {
      if (r == 4) continue;
      c.push_back(static_cast<uint8_t>(0x48 | ((r >> 3) << 2)));
      c.push_back(0x8B);
      c.push_back(static_cast<uint8_t>(0x80 | ((r & 7) << 3)));
      disp32(r * 8);
    }
    c.insert(c.end(), {0x48, 0x8B, 0x80});
    disp32(0);
    c.insert(c.end(), insn.begin(), insn.end());
    c.insert(c.end(), {0x48, 0xA3});
    imm64(reinterpret_cast<uint64_t>(&scratch));
    c.insert(c.end(), {0x48, 0xB8});
    imm64(reinterpret_cast<uint64_t>(st));
    for (unsigned r = 1; r < 16; ++r) {
      if (r == 4) continue;
      c.push_back(static_cast<uint8_t>(0x48 | ((r >> 3) << 2)));
      c.push_back(0x89);
      c.push_back(static_cast<uint8_t>(0x80 | ((r & 7) << 3)));
      disp32(r * 8);
    }
    c.push_back(0x9C);  // pushfq
    c.insert(c.end(), {0x8F, 0x80});
    disp32(128);
    c.push_back(0xFC);  // cld
    c.insert(c.end(), {0x41, 0x5F, 0x41, 0x5E, 0x41, 0x5D, 0x41, 0x5C, 0x5D, 0x5B, 0xC3});
    mprotect(code_, kPage, PROT_READ | PROT_WRITE);
    std::memcpy(code_, c.data(), c.size());
    mprotect(code_, kPage, PROT_READ | PROT_EXEC);
    reinterpret_cast<void (*)()>(code_)();
    st->gpr[0] = scratch;
  }

 private:
  uint8_t* code_;
};

// gregs index of the GPR with encoding number n.
inline constexpr int kGreg[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                  REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

}  // namespace faults::testing
