// End to end against the kernel's own signal frame: instructions touch a PROT_NONE page, a
// SIGSEGV handler runs EmulateAccess with a bus that serves that page from a shadow buffer, and
// the registers the program sees after sigreturn are checked. This is what proves the XSAVE
// layout assumptions (component offsets, xstate_bv, opmask) against the real thing.
#include <signal.h>
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstring>

#include "faults/x86_emulator.h"

#if defined(__SANITIZE_THREAD__)
#define VB_FAULTS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VB_FAULTS_TSAN 1
#endif
#endif

namespace faults {
namespace {

constexpr size_t kPage = 4096;

class ShadowBus : public MemoryBus {
 public:
  size_t FetchCode(uint64_t rip, uint8_t* out, size_t max) override {
    std::memcpy(out, reinterpret_cast<const void*>(rip), max);  // test code: readable
    return max;
  }
  BusStatus Read(uint64_t addr, void* data, unsigned size) override {
    std::memcpy(data, Where(addr), size);
    ++reads;
    return BusStatus::kOk;
  }
  BusStatus Write(uint64_t addr, const void* data, unsigned size) override {
    std::memcpy(Where(addr), data, size);
    ++writes;
    return BusStatus::kOk;
  }
  BusStatus WriteWide(uint64_t addr, const void* data, unsigned size, bool* accepted) override {
    *accepted = false;
    return BusStatus::kOk;
  }
  void* Where(uint64_t addr) {
    if (addr - base < kPage) return shadow + (addr - base);
    return reinterpret_cast<void*>(addr);
  }

  uint64_t base = 0;
  uint8_t shadow[kPage];
  int reads = 0, writes = 0;
};

ShadowBus* g_bus = nullptr;
Outcome g_last = Outcome::kDone;
int g_traps = 0;

void OnSegv(int, siginfo_t* si, void* uc) {
  ++g_traps;
  EmulationResult r = EmulateAccess(static_cast<ucontext_t*>(uc), reinterpret_cast<uint64_t>(si->si_addr), *g_bus);
  g_last = r.outcome;
  if (r.outcome != Outcome::kDone) {
    // Let the fault recur under the default action: the test dies loudly instead of looping.
    signal(SIGSEGV, SIG_DFL);
  }
}

class SignalFrameTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef VB_FAULTS_TSAN
    GTEST_SKIP() << "TSan owns synchronous SIGSEGV";
#endif
    page_ = static_cast<uint8_t*>(mmap(nullptr, kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(page_, MAP_FAILED);
    bus_.base = reinterpret_cast<uint64_t>(page_);
    for (size_t i = 0; i < kPage; ++i) bus_.shadow[i] = static_cast<uint8_t>(i * 13 + 1);
    g_bus = &bus_;
    g_traps = 0;
    struct sigaction sa {};
    sa.sa_sigaction = &OnSegv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGSEGV, &sa, &old_), 0);
  }
  void TearDown() override {
    if (page_ == nullptr) return;
    sigaction(SIGSEGV, &old_, nullptr);
    munmap(page_, kPage);
  }

  uint8_t* page_ = nullptr;
  ShadowBus bus_;
  struct sigaction old_ {};
};

bool HasAvx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"); }

TEST_F(SignalFrameTest, ScalarLoadAndRmwFlags) {
  uint32_t v = 0;
  uint64_t flags = 0;
  asm volatile("movl 4(%2), %0\n\t"
               "orl $0x80000000, 8(%2)\n\t"
               "pushfq\n\t"
               "popq %1"
               : "=&r"(v), "=r"(flags)
               : "r"(page_)
               : "memory", "cc");
  uint32_t want;
  std::memcpy(&want, bus_.shadow + 4, 4);
  EXPECT_EQ(v, want);
  EXPECT_EQ(g_traps, 2);
  EXPECT_NE(flags & 0x80, 0u);  // SF from the or
  EXPECT_EQ(bus_.shadow[11] & 0x80, 0x80);
}

TEST_F(SignalFrameTest, YmmLoadThroughTheKernelsXsaveArea) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP();
  alignas(32) uint8_t out[32];
  asm volatile("vpcmpeqd %%ymm1, %%ymm1, %%ymm1\n\t"
               "vmovdqu (%1), %%ymm1\n\t"
               "vmovdqu %%ymm1, (%0)"
               :
               : "r"(out), "r"(page_ + 32)
               : "memory", "xmm1");
  EXPECT_EQ(0, std::memcmp(out, bus_.shadow + 32, 32));
  // And a VEX.128 load clears bits 255:128.
  asm volatile("vpcmpeqd %%ymm1, %%ymm1, %%ymm1\n\t"
               "vmovdqu (%1), %%xmm1\n\t"
               "vmovdqu %%ymm1, (%0)"
               :
               : "r"(out), "r"(page_ + 64)
               : "memory", "xmm1");
  EXPECT_EQ(0, std::memcmp(out, bus_.shadow + 64, 16));
  for (int i = 16; i < 32; ++i) EXPECT_EQ(out[i], 0) << i;
}

TEST_F(SignalFrameTest, EvexHighRegistersAndMaskedStore) {
  if (!HasAvx512()) GTEST_SKIP();
  alignas(64) uint8_t out[64];
  alignas(64) uint8_t pattern[64];
  for (int i = 0; i < 64; ++i) pattern[i] = static_cast<uint8_t>(0xC0 + i);
  // zmm17 <- 64 device bytes; read back natively.
  asm volatile("vmovdqu64 (%1), %%zmm17\n\t"
               "vmovdqu64 %%zmm17, (%0)"
               :
               : "r"(out), "r"(page_ + 128)
               : "memory");
  EXPECT_EQ(0, std::memcmp(out, bus_.shadow + 128, 64));
  // glibc's memset tail: 11 bytes through k1.
  uint8_t before[64];
  std::memcpy(before, bus_.shadow + 256, 64);
  asm volatile("vmovdqu64 (%0), %%zmm16\n\t"
               "movq $0x7ff, %%rax\n\t"
               "kmovq %%rax, %%k1\n\t"
               "vmovdqu8 %%zmm16, (%1)%{%%k1%}"
               :
               : "r"(pattern), "r"(page_ + 256)
               : "memory", "rax");
  EXPECT_EQ(0, std::memcmp(bus_.shadow + 256, pattern, 11));
  EXPECT_EQ(0, std::memcmp(bus_.shadow + 256 + 11, before + 11, 64 - 11));
  EXPECT_EQ(g_last, Outcome::kDone);
}

// glibc's own memset/memcpy (the AVX-512/EVEX variants this CPU selects: masked stores, zmm
// moves, rep movsb/stosb for the large sizes) on the trapped page, every size up to 300 and a
// whole page.
TEST_F(SignalFrameTest, GlibcMemsetAndMemcpyOnTheTrappedPage) {
  void* (*volatile do_memset)(void*, int, size_t) = &memset;
  void* (*volatile do_memcpy)(void*, const void*, size_t) = &memcpy;
  static uint8_t src[kPage], dst[kPage];
  for (size_t i = 0; i < kPage; ++i) src[i] = static_cast<uint8_t>(i * 7 + 3);
  for (size_t n : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{8}, size_t{15}, size_t{16}, size_t{31},
                   size_t{32}, size_t{33}, size_t{63}, size_t{64}, size_t{65}, size_t{100}, size_t{128},
                   size_t{200}, size_t{256}, size_t{300}, kPage - 1, kPage}) {
    size_t off = n >= kPage - 1 ? 0 : 5;
    std::memset(bus_.shadow, 0xEE, kPage);
    do_memset(page_ + off, 0x3C, n);
    for (size_t i = 0; i < kPage; ++i) {
      ASSERT_EQ(bus_.shadow[i], i >= off && i < off + n ? 0x3C : 0xEE) << "memset n=" << n << " at " << i;
    }
    do_memcpy(page_ + off, src, n);
    ASSERT_EQ(0, std::memcmp(bus_.shadow + off, src, n)) << "memcpy to n=" << n;
    std::memset(dst, 0, sizeof dst);
    do_memcpy(dst, page_ + off, n);
    ASSERT_EQ(0, std::memcmp(dst, src, n)) << "memcpy from n=" << n;
  }
  EXPECT_EQ(g_last, Outcome::kDone);
}

}  // namespace
}  // namespace faults
