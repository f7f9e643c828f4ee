// The examples are ordinary programs (plain C against <linux/vfio.h>, not linked to vfiobox); they
// must pass unmodified under `vfiobox run`, as they would on a machine with an IOMMU.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

struct Outcome {
  int status = -1;
  std::string output;
};

Outcome RunCommand(const std::string& cmd) {
  Outcome o;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) o.output.append(buf.data(), n);
  int st = pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return o;
}

class Examples : public ::testing::Test {
 protected:
  void SetUp() override {
    if (VB_SANITIZED) GTEST_SKIP() << "a sanitized preload library cannot load into plain programs";
  }
};

// What every run of edu-dma must show, whichever way it reaches the registers.
void ExpectEduDmaPassed(const Outcome& o) {
  EXPECT_EQ(o.status, 0) << o.output;
  EXPECT_NE(o.output.find("edu-dma: all steps passed"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("bytes verified, 2 MSIs received"), std::string::npos) << o.output;
  // The DMA after unmap is in the fault log printed at exit.
  EXPECT_NE(o.output.find("IOMMU fault log"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("0000:01:00.0 write of iova 0x101000"), std::string::npos) << o.output;
}

// By default the registers are driven through an mmap of BAR0 (trapped MMIO, design 0008).
TEST_F(Examples, EduDmaPassesUnderVfioboxRun) {
  Outcome o = RunCommand(std::string(VB_VFIOBOX) + " run -- " + VB_EDU_DMA);
  ExpectEduDmaPassed(o);
  EXPECT_NE(o.output.find("edu-dma: registers through an mmap of BAR0"), std::string::npos) << o.output;
}

// --pread: the registers through pread/pwrite on the device fd at BAR0's region offset.
TEST_F(Examples, EduDmaPreadPathPassesUnderVfioboxRun) {
  Outcome o = RunCommand(std::string(VB_VFIOBOX) + " run -- " + VB_EDU_DMA + " --pread");
  ExpectEduDmaPassed(o);
  EXPECT_NE(o.output.find("edu-dma: registers through pread/pwrite on the device fd"), std::string::npos) << o.output;
  EXPECT_EQ(o.output.find("mmap of BAR0"), std::string::npos) << o.output;
  o = RunCommand("EDU_DMA_PREAD=1 " + std::string(VB_VFIOBOX) + " run -- " + VB_EDU_DMA);
  ExpectEduDmaPassed(o);
  EXPECT_NE(o.output.find("edu-dma: registers through pread/pwrite on the device fd"), std::string::npos) << o.output;
}

// A register BAR without MMAP (the "no-mmap" switch, or an older kernel): edu-dma falls back.
TEST_F(Examples, EduDmaFallsBackToPreadWhenBar0IsNotMappable) {
  Outcome o = RunCommand(std::string(VB_VFIOBOX) + " run --register-bars=no-mmap -- " + VB_EDU_DMA);
  ExpectEduDmaPassed(o);
  EXPECT_NE(o.output.find("BAR0 is not mappable"), std::string::npos) << o.output;
}

TEST_F(Examples, EduDmaTraceShowsTheVfioCalls) {
  Outcome o = RunCommand(std::string(VB_VFIOBOX) + " run --trace -- " + VB_EDU_DMA);
  EXPECT_EQ(o.status, 0) << o.output;
  for (const char* call : {"VFIO_GROUP_SET_CONTAINER", "VFIO_SET_IOMMU", "VFIO_IOMMU_MAP_DMA", "VFIO_DEVICE_SET_IRQS",
                           "VFIO_IOMMU_UNMAP_DMA"})
    EXPECT_NE(o.output.find(call), std::string::npos) << call << "\n" << o.output;
}

TEST_F(Examples, LsvfioListsGroupsRegionsAndIrqs) {
  Outcome o = RunCommand(std::string(VB_VFIOBOX) + " run -- " + VB_LSVFIO);
  EXPECT_EQ(o.status, 0) << o.output;
  EXPECT_NE(o.output.find("group 2 (/dev/vfio)"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("0000:01:00.0  driver vfio-pci"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("region CONFIG"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("irq    MSI"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("not viable"), std::string::npos) << o.output;  // group 4 has kernel-dma bound
}

// Regression: the "--" separator used to reach the program as a trailing argument.
TEST_F(Examples, RunPassesTheProgramArgumentsVerbatim) {
  Outcome o = RunCommand(std::string(VB_VFIOBOX) + " run -- /bin/echo a -- b");
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.output, "a -- b\n");
  o = RunCommand(std::string(VB_VFIOBOX) + " run --trace -- /bin/echo x");
  EXPECT_EQ(o.output, "x\n");
}

TEST_F(Examples, BadTopologyIsOneLineAndExitStatus2) {
  FILE* f = std::fopen("/tmp/vfiobox-bad-topology.json", "w");
  ASSERT_TRUE(f);
  std::fputs("{\"iommus\": [{\"name\": \"a\"}], \"pci\": [{\"bdf\": \"00:01.0\", \"type\": \"nope\"}]}", f);
  std::fclose(f);
  Outcome o = RunCommand(std::string(VB_VFIOBOX) + " run --topology /tmp/vfiobox-bad-topology.json -- " + VB_EDU_DMA);
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.output, "vfiobox: /tmp/vfiobox-bad-topology.json: /pci/0/type: \"nope\" is not a known device type\n");
}

}  // namespace
