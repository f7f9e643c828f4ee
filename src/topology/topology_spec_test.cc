#include "topology/topology_spec.h"

#include <gtest/gtest.h>

namespace topology {
namespace {

std::string ErrorOf(const std::string& text) {
  ParseError err;
  auto t = ParseTopology(text, "t.json", &err);
  EXPECT_FALSE(t.has_value());
  return err.message;
}

TEST(TopologySpec, DefaultMachineParsesWithEveryGroupingCase) {
  TopologySpec t = DefaultTopology();
  ASSERT_GE(t.iommus.size(), 2u);
  // The instances differ in page sizes, aperture, coherency enforcement and MSI isolation.
  EXPECT_NE(t.iommus[0].pgsize_bitmap, t.iommus[1].pgsize_bitmap);
  bool some_unisolated = false;
  for (auto& i : t.iommus) some_unisolated |= !i.msi_isolated;
  EXPECT_TRUE(some_unisolated);
  bool edu = false, p2p_bridge = false, upstream = false, multifunction = false, kernel_driver = false;
  for (auto& d : t.pci) {
    edu |= d.type == "edu";
    p2p_bridge |= d.type == "pcie-to-pci-bridge";
    upstream |= d.type == "switch-upstream";
    multifunction |= d.multifunction;
    kernel_driver |= !d.driver.empty() && d.driver != "vfio-pci" && d.driver != "pcieport" && d.driver != "pci-stub";
  }
  EXPECT_TRUE(edu && p2p_bridge && upstream && multifunction && kernel_driver);
  size_t ioat = 0;
  for (auto& d : t.pci) ioat += d.type == "ioat";
  EXPECT_EQ(ioat, 1u) << "one CBDMA function for the VFIO selftests' ioat driver";
  ASSERT_EQ(t.platform.size(), 1u);
  EXPECT_FALSE(t.platform[0].shares_group_with.empty());
}

TEST(TopologySpec, IoatExpandsFunctionsAndChecksItsKeys) {
  ParseError err;
  auto t = ParseTopology(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:01.0","type":"root-port","secondary_bus":1},
    {"bdf":"01:00.0","type":"ioat","functions":8,"xfercap":"0x14"}]})", "t.json", &err);
  ASSERT_TRUE(t.has_value()) << err.message;
  ASSERT_EQ(t->pci.size(), 9u);
  for (int f = 0; f < 8; ++f) {
    EXPECT_EQ(t->pci[1 + f].address.ToString(), "0000:01:00." + std::to_string(f));
    EXPECT_TRUE(t->pci[1 + f].multifunction);
    EXPECT_EQ(t->pci[1 + f].xfercap, 20);
  }
  auto one = ParseTopology(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.0","type":"ioat"}]})", "t.json", &err);
  ASSERT_TRUE(one.has_value()) << err.message;
  EXPECT_FALSE(one->pci[0].multifunction);
  EXPECT_EQ(one->pci[0].xfercap, 16);
  EXPECT_EQ(ErrorOf(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.0","type":"ioat","functions":9}]})"),
            "t.json: /pci/0/functions: 9 is out of range (max 8)");
  EXPECT_EQ(ErrorOf(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.0","type":"ioat","functions":0}]})"),
            "t.json: /pci/0/functions: must be between 1 and 8");
  EXPECT_EQ(ErrorOf(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.1","type":"ioat","functions":2}]})"),
            "t.json: /pci/0/bdf: a multi-function device starts at function 0");
  EXPECT_EQ(ErrorOf(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.0","type":"edu","functions":2}]})"),
            "t.json: /pci/0/functions: only ioat devices expand into functions");
  EXPECT_EQ(ErrorOf(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.0","type":"ioat","xfercap":0}]})"),
            "t.json: /pci/0/xfercap: must be between 1 and 31");
  EXPECT_EQ(ErrorOf(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.0","type":"edu","xfercap":12}]})"),
            "t.json: /pci/0/xfercap: only ioat devices have a transfer capacity");
  // Two entries that expand onto the same function are caught as a reused address.
  EXPECT_EQ(ErrorOf(R"({"iommus":[{"name":"a"}],"pci":[{"bdf":"00:03.0","type":"ioat","functions":2},
                                                      {"bdf":"00:03.1","type":"edu"}]})"),
            "t.json: /pci/1/bdf: address used twice");
}

TEST(TopologySpec, InheritsIommuAndDefaultsPortDriver) {
  ParseError err;
  auto t = ParseTopology(R"({"iommus":[{"name":"a"},{"name":"b"}],
    "pci":[{"bdf":"00:01.0","type":"root-port","secondary_bus":1,"iommu":"b"},
           {"bdf":"01:00.0","type":"edu"},
           {"bdf":"00:02.0","type":"endpoint"}]})", "t", &err);
  ASSERT_TRUE(t.has_value()) << err.message;
  EXPECT_EQ(t->pci[0].driver, "pcieport");
  EXPECT_EQ(t->pci[1].iommu, "b");
  EXPECT_EQ(t->pci[2].iommu, "a");
}

// The IOMMU driver an instance behaves as (docs/design/0010-iommu-driver-quirks.md).
TEST(TopologySpec, IommuKindDefaultsToDmarAndTheDefaultMachineHasAnSmmu) {
  ParseError err;
  auto t = ParseTopology(R"({"iommus":[{"name":"a"},{"name":"b","kind":"smmu"},{"name":"c","kind":"dmar"}],
    "pci":[{"bdf":"00:01.0","type":"edu"}]})", "t", &err);
  ASSERT_TRUE(t.has_value()) << err.message;
  EXPECT_EQ(t->iommus[0].kind, iommu::IommuKind::kDmar);
  EXPECT_EQ(t->iommus[1].kind, iommu::IommuKind::kSmmu);
  EXPECT_EQ(t->iommus[2].kind, iommu::IommuKind::kDmar);
  std::string msg = ErrorOf(R"({"iommus":[{"name":"a","kind":"amd"}],"pci":[]})");
  EXPECT_NE(msg.find("/iommus/0/kind: \"amd\" is not one of dmar, smmu"), std::string::npos) << msg;
  for (const IommuSpec& i : DefaultTopology().iommus)
    EXPECT_EQ(i.kind, i.name == "smmu0" ? iommu::IommuKind::kSmmu : iommu::IommuKind::kDmar) << i.name;
}

TEST(TopologySpec, SyntaxErrorNamesLineAndColumn) {
  std::string msg = ErrorOf("{\n  \"iommus\": [\n    {\"name\": \"a\",}\n  ]\n}");
  EXPECT_EQ(msg.rfind("t.json:3:", 0), 0u) << msg;
  EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(TopologySpec, SemanticErrorsNameTheJsonPointer) {
  const std::string iommu = R"("iommus":[{"name":"a"}])";
  struct Case {
    std::string pci;
    std::string expect;
  } cases[] = {
      {R"([{"bdf":"01:00.0","type":"edu"}])", "/pci/0/bdf: bus 1 is not behind"},
      {R"([{"bdf":"00:01.0","type":"root-port"}])", "/pci/0: a root-port needs \"secondary_bus\""},
      {R"([{"bdf":"00:01.0","type":"gpu"}])", "/pci/0/type: \"gpu\" is not a known device type"},
      {R"([{"bdf":"00:01.0","type":"edu"},{"bdf":"00:01.0","type":"edu"}])", "/pci/1/bdf: address used twice"},
      {R"([{"bdf":"00:01.1","type":"edu"}])", "/pci/0/bdf: function 1 needs function 0"},
      {R"([{"bdf":"00:1f.0","type":"endpoint","bars":[{"index":0,"kind":"mem32","size":"0x300"}]}])",
       "/pci/0/bars/0/size: a BAR size is a power of two"},
      {R"([{"bdf":"00:01.0","type":"root-port","secondary_bus":1},{"bdf":"00:02.0","type":"root-port","secondary_bus":1}])",
       "/pci/1/secondary_bus: bus 1 is already behind 0000:00:01.0"},
      {R"([{"bdf":"00:01.0","type":"edu","iommu":"zz"}])", "/pci/0/iommu: no IOMMU named \"zz\""},
      {R"([{"bdf":"00:01.0","type":"edu","colour":"red"}])", "/pci/0/colour: unknown key"},
      {R"([{"bdf":"0:1:2","type":"edu"}])", "/pci/0/bdf: \"0:1:2\" is not a PCI address"},
  };
  for (const Case& c : cases) {
    std::string msg = ErrorOf("{" + iommu + ",\"pci\":" + c.pci + "}");
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "got: " << msg << "\nwanted: " << c.expect;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

TEST(TopologySpec, MissingFileIsOneLine) {
  ParseError err;
  EXPECT_FALSE(LoadTopologyFile("/nonexistent/x.json", &err).has_value());
  EXPECT_NE(err.message.find("/nonexistent/x.json: cannot open"), std::string::npos);
}

TEST(TopologySpec, NumbersMayBeHexStrings) {
  ParseError err;
  auto t = ParseTopology(R"({"iommus":[{"name":"a","reserved":[{"first":"0xfee00000","last":4277141503,"type":"msi"}]}]})",
                         "t", &err);
  ASSERT_TRUE(t.has_value()) << err.message;
  EXPECT_EQ(t->iommus[0].reserved[0].first, 0xfee00000u);
  EXPECT_EQ(t->iommus[0].reserved[0].last, 0xfeefffffu);
}

TEST(TopologySpecTest, KernelPersonality) {
  ParseError err;
  auto t = ParseTopology(R"({"kernel": "6.12", "iommus": [{"name": "d"}], "pci": [{"bdf": "00:00.0", "type": "host-bridge"}]})", "t", &err);
  ASSERT_TRUE(t) << err.message;
  EXPECT_EQ(t->kernel, vb::KernelPersonality::kLinux6_12);
  auto d = ParseTopology(R"({"iommus": [{"name": "d"}], "pci": [{"bdf": "00:00.0", "type": "host-bridge"}]})", "t", &err);
  ASSERT_TRUE(d) << err.message;
  EXPECT_EQ(d->kernel, vb::KernelPersonality::kLinux6_1);
  EXPECT_FALSE(ParseTopology(R"({"kernel": "5.4", "iommus": [{"name": "d"}]})", "t", &err));
  EXPECT_NE(err.message.find("/kernel"), std::string::npos) << err.message;
}

}  // namespace
}  // namespace topology
