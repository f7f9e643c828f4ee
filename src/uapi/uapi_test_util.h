// Test-only: a VFIO machine served through the UAPI layer on real fds, with a fake VFIO bus driver
// ("fake-pci") that exposes 9 regions and 5 IRQ indexes like vfio-pci and records what the UAPI
// layer hands it. Topology as vfio::testing::VfioFixture, except that 01:00.0 is bound to the fake
// driver. Fds are opened through VfioNodeTable into FdTable::Global() and ioctls issued through
// the FileObjects the table names (what the preload library's ioctl() does). Header-only.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/vfio.h>
#include <sys/sysmacros.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "uapi/fd_table.h"
#include "uapi/node_table.h"
#include "vfio/testing/vfio_fixture.h"

namespace uapi::testing {

// A VFIO bus driver with vfio-pci's shape: regions 0..8 (BAR0 16 KiB mmappable holding the MSI-X
// table, BAR2 sparse-mmap'ed, BAR3 with a TYPE cap, config 256 bytes), IRQs INTx(1) MSI(4)
// MSI-X(0) ERR(1) REQ(1).
class FakePciDriver final : public hw::Driver, public vfio::DeviceOps {
 public:
  static constexpr uint64_t kShift = 40;
  static constexpr uint64_t kBar0Size = 0x4000;
  static constexpr uint64_t kBar2Size = 0x4000;

  explicit FakePciDriver(vfio::Vfio& vfio) : vfio_(vfio) {
    memfd_ = static_cast<int>(syscall(SYS_memfd_create, "fake-bar0", 0));
    EXPECT_EQ(ftruncate(memfd_, kBar0Size + kBar2Size), 0);
    std::memset(config_, 0, sizeof(config_));
    config_[0] = 0x86;
    config_[1] = 0x80;
  }
  ~FakePciDriver() override { close(memfd_); }

  std::string_view name() const override { return "fake-pci"; }
  bool driver_managed_dma() const override { return true; }
  vb::Result<void> Probe(hw::Device& dev) override {
    bound_[&dev] = TRY(vfio_.RegisterDevice(dev, *this));
    return vb::Ok();
  }
  void Remove(hw::Device& dev) override {
    auto it = bound_.find(&dev);
    if (it == bound_.end()) return;
    vfio_.UnregisterDevice(*it->second);
    bound_.erase(it);
  }

  std::string_view driver_name() const override { return name(); }
  vfio::DeviceInfo GetInfo(vfio::Device&) override {
    return {VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, 9, 5};
  }
  vb::Result<vfio::RegionInfo> GetRegionInfo(vfio::Device&, uint32_t index) override {
    if (index >= 9) return vb::Err(EINVAL, "fake: region index");
    vfio::RegionInfo r;
    r.offset = uint64_t{index} << kShift;
    const uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    switch (index) {
      case 0:
        r.size = kBar0Size;
        r.flags = rw | VFIO_REGION_INFO_FLAG_MMAP;
        r.msix_mappable = true;
        break;
      case 2:
        r.size = kBar2Size;
        r.flags = rw | VFIO_REGION_INFO_FLAG_MMAP;
        r.has_sparse_mmap = true;
        r.sparse_mmap = {{0, 0x1000}, {0x2000, 0x2000}};
        r.type = std::pair<uint32_t, uint32_t>{0x8086, 3};
        r.msix_mappable = true;
        break;
      case 3:
        r.size = 0x1000;
        r.flags = rw;
        r.type = std::pair<uint32_t, uint32_t>{1, 2};
        break;
      case 7:
        r.size = sizeof(config_);
        r.flags = rw;
        break;
      default:
        break;
    }
    return r;
  }
  vb::Result<vfio::IrqInfo> GetIrqInfo(vfio::Device&, uint32_t index) override {
    switch (index) {
      case 0: return vfio::IrqInfo{VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED, 1};
      case 1: return vfio::IrqInfo{VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 4};
      case 2: return vfio::IrqInfo{VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 0};
      case 3:
      case 4: return vfio::IrqInfo{VFIO_IRQ_INFO_EVENTFD, 1};
      default: return vb::Err(EINVAL, "fake: irq index");
    }
  }
  vb::Result<int> SetIrqs(vfio::Device&, const vfio::SetIrqsRequest& req) override {
    last_irqs = req;
    last_bools.assign(req.bools.begin(), req.bools.end());
    last_fds.assign(req.fds.begin(), req.fds.end());
    ++set_irqs_calls;
    return 0;
  }
  vb::Result<void> Ioeventfd(vfio::Device&, const vfio::IoeventfdRequest& req) override {
    last_ioeventfd = req;
    ++ioeventfd_calls;
    return vb::Ok();
  }
  vb::Result<size_t> Read(vfio::Device&, void* buf, size_t count, uint64_t offset) override {
    if ((offset >> kShift) != 7) return vb::Err(EINVAL, "fake: only config is readable");
    uint64_t pos = offset & ((uint64_t{1} << kShift) - 1);
    if (pos >= sizeof(config_) || count > sizeof(config_) - pos) return vb::Err(EFAULT, "fake: config range");
    std::memcpy(buf, config_ + pos, count);
    return count;
  }
  vb::Result<size_t> Write(vfio::Device&, const void* buf, size_t count, uint64_t offset) override {
    if ((offset >> kShift) != 7) return vb::Err(EINVAL, "fake: only config is writable");
    uint64_t pos = offset & ((uint64_t{1} << kShift) - 1);
    if (pos >= sizeof(config_) || count > sizeof(config_) - pos) return vb::Err(EFAULT, "fake: config range");
    std::memcpy(config_ + pos, buf, count);
    return count;
  }
  vb::Result<vfio::MmapTarget> Mmap(vfio::Device&, uint64_t offset, uint64_t length, int) override {
    uint64_t index = offset >> kShift;
    if (index == 0) return vfio::MmapTarget{memfd_, 0};
    if (index == 2) return vfio::MmapTarget{memfd_, kBar0Size};
    return vb::Err(EINVAL, "fake: not mappable");
  }
  vb::Result<void> Reset(vfio::Device&) override {
    ++resets;
    return vb::Ok();
  }
  vb::Result<std::vector<vfio::HotResetDependent>> GetPciHotResetInfo(vfio::Device&) override {
    if (hot_reset_errno) return vb::Err(hot_reset_errno, "fake: hot reset");
    return std::vector<vfio::HotResetDependent>{{1, 0, 1, 0}, {2, 0, 2, 8, !hot_reset_groupless}};
  }
  vb::Result<vfio::FeatureSupport> Feature(vfio::Device&, uint32_t) override {
    return vb::Err(ENOTTY, "fake: no features");
  }
  vb::Result<void> PciHotReset(vfio::Device&, std::span<vfio::GroupFile* const> groups) override {
    hot_reset_groups.assign(groups.begin(), groups.end());
    return vb::Ok();
  }

  int memfd() const { return memfd_; }

  vfio::SetIrqsRequest last_irqs;
  std::vector<uint8_t> last_bools;
  std::vector<int32_t> last_fds;
  int set_irqs_calls = 0;
  vfio::IoeventfdRequest last_ioeventfd;
  int ioeventfd_calls = 0;
  int resets = 0;
  int hot_reset_errno = 0;
  bool hot_reset_groupless = false;  // the second affected device has no IOMMU group
  std::vector<vfio::GroupFile*> hot_reset_groups;

 private:
  vfio::Vfio& vfio_;
  std::map<const hw::Device*, vb::RefPtr<vfio::Device>> bound_;
  int memfd_ = -1;
  uint8_t config_[256];
};

class UapiFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(machine.SetHooks(&core).has_value());
    Plug("00:01.0", vfio::testing::RootPort(1).Acs(), &pcieport);
    Plug("01:00.0", vfio::testing::Endpoint(), &fake);
    Plug("00:02.0", vfio::testing::RootPort(2).Acs(), &pcieport);
    Plug("02:00.0", vfio::testing::Endpoint().Multi(), &basic);
    Plug("02:00.1", vfio::testing::Endpoint().Multi(), &basic);
    vfio.RegisterBackend(type1);
  }
  void TearDown() override {
    // Close our fds first: device removal waits for every device fd to close.
    for (int fd : fds_) (void)FdTable::Global().Close(fd);
    fds_.clear();
    for (auto& d : machine.Devices()) (void)machine.RemoveDevice(*d);
    (void)machine.SetHooks(nullptr);
  }

  void Plug(const std::string& bdf, const iommu::testtopo::Fn& fn, hw::Driver* driver) {
    auto dev = vfio::testing::MakePci(bdf, fn);
    ASSERT_TRUE(machine.AddPciDevice(dev).has_value()) << bdf;
    ASSERT_TRUE(machine.BindDriver(*dev, *driver).has_value()) << bdf;
  }
  hw::Device& Dev(const std::string& bdf) { return *machine.FindDevice("0000:" + bdf); }
  int GroupIdOf(const std::string& bdf) { return core.GroupOf(Dev(bdf))->id(); }
  std::string GroupPath(const std::string& bdf) { return "/dev/vfio/" + std::to_string(GroupIdOf(bdf)); }

  // open(path): the fd, or -errno.
  int Open(const std::string& path) {
    int err = 0;
    auto obj = nodes.Open(path, O_RDWR, &err);
    if (!obj) return -err;
    int fd = FdTable::Global().Install(std::move(obj), O_CLOEXEC, nodes.Rdev(path).value_or(0));
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }
  int Track(int fd) {
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }
  void Close(int fd) {
    ASSERT_EQ(FdTable::Global().Close(fd), 0);
    std::erase(fds_, fd);
  }
  // ioctl(fd, request, arg): the result, or -errno (what the preload library's ioctl returns
  // before moving the errno into errno).
  static long Ioctl(int fd, unsigned long request, unsigned long arg) {
    FdTable::Entry e = FdTable::Global().Lookup(fd);
    if (e.state != FdTable::State::kOurs) return -EBADF;
    return e.object->Ioctl(request, arg);
  }
  static long Ioctl(int fd, unsigned long request, const void* arg) {
    return Ioctl(fd, request, reinterpret_cast<unsigned long>(arg));
  }
  static std::shared_ptr<FileObject> Obj(int fd) { return FdTable::Global().Lookup(fd).object; }

  // container + group of 01:00.0 attached, type1 v2 (or `type`), and the device fd.
  struct Opened {
    int container = -1, group = -1, device = -1;
  };
  Opened OpenAll(const std::string& bdf = "01:00.0", unsigned long type = VFIO_TYPE1v2_IOMMU) {
    Opened o;
    o.container = Open("/dev/vfio/vfio");
    o.group = Open(GroupPath(bdf));
    EXPECT_GE(o.container, 0);
    EXPECT_GE(o.group, 0);
    EXPECT_EQ(Ioctl(o.group, VFIO_GROUP_SET_CONTAINER, &o.container), 0);
    EXPECT_EQ(Ioctl(o.container, VFIO_SET_IOMMU, type), 0);
    std::string name = "0000:" + bdf;
    o.device = Track(static_cast<int>(Ioctl(o.group, VFIO_GROUP_GET_DEVICE_FD, name.c_str())));
    EXPECT_GE(o.device, 0);
    return o;
  }

  hw::Machine machine;
  iommu::IommuCore core;
  vfio::Vfio vfio{core};
  vfio::type1::Type1Backend type1;
  FakePciDriver fake{vfio};
  vfio::BasicDriver basic{vfio};
  hw::StubDriver pcieport{"pcieport", true};
  VfioNodeTable nodes{vfio};

 private:
  std::vector<int> fds_;
};

// A page readable/writable followed by a PROT_NONE page: pointers near `edge` test EFAULT rows.
struct GuardPage {
  GuardPage() {
    base = static_cast<uint8_t*>(mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(base, MAP_FAILED);
    EXPECT_EQ(mprotect(base + 4096, 4096, PROT_NONE), 0);
    edge = base + 4096;
  }
  ~GuardPage() { munmap(base, 8192); }
  // A T placed so that its first `readable` bytes are readable and the rest is not.
  template <typename T>
  T* At(size_t readable) { return reinterpret_cast<T*>(edge - readable); }
  uint8_t* base;
  uint8_t* edge;
};

// Which bytes of a user buffer an ioctl writes. The buffer (`len` bytes) is filled with a canary,
// the first head.size() bytes replaced by `head` (argsz, index...), and `call(buf)` run twice: once
// over canary 0xA5, once over 0x5A. A byte past the head counts as written unless it holds the
// canary both times (a byte written with a value equal to one canary is still caught by the other
// run). Head bytes are reported as not written: their values are the test's to assert. Returns the
// mask and stores each run's result in *rets.
template <typename Call>
std::vector<bool> WrittenBytes(const std::vector<uint8_t>& head, size_t len, Call call,
                               long (*rets)[2] = nullptr) {
  std::vector<bool> written(len, false);
  const uint8_t canaries[2] = {0xa5, 0x5a};
  std::vector<std::vector<uint8_t>> out;
  for (int run = 0; run < 2; ++run) {
    std::vector<uint8_t> buf(len + 8, canaries[run]);  // alignment slack only
    uint8_t* p = buf.data() + ((8 - reinterpret_cast<uintptr_t>(buf.data()) % 8) % 8);
    std::memset(p, canaries[run], len);
    std::memcpy(p, head.data(), head.size());
    long r = call(p);
    if (rets) (*rets)[run] = r;
    out.emplace_back(p, p + len);
  }
  for (size_t i = head.size(); i < len; ++i)
    written[i] = out[0][i] != canaries[0] || out[1][i] != canaries[1];
  return written;
}

// The half-open ranges [begin, end) of a written-bytes mask, e.g. "[4,16) [24,40)".
inline std::string Ranges(const std::vector<bool>& w) {
  std::string s;
  for (size_t i = 0; i < w.size();) {
    if (!w[i]) { ++i; continue; }
    size_t j = i;
    while (j < w.size() && w[j]) ++j;
    s += (s.empty() ? "" : " ") + std::string("[") + std::to_string(i) + "," + std::to_string(j) + ")";
    i = j;
  }
  return s;
}

// Little-endian bytes of a u32 (argsz, index: the head of most INFO structs).
inline std::vector<uint8_t> U32s(std::initializer_list<uint32_t> v) {
  std::vector<uint8_t> b;
  for (uint32_t x : v)
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(x >> (8 * i)));
  return b;
}

// A UAPI struct with a flexible array member followed by its payload, laid out as user space does.
template <typename H, typename Tail, size_t N = 1>
struct WithTail {
  alignas(8) uint8_t bytes[sizeof(H) + sizeof(Tail) * N] = {};
  H* h() { return reinterpret_cast<H*>(bytes); }
  Tail* t() { return reinterpret_cast<Tail*>(bytes + sizeof(H)); }
};

}  // namespace uapi::testing
