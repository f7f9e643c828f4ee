#include "preload/sysfs_tree.h"

#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "preload/fake_backend.h"
#include "preload/path_rewriter.h"

namespace preload {
namespace {

class SysfsTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/vb-sysfs-test-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    root_ = t;
    FakeBackend fake;
    auto tree = GenerateSysfsTree(fake.Describe(), root_);
    ASSERT_TRUE(tree.has_value()) << tree.error().ToString();
    tree_ = *tree;
  }
  void TearDown() override { RemoveTree(root_); }

  std::string Read(const std::string& sys_path) {
    std::ifstream f(root_ + sys_path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  std::string Link(const std::string& sys_path) {
    char buf[PATH_MAX];
    ssize_t n = readlink((root_ + sys_path).c_str(), buf, sizeof buf);
    return n < 0 ? "" : std::string(buf, n);
  }
  std::string Resolve(const std::string& sys_path) {
    char buf[PATH_MAX];
    if (!realpath((root_ + sys_path).c_str(), buf)) return "";
    std::string r = buf;
    return r.substr(0, root_.size()) == root_ ? r.substr(root_.size()) : "outside:" + r;
  }

  std::string root_;
  GeneratedTree tree_;
};

TEST(RelativeLinkTarget, ClimbsToTheCommonAncestorLikeSysfs) {
  EXPECT_EQ(RelativeLinkTarget("/sys/bus/pci/devices/0000:00:04.0", "/sys/devices/pci0000:00/0000:00:04.0"),
            "../../../devices/pci0000:00/0000:00:04.0");
  EXPECT_EQ(RelativeLinkTarget("/sys/devices/pci0000:00/0000:00:04.0/iommu_group",
                               "/sys/kernel/iommu_groups/3"),
            "../../../kernel/iommu_groups/3");
  EXPECT_EQ(RelativeLinkTarget("/sys/kernel/iommu_groups/3/devices/0000:00:04.0",
                               "/sys/devices/pci0000:00/0000:00:04.0"),
            "../../../../devices/pci0000:00/0000:00:04.0");
}

TEST_F(SysfsTreeTest, AttributeFilesUseTheKernelFormats) {
  const std::string d = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
  EXPECT_EQ(Read(d + "/vendor"), "0x1234\n");
  EXPECT_EQ(Read(d + "/device"), "0x11e8\n");
  EXPECT_EQ(Read(d + "/subsystem_vendor"), "0x1af4\n");
  EXPECT_EQ(Read(d + "/class"), "0x00ff00\n");
  EXPECT_EQ(Read(d + "/revision"), "0x10\n");
  EXPECT_EQ(Read(d + "/irq"), "10\n");
  EXPECT_EQ(Read(d + "/numa_node"), "-1\n");
  EXPECT_EQ(Read(d + "/driver_override"), "(null)\n");
  EXPECT_EQ(Read(d + "/modalias"), "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00\n");
  EXPECT_EQ(Read(d + "/config").size(), 256u);
  EXPECT_EQ(Read(d + "/config").substr(0, 4), std::string("\x34\x12\xe8\x11", 4));
  std::string res = Read(d + "/resource");
  EXPECT_EQ(std::count(res.begin(), res.end(), '\n'), 13);
  EXPECT_EQ(res.substr(0, 57), "0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n");
  struct stat st;
  ASSERT_EQ(stat((root_ + d + "/resource0").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(stat((root_ + d + "/resource1").c_str(), &st), 0);
  std::string bridge_res = Read("/sys/devices/pci0000:00/0000:00:01.0/resource");
  EXPECT_EQ(std::count(bridge_res.begin(), bridge_res.end(), '\n'), 17);
  EXPECT_EQ(Read("/sys/kernel/iommu_groups/7/reserved_regions"),
            "0x00000000fee00000 0x00000000feefffff msi\n");
  EXPECT_EQ(Read("/sys/kernel/iommu_groups/3/type"), "DMA-FQ\n");
  EXPECT_EQ(Read("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit"), "65535\n");
  EXPECT_EQ(Read("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"), "N\n");
}

TEST_F(SysfsTreeTest, SymlinksAreRelativeAndResolveInsideTheTree) {
  const std::string d = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
  EXPECT_EQ(Link(d + "/iommu_group"), "../../../../kernel/iommu_groups/7");
  EXPECT_EQ(Link(d + "/driver"), "../../../../bus/pci/drivers/vfio-pci");
  EXPECT_EQ(Link("/sys/bus/pci/devices/0000:01:00.0"),
            "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  EXPECT_EQ(Resolve("/sys/bus/pci/devices/0000:01:00.0"), d);
  EXPECT_EQ(Resolve("/sys/bus/pci/devices/0000:01:00.0/iommu_group"), "/sys/kernel/iommu_groups/7");
  EXPECT_EQ(Resolve("/sys/bus/pci/devices/0000:01:00.0/subsystem"), "/sys/bus/pci");
  EXPECT_EQ(Resolve("/sys/bus/pci/devices/0000:00:04.0/driver"), "/sys/bus/pci/drivers/vfio-pci");
  EXPECT_EQ(Resolve("/sys/bus/pci/drivers/vfio-pci/0000:01:00.0"), d);
  EXPECT_EQ(Resolve("/sys/kernel/iommu_groups/7/devices/0000:01:00.0"), d);
  EXPECT_EQ(Resolve("/sys/kernel/iommu_groups/3/devices/fake-dma.0"), "/sys/devices/platform/fake-dma.0");
  EXPECT_EQ(Resolve("/sys/devices/platform/fake-dma.0/iommu_group"), "/sys/kernel/iommu_groups/3");
  EXPECT_EQ(Resolve("/sys/bus/pci/drivers/vfio-pci/module"), "/sys/module/vfio_pci");
  EXPECT_EQ(Resolve("/sys/module/vfio_pci/drivers/pci:vfio-pci"), "/sys/bus/pci/drivers/vfio-pci");
  // An unbound-to-VFIO NIC has its own driver directory, and no driver link means unbound.
  EXPECT_EQ(Resolve("/sys/bus/pci/devices/0000:00:03.0/driver"), "/sys/bus/pci/drivers/e1000e");
}

TEST_F(SysfsTreeTest, DevNodesExistForTheContainerAndGroupsWithAVfioMember) {
  ASSERT_EQ(tree_.dev_nodes.size(), 3u);
  EXPECT_EQ(tree_.dev_nodes[0].path, "/dev/vfio/vfio");
  EXPECT_EQ(tree_.dev_nodes[0].rdev, makedev(10, 196));
  EXPECT_EQ(tree_.dev_nodes[1].path, "/dev/vfio/3");
  EXPECT_EQ(tree_.dev_nodes[2].path, "/dev/vfio/7");
  EXPECT_TRUE(S_ISCHR(tree_.dev_nodes[2].mode));
  EXPECT_EQ(access((root_ + "/dev/vfio/7").c_str(), F_OK), 0);
  EXPECT_NE(access((root_ + "/dev/vfio/1").c_str(), F_OK), 0);  // the bridge's group: pcieport
}

TEST_F(SysfsTreeTest, ControlFilesAreKnownByInode) {
  auto find = [&](const std::string& path) -> const ControlFile* {
    struct stat st;
    if (stat((root_ + path).c_str(), &st) != 0) return nullptr;
    auto it = tree_.controls.find(st.st_ino);
    return it == tree_.controls.end() ? nullptr : &it->second;
  };
  const ControlFile* c = find("/sys/bus/pci/devices/0000:00:03.0/driver_override");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->kind, ControlKind::kDriverOverride);
  EXPECT_EQ(c->device, "0000:00:03.0");
  EXPECT_EQ(c->path, "/sys/devices/pci0000:00/0000:00:03.0/driver_override");
  c = find("/sys/bus/pci/drivers/vfio-pci/bind");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->kind, ControlKind::kBind);
  EXPECT_EQ(c->driver, "vfio-pci");
  c = find("/sys/bus/pci/devices/0000:00:03.0/driver/unbind");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->kind, ControlKind::kUnbind);
  EXPECT_EQ(c->driver, "e1000e");
  ASSERT_NE(find("/sys/bus/pci/rescan"), nullptr);
  EXPECT_EQ(find("/sys/bus/pci/devices/0000:00:03.0/vendor"), nullptr);
}

// Issue 14 item 7: a machine with an intel-iommu (dmar-kind) unit gets 6.1's debugfs file, owned
// by the tree (its text is written at each open by the preload library); one without gets none.
TEST(SysfsTree, IntelIommuDebugfsFileOnlyWithADmarUnit) {
  for (bool dmar : {false, true}) {
    char t[] = "/tmp/vb-sysfs-test-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    FakeBackend fake;
    SysfsDescription d = fake.Describe();
    d.intel_iommu_debugfs = dmar;
    auto tree = GenerateSysfsTree(d, t);
    ASSERT_TRUE(tree.has_value()) << tree.error().ToString();
    struct stat st;
    const std::string file = std::string(t) + kDmarDomainTranslationStruct;
    EXPECT_EQ(stat(file.c_str(), &st) == 0, dmar);
    if (dmar) {
      EXPECT_EQ(st.st_mode & 07777, 0444u);
      EXPECT_EQ(st.st_size, 0);
    }
    const bool owned = std::find(tree->owned.begin(), tree->owned.end(), "/sys/kernel/debug/iommu") != tree->owned.end();
    EXPECT_EQ(owned, dmar);
    PathRewriter rw(*tree);
    PathRewriter::Buffers b;
    EXPECT_EQ(rw.Rewrite(kDmarDomainTranslationStruct, &b).ours, dmar);
    EXPECT_FALSE(rw.Rewrite("/sys/kernel/debug/tracing/trace", &b).ours);
    RemoveTree(t);
  }
}

TEST(SysfsTree, MalformedDescriptionsAnswerEinval) {
  char t[] = "/tmp/vb-sysfs-test-XXXXXX";
  ASSERT_NE(mkdtemp(t), nullptr);
  SysfsDescription d;
  d.pci.push_back(PciFunctionDesc{.bdf = "0000:1:0.0"});
  EXPECT_EQ(vb::ErrnoOf(GenerateSysfsTree(d, t)), EINVAL);
  d.pci[0].bdf = "0000:01:00.0";
  d.pci[0].parents = {"0001:00:01.0"};
  EXPECT_EQ(vb::ErrnoOf(GenerateSysfsTree(d, t)), EINVAL);
  RemoveTree(t);
}

TEST_F(SysfsTreeTest, RewriterServesOwnedRootsOnlyAndMapsBack) {
  PathRewriter rw(tree_);
  PathRewriter::Buffers b;
  auto r = rw.Rewrite("/sys/bus/pci/devices/0000:01:00.0/vendor", &b);
  EXPECT_TRUE(r.ours);
  EXPECT_EQ(std::string(r.path), root_ + "/sys/bus/pci/devices/0000:01:00.0/vendor");
  r = rw.Rewrite("//sys/./bus//pci/devices/", &b);
  EXPECT_TRUE(r.ours);
  EXPECT_EQ(std::string(r.path), root_ + "/sys/bus/pci/devices/");
  for (const char* other : {"/sys/devices/system/cpu/online", "/sys/kernel/mm", "/sys/bus/usb",
                            "/sys/bus/pcie", "/sys", "/dev/null", "/dev/vfiox", "sys/bus/pci",
                            "/etc/hostname"}) {
    r = rw.Rewrite(other, &b);
    EXPECT_FALSE(r.ours) << other;
    EXPECT_EQ(r.path, other);
  }
  EXPECT_EQ(rw.Rewrite(nullptr, &b).path, nullptr);
  r = rw.Rewrite("/dev/vfio/7", &b);
  EXPECT_TRUE(r.ours && r.dev_node);
  ASSERT_NE(r.node, nullptr);
  EXPECT_EQ(r.node->path, "/dev/vfio/7");
  r = rw.Rewrite("/dev/vfio/42", &b);
  EXPECT_TRUE(r.dev_node);
  EXPECT_EQ(r.node, nullptr);
  r = rw.Rewrite("/dev/vfio", &b);
  EXPECT_TRUE(r.ours);
  EXPECT_FALSE(r.dev_node);
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/sys/bus/pci", root_.c_str());
  EXPECT_TRUE(rw.MapBack(p));
  EXPECT_STREQ(p, "/sys/bus/pci");
  strcpy(p, "/etc/hostname");
  EXPECT_FALSE(rw.MapBack(p));
  snprintf(p, sizeof p, "%sx/sys", root_.c_str());
  EXPECT_FALSE(rw.MapBack(p));  // a sibling directory with a longer name is not the tree
}

TEST(FakeBackendControl, BindFollowsTheDriverCoreRules) {
  FakeBackend fake;
  auto write = [&](ControlKind kind, std::string device, std::string driver, std::string data) {
    return fake.OnWrite(SysfsWrite{ControlFile{kind, "", "pci", device, driver}, data});
  };
  EXPECT_EQ(write(ControlKind::kBind, "", "vfio-pci", "0000:00:03.0\n"), EBUSY);
  EXPECT_EQ(write(ControlKind::kUnbind, "", "vfio-pci", "0000:00:03.0\n"), ENODEV);
  EXPECT_EQ(write(ControlKind::kDriverOverride, "0000:00:03.0", "", "igb\n"), 0);
  EXPECT_EQ(write(ControlKind::kUnbind, "", "e1000e", "0000:00:03.0\n"), 0);
  EXPECT_EQ(write(ControlKind::kBind, "", "vfio-pci", "0000:00:03.0\n"), ENODEV);  // override
  EXPECT_EQ(write(ControlKind::kDriverOverride, "0000:00:03.0", "", "vfio-pci\n"), 0);
  EXPECT_EQ(write(ControlKind::kDriversProbe, "", "", "0000:00:03.0\n"), 0);
  EXPECT_TRUE(fake.GroupViable(3));
}

}  // namespace
}  // namespace preload

namespace preload {
namespace {

// The per-device debugfs files (6.8+ layout, what the kernel's VFIO selftests open) are named by
// their BDF; nothing else is one.
TEST(SysfsTree, DmarDebugfsDeviceOfNamesOnlyPerDeviceFiles) {
  EXPECT_EQ(DmarDebugfsDeviceOf("/sys/kernel/debug/iommu/intel/0000:09:00.0/domain_translation_struct"), "0000:09:00.0");
  EXPECT_EQ(DmarDebugfsDeviceOf(kDmarDomainTranslationStruct), "");
  EXPECT_EQ(DmarDebugfsDeviceOf("/sys/kernel/debug/iommu/intel//domain_translation_struct"), "");
  EXPECT_EQ(DmarDebugfsDeviceOf("/sys/kernel/debug/iommu/intel/a/b/domain_translation_struct"), "");
  EXPECT_EQ(DmarDebugfsDeviceOf("/sys/kernel/debug/iommu/intel/0000:09:00.0/other"), "");
}

}  // namespace
}  // namespace preload
