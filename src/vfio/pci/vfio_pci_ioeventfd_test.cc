// vfio-pci ioeventfds (§6.11): every errno row of VFIO_DEVICE_IOEVENTFD, the write a signal
// makes (memory BAR bytes, a register BAR doorbell that rings MSI-X), deletion, the last close,
// memory decode off, a signal pending at registration, and the per-device maximum.
#include <linux/vfio.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "base/fail_point.h"
#include "vfio/pci/vfio_pci_test_util.h"
#include "vfio/testing/vfio_fixture.h"

namespace vfio::pci {
namespace {

namespace p = hw::pci;
using devices::TestEndpoint;
using testing::Efd;
using testing::VfioPciFixture;

constexpr uint32_t kEfdTrigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;

class VfioPciIoeventfd : public VfioPciFixture {
 protected:
  vb::Result<void> Io(Device& d, int bar, uint64_t pos, uint32_t width, uint64_t data, int32_t fd) {
    return driver.Ioeventfd(d, IoeventfdRequest{.offset = RegionOffset(bar) + pos, .data = data, .width = width, .fd = fd});
  }
  static void Signal(const Efd& e) {
    const uint64_t one = 1;
    ASSERT_EQ(write(e.fd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  }
  uint8_t* Bar0() const { return static_cast<uint8_t*>(ep0->bar_host(0)); }
  // BAR0's qword at `pos`, read through the device: its state lock orders the read with the
  // watcher's writes (TSan does not see the eventfd between Signal and the watcher, so a plain read
  // of the memory before a signal was reported racing the write that signal caused).
  // With memory decode off the device answers nothing: then the memory is read directly, which is
  // right only where no write can be in flight (after a WaitStats that saw every signal handled).
  uint64_t Bar0Qword(uint64_t pos) const {
    uint64_t v = 0;
    if (!ep0->BarRead(0, pos, &v, sizeof v).has_value()) std::memcpy(&v, Bar0() + pos, sizeof v);
    return v;
  }
  // Fills BAR0's qword at `pos` with `byte`, through the device (ordered with the watcher's writes).
  void FillBar0(uint64_t pos, uint8_t byte) {
    uint64_t v = 0;
    std::memset(&v, byte, sizeof v);
    EXPECT_TRUE(ep0->BarWrite(0, pos, &v, sizeof v).has_value());
  }
  // Waits (bounded) until BAR0's qword at `pos` equals `want`. Reads through the device (its state
  // lock orders them with the watcher's writes; memory decode must be on).
  bool WaitBar0(uint64_t pos, uint64_t want) {
    for (int i = 0; i < 5000; ++i) {
      uint64_t v = 0;
      if (ep0->BarRead(0, pos, &v, sizeof v).has_value() && v == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  // Waits (bounded) until ep0's ioeventfd signals handled reach these counts.
  bool WaitStats(uint64_t written, uint64_t dropped) {
    for (int i = 0; i < 5000; ++i) {
      const auto s = driver.StateOf(*ep0)->ioeventfd_stats();
      if (s.written == written && s.dropped == dropped) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  // Gives a (wrongly) live ioeventfd ample time to write: used only to show nothing was written.
  static void Settle() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }
};

TEST_F(VfioPciIoeventfd, ErrnoRows) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  Efd a, b;
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  constexpr int kClosedFd = 999999;  // above any fd this process opens
  const uint64_t tbl = TestEndpoint::kMsixTableOffset;
  struct Row {
    const char* what;
    int bar;
    uint64_t pos;
    uint32_t width;
    uint64_t data;
    int32_t fd;
    int err;
  } rows[] = {
      {"ROM region", 6, 0, 4, 0, a.fd, EINVAL},
      {"config region", 7, 0, 4, 0, a.fd, EINVAL},
      {"VGA region", 8, 0, 4, 0, a.fd, EINVAL},
      {"upper half of the 64-bit BAR0", 1, 0, 4, 0, a.fd, EINVAL},
      {"unimplemented BAR5", 5, 0, 1, 0, a.fd, EINVAL},
      {"straddling the end of BAR2", 2, TestEndpoint::kBar2Size - 4, 8, 0, a.fd, EINVAL},
      {"past the end of BAR2", 2, TestEndpoint::kBar2Size, 1, 0, a.fd, EINVAL},
      {"on the MSI-X table", 2, tbl, 4, 0, a.fd, EINVAL},
      {"straddling into the MSI-X table", 2, tbl - 4, 8, 0, a.fd, EINVAL},
      {"last byte of the MSI-X table", 2, tbl + 8 * 16 - 1, 1, 0, a.fd, EINVAL},
      {"a pipe", 2, TestEndpoint::kRegScratch, 4, 0, pipefd[0], EINVAL},
      {"a closed fd", 2, TestEndpoint::kRegScratch, 4, 0, kClosedFd, EBADF},
      {"delete with no match", 2, TestEndpoint::kRegScratch, 4, 0, -1, ENODEV},
      {"just below the MSI-X table", 2, tbl - 4, 4, 0, a.fd, 0},
      {"just above the MSI-X table", 2, tbl + 8 * 16, 4, 0, a.fd, 0},
      {"the PBA (not protected)", 2, TestEndpoint::kMsixPbaOffset, 8, 0, a.fd, 0},
      {"last byte of BAR0", 0, TestEndpoint::kBar0Size - 1, 1, 0, a.fd, 0},
      {"unaligned (no alignment rule)", 0, 3, 8, 7, a.fd, 0},
      {"same key, another eventfd", 0, 3, 8, 7, b.fd, EEXIST},
      {"same key, same eventfd", 0, 3, 8, 7, a.fd, EEXIST},
      {"same offset, other data", 0, 3, 8, 8, b.fd, 0},
      {"same offset, other width", 0, 3, 4, 7, b.fd, 0},
      {"delete with data that matches nothing", 0, 3, 8, 9, -1, ENODEV},
      {"delete", 0, 3, 8, 7, -1, 0},
      {"delete again", 0, 3, 8, 7, -1, ENODEV},
      {"the key is free again", 0, 3, 8, 7, b.fd, 0},
  };
  // Each row's errno, and the registered count moves only on success: a refused call adds nothing.
  uint64_t registered = 0;
  for (const Row& r : rows) {
    EXPECT_EQ(vb::ErrnoOf(Io(d, r.bar, r.pos, r.width, r.data, r.fd)), r.err) << r.what;
    if (r.err == 0) registered += r.fd == -1 ? -1 : 1;
    EXPECT_EQ(driver.StateOf(*ep0)->ioeventfd_stats().registered, registered) << r.what;
  }
  close(pipefd[0]);
  close(pipefd[1]);
}

TEST_F(VfioPciIoeventfd, SignalWritesTheDataToTheMemoryBarAndDeleteStopsIt) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  SetCfg(d, p::kCommand, p::kCommandMemory, 2);
  Efd e;
  ASSERT_EQ(vb::ErrnoOf(Io(d, 0, 0x100, 8, 0x1122334455667788, e.fd)), 0);
  // A second entry on the same eventfd writes a narrower value elsewhere.
  ASSERT_EQ(vb::ErrnoOf(Io(d, 0, 0x201, 2, 0xbeef, e.fd)), 0);
  Settle();
  EXPECT_EQ(Bar0Qword(0x100), 0u) << "nothing is written before a signal";
  Signal(e);
  ASSERT_TRUE(WaitBar0(0x100, 0x1122334455667788));
  ASSERT_TRUE(WaitBar0(0x200, 0xbeef00));  // exactly two bytes at 0x201
  // Each signal writes again (the count is consumed). Both entries are awaited: the direct memsets
  // below must not race the watcher's second write (a TSan report when only 0x100 was awaited).
  FillBar0(0x100, 0);
  FillBar0(0x200, 0);
  Signal(e);
  ASSERT_TRUE(WaitBar0(0x100, 0x1122334455667788));
  ASSERT_TRUE(WaitBar0(0x200, 0xbeef00));
  // After the delete returns, a signal writes nothing for that entry; the other one still works.
  ASSERT_EQ(vb::ErrnoOf(Io(d, 0, 0x100, 8, 0x1122334455667788, -1)), 0);
  FillBar0(0x100, 0xa5);
  FillBar0(0x200, 0);
  Signal(e);
  ASSERT_TRUE(WaitBar0(0x200, 0xbeef00));
  Settle();
  EXPECT_EQ(Bar0Qword(0x100), 0xa5a5a5a5a5a5a5a5u);
}

TEST_F(VfioPciIoeventfd, DoorbellIoeventfdRingsTheMsixVector) {
  // The use ioeventfds exist for: a guest's doorbell write becomes an eventfd signal (KVM), and
  // the kernel performs the register write without a trip through the VMM.
  auto o = Open(*ep0);
  Device& d = o.dev();
  SetCfg(d, p::kCommand, p::kCommandMemory | p::kCommandMaster, 2);
  Efd v0, v3, door;
  ASSERT_EQ(vb::ErrnoOf(Irqs(d, kEfdTrigger, 2, 0, 4, {v0.fd, -1, -1, v3.fd})), 0);
  ASSERT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegDoorbell, 4, 3, door.fd)), 0);
  for (int i = 0; i < 3; ++i) {
    Signal(door);
    EXPECT_EQ(v3.Wait(), 1u) << i;
  }
  EXPECT_EQ(v0.Take(), 0u);
  // An 8-byte register write through an ioeventfd (the scratch register is 4 bytes at 0x04; the
  // DMA source register takes 8).
  Efd src;
  ASSERT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegDmaSrc, 8, 0xabcdef0012345678, src.fd)), 0);
  Signal(src);
  bool seen = false;
  for (int i = 0; i < 5000 && !seen; ++i) {
    // One 8-byte access (the region's reads split registers into 4-byte ones, as 6.1 does).
    uint64_t v = 0;
    ASSERT_EQ(vb::ErrnoOf(ep0->BarRead(2, TestEndpoint::kRegDmaSrc, &v, 8)), 0);
    seen = v == 0xabcdef0012345678;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(seen);
}

TEST_F(VfioPciIoeventfd, SignalPendingAtRegistrationFiresAtOnce) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  SetCfg(d, p::kCommand, p::kCommandMemory, 2);
  Efd e;
  Signal(e);
  ASSERT_EQ(vb::ErrnoOf(Io(d, 0, 0x40, 4, 0x600dcafe, e.fd)), 0);
  EXPECT_TRUE(WaitBar0(0x40, 0x600dcafe));
}

TEST_F(VfioPciIoeventfd, MemoryDecodeOffDropsTheWrite) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  SetCfg(d, p::kCommand, 0, 2);
  Efd e;
  ASSERT_EQ(vb::ErrnoOf(Io(d, 0, 0x80, 4, 0x12345678, e.fd)), 0);
  Signal(e);
  ASSERT_TRUE(WaitStats(0, 1));
  EXPECT_EQ(Bar0Qword(0x80), 0u) << "the write made while decode was off must be dropped";
  // With decode on, the same entry writes.
  SetCfg(d, p::kCommand, p::kCommandMemory, 2);
  Signal(e);
  ASSERT_TRUE(WaitStats(1, 1));
  EXPECT_EQ(Bar0Qword(0x80), 0x12345678u);
}

TEST_F(VfioPciIoeventfd, LastCloseDropsEveryEntry) {
  Efd e;
  {
    auto o = Open(*ep0);
    SetCfg(o.dev(), p::kCommand, p::kCommandMemory, 2);
    ASSERT_EQ(vb::ErrnoOf(Io(o.dev(), 0, 0x10, 4, 0x11, e.fd)), 0);
  }
  // Closed: a signal writes nothing (the BAR's memory is looked at directly).
  FillBar0(0x10, 0);
  Signal(e);
  Settle();
  EXPECT_EQ(Bar0Qword(0x10), 0u);
  // Reopened: the entry is gone (delete: ENODEV) and the key can be registered again.
  auto o = Open(*ep0);
  EXPECT_EQ(vb::ErrnoOf(Io(o.dev(), 0, 0x10, 4, 0x11, -1)), ENODEV);
  EXPECT_EQ(vb::ErrnoOf(Io(o.dev(), 0, 0x10, 4, 0x11, e.fd)), 0);
}

TEST_F(VfioPciIoeventfd, UserClosingTheEventfdKeepsTheEntry) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  auto e = std::make_unique<Efd>();
  ASSERT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, 5, e->fd)), 0);
  e.reset();
  EXPECT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, 5, -1)), 0);
}

TEST_F(VfioPciIoeventfd, AtMostOneThousandPerDevice) {
  rlimit nofile{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  if (nofile.rlim_cur < 1200) {
    rlimit raised = nofile;
    raised.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 4096);
    if (raised.rlim_cur < 1200 || setrlimit(RLIMIT_NOFILE, &raised) != 0) GTEST_SKIP() << "needs ~1100 fds";
  }
  auto o = Open(*ep0);
  Device& d = o.dev();
  Efd e;
  for (uint64_t i = 0; i < IoeventfdSet::kMax; ++i)
    ASSERT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, i, e.fd)), 0) << i;
  EXPECT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, IoeventfdSet::kMax, e.fd)), ENOSPC);
  // EEXIST is found before the limit, and a delete makes room.
  EXPECT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, 7, e.fd)), EEXIST);
  ASSERT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, 7, -1)), 0);
  EXPECT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, IoeventfdSet::kMax, e.fd)), 0);
  o = {};
  if (nofile.rlim_cur < 1200) (void)setrlimit(RLIMIT_NOFILE, &nofile);
}

TEST_F(VfioPciIoeventfd, InjectedAllocationFailureRegistersNothing) {
  auto o = Open(*ep0);
  Device& d = o.dev();
  Efd e;
  vb::FailInjector::ArmNth(1);
  EXPECT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, 1, e.fd)), ENOMEM);
  EXPECT_STREQ(vb::FailInjector::FiredName(), "vfio_pci.ioeventfd_alloc");
  vb::FailInjector::Disarm();
  EXPECT_EQ(vb::ErrnoOf(Io(d, 2, TestEndpoint::kRegScratch, 4, 1, -1)), ENODEV);
}

TEST_F(VfioPciIoeventfd, SignalsRacingDeletesAndCloseNeverWriteAfterwards) {
  // A signaller hammers two eventfds while entries are added and deleted and the device is
  // closed and reopened; after each delete (and each close) returns, the deleted entry's bytes
  // never appear again.
  Efd e;
  std::atomic<bool> stop{false};
  std::thread signaller([&] {
    while (!stop.load()) {
      const uint64_t one = 1;
      ssize_t r = write(e.fd, &one, sizeof one);
      (void)r;
      std::this_thread::yield();
    }
  });
  const int rounds = std::max(20, vfio::testing::Scaled(200));
  for (int round = 0; round < rounds; ++round) {
    auto o = Open(*ep0);
    SetCfg(o.dev(), p::kCommand, p::kCommandMemory, 2);
    ASSERT_EQ(vb::ErrnoOf(Io(o.dev(), 0, 0x300, 8, 0x1111111111111111, e.fd)), 0);
    ASSERT_TRUE(WaitBar0(0x300, 0x1111111111111111)) << round;
    if (round % 2 == 0) {
      ASSERT_EQ(vb::ErrnoOf(Io(o.dev(), 0, 0x300, 8, 0x1111111111111111, -1)), 0);
      FillBar0(0x300, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      EXPECT_EQ(Bar0Qword(0x300), 0u) << "written after its delete returned, round " << round;
    } else {
      o = {};
      FillBar0(0x300, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      EXPECT_EQ(Bar0Qword(0x300), 0u) << "written after the last close returned, round " << round;
    }
  }
  stop = true;
  signaller.join();
}

}  // namespace
}  // namespace vfio::pci
