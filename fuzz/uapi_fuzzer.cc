// libFuzzer target: the VFIO UAPI of the default machine, driven in-process through the same
// FileObjects the preload library dispatches to (uapi::VfioNodeTable + uapi::FdTable::Global()).
// Each input is decoded into a sequence of operations over container, group and device fds —
// open/close/dup, SET_CONTAINER/UNSET, SET_IOMMU, MAP/UNMAP with every flag, DIRTY_PAGES, GET_INFO
// with odd argsz, region read/write/mmap, SET_IRQS with real and bad eventfds, IOEVENTFD
// registration and deletion (on eventfds nobody signals, so no write lands asynchronously under
// the DMA oracle), resets, hot-reset,
// device-initiated DMA, hot-unplug (orderly or surprise, also while the device's fds are open) and
// re-plug — and after every step the invariants are checked:
//   * every type1 container: Iommu::CheckInvariantsForTest() (page tables agree with the records,
//     accounting with the records, counters with the state);
//   * a failed MAP/UNMAP/DIRTY changes neither the records nor the locked-memory account;
//   * the process's locked-memory account equals the sum of every container's charges;
//   * a device DMA succeeds exactly when the records of the container its group is attached to
//     cover it with the needed permission; then the bytes land at the pinned pages; otherwise it
//     faults (one fault in its IOMMU's log) and no byte of the DMA arena changes (isolation:
//     another container's mappings, unmapped pages, read-only mappings, blocked groups);
//   * at the end of the input (after closing every fd it opened and re-plugging what it
//     unplugged): no fd left in the FdTable, locked memory 0, and the live counts of containers,
//     group files, device files, type1 instances, domains, VFIO groups and devices back to where
//     they were before the input.
// The machine (topology::System, default topology) is built once per process.
//
// Build: the `asan` preset (VB_FUZZ=ON) → build/asan/uapi_fuzzer. Runs: see docs/reliability.md.
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/fail_point.h"
#include "devices/edu.h"
#include "devices/test_endpoint.h"
#include "faults/fault_dispatcher.h"
#include "faults/trap_map.h"
#include "iommu/domain.h"
#include "iommu/iommu.h"
#include "topology/system.h"
#include "uapi/container_file.h"
#include "uapi/device_file.h"
#include "uapi/fd_table.h"
#include "uapi/group_file.h"
#include "uapi/node_table.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/locked_memory.h"
#include "vfio/type1/type1_iommu.h"

namespace {

namespace t1 = vfio::type1;
using uapi::FdTable;

[[noreturn]] void Die(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "INVARIANT VIOLATED: %s %s\n", what, detail.c_str());
  std::abort();
}
#define CHECK(cond, ...) \
  do {                   \
    if (!(cond)) Die("CHECK(" #cond ")" __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

constexpr size_t kPage = 4096;
constexpr size_t kArenaRw = 64 * kPage;  // read-write DMA memory
constexpr size_t kArenaRo = 4 * kPage;   // read-only (MAP_DMA without WRITE works, with WRITE EFAULT)
constexpr size_t kArenaTotal = kArenaRw + kArenaRo + kPage;  // + a PROT_NONE guard page

// Devices the fuzzer knows by name; `replug` says how to build a fresh one after an unplug.
enum class Kind { kEdu, kTestEndpoint, kNone };
struct Known {
  const char* name;
  Kind replug;
};
constexpr Known kDevices[] = {
    {"0000:01:00.0", Kind::kEdu},          // edu, dmar0, own group
    {"0000:02:00.0", Kind::kNone},         // group with a kernel-dma function: not viable
    {"0000:04:01.0", Kind::kNone},         // behind a PCIe-to-PCI bridge: one group of two
    {"0000:04:02.0", Kind::kNone},
    {"0000:07:00.0", Kind::kTestEndpoint}, // smmu0, shares its group with a platform device
    {"platform:smmu-client0", Kind::kNone},
    {"0000:08:00.0", Kind::kTestEndpoint}, // dmar1: no MSI isolation, attach EPERM
};
constexpr size_t kNumDevices = sizeof(kDevices) / sizeof(kDevices[0]);

struct Globals {
  std::unique_ptr<topology::System> sys;
  std::unique_ptr<uapi::VfioNodeTable> nodes;
  uint8_t* arena = nullptr;
  std::vector<uint8_t> shadow;  // what the arena must hold
  int eventfds[2] = {-1, -1};
  int io_eventfds[2] = {-1, -1};  // IOEVENTFD only; never signalled
  int not_eventfd = -1;
  int group_ids[kNumDevices] = {};
  // Baselines.
  int64_t containers, group_files, device_files, iommus, domains, groups, devices;
  size_t fd_table_size;
  size_t machine_devices;
};
Globals* g;

hw::Device* FindDev(size_t i) { return g->sys->machine().FindDevice(kDevices[i].name).get(); }

void TakeBaseline() {
  g->containers = vb::LiveCount<vfio::Container>::live();
  g->group_files = vb::LiveCount<vfio::GroupFile>::live();
  g->device_files = vb::LiveCount<vfio::DeviceFile>::live();
  g->iommus = vb::LiveCount<t1::Iommu>::live();
  g->domains = vb::LiveCount<iommu::Domain>::live();
  g->groups = vb::LiveCount<vfio::Group>::live();
  g->devices = vb::LiveCount<vfio::Device>::live();
  g->fd_table_size = FdTable::Global().size();
  g->machine_devices = g->sys->machine().Devices().size();
}

void Init() {
  g = new Globals;
  std::string err;
  g->sys = topology::System::Create(topology::DefaultTopology(), &err);
  if (!g->sys) Die("System::Create", err);
  // Unregistration of an open device re-sends REQ at this interval (Linux: 10 s).
  g->sys->vfio().set_request_interval(std::chrono::milliseconds(1));
  g->nodes = std::make_unique<uapi::VfioNodeTable>(g->sys->vfio());
  g->arena = static_cast<uint8_t*>(
      mmap(nullptr, kArenaTotal, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (g->arena == MAP_FAILED) Die("mmap arena");
  for (size_t i = 0; i < kArenaRw + kArenaRo; ++i) g->arena[i] = static_cast<uint8_t>(i * 131 + 7);
  mprotect(g->arena + kArenaRw, kArenaRo, PROT_READ);
  mprotect(g->arena + kArenaRw + kArenaRo, kPage, PROT_NONE);
  g->shadow.assign(g->arena, g->arena + kArenaRw + kArenaRo);
  g->eventfds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  g->eventfds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  g->io_eventfds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  g->io_eventfds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  g->not_eventfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (size_t i = 0; i < kNumDevices; ++i) {
    hw::Device* d = FindDev(i);
    if (!d) Die("device missing", kDevices[i].name);
    g->group_ids[i] = g->sys->iommu_core().GroupOf(*d)->id();
  }
  TakeBaseline();
}

// ------------------------------------------------------------------------------------------
// One input's state.

struct Unplug {
  size_t dev;
  vb::RefPtr<hw::Device> hw;
  hw::RemovalKind kind;
  std::atomic<bool> done{false};
};

// Removal waits for the device's fds, so it runs beside the input (which closes them later), on
// one long-lived thread (a thread per removal costs more than the rest of an input under ASan).
// Removals queue up behind each other, as a second `echo 1 > remove` would.
class Remover {
 public:
  Remover() : thread_([this] { Run(); }) { thread_.detach(); }
  void Post(Unplug* u) {
    std::lock_guard l(mu_);
    queue_.push_back(u);
    cv_.notify_all();
  }
  void WaitIdle() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return queue_.empty() && !busy_; });
  }

 private:
  void Run() {
    std::unique_lock l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return !queue_.empty(); });
      Unplug* u = queue_.front();
      queue_.erase(queue_.begin());
      busy_ = true;
      l.unlock();
      auto r = g->sys->machine().RemoveDevice(*u->hw, u->kind);
      if (!r.has_value()) Die("RemoveDevice", r.error().ToString());
      u->done.store(true);
      l.lock();
      busy_ = false;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Unplug*> queue_;
  bool busy_ = false;
  std::thread thread_;
};
Remover* remover;

void InitRemover() { remover = new Remover; }

struct Input {
  // Every container this input opened, so that accounting can be summed over all of them even
  // after their fds are closed (a group keeps its container alive). Holding a reference changes
  // nothing observable: the backend goes with the last group, not with the last reference.
  std::vector<vb::RefPtr<vfio::Container>> containers;
  std::vector<int> fds;                         // fds this input opened (closed at the end)
  struct Map {
    void* addr;
    size_t length;
    uint64_t offset;       // the mmap offset (region index << 40 | offset within the region)
    bool test_endpoint;    // a test endpoint's region (else an edu's)
  };
  std::vector<Map> maps;                        // region mmaps
  std::vector<std::unique_ptr<Unplug>> unplugs; // in flight or finished
  bool unplugged[kNumDevices] = {};
};

std::shared_ptr<uapi::FileObject> Obj(int fd) {
  FdTable::Entry e = FdTable::Global().Lookup(fd);
  return e.state == FdTable::State::kOurs ? e.object : nullptr;
}
long Ioctl(int fd, unsigned long req, unsigned long arg) {
  auto o = Obj(fd);
  return o ? o->Ioctl(req, arg) : -EBADF;
}

template <typename T>
T* As(int fd) {
  auto o = Obj(fd);
  return dynamic_cast<T*>(o.get());  // the Input's fd keeps the object alive
}

// The fds of this input of one kind.
template <typename T>
std::vector<int> FdsOf(const Input& in) {
  std::vector<int> out;
  for (int fd : in.fds)
    if (As<T>(fd)) out.push_back(fd);
  return out;
}

int Pick(FuzzedDataProvider& p, const std::vector<int>& v) {
  if (v.empty()) return -1;
  return v[p.ConsumeIntegralInRange<size_t>(0, v.size() - 1)];
}

bool AnyUnplugInFlight(const Input& in) {
  for (auto& u : in.unplugs)
    if (!u->done.load()) return true;
  return false;
}

// Every type1 backend reachable from this input's container fds.
template <typename Fn>
void ForEachIommu(const Input& in, Fn fn) {
  for (const auto& c : in.containers) {
    (void)c->WithBackendAs<t1::Iommu>([&](t1::Iommu& io) -> vb::Result<void> {
      fn(io);
      return vb::Ok();
    });
  }
}

void CheckStep(const Input& in) {
  // Sampled before the records are summed: a removal that finishes between the sum and the read
  // of the account detaches its group and uncharges its records, so a check of "nothing in
  // flight" taken afterwards compared a sum from before with an account from after (run 14's
  // "0 != 24576"). Only this thread starts removals, so none can begin during the check.
  const bool removal_in_flight = AnyUnplugInFlight(in);
  uint64_t sum = 0;
  ForEachIommu(in, [&](t1::Iommu& io) {
    std::string bad = io.CheckInvariantsForTest();
    if (!bad.empty()) Die("type1 invariants:", bad);
    for (const auto& m : io.MappingsForTest()) sum += (m.locked_bytes + kPage - 1) / kPage * kPage;
  });
  const uint64_t locked = t1::LockedMemory::ForProcess().locked_bytes();
  if (!removal_in_flight) CHECK(locked == sum, std::to_string(locked) + " != " + std::to_string(sum));
}

// Failure injection inside the fuzzer (fail-nth at random states): sometimes arms the injector for
// the next call. When a point fired the call must fail with the kernel's errno for that point
// (or, on paths that absorb the failure by design, succeed) — the invariants after the step and
// the unchanged-state checks do the rest. Not armed while a removal runs beside the input (its
// detach may reach points of its own).
class Inject {
 public:
  Inject(FuzzedDataProvider& p, const Input& in) {
    if (p.ConsumeIntegralInRange<int>(0, 7) != 0 || AnyUnplugInFlight(in)) return;
    vb::FailInjector::ArmNth(p.ConsumeIntegralInRange<uint64_t>(1, 12));
    armed_ = true;
  }
  ~Inject() { Disarm(); }
  // Disarms; true when a point failed during the call.
  bool Done() {
    Disarm();
    return fired_;
  }
  // The errno the kernel answers when the allocation behind the fired point fails.
  int Errno() const {
    const std::string n = name_;
    if (n == "fd_table.install") return EMFILE;
    if (n == "iommu.alloc_domain") return EIO;
    return ENOMEM;
  }
  const char* name() const { return name_; }

 private:
  void Disarm() {
    if (!armed_) return;
    fired_ = vb::FailInjector::Fired();
    name_ = vb::FailInjector::FiredName();
    vb::FailInjector::Disarm();
    armed_ = false;
  }
  bool armed_ = false;
  bool fired_ = false;
  const char* name_ = "";
};
// Points whose failure the path absorbs by design (detach keeps the old IOVA list; it runs inside
// SET_IOMMU's and SET_CONTAINER's rollbacks): the call's errno is then its own.
bool Absorbed(const char* point) { return std::string(point) == "type1.iova_list_rebuild"; }
#define CHECK_INJECTED(inj, r)                                                            \
  do {                                                                                    \
    if ((inj).Done() && !Absorbed((inj).name()))                                          \
      CHECK((r) == -(inj).Errno(), std::string((inj).name()) + " fired, call gave " + std::to_string(r)); \
  } while (0)

// ------------------------------------------------------------------------------------------
// Value choosers: mostly sensible, sometimes hostile.

uint64_t ChooseVaddr(FuzzedDataProvider& p) {
  const uint64_t base = reinterpret_cast<uint64_t>(g->arena);
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return 0;
    case 1: return base + kArenaRw;                    // read-only part
    case 2: return base + kArenaRw + kArenaRo;         // guard page
    case 3: return base + p.ConsumeIntegralInRange<uint64_t>(0, kArenaRw);  // maybe unaligned
    case 4: return p.ConsumeIntegral<uint64_t>();
    default: return base + kPage * p.ConsumeIntegralInRange<uint64_t>(0, kArenaRw / kPage - 1);
  }
}
uint64_t ChooseIova(FuzzedDataProvider& p) {
  switch (p.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: return p.ConsumeIntegral<uint64_t>();
    case 1: return 0xfee00000 + kPage * p.ConsumeIntegralInRange<uint64_t>(0, 3);  // MSI window
    case 2: return 0x8000000;                                                      // SW-MSI
    case 3: return (uint64_t{1} << p.ConsumeIntegralInRange<int>(30, 63)) - kPage;  // apertures' ends
    case 4: return p.ConsumeIntegralInRange<uint64_t>(0, 0x3fffff);                 // maybe unaligned
    default: return 0x100000 + kPage * p.ConsumeIntegralInRange<uint64_t>(0, 127);
  }
}
uint64_t ChooseSize(FuzzedDataProvider& p) {
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return 0;
    case 1: return p.ConsumeIntegral<uint64_t>();
    case 2: return p.ConsumeIntegralInRange<uint64_t>(1, 3 * kPage);  // maybe unaligned
    case 3: return kArenaRw + kArenaRo;
    default: return kPage * p.ConsumeIntegralInRange<uint64_t>(1, 16);
  }
}
uint32_t ChooseArgsz(FuzzedDataProvider& p, uint32_t natural) {
  switch (p.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: return p.ConsumeIntegral<uint32_t>();
    case 1: return natural > 0 ? natural - 1 : 0;
    case 2: return natural + p.ConsumeIntegralInRange<uint32_t>(1, 512);
    default: return natural;
  }
}
// A user pointer: usually `good`, sometimes unreadable.
unsigned long ChoosePtr(FuzzedDataProvider& p, const void* good) {
  switch (p.ConsumeIntegralInRange<int>(0, 15)) {
    case 0: return 0;
    case 1: return reinterpret_cast<unsigned long>(g->arena + kArenaRw + kArenaRo);  // PROT_NONE
    default: return reinterpret_cast<unsigned long>(good);
  }
}

// ------------------------------------------------------------------------------------------
// Operations.

void Track(Input& in, int fd) {
  if (fd >= 0) in.fds.push_back(fd);
}

void OpOpen(FuzzedDataProvider& p, Input& in) {
  std::string path;
  switch (p.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: path = "/dev/vfio/vfio"; break;
    case 1: path = "/dev/vfio/" + std::to_string(p.ConsumeIntegralInRange<int>(-1, 12)); break;
    default: path = "/dev/vfio/" + std::to_string(g->group_ids[p.ConsumeIntegralInRange<size_t>(0, kNumDevices - 1)]);
  }
  int err = 0;
  Inject inj(p, in);
  auto obj = g->nodes->Open(path, O_RDWR, &err);
  if (!obj) {
    if (inj.Done() && !Absorbed(inj.name())) {
      CHECK(err == inj.Errno(), std::string(inj.name()) + " fired, open gave " + std::to_string(err));
      return;
    }
    CHECK(err == ENOENT || err == EBUSY || err == ENODEV, path + " errno " + std::to_string(err));
    return;
  }
  vb::RefPtr<vfio::Container> container;
  if (auto* c = dynamic_cast<uapi::ContainerFileObject*>(obj.get())) container = c->container_ref();
  int fd = FdTable::Global().Install(std::move(obj), O_CLOEXEC, g->nodes->Rdev(path).value_or(0));
  if (inj.Done() && !Absorbed(inj.name())) {
    CHECK(fd == -inj.Errno(), std::string(inj.name()) + " fired, install gave " + std::to_string(fd));
    return;
  }
  CHECK(fd >= 0);
  if (container) in.containers.push_back(std::move(container));
  Track(in, fd);
}

void OpClose(FuzzedDataProvider& p, Input& in) {
  if (in.fds.empty()) return;
  size_t i = p.ConsumeIntegralInRange<size_t>(0, in.fds.size() - 1);
  CHECK(FdTable::Global().Close(in.fds[i]) == 0);
  in.fds.erase(in.fds.begin() + static_cast<long>(i));
}

void OpDup(FuzzedDataProvider& p, Input& in) {
  int fd = Pick(p, in.fds);
  if (fd < 0) return;
  int nfd = FdTable::Global().DupFd(fd, 0, O_CLOEXEC);
  CHECK(nfd >= 0);
  Track(in, nfd);
}

void OpSetContainer(FuzzedDataProvider& p, Input& in) {
  int gfd = Pick(p, FdsOf<uapi::GroupFileObject>(in));
  if (gfd < 0) return;
  int cfd;
  switch (p.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: cfd = Pick(p, in.fds); break;        // maybe not a container
    case 1: cfd = g->not_eventfd; break;         // an fd that is not ours
    case 2: cfd = 1 << 20; break;                // not open
    default: cfd = Pick(p, FdsOf<uapi::ContainerFileObject>(in));
  }
  const unsigned long ptr = ChoosePtr(p, &cfd);
  Inject inj(p, in);
  long r = Ioctl(gfd, VFIO_GROUP_SET_CONTAINER, ptr);
  CHECK_INJECTED(inj, r);
  CHECK(r == 0 || r == -EINVAL || r == -EBADF || r == -EFAULT || r == -EPERM || r == -EBUSY || r == -ENODEV ||
            r == -ENOMEM || r == -EIO,
        std::to_string(r));
}

void OpSimpleGroup(FuzzedDataProvider& p, Input& in) {
  int gfd = Pick(p, FdsOf<uapi::GroupFileObject>(in));
  if (gfd < 0) return;
  switch (p.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: {
      long r = Ioctl(gfd, VFIO_GROUP_UNSET_CONTAINER, 0ul);
      CHECK(r == 0 || r == -EINVAL || r == -EBUSY, std::to_string(r));
      break;
    }
    case 1: {
      vfio_group_status st{};
      st.argsz = ChooseArgsz(p, sizeof(st));
      long r = Ioctl(gfd, VFIO_GROUP_GET_STATUS, ChoosePtr(p, &st));
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -ENODEV, std::to_string(r));
      break;
    }
    default: {
      long r = Ioctl(gfd, p.ConsumeIntegral<uint32_t>(), 0ul);
      (void)r;
    }
  }
}

void OpGetDevice(FuzzedDataProvider& p, Input& in) {
  int gfd = Pick(p, FdsOf<uapi::GroupFileObject>(in));
  if (gfd < 0) return;
  std::string name = p.ConsumeBool() ? kDevices[p.ConsumeIntegralInRange<size_t>(0, kNumDevices - 1)].name
                                     : p.ConsumeRandomLengthString(24);
  const unsigned long ptr = ChoosePtr(p, name.c_str());
  Inject inj(p, in);
  long r = Ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, ptr);
  CHECK_INJECTED(inj, r);
  if (r >= 0) {
    Track(in, static_cast<int>(r));
    return;
  }
  CHECK(r == -ENODEV || r == -EINVAL || r == -EFAULT || r == -EBUSY || r == -EIO || r == -ENOMEM || r == -EMFILE, std::to_string(r));
}

void OpContainerSimple(FuzzedDataProvider& p, Input& in) {
  int cfd = Pick(p, FdsOf<uapi::ContainerFileObject>(in));
  if (cfd < 0) return;
  switch (p.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: {
      static constexpr unsigned long kTypes[] = {VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_NESTING_IOMMU,
                                                 VFIO_NOIOMMU_IOMMU, VFIO_SPAPR_TCE_IOMMU, 0};
      unsigned long t = p.ConsumeBool() ? kTypes[p.ConsumeIntegralInRange<size_t>(0, 5)] : p.ConsumeIntegral<uint64_t>();
      Inject inj(p, in);
      long r = Ioctl(cfd, VFIO_SET_IOMMU, t);
      CHECK_INJECTED(inj, r);
      CHECK(r == 0 || r == -EINVAL || r == -ENODEV || r == -EPERM || r == -EBUSY || r == -EIO || r == -ENOMEM,
            std::to_string(r));
      break;
    }
    case 1:
      CHECK(Ioctl(cfd, VFIO_GET_API_VERSION, 0ul) == VFIO_API_VERSION);
      break;
    case 2:
      CHECK(Ioctl(cfd, VFIO_CHECK_EXTENSION, p.ConsumeIntegralInRange<unsigned long>(0, 12)) >= 0);
      break;
    default: {
      alignas(8) uint8_t buf[512] = {};
      auto* info = reinterpret_cast<vfio_iommu_type1_info*>(buf);
      info->argsz = std::min<uint32_t>(ChooseArgsz(p, sizeof(*info)), sizeof(buf));
      const unsigned long ptr = ChoosePtr(p, buf);
      Inject inj(p, in);
      long r = Ioctl(cfd, VFIO_IOMMU_GET_INFO, ptr);
      CHECK_INJECTED(inj, r);
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -ENOTTY || r == -ENOMEM, std::to_string(r));
      if (r == 0) CHECK(info->flags & VFIO_IOMMU_INFO_PGSIZES);
    }
  }
}

// MAP/UNMAP/DIRTY: on failure nothing may have changed.
struct Before {
  std::vector<t1::Iommu::MappingView> maps;
  uint64_t locked;
  bool dirty;
};
Before Snap(t1::Iommu& io) { return {io.MappingsForTest(), t1::LockedMemory::ForProcess().locked_bytes(), io.dirty_tracking()}; }
void CheckUnchanged(t1::Iommu& io, const Before& b, const char* what, long r, const Input& in) {
  if (AnyUnplugInFlight(in)) return;  // another thread may detach meanwhile
  Before a = Snap(io);
  if (a.maps != b.maps || a.locked != b.locked || a.dirty != b.dirty)
    Die(what, "failed with " + std::to_string(r) + " but changed the state");
}

void OpMapUnmapDirty(FuzzedDataProvider& p, Input& in) {
  int cfd = Pick(p, FdsOf<uapi::ContainerFileObject>(in));
  if (cfd < 0) return;
  auto* c = As<uapi::ContainerFileObject>(cfd);
  const int op = p.ConsumeIntegralInRange<int>(0, 2);
  (void)c->container().WithBackendAs<t1::Iommu>([&](t1::Iommu& io) -> vb::Result<void> {
    Before b = Snap(io);
    if (op == 0) {
      vfio_iommu_type1_dma_map m{};
      m.argsz = ChooseArgsz(p, sizeof(m));
      m.flags = p.ConsumeBool() ? p.ConsumeIntegralInRange<uint32_t>(0, 7) : p.ConsumeIntegral<uint32_t>();
      m.vaddr = ChooseVaddr(p);
      m.iova = ChooseIova(p);
      m.size = ChooseSize(p);
      const unsigned long ptr = ChoosePtr(p, &m);
      Inject inj(p, in);
      long r = uapi::Type1MapDma(io, ptr);
      CHECK_INJECTED(inj, r);
      CHECK(r == 0 || r == -EINVAL || r == -EEXIST || r == -ENOSPC || r == -ENOMEM || r == -EFAULT || r == -EPERM ||
                r == -EBUSY || r == -ERANGE || r == -ENOENT,  // ENOENT: VADDR over nothing
            "map " + std::to_string(r));
      if (r != 0) CheckUnchanged(io, b, "MAP_DMA", r, in);
    } else if (op == 1) {
      alignas(8) uint8_t buf[sizeof(vfio_iommu_type1_dma_unmap) + sizeof(vfio_bitmap)] = {};
      auto* u = reinterpret_cast<vfio_iommu_type1_dma_unmap*>(buf);
      auto* bm = reinterpret_cast<vfio_bitmap*>(buf + sizeof(*u));
      u->argsz = ChooseArgsz(p, p.ConsumeBool() ? sizeof(buf) : sizeof(*u));
      if (u->argsz > sizeof(buf)) u->argsz = sizeof(buf);
      u->flags = p.ConsumeBool() ? p.ConsumeIntegralInRange<uint32_t>(0, 7) : p.ConsumeIntegral<uint32_t>();
      u->iova = ChooseIova(p);
      u->size = p.ConsumeBool() ? ChooseSize(p) : 0;
      uint64_t bits[64] = {};
      bm->pgsize = p.ConsumeBool() ? kPage : p.ConsumeIntegral<uint64_t>();
      bm->size = p.ConsumeBool() ? sizeof(bits) : p.ConsumeIntegralInRange<uint64_t>(0, sizeof(bits));
      bm->data = reinterpret_cast<__u64*>(ChoosePtr(p, bits));
      const unsigned long ptr = ChoosePtr(p, buf);
      Inject inj(p, in);
      long r = uapi::Type1UnmapDma(io, ptr);
      CHECK_INJECTED(inj, r);
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -EBUSY || r == -EPERM, "unmap " + std::to_string(r));
      // GET_DIRTY_BITMAP's mid-walk EFAULT keeps 6.1's partial result (design 0003).
      if (r != 0 && !(r == -EFAULT && (u->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)))
        CheckUnchanged(io, b, "UNMAP_DMA", r, in);
    } else {
      alignas(8) uint8_t buf[sizeof(vfio_iommu_type1_dirty_bitmap) + sizeof(vfio_iommu_type1_dirty_bitmap_get)] = {};
      auto* d = reinterpret_cast<vfio_iommu_type1_dirty_bitmap*>(buf);
      auto* get = reinterpret_cast<vfio_iommu_type1_dirty_bitmap_get*>(buf + sizeof(*d));
      d->argsz = ChooseArgsz(p, sizeof(buf));
      if (d->argsz > sizeof(buf)) d->argsz = sizeof(buf);
      static constexpr uint32_t kFlags[] = {VFIO_IOMMU_DIRTY_PAGES_FLAG_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
                                            VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP};
      d->flags = p.ConsumeIntegralInRange<int>(0, 4) ? kFlags[p.ConsumeIntegralInRange<size_t>(0, 2)]
                                                     : p.ConsumeIntegral<uint32_t>();
      uint64_t bits[64] = {};
      get->iova = ChooseIova(p);
      get->size = ChooseSize(p);
      get->bitmap.pgsize = p.ConsumeBool() ? kPage : p.ConsumeIntegral<uint64_t>();
      get->bitmap.size = p.ConsumeBool() ? sizeof(bits) : p.ConsumeIntegralInRange<uint64_t>(0, sizeof(bits));
      get->bitmap.data = reinterpret_cast<__u64*>(ChoosePtr(p, bits));
      const unsigned long ptr = ChoosePtr(p, buf);
      Inject inj(p, in);
      long r = uapi::Type1DirtyPages(io, ptr);
      CHECK_INJECTED(inj, r);
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -EACCES || r == -ENOMEM, "dirty " + std::to_string(r));
      if (r != 0 && !(r == -EFAULT && d->flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP))
        CheckUnchanged(io, b, "DIRTY_PAGES", r, in);
    }
    return vb::Ok();
  });
}

void OpDeviceInfo(FuzzedDataProvider& p, Input& in) {
  int dfd = Pick(p, FdsOf<uapi::DeviceFileObject>(in));
  if (dfd < 0) return;
  alignas(8) uint8_t buf[1024] = {};
  switch (p.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: {
      auto* i = reinterpret_cast<vfio_device_info*>(buf);
      i->argsz = std::min<uint32_t>(ChooseArgsz(p, sizeof(*i)), sizeof(buf));
      long r = Ioctl(dfd, VFIO_DEVICE_GET_INFO, ChoosePtr(p, buf));
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT, std::to_string(r));
      break;
    }
    case 1: {
      auto* i = reinterpret_cast<vfio_region_info*>(buf);
      i->argsz = std::min<uint32_t>(ChooseArgsz(p, sizeof(*i)), sizeof(buf));
      i->index = p.ConsumeIntegralInRange<uint32_t>(0, 10);
      const unsigned long ptr = ChoosePtr(p, buf);
      Inject inj(p, in);
      long r = Ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, ptr);
      CHECK_INJECTED(inj, r);
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -ENOMEM, std::to_string(r));
      break;
    }
    case 2: {
      auto* i = reinterpret_cast<vfio_irq_info*>(buf);
      i->argsz = std::min<uint32_t>(ChooseArgsz(p, sizeof(*i)), sizeof(buf));
      i->index = p.ConsumeIntegralInRange<uint32_t>(0, 6);
      long r = Ioctl(dfd, VFIO_DEVICE_GET_IRQ_INFO, ChoosePtr(p, buf));
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT, std::to_string(r));
      break;
    }
    default: {
      auto* f = reinterpret_cast<vfio_device_feature*>(buf);
      f->argsz = std::min<uint32_t>(ChooseArgsz(p, sizeof(*f)), sizeof(buf));
      f->flags = p.ConsumeIntegral<uint32_t>();
      long r = Ioctl(dfd, VFIO_DEVICE_FEATURE, ChoosePtr(p, buf));
      CHECK(r == -EINVAL || r == -EFAULT || r == -ENOTTY, std::to_string(r));
    }
  }
}

void OpRegionRw(FuzzedDataProvider& p, Input& in) {
  int dfd = Pick(p, FdsOf<uapi::DeviceFileObject>(in));
  if (dfd < 0) return;
  auto obj = Obj(dfd);
  const uint64_t index = p.ConsumeIntegralInRange<uint64_t>(0, 9);
  const uint64_t off = p.ConsumeBool() ? p.ConsumeIntegralInRange<uint64_t>(0, 0x100) : p.ConsumeIntegral<uint32_t>();
  const size_t len = p.ConsumeIntegralInRange<size_t>(0, 64);
  alignas(8) uint8_t buf[64];
  const off_t offset = static_cast<off_t>((index << 40) + off);
  ssize_t r;
  if (p.ConsumeBool()) {
    std::vector<uint8_t> data = p.ConsumeBytes<uint8_t>(len);
    data.resize(len);
    if (len) std::memcpy(buf, data.data(), len);
    const void* src = p.ConsumeIntegralInRange<int>(0, 15) ? buf : g->arena + kArenaRw + kArenaRo;
    Inject inj(p, in);
    r = obj->Pwrite(src, len, offset);
    CHECK_INJECTED(inj, r);
  } else {
    void* dst = p.ConsumeIntegralInRange<int>(0, 15) ? buf : g->arena + kArenaRw;
    Inject inj(p, in);
    r = obj->Pread(dst, len, offset);
    CHECK_INJECTED(inj, r);
  }
  CHECK(r >= 0 || r == -EINVAL || r == -EFAULT || r == -EIO || r == -ENODEV || r == -ENOMEM, std::to_string(r));
}

// Loads and stores through a region mapping, as a driver makes them: on register pages each one
// is trapped and emulated (one device access of its width), on memory pages it is memory. With
// memory decode off, or a device removed by surprise, the answer is the kernel's: SIGBUS (caught
// here through the program's handler, as a program would) or all-ones. Stores go only where they
// start nothing asynchronous (the test endpoint's scratch window, or memory BARs), so the DMA
// oracle stays exact.
thread_local sigjmp_buf* volatile t_mmio_jump = nullptr;
void MmioJump(int, siginfo_t*, void*) { siglongjmp(*t_mmio_jump, 1); }

void OpMmio(FuzzedDataProvider& p, Input& in) {
  if (in.maps.empty()) return;
  const Input::Map& m = in.maps[p.ConsumeIntegralInRange<size_t>(0, in.maps.size() - 1)];
  const unsigned width = 1u << p.ConsumeIntegralInRange<int>(0, 3);
  const uint64_t at = p.ConsumeIntegralInRange<uint64_t>(0, m.length - width);
  const uint64_t region_off = (m.offset & ((uint64_t{1} << 40) - 1)) + at;
  const bool registers = static_cast<bool>(faults::TrapMap::Global().Find(reinterpret_cast<uint64_t>(m.addr) + at));
  const bool window = m.test_endpoint && (m.offset >> 40) == 2 &&
                      region_off >= devices::TestEndpoint::kScratchWindow &&
                      region_off + width <= devices::TestEndpoint::kScratchWindow + devices::TestEndpoint::kScratchWindowSize;
  const bool write = p.ConsumeBool() && (window || !registers);
  const uint64_t value = p.ConsumeIntegral<uint64_t>();
  volatile uint8_t* where = static_cast<volatile uint8_t*>(m.addr) + at;
  struct sigaction act {}, old {};
  act.sa_sigaction = &MmioJump;
  act.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  faults::FaultDispatcher::ProgramSigaction(SIGBUS, &act, &old);
  sigjmp_buf jb;
  bool bus_error = false;
  if (sigsetjmp(jb, 1) == 0) {
    t_mmio_jump = &jb;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    switch (width) {
      case 1: if (write) *where = static_cast<uint8_t>(value); else (void)*where; break;
      case 2: if (write) *reinterpret_cast<volatile uint16_t*>(where) = static_cast<uint16_t>(value);
              else (void)*reinterpret_cast<volatile uint16_t*>(where); break;
      case 4: if (write) *reinterpret_cast<volatile uint32_t*>(where) = static_cast<uint32_t>(value);
              else (void)*reinterpret_cast<volatile uint32_t*>(where); break;
      default: if (write) *reinterpret_cast<volatile uint64_t*>(where) = value;
               else (void)*reinterpret_cast<volatile uint64_t*>(where); break;
    }
  } else {
    bus_error = true;
  }
  t_mmio_jump = nullptr;
  faults::FaultDispatcher::ProgramSigaction(SIGBUS, &old, nullptr);
  // Only a trapped access can be a bus error (decode off); memory pages never are.
  CHECK(!bus_error || registers, "SIGBUS from a memory page");
}

void OpMmap(FuzzedDataProvider& p, Input& in) {
  int dfd = Pick(p, FdsOf<uapi::DeviceFileObject>(in));
  if (dfd < 0) return;
  const uint64_t index = p.ConsumeIntegralInRange<uint64_t>(0, 9);
  const uint64_t off = p.ConsumeBool() ? kPage * p.ConsumeIntegralInRange<uint64_t>(0, 4) : p.ConsumeIntegral<uint32_t>();
  const size_t len = p.ConsumeBool() ? kPage * p.ConsumeIntegralInRange<size_t>(1, 8) : p.ConsumeIntegral<uint32_t>();
  const int flags = p.ConsumeIntegralInRange<int>(0, 3) ? MAP_SHARED : MAP_PRIVATE;
  const int prot = p.ConsumeBool() ? PROT_READ : PROT_READ | PROT_WRITE;
  int err = 0;
  void* a = Obj(dfd)->Mmap(nullptr, len, prot, flags, static_cast<off_t>((index << 40) + off), &err);
  if (a == MAP_FAILED) {
    CHECK(err == EINVAL || err == ENOMEM || err == ENODEV || err == EIO || err == EACCES, std::to_string(err));
    return;
  }
  CHECK(err == 0);
  const std::string& name = static_cast<uapi::DeviceFileObject*>(Obj(dfd).get())->device_file().device().name();
  bool ep = false;
  for (const auto& k : kDevices) ep |= k.replug == Kind::kTestEndpoint && name == k.name;
  in.maps.push_back(Input::Map{a, len, (index << 40) + off, ep});
  // The mapping is used at once (loads and stores through it; trapped on register pages). Called
  // from here rather than as an op of its own so that the seed corpus keeps its op numbering.
  OpMmio(p, in);
}

void OpSetIrqs(FuzzedDataProvider& p, Input& in) {
  int dfd = Pick(p, FdsOf<uapi::DeviceFileObject>(in));
  if (dfd < 0) return;
  alignas(8) uint8_t buf[sizeof(vfio_irq_set) + 8 * sizeof(int32_t)] = {};
  auto* s = reinterpret_cast<vfio_irq_set*>(buf);
  static constexpr uint32_t kData[] = {VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD};
  static constexpr uint32_t kAction[] = {VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK,
                                         VFIO_IRQ_SET_ACTION_TRIGGER};
  s->flags = p.ConsumeIntegralInRange<int>(0, 7) ? kData[p.ConsumeIntegralInRange<size_t>(0, 2)] |
                                                       kAction[p.ConsumeIntegralInRange<size_t>(0, 2)]
                                                 : p.ConsumeIntegral<uint32_t>();
  s->index = p.ConsumeIntegralInRange<uint32_t>(0, 5);
  s->start = p.ConsumeIntegralInRange<uint32_t>(0, 3);
  s->count = p.ConsumeBool() ? p.ConsumeIntegralInRange<uint32_t>(0, 8) : p.ConsumeIntegral<uint32_t>();
  s->argsz = std::min<uint32_t>(ChooseArgsz(p, sizeof(buf)), sizeof(buf));
  for (int i = 0; i < 8; ++i) {
    int32_t v;
    switch (p.ConsumeIntegralInRange<int>(0, 5)) {
      case 0: v = -1; break;
      case 1: v = g->not_eventfd; break;
      case 2: v = 1 << 20; break;
      default: v = g->eventfds[i & 1];
    }
    if (s->flags & VFIO_IRQ_SET_DATA_BOOL)
      buf[sizeof(vfio_irq_set) + i] = p.ConsumeBool();
    else
      std::memcpy(buf + sizeof(vfio_irq_set) + i * 4, &v, 4);
  }
  const unsigned long ptr = ChoosePtr(p, buf);
  Inject inj(p, in);
  long r = Ioctl(dfd, VFIO_DEVICE_SET_IRQS, ptr);
  CHECK_INJECTED(inj, r);
  CHECK(r >= 0 || r == -EINVAL || r == -EFAULT || r == -ENOTTY || r == -EBADF || r == -ENOMEM || r == -EIO ||
            r == -ENODEV,
        std::to_string(r));
}

// VFIO_DEVICE_IOEVENTFD: any region and offset, sizes from the mask or random flags, odd argsz,
// data often a small value (a doorbell vector), eventfds / -1 (delete) / bad fds. The eventfds are
// never signalled here: an asynchronous BAR write (a DMA start) would race the DMA oracle. Fires
// are covered by vfio_pci_ioeventfd_test under TSan.
void OpIoeventfd(FuzzedDataProvider& p, Input& in) {
  int dfd = Pick(p, FdsOf<uapi::DeviceFileObject>(in));
  if (dfd < 0) return;
  alignas(8) uint8_t buf[64] = {};
  vfio_device_ioeventfd e{};
  e.argsz = std::min<uint32_t>(p.ConsumeIntegralInRange<int>(0, 7) ? sizeof(e) : ChooseArgsz(p, sizeof(e)), sizeof(buf));
  e.flags = p.ConsumeIntegralInRange<int>(0, 7) ? 1u << p.ConsumeIntegralInRange<int>(0, 3) : p.ConsumeIntegral<uint32_t>();
  const uint64_t index = p.ConsumeIntegralInRange<uint64_t>(0, 9);
  e.offset = (index << 40) + (p.ConsumeBool() ? p.ConsumeIntegralInRange<uint64_t>(0, 0x40)
                                              : p.ConsumeIntegral<uint32_t>() & ((uint64_t{1} << 24) - 1));
  e.data = p.ConsumeBool() ? p.ConsumeIntegralInRange<uint64_t>(0, 8) : p.ConsumeIntegral<uint64_t>();
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: case 1: e.fd = -1; break;
    case 2: e.fd = g->not_eventfd; break;
    case 3: e.fd = 1 << 20; break;
    case 4: e.fd = p.ConsumeIntegral<int32_t>(); break;
    default: e.fd = g->io_eventfds[p.ConsumeBool()];
  }
  std::memcpy(buf, &e, sizeof(e));
  const unsigned long ptr = ChoosePtr(p, buf);
  Inject inj(p, in);
  long r = Ioctl(dfd, VFIO_DEVICE_IOEVENTFD, ptr);
  CHECK_INJECTED(inj, r);
  CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -EEXIST || r == -ENODEV || r == -ENOSPC || r == -EBADF ||
            r == -ENOMEM || r == -ENOTTY,
        std::to_string(r));
}

void OpReset(FuzzedDataProvider& p, Input& in) {
  int dfd = Pick(p, FdsOf<uapi::DeviceFileObject>(in));
  if (dfd < 0) return;
  switch (p.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: {
      long r = Ioctl(dfd, VFIO_DEVICE_RESET, 0ul);
      CHECK(r == 0 || r == -ENOTTY || r == -EINVAL || r == -EIO || r == -ENODEV || r == -EAGAIN, std::to_string(r));
      break;
    }
    case 1: {
      alignas(8) uint8_t buf[sizeof(vfio_pci_hot_reset_info) + 8 * sizeof(vfio_pci_dependent_device)] = {};
      auto* h = reinterpret_cast<vfio_pci_hot_reset_info*>(buf);
      h->argsz = std::min<uint32_t>(ChooseArgsz(p, sizeof(buf)), sizeof(buf));
      long r = Ioctl(dfd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, ChoosePtr(p, buf));
      CHECK(r == 0 || r == -ENOSPC || r == -EINVAL || r == -EFAULT || r == -ENODEV || r == -EPERM || r == -ENOTTY,
            std::to_string(r));
      break;
    }
    default: {
      alignas(8) uint8_t buf[sizeof(vfio_pci_hot_reset) + 4 * sizeof(int32_t)] = {};
      auto* h = reinterpret_cast<vfio_pci_hot_reset*>(buf);
      h->argsz = sizeof(buf);
      h->flags = p.ConsumeIntegralInRange<int>(0, 7) ? 0 : p.ConsumeIntegral<uint32_t>();
      h->count = p.ConsumeIntegralInRange<uint32_t>(0, 4);
      for (uint32_t i = 0; i < 4; ++i) {
        int32_t fd = p.ConsumeBool() ? Pick(p, FdsOf<uapi::GroupFileObject>(in)) : Pick(p, in.fds);
        std::memcpy(buf + sizeof(*h) + i * 4, &fd, 4);
      }
      long r = Ioctl(dfd, VFIO_DEVICE_PCI_HOT_RESET, ChoosePtr(p, buf));
      CHECK(r == 0 || r == -EINVAL || r == -EFAULT || r == -EBADF || r == -ENODEV || r == -EPERM || r == -ENOTTY ||
                r == -EBUSY || r == -EIO || r == -EAGAIN,
            std::to_string(r));
    }
  }
}

// Which type1 backend of this input (if any) has `group` in one of its domains.
t1::Iommu* IommuHolding(const Input& in, const iommu::Group& group) {
  t1::Iommu* found = nullptr;
  ForEachIommu(in, [&](t1::Iommu& io) {
    if (io.DomainOf(group)) found = &io;
  });
  return found;
}

// A DMA by a device, checked against the records of the container its group is attached to.
void OpDeviceDma(FuzzedDataProvider& p, Input& in) {
  const size_t di = p.ConsumeIntegralInRange<size_t>(0, kNumDevices - 1);
  const uint64_t iova = ChooseIova(p);
  const size_t len = p.ConsumeIntegralInRange<size_t>(1, 3 * kPage);
  const bool write = p.ConsumeBool();
  if (AnyUnplugInFlight(in)) return;
  vb::RefPtr<hw::Device> dev = g->sys->machine().FindDevice(kDevices[di].name);
  if (!dev || !dev->present()) return;
  vb::RefPtr<iommu::Group> grp = g->sys->iommu_core().GroupOf(*dev);
  if (!grp) return;
  const iommu::DomainType dt = grp->current_domain_type();
  // An identity default domain reaches all of memory: a kernel-owned device, not ours to test.
  if (dt == iommu::DomainType::kIdentity) return;
  // A paging default domain (the DMA-API domain) into which no kernel driver mapped anything
  // reaches nothing; type1's domains reach what the holding container's records say.
  const bool in_default = grp->IsCurrentDomain(grp->default_domain());
  if (in_default && grp->default_domain().page_table() && grp->default_domain().page_table()->mapped_bytes() != 0)
    return;
  // The model: allowed iff every byte lies in records of the holding container with permission.
  t1::Iommu* io = dt == iommu::DomainType::kPaging && !in_default ? IommuHolding(in, *grp) : nullptr;
  if (dt == iommu::DomainType::kPaging && !in_default && !io) return;  // a container we cannot see
  bool allowed = io != nullptr;
  std::vector<std::pair<uint64_t, uint64_t>> pieces;  // (pinned address, length) in order
  if (io) {
    const auto maps = io->MappingsForTest();
    uint64_t a = iova, left = len;
    while (allowed && left) {
      const t1::Iommu::MappingView* m = nullptr;
      for (const auto& v : maps)
        if (a >= v.iova && a - v.iova < v.size) m = &v;
      if (!m || !m->iommu_mapped || !(m->prot & (write ? t1::kProtWrite : t1::kProtRead))) {
        allowed = false;
        break;
      }
      uint64_t n = std::min<uint64_t>(left, m->size - (a - m->iova));
      pieces.emplace_back(m->pinned + (a - m->iova), n);
      a += n;
      left -= n;
      if (left && a == 0) allowed = false;  // wrapped
    }
  }
  if (iova + len < iova) allowed = false;
  g->sys->machine().executor().Drain();  // device models' own DMA (edu) settles first
  iommu::FaultLog& log = g->sys->iommu_core().IommuOf(*dev)->fault_log();
  log.Clear();
  const uint8_t* base = g->arena;
  // Resynchronize the shadow with what device models (edu's engine) legitimately wrote.
  std::memcpy(g->shadow.data(), base, g->shadow.size());
  std::vector<uint8_t> data(len);
  for (size_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(p.ConsumeIntegral<uint8_t>() ^ i);
  vb::Result<void> r = write ? dev->dma().Write(iova, data.data(), len) : dev->dma().Read(iova, data.data(), len);
  if (allowed) {
    CHECK(r.has_value(), std::string("DMA the records allow failed at iova ") + std::to_string(iova));
    CHECK(log.size() == 0);
    uint64_t off = 0;
    for (auto [host, n] : pieces) {
      // Pinned pages are in the arena (MAP_DMA only pins what it could check).
      const uint64_t ab = reinterpret_cast<uint64_t>(base);
      CHECK(host >= ab && host + n <= ab + g->shadow.size(), "pinned outside the arena");
      if (write) {
        CHECK(std::memcmp(reinterpret_cast<void*>(host), data.data() + off, n) == 0, "DMA write did not land");
        std::memcpy(g->shadow.data() + (host - ab), data.data() + off, n);
      } else {
        CHECK(std::memcmp(reinterpret_cast<void*>(host), data.data() + off, n) == 0, "DMA read wrong bytes");
      }
      off += n;
    }
  } else {
    CHECK(!r.has_value(), std::string("DMA outside the records succeeded at iova ") + std::to_string(iova));
    CHECK(r.error().errnum == EFAULT || r.error().errnum == EINVAL, std::to_string(r.error().errnum));
    if (r.error().errnum == EFAULT) CHECK(log.size() == 1, "fault not logged");
  }
  CHECK(std::memcmp(base, g->shadow.data(), g->shadow.size()) == 0, "DMA changed bytes it must not");
}

vb::Result<void> Replug(size_t di) {
  vb::RefPtr<hw::PciDevice> dev;
  hw::PciAddress addr;
  const std::string name = kDevices[di].name;
  addr.bus = static_cast<uint8_t>(std::stoi(name.substr(5, 2), nullptr, 16));
  addr.devfn = hw::MakeDevfn(static_cast<uint8_t>(std::stoi(name.substr(8, 2), nullptr, 16)),
                             static_cast<uint8_t>(name[11] - '0'));
  if (kDevices[di].replug == Kind::kEdu) dev = TRY(devices::Edu::Create(addr));
  else dev = TRY(devices::TestEndpoint::Create(addr));
  TRY(g->sys->machine().AddPciDevice(dev));
  TRY(g->sys->machine().BindDriver(*dev, g->sys->DriverNamed("vfio-pci")));
  g->group_ids[di] = g->sys->iommu_core().GroupOf(*dev)->id();
  return vb::Ok();
}

void OpUnplug(FuzzedDataProvider& p, Input& in) {
  const size_t di = p.ConsumeIntegralInRange<size_t>(0, kNumDevices - 1);
  const auto kind = p.ConsumeBool() ? hw::RemovalKind::kSurprise : hw::RemovalKind::kOrderly;
  if (kDevices[di].replug == Kind::kNone || in.unplugged[di]) return;
  vb::RefPtr<hw::Device> dev = g->sys->machine().FindDevice(kDevices[di].name);
  if (!dev) return;
  in.unplugged[di] = true;
  auto u = std::make_unique<Unplug>();
  u->dev = di;
  u->hw = dev;
  u->kind = kind;
  remover->Post(u.get());
  in.unplugs.push_back(std::move(u));
  if (p.ConsumeBool()) {
    // Sometimes wait a moment, so that later steps see the device gone (a removal of a device
    // with no open fds finishes at once).
    for (int i = 0; i < 20 && !in.unplugs.back()->done.load(); ++i) std::this_thread::yield();
  }
}

void Finish(Input& in) {
  for (const Input::Map& m : in.maps) {
    faults::TrapMap::Global().Remove(reinterpret_cast<uint64_t>(m.addr), m.length);  // as munmap's hook
    munmap(m.addr, m.length);
  }
  for (int fd : in.fds) CHECK(FdTable::Global().Close(fd) == 0);
  in.fds.clear();
  remover->WaitIdle();
  in.containers.clear();
  for (auto& u : in.unplugs) {
    auto r = Replug(u->dev);
    if (!r.has_value()) Die("replug", r.error().ToString());
  }
  g->sys->machine().executor().Drain();
  std::memcpy(g->shadow.data(), g->arena, g->shadow.size());
  CHECK(FdTable::Global().size() == g->fd_table_size, std::to_string(FdTable::Global().size()));
  CHECK(t1::LockedMemory::ForProcess().locked_bytes() == 0, std::to_string(t1::LockedMemory::ForProcess().locked_bytes()));
  CHECK(vb::LiveCount<vfio::Container>::live() == g->containers);
  CHECK(vb::LiveCount<vfio::GroupFile>::live() == g->group_files);
  CHECK(vb::LiveCount<vfio::DeviceFile>::live() == g->device_files);
  CHECK(vb::LiveCount<t1::Iommu>::live() == g->iommus);
  CHECK(vb::LiveCount<iommu::Domain>::live() == g->domains);
  CHECK(vb::LiveCount<vfio::Group>::live() == g->groups);
  CHECK(vb::LiveCount<vfio::Device>::live() == g->devices);
  CHECK(g->sys->machine().Devices().size() == g->machine_devices);
  for (const auto& grp : g->sys->vfio().Groups()) {
    CHECK(!grp->attached_to_container());
    for (const auto& d : grp->Devices()) CHECK(d->open_count() == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Init();
  InitRemover();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  Input in;
  for (int step = 0; step < 64 && p.remaining_bytes() > 0; ++step) {
    switch (p.ConsumeIntegralInRange<int>(0, 18)) {
      case 0: case 1: OpOpen(p, in); break;
      case 2: OpClose(p, in); break;
      case 3: OpDup(p, in); break;
      case 4: OpSetContainer(p, in); break;
      case 5: OpSimpleGroup(p, in); break;
      case 6: OpGetDevice(p, in); break;
      case 7: OpContainerSimple(p, in); break;
      case 8: case 9: OpMapUnmapDirty(p, in); break;
      case 10: OpDeviceInfo(p, in); break;
      case 11: OpRegionRw(p, in); break;
      case 12: OpMmap(p, in); break;
      case 13: OpSetIrqs(p, in); break;
      case 14: OpReset(p, in); break;
      case 15: case 16: OpDeviceDma(p, in); break;
      case 17: OpUnplug(p, in); break;
      case 18: OpIoeventfd(p, in); break;
    }
    CheckStep(in);
  }
  Finish(in);
  return 0;
}
