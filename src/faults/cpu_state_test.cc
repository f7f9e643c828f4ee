#include "faults/cpu_state.h"

#include <gtest/gtest.h>

#include <cstring>

#include "faults/emulator_test_util.h"

namespace faults {
namespace {

using testing::Frame;
using testing::kGreg;

TEST(CpuState, GprWidthsFollowTheCpu) {
  Frame f;
  CpuState cpu(&f.uc);
  for (int r = 0; r < 16; ++r) f.g(kGreg[r]) = static_cast<greg_t>(0x1122334455667788 + r);
  // Every encoding at every width names the right gregs slot.
  for (int r = 0; r < 16; ++r) {
    uint64_t full = 0x1122334455667788 + r;
    EXPECT_EQ(cpu.ReadGpr(static_cast<ZydisRegister>(ZYDIS_REGISTER_RAX + r)), full);
    EXPECT_EQ(cpu.ReadGpr(static_cast<ZydisRegister>(ZYDIS_REGISTER_EAX + r)), full & 0xffffffff);
    EXPECT_EQ(cpu.ReadGpr(static_cast<ZydisRegister>(ZYDIS_REGISTER_AX + r)), full & 0xffff);
  }
  EXPECT_EQ(cpu.ReadGpr(ZYDIS_REGISTER_AH), 0x77u);
  EXPECT_EQ(cpu.ReadGpr(ZYDIS_REGISTER_BH), 0x77u);  // rbx = ...88 + 3
  EXPECT_EQ(cpu.ReadGpr(ZYDIS_REGISTER_SIL), 0x8Eu);
  EXPECT_EQ(cpu.ReadGpr(ZYDIS_REGISTER_R15B), 0x97u);

  cpu.WriteGpr(ZYDIS_REGISTER_CH, 0xAB);
  EXPECT_EQ(static_cast<uint64_t>(f.g(REG_RCX)), 0x112233445566AB89u);
  cpu.WriteGpr(ZYDIS_REGISTER_DL, 0x1CD);
  EXPECT_EQ(static_cast<uint64_t>(f.g(REG_RDX)), 0x11223344556677CDu);
  cpu.WriteGpr(ZYDIS_REGISTER_R9W, 0xBEEF);
  EXPECT_EQ(static_cast<uint64_t>(f.g(REG_R9)), 0x112233445566BEEFu);
  cpu.WriteGpr(ZYDIS_REGISTER_R10D, 0xFFFFFFFF);
  EXPECT_EQ(static_cast<uint64_t>(f.g(REG_R10)), 0xFFFFFFFFu);  // upper half zeroed
  cpu.WriteGpr(ZYDIS_REGISTER_DIL, 0x01);
  EXPECT_EQ(static_cast<uint64_t>(f.g(REG_RDI)), 0x1122334455667701u);
  EXPECT_FALSE(CpuState::IsGpr(ZYDIS_REGISTER_XMM0));
  EXPECT_FALSE(CpuState::IsGpr(ZYDIS_REGISTER_RIP));
}

TEST(CpuState, VectorRegistersAcrossXsaveComponents) {
  if (XsaveComponentSize(kXsaveHi16Zmm) == 0 || (Frame::XCr0() & 0xe0) != 0xe0) GTEST_SKIP() << "no AVX-512";
  Frame f;
  CpuState cpu(&f.uc);
  uint8_t data[64];
  for (int i = 0; i < 64; ++i) data[i] = static_cast<uint8_t>(i + 1);
  // Components in their init state read as zero and are materialised on write.
  uint8_t out[64];
  ASSERT_TRUE(cpu.ReadVector(5, 64, out));
  for (uint8_t b : out) EXPECT_EQ(b, 0);
  std::memset(f.VecByte(5, 16), 0xEE, 16);  // garbage under a clear xstate_bv bit
  ASSERT_TRUE(cpu.WriteVector(5, data, 32, 64));
  EXPECT_EQ(f.xstate_bv() & 0x4, 0x4u);
  EXPECT_EQ(f.Vec(5, 32), std::vector<uint8_t>(data, data + 32));
  ASSERT_TRUE(cpu.ReadVector(5, 64, out));
  EXPECT_EQ(0, std::memcmp(out, data, 32));
  for (int i = 32; i < 64; ++i) EXPECT_EQ(out[i], 0);

  // A legacy-SSE-style write keeps the upper bytes.
  f.FillVec(7, 0x40);
  auto before = f.Vec(7);
  ASSERT_TRUE(cpu.WriteVector(7, data, 8, 16));
  auto after = f.Vec(7);
  EXPECT_EQ(0, std::memcmp(after.data(), data, 8));
  for (int i = 8; i < 16; ++i) EXPECT_EQ(after[i], 0);
  for (int i = 16; i < 64; ++i) EXPECT_EQ(after[i], before[i]);

  // zmm16-31 live whole in Hi16_ZMM.
  ASSERT_TRUE(cpu.WriteVector(31, data, 64, 64));
  EXPECT_EQ(f.Vec(31), std::vector<uint8_t>(data, data + 64));

  uint64_t k = 0;
  ASSERT_TRUE(cpu.ReadOpmask(3, &k));
  EXPECT_EQ(k, 0u);
  f.SetOpmask(3, 0xF0F0);
  ASSERT_TRUE(cpu.ReadOpmask(3, &k));
  EXPECT_EQ(k, 0xF0F0u);
}

TEST(CpuState, LegacyFrameHasOnlyXmm0To15) {
  Frame f(false);
  CpuState cpu(&f.uc);
  uint8_t data[16] = {1, 2, 3};
  uint8_t out[32];
  EXPECT_TRUE(cpu.WriteVector(3, data, 16, 16));
  EXPECT_TRUE(cpu.ReadVector(3, 16, out));
  EXPECT_EQ(0, std::memcmp(out, data, 16));
  EXPECT_FALSE(cpu.ReadVector(3, 32, out));
  EXPECT_FALSE(cpu.ReadVector(16, 16, out));
  EXPECT_FALSE(cpu.CanWriteVector(16, 16, 16));
  uint64_t k;
  EXPECT_FALSE(cpu.ReadOpmask(1, &k));
  // No frame at all.
  ucontext_t bare{};
  CpuState none(&bare);
  EXPECT_FALSE(none.ReadVector(0, 16, out));
  EXPECT_FALSE(none.CanWriteVector(0, 16, 16));
}

}  // namespace
}  // namespace faults
