// A Linux guest under QEMU drives a vfiobox edu assigned with vfio-pci: Debian's kernel (the
// uncompressed vmlinux from linux-image-amd64, booted directly through its PVH entry) and an
// initramfs built here from busybox-static, uio_pci_generic and tests/qemu/guest/edu_guest.c.
// The guest program DMAs a buffer to the edu and back using guest-physical addresses and waits
// for each completion interrupt (INTx through QEMU's eventfd path). The test then checks, from
// `vfiobox run --trace`, that each DMA the edu did went through a mapping QEMU made for guest
// RAM: same iova, host address = that MAP_DMA's vaddr + offset, a writable mapping for the
// device's write, and no IOMMU fault.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <regex>
#include <sstream>

#include "qemu_process.h"

namespace qemutest {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool Exists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

int Sh(const std::string& cmd) { return std::system(cmd.c_str()); }

class GuestDmaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (VB_SANITIZED) GTEST_SKIP() << "the preload library is not built for QEMU in sanitizer builds";
    if (FindQemu().empty()) GTEST_SKIP() << "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)";
    kernel_dir_ = VB_GUEST_KERNEL_DIR;
    for (const char* f : {"vmlinux", "uio.ko", "uio_pci_generic.ko"}) {
      if (!Exists(kernel_dir_ + "/" + f))
        GTEST_SKIP() << kernel_dir_ << "/" << f << " missing: run scripts/guest-kernel.sh " << kernel_dir_;
    }
    if (!Exists("/bin/busybox")) GTEST_SKIP() << "busybox-static is not installed";
    char tmpl[] = "/tmp/vfiobox-guest-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    work_ = tmpl;
  }
  void TearDown() override {
    if (!work_.empty()) Sh("rm -rf '" + work_ + "'");
  }

  // The initramfs: busybox, the two uio modules, edu_guest, and the /init script.
  std::string BuildInitramfs() {
    std::string root = work_ + "/root";
    std::string cmd = "set -e; mkdir -p '" + root + "'/bin '" + root + "'/lib '" + root + "'/proc '" + root +
                      "'/sys '" + root + "'/dev; cp /bin/busybox '" + root + "'/bin/; cp '" + kernel_dir_ +
                      "'/uio.ko '" + kernel_dir_ + "'/uio_pci_generic.ko '" + root + "'/lib/; cp '" VB_EDU_GUEST
                      "' '" + root + "'/edu_guest; cp '" VB_GUEST_INIT "' '" + root + "'/init; chmod +x '" + root +
                      "'/init; cd '" + root + "' && find . | cpio -o -H newc --quiet > '" + work_ + "'/initramfs.cpio";
    EXPECT_EQ(Sh(cmd), 0);
    return work_ + "/initramfs.cpio";
  }

  void RunGuest(bool no_mmap);

  std::string kernel_dir_;
  std::string work_;
};

// The guest program drives the edu's registers; QEMU reaches them through its mapping of BAR0
// (trapped accesses) or, with x-no-mmap=on, through pread/pwrite. Both must give the same result.
void GuestDmaTest::RunGuest(bool no_mmap) {
  std::string initramfs = BuildInitramfs();
  std::string out = work_ + "/ttyS1.log";
  QemuProcess q({.trace = true,
                 .qemu_args = {"-machine", "q35,accel=tcg", "-m", "128", "-nodefaults", "-nographic", "-display",
                               "none", "-no-reboot", "-kernel", kernel_dir_ + "/vmlinux", "-initrd", initramfs,
                               "-append", "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init", "-serial",
                               "file:" + work_ + "/ttyS0.log", "-serial", "file:" + out, "-device",
                               std::string("vfio-pci,host=0000:01:00.0,id=edu0") + (no_mmap ? ",x-no-mmap=on" : "")}});
  ASSERT_TRUE(q.started());
  auto status = q.WaitExit(180s);
  ASSERT_TRUE(status.has_value()) << "the guest did not power off in time; console:\n"
                                  << ReadFile(work_ + "/ttyS0.log") << "\nprogram:\n" << ReadFile(out);
  std::string guest = ReadFile(out);
  std::string trace = q.Stderr();
  ASSERT_NE(guest.find("EDU-GUEST: PASS"), std::string::npos)
      << guest << "\nconsole:\n" << ReadFile(work_ + "/ttyS0.log") << "\ntrace tail:\n"
      << trace.substr(trace.size() > 4000 ? trace.size() - 4000 : 0);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_NE(guest.find("2 interrupts"), std::string::npos) << guest;
  EXPECT_EQ(trace.find("IOMMU fault log"), std::string::npos) << trace;

  unsigned long long src = 0, dst = 0;
  size_t at = guest.find("src=0x"), at2 = guest.find("dst=0x");
  ASSERT_NE(at, std::string::npos);
  ASSERT_NE(at2, std::string::npos);
  src = std::strtoull(guest.c_str() + at + 4, nullptr, 16);
  dst = std::strtoull(guest.c_str() + at2 + 4, nullptr, 16);

  auto dmas = DmaLines(trace);
  int checked = 0;
  for (const auto& [line, dma] : dmas) {
    if (dma.device != "0000:01:00.0" || dma.length != 3000) continue;
    uint64_t want = dma.write ? dst : src;
    EXPECT_EQ(dma.iova, want) << "the edu DMA'd the guest-physical address the guest programmed";
    // The mapping QEMU made for guest RAM that covers it, live at the time of the DMA.
    bool found = false;
    for (const TraceMapping& m : LiveMappings(trace, line)) {
      if (dma.iova < m.iova || dma.iova + dma.length > m.iova + m.size) continue;
      found = true;
      EXPECT_EQ(dma.host, m.vaddr + (dma.iova - m.iova)) << "translated through QEMU's MAP_DMA of guest RAM";
      if (dma.write) {
        EXPECT_TRUE(m.flags & 2) << "a device write needs a writable mapping";
      }
    }
    EXPECT_TRUE(found) << "no live MAP_DMA covers iova " << std::hex << dma.iova;
    ++checked;
  }
  EXPECT_EQ(checked, 2) << "one DMA each way";
  // INTx went to QEMU on an eventfd and QEMU unmasked it after the guest's EOI (BAR access).
  EXPECT_GE(FindLine(trace, "VFIO_DEVICE_SET_IRQS {argsz=24, flags=0x24, index=0"), 0);
  EXPECT_GE(FindLine(trace, "VFIO_DEVICE_SET_IRQS {argsz=20, flags=0x11, index=0"), 0) << "INTx unmask";
  // The guest's register accesses: trapped on QEMU's mapping, or preads/pwrites of BAR0 (region 0:
  // offsets below 2^40; config writes are at 7 << 40). With the mapping, QEMU still takes the slow
  // path while an INTx is pending (it disables its BAR mappings until the guest's EOI), so
  // pwrites may appear there too.
  EXPECT_EQ(trace.find("vfio: mmio 0000:01:00.0 write4 BAR0+0x") != std::string::npos, !no_mmap);
  if (no_mmap) {
    EXPECT_TRUE(std::regex_search(trace, std::regex("pwrite count=4 offset=0x[0-9a-f]{1,5} = 4")));
  }
}

TEST_F(GuestDmaTest, GuestDmaGoesThroughQemusGuestRamMappingsAndInterrupts) { RunGuest(/*no_mmap=*/false); }

TEST_F(GuestDmaTest, GuestDmaWithXNoMmapTakesThePreadPath) { RunGuest(/*no_mmap=*/true); }

}  // namespace
}  // namespace qemutest
