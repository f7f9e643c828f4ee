# SPDX-License-Identifier: Apache-2.0
# The Linux kernel's own VFIO selftests (scripts/kernel-selftests.sh, docs/kernel-selftests.md) as
# one ctest entry, kernel_selftests. Opt-in: the script downloads Debian's linux-source-7.3 and
# linux-libc-dev from trixie-backports (~170 MB) into build/kselftests, so the suite's default run
# must not register it. Turn it on with -DVB_KERNEL_SELFTESTS=ON, or with VB_KERNEL_SELFTESTS=1 in
# the environment when CMake configures. The entry fails when a case listed in
# tests/kernel-selftests/expected.txt does not pass (run with --no-fork, so that its nofork:
# lines, the cases that pass when the harness's fork()s are made no-ops, are checked too). A
# sanitized preload library cannot load into the selftests (plain programs): unsanitized only.
set(_vb_kst_default OFF)
if("$ENV{VB_KERNEL_SELFTESTS}" STREQUAL "1")
  set(_vb_kst_default ON)
endif()
option(VB_KERNEL_SELFTESTS "Register the kernel's VFIO selftests with ctest (downloads linux-source)" ${_vb_kst_default})
if(VB_KERNEL_SELFTESTS AND NOT VB_SANITIZED)
  add_test(NAME kernel_selftests
           COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/kernel-selftests.sh --no-vfiobox-build --no-fork)
  set_tests_properties(kernel_selftests PROPERTIES
    ENVIRONMENT "VB_KST_VFIOBOX=$<TARGET_FILE:vfiobox>"
    TIMEOUT 3600 RUN_SERIAL TRUE LABELS kernel-selftests)
endif()
