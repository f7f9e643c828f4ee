#include "uapi/fd_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/close_range.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "base/mutex.h"

namespace uapi {
namespace {

class CountingObject : public FileObject {
 public:
  explicit CountingObject(std::atomic<int>* released, FdTable* table = nullptr)
      : released_(released), table_(table) {}
  ~CountingObject() override {
    // A release takes VFIO locks (rank far below kFdTable) and may look at the table: both would
    // abort (lock order) or deadlock if the table lock were still held.
    if (table_) {
      vb::Mutex outer(vb::LockRank::kVfioGroup);
      vb::MutexLock l(outer);
      (void)table_->size();
    }
    released_->fetch_add(1);
  }
  const char* kind() const override { return "test"; }
  long Ioctl(unsigned long request, unsigned long arg) override { return static_cast<long>(request); }

 private:
  std::atomic<int>* released_;
  FdTable* table_;
};

std::string FdTarget(int fd) {
  char link[64], buf[256];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, buf, sizeof buf - 1);
  if (n < 0) return "";
  return std::string(buf, n);
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(FdTable, InstallCreatesRealMemfdNamedAfterKind) {
  FdTable t;
  std::atomic<int> released{0};
  int fd = t.Install(std::make_shared<CountingObject>(&released), 0, makedev(10, 196));
  ASSERT_GE(fd, 0);
  EXPECT_NE(FdTarget(fd).find("memfd:vfiobox-test"), std::string::npos) << FdTarget(fd);
  FdTable::Entry e = t.Lookup(fd);
  EXPECT_EQ(e.state, FdTable::State::kOurs);
  ASSERT_TRUE(e.object);
  EXPECT_EQ(e.object->Ioctl(42, 0), 42);
  EXPECT_EQ(e.rdev, makedev(10, 196));
  EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  e = {};  // a Lookup result holds a reference, as an ioctl in flight does
  EXPECT_EQ(t.Close(fd), 0);
  EXPECT_FALSE(IsOpen(fd));
  EXPECT_EQ(released.load(), 1);
  EXPECT_EQ(t.Lookup(fd).state, FdTable::State::kNotOurs);
}

TEST(FdTable, InstallHonoursCloexecAndRejectsOtherFlags) {
  FdTable t;
  std::atomic<int> released{0};
  auto obj = std::make_shared<CountingObject>(&released);
  EXPECT_EQ(t.Install(obj, O_NONBLOCK), -EINVAL);
  EXPECT_EQ(t.Install(nullptr, 0), -EINVAL);
  int fd = t.Install(obj, O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  obj.reset();
  EXPECT_EQ(released.load(), 0);
  t.Close(fd);
  EXPECT_EQ(released.load(), 1);
}

TEST(FdTable, DupedFdsShareOneObjectReleasedOnlyWithTheLastFd) {
  FdTable t;
  std::atomic<int> released{0};
  int a = t.Install(std::make_shared<CountingObject>(&released, &t), 0);
  ASSERT_GE(a, 0);
  int b = t.DupFd(a, 0, 0);
  int c = t.DupFd(a, 100, O_CLOEXEC);
  ASSERT_GE(b, 0);
  ASSERT_GE(c, 100);
  EXPECT_EQ(fcntl(c, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(t.Lookup(a).object, t.Lookup(b).object);
  EXPECT_EQ(t.Lookup(a).object, t.Lookup(c).object);
  EXPECT_EQ(t.CountFdsOf(t.Lookup(a).object.get()), 3);
  EXPECT_EQ(t.Close(a), 0);
  EXPECT_EQ(t.Close(c), 0);
  EXPECT_EQ(released.load(), 0);
  EXPECT_EQ(t.Lookup(b).state, FdTable::State::kOurs);
  EXPECT_EQ(t.Close(b), 0);
  EXPECT_EQ(released.load(), 1);  // and the destructor ran with the table unlocked (see above)
}

TEST(FdTable, Dup3OntoAnFdOfOursReleasesWhatItNamed) {
  FdTable t;
  std::atomic<int> r1{0}, r2{0};
  int a = t.Install(std::make_shared<CountingObject>(&r1, &t), 0);
  int b = t.Install(std::make_shared<CountingObject>(&r2, &t), 0);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(t.Dup3(a, b, O_CLOEXEC), b);
  EXPECT_EQ(r2.load(), 1);
  EXPECT_EQ(r1.load(), 0);
  EXPECT_EQ(t.Lookup(a).object, t.Lookup(b).object);
  EXPECT_EQ(fcntl(b, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(t.Dup3(a, a, 0), -EINVAL);
  t.Close(a);
  t.Close(b);
  EXPECT_EQ(r1.load(), 1);
}

TEST(FdTable, Dup3OfAForeignFdOverOursDropsTheEntry) {
  FdTable t;
  std::atomic<int> released{0};
  int ours = t.Install(std::make_shared<CountingObject>(&released), 0);
  int foreign = open("/dev/null", O_RDONLY);
  ASSERT_GE(foreign, 0);
  EXPECT_EQ(t.Dup3(foreign, ours, 0), ours);
  EXPECT_EQ(released.load(), 1);
  EXPECT_EQ(t.Lookup(ours).state, FdTable::State::kNotOurs);
  EXPECT_EQ(FdTarget(ours), "/dev/null");
  close(ours);
  close(foreign);
  EXPECT_EQ(t.size(), 0u);
}

TEST(FdTable, CloseOfAnFdThatIsNotOpenAnswersEbadf) {
  FdTable t;
  EXPECT_EQ(t.Close(-1), -EBADF);
  EXPECT_EQ(t.Close(987654), -EBADF);
  EXPECT_EQ(t.DupFd(987654, 0, 0), -EBADF);
  EXPECT_EQ(t.Dup3(987654, 500, 0), -EBADF);
}

TEST(FdTable, CloseRangeClosesOnlyTheRangeAndCloexecModeOnlyMarks) {
  FdTable t;
  std::atomic<int> released{0};
  auto obj = std::make_shared<CountingObject>(&released);
  int a = t.Install(obj, 0);
  int b = t.DupFd(a, 600, 0);
  int c = t.DupFd(a, 700, 0);
  obj.reset();
  ASSERT_EQ(b, 600);
  ASSERT_EQ(c, 700);
  EXPECT_EQ(t.CloseRange(600, 699, CLOSE_RANGE_CLOEXEC), 0);
  EXPECT_TRUE(IsOpen(600));
  EXPECT_EQ(fcntl(600, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(t.Lookup(600).state, FdTable::State::kOurs);
  EXPECT_EQ(t.CloseRange(600, 699, 0), 0);
  EXPECT_FALSE(IsOpen(600));
  EXPECT_EQ(t.Lookup(600).state, FdTable::State::kNotOurs);
  EXPECT_EQ(t.Lookup(700).state, FdTable::State::kOurs);
  EXPECT_EQ(released.load(), 0);
  EXPECT_EQ(t.CloseRange(a, a, 0), 0);
  EXPECT_EQ(t.CloseRange(700, ~0u, 0), 0);
  EXPECT_EQ(released.load(), 1);
  EXPECT_EQ(t.size(), 0u);
}

TEST(FdTable, StaleEntryAtAReusedNumberIsReplacedByInstall) {
  FdTable t;
  std::atomic<int> r1{0}, r2{0};
  int a = t.Install(std::make_shared<CountingObject>(&r1), 0);
  close(a);  // behind the table's back (a raw close)
  int b = t.Install(std::make_shared<CountingObject>(&r2), 0);
  EXPECT_EQ(a, b);  // lowest free number
  EXPECT_EQ(r1.load(), 1);
  t.Close(b);
  EXPECT_EQ(r2.load(), 1);
}

TEST(FdTable, SimulatedForkChildParksObjectsAndNeverReleasesThem) {
  FdTable t;
  std::atomic<int> released{0};
  int a = t.Install(std::make_shared<CountingObject>(&released), 0);
  t.BecomeForkChild();
  FdTable::Entry e = t.Lookup(a);
  EXPECT_EQ(e.state, FdTable::State::kInherited);
  EXPECT_FALSE(e.object);
  int b = t.DupFd(a, 0, 0);
  EXPECT_EQ(t.Lookup(b).state, FdTable::State::kInherited);
  EXPECT_EQ(t.Close(a), 0);
  EXPECT_EQ(t.Close(b), 0);
  EXPECT_EQ(released.load(), 0);
  EXPECT_EQ(t.size(), 0u);
}

TEST(FdTable, RealForkChildSeesInheritedFdsAndParentKeepsItsObject) {
  FdTable& t = FdTable::Global();
  std::atomic<int> released{0};
  int a = t.Install(std::make_shared<CountingObject>(&released), 0);
  ASSERT_GE(a, 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    if (t.Lookup(a).state != FdTable::State::kInherited) code |= 1;
    if (t.Close(a) != 0) code |= 2;
    if (released.load() != 0) code |= 4;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(t.Lookup(a).state, FdTable::State::kOurs);
  EXPECT_EQ(t.Close(a), 0);
  EXPECT_EQ(released.load(), 1);
}

TEST(FdTable, ConcurrentInstallDupCloseKeepsCountsExact) {
  FdTable t;
  std::atomic<int> released{0};
  constexpr int kThreads = 4, kIters = 300;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < kIters; ++k) {
        int fd = t.Install(std::make_shared<CountingObject>(&released), O_CLOEXEC);
        int d = t.DupFd(fd, 0, O_CLOEXEC);
        if (t.Lookup(d).object != t.Lookup(fd).object) std::abort();
        t.Close(fd);
        t.Close(d);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(released.load(), kThreads * kIters);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace uapi
