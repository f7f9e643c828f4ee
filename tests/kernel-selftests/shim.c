/* Linked into every kernel VFIO selftest binary by scripts/kernel-selftests.sh; the kernel's
 * sources are not changed, and with neither variable below set the binaries behave as built
 * upstream. SPDX-License-Identifier: Apache-2.0
 *
 * VFIOBOX_KST_DEFAULT_IOMMU_MODE=MODE (e.g. vfio_type1v2_iommu): the kernel's libvfio
 * (tools/testing/selftests/vfio/lib/iommu.c) sets `const char *default_iommu_mode = MODE_IOMMUFD;`,
 * the mode of every fixture without an IOMMU-mode variant (vfio_pci_device_test,
 * vfio_pci_irq_test) and of vfio_pci_driver_test's probe in main(). vfiobox has no iommufd
 * (/dev/iommu) yet, so those tests all stop at open("/dev/iommu"); this constructor replaces the
 * default before main() runs.
 *
 * VFIOBOX_KST_NO_FORK=1 (analysis only, `scripts/kernel-selftests.sh --no-fork`): the
 * kselftest harness runs each test in a child and the fixture in a grandchild (two fork()s).
 * Linked with -Wl,--wrap=fork,--wrap=_exit, fork() then returns 0 without forking, so the
 * process itself plays child and grandchild: run one case per process (-r NAME). It exits with
 * _exit(0) after teardown (the verdict is in the output: "#      SKIP", ":Expected" lines of a
 * failed EXPECT, an abort() for a failed ASSERT, exit(1) for a failed VFIO_ASSERT); stdio is
 * flushed first so that the test's printf()s are kept. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

extern const char *default_iommu_mode;

__attribute__((constructor)) static void vfiobox_kst_default_iommu_mode(void) {
  const char *mode = getenv("VFIOBOX_KST_DEFAULT_IOMMU_MODE");
  if (mode && *mode) default_iommu_mode = mode;
}

pid_t __real_fork(void);
void __real__exit(int status) __attribute__((noreturn));

static int no_fork(void) {
  const char *v = getenv("VFIOBOX_KST_NO_FORK");
  return v && *v && *v != '0';
}

pid_t __wrap_fork(void) {
  if (no_fork()) return 0;
  return __real_fork();
}

void __wrap__exit(int status) {
  if (no_fork()) fflush(NULL);
  __real__exit(status);
}
