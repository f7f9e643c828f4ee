#include "faults/x86_emulator.h"

#include <sys/mman.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "faults/alu_flags.h"
#include "faults/emulator_test_util.h"

namespace faults {
namespace {

using testing::Access;
using testing::FakeBus;
using testing::Frame;
using testing::kCodeAddr;
using testing::kDevAddr;
using testing::kGreg;
using testing::kMemAddr;
using testing::kPage;
using testing::Le;
using testing::NativeRunner;
using testing::NativeState;
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kCheckedFlags = kArithFlags | kFlagDf;

EmulationResult Emulate(Frame& f, FakeBus& bus, const Bytes& insn, uint64_t fault_addr) {
  bus.SetCode(insn, bus.code_readable);
  f.g(REG_RIP) = static_cast<greg_t>(kCodeAddr);
  f.g(REG_EFL) |= 0x2;
  return EmulateAccess(&f.uc, fault_addr, bus);
}

uint64_t U(greg_t v) { return static_cast<uint64_t>(v); }

// ---- the CPU as oracle: the same instruction on an ordinary page, natively and emulated ----

class OracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    page_ = static_cast<uint8_t*>(mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(page_, MAP_FAILED);
  }
  void TearDown() override { munmap(page_, kPage); }
  uint64_t page() const { return reinterpret_cast<uint64_t>(page_); }

  // Runs `insn` natively and emulated from `init` (page content `content`), expects the same
  // registers, arithmetic flags and memory; returns the emulation's access log.
  std::vector<Access> Compare(const Bytes& insn, NativeState init, uint64_t fault_addr, const Bytes& content,
                              const char* what) {
    std::memcpy(page_, content.data(), kPage);
    NativeState native = init;
    runner_.Run(insn, &native);

    FakeBus bus;
    bus.regions[0].base = page();
    std::memcpy(bus.regions[0].bytes.data(), content.data(), kPage);
    Frame f;
    for (int r = 0; r < 16; ++r) f.g(kGreg[r]) = static_cast<greg_t>(init.gpr[r]);
    f.g(REG_EFL) = static_cast<greg_t>(init.rflags | 2);
    EmulationResult res = Emulate(f, bus, insn, fault_addr);
    EXPECT_EQ(res.outcome, Outcome::kDone) << what << " " << res.mnemonic;
    EXPECT_EQ(U(f.g(REG_RIP)), kCodeAddr + insn.size()) << what;
    for (int r = 0; r < 16; ++r) {
      if (r == 4) continue;
      EXPECT_EQ(U(f.g(kGreg[r])), native.gpr[r]) << what << " register " << r;
    }
    EXPECT_EQ(U(f.g(REG_EFL)) & kCheckedFlags, native.rflags & kCheckedFlags)
        << what << std::hex << " in " << init.rflags;
    EXPECT_EQ(0, std::memcmp(bus.regions[0].bytes.data(), page_, kPage)) << what;
    EXPECT_EQ(bus.strays, 0) << what;
    return bus.log;
  }

  Bytes Content(uint32_t seed) {
    Bytes c(kPage);
    std::mt19937 rng(seed);
    for (auto& b : c) b = static_cast<uint8_t>(rng());
    return c;
  }

  NativeState Regs(std::mt19937_64& rng) {
    NativeState s{};
    for (auto& r : s.gpr) r = rng();
    s.gpr[3] = page() + 64;  // rbx: the base of every [rbx] operand
    s.rflags = 0;
    return s;
  }

  uint8_t* page_ = nullptr;
  NativeRunner runner_;
};

// Operand-size prefix / REX.W for `width` bytes, then the rest.
Bytes Sized(unsigned width, Bytes rest) {
  Bytes b;
  if (width == 2) b.push_back(0x66);
  if (width == 8) b.push_back(0x48);
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

void PushImm(Bytes& b, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

const uint64_t kEdges[] = {0,    1,          0x7f,       0x80,       0xff,      0x7fff,           0x8000,
                           0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x0f,    0x10,             0x7fffffffffffffff,
                           0x8000000000000000, ~uint64_t{0}, 0xf0f0f0f0f0f0f0f0, 0x123456789abcdef0};

TEST_F(OracleTest, AluGroupOnMemoryMatchesTheCpu) {
  std::mt19937_64 rng(42);
  const char* names[] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
  for (unsigned k = 0; k < 8; ++k) {
    for (unsigned w : {1u, 2u, 4u, 8u}) {
      for (int form = 0; form < 4; ++form) {
        for (int iter = 0; iter < 60; ++iter) {
          NativeState s = Regs(rng);
          Bytes content = Content(static_cast<uint32_t>(rng()));
          uint64_t a = iter < 18 ? kEdges[iter] : rng();
          uint64_t b = iter < 18 ? kEdges[(iter * 7 + 3) % 18] : rng();
          if (iter % 3 == 0) b = a;
          std::memcpy(content.data() + 64, &a, 8);
          s.gpr[1] = b;                             // rcx
          s.rflags = (rng() & kArithFlags) | (iter & 1 ? kFlagCf : 0);
          Bytes insn;
          uint8_t base = static_cast<uint8_t>(k * 8);
          if (form == 0) insn = Sized(w, {static_cast<uint8_t>(base + (w == 1 ? 0 : 1)), 0x0B});  // op [rbx], rcx
          if (form == 1) insn = Sized(w, {static_cast<uint8_t>(base + (w == 1 ? 2 : 3)), 0x0B});  // op rcx, [rbx]
          if (form == 2) {  // op [rbx], imm8 (sign-extended for 83)
            insn = Sized(w, {static_cast<uint8_t>(w == 1 ? 0x80 : 0x83), static_cast<uint8_t>((k << 3) | 3)});
            PushImm(insn, b, 1);
          }
          if (form == 3) {  // op [rbx], imm (imm32 sign-extended for 64-bit)
            insn = Sized(w, {static_cast<uint8_t>(w == 1 ? 0x80 : 0x81), static_cast<uint8_t>((k << 3) | 3)});
            PushImm(insn, b, w == 1 ? 1 : w == 2 ? 2 : 4);
          }
          std::string what = std::string(names[k]) + " w" + std::to_string(w) + " form" + std::to_string(form);
          std::vector<Access> log = Compare(insn, s, page() + 64, content, what.c_str());
          // One read of the operand width; one write unless cmp.
          ASSERT_EQ(log.size(), k == 7 ? 1u : form == 1 ? 1u : 2u) << what;
          EXPECT_EQ(log[0].kind, 'R');
          EXPECT_EQ(log[0].addr, page() + 64);
          EXPECT_EQ(log[0].size, w);
          if (log.size() == 2) {
            EXPECT_EQ(log[1].kind, 'W');
            EXPECT_EQ(log[1].size, w);
          }
        }
      }
    }
  }
}

TEST_F(OracleTest, TestIncDecNotNegXchgMatchTheCpu) {
  std::mt19937_64 rng(7);
  struct Form {
    const char* name;
    uint8_t op8, op;
    uint8_t modrm;
    int imm;  // -1: none; else operand-width immediate (imm32 for 64-bit)
    unsigned accesses;
  };
  const Form forms[] = {
      {"test mr", 0x84, 0x85, 0x0B, -1, 1}, {"test mi", 0xF6, 0xF7, 0x03, 1, 1},
      {"inc", 0xFE, 0xFF, 0x03, -1, 2},     {"dec", 0xFE, 0xFF, 0x0B, -1, 2},
      {"not", 0xF6, 0xF7, 0x13, -1, 2},     {"neg", 0xF6, 0xF7, 0x1B, -1, 2},
      {"xchg", 0x86, 0x87, 0x0B, -1, 2},
  };
  for (const Form& fm : forms) {
    for (unsigned w : {1u, 2u, 4u, 8u}) {
      for (int iter = 0; iter < 60; ++iter) {
        NativeState s = Regs(rng);
        Bytes content = Content(static_cast<uint32_t>(rng()));
        uint64_t a = iter < 18 ? kEdges[iter] : rng();
        uint64_t b = iter < 18 ? kEdges[17 - iter] : rng();
        std::memcpy(content.data() + 64, &a, 8);
        s.gpr[1] = b;
        s.rflags = rng() & kArithFlags;
        Bytes insn = Sized(w, {w == 1 ? fm.op8 : fm.op, fm.modrm});
        if (fm.imm >= 0) PushImm(insn, b, w == 8 ? 4 : w);
        std::string what = std::string(fm.name) + " w" + std::to_string(w);
        std::vector<Access> log = Compare(insn, s, page() + 64 + w - 1, content, what.c_str());
        ASSERT_EQ(log.size(), fm.accesses) << what;
        EXPECT_EQ(log[0].kind, 'R');
        EXPECT_EQ(log[0].size, w);
      }
    }
  }
}

TEST_F(OracleTest, LoadsAndExtensionsMatchTheCpu) {
  std::mt19937_64 rng(9);
  struct Form {
    const char* name;
    Bytes insn;
    unsigned width;
    int64_t disp = 0;
    bool indexed = false;  // + rcx * 8
  };
  const Form forms[] = {
      {"mov al,[rbx]", {0x8A, 0x03}, 1},
      {"mov ah,[rbx]", {0x8A, 0x23}, 1},
      {"mov bh,[rbx+1]", {0x8A, 0x7B, 0x01}, 1, 1},
      {"mov sil,[rbx]", {0x40, 0x8A, 0x33}, 1},
      {"mov r9b,[rbx]", {0x44, 0x8A, 0x0B}, 1},
      {"mov ax,[rbx]", {0x66, 0x8B, 0x03}, 2},
      {"mov r8w,[rbx]", {0x66, 0x44, 0x8B, 0x03}, 2},
      {"mov eax,[rbx]", {0x8B, 0x03}, 4},
      {"mov r11d,[rbx+8]", {0x44, 0x8B, 0x5B, 0x08}, 4, 8},
      {"mov rax,[rbx]", {0x48, 0x8B, 0x03}, 8},
      {"mov r15,[rbx+rcx*8-16]", {0x4C, 0x8B, 0x7C, 0xCB, 0xF0}, 8, -16, true},
      {"movzx eax,byte[rbx]", {0x0F, 0xB6, 0x03}, 1},
      {"movzx ax,byte[rbx]", {0x66, 0x0F, 0xB6, 0x03}, 1},
      {"movzx rax,word[rbx]", {0x48, 0x0F, 0xB7, 0x03}, 2},
      {"movzx r10d,byte[rbx]", {0x44, 0x0F, 0xB6, 0x13}, 1},
      {"movsx eax,byte[rbx]", {0x0F, 0xBE, 0x03}, 1},
      {"movsx ax,byte[rbx]", {0x66, 0x0F, 0xBE, 0x03}, 1},
      {"movsx rax,word[rbx]", {0x48, 0x0F, 0xBF, 0x03}, 2},
      {"movsx ecx,word[rbx]", {0x0F, 0xBF, 0x0B}, 2},
      {"movsxd rax,[rbx]", {0x48, 0x63, 0x03}, 4},
      {"movsxd r12,[rbx]", {0x4C, 0x63, 0x23}, 4},
      {"add rdx,[rbx]", {0x48, 0x03, 0x13}, 8},
      {"cmp [rbx],ch", {0x38, 0x2B}, 1},
      {"test [rbx],dh", {0x84, 0x33}, 1},
      {"or [rbx],ah (lock)", {0xF0, 0x08, 0x23}, 1},
  };
  for (const Form& fm : forms) {
    for (int iter = 0; iter < 40; ++iter) {
      NativeState s = Regs(rng);
      s.gpr[1] = rng() % 4;  // rcx as an index
      Bytes content = Content(static_cast<uint32_t>(rng()));
      // Make sign bits of every width show up both ways.
      if (iter & 1) {
        for (int i = 0; i < 64; ++i) content[i + 32] |= 0x80;
      }
      s.rflags = rng() & kArithFlags;
      uint64_t addr = page() + 64 + fm.disp + (fm.indexed ? s.gpr[1] * 8 : 0);
      std::vector<Access> log = Compare(fm.insn, s, addr, content, fm.name);
      ASSERT_GE(log.size(), 1u) << fm.name;
      EXPECT_EQ(log[0].kind, 'R') << fm.name;
      EXPECT_EQ(log[0].addr, addr) << fm.name;
      EXPECT_EQ(log[0].size, fm.width) << fm.name;
    }
  }
}

TEST_F(OracleTest, StoresMatchTheCpu) {
  std::mt19937_64 rng(11);
  struct Form {
    const char* name;
    Bytes insn;
    unsigned width;
  };
  const Form forms[] = {
      {"mov [rbx],al", {0x88, 0x03}, 1},
      {"mov [rbx],ah", {0x88, 0x23}, 1},
      {"mov [rbx],dh", {0x88, 0x33}, 1},
      {"mov [rbx],sil", {0x40, 0x88, 0x33}, 1},
      {"mov [rbx],r14b", {0x44, 0x88, 0x33}, 1},
      {"mov [rbx],cx", {0x66, 0x89, 0x0B}, 2},
      {"mov [rbx],ecx", {0x89, 0x0B}, 4},
      {"mov [rbx],r10d", {0x44, 0x89, 0x13}, 4},
      {"mov [rbx],rcx", {0x48, 0x89, 0x0B}, 8},
      {"mov [rbx],r13", {0x4C, 0x89, 0x2B}, 8},
      {"mov byte[rbx],0x5a", {0xC6, 0x03, 0x5A}, 1},
      {"mov word[rbx],0x8234", {0x66, 0xC7, 0x03, 0x34, 0x82}, 2},
      {"mov dword[rbx],0xdeadbeef", {0xC7, 0x03, 0xEF, 0xBE, 0xAD, 0xDE}, 4},
      {"mov qword[rbx],-2", {0x48, 0xC7, 0x03, 0xFE, 0xFF, 0xFF, 0xFF}, 8},
      {"mov qword[rbx],0x7fffffff", {0x48, 0xC7, 0x03, 0xFF, 0xFF, 0xFF, 0x7F}, 8},
      {"movnti [rbx],ecx", {0x0F, 0xC3, 0x0B}, 4},
      {"movnti [rbx],rcx", {0x48, 0x0F, 0xC3, 0x0B}, 8},
  };
  for (const Form& fm : forms) {
    for (int iter = 0; iter < 10; ++iter) {
      NativeState s = Regs(rng);
      Bytes content = Content(static_cast<uint32_t>(rng()));
      std::vector<Access> log = Compare(fm.insn, s, page() + 64, content, fm.name);
      // A plain store: one write, no read.
      ASSERT_EQ(log.size(), 1u) << fm.name;
      EXPECT_EQ(log[0].kind, 'W') << fm.name;
      EXPECT_EQ(log[0].addr, page() + 64) << fm.name;
      EXPECT_EQ(log[0].size, fm.width) << fm.name;
    }
  }
}

TEST_F(OracleTest, StringOpsMatchTheCpu) {
  std::mt19937_64 rng(13);
  struct Form {
    const char* name;
    Bytes insn;
    unsigned size;
    bool movs, rep;
  };
  const Form forms[] = {
      {"rep movsb", {0xF3, 0xA4}, 1, true, true},   {"rep movsw", {0x66, 0xF3, 0xA5}, 2, true, true},
      {"rep movsd", {0xF3, 0xA5}, 4, true, true},   {"rep movsq", {0xF3, 0x48, 0xA5}, 8, true, true},
      {"movsb", {0xA4}, 1, true, false},            {"movsq", {0x48, 0xA5}, 8, true, false},
      {"rep stosb", {0xF3, 0xAA}, 1, false, true},  {"rep stosw", {0x66, 0xF3, 0xAB}, 2, false, true},
      {"rep stosd", {0xF3, 0xAB}, 4, false, true},  {"rep stosq", {0xF3, 0x48, 0xAB}, 8, false, true},
      {"stosd", {0xAB}, 4, false, false},
  };
  for (const Form& fm : forms) {
    for (bool down : {false, true}) {
      for (uint64_t count : {1u, 2u, 7u, 33u}) {
        NativeState s = Regs(rng);
        Bytes content = Content(static_cast<uint32_t>(rng()));
        s.gpr[7] = page() + 2048 + (down ? 0 : 0);  // rdi
        s.gpr[6] = page() + 1024;                   // rsi
        s.gpr[1] = count;
        s.rflags = (rng() & kArithFlags) | (down ? kFlagDf : 0);
        std::string what = std::string(fm.name) + (down ? " std" : " cld") + " n=" + std::to_string(count);
        std::vector<Access> log = Compare(fm.insn, s, page() + 2048, content, what.c_str());
        uint64_t n = fm.rep ? count : 1;
        ASSERT_EQ(log.size(), n * (fm.movs ? 2 : 1)) << what;
        // Program order: element by element, read before write, walking with DF.
        for (uint64_t i = 0; i < n; ++i) {
          uint64_t delta = down ? uint64_t{0} - i * fm.size : i * fm.size;
          const Access& w = log[fm.movs ? 2 * i + 1 : i];
          EXPECT_EQ(w.kind, 'W');
          EXPECT_EQ(w.addr, page() + 2048 + delta);
          EXPECT_EQ(w.size, fm.size);
          if (fm.movs) {
            EXPECT_EQ(log[2 * i].kind, 'R');
            EXPECT_EQ(log[2 * i].addr, page() + 1024 + delta);
          }
        }
      }
    }
  }
}

// ---- explicit tables: access logs and register effects ----

struct EmuTest : ::testing::Test {
  Frame f;
  FakeBus bus;
};

TEST_F(EmuTest, HighByteLoadKeepsTheRestAnd32BitLoadZeroExtends) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 8);
  f.g(REG_RAX) = static_cast<greg_t>(0x1111'2222'3333'4444);
  auto r = Emulate(f, bus, {0x8A, 0x23}, kDevAddr + 8);  // mov ah, [rbx]
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(U(f.g(REG_RAX)), 0x1111'2222'3333'0000u | (uint64_t{*bus.Dev(8)} << 8) | 0x44);
  EXPECT_EQ(std::string(r.mnemonic), "mov");
  EXPECT_EQ(r.length, 2);
  ASSERT_EQ(bus.log.size(), 1u);
  EXPECT_EQ(bus.log[0], (Access{'R', kDevAddr + 8, 1, {*bus.Dev(8)}}));

  bus.log.clear();
  r = Emulate(f, bus, {0x8B, 0x03}, kDevAddr + 10);  // mov eax, [rbx]
  ASSERT_EQ(r.outcome, Outcome::kDone);
  uint32_t v;
  std::memcpy(&v, bus.Dev(8), 4);
  EXPECT_EQ(U(f.g(REG_RAX)), v);
}

TEST_F(EmuTest, MoffsRipRelativeAndAddr32Operands) {
  Bytes movabs = {0x48, 0xA1};  // movabs rax, [moffs64]
  PushImm(movabs, kDevAddr + 16, 8);
  auto r = Emulate(f, bus, movabs, kDevAddr + 16);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  uint64_t v;
  std::memcpy(&v, bus.Dev(16), 8);
  EXPECT_EQ(U(f.g(REG_RAX)), v);
  EXPECT_EQ(U(f.g(REG_RIP)), kCodeAddr + 10);

  Bytes store = {0xA2};  // movabs [moffs64], al
  PushImm(store, kDevAddr + 3, 8);
  f.g(REG_RAX) = 0x77;
  bus.log.clear();
  ASSERT_EQ(Emulate(f, bus, store, kDevAddr + 3).outcome, Outcome::kDone);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'W', kDevAddr + 3, 1, {0x77}}}));

  // mov ecx, [rip + disp]: relative to the next instruction (code placed a page below the device
  // so the displacement fits in 32 bits).
  bus.code_base = kDevAddr - 0x1000;
  f.g(REG_RIP) = static_cast<greg_t>(bus.code_base);
  Bytes rip = {0x8B, 0x0D};
  PushImm(rip, 0x1000 + 0x40 - 6, 4);
  bus.SetCode(rip);
  bus.log.clear();
  r = EmulateAccess(&f.uc, kDevAddr + 0x40, bus);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log.size(), 1u);
  EXPECT_EQ(bus.log[0].addr, kDevAddr + 0x40);
  EXPECT_EQ(U(f.g(REG_RIP)), bus.code_base + 6);

  // mov eax, [ebx]: 32-bit addressing truncates the sum.
  bus.code_base = kCodeAddr;
  bus.regions[0].base = 0x1000'0000;
  f.g(REG_RBX) = static_cast<greg_t>(0xFFFF'FFFF'1000'0010);
  bus.log.clear();
  r = Emulate(f, bus, {0x67, 0x8B, 0x03}, 0x1000'0010);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log[0].addr, 0x1000'0010u);
}

TEST_F(EmuTest, XchgIsOneReadThenOneWrite) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr);
  f.g(REG_RCX) = static_cast<greg_t>(0xAAAA'BBBB'CCCC'DDDD);
  uint8_t old[4];
  std::memcpy(old, bus.Dev(0), 4);
  auto r = Emulate(f, bus, {0x87, 0x0B}, kDevAddr + 2);  // xchg [rbx], ecx
  ASSERT_EQ(r.outcome, Outcome::kDone);
  ASSERT_EQ(bus.log.size(), 2u);
  EXPECT_EQ(bus.log[0], (Access{'R', kDevAddr, 4, Bytes(old, old + 4)}));
  EXPECT_EQ(bus.log[1], (Access{'W', kDevAddr, 4, Le(0xCCCCDDDD, 4)}));
  uint32_t o;
  std::memcpy(&o, old, 4);
  EXPECT_EQ(U(f.g(REG_RCX)), o);  // 32-bit write: upper half cleared
}

TEST_F(EmuTest, RmwFlagsEdgeCases) {
  // add byte [rbx], 1 on 0x7f: OF, SF, AF; CF clear; result 0x80 (odd parity: PF clear).
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr);
  *bus.Dev(0) = 0x7f;
  f.g(REG_EFL) = kFlagCf | kFlagZf;
  ASSERT_EQ(Emulate(f, bus, {0x80, 0x03, 0x01}, kDevAddr).outcome, Outcome::kDone);
  EXPECT_EQ(*bus.Dev(0), 0x80);
  EXPECT_EQ(U(f.g(REG_EFL)) & kArithFlags, kFlagOf | kFlagSf | kFlagAf);
  // inc byte [rbx] on 0xff: ZF, AF, PF; CF preserved (set before).
  *bus.Dev(0) = 0xff;
  f.g(REG_EFL) = 2 | kFlagCf;
  ASSERT_EQ(Emulate(f, bus, {0xFE, 0x03}, kDevAddr).outcome, Outcome::kDone);
  EXPECT_EQ(*bus.Dev(0), 0);
  EXPECT_EQ(U(f.g(REG_EFL)) & kArithFlags, kFlagZf | kFlagAf | kFlagPf | kFlagCf);
  // dec dword [rbx] on 0: SF, CF preserved clear.
  std::memset(bus.Dev(0), 0, 4);
  f.g(REG_EFL) = 2;
  ASSERT_EQ(Emulate(f, bus, {0xFF, 0x0B}, kDevAddr).outcome, Outcome::kDone);
  EXPECT_EQ(U(f.g(REG_EFL)) & kArithFlags, kFlagSf | kFlagAf | kFlagPf);
  // sub qword [rbx], rcx with 0 - 1: CF, SF.
  std::memset(bus.Dev(0), 0, 8);
  f.g(REG_RCX) = 1;
  ASSERT_EQ(Emulate(f, bus, {0x48, 0x29, 0x0B}, kDevAddr).outcome, Outcome::kDone);
  EXPECT_EQ(U(f.g(REG_EFL)) & kArithFlags, kFlagCf | kFlagSf | kFlagAf | kFlagPf);
  // cmp dword [rbx], imm8 writes nothing.
  bus.log.clear();
  ASSERT_EQ(Emulate(f, bus, {0x83, 0x3B, 0x05}, kDevAddr).outcome, Outcome::kDone);
  EXPECT_EQ(bus.log.size(), 1u);
  EXPECT_EQ(bus.log[0].kind, 'R');
  // not: no flags.
  f.g(REG_EFL) = 2 | kFlagZf | kFlagCf;
  ASSERT_EQ(Emulate(f, bus, {0xF6, 0x13}, kDevAddr).outcome, Outcome::kDone);
  EXPECT_EQ(U(f.g(REG_EFL)), 2 | kFlagZf | kFlagCf);
}

// ---- string ops across the device and ordinary memory, counts and faults ----

TEST_F(EmuTest, RepMovsFromDeviceToMemoryAndBack) {
  for (bool down : {false, true}) {
    FakeBus b;
    Frame fr;
    uint64_t src = kDevAddr + 0x100, dst = kMemAddr + 0x200;
    fr.g(REG_RSI) = static_cast<greg_t>(src);
    fr.g(REG_RDI) = static_cast<greg_t>(dst);
    fr.g(REG_RCX) = 3;
    fr.g(REG_EFL) = down ? kFlagDf : 0;
    auto r = Emulate(fr, b, {0xF3, 0xA5}, src);  // rep movsd
    ASSERT_EQ(r.outcome, Outcome::kDone);
    int64_t step = down ? -4 : 4;
    ASSERT_EQ(b.log.size(), 6u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(b.log[2 * i].kind, 'R');
      EXPECT_EQ(b.log[2 * i].addr, src + step * i);
      EXPECT_EQ(b.log[2 * i + 1].kind, 'W');
      EXPECT_EQ(b.log[2 * i + 1].addr, dst + step * i);
      EXPECT_EQ(b.log[2 * i + 1].data, b.log[2 * i].data);
    }
    EXPECT_EQ(U(fr.g(REG_RCX)), 0u);
    EXPECT_EQ(U(fr.g(REG_RSI)), src + 3 * step);
    EXPECT_EQ(U(fr.g(REG_RDI)), dst + 3 * step);
    EXPECT_EQ(U(fr.g(REG_RIP)), kCodeAddr + 2);
  }
}

TEST_F(EmuTest, RepWithZeroCountCannotHaveTrapped) {
  f.g(REG_RDI) = static_cast<greg_t>(kDevAddr);
  f.g(REG_RCX) = 0;
  auto r = Emulate(f, bus, {0xF3, 0xAA}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  EXPECT_TRUE(bus.log.empty());
  EXPECT_EQ(U(f.g(REG_RIP)), kCodeAddr);
}

TEST_F(EmuTest, RepStosFaultMidwayKeepsCompletedIterations) {
  for (bool down : {false, true}) {
    FakeBus b;
    Frame fr;
    uint64_t dst = kDevAddr + 0x800;
    fr.g(REG_RDI) = static_cast<greg_t>(dst);
    fr.g(REG_RCX) = 10;
    fr.g(REG_RAX) = 0x0102030405060708;
    fr.g(REG_EFL) = down ? kFlagDf : 0;
    b.fail_at = 4;  // the fifth write
    auto r = Emulate(fr, b, {0xF3, 0x48, 0xAB}, dst);
    ASSERT_EQ(r.outcome, Outcome::kBusError);
    int64_t step = down ? -8 : 8;
    EXPECT_EQ(r.fault_addr, dst + 4 * step);
    EXPECT_EQ(b.log.size(), 4u);
    EXPECT_EQ(U(fr.g(REG_RCX)), 6u);
    EXPECT_EQ(U(fr.g(REG_RDI)), dst + 4 * step);
    EXPECT_EQ(U(fr.g(REG_RIP)), kCodeAddr);  // still on the rep instruction
    EXPECT_EQ(b.log[3], (Access{'W', dst + 3 * step, 8, Le(0x0102030405060708, 8)}));
  }
  // A fault on the very first element changes nothing.
  f.g(REG_RDI) = static_cast<greg_t>(kDevAddr);
  f.g(REG_RCX) = 5;
  bus.fail_at = 0;
  bus.fail_status = BusStatus::kSegv;
  auto r = Emulate(f, bus, {0xF3, 0xAA}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kSegv);
  EXPECT_EQ(U(f.g(REG_RCX)), 5u);
  EXPECT_EQ(U(f.g(REG_RDI)), kDevAddr);
}

TEST_F(EmuTest, RepMovsFaultOnTheWriteAfterTheRead) {
  f.g(REG_RSI) = static_cast<greg_t>(kMemAddr);
  f.g(REG_RDI) = static_cast<greg_t>(kDevAddr);
  f.g(REG_RCX) = 4;
  bus.fail_at = 3;  // R0 W0 R1 [W1 fails]
  auto r = Emulate(f, bus, {0xF3, 0xA4}, kDevAddr);
  ASSERT_EQ(r.outcome, Outcome::kBusError);
  EXPECT_EQ(r.fault_addr, kDevAddr + 1);
  EXPECT_EQ(U(f.g(REG_RCX)), 3u);
  EXPECT_EQ(U(f.g(REG_RSI)), kMemAddr + 1);
  EXPECT_EQ(U(f.g(REG_RDI)), kDevAddr + 1);
}

// ---- vector moves ----

TEST_F(EmuTest, SseLoadsKeepUpperHalvesAndMovdZeroExtends) {
  f.FillVec(2, 0x40);
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x20);
  auto before = f.Vec(2);
  auto r = Emulate(f, bus, {0xF3, 0x0F, 0x6F, 0x13}, kDevAddr + 0x2F);  // movdqu xmm2, [rbx]
  ASSERT_EQ(r.outcome, Outcome::kDone);
  ASSERT_EQ(bus.log.size(), 2u);
  EXPECT_EQ(bus.log[0].addr, kDevAddr + 0x20);
  EXPECT_EQ(bus.log[0].size, 8u);
  EXPECT_EQ(bus.log[1].addr, kDevAddr + 0x28);
  auto after = f.Vec(2);
  EXPECT_EQ(Bytes(after.begin(), after.begin() + 16), Bytes(bus.Dev(0x20), bus.Dev(0x30)));
  EXPECT_EQ(Bytes(after.begin() + 16, after.end()), Bytes(before.begin() + 16, before.end()));

  f.FillVec(1, 0x10);
  before = f.Vec(1);
  bus.log.clear();
  r = Emulate(f, bus, {0x66, 0x0F, 0x6E, 0x0B}, kDevAddr + 0x20);  // movd xmm1, [rbx]
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'R', kDevAddr + 0x20, 4, Bytes(bus.Dev(0x20), bus.Dev(0x24))}}));
  after = f.Vec(1);
  Bytes expect(bus.Dev(0x20), bus.Dev(0x24));
  expect.resize(16, 0);
  expect.insert(expect.end(), before.begin() + 16, before.end());
  EXPECT_EQ(after, expect);

  // movq [rbx], xmm1: one 8-byte write.
  bus.log.clear();
  r = Emulate(f, bus, {0x66, 0x0F, 0xD6, 0x0B}, kDevAddr + 0x20);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'W', kDevAddr + 0x20, 8, Bytes(after.begin(), after.begin() + 8)}}));
}

TEST_F(EmuTest, VexLoadsZeroEverythingAboveTheVectorLength) {
  f.FillVec(4, 0x30);
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x40);
  auto r = Emulate(f, bus, {0xC5, 0xFA, 0x6F, 0x23}, kDevAddr + 0x40);  // vmovdqu xmm4, [rbx]
  ASSERT_EQ(r.outcome, Outcome::kDone);
  Bytes expect(bus.Dev(0x40), bus.Dev(0x50));
  expect.resize(64, 0);
  EXPECT_EQ(f.Vec(4), expect);

  f.FillVec(12, 0x50);
  bus.log.clear();
  r = Emulate(f, bus, {0xC5, 0x7D, 0x6F, 0x23}, kDevAddr + 0x5F);  // vmovdqa ymm12, [rbx]
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log.size(), 4u);
  expect.assign(bus.Dev(0x40), bus.Dev(0x60));
  expect.resize(64, 0);
  EXPECT_EQ(f.Vec(12), expect);

  // A ymm upper half in its init state (xstate_bv bit 2 clear) is written by materialising it.
  Frame g;
  g.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x40);
  ASSERT_EQ(g.xstate_bv() & 4, 0u);
  r = Emulate(g, bus, {0xC5, 0xFE, 0x6F, 0x23}, kDevAddr + 0x40);  // vmovdqu ymm4, [rbx]
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_NE(g.xstate_bv() & 4, 0u);
  EXPECT_EQ(g.Vec(4, 32), Bytes(bus.Dev(0x40), bus.Dev(0x60)));
}

TEST_F(EmuTest, WideStoresOfferWriteWideThenSplit) {
  f.FillVec(4, 0x90);
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x80);
  auto r = Emulate(f, bus, {0xC5, 0xFE, 0x7F, 0x23}, kDevAddr + 0x80);  // vmovdqu [rbx], ymm4
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'V', kDevAddr + 0x80, 32, f.Vec(4, 32)}}));

  bus.accept_wide = false;
  bus.log.clear();
  r = Emulate(f, bus, {0xC5, 0xFE, 0x7F, 0x23}, kDevAddr + 0x80);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  ASSERT_EQ(bus.log.size(), 4u);
  auto v = f.Vec(4, 32);
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(bus.log[i], (Access{'W', kDevAddr + 0x80 + 8 * i, 8, Bytes(v.begin() + 8 * i, v.begin() + 8 * i + 8)}));
  }

  // Unaligned: naturally aligned pieces in address order.
  bus.log.clear();
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x83);
  r = Emulate(f, bus, {0xF3, 0x0F, 0x7F, 0x13}, kDevAddr + 0x83);  // movdqu [rbx], xmm2
  ASSERT_EQ(r.outcome, Outcome::kDone);
  std::vector<std::pair<uint64_t, unsigned>> pieces;
  for (const Access& a : bus.log) pieces.push_back({a.addr - kDevAddr, a.size});
  EXPECT_EQ(pieces, (std::vector<std::pair<uint64_t, unsigned>>{{0x83, 1}, {0x84, 4}, {0x88, 8}, {0x90, 2}, {0x92, 1}}));
}

TEST_F(EmuTest, EvexMovesOnHighRegistersAndZmm) {
  f.FillVec(16, 0x20);
  f.FillVec(18, 0x60);
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x100);
  // vmovdqu64 [rbx], ymm16
  auto r = Emulate(f, bus, {0x62, 0xE1, 0xFE, 0x28, 0x7F, 0x03}, kDevAddr + 0x100);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(std::string(r.mnemonic), "vmovdqu64");
  EXPECT_EQ(bus.log, (std::vector<Access>{{'V', kDevAddr + 0x100, 32, f.Vec(16, 32)}}));
  // vmovdqu64 zmm18, [rbx]
  bus.log.clear();
  r = Emulate(f, bus, {0x62, 0xE1, 0xFE, 0x48, 0x6F, 0x13}, kDevAddr + 0x13F);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log.size(), 8u);
  EXPECT_EQ(f.Vec(18), Bytes(bus.Dev(0x100), bus.Dev(0x140)));
  // vmovdqu64 xmm17, [rbx]: zeroes bytes 16-63 of zmm17.
  f.FillVec(17, 0x70);
  r = Emulate(f, bus, {0x62, 0xE1, 0xFE, 0x08, 0x6F, 0x0B}, kDevAddr + 0x100);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  Bytes expect(bus.Dev(0x100), bus.Dev(0x110));
  expect.resize(64, 0);
  EXPECT_EQ(f.Vec(17), expect);
  // vmovdqa64 [rbx], zmm3 (zmm0-15 upper half from ZMM_Hi256), WriteWide refused.
  f.FillVec(3, 0x01);
  bus.accept_wide = false;
  bus.log.clear();
  r = Emulate(f, bus, {0x62, 0xF1, 0xFD, 0x48, 0x7F, 0x1B}, kDevAddr + 0x100);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  ASSERT_EQ(bus.log.size(), 8u);
  EXPECT_EQ(Bytes(bus.Dev(0x100), bus.Dev(0x140)), f.Vec(3));
  // vmovdqa64 at a misaligned address: #GP before any access.
  bus.log.clear();
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x120);
  r = Emulate(f, bus, {0x62, 0xF1, 0xFD, 0x48, 0x7F, 0x1B}, kDevAddr + 0x120);
  EXPECT_EQ(r.outcome, Outcome::kSegv);
  EXPECT_TRUE(bus.log.empty());
}

TEST_F(EmuTest, MaskedStoresTouchOnlyEnabledBytes) {
  // glibc's memset tail: bzhi; kmovd k1; vmovdqu8 [rax]{k1}, ymm16 with 11 bytes enabled.
  f.FillVec(16, 0x20);
  f.SetOpmask(1, (1u << 11) - 1);
  f.g(REG_RAX) = static_cast<greg_t>(kDevAddr + 0x200);
  auto r = Emulate(f, bus, {0x62, 0xE1, 0x7F, 0x29, 0x7F, 0x00}, kDevAddr + 0x200);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  auto v = f.Vec(16);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'W', kDevAddr + 0x200, 8, Bytes(v.begin(), v.begin() + 8)},
                                          {'W', kDevAddr + 0x208, 2, Bytes(v.begin() + 8, v.begin() + 10)},
                                          {'W', kDevAddr + 0x20A, 1, Bytes(v.begin() + 10, v.begin() + 11)}}));
  // The zmm form with a full 64-bit mask is one wide write.
  f.SetOpmask(1, ~uint64_t{0});
  bus.log.clear();
  r = Emulate(f, bus, {0x62, 0xE1, 0x7F, 0x49, 0x7F, 0x00}, kDevAddr + 0x200);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'V', kDevAddr + 0x200, 64, v}}));
  // vmovdqu16 [rbx]{k3}, xmm1 with words 1 and 2 enabled: bytes 2..5.
  f.FillVec(1, 0x80);
  f.SetOpmask(3, 0b110);
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x200);
  bus.log.clear();
  r = Emulate(f, bus, {0x62, 0xF1, 0xFF, 0x0B, 0x7F, 0x0B}, kDevAddr + 0x203);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  auto x = f.Vec(1);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'W', kDevAddr + 0x202, 2, Bytes(x.begin() + 2, x.begin() + 4)},
                                          {'W', kDevAddr + 0x204, 2, Bytes(x.begin() + 4, x.begin() + 6)}}));
  // A trap address in a masked-off byte is not this instruction's.
  bus.log.clear();
  r = Emulate(f, bus, {0x62, 0xF1, 0xFF, 0x0B, 0x7F, 0x0B}, kDevAddr + 0x200);
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  EXPECT_TRUE(bus.log.empty());
}

TEST_F(EmuTest, MaskedLoadsMergeOrZero) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x300);
  f.SetOpmask(2, 0b1010'0101);
  for (bool zeroing : {false, true}) {
    f.FillVec(20, 0x33);
    auto before = f.Vec(20);
    bus.log.clear();
    uint8_t p3 = zeroing ? 0xAA : 0x2A;  // vmovdqu32 ymm20{k2}{z}, [rbx]
    auto r = Emulate(f, bus, {0x62, 0xE1, 0x7E, p3, 0x6F, 0x23}, kDevAddr + 0x300);
    ASSERT_EQ(r.outcome, Outcome::kDone);
    auto after = f.Vec(20);
    for (unsigned i = 0; i < 64; ++i) {
      unsigned elem = i / 4;
      uint8_t want = i >= 32 ? 0 : (0b1010'0101 >> elem & 1) ? *bus.Dev(0x300 + i) : zeroing ? 0 : before[i];
      EXPECT_EQ(after[i], want) << i;
    }
    // Enabled dwords 0, 2, 5, 7: four 4-byte reads.
    ASSERT_EQ(bus.log.size(), 4u);
    EXPECT_EQ(bus.log[1].addr, kDevAddr + 0x308);
  }
}

TEST_F(EmuTest, NonTemporalAndAlignedSseForms) {
  f.FillVec(1, 0x44);
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x400);
  auto r = Emulate(f, bus, {0x66, 0x0F, 0xE7, 0x0B}, kDevAddr + 0x400);  // movntdq [rbx], xmm1
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'V', kDevAddr + 0x400, 16, f.Vec(1, 16)}}));
  f.FillVec(17, 0x55);
  bus.log.clear();
  r = Emulate(f, bus, {0x62, 0xE1, 0x7D, 0x48, 0xE7, 0x0B}, kDevAddr + 0x400);  // vmovntdq [rbx], zmm17
  ASSERT_EQ(r.outcome, Outcome::kDone);
  EXPECT_EQ(bus.log, (std::vector<Access>{{'V', kDevAddr + 0x400, 64, f.Vec(17)}}));
  // movaps xmm3, [rbx] / movups [rbx], xmm3 / movapd / movupd
  for (Bytes insn : {Bytes{0x0F, 0x28, 0x1B}, Bytes{0x0F, 0x11, 0x1B}, Bytes{0x66, 0x0F, 0x29, 0x1B},
                     Bytes{0x66, 0x0F, 0x10, 0x1B}, Bytes{0x66, 0x44, 0x0F, 0x6F, 0x13}}) {
    bus.log.clear();
    r = Emulate(f, bus, insn, kDevAddr + 0x408);
    ASSERT_EQ(r.outcome, Outcome::kDone) << r.mnemonic;
    EXPECT_FALSE(bus.log.empty());
  }
  // movdqa at +8: #GP.
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x408);
  bus.log.clear();
  r = Emulate(f, bus, {0x66, 0x0F, 0x6F, 0x0B}, kDevAddr + 0x408);
  EXPECT_EQ(r.outcome, Outcome::kSegv);
  EXPECT_TRUE(bus.log.empty());
}

TEST_F(EmuTest, YmmWithoutXsaveAreaIsUnsupported) {
  Frame legacy(false);
  legacy.g(REG_RBX) = static_cast<greg_t>(kDevAddr);
  auto r = Emulate(legacy, bus, {0xC5, 0xFE, 0x7F, 0x23}, kDevAddr);  // vmovdqu [rbx], ymm4
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  r = Emulate(legacy, bus, {0xC5, 0xFA, 0x6F, 0x23}, kDevAddr);  // vmovdqu xmm4, [rbx]: cannot zero
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  EXPECT_TRUE(bus.log.empty());
  // Legacy SSE needs only the FXSAVE image.
  r = Emulate(legacy, bus, {0xF3, 0x0F, 0x7F, 0x13}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kDone);
}

TEST_F(EmuTest, Movdir64b) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x40);
  f.g(REG_RSI) = static_cast<greg_t>(kMemAddr + 0x10);
  Bytes src(bus.Mem(0x10), bus.Mem(0x50));
  auto r = Emulate(f, bus, {0x66, 0x0F, 0x38, 0xF8, 0x1E}, kDevAddr + 0x40);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  ASSERT_EQ(bus.log.size(), 9u);
  for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(bus.log[i], (Access{'R', kMemAddr + 0x10 + 8 * i, 8, Bytes(src.begin() + 8 * i, src.begin() + 8 * i + 8)}));
  EXPECT_EQ(bus.log[8], (Access{'V', kDevAddr + 0x40, 64, src}));
  EXPECT_EQ(U(f.g(REG_RIP)), kCodeAddr + 5);

  bus.accept_wide = false;
  bus.log.clear();
  r = Emulate(f, bus, {0x66, 0x0F, 0x38, 0xF8, 0x1E}, kDevAddr + 0x7F);
  ASSERT_EQ(r.outcome, Outcome::kDone);
  ASSERT_EQ(bus.log.size(), 16u);
  for (unsigned i = 0; i < 8; ++i) {
    EXPECT_EQ(bus.log[8 + i], (Access{'W', kDevAddr + 0x40 + 8 * i, 8, Bytes(src.begin() + 8 * i, src.begin() + 8 * i + 8)}));
  }
  // Destination not 64-byte aligned: #GP.
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x48);
  bus.log.clear();
  r = Emulate(f, bus, {0x66, 0x0F, 0x38, 0xF8, 0x1E}, kDevAddr + 0x48);
  EXPECT_EQ(r.outcome, Outcome::kSegv);
  EXPECT_TRUE(bus.log.empty());
}

// ---- refusals ----

TEST_F(EmuTest, UnsupportedLeavesEverythingAlone) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr);
  f.g(REG_RAX) = 0x1234;
  f.g(REG_RIP) = static_cast<greg_t>(kCodeAddr);
  f.g(REG_EFL) = 2;
  struct Case {
    const char* name;
    Bytes insn;
    const char* mnemonic;
  };
  const Case cases[] = {
      {"cpuid", {0x0F, 0xA2}, "cpuid"},
      {"fnsave [rbx]", {0xDD, 0x33}, "fnsave"},
      {"movq mm0, [rbx]", {0x0F, 0x6F, 0x03}, "movq"},
      {"mov eax, fs:[rbx]", {0x64, 0x8B, 0x03}, "mov"},
      {"movss xmm0, [rbx]", {0xF3, 0x0F, 0x10, 0x03}, "movss"},
      {"shl dword [rbx], 1", {0xD1, 0x23}, "shl"},
      {"bad", {0x0F, 0xFF}, "(bad)"},
  };
  for (const Case& c : cases) {
    Frame before = f;
    before.uc.uc_mcontext.fpregs = f.uc.uc_mcontext.fpregs;
    auto r = Emulate(f, bus, c.insn, kDevAddr);
    EXPECT_EQ(r.outcome, Outcome::kUnsupported) << c.name;
    EXPECT_EQ(std::string(r.mnemonic), c.mnemonic) << c.name;
    EXPECT_TRUE(bus.log.empty()) << c.name;
    EXPECT_EQ(0, std::memcmp(&before.uc.uc_mcontext.gregs, &f.uc.uc_mcontext.gregs, sizeof(gregset_t))) << c.name;
    EXPECT_EQ(0, std::memcmp(before.fp, f.fp, sizeof f.fp)) << c.name;
    EXPECT_EQ(0, std::memcmp(r.bytes, c.insn.data(), std::min<size_t>(c.insn.size(), r.length))) << c.name;
  }
}

TEST_F(EmuTest, OperandNotCoveringTheTrapIsUnsupported) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr + 0x10);
  auto r = Emulate(f, bus, {0x8B, 0x03}, kDevAddr + 0x14);  // 4 bytes at 0x10: 0x14 outside
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  r = Emulate(f, bus, {0x8B, 0x03}, kDevAddr + 0x0F);
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  EXPECT_TRUE(bus.log.empty());
  r = Emulate(f, bus, {0x8B, 0x03}, kDevAddr + 0x13);
  EXPECT_EQ(r.outcome, Outcome::kDone);
}

TEST_F(EmuTest, ErrorsLeaveRegistersAsTheyWere) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr);
  f.g(REG_RCX) = 5;
  f.g(REG_EFL) = 2;
  // or [rbx], ecx: the write fails after the read.
  bus.fail_at = 1;
  f.g(REG_RIP) = static_cast<greg_t>(kCodeAddr);
  Frame before = f;
  auto r = Emulate(f, bus, {0x09, 0x0B}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kBusError);
  EXPECT_EQ(r.fault_addr, kDevAddr);
  EXPECT_EQ(0, std::memcmp(&before.uc.uc_mcontext.gregs, &f.uc.uc_mcontext.gregs, sizeof(gregset_t)));
  // mov eax, [rbx]: the read fails.
  bus.fail_at = 1;  // the log holds the earlier read
  bus.fail_status = BusStatus::kSegv;
  r = Emulate(f, bus, {0x8B, 0x03}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kSegv);
  EXPECT_EQ(0, std::memcmp(&before.uc.uc_mcontext.gregs, &f.uc.uc_mcontext.gregs, sizeof(gregset_t)));
}

TEST_F(EmuTest, CodeAtTheEndOfAReadablePage) {
  f.g(REG_RBX) = static_cast<greg_t>(kDevAddr);
  // Only 2 of the 6 bytes of mov dword [rbx], imm32 are readable.
  bus.code_readable = 2;
  auto r = Emulate(f, bus, {0xC7, 0x03, 1, 2, 3, 4}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  EXPECT_EQ(r.length, 2);
  EXPECT_EQ(std::string(r.mnemonic), "(bad)");
  // A complete instruction right before the end decodes (FetchCode returned fewer than 15).
  bus.code_readable = 2;
  r = Emulate(f, bus, {0x8B, 0x03}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kDone);
  // Nothing readable at all.
  bus.code_readable = 0;
  r = Emulate(f, bus, {0x8B, 0x03}, kDevAddr);
  EXPECT_EQ(r.outcome, Outcome::kUnsupported);
  EXPECT_EQ(r.length, 0);
}

// ---- robustness: random bytes never crash and never reach beyond the bus ----

TEST(EmulatorFuzz, RandomInstructionBytes) {
  std::mt19937_64 rng(20240601);
  int done = 0;
  FakeBus bus;
  // 300,000 sequences; VB_STRESS_SCALE scales it down in the sanitizer builds (at least 10,000).
  const char* scale_env = std::getenv("VB_STRESS_SCALE");
  const double scale = scale_env && *scale_env ? std::atof(scale_env) : 1.0;
  const int iterations = std::max(10000, static_cast<int>(300000 * scale));
  for (int iter = 0; iter < iterations; ++iter) {
    Frame f(iter % 17 != 0);
    for (int r = 0; r < 16; ++r) {
      uint64_t v = rng();
      // Point many registers into or near the device page so memory operands land there.
      if (v & 1) v = iter & 4 ? kDevAddr + 0x800 : kDevAddr + (v >> 52);
      f.g(kGreg[r]) = static_cast<greg_t>(v);
    }
    f.g(REG_EFL) = static_cast<greg_t>((rng() & (kArithFlags | kFlagDf)) | 2);
    if (iter % 3 == 0) f.g(REG_RCX) = static_cast<greg_t>(rng() % 5);
    for (unsigned i = 0; i < 32; i += 5) f.FillVec(i, static_cast<uint8_t>(rng()));
    f.SetOpmask(1, rng());
    Bytes insn(15);
    for (auto& b : insn) b = static_cast<uint8_t>(rng());
    // Half the time start with an opcode we emulate, so the operand paths are exercised too.
    static const uint8_t kLead[] = {0x88, 0x89, 0x8A, 0x8B, 0x01, 0x09, 0x31, 0x29, 0x39, 0x85, 0x86, 0x87, 0x80,
                                    0x81, 0x83, 0xC6, 0xC7, 0xF6, 0xF7, 0xFE, 0xFF, 0x48, 0x66, 0xF3, 0x0F, 0x62,
                                    0xC5, 0xC4, 0xA4, 0xA5, 0xAA, 0xAB, 0xA0, 0xA3};
    if (iter & 2) insn[0] = kLead[rng() % sizeof kLead];
    bus.log.clear();
    bus.code_readable = iter % 11 == 0 ? rng() % 16 : SIZE_MAX;
    bus.accept_wide = iter & 1;
    bus.fail_at = iter % 7 == 0 ? static_cast<int>(rng() % 4) : -1;
    uint64_t fault = iter & 4 ? kDevAddr + 0x800 + rng() % 4 : kDevAddr + rng() % kPage;
    f.g(REG_RIP) = static_cast<greg_t>(kCodeAddr);
    Frame before = f;
    auto r = Emulate(f, bus, insn, fault);
    ASSERT_LE(r.length, 15);
    if (r.outcome == Outcome::kUnsupported) {
      ASSERT_TRUE(bus.log.empty()) << r.mnemonic;
      ASSERT_EQ(0, std::memcmp(&before.uc.uc_mcontext.gregs, &f.uc.uc_mcontext.gregs, sizeof(gregset_t)))
          << r.mnemonic;
      ASSERT_EQ(0, std::memcmp(before.fp, f.fp, sizeof f.fp)) << r.mnemonic;
    } else if (r.outcome == Outcome::kDone) {
      ++done;
      ASSERT_EQ(U(f.g(REG_RIP)), kCodeAddr + r.length) << r.mnemonic;
    }
  }
  EXPECT_GT(done, iterations / 150);
}

}  // namespace
}  // namespace faults
