#include "iommu/dmar_debugfs.h"

#include <cinttypes>
#include <cstdio>

#include "iommu/domain.h"
#include "iommu/group.h"
#include "iommu/iommu.h"
#include "iommu/iommu_core.h"

namespace iommu {
namespace {

constexpr uint64_t kPteRead = 1ull << 0;  // also intel-iommu 6.1's first-level "present" bit
constexpr uint64_t kPteWrite = 1ull << 1;
constexpr uint64_t kPteLargePage = 1ull << 7;
constexpr uint64_t kPteSnoop = 1ull << 11;
// Our tables are 64-byte aligned, VT-d's 4 KiB aligned (their low 12 bits are flags): a table is
// shown by the 4 KiB frame that holds it.
constexpr uint64_t Frame(uintptr_t table) { return table & ~uint64_t{0xfff}; }

void Appendf(std::string& out, const char* fmt, uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0,
             uint64_t e = 0, uint64_t f = 0) {
  char line[160];
  int n = std::snprintf(line, sizeof line, fmt, a, b, c, d, e, f);
  if (n > 0) out.append(line, static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1);
}

void DumpDomain(std::string& out, const std::string& device, Domain& domain) {
  IoPageTable* table = domain.type() == DomainType::kPaging ? domain.page_table() : nullptr;
  // VT-d walks 3 levels for a 39-bit unit (its top table is our level-2 table under root entry 0),
  // 4 for a 48-bit one.
  const int vtd_levels = domain.iommu().address_bits() <= 39 ? 3 : 4;
  uint64_t pgd = Frame(table ? table->root_address() : reinterpret_cast<uintptr_t>(&domain));
  std::string body;
  if (table) {
    const bool snoop = domain.enforce_cache_coherency();
    table->ForEachLeaf([&](const IoPageTable::LeafVisit& v) {
      if (vtd_levels == 3 && v.tables[2]) pgd = Frame(v.tables[2]);
      uint64_t path[6] = {};  // path[1] = PTE ... path[5] = PML5E, as the kernel indexes them
      for (int level = 3; level >= v.level; --level) {
        if (level + 1 > vtd_levels) continue;
        path[level + 1] = level > v.level ? (Frame(v.tables[level - 1]) | kPteRead | kPteWrite)
                                          : (v.phys | kPteRead | ((v.prot & kProtWrite) ? kPteWrite : 0) |
                                             (v.level > 0 ? kPteLargePage : 0) | (snoop ? kPteSnoop : 0));
      }
      Appendf(body, "0x%013" PRIx64 " |\t0x%016" PRIx64 "\t0x%016" PRIx64 "\t0x%016" PRIx64 "\t0x%016" PRIx64
              "\t0x%016" PRIx64 "\n",
              v.iova >> 12, path[5], path[4], path[3], path[2], path[1]);
    });
  }
  out += "Device " + device;
  Appendf(out, " @0x%" PRIx64 "\n", pgd);
  out += "IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\n";
  out += body;
  out += "\n";
}

}  // namespace

std::string DmarDomainTranslationStruct(IommuCore& core, const std::vector<vb::RefPtr<hw::PciDevice>>& devices) {
  std::string out;
  for (const auto& dev : devices) {
    vb::RefPtr<Group> group = core.GroupOf(*dev);
    if (!group || group->iommu().caps().kind != IommuKind::kDmar) continue;
    group->WithCurrentDomain([&](hw::Device& first, Domain& domain) { DumpDomain(out, first.name(), domain); });
  }
  return out;
}

}  // namespace iommu
