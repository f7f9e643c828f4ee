// The EFAULT-safe user copies in both modes: whole copies succeed, any unreadable / unwritable
// byte answers EFAULT (never a crash), strndup_user's length rules, and many faults in a row on
// several threads leave the process healthy.
#include "uapi/user_copy.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <string>
#include <atomic>
#include <thread>
#include <vector>

namespace uapi {
namespace {

class UserCopyTest : public ::testing::TestWithParam<CopyMode> {
 protected:
  void SetUp() override {
    saved_ = GetCopyMode();
    SetCopyMode(GetParam());
    base_ = static_cast<uint8_t*>(mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(base_, MAP_FAILED);
    ASSERT_EQ(mprotect(base_ + 4096, 4096, PROT_NONE), 0);
    ASSERT_EQ(mprotect(base_ + 8192, 4096, PROT_READ), 0);
  }
  void TearDown() override {
    munmap(base_, 3 * 4096);
    SetCopyMode(saved_);
  }
  uint64_t U(const void* p) { return reinterpret_cast<uint64_t>(p); }
  uint8_t* base_ = nullptr;  // [rw page][PROT_NONE page][read-only page]
  CopyMode saved_{};
};

TEST_P(UserCopyTest, CopiesAndFaults) {
  uint8_t buf[64];
  std::memset(base_ + 4096 - 64, 0xab, 64);
  EXPECT_EQ(CopyFromUser(buf, U(base_ + 4096 - 64), 64), 0);
  EXPECT_EQ(buf[63], 0xab);
  EXPECT_EQ(CopyFromUser(buf, U(base_ + 4096 - 32), 64), -EFAULT);  // runs into PROT_NONE
  EXPECT_EQ(CopyFromUser(buf, 0, 8), -EFAULT);
  EXPECT_EQ(CopyFromUser(buf, 1, 8), -EFAULT);
  EXPECT_EQ(CopyFromUser(buf, 0xffff800000000000ull, 8), -EFAULT);  // kernel half
  EXPECT_EQ(CopyFromUser(buf, ~0ull - 3, 8), -EFAULT);              // wraps
  EXPECT_EQ(CopyFromUser(buf, U(base_ + 8192), 64), 0);             // read-only is readable
  EXPECT_EQ(CopyToUser(U(base_ + 8192), buf, 8), -EFAULT);          // ...not writable
  EXPECT_EQ(CopyToUser(U(base_ + 4096), buf, 8), -EFAULT);
  EXPECT_EQ(CopyToUser(U(base_), buf, 8), 0);
  EXPECT_EQ(CopyFromUser(buf, 0, 0), 0);
}

TEST_P(UserCopyTest, StrndupUserRules) {
  std::string s;
  std::memcpy(base_ + 4096 - 4, "abc", 4);
  EXPECT_EQ(StrndupUser(U(base_ + 4096 - 4), 4096, &s), 0);
  EXPECT_EQ(s, "abc");
  std::memcpy(base_ + 4096 - 4, "abcd", 4);
  EXPECT_EQ(StrndupUser(U(base_ + 4096 - 4), 4096, &s), -EFAULT);
  EXPECT_EQ(StrndupUser(U(base_ + 4096 - 4), 4, &s), -EINVAL);  // no NUL within max
  EXPECT_EQ(StrndupUser(0, 4096, &s), -EFAULT);
}

TEST_P(UserCopyTest, ManyFaultsOnManyThreads) {
  std::vector<std::thread> ts;
  std::atomic<int> efaults{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      uint8_t b[16];
      for (int i = 0; i < 2000; ++i) {
        if (CopyFromUser(b, U(base_ + 4096 + (i % 64)), 16) == -EFAULT) efaults++;
        if (CopyFromUser(b, U(base_), 16) != 0) efaults += 1000000;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(efaults.load(), 4 * 2000);
}

INSTANTIATE_TEST_SUITE_P(Modes, UserCopyTest,
                         ::testing::Values(CopyMode::kFaultCatching, CopyMode::kSyscall),
                         [](const auto& info) {
                           return info.param == CopyMode::kFaultCatching ? std::string("FaultCatching")
                                                                         : std::string("Syscall");
                         });

}  // namespace
}  // namespace uapi
