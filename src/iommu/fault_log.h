// iommu::FaultLog: the fault recording queue of one IOMMU instance (Linux: the VT-d primary fault
// log / SMMU event queue, as a simulation needs it). Every device served by an Iommu has that
// Iommu's log installed as its DmaPort fault sink, so a DMA that misses (blocked domain, unmapped
// iova, permission) leaves one record here: requester name and id, iova, access, reason.
//
// Bounded: it keeps the first `capacity` faults since the last Clear() and counts the rest as
// dropped, as hardware fault logs stop recording on overflow (the first fault is usually the one
// that explains the rest). Owned by its Iommu; thread-safe.
//
// Locks: mu_ (LockRank::kFaultLog) guards the records and the dropped count. RecordFault runs on
// the DMA path inside an epoch read section; it takes only this leaf-like lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/mutex.h"
#include "hw/dma.h"

namespace iommu {

class FaultLog final : public hw::FaultSink {
 public:
  static constexpr size_t kDefaultCapacity = 4096;

  explicit FaultLog(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}
  FaultLog(const FaultLog&) = delete;
  FaultLog& operator=(const FaultLog&) = delete;

  // hw::FaultSink. Records the fault, or counts it as dropped when the log is full.
  void RecordFault(const hw::DmaFault& fault) override EXCLUDES(mu_);

  // The recorded faults, oldest first.
  std::vector<hw::DmaFault> Snapshot() const EXCLUDES(mu_);
  // Forgets every record and resets the dropped count.
  void Clear() EXCLUDES(mu_);
  // Number of records held (<= capacity()).
  size_t size() const EXCLUDES(mu_);
  // Faults not recorded because the log was full, since the last Clear().
  uint64_t dropped() const EXCLUDES(mu_);
  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  mutable vb::Mutex mu_{vb::LockRank::kFaultLog};  // guards records_, dropped_
  std::vector<hw::DmaFault> records_ GUARDED_BY(mu_);
  uint64_t dropped_ GUARDED_BY(mu_) = 0;
};

}  // namespace iommu
