/* selftest.h: a tiny TAP harness for vfiobox's C selftests (plain C11, libc only).
 *
 *   TEST(name) { ... }            registers a test (run in file order)
 *   CHECK(cond)                   fails the test and returns from it when cond is false
 *   EXPECT_EQ(a, b)               integer equality (printed as hex and decimal on failure)
 *   EXPECT_ERRNO(expr, err)       expr returns -1 with errno == err
 *   SKIP(fmt, ...)                ends the test as skipped
 *   st_defer_close(fd), st_defer_munmap(p, len)   cleanup run after the test, even when it fails
 *
 * Tests run sequentially in the calling process with fresh fds per test (not per fork: under
 * `vfiobox run` a fork child's VFIO fds answer EBADF, as in a process that inherited them). Each
 * program calls st_run("variant") once per variant (IOMMU type, device), then st_exit(); the
 * variant is in st_variant for the test to read. Output is TAP 13; the exit status is 0 when
 * nothing failed, 4 (KSFT_SKIP) when everything was skipped, 1 otherwise.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef VFIOBOX_SELFTEST_H
#define VFIOBOX_SELFTEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct st_test {
  const char* name;
  void (*fn)(void);
};

static struct st_test st_tests[128];
static int st_ntests;
static int st_index, st_passed, st_failed, st_skipped;
static int st_cur_failed, st_cur_skipped;
static char st_skip_reason[256];
static const char* st_variant = "";
static int st_deferred_fds[64], st_ndeferred_fds;
static struct {
  void* p;
  size_t len;
} st_deferred_maps[64];
static int st_ndeferred_maps;

#define TEST(name)                                                             \
  static void name(void);                                                      \
  __attribute__((constructor)) static void st_register_##name(void) {          \
    if (st_ntests < (int)(sizeof st_tests / sizeof st_tests[0]))               \
      st_tests[st_ntests++] = (struct st_test){#name, name};                   \
  }                                                                            \
  static void name(void)

__attribute__((format(printf, 3, 4))) static void st_fail(const char* file, int line, const char* fmt, ...) {
  va_list ap;
  int e = errno;
  printf("# %s:%d: ", file, line);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf(" (errno %d: %s)\n", e, strerror(e));
  st_cur_failed = 1;
}

#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      st_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);        \
      return;                                                        \
    }                                                                \
  } while (0)

#define EXPECT_EQ(a, b)                                                                         \
  do {                                                                                          \
    unsigned long long st_a_ = (unsigned long long)(a), st_b_ = (unsigned long long)(b);        \
    if (st_a_ != st_b_) {                                                                       \
      st_fail(__FILE__, __LINE__, "%s == %s: %#llx (%lld) != %#llx (%lld)", #a, #b, st_a_,      \
              (long long)st_a_, st_b_, (long long)st_b_);                                       \
      return;                                                                                   \
    }                                                                                           \
  } while (0)

#define EXPECT_ERRNO(expr, err)                                                                 \
  do {                                                                                          \
    errno = 0;                                                                                  \
    long st_r_ = (long)(expr);                                                                  \
    int st_e_ = errno;                                                                          \
    if (st_r_ != -1 || st_e_ != (err)) {                                                        \
      st_fail(__FILE__, __LINE__, "%s: expected -1 with %s, got %ld with errno %d (%s)", #expr, \
              #err, st_r_, st_e_, strerror(st_e_));                                             \
      return;                                                                                   \
    }                                                                                           \
  } while (0)

#define SKIP(...)                                                            \
  do {                                                                       \
    snprintf(st_skip_reason, sizeof st_skip_reason, __VA_ARGS__);            \
    st_cur_skipped = 1;                                                      \
    return;                                                                  \
  } while (0)

static inline void st_defer_close(int fd) {
  if (fd >= 0 && st_ndeferred_fds < 64) st_deferred_fds[st_ndeferred_fds++] = fd;
}
static inline void st_defer_munmap(void* p, size_t len) {
  if (p != MAP_FAILED && p && st_ndeferred_maps < 64) {
    st_deferred_maps[st_ndeferred_maps].p = p;
    st_deferred_maps[st_ndeferred_maps++].len = len;
  }
}

/* Runs every test under one variant label. Cleanup closes in reverse order (device before group
 * before container, as the selftests do) and asserts that each close returns 0. */
static void st_run(const char* variant) {
  st_variant = variant;
  for (int i = 0; i < st_ntests; ++i) {
    st_cur_failed = st_cur_skipped = 0;
    st_skip_reason[0] = 0;
    st_ndeferred_fds = st_ndeferred_maps = 0;
    st_tests[i].fn();
    for (int j = st_ndeferred_fds - 1; j >= 0; --j) {
      if (close(st_deferred_fds[j]) != 0) {
        printf("# cleanup: close(%d) failed: %s\n", st_deferred_fds[j], strerror(errno));
        st_cur_failed = 1;
      }
    }
    for (int j = st_ndeferred_maps - 1; j >= 0; --j) munmap(st_deferred_maps[j].p, st_deferred_maps[j].len);
    ++st_index;
    if (st_cur_failed) {
      ++st_failed;
      printf("not ok %d - %s%s%s\n", st_index, variant, *variant ? "/" : "", st_tests[i].name);
    } else if (st_cur_skipped) {
      ++st_skipped;
      printf("ok %d - %s%s%s # SKIP %s\n", st_index, variant, *variant ? "/" : "", st_tests[i].name,
             st_skip_reason);
    } else {
      ++st_passed;
      printf("ok %d - %s%s%s\n", st_index, variant, *variant ? "/" : "", st_tests[i].name);
    }
    fflush(stdout);
  }
}

static int st_exit(void) {
  printf("1..%d\n# passed %d, failed %d, skipped %d\n", st_index, st_passed, st_failed, st_skipped);
  fflush(stdout);
  if (st_failed) return 1;
  if (st_passed == 0) return 4;
  return 0;
}

static inline void st_begin(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("TAP version 13\n");
}

#endif
