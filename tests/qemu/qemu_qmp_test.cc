// Debian's QEMU 7.2, unmodified, assigns vfiobox devices with -device vfio-pci under
// `vfiobox run` (TCG, -S, QMP on stdio): realize, the ids and BARs QEMU sees, the firmware
// assigning the BARs through our config space, BAR mmap vs the pread/pwrite slow path
// (x-no-mmap=on), and QEMU exiting with its VFIO fds still open. Skipped when QEMU is not
// installed (scripts/setup.sh installs it).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <fstream>
#include <gtest/gtest.h>
#include <thread>

#include "qemu_process.h"

namespace qemutest {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int64_t kUnassigned = -1;

std::vector<std::string> Machine(std::vector<std::string> devices) {
  std::vector<std::string> args = {"-machine", "q35,accel=tcg", "-m", "128", "-nodefaults", "-nographic",
                                   "-display", "none", "-S"};
  for (std::string& d : devices) {
    args.push_back("-device");
    args.push_back(std::move(d));
  }
  return args;
}

// The query-pci entry whose qdev_id is `id` (searching bridges' buses too), or null.
json FindPciDevice(const json& buses, const std::string& id) {
  for (const json& bus : buses) {
    if (!bus.is_object()) continue;
    for (const json& dev : bus.value("devices", json::array())) {
      if (dev.value("qdev_id", "") == id) return dev;
      if (dev.contains("pci_bridge") && dev["pci_bridge"].contains("devices")) {
        json inner = FindPciDevice(json::array({dev["pci_bridge"]}), id);
        if (!inner.is_null()) return inner;
      }
    }
  }
  return nullptr;
}

json BarOf(const json& dev, int bar) {
  if (!dev.is_object()) return nullptr;
  for (const json& r : dev.value("regions", json::array())) {
    if (r.value("bar", -1) == bar) return r;
  }
  return nullptr;
}

// After `cont`, waits (bounded) for SeaBIOS to give BAR `bar` of `id` an address.
int64_t WaitBarAssigned(QemuProcess& q, const std::string& id, int bar) {
  for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
    auto pci = q.Command("query-pci");
    if (!pci) return kUnassigned;
    json r = BarOf(FindPciDevice(*pci, id), bar);
    if (!r.is_null() && r.value("address", kUnassigned) != kUnassigned) return r["address"].get<int64_t>();
    std::this_thread::sleep_for(200ms);
  }
  return kUnassigned;
}

void QuitAndExpectCleanExit(QemuProcess& q) {
  ASSERT_TRUE(q.Command("quit").has_value());
  auto status = q.WaitExit(30s);
  ASSERT_TRUE(status.has_value()) << "QEMU did not exit after quit";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status << "\n" << q.Stderr();
  EXPECT_EQ(q.Stderr().find("IOMMU fault log"), std::string::npos) << q.Stderr();
}

class QemuQmpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (VB_SANITIZED) GTEST_SKIP() << "the preload library is not built for QEMU in sanitizer builds";
    if (FindQemu().empty()) GTEST_SKIP() << "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)";
  }
};

TEST_F(QemuQmpTest, EduRealizesWithItsIdsAndFirmwareAssignsItsBar) {
  QemuProcess q({.qemu_args = Machine({"vfio-pci,host=0000:01:00.0,id=hostdev0"})});
  ASSERT_TRUE(q.started());
  auto pci = q.Command("query-pci");
  ASSERT_TRUE(pci.has_value()) << q.Stderr();
  json dev = FindPciDevice(*pci, "hostdev0");
  ASSERT_FALSE(dev.is_null()) << "realize failed:\n" << q.Stderr();
  EXPECT_EQ(dev["id"]["vendor"], 0x1234);
  EXPECT_EQ(dev["id"]["device"], 0x11e8);
  EXPECT_EQ(dev["class_info"]["class"], 0x00ff);
  json bar0 = BarOf(dev, 0);
  ASSERT_FALSE(bar0.is_null());
  EXPECT_EQ(bar0["type"], "memory");
  EXPECT_EQ(bar0["size"], 1 << 20);
  EXPECT_EQ(bar0["mem_type_64"], false);
  EXPECT_EQ(bar0["address"], kUnassigned) << "stopped with -S: the firmware has not run";
  EXPECT_TRUE(BarOf(dev, 1).is_null() && BarOf(dev, 2).is_null()) << "edu has BAR0 only";

  // QEMU's set-up as the kernel would see it, in order; guest RAM mapped before the device fd.
  std::string trace = q.Stderr();
  long status = FindLine(trace, "VFIO_GROUP_GET_STATUS {argsz=8, flags=0x1} = 0");
  long set_container = FindLine(trace, "VFIO_GROUP_SET_CONTAINER", status);
  long set_iommu = FindLine(trace, "VFIO_SET_IOMMU 3 = 0", set_container);
  long map_ram = FindLine(trace, "VFIO_IOMMU_MAP_DMA {argsz=32, flags=0x3", set_iommu);
  long get_fd = FindLine(trace, "VFIO_GROUP_GET_DEVICE_FD \"0000:01:00.0\"", map_ram);
  long reset = FindLine(trace, "VFIO_DEVICE_RESET  = 0", get_fd);
  EXPECT_GE(status, 0) << trace;
  EXPECT_GT(set_container, status);
  EXPECT_GT(set_iommu, set_container);
  EXPECT_GT(map_ram, set_iommu);
  EXPECT_GT(get_fd, map_ram);
  EXPECT_GT(reset, get_fd);
  EXPECT_GE(FindLine(trace, "VFIO_DEVICE_GET_REGION_INFO {argsz=32, flags=0x7, index=0, cap_offset=0, size=0x100000"), 0)
      << "BAR0: readable, writable, mmappable (a register BAR: trapped, as Linux maps it)";

  long before_cont = std::count(trace.begin(), trace.end(), '\n');
  ASSERT_TRUE(q.Command("cont").has_value());
  int64_t addr = WaitBarAssigned(q, "hostdev0", 0);
  ASSERT_NE(addr, kUnassigned) << "SeaBIOS never assigned BAR0";
  EXPECT_EQ(addr % (1 << 20), 0) << "a BAR is aligned to its size";
  EXPECT_LT(addr, int64_t{1} << 32) << "a 32-bit BAR";
  // The firmware's BAR and COMMAND writes went through vfiobox's config space.
  std::string after = q.Stderr();
  char bar_write[64];
  std::snprintf(bar_write, sizeof bar_write, "pwrite count=4 offset=%#" PRIx64, (uint64_t{7} << 40) + 0x10);
  EXPECT_GE(FindLine(after, bar_write, before_cont), 0) << after;
  std::string info = q.Hmp("info pci");
  char expect[64];
  std::snprintf(expect, sizeof expect, "BAR0: 32 bit memory at %#" PRIx64, static_cast<uint64_t>(addr));
  EXPECT_NE(info.find(expect), std::string::npos) << info;
  QuitAndExpectCleanExit(q);
}

// The test endpoint (PCIe, MSI-X, a mappable 64-bit BAR0 and a register BAR2) behind a root
// port. `no_mmap` adds x-no-mmap=on.
void RunTestEndpoint(bool no_mmap) {
  std::string dev = "vfio-pci,host=0000:07:00.0,id=hostdev0,bus=rp0";
  if (no_mmap) dev += ",x-no-mmap=on";
  QemuProcess q({.qemu_args = Machine({"pcie-root-port,id=rp0,chassis=1", dev})});
  ASSERT_TRUE(q.started());
  ASSERT_NE(q.Hmp("info qtree").find("hostdev0"), std::string::npos) << "realize failed:\n" << q.Stderr();
  // query-pci sees behind the root port once the firmware has numbered its bus.
  ASSERT_TRUE(q.Command("cont").has_value());
  int64_t a0 = WaitBarAssigned(q, "hostdev0", 0), a2 = WaitBarAssigned(q, "hostdev0", 2);
  ASSERT_NE(a0, kUnassigned) << q.Hmp("info pci");
  ASSERT_NE(a2, kUnassigned);
  auto pci = q.Command("query-pci");
  ASSERT_TRUE(pci.has_value());
  json d = FindPciDevice(*pci, "hostdev0");
  ASSERT_FALSE(d.is_null());
  EXPECT_EQ(d["id"]["vendor"], 0x1234);
  EXPECT_EQ(d["id"]["device"], 0x7e57);
  json bar0 = BarOf(d, 0), bar2 = BarOf(d, 2);
  ASSERT_FALSE(bar0.is_null());
  ASSERT_FALSE(bar2.is_null());
  EXPECT_EQ(bar0["size"], 64 << 10);
  EXPECT_EQ(bar0["mem_type_64"], true);
  EXPECT_EQ(bar0["prefetch"], true);
  EXPECT_EQ(bar2["size"], 16 << 10);
  EXPECT_EQ(bar2["mem_type_64"], false);
  EXPECT_EQ(a0 % (64 << 10), 0);
  EXPECT_EQ(a2 % (16 << 10), 0);
  std::string mtree = q.Hmp("info mtree -f");
  bool ramd = mtree.find("0000:07:00.0 BAR 0 mmaps[0]") != std::string::npos;
  EXPECT_EQ(ramd, !no_mmap) << mtree.substr(0, 4000);

  // A guest-physical read of BAR2's id register goes through QEMU's mapping of the register BAR
  // (one trapped 4-byte access) or, with x-no-mmap=on, through pread; a read of BAR0 (memory)
  // takes the slow path only with x-no-mmap=on.
  size_t lines_before = q.Stderr().size();
  char cmd[64];
  std::snprintf(cmd, sizeof cmd, "xp /1wx %#" PRIx64, static_cast<uint64_t>(a2));
  EXPECT_NE(q.Hmp(cmd).find("0x7e570001"), std::string::npos);
  std::snprintf(cmd, sizeof cmd, "xp /1wx %#" PRIx64, static_cast<uint64_t>(a0 + 0x40));
  q.Hmp(cmd);
  std::string fresh = q.Stderr().substr(lines_before);
  EXPECT_EQ(fresh.find("pread count=4 offset=0x20000000000 = 4") != std::string::npos, no_mmap) << fresh;
  EXPECT_EQ(fresh.find("vfio: mmio 0000:07:00.0 read4 BAR2+0 = 0x7e570001") != std::string::npos, !no_mmap) << fresh;
  EXPECT_EQ(fresh.find("pread count=4 offset=0x40 = 4") != std::string::npos, no_mmap) << fresh;

  // A PCIe function: QEMU wires up error reporting (ERR) and the request IRQ (REQ) on eventfds.
  std::string trace = q.Stderr();
  EXPECT_GE(FindLine(trace, "VFIO_DEVICE_GET_IRQ_INFO {argsz=16, flags=0x9, index=3, count=1} = 0"), 0) << trace;
  EXPECT_GE(FindLine(trace, "VFIO_DEVICE_SET_IRQS {argsz=24, flags=0x24, index=3, start=0, count=1"), 0);
  EXPECT_GE(FindLine(trace, "VFIO_DEVICE_SET_IRQS {argsz=24, flags=0x24, index=4, start=0, count=1"), 0);

  // With mmap, QEMU maps the BAR's mmap for peer-to-peer DMA at its bus address.
  char p2p[96];
  std::snprintf(p2p, sizeof p2p, "iova=%#" PRIx64 ", size=0x10000} = 0", static_cast<uint64_t>(a0));
  EXPECT_EQ(q.Stderr().find(p2p) != std::string::npos, !no_mmap) << q.Stderr();
  QuitAndExpectCleanExit(q);
}

TEST_F(QemuQmpTest, TestEndpointBarIsMmappedAndPeerToPeerMapped) { RunTestEndpoint(/*no_mmap=*/false); }

TEST_F(QemuQmpTest, XNoMmapSendsEveryBarAccessThroughPreadPwrite) { RunTestEndpoint(/*no_mmap=*/true); }

TEST_F(QemuQmpTest, NonViableGroupFailsRealizeWithTheKernelsMessage) {
  // Group 4 holds 02:00.1 bound to a kernel driver (kernel-dma): not viable, so QEMU refuses the device.
  QemuProcess q({.qemu_args = Machine({"vfio-pci,host=0000:02:00.0,id=hostdev0"})});
  auto status = q.WaitExit(60s);
  ASSERT_TRUE(status.has_value()) << "QEMU should exit when realize fails";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0);
  EXPECT_NE(q.Stderr().find("not viable"), std::string::npos) << q.Stderr();
}

TEST_F(QemuQmpTest, KillingVfioboxRunTakesQemuWithIt) {
  QemuProcess q({.trace = false, .qemu_args = Machine({"vfio-pci,host=0000:01:00.0,id=hostdev0"})});
  ASSERT_TRUE(q.Command("query-status").has_value());
  // QEMU is vfiobox run's only child.
  std::ifstream children("/proc/" + std::to_string(q.pid()) + "/task/" + std::to_string(q.pid()) + "/children");
  pid_t qemu = 0;
  children >> qemu;
  ASSERT_GT(qemu, 0);
  ASSERT_EQ(kill(q.pid(), SIGKILL), 0);
  ASSERT_TRUE(q.WaitExit(10s).has_value());
  bool gone = false;
  for (int i = 0; i < 250 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(qemu) + "/stat");
    std::string s;
    std::getline(stat, s);
    gone = !stat.good() || s.find(") Z ") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(gone) << "QEMU outlived vfiobox run";
}

}  // namespace
}  // namespace qemutest
