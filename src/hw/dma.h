// The contract between a device's DMA and whatever translates it. hw/ declares it; iommu/
// implements it (a domain attached to the device's group). A translation is only ever used inside
// an EpochReadSection (base/epoch.h): whoever replaces or retires one calls Epoch::Synchronize()
// before the old translation or the memory behind it may go away. That is what makes unmap strict.
#pragma once

#include <cstdint>
#include <string>

namespace hw {

enum class DmaAccess : uint8_t { kRead = 1, kWrite = 2 };
const char* DmaAccessName(DmaAccess a);

enum class DmaFaultReason : uint8_t {
  kBlocked,         // the device's group is in a blocking domain (or has no domain)
  kNotMapped,       // no translation for the iova
  kPermission,      // a write to a read-only mapping, or a read of a write-only one
  kOutOfAperture,   // iova outside the domain's aperture
  kPeerToPeer,      // the iova reaches a device's register pages (a BAR mapping MAP_DMA'd): not
                    // carried out yet (docs/design/0008-mapped-registers.md)
};
const char* DmaFaultReasonName(DmaFaultReason r);

// One contiguous run of host memory that an iova run translates to.
struct DmaSegment {
  uint8_t* host = nullptr;
  uint64_t length = 0;   // > 0; may be shorter than asked (ends at a page/leaf boundary)
};

struct DmaTranslateResult {
  bool ok = false;
  DmaFaultReason reason = DmaFaultReason::kNotMapped;
  DmaSegment segment;
};

class DmaTranslation {
 public:
  virtual ~DmaTranslation() = default;
  // Translates the run that starts at `iova`, for at most `length` bytes, checking `access`.
  // Must be called inside an EpochReadSection; allocates nothing, takes no lock.
  virtual DmaTranslateResult Translate(uint64_t iova, uint64_t length, DmaAccess access) const = 0;
  // Bumped on every change that removes or narrows a translation; a cache entry tagged with an
  // older generation is stale. Identity and blocked translations never change.
  virtual uint64_t generation() const = 0;
  // Smallest translation granule (a cache may cache at this size).
  virtual uint64_t granule() const = 0;
};

// A recorded DMA fault, as an IOMMU would log it.
struct DmaFault {
  std::string requester;     // device name, e.g. "0000:01:00.0"
  uint32_t requester_id = 0; // PCI RID (bus << 8 | devfn) or platform stream id
  uint64_t iova = 0;
  DmaAccess access = DmaAccess::kRead;
  DmaFaultReason reason = DmaFaultReason::kNotMapped;
};

class FaultSink {
 public:
  virtual ~FaultSink() = default;
  virtual void RecordFault(const DmaFault& fault) = 0;
};

// Sees every DMA that completed, after its bytes moved: which device, which iova range, and where
// in host memory its first byte went (what the IOMMU translated it to). Process-wide, for tracing
// (`vfiobox run --trace`); called on the DMA path, so it must be cheap and must not take locks
// ranked below kLeaf. The observer must outlive every DMA that may still see it (nullptr removes
// it; tests only, with no DMA in flight).
class DmaObserver {
 public:
  virtual ~DmaObserver() = default;
  virtual void OnDma(const std::string& device, DmaAccess access, uint64_t iova, uint64_t length,
                     const void* first_host_byte) = 0;
};
void SetDmaObserver(DmaObserver* observer);

}  // namespace hw
