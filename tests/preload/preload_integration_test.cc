// Runs tests/preload/probe.c (an ordinary binary, not linked to vfiobox) under
// libvfiobox-preload.so and checks what it saw.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct ProbeRun {
  int status = -1;
  std::string out;
};

ProbeRun RunProbe(const std::string& env, const std::string& args) {
  std::string cmd = env + " " VB_PROBE " " + args + " 2>&1";
  ProbeRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.status = pclose(p);
  return r;
}

bool Sanitized() { return VB_SANITIZED; }

TEST(PreloadIntegration, ProgramSeesVfioNodesAndSysfsOfTheFakeMachine) {
  if (Sanitized()) GTEST_SKIP() << "a sanitized preload library cannot load into a plain binary";
  ProbeRun r = RunProbe("LD_PRELOAD=" VB_PRELOAD_LIB " VFIOBOX_TEST_FAKE=1", "");
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.out;
  for (const char* what : {"ok ordinary files untouched, errno preserved", "ok sysfs walk",
                           "ok sysfs reads", "ok vfio nodes and fds", "ok threads", "ok fork",
                           "ok bind", "ok close_range", "done"})
    EXPECT_NE(r.out.find(what), std::string::npos) << what << "\n" << r.out;
}

TEST(PreloadIntegration, PathsOutsideTheTreeAnswerExactlyAsWithoutTheLibrary) {
  if (Sanitized()) GTEST_SKIP() << "a sanitized preload library cannot load into a plain binary";
  ProbeRun plain = RunProbe("", "facts");
  ProbeRun served = RunProbe("LD_PRELOAD=" VB_PRELOAD_LIB " VFIOBOX_TEST_FAKE=1", "facts");
  ASSERT_EQ(plain.status, 0) << plain.out;
  ASSERT_EQ(served.status, 0) << served.out;
  EXPECT_EQ(plain.out, served.out);
}

TEST(PreloadIntegration, WithoutABackendTheLibraryServesNothing) {
  if (Sanitized()) GTEST_SKIP() << "a sanitized preload library cannot load into a plain binary";
  ProbeRun r = RunProbe("LD_PRELOAD=" VB_PRELOAD_LIB " VFIOBOX_TEST_FAKE=0", "");
  // The probe's first served check fails: there is no fake edu on this host.
  EXPECT_NE(r.out.find("ok ordinary files untouched"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAIL"), std::string::npos) << r.out;
}

TEST(PreloadIntegration, TheTreeIsRemovedWhenTheProcessExits) {
  if (Sanitized()) GTEST_SKIP() << "a sanitized preload library cannot load into a plain binary";
  char dir[] = "/tmp/vb-preload-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  ProbeRun r = RunProbe(std::string("VFIOBOX_SYSFS_DIR=") + dir + " LD_PRELOAD=" VB_PRELOAD_LIB " VFIOBOX_TEST_FAKE=1", "");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(rmdir(dir), 0) << "left behind in " << dir;
}

}  // namespace

namespace {

// A shell's `echo x > file` writes through stdio's internal write (never the interposed one); the
// bytes are applied when the redirection's fd is closed.
TEST(PreloadIntegration, ShellRedirectionsBindAndUnbindThroughSysfs) {
  if (Sanitized()) GTEST_SKIP() << "a sanitized preload library cannot load into a plain binary";
  std::string script =
      "D=/sys/bus/pci/devices/0000:00:03.0; echo vfio-pci > $D/driver_override; "
      "read x < $D/driver_override; echo override=$x; echo 0000:00:03.0 > $D/driver/unbind; "
      "[ -e $D/driver ] || echo unbound; echo 0000:00:03.0 > /sys/bus/pci/drivers/vfio-pci/bind; "
      "[ -e /sys/bus/pci/drivers/vfio-pci/0000:00:03.0 ] && echo bound";
  std::string cmd = "LD_PRELOAD=" VB_PRELOAD_LIB " VFIOBOX_TEST_FAKE=1 bash -c '" + script + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[1024];
  std::string out;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  EXPECT_EQ(out, "override=vfio-pci\nunbound\nbound\n");
}

}  // namespace
