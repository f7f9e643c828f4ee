// iommu::Iommu: one IOMMU instance (Linux: an iommu_device and its iommu_ops). It states what its
// domains can do (IommuCaps), allocates domains, and owns the fault log its devices report into.
// Which devices an instance serves is decided by the IommuCore's assignment rules; a device's
// instance is found from the device (IommuCore::IommuOf, or the Iommu& that
// Group::ForFirstDevice hands out), never from its bus type. Two domains have "the same ops" iff
// they were allocated by the same Iommu.
//
// Owned by the IommuCore (stable address for the core's lifetime). Immutable after creation apart
// from the fault log, which has its own lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "iommu/fault_log.h"
#include "iommu/io_page_table.h"

namespace iommu {

class Domain;
enum class DomainType : uint8_t;

enum class ReservedRegionType : uint8_t {
  kMsi,       // hardware MSI window (x86 0xfee00000-0xfeefffff): never mappable
  kDirect,    // must stay identity-mapped (RMRR-like)
  kReserved,  // simply unusable
  kSwMsi,     // software-managed MSI window (ARM SMMU: the IOVA where MSI doorbells get mapped)
  kDirectRelaxable,  // an RMRR that may be dropped while the device is assigned (type1 ignores it)
};
const char* ReservedRegionTypeName(ReservedRegionType t);

struct ReservedRegion {
  uint64_t first = 0;  // inclusive
  uint64_t last = 0;   // inclusive
  ReservedRegionType type = ReservedRegionType::kReserved;
  friend bool operator==(const ReservedRegion&, const ReservedRegion&) = default;
};

// The x86 interrupt window, reserved as MSI on every x86-like instance.
inline constexpr ReservedRegion kX86MsiWindow{0xfee00000, 0xfeefffff, ReservedRegionType::kMsi};

// Which Linux IOMMU driver an instance behaves as, for the observable quirks of that driver's
// map path (docs/design/0010-iommu-driver-quirks.md).
//   kDmar — intel-iommu (VT-d): 6.1's map path always sets the first-level "present" bit, which
//           is bit 0 of a second-level entry, the read permission: every mapping is readable by
//           devices, write-only ones included.
//   kSmmu — arm-smmu(-v3) io-pgtable: permissions exactly as mapped.
enum class IommuKind : uint8_t { kDmar, kSmmu };
const char* IommuKindName(IommuKind k);

struct IommuCaps {
  // The driver this instance behaves as. Default: the strict one; X86() says kDmar.
  IommuKind kind = IommuKind::kSmmu;
  uint64_t pgsize_bitmap = kPage4K | kPage2M | kPage1G;  // subset of 4K|2M|1G, 4K required
  uint64_t aperture_first = 0;                            // inclusive
  uint64_t aperture_last = (1ull << 48) - 1;              // inclusive, < 2^48
  bool cache_coherent = true;  // DMA through this IOMMU is cache coherent (VFIO requires it)
  // Paging domains can be made to block no-snoop transactions (Intel SNP; Linux
  // ops->enforce_cache_coherency). Only meaningful when cache_coherent.
  bool enforce_cache_coherency = true;
  bool msi_isolated = true;    // interrupt remapping / MSI isolation
  // The groups' default domain: false (the default) = a translated DMA-API domain that is empty
  // until a kernel driver maps something, so a stray DMA faults; true = identity (iommu=pt: iova
  // == host address, which in-process means a stray DMA writes wherever it points).
  bool passthrough = false;
  std::vector<ReservedRegion> reserved;

  // An Intel VT-d-like instance (kind kDmar): 4K|2M|1G, 48-bit aperture, coherent, interrupt
  // remapping, the x86 MSI window reserved.
  static IommuCaps X86();
};

class Iommu {
 public:
  // EINVAL: pgsize_bitmap lacks 4K or has sizes other than 4K|2M|1G; aperture_first >
  // aperture_last or aperture_last >= 2^48; a reserved region with first > last.
  static vb::Result<std::unique_ptr<Iommu>> Create(std::string name, IommuCaps caps);
  ~Iommu();
  Iommu(const Iommu&) = delete;
  Iommu& operator=(const Iommu&) = delete;

  const std::string& name() const { return name_; }
  const IommuCaps& caps() const { return caps_; }
  // Bits of IOVA the page tables of this instance cover (aperture_last < 2^address_bits()).
  unsigned address_bits() const { return address_bits_; }

  // A new domain of this instance (Linux: ops->domain_alloc). ENOMEM when the fail point
  // "iommu.alloc_domain" fires. The caller owns it and must detach it from every group first.
  vb::Result<std::unique_ptr<Domain>> AllocDomain(DomainType type);

  FaultLog& fault_log() { return fault_log_; }
  const FaultLog& fault_log() const { return fault_log_; }

 private:
  Iommu(std::string name, IommuCaps caps, unsigned address_bits);

  const std::string name_;
  const IommuCaps caps_;
  const unsigned address_bits_;
  FaultLog fault_log_;
};

}  // namespace iommu
