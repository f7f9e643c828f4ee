#include "topology/topology_spec.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "iommu/io_page_table.h"

namespace topology {
namespace {

using nlohmann::json;

// Thrown only inside this file and caught by ParseTopology: no exception leaves the layer.
struct SpecError {
  std::string where;  // JSON pointer
  std::string what;
};

[[noreturn]] void Fail(const std::string& where, const std::string& what) { throw SpecError{where, what}; }

const json& Field(const json& obj, const std::string& where, const char* key) {
  if (!obj.contains(key)) Fail(where, std::string("missing \"") + key + "\"");
  return obj.at(key);
}

std::string Str(const json& v, const std::string& where) {
  if (!v.is_string()) Fail(where, "expected a string");
  return v.get<std::string>();
}

bool Bool(const json& v, const std::string& where) {
  if (!v.is_boolean()) Fail(where, "expected true or false");
  return v.get<bool>();
}

// A number, or a string holding one (decimal or 0x-hex), within [0, max].
uint64_t Num(const json& v, const std::string& where, uint64_t max) {
  uint64_t n = 0;
  if (v.is_number_unsigned()) {
    n = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    Fail(where, "expected a non-negative number");
  } else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    size_t pos = 0;
    try {
      n = std::stoull(s, &pos, 0);
    } catch (...) {
      Fail(where, "\"" + s + "\" is not a number");
    }
    if (pos != s.size()) Fail(where, "\"" + s + "\" is not a number");
  } else {
    Fail(where, "expected a number");
  }
  if (n > max) Fail(where, std::to_string(n) + " is out of range (max " + std::to_string(max) + ")");
  return n;
}

void OnlyKeys(const json& obj, const std::string& where, std::initializer_list<const char*> keys) {
  if (!obj.is_object()) Fail(where, "expected an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool known = false;
    for (const char* k : keys) known |= it.key() == k;
    if (!known) Fail(where + "/" + it.key(), "unknown key");
  }
}

// "BB:DD.F" or "DDDD:BB:DD.F" (domain 0 only).
hw::PciAddress Bdf(const json& v, const std::string& where) {
  std::string s = Str(v, where);
  unsigned dom = 0, bus = 0, dev = 0, fn = 0;
  char tail;
  if (std::sscanf(s.c_str(), "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4) {
  } else if (std::sscanf(s.c_str(), "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3) {
    dom = 0;
  } else {
    Fail(where, "\"" + s + "\" is not a PCI address (BB:DD.F)");
  }
  if (dom != 0) Fail(where, "only PCI domain 0 is simulated");
  if (bus > 255 || dev > 31 || fn > 7) Fail(where, "\"" + s + "\" is out of range");
  return hw::PciAddress{0, static_cast<uint8_t>(bus), hw::MakeDevfn(static_cast<uint8_t>(dev), static_cast<uint8_t>(fn))};
}

uint8_t Devfn(const json& v, const std::string& where) {
  std::string s = Str(v, where);
  unsigned dev = 0, fn = 0;
  char tail;
  if (std::sscanf(s.c_str(), "%x.%x%c", &dev, &fn, &tail) != 2 || dev > 31 || fn > 7)
    Fail(where, "\"" + s + "\" is not a DD.F function address");
  return hw::MakeDevfn(static_cast<uint8_t>(dev), static_cast<uint8_t>(fn));
}

IommuSpec ParseIommu(const json& j, const std::string& w) {
  OnlyKeys(j, w, {"name", "kind", "pgsizes", "address_bits", "coherent", "enforce_cache_coherency", "msi_isolated", "reserved"});
  IommuSpec s;
  s.name = Str(Field(j, w, "name"), w + "/name");
  if (s.name.empty()) Fail(w + "/name", "empty name");
  if (j.contains("kind")) {
    std::string k = Str(j.at("kind"), w + "/kind");
    if (k == "dmar") s.kind = iommu::IommuKind::kDmar;
    else if (k == "smmu") s.kind = iommu::IommuKind::kSmmu;
    else Fail(w + "/kind", "\"" + k + "\" is not one of dmar, smmu");
  }
  s.pgsize_bitmap = iommu::kPage4K | iommu::kPage2M | iommu::kPage1G;
  if (j.contains("pgsizes")) {
    const json& p = j.at("pgsizes");
    if (!p.is_array()) Fail(w + "/pgsizes", "expected a list such as [\"4K\", \"2M\"]");
    s.pgsize_bitmap = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      std::string v = Str(p[i], w + "/pgsizes/" + std::to_string(i));
      if (v == "4K") s.pgsize_bitmap |= iommu::kPage4K;
      else if (v == "2M") s.pgsize_bitmap |= iommu::kPage2M;
      else if (v == "1G") s.pgsize_bitmap |= iommu::kPage1G;
      else Fail(w + "/pgsizes/" + std::to_string(i), "\"" + v + "\" is not one of 4K, 2M, 1G");
    }
    if (!(s.pgsize_bitmap & iommu::kPage4K)) Fail(w + "/pgsizes", "4K is required");
  }
  if (j.contains("address_bits")) {
    s.address_bits = static_cast<unsigned>(Num(j.at("address_bits"), w + "/address_bits", 48));
    if (s.address_bits < 32) Fail(w + "/address_bits", "must be between 32 and 48");
  }
  if (j.contains("coherent")) s.coherent = Bool(j.at("coherent"), w + "/coherent");
  if (j.contains("enforce_cache_coherency"))
    s.enforce_cache_coherency = Bool(j.at("enforce_cache_coherency"), w + "/enforce_cache_coherency");
  if (j.contains("msi_isolated")) s.msi_isolated = Bool(j.at("msi_isolated"), w + "/msi_isolated");
  if (j.contains("reserved")) {
    const json& r = j.at("reserved");
    if (!r.is_array()) Fail(w + "/reserved", "expected a list");
    for (size_t i = 0; i < r.size(); ++i) {
      std::string rw = w + "/reserved/" + std::to_string(i);
      OnlyKeys(r[i], rw, {"first", "last", "type"});
      ReservedSpec rs;
      rs.first = Num(Field(r[i], rw, "first"), rw + "/first", UINT64_MAX);
      rs.last = Num(Field(r[i], rw, "last"), rw + "/last", UINT64_MAX);
      if (rs.last < rs.first) Fail(rw, "last is below first");
      rs.type = Str(Field(r[i], rw, "type"), rw + "/type");
      static const std::set<std::string> kTypes = {"msi", "sw-msi", "direct", "direct-relaxable", "reserved"};
      if (!kTypes.count(rs.type)) Fail(rw + "/type", "\"" + rs.type + "\" is not a reserved-region type");
      s.reserved.push_back(rs);
    }
  }
  return s;
}

std::pair<uint16_t, uint16_t> Acs(const json& v, const std::string& w) {
  if (v.is_object()) {
    OnlyKeys(v, w, {"cap", "ctrl"});
    return {static_cast<uint16_t>(Num(Field(v, w, "cap"), w + "/cap", 0x7f)),
            static_cast<uint16_t>(Num(Field(v, w, "ctrl"), w + "/ctrl", 0x7f))};
  }
  Fail(w, "expected true, false or {\"cap\": ..., \"ctrl\": ...}");
}

PciSpec ParsePci(const json& j, const std::string& w) {
  OnlyKeys(j, w, {"bdf", "type", "secondary_bus", "multifunction", "express", "vendor", "device", "class",
                  "acs", "acs_quirk", "dma_aliases", "iommu", "driver", "bars", "functions", "xfercap"});
  PciSpec s;
  s.address = Bdf(Field(j, w, "bdf"), w + "/bdf");
  s.type = Str(Field(j, w, "type"), w + "/type");
  static const std::set<std::string> kBridges = {"root-port", "switch-upstream", "switch-downstream", "pcie-to-pci-bridge"};
  static const std::set<std::string> kLeaves = {"host-bridge", "endpoint", "edu", "test-endpoint", "ioat"};
  const bool bridge = kBridges.count(s.type) != 0;
  if (!bridge && !kLeaves.count(s.type)) Fail(w + "/type", "\"" + s.type + "\" is not a known device type");
  if (j.contains("secondary_bus")) {
    if (!bridge) Fail(w + "/secondary_bus", "only bridges have a secondary bus");
    s.secondary_bus = static_cast<uint8_t>(Num(j.at("secondary_bus"), w + "/secondary_bus", 255));
    if (*s.secondary_bus == 0) Fail(w + "/secondary_bus", "bus 0 is the root bus");
  } else if (bridge) {
    Fail(w, "a " + s.type + " needs \"secondary_bus\"");
  }
  if (j.contains("multifunction")) s.multifunction = Bool(j.at("multifunction"), w + "/multifunction");
  if (j.contains("express")) {
    if (s.type != "endpoint") Fail(w + "/express", "only generic endpoints choose express");
    s.express = Bool(j.at("express"), w + "/express");
  }
  if (j.contains("vendor")) s.vendor = static_cast<uint16_t>(Num(j.at("vendor"), w + "/vendor", 0xffff));
  if (j.contains("device")) s.device = static_cast<uint16_t>(Num(j.at("device"), w + "/device", 0xffff));
  if (j.contains("class")) s.class_code = static_cast<uint32_t>(Num(j.at("class"), w + "/class", 0xffffff));
  if (j.contains("acs")) {
    const json& a = j.at("acs");
    if (a.is_boolean()) {
      if (a.get<bool>()) s.acs = std::pair<uint16_t, uint16_t>{hw::kAcsIsolationFlags, hw::kAcsIsolationFlags};
    } else {
      s.acs = Acs(a, w + "/acs");
    }
  }
  if (j.contains("xfercap")) {
    if (s.type != "ioat") Fail(w + "/xfercap", "only ioat devices have a transfer capacity");
    s.xfercap = static_cast<uint8_t>(Num(j.at("xfercap"), w + "/xfercap", 31));
    if (s.xfercap == 0) Fail(w + "/xfercap", "must be between 1 and 31");
  }
  if (j.contains("acs_quirk")) s.acs_quirk = Bool(j.at("acs_quirk"), w + "/acs_quirk");
  if (j.contains("dma_aliases")) {
    const json& a = j.at("dma_aliases");
    if (!a.is_array()) Fail(w + "/dma_aliases", "expected a list of DD.F");
    for (size_t i = 0; i < a.size(); ++i) s.dma_aliases.push_back(Devfn(a[i], w + "/dma_aliases/" + std::to_string(i)));
  }
  if (j.contains("iommu")) s.iommu = Str(j.at("iommu"), w + "/iommu");
  if (j.contains("driver")) s.driver = Str(j.at("driver"), w + "/driver");
  if (j.contains("bars")) {
    if (s.type != "endpoint") Fail(w + "/bars", "only generic endpoints declare BARs");
    const json& b = j.at("bars");
    if (!b.is_array()) Fail(w + "/bars", "expected a list");
    std::set<int> used;
    for (size_t i = 0; i < b.size(); ++i) {
      std::string bw = w + "/bars/" + std::to_string(i);
      OnlyKeys(b[i], bw, {"index", "kind", "size", "prefetchable", "mappable"});
      BarEntry e;
      e.index = static_cast<int>(Num(Field(b[i], bw, "index"), bw + "/index", 5));
      std::string kind = Str(Field(b[i], bw, "kind"), bw + "/kind");
      if (kind == "mem32") e.spec.kind = hw::BarKind::kMem32;
      else if (kind == "mem64") e.spec.kind = hw::BarKind::kMem64;
      else if (kind == "io") e.spec.kind = hw::BarKind::kIo;
      else Fail(bw + "/kind", "\"" + kind + "\" is not one of mem32, mem64, io");
      e.spec.size = Num(Field(b[i], bw, "size"), bw + "/size", kind == "mem32" ? (1ull << 31) : (1ull << 40));
      const uint64_t min = e.spec.kind == hw::BarKind::kIo ? 4 : 16;
      if (e.spec.size < min || (e.spec.size & (e.spec.size - 1)))
        Fail(bw + "/size", "a BAR size is a power of two of at least " + std::to_string(min));
      if (e.spec.kind == hw::BarKind::kIo && e.spec.size > 256) Fail(bw + "/size", "an I/O BAR is at most 256 bytes");
      if (b[i].contains("prefetchable")) e.spec.prefetchable = Bool(b[i].at("prefetchable"), bw + "/prefetchable");
      if (b[i].contains("mappable")) e.spec.mappable = Bool(b[i].at("mappable"), bw + "/mappable");
      const int slots = e.spec.kind == hw::BarKind::kMem64 ? 2 : 1;
      if (e.index + slots > 6) Fail(bw + "/index", "a 64-bit BAR needs two slots");
      for (int k = 0; k < slots; ++k)
        if (!used.insert(e.index + k).second) Fail(bw + "/index", "BAR slot " + std::to_string(e.index + k) + " is taken");
      s.bars.push_back(e);
    }
  }
  return s;
}

PlatformSpec ParsePlatform(const json& j, const std::string& w) {
  OnlyKeys(j, w, {"name", "stream_id", "iommu", "shares_group_with", "driver"});
  PlatformSpec s;
  s.name = Str(Field(j, w, "name"), w + "/name");
  if (s.name.empty()) Fail(w + "/name", "empty name");
  s.stream_id = static_cast<uint32_t>(Num(Field(j, w, "stream_id"), w + "/stream_id", UINT32_MAX));
  if (j.contains("iommu")) s.iommu = Str(j.at("iommu"), w + "/iommu");
  if (j.contains("shares_group_with")) s.shares_group_with = Str(j.at("shares_group_with"), w + "/shares_group_with");
  if (j.contains("driver")) s.driver = Str(j.at("driver"), w + "/driver");
  return s;
}

// Cross-entry checks: names, addresses, probe order, inheritance of the IOMMU and defaults.
void Resolve(TopologySpec& t) {
  std::set<std::string> iommus;
  for (size_t i = 0; i < t.iommus.size(); ++i)
    if (!iommus.insert(t.iommus[i].name).second) Fail("/iommus/" + std::to_string(i) + "/name", "duplicate IOMMU name");
  if (t.iommus.empty()) Fail("/iommus", "at least one IOMMU is needed");
  const std::string default_iommu = t.iommus[0].name;

  std::map<uint8_t, std::string> bus_iommu = {{0, ""}};  // bus → IOMMU inherited from its bridge
  std::map<uint8_t, std::string> bus_owner = {{0, "the root"}};
  std::map<uint8_t, bool> bus_conventional = {{0, false}};
  std::set<uint32_t> addresses;
  for (size_t i = 0; i < t.pci.size(); ++i) {
    PciSpec& d = t.pci[i];
    const std::string w = d.origin.empty() ? "/pci/" + std::to_string(i) : d.origin;
    auto bus = bus_iommu.find(d.address.bus);
    if (bus == bus_iommu.end())
      Fail(w + "/bdf", "bus " + std::to_string(d.address.bus) + " is not behind any bridge listed before it");
    if (!addresses.insert(d.address.requester_id()).second) Fail(w + "/bdf", "address used twice");
    if (d.type == "host-bridge" && d.address.bus != 0) Fail(w + "/bdf", "a host bridge sits on bus 0");
    if (d.type == "root-port" && d.address.bus != 0) Fail(w + "/bdf", "a root port sits on bus 0");
    if (bus_conventional[d.address.bus]) {
      if (d.type == "endpoint" && d.express) Fail(w + "/express", "behind a PCIe-to-PCI bridge, devices are conventional (\"express\": false)");
      if (d.type != "endpoint" && d.type != "edu") Fail(w + "/type", "only conventional devices can sit behind a PCIe-to-PCI bridge");
    }
    if (d.iommu.empty()) d.iommu = bus->second.empty() ? default_iommu : bus->second;
    if (!iommus.count(d.iommu)) Fail(w + "/iommu", "no IOMMU named \"" + d.iommu + "\"");
    if (d.address.function() != 0) {
      bool fn0_multi = false;
      for (size_t k = 0; k < i; ++k)
        if (t.pci[k].address.bus == d.address.bus && t.pci[k].address.device() == d.address.device() &&
            t.pci[k].address.function() == 0)
          fn0_multi = t.pci[k].multifunction;
      if (!fn0_multi) Fail(w + "/bdf", "function " + std::to_string(d.address.function()) +
                                           " needs function 0 of its slot, listed before it with \"multifunction\": true");
    }
    for (uint8_t alias : d.dma_aliases)
      if (alias == d.address.devfn) Fail(w + "/dma_aliases", "a device is not its own alias");
    if (d.secondary_bus) {
      if (bus_iommu.count(*d.secondary_bus))
        Fail(w + "/secondary_bus", "bus " + std::to_string(*d.secondary_bus) + " is already behind " + bus_owner[*d.secondary_bus]);
      bus_iommu[*d.secondary_bus] = d.iommu;
      bus_owner[*d.secondary_bus] = d.address.ToString();
      bus_conventional[*d.secondary_bus] = d.type == "pcie-to-pci-bridge" || bus_conventional[d.address.bus];
    }
    if (d.driver.empty() && (d.type == "root-port" || d.type == "switch-upstream" || d.type == "switch-downstream"))
      d.driver = "pcieport";
  }
  std::set<std::string> names;
  for (size_t i = 0; i < t.platform.size(); ++i) {
    PlatformSpec& p = t.platform[i];
    const std::string w = "/platform/" + std::to_string(i);
    if (!names.insert(p.name).second) Fail(w + "/name", "duplicate platform device name");
    if (p.iommu.empty()) p.iommu = default_iommu;
    if (!iommus.count(p.iommu)) Fail(w + "/iommu", "no IOMMU named \"" + p.iommu + "\"");
    if (!p.shares_group_with.empty()) {
      const PciSpec* peer = nullptr;
      for (auto& d : t.pci)
        if (d.address.ToString() == p.shares_group_with) peer = &d;
      if (!peer) Fail(w + "/shares_group_with", "no PCI function \"" + p.shares_group_with + "\"");
      if (peer->iommu != p.iommu) Fail(w + "/iommu", "must be the IOMMU of the device whose group it shares");
    }
  }
}

// 1-based line and column of a byte offset, for syntax errors.
std::string LineCol(const std::string& text, size_t byte) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

}  // namespace

std::optional<TopologySpec> ParseTopology(const std::string& text, const std::string& origin, ParseError* error) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line L, column C: ..."
    auto colon = what.find(": ", what.find("column"));
    std::string detail = colon == std::string::npos ? what : what.substr(colon + 2);
    if (error) error->message = origin + ":" + LineCol(text, e.byte ? e.byte - 1 : 0) + ": syntax error: " + detail;
    return std::nullopt;
  }
  try {
    OnlyKeys(root, "", {"kernel", "register_bars", "iommus", "pci", "platform"});
    TopologySpec t;
    if (root.contains("kernel")) {
      auto k = vb::ParseKernelPersonality(Str(root.at("kernel"), "/kernel"));
      if (!k) Fail("/kernel", "expected \"6.1\" or \"6.12\"");
      t.kernel = *k;
    }
    if (root.contains("register_bars")) {
      const std::string mode = Str(root.at("register_bars"), "/register_bars");
      if (mode == "trap") t.register_bars = RegisterBars::kTrap;
      else if (mode == "no-mmap") t.register_bars = RegisterBars::kNoMmap;
      else Fail("/register_bars", "expected \"trap\" or \"no-mmap\"");
    }
    auto list = [&](const char* key) -> const json* {
      if (!root.contains(key)) return nullptr;
      if (!root.at(key).is_array()) Fail(std::string("/") + key, "expected a list");
      return &root.at(key);
    };
    if (const json* l = list("iommus"))
      for (size_t i = 0; i < l->size(); ++i) t.iommus.push_back(ParseIommu((*l)[i], "/iommus/" + std::to_string(i)));
    if (const json* l = list("pci"))
      for (size_t i = 0; i < l->size(); ++i) {
        const std::string w = "/pci/" + std::to_string(i);
        PciSpec s = ParsePci((*l)[i], w);
        s.origin = w;
        // "functions": N (ioat): one multi-function device, functions 0..N-1 alike.
        unsigned functions = 1;
        if ((*l)[i].contains("functions")) {
          if (s.type != "ioat") Fail(w + "/functions", "only ioat devices expand into functions");
          functions = static_cast<unsigned>(Num((*l)[i].at("functions"), w + "/functions", 8));
          if (functions == 0) Fail(w + "/functions", "must be between 1 and 8");
          if (functions > 1 && s.address.function() != 0) Fail(w + "/bdf", "a multi-function device starts at function 0");
          if (functions > 1) s.multifunction = true;
        }
        for (unsigned f = 0; f < functions; ++f) {
          PciSpec fn = s;
          if (functions > 1) fn.address.devfn = hw::MakeDevfn(s.address.device(), static_cast<uint8_t>(f));
          t.pci.push_back(fn);
        }
      }
    if (const json* l = list("platform"))
      for (size_t i = 0; i < l->size(); ++i) t.platform.push_back(ParsePlatform((*l)[i], "/platform/" + std::to_string(i)));
    Resolve(t);
    return t;
  } catch (const SpecError& e) {
    if (error) error->message = origin + ": " + (e.where.empty() ? "/" : e.where) + ": " + e.what;
    return std::nullopt;
  } catch (const json::exception& e) {
    if (error) error->message = origin + ": " + e.what();
    return std::nullopt;
  }
}

std::optional<TopologySpec> LoadTopologyFile(const std::string& path, ParseError* error) {
  std::ifstream in(path);
  if (!in) {
    if (error) error->message = path + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseTopology(ss.str(), path, error);
}

TopologySpec DefaultTopology() {
  ParseError err;
  auto t = ParseTopology(DefaultTopologyJson(), "<default>", &err);
  if (!t) {
    std::fprintf(stderr, "vfiobox: built-in topology is invalid: %s\n", err.message.c_str());
    std::abort();
  }
  return *t;
}

}  // namespace topology
