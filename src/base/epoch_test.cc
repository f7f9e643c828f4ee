// Tests of vb::Epoch: what Synchronize() waits for and what it must not wait for.
#include "base/epoch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace vb {
namespace {

using namespace std::chrono_literals;

// Runs Synchronize() on a new thread; the future becomes ready when it returns.
std::future<void> SynchronizeAsync() {
  return std::async(std::launch::async, [] { Epoch::Synchronize(); });
}

// A reader thread that enters a section (nested `depth` times) and leaves one level each time
// it is told to.
class Reader {
 public:
  explicit Reader(int depth = 1) : depth_(depth) {
    thread_ = std::thread([this] {
      for (int i = 0; i < depth_; ++i) Epoch::EnterRead();
      entered_.store(true);
      for (int i = 0; i < depth_; ++i) {
        while (exits_allowed_.load() <= i) std::this_thread::yield();
        Epoch::ExitRead();
        exited_.store(i + 1);
      }
    });
    while (!entered_.load()) std::this_thread::yield();
  }
  ~Reader() {
    exits_allowed_.store(depth_);
    thread_.join();
  }
  void AllowExits(int n) {
    exits_allowed_.store(n);
    while (exited_.load() < n) std::this_thread::yield();
  }

 private:
  const int depth_;
  std::atomic<bool> entered_{false};
  std::atomic<int> exits_allowed_{0};
  std::atomic<int> exited_{0};
  std::thread thread_;
};

TEST(EpochTest, SynchronizeWithoutReadersReturns) {
  auto done = SynchronizeAsync();
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
}

TEST(EpochTest, SynchronizeWaitsForReaderThatEnteredBefore) {
  Reader reader;
  auto done = SynchronizeAsync();
  EXPECT_EQ(done.wait_for(100ms), std::future_status::timeout);
  reader.AllowExits(1);
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
}

TEST(EpochTest, SynchronizeDoesNotWaitForReaderThatEnteredAfter) {
  // The first reader holds Synchronize back; a second reader entering meanwhile (after the
  // epoch advanced) and staying inside must not hold it once the first leaves.
  auto first = std::make_unique<Reader>();
  auto done = SynchronizeAsync();
  std::this_thread::sleep_for(20ms);  // let Synchronize advance the epoch and start waiting
  Reader second;
  EXPECT_EQ(done.wait_for(50ms), std::future_status::timeout);
  first->AllowExits(1);
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
}

TEST(EpochTest, SynchronizeDoesNotWaitForCallersOwnSection) {
  auto done = std::async(std::launch::async, [] {
    EpochReadSection outer;
    Epoch::Synchronize();
  });
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
}

TEST(EpochTest, NestedSectionsEndAtTheOutermostExit) {
  Reader reader(/*depth=*/2);
  EXPECT_GE(Epoch::ActiveReadersForTest(), 1);
  auto done = SynchronizeAsync();
  reader.AllowExits(1);  // inner section ends; the outer one is still open
  EXPECT_EQ(done.wait_for(100ms), std::future_status::timeout);
  reader.AllowExits(2);
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
}

TEST(EpochTest, ReaderSlotIsReleasedAtThreadExit) {
  const int before = Epoch::ActiveReadersForTest();
  std::thread([] { EpochReadSection s; }).join();
  EXPECT_EQ(Epoch::ActiveReadersForTest(), before);
  // Many short-lived threads do not exhaust the fixed slot table.
  for (int i = 0; i < Epoch::kMaxThreads + 8; ++i) std::thread([] { EpochReadSection s; }).join();
  auto done = SynchronizeAsync();
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
}

}  // namespace
}  // namespace vb
