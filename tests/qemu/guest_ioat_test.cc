// Issue 13: a Linux guest under QEMU drives vfiobox's Intel I/OAT CBDMA model
// (8086:2021 at 0000:09:00.0 in the default machine) assigned with vfio-pci.
// Debian's 6.1 kernel (the vmlinux and ioatdma.ko/dca.ko from
// linux-image-amd64, scripts/guest-kernel.sh) probes it with the stock ioatdma
// driver, whose probe runs a self-test copy; then dmatest (not shipped by
// Debian: built out of tree for that exact kernel by scripts/guest-dmatest.sh)
// runs 1,000 memcpy transfers of random lengths and offsets through the
// channel, each completed by an MSI-X interrupt and verified byte for byte. The
// guest prints its kernel log to the second serial port; the test reads the
// driver's and dmatest's verdicts from it.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <regex>
#include <sstream>

#include "qemu_process.h"

namespace qemutest {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string &path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool Exists(const std::string &path) { return access(path.c_str(), R_OK) == 0; }

int Sh(const std::string &cmd) { return std::system(cmd.c_str()); }

class GuestIoatTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (VB_SANITIZED)
      GTEST_SKIP()
          << "the preload library is not built for QEMU in sanitizer builds";
    if (FindQemu().empty())
      GTEST_SKIP() << "qemu-system-x86_64 is not installed (scripts/setup.sh "
                      "installs it)";
    kernel_dir_ = VB_GUEST_KERNEL_DIR;
    for (const char *f : {"vmlinux", "dca.ko", "ioatdma.ko"}) {
      if (!Exists(kernel_dir_ + "/" + f))
        GTEST_SKIP() << kernel_dir_ << "/" << f
                     << " missing: run scripts/guest-kernel.sh " << kernel_dir_;
    }
    if (!Exists(kernel_dir_ + "/dmatest.ko"))
      GTEST_SKIP() << kernel_dir_
                   << "/dmatest.ko missing: run scripts/guest-dmatest.sh "
                   << kernel_dir_;
    if (!Exists("/bin/busybox"))
      GTEST_SKIP() << "busybox-static is not installed";
    char tmpl[] = "/tmp/vfiobox-ioat-guest-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    work_ = tmpl;
  }
  void TearDown() override {
    if (!work_.empty())
      Sh("rm -rf '" + work_ + "'");
  }

  // The initramfs: busybox, dca/ioatdma/dmatest, and the /init script.
  std::string BuildInitramfs() {
    std::string root = work_ + "/root";
    std::string k = kernel_dir_;
    std::string cmd =
        "set -e; mkdir -p '" + root + "'/bin '" + root + "'/lib '" + root +
        "'/proc '" + root + "'/sys '" + root + "'/dev; cp /bin/busybox '" +
        root + "'/bin/; cp '" + k + "'/dca.ko '" + k + "'/ioatdma.ko '" + k +
        "'/dmatest.ko '" + root + "'/lib/; cp '" VB_IOAT_GUEST_INIT "' '" +
        root + "'/init; chmod +x '" + root + "'/init; cd '" + root +
        "' && find . | cpio -o -H newc --quiet > '" + work_ +
        "'/initramfs.cpio";
    EXPECT_EQ(Sh(cmd), 0);
    return work_ + "/initramfs.cpio";
  }

  std::string kernel_dir_;
  std::string work_;
};

TEST_F(GuestIoatTest, IoatdmaProbesPassesItsSelfTestAndDmatestCopies1000Times) {
  std::string initramfs = BuildInitramfs();
  std::string out = work_ + "/ttyS1.log";
  // ioatdma allocates ~12.5 MiB per channel (a 64Ki-descriptor ring): 512 MiB
  // of guest RAM.
  QemuProcess q({.trace = false,
                 .qemu_args = {"-machine",
                               "q35,accel=tcg",
                               "-cpu",
                               "max",
                               "-m",
                               "512",
                               "-nodefaults",
                               "-nographic",
                               "-display",
                               "none",
                               "-no-reboot",
                               "-kernel",
                               kernel_dir_ + "/vmlinux",
                               "-initrd",
                               initramfs,
                               "-append",
                               "console=ttyS0 loglevel=4 panic=-1 rdinit=/init",
                               "-serial",
                               "file:" + work_ + "/ttyS0.log",
                               "-serial",
                               "file:" + out,
                               "-device",
                               "vfio-pci,host=0000:09:00.0,id=ioat0"}});
  ASSERT_TRUE(q.started());
  auto t0 = std::chrono::steady_clock::now();
  auto status = q.WaitExit(300s);
  ASSERT_TRUE(status.has_value())
      << "the guest did not power off in time; console:\n"
      << ReadFile(work_ + "/ttyS0.log") << "\nlog:\n"
      << ReadFile(out);
  std::string log = ReadFile(out);
  std::erase(log, '\r'); // the guest's tty writes CR LF
  std::string context = log + "\nconsole:\n" + ReadFile(work_ + "/ttyS0.log") +
                        "\nvfiobox:\n" + q.Stderr();
  ASSERT_NE(log.find("IOAT-GUEST: done"), std::string::npos) << context;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  std::printf("guest ran %.1f s\n", std::chrono::duration<double>(
                                        std::chrono::steady_clock::now() - t0)
                                        .count());

  // ioatdma bound and registered its channel; the self-test copy at probe
  // passed (a failure logs "Self-test copy timed out/failed compare, disabling"
  // and "Intel(R) I/OAT DMA Engine init failed", and no channel is registered).
  EXPECT_NE(log.find("IOAT-GUEST: ioatdma insmod exit 0"), std::string::npos)
      << context;
  EXPECT_TRUE(std::regex_search(log, std::regex("(^|\n)dma0chan0(\n|$)")))
      << context;
  EXPECT_EQ(log.find("Self-test"), std::string::npos) << context;
  EXPECT_EQ(log.find("init failed"), std::string::npos) << context;
  EXPECT_EQ(log.find("failed to start channel"), std::string::npos) << context;
  EXPECT_EQ(log.find("Reset channel"), std::string::npos)
      << "the 200 ms watchdog found a stuck channel\n"
      << context;
  EXPECT_EQ(log.find("Channel halted"), std::string::npos) << context;
  EXPECT_EQ(log.find("WARNING:"), std::string::npos) << context;
  EXPECT_EQ(log.find("kernel BUG"), std::string::npos) << context;
  EXPECT_EQ(log.find("BUG:"), std::string::npos) << context;
  // SKX forces version 3.2; memcpy with interrupts only.
  EXPECT_NE(log.find("3.2\n"), std::string::npos) << context;

  // dmatest: "dmatest: dma0chan0-copy0: summary 1000 tests, 0 failures 123.45
  // iops 678 KB/s (0)".
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m,
      std::regex(
          "dma0chan0-copy0: summary (\\d+) tests, (\\d+) failures[^\n]*")))
      << context;
  std::printf("%s\n", m.str(0).c_str());
  EXPECT_GE(std::stoul(m[1]), 1000u) << m.str(0);
  EXPECT_EQ(m[2], "0") << m.str(0) << "\n" << context;
  EXPECT_NE(log.find("IOAT-GUEST: dmatest insmod exit 0"), std::string::npos)
      << context;
  // Completions came as interrupts on the channel's MSI-X vector (QEMU's
  // emulated table, vfiobox's eventfd): /proc/interrupts' "ioat-msix" line,
  // with a count of at least one per transfer.
  std::smatch irq;
  ASSERT_TRUE(std::regex_search(
      log, irq, std::regex("\\n *\\d+: +(\\d+) +(\\d+)?[^\\n]*ioat-msix")))
      << context;
  std::printf("%s\n", irq.str(0).substr(1).c_str());
  unsigned long irqs =
      std::stoul(irq[1]) + (irq[2].matched ? std::stoul(irq[2]) : 0);
  EXPECT_GE(irqs, 1000u) << irq.str(0);
}

} // namespace
} // namespace qemutest
