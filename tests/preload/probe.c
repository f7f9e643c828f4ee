/* A plain C program (no vfiobox code linked) that uses VFIO and sysfs the way QEMU, DPDK and the
 * kernel selftests do. Run by preload_integration_test under libvfiobox-preload.so with the fake
 * backend (VFIOBOX_TEST_FAKE=1):
 *   probe fake   checks every answer; prints "ok <what>" lines, exits 1 at the first failure.
 *   probe facts  prints facts about paths outside the served tree (to compare with and without
 *                the library).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define EDU "/sys/bus/pci/devices/0000:01:00.0"
#define NIC "/sys/bus/pci/devices/0000:00:03.0"
#define CONFIG_OFFSET (7ull << 40)

#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond)) {                                              \
      printf("FAIL line %d: %s: ", __LINE__, #cond);            \
      printf(__VA_ARGS__);                                      \
      printf(" (errno %d %s)\n", errno, strerror(errno));       \
      fflush(stdout);                                           \
      exit(1);                                                  \
    }                                                           \
  } while (0)
#define OK(what) printf("ok %s\n", what)

static char* slurp(const char* path) {
  static char buf[4096];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) return NULL;
  buf[n] = 0;
  return buf;
}

static int write_str(const char* path, const char* s) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) return -errno;
  ssize_t n = write(fd, s, strlen(s));
  int e = errno;
  close(fd);
  return n == (ssize_t)strlen(s) ? 0 : -e;
}

static int container_fd = -1;

static void* hammer(void* arg) {
  (void)arg;
  for (int i = 0; i < 500; ++i) {
    if (ioctl(container_fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION) return (void*)1;
    struct stat st;
    if (stat(EDU "/vendor", &st) != 0) return (void*)2;
  }
  return NULL;
}

static void* early_thread(void* arg) {
  /* A thread created before the first VFIO call waits, then uses the library. */
  pthread_barrier_t* b = arg;
  pthread_barrier_wait(b);
  return hammer(NULL);
}

static int facts(void) {
  const char* paths[] = {"/etc/hostname", "/proc/self/status", "/sys/devices/system/cpu/online",
                         "/sys/kernel/mm", "/nonexistent/x", "/dev/null", "/sys/class/net/lo"};
  for (unsigned i = 0; i < sizeof paths / sizeof *paths; ++i) {
    struct stat st;
    errno = 0;
    int r = stat(paths[i], &st);
    printf("%s stat=%d errno=%d mode=%o\n", paths[i], r, r ? errno : 0, r ? 0 : st.st_mode);
    char* s = slurp(paths[i]);
    printf("%s content=%s\n", paths[i], s && strncmp(paths[i], "/proc", 5) ? s : "-");
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "facts") == 0) return facts();
  setvbuf(stdout, NULL, _IOLBF, 0);

  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, 2);
  pthread_t early;
  pthread_create(&early, NULL, early_thread, &barrier);

  /* errno is preserved by calls on paths and fds that are not ours. */
  struct stat st;
  errno = EILSEQ;
  CHECK(stat("/etc/hostname", &st) == 0, "stat /etc/hostname");
  CHECK(errno == EILSEQ, "errno clobbered by a successful stat");
  errno = EILSEQ;
  int fd = open("/proc/self/maps", O_RDONLY);
  CHECK(fd >= 0, "open maps");
  CHECK(errno == EILSEQ, "errno clobbered by a successful open");
  char maps[65536];
  ssize_t n = 0, r;
  while ((r = read(fd, maps + n, sizeof maps - 1 - n)) > 0) n += r;
  maps[n] = 0;
  close(fd);
  CHECK(strstr(maps, "libvfiobox-preload") != NULL, "the library is loaded");
  OK("ordinary files untouched, errno preserved");

  /* QEMU's sysfs walk. */
  errno = EILSEQ;
  CHECK(stat(EDU, &st) == 0 && S_ISDIR(st.st_mode), "stat device dir");
  CHECK(errno == EILSEQ, "errno clobbered by a served stat");
  char link[4096];
  n = readlink(EDU "/iommu_group", link, sizeof link - 1);
  CHECK(n > 0, "readlink iommu_group");
  link[n] = 0;
  CHECK(strcmp(link, "../../../../kernel/iommu_groups/7") == 0, "iommu_group link %s", link);
  CHECK(atoi(strrchr(link, '/') + 1) == 7, "group number");
  char* rp = realpath(EDU, NULL);
  CHECK(rp && strcmp(rp, "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0") == 0, "realpath %s",
        rp ? rp : "(null)");
  free(rp);
  char rbuf[4096];
  CHECK(realpath(EDU "/subsystem", rbuf) && strcmp(rbuf, "/sys/bus/pci") == 0, "realpath subsystem");
  CHECK(realpath(EDU "/iommu_group", rbuf) && strcmp(rbuf, "/sys/kernel/iommu_groups/7") == 0,
        "realpath iommu_group %s", rbuf);
  errno = 0;
  CHECK(stat("/sys/bus/pci/devices/0000:09:00.0", &st) == -1 && errno == ENOENT, "absent device");
  OK("sysfs walk");

  /* DPDK-style reads. */
  char* s = slurp(EDU "/vendor");
  CHECK(s && strcmp(s, "0x1234\n") == 0, "vendor %s", s ? s : "(null)");
  CHECK(strtoul(slurp(EDU "/device"), NULL, 0) == 0x11e8, "device");
  FILE* f = fopen(EDU "/resource", "r");
  CHECK(f != NULL, "fopen resource");
  unsigned long long start, end, flags;
  CHECK(fscanf(f, "%llx %llx %llx", &start, &end, &flags) == 3, "resource line");
  CHECK(start == 0xfea00000 && end == 0xfeafffff && flags == 0x40200, "bar0");
  fclose(f);
  CHECK(strcmp(slurp(EDU "/numa_node"), "-1\n") == 0, "numa_node");
  CHECK(access(EDU "/driver", F_OK) == 0, "access driver");
  DIR* d = opendir("/sys/kernel/iommu_groups");
  CHECK(d != NULL, "opendir iommu_groups");
  int seen3 = 0, seen7 = 0;
  struct dirent* de;
  while ((de = readdir(d)) != NULL) {
    seen3 |= strcmp(de->d_name, "3") == 0;
    seen7 |= strcmp(de->d_name, "7") == 0;
  }
  closedir(d);
  CHECK(seen3 && seen7, "groups listed");
  struct dirent** list;
  int count = scandir("/sys/kernel/iommu_groups/3/devices", &list, NULL, alphasort);
  CHECK(count == 5, "scandir group 3: %d", count); /* ., .., two PCI functions, a platform device */
  for (int i = 0; i < count; ++i) free(list[i]);
  free(list);
  OK("sysfs reads");

  /* /dev/vfio nodes. */
  CHECK(stat("/dev/vfio/vfio", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 10 &&
            minor(st.st_rdev) == 196,
        "stat /dev/vfio/vfio");
  CHECK(stat("/dev/vfio/7", &st) == 0 && S_ISCHR(st.st_mode), "stat group node");
  container_fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
  CHECK(container_fd >= 0, "open container");
  CHECK(fcntl(container_fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC kept");
  CHECK(fstat(container_fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(10, 196),
        "fstat container");
  errno = EILSEQ;
  CHECK(ioctl(container_fd, VFIO_GET_API_VERSION) == VFIO_API_VERSION, "api version");
  CHECK(errno == EILSEQ, "errno clobbered by a successful ioctl");
  CHECK(ioctl(container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1, "type1v2");
  CHECK(ioctl(container_fd, 0x1234) == -1 && errno == ENOTTY, "unknown ioctl");
  int group = open("/dev/vfio/7", O_RDWR);
  CHECK(group >= 0, "open group 7");
  CHECK(open("/dev/vfio/7", O_RDWR) == -1 && errno == EBUSY, "second open of a group");
  CHECK(open("/dev/vfio/99", O_RDWR) == -1 && errno == ENOENT, "no group 99");
  struct vfio_group_status gs = {.argsz = sizeof gs};
  CHECK(ioctl(group, VFIO_GROUP_GET_STATUS, &gs) == 0 && (gs.flags & VFIO_GROUP_FLAGS_VIABLE), "viable");
  int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0");
  CHECK(dev >= 0, "device fd");
  uint16_t ids[2];
  CHECK(pread(dev, ids, 4, CONFIG_OFFSET) == 4 && ids[0] == 0x1234 && ids[1] == 0x11e8, "config read");
  CHECK(pread(dev, ids, 4, 0) == -1 && errno == EINVAL, "pread outside a region");
  CHECK(fstat(dev, &st) == 0 && (st.st_mode & S_IFMT) == 0, "device fd is an anonymous inode");
  int dup1 = dup(dev);
  int dup2fd = fcntl(dev, F_DUPFD_CLOEXEC, 200);
  CHECK(dup1 >= 0 && dup2fd >= 200, "dup");
  CHECK(close(dev) == 0, "close original");
  CHECK(pread(dup1, ids, 2, CONFIG_OFFSET) == 2 && ids[0] == 0x1234, "dup'ed fd still works");
  CHECK(dup2(container_fd, dup1) == dup1, "dup2 over a device fd");
  CHECK(ioctl(dup1, VFIO_GET_API_VERSION) == 0, "dup1 is a container now");
  CHECK(close(dup1) == 0 && close(dup2fd) == 0, "close dups");
  CHECK(ioctl(dup2fd, VFIO_GET_API_VERSION) == -1 && errno == EBADF, "closed fd");
  OK("vfio nodes and fds");

  /* Threads created before and after the first VFIO call. */
  pthread_barrier_wait(&barrier);
  pthread_t t[3];
  for (int i = 0; i < 3; ++i) pthread_create(&t[i], NULL, hammer, NULL);
  void* res;
  pthread_join(early, &res);
  CHECK(res == NULL, "early thread %p", res);
  for (int i = 0; i < 3; ++i) {
    pthread_join(t[i], &res);
    CHECK(res == NULL, "thread %p", res);
  }
  OK("threads");

  /* fork: the child's inherited VFIO fds answer EBADF and never touch the parent's state. */
  pid_t pid = fork();
  if (pid == 0) {
    if (ioctl(container_fd, VFIO_GET_API_VERSION) != -1 || errno != EBADF) _exit(1);
    if (pread(group, ids, 2, 0) != -1 || errno != EBADF) _exit(2);
    if (close(group) != 0) _exit(3);
    if (strcmp(slurp(EDU "/vendor"), "0x1234\n") != 0) _exit(4);
    _exit(0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "child status %d", status);
  CHECK(ioctl(group, VFIO_GROUP_GET_STATUS, &gs) == 0, "parent's group after the child closed it");
  OK("fork");

  /* Binding through sysfs writes changes the machine (and the tree). */
  int g3 = open("/dev/vfio/3", O_RDWR);
  CHECK(ioctl(g3, VFIO_GROUP_GET_STATUS, &gs) == 0 && !(gs.flags & VFIO_GROUP_FLAGS_VIABLE),
        "group 3 not viable while the NIC has e1000e");
  CHECK(write_str(NIC "/driver_override", "vfio-pci") == 0, "driver_override");
  CHECK(strcmp(slurp(NIC "/driver_override"), "vfio-pci\n") == 0, "override shown");
  CHECK(write_str("/sys/bus/pci/drivers/vfio-pci/bind", "0000:00:03.0") == -EBUSY, "bind while bound");
  CHECK(write_str(NIC "/driver/unbind", "0000:00:03.0") == 0, "unbind");
  CHECK(readlink(NIC "/driver", link, sizeof link) == -1 && errno == ENOENT, "no driver link");
  f = fopen("/sys/bus/pci/drivers/vfio-pci/bind", "w");
  CHECK(f != NULL, "fopen bind");
  CHECK(fprintf(f, "0000:00:03.0\n") > 0 && fclose(f) == 0, "bind through stdio");
  n = readlink(NIC "/driver", link, sizeof link - 1);
  CHECK(n > 0, "driver link after bind");
  link[n] = 0;
  CHECK(strcmp(strrchr(link, '/'), "/vfio-pci") == 0, "bound to %s", link);
  CHECK(write_str("/sys/bus/pci/drivers/vfio-pci/bind", "0000:07:00.0") == -ENODEV, "bind absent");
  CHECK(ioctl(g3, VFIO_GROUP_GET_STATUS, &gs) == 0 && (gs.flags & VFIO_GROUP_FLAGS_VIABLE),
        "group 3 viable after binding");
  CHECK(close(g3) == 0, "close group 3");
  g3 = open("/dev/vfio/3", O_RDWR | O_CLOEXEC);
  CHECK(g3 >= 0, "group 3 opens again once closed");
  OK("bind");

  /* close_range drops table fds; later fds are fine. */
  int a = open("/dev/vfio/vfio", O_RDWR);
  int b = dup(a);
  CHECK(close_range(a < b ? a : b, a < b ? b : a, 0) == 0, "close_range");
  CHECK(ioctl(a, VFIO_GET_API_VERSION) == -1 && errno == EBADF, "closed by close_range");
  OK("close_range");
  printf("done\n");
  return 0;
}
