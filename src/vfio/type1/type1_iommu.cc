#include "vfio/type1/type1_iommu.h"

#include <algorithm>
#include <cstdio>

#include "base/checked.h"
#include "base/epoch.h"
#include "base/fail_point.h"
#include "iommu/iommu.h"
#include "vfio/type1/flags.h"
#include "vfio/type1/pinned_pages.h"
#include "vfio/type1/user_memory.h"

namespace vfio::type1 {
namespace {

constexpr uint64_t kCpuPage = 4096;
// Before any domain exists: every power of two >= PAGE_SIZE (§4.5).
constexpr uint64_t kAllPgsizes = ~(kCpuPage - 1);

vb::Mutex g_hook_mu(vb::LockRank::kLeaf);  // guards g_attach_hook
std::function<void(hw::Device&)> g_attach_hook GUARDED_BY(g_hook_mu);

void RunAttachHook(hw::Device& dev) {
  std::function<void(hw::Device&)> hook;
  {
    vb::MutexLock l(g_hook_mu);
    hook = g_attach_hook;
  }
  if (hook) hook(dev);
}

uint32_t DomainProt(uint32_t prot) {
  uint32_t p = 0;
  if (prot & kProtRead) p |= iommu::kProtRead;
  if (prot & kProtWrite) p |= iommu::kProtWrite;
  return p;
}

ReservedKind KindOf(iommu::ReservedRegionType t) {
  switch (t) {
    case iommu::ReservedRegionType::kMsi: return ReservedKind::kMsi;
    case iommu::ReservedRegionType::kSwMsi: return ReservedKind::kSwMsi;
    case iommu::ReservedRegionType::kDirect: return ReservedKind::kDirect;
    case iommu::ReservedRegionType::kDirectRelaxable: return ReservedKind::kDirectRelaxable;
    case iommu::ReservedRegionType::kReserved: return ReservedKind::kReserved;
  }
  return ReservedKind::kReserved;
}

}  // namespace

void Iommu::SetAttachHookForTest(std::function<void(hw::Device&)> hook) {
  vb::MutexLock l(g_hook_mu);
  g_attach_hook = std::move(hook);
}

// ---------------------------------------------------------------------------------------------
// Type1Backend

long Type1Backend::CheckExtension(unsigned long ext) const {
  switch (ext) {
    case kExtType1:
    case kExtType1v2:
    case kExtType1Nesting:  // 6.1 still offers nesting (removed in 6.13)
    case kExtUnmapAll:
      return 1;
    default:
      // DMA_CC and UPDATE_VADDR need an instantiated backend (6.1.y): 0 before SET_IOMMU.
      return 0;
  }
}

vb::Result<std::unique_ptr<BackendInstance>> Type1Backend::Open(unsigned long type) {
  if ((type == kExtType1 || type == kExtType1v2 || type == kExtType1Nesting) && VB_FAIL_POINT("type1.iommu_alloc"))
    return vb::Err(ENOMEM, "type1: vfio_iommu allocation failed");
  switch (type) {
    case kExtType1:
      return std::unique_ptr<BackendInstance>(new Iommu(false, options_));
    case kExtType1v2:
    case kExtType1Nesting:
      return std::unique_ptr<BackendInstance>(new Iommu(true, options_));
    default:
      return vb::Err(EINVAL, "type1: unsupported IOMMU type");
  }
}

// ---------------------------------------------------------------------------------------------
// Iommu

Iommu::Iommu(bool v2, const Options& options)
    : v2_(v2),
      options_(options),
      account_(options.account ? *options.account : LockedMemory::ForProcess()),
      dmas_(options.dma_entry_limit),
      pgsize_bitmap_(kAllPgsizes) {
  PinnedPages::Register(this);
}

Iommu::~Iommu() {
  PinnedPages::Unregister(this);
  vb::MutexLock l(mu_);
  RemoveAllLocked();
  for (DomainRec& d : domains_) {
    for (iommu::Group* g : d.groups) (void)g->DetachDomain(*d.domain);
  }
  domains_.clear();
  emulated_groups_.clear();
}

long Iommu::CheckExtension(unsigned long ext) {
  vb::MutexLock l(mu_);
  switch (ext) {
    case kExtType1:
    case kExtType1v2:
    case kExtType1Nesting:
    case kExtUnmapAll:
      return 1;
    case kExtDmaCc:
      // Every domain must enforce coherency (vacuously true with none).
      return std::all_of(domains_.begin(), domains_.end(), [](const DomainRec& d) { return d.enforce_cc; });
    case kExtUpdateVaddr:
      return emulated_groups_.empty() ? 1 : 0;
    default:
      return 0;
  }
}

Iommu::DomainRec* Iommu::FindDomainLocked(const iommu::Group& group) {
  for (DomainRec& d : domains_)
    if (std::find(d.groups.begin(), d.groups.end(), &group) != d.groups.end()) return &d;
  return nullptr;
}

void Iommu::RecomputePgsizeLocked() {
  uint64_t bitmap = kAllPgsizes;
  for (const DomainRec& d : domains_) bitmap &= d.domain->pgsize_bitmap();
  // Sub-page sizes are hidden: PAGE_SIZE stands for them.
  if (bitmap & (kCpuPage - 1)) bitmap = (bitmap & ~(kCpuPage - 1)) | kCpuPage;
  pgsize_bitmap_ = bitmap;
}

std::vector<ReservedRegion> Iommu::ReservedOfLocked(const iommu::Group& group) const {
  // Every member of a group is served by the group's IOMMU instance, so the union of the
  // members' reserved regions is the instance's.
  std::vector<ReservedRegion> out;
  for (const iommu::ReservedRegion& r : group.iommu().caps().reserved)
    out.push_back(ReservedRegion{vb::Interval{r.first, r.last}, KindOf(r.type)});
  return out;
}

std::vector<ReservedRegion> Iommu::AllReservedLocked() const {
  std::vector<ReservedRegion> out;
  for (const DomainRec& d : domains_)
    for (const iommu::Group* g : d.groups) {
      auto r = ReservedOfLocked(*g);
      out.insert(out.end(), r.begin(), r.end());
    }
  return out;
}

vb::Result<void> Iommu::AttachGroup(iommu::Group& group, GroupType type) {
  vb::MutexLock l(mu_);
  if (vaddr_invalid_count_ > 0) return vb::Err(EBUSY, "type1 attach: vaddrs are invalidated");
  if (FindDomainLocked(group) ||
      std::find(emulated_groups_.begin(), emulated_groups_.end(), &group) != emulated_groups_.end())
    return vb::Err(EINVAL, "type1 attach: group already attached");
  // The vfio_iommu_group record (and for a new domain, the vfio_domain) of the kernel.
  if (VB_FAIL_POINT("type1.group_alloc")) return vb::Err(ENOMEM, "type1 attach: group allocation failed");
  if (type == GroupType::kEmulatedIommu) {
    emulated_groups_.push_back(&group);
    return vb::Ok();
  }

  // The seed's rule: the domain is allocated from one member while the IOMMU group's lock keeps
  // it a member; nothing derived from the device outlives the callback.
  std::unique_ptr<iommu::Domain> domain;
  TRY(group.ForFirstDevice([&](hw::Device& dev, iommu::Iommu& instance) -> vb::Result<void> {
    RunAttachHook(dev);
    auto d = instance.AllocDomain(iommu::DomainType::kPaging);
    if (!d.has_value()) return vb::Err(EIO, "type1 attach: domain allocation failed");  // 6.1: EIO
    domain = std::move(*d);
    return vb::Ok();
  }));

  TRY(group.AttachDomain(*domain));
  auto fail = [&](vb::Error e) -> vb::Result<void> {
    (void)group.DetachDomain(*domain);
    return std::unexpected(e);
  };

  const std::vector<ReservedRegion> reserved = ReservedOfLocked(group);
  auto planned = iovas_.PlanAttach(domain->aperture(), reserved, dmas_);
  if (!planned.has_value()) return fail(planned.error());
  if (!options_.allow_unsafe_interrupts && !group.AllMembersMsiIsolated())
    return fail(vb::Error{EPERM, "type1 attach: no interrupt remapping (allow_unsafe_interrupts)"});
  const bool enforce_cc = domain->EnforceCacheCoherency();

  // Reuse an existing domain of the same IOMMU instance and coherency setting.
  for (DomainRec& d : domains_) {
    if (&d.domain->iommu() != &domain->iommu() || d.enforce_cc != enforce_cc) continue;
    (void)group.DetachDomain(*domain);
    if (group.AttachDomain(*d.domain).has_value()) {
      d.groups.push_back(&group);
      iovas_ = std::move(*planned);
      ++num_non_pinned_groups_;
      return vb::Ok();
    }
    if (auto r = group.AttachDomain(*domain); !r.has_value()) return r;
  }

  if (auto r = ReplayLocked(*domain); !r.has_value()) return fail(r.error());
  domains_.push_back(DomainRec{std::move(domain), {&group}, enforce_cc});
  RecomputePgsizeLocked();
  iovas_ = std::move(*planned);
  ++num_non_pinned_groups_;
  return vb::Ok();
}

void Iommu::DetachGroup(iommu::Group& group) {
  vb::MutexLock l(mu_);
  if (auto it = std::find(emulated_groups_.begin(), emulated_groups_.end(), &group); it != emulated_groups_.end()) {
    emulated_groups_.erase(it);
    if (emulated_groups_.empty() && domains_.empty()) RemoveAllLocked();
    return;
  }
  auto rec = std::find_if(domains_.begin(), domains_.end(), [&](const DomainRec& d) {
    return std::find(d.groups.begin(), d.groups.end(), &group) != d.groups.end();
  });
  if (rec == domains_.end()) return;
  (void)group.DetachDomain(*rec->domain);
  std::erase(rec->groups, &group);
  --num_non_pinned_groups_;

  std::optional<vb::Interval> bounds;
  if (rec->groups.empty()) {
    if (domains_.size() == 1) {
      if (emulated_groups_.empty()) {
        RemoveAllLocked();
      } else {
        // Keep the records for the emulated groups; the pages are no longer IOMMU-mapped.
        for (auto& [iova_key, dma] : dmas_) {
          UnpinLocked(dma);
          dma.iommu_mapped = false;
          dma.relocated.clear();  // re-pinned from vaddr when a domain comes back
        }
      }
    }
    domains_.erase(rec);
    std::vector<vb::Interval> apertures;
    for (const DomainRec& d : domains_) apertures.push_back(d.domain->aperture());
    bounds = IovaList::ApertureIntersection(apertures);
    RecomputePgsizeLocked();
  }
  if (domains_.empty()) {
    iovas_ = IovaList();
    return;
  }
  const std::vector<ReservedRegion> remaining = AllReservedLocked();
  auto rebuilt = iovas_.PlanDetach(bounds ? &*bounds : nullptr, remaining);
  if (rebuilt.has_value()) iovas_ = std::move(*rebuilt);
}

// 6.1 pins a mapping without WRITE without FOLL_WRITE: never-written anonymous pages resolve to
// the shared zero page, a reserved page that is not charged. A mapping with WRITE is charged whole.
uint64_t Iommu::PinChargeBytes(const Dma& dma) {
  if (dma.prot & kProtWrite) return dma.size;
  auto bytes = UserMemory::ReadOnlyPinChargeBytes(dma.vaddr, dma.size);
  return bytes.has_value() ? *bytes : dma.size;
}

vb::Result<void> Iommu::PinAndMapLocked(Dma& dma) {
  // A vaddr in a device's BAR mapping (peer-to-peer): 6.1 pins the PFNs of a VM_PFNMAP vma and
  // charges nothing for them.
  const bool mmio = UserMemory::IsDeviceMmio(dma.vaddr, dma.size);
  if (!mmio) TRY(UserMemory::CheckRange(dma.vaddr, dma.size, dma.prot & kProtWrite));
  const uint64_t charge = mmio ? 0 : PinChargeBytes(dma);
  TRY(account_.Charge(charge));
  dma.pinned = dma.vaddr;
  size_t done = 0;
  for (; done < domains_.size(); ++done) {
    auto r = domains_[done].domain->Map(dma.iova, dma.pinned, dma.size, DomainProt(dma.prot));
    if (!r.has_value()) {
      while (done-- > 0) (void)domains_[done].domain->Unmap(dma.iova, dma.size);
      account_.Uncharge(charge);
      return r;
    }
  }
  dma.locked_bytes = charge;
  dma.account = &account_;
  dma.iommu_mapped = true;
  return vb::Ok();
}

void Iommu::UnpinLocked(Dma& dma) {
  if (dma.account && dma.locked_bytes) dma.account->Uncharge(dma.locked_bytes);
  dma.locked_bytes = 0;
}

vb::Result<void> Iommu::ReplayLocked(iommu::Domain& domain) {
  std::vector<Dma*> mapped;
  std::vector<Dma*> pinned_now;
  auto undo = [&] {
    mu_.AssertHeld();
    for (Dma* d : mapped) (void)domain.Unmap(d->iova, d->size);
    for (Dma* d : pinned_now) {
      for (DomainRec& other : domains_) (void)other.domain->Unmap(d->iova, d->size);
      UnpinLocked(*d);
      d->iommu_mapped = false;
    }
  };
  for (auto& [iova_key, dma] : dmas_) {
    if (!dma.iommu_mapped) {
      // Created while only emulated groups existed: pin now (accounting applies).
      if (auto r = UserMemory::CheckRange(dma.vaddr, dma.size, dma.prot & kProtWrite); !r.has_value()) {
        undo();
        return r;
      }
      const uint64_t charge = PinChargeBytes(dma);
      if (auto r = account_.Charge(charge); !r.has_value()) {
        undo();
        return r;
      }
      dma.pinned = dma.vaddr;
      dma.relocated.clear();
      dma.locked_bytes = charge;
      dma.account = &account_;
      dma.iommu_mapped = true;
      pinned_now.push_back(&dma);
    }
    // Piece by piece: pages the preload library moved aside stay where they are.
    vb::Result<void> r = vb::Ok();
    uint64_t done = 0;
    dma.ForEachPiece([&](uint64_t off, uint64_t len, uint64_t host, const std::shared_ptr<const void>&) {
      if (!r.has_value()) return;
      r = domain.Map(dma.iova + off, host, len, DomainProt(dma.prot));
      if (r.has_value()) done = off + len;
    });
    if (!r.has_value()) {
      if (done) (void)domain.Unmap(dma.iova, done);
      undo();
      return r;
    }
    mapped.push_back(&dma);
  }
  return vb::Ok();
}

vb::Result<void> Iommu::MapDma(const MapRequest& req) {
  vb::MutexLock l(mu_);
  MapPlan plan = TRY(PlanMap(req, dmas_, iovas_, MinPgsizeLocked()));
  if (plan.kind == MapPlan::Kind::kUpdateVaddr) {
    // 6.1: the new vaddr is recorded, not validated or re-pinned; DMA keeps reaching the old pages.
    CommitVaddrUpdate(plan);
    --vaddr_invalid_count_;
    return vb::Ok();
  }
  Dma proto;
  proto.iova = plan.iova;
  proto.size = plan.size;
  proto.vaddr = plan.vaddr;
  proto.prot = plan.prot;
  DmaTree::Prepared prepared = TRY(DmaTree::Prepare(std::move(proto)));
  Dma& dma = prepared.dma();
  if (dirty_tracking_) dma.dirty = TRY(DirtyBitmap::Create(dma.size, MinPgsizeLocked()));
  if (!domains_.empty()) TRY(PinAndMapLocked(dma));
  dmas_.Commit(std::move(prepared));
  return vb::Ok();
}

void Iommu::RemoveRecordsLocked(DmaTree::iterator begin, DmaTree::iterator end) {
  if (begin == end) return;
  // The records of a batch are consecutive in the tree, so no other record lies between the first
  // and the last IOMMU-mapped one, and a domain maps nothing but records: one unmap of that span
  // per domain removes exactly their translations. It walks only the present part of the table,
  // so UNMAP ALL of 65,535 records costs one walk instead of 65,535 (docs/performance.md).
  // One pass over the records finds the span and uncharges them (per account, in runs: records
  // of one container almost always share one account). The backend lock is held throughout, so
  // uncharging before the pages are unreachable is invisible to any other charge of this
  // container; the account may briefly read low to another container's charge, as if this unmap
  // had finished a moment earlier.
  uint64_t first = 0, last = 0;
  bool any = false;
  LockedMemory* run_account = nullptr;
  uint64_t run_bytes = 0;
  const uint64_t page = LockedMemory::PageSize();
  for (auto it = begin; it != end; ++it) {
    Dma& dma = it->second;
    if (dma.iommu_mapped) {
      if (!any) first = dma.iova;
      last = dma.last();
      any = true;
    }
    if (!dma.account || !dma.locked_bytes) continue;
    if (dma.account != run_account) {
      if (run_account) run_account->Uncharge(run_bytes);
      run_account = dma.account;
      run_bytes = 0;
    }
    // Charges are whole pages per record, so summing bytes rounded per record keeps the count.
    run_bytes += vb::AlignDown(dma.locked_bytes + (page - 1), page);
    dma.locked_bytes = 0;
  }
  if (run_account) run_account->Uncharge(run_bytes);
  if (any) {
    for (DomainRec& d : domains_) (void)d.domain->page_table()->UnmapDeferred(first, last - first + 1);
  }
  // Retire first, then one grace period per domain for the whole batch: when this returns no DMA
  // can reach the pages (strict unmap).
  if (domains_.empty()) vb::Epoch::Synchronize();
  for (DomainRec& d : domains_) d.domain->page_table()->Sync();
  dmas_.Remove(begin, end);
}

void Iommu::RemoveAllLocked() {
  RemoveRecordsLocked(dmas_.begin(), dmas_.end());
  vaddr_invalid_count_ = 0;
}

vb::Result<uint64_t> Iommu::UnmapDma(const UnmapRequest& req) {
  vb::MutexLock l(mu_);
  UnmapContext ctx{v2_, MinPgsizeLocked(), !emulated_groups_.empty(), dirty_tracking_};
  UnmapPlan plan = TRY(PlanUnmap(req, dmas_, ctx));
  if (plan.kind == UnmapPlan::Kind::kInvalidateVaddr) {
    for (auto it = plan.begin; it != plan.end; ++it) {
      it->second.vaddr_invalid = true;
      ++vaddr_invalid_count_;
    }
    return plan.unmapped_bytes;
  }
  if (plan.get_dirty_bitmap) {
    // Mapping by mapping: a fault writing one mapping's bits keeps it (earlier ones are gone).
    for (auto it = plan.begin; it != plan.end; ++it) {
      Dma& dma = it->second;
      HarvestDirtyLocked(dma);
      auto r = dma.dirty->ReportToUser(req.bitmap_data, plan.BitOffsetOf(dma, req.bitmap_pgsize),
                                       MarkAllDirtyLocked(dma));
      if (!r.has_value()) {
        for (auto v = plan.begin; v != it; ++v)
          if (v->second.vaddr_invalid) --vaddr_invalid_count_;
        RemoveRecordsLocked(plan.begin, it);
        return std::unexpected(r.error());
      }
    }
  }
  for (auto it = plan.begin; it != plan.end; ++it)
    if (it->second.vaddr_invalid) --vaddr_invalid_count_;
  RemoveRecordsLocked(plan.begin, plan.end);
  return plan.unmapped_bytes;
}

void Iommu::HarvestDirtyLocked(Dma& dma) {
  if (!options_.precise_dirty || !dma.dirty || !dma.iommu_mapped) return;
  for (DomainRec& d : domains_) {
    iommu::IoPageTable* pt = d.domain->page_table();
    if (!pt) continue;
    pt->ReadAndClearDirty(dma.iova, dma.size, [&](uint64_t iova, uint64_t len) {
      dma.dirty->MarkDirty(iova - dma.iova, len);
    });
  }
}

vb::Result<void> Iommu::DirtyPages(const DirtyRequest& req) {
  vb::MutexLock l(mu_);
  DirtyContext ctx{v2_, MinPgsizeLocked(), dirty_tracking_};
  DirtyPlan plan = TRY(PlanDirtyPages(req, dmas_, ctx));
  if (plan.noop) return vb::Ok();
  switch (plan.op) {
    case DirtyPlan::Op::kStart: {
      auto bitmaps = TRY(AllocateDirtyBitmaps(dmas_, MinPgsizeLocked()));
      size_t i = 0;
      for (auto& [iova_key, dma] : dmas_) dma.dirty = std::move(bitmaps[i++]);
      // Precise mode starts from a clean slate: writes before START are not reported.
      for (DomainRec& d : domains_)
        if (iommu::IoPageTable* pt = d.domain->page_table()) pt->SetDirtyTracking(options_.precise_dirty);
      for (auto& [iova_key, dma] : dmas_)
        for (DomainRec& d : domains_)
          if (iommu::IoPageTable* pt = d.domain->page_table())
            pt->ReadAndClearDirty(dma.iova, dma.size, [](uint64_t, uint64_t) {});
      dirty_tracking_ = true;
      return vb::Ok();
    }
    case DirtyPlan::Op::kStop:
      for (DomainRec& d : domains_)
        if (iommu::IoPageTable* pt = d.domain->page_table()) pt->SetDirtyTracking(false);
      vb::Epoch::Synchronize();
      for (auto& [iova_key, dma] : dmas_) dma.dirty.reset();
      dirty_tracking_ = false;
      return vb::Ok();
    case DirtyPlan::Op::kGetBitmap:
      for (auto it = plan.begin; it != plan.end; ++it) {
        Dma& dma = it->second;
        HarvestDirtyLocked(dma);
        TRY(dma.dirty->ReportToUser(req.bitmap_data, plan.BitOffsetOf(dma), MarkAllDirtyLocked(dma)));
        dma.dirty->ClearReported();
      }
      return vb::Ok();
  }
  return vb::Ok();
}

Info Iommu::GetInfo() {
  vb::MutexLock l(mu_);
  Info info;
  info.iova_pgsizes = pgsize_bitmap_;
  info.migration_pgsize_bitmap = MinPgsizeLocked();
  info.max_dirty_bitmap_size = kDirtyBitmapBytesMax;
  info.dma_avail = static_cast<uint32_t>(dmas_.Available());
  info.iova_ranges.assign(iovas_.ranges().begin(), iovas_.ranges().end());
  return info;
}

void Iommu::CollectUserHostRuns(uint64_t first, uint64_t last, std::vector<vb::Interval>* out) {
  vb::MutexLock l(mu_);
  for (const auto& [iova_key, dma] : dmas_) {
    if (!dma.iommu_mapped) continue;
    dma.ForEachPiece([&](uint64_t, uint64_t len, uint64_t host, const std::shared_ptr<const void>& keep) {
      if (keep) return;  // aside memory is never the program's
      const uint64_t host_last = host + (len - 1);
      if (host_last < first || host > last) return;
      out->push_back(vb::Interval{std::max(host, first), std::min(host_last, last)});
    });
  }
}

vb::Result<void> Iommu::RetargetHost(uint64_t host, uint64_t len, uint64_t new_host,
                                     std::shared_ptr<const void> keep) {
  vb::MutexLock l(mu_);
  const uint64_t win_last = host + (len - 1);
  vb::Result<void> result = vb::Ok();
  for (auto& [iova_key, dma] : dmas_) {
    if (!dma.iommu_mapped) continue;
    std::vector<Relocation> pieces;
    bool changed = false;
    dma.ForEachPiece([&](uint64_t off, uint64_t size, uint64_t at, const std::shared_ptr<const void>& k) {
      mu_.AssertHeld();
      const uint64_t at_last = at + (size - 1);
      if (k || at_last < host || at > win_last) {
        pieces.push_back(Relocation{off, size, at, k});
        return;
      }
      // Split into the part before the window, the part inside it (retargeted) and the part after.
      const uint64_t in_first = std::max(at, host), in_last = std::min(at_last, win_last);
      if (in_first > at) pieces.push_back(Relocation{off, in_first - at, at, nullptr});
      const uint64_t in_off = off + (in_first - at), in_len = in_last - in_first + 1;
      const uint64_t target = new_host + (in_first - host);
      for (DomainRec& d : domains_) {
        iommu::IoPageTable* pt = d.domain->page_table();
        if (!pt) continue;
        if (auto r = pt->Retarget(dma.iova + in_off, in_len, target); !r.has_value()) result = r;
      }
      pieces.push_back(Relocation{in_off, in_len, target, keep});
      if (in_last < at_last) pieces.push_back(Relocation{in_off + in_len, at_last - in_last, in_last + 1, nullptr});
      changed = true;
    });
    if (!changed) continue;
    // Pieces back at pinned + offset in the program's memory need no record.
    std::erase_if(pieces, [&](const Relocation& p) { return !p.keep && p.host == dma.pinned + p.offset; });
    dma.relocated = std::move(pieces);
  }
  return result;
}

size_t Iommu::mapping_count() const {
  vb::MutexLock l(mu_);
  return dmas_.Size();
}

size_t Iommu::domain_count() const {
  vb::MutexLock l(mu_);
  return domains_.size();
}

uint64_t Iommu::locked_bytes() const {
  vb::MutexLock l(mu_);
  uint64_t n = 0;
  for (const auto& [iova_key, d] : dmas_) n += d.locked_bytes;
  return n;
}

uint64_t Iommu::pgsize_bitmap() const {
  vb::MutexLock l(mu_);
  return pgsize_bitmap_;
}

iommu::Domain* Iommu::DomainOf(const iommu::Group& group) const {
  vb::MutexLock l(mu_);
  for (const DomainRec& d : domains_)
    if (std::find(d.groups.begin(), d.groups.end(), &group) != d.groups.end()) return d.domain.get();
  return nullptr;
}

}  // namespace vfio::type1

namespace vfio::type1 {

std::vector<Iommu::MappingView> Iommu::MappingsForTest() const {
  vb::MutexLock l(mu_);
  std::vector<MappingView> out;
  out.reserve(dmas_.Size());
  for (const auto& [iova_key, d] : dmas_)
    out.push_back(MappingView{d.iova, d.size, d.vaddr, d.pinned, d.prot, d.vaddr_invalid, d.iommu_mapped,
                              d.dirty != nullptr, d.locked_bytes});
  return out;
}

bool Iommu::dirty_tracking() const {
  vb::MutexLock l(mu_);
  return dirty_tracking_;
}

std::string Iommu::CheckInvariantsForTest() const {
  vb::MutexLock l(mu_);
  char buf[256];
#define VB_BAD(...)                              \
  do {                                           \
    std::snprintf(buf, sizeof buf, __VA_ARGS__); \
    return std::string(buf);                     \
  } while (0)
  uint64_t invalid = 0, mapped_total = 0;
  bool have_prev = false;
  uint64_t prev_last = 0;
  for (const auto& [key, d] : dmas_) {
    if (key != d.iova) VB_BAD("record keyed %#lx has iova %#lx", key, d.iova);
    if (d.size == 0 || d.iova + (d.size - 1) < d.iova) VB_BAD("record %#lx: bad size %#lx", d.iova, d.size);
    if (have_prev && d.iova <= prev_last) VB_BAD("record %#lx overlaps the previous one", d.iova);
    have_prev = true;
    prev_last = d.last();
    if (d.vaddr_invalid) ++invalid;
    if ((d.dirty != nullptr) != dirty_tracking_)
      VB_BAD("record %#lx: dirty bitmap %d while tracking %d", d.iova, d.dirty != nullptr, dirty_tracking_);
    if (d.iommu_mapped != !domains_.empty())
      VB_BAD("record %#lx: iommu_mapped %d with %zu domains", d.iova, d.iommu_mapped, domains_.size());
    // Pinned records are charged whole with WRITE; without it, all but their zero pages.
    const uint64_t want_locked = d.iommu_mapped ? d.size : 0;
    const bool locked_ok = (d.prot & kProtWrite) || !d.iommu_mapped ? d.locked_bytes == want_locked
                                                                     : d.locked_bytes <= want_locked;
    if (!locked_ok) VB_BAD("record %#lx: locked %#lx, expected %#lx", d.iova, d.locked_bytes, want_locked);
    if (d.locked_bytes && d.account != &account_) VB_BAD("record %#lx: charged to another account", d.iova);
    if (!d.iommu_mapped) continue;
    mapped_total += d.size;
    const uint32_t want_prot = DomainProt(d.prot);
    // Where each byte should translate: pinned + offset, or the aside memory of a piece that
    // pinning moved (a munmap/mremap/madvise under the preload library).
    auto expected_phys = [&d](uint64_t off) {
      uint64_t want = d.pinned + off;
      d.ForEachPiece([&](uint64_t p_off, uint64_t p_len, uint64_t host, const std::shared_ptr<const void>&) {
        if (off >= p_off && off - p_off < p_len) want = host + (off - p_off);
      });
      return want;
    };
    for (const DomainRec& rec : domains_) {
      for (uint64_t off = 0; off < d.size;) {
        const uint64_t iova = d.iova + off;
        auto t = rec.domain->IovaToPhys(iova);
        if (!t) VB_BAD("record %#lx: iova %#lx not translated", d.iova, iova);
        if (t->phys != expected_phys(off))
          VB_BAD("record %#lx: iova %#lx -> %#lx, expected %#lx", d.iova, iova, t->phys, expected_phys(off));
        // The table holds what the domain's driver makes of the prot (intel-iommu: always readable).
        if (t->prot != rec.domain->TableProt(want_prot))
          VB_BAD("record %#lx: iova %#lx prot %u, expected %u", d.iova, iova, t->prot,
                 rec.domain->TableProt(want_prot));
        // Step to the next leaf or the next piece boundary, whichever comes first, so a piece
        // boundary inside a leaf is still checked on both sides.
        const uint64_t leaf = t->leaf_size ? t->leaf_size : iommu::kPage4K;
        uint64_t step = leaf - (iova & (leaf - 1));
        d.ForEachPiece([&](uint64_t p_off, uint64_t p_len, uint64_t, const std::shared_ptr<const void>&) {
          if (p_off > off && p_off - off < step) step = p_off - off;
          if (p_off + p_len > off && p_off + p_len - off < step) step = p_off + p_len - off;
        });
        off += step;
      }
    }
  }
  if (invalid != vaddr_invalid_count_)
    VB_BAD("%lu records have invalid vaddrs, counter says %lu", invalid, vaddr_invalid_count_);
  int groups = 0;
  uint64_t bitmap = kAllPgsizes;
  for (const DomainRec& rec : domains_) {
    if (rec.groups.empty()) VB_BAD("a domain without groups");
    for (const iommu::Group* g : rec.groups)
      if (!g->IsCurrentDomain(*rec.domain)) VB_BAD("group %d is not attached to its domain", g->id());
    groups += static_cast<int>(rec.groups.size());
    const iommu::IoPageTable* pt = rec.domain->page_table();
    if (!pt) VB_BAD("a type1 domain without a page table");
    if (pt->mapped_bytes() != mapped_total)
      VB_BAD("a domain maps %#lx bytes, the records %#lx", pt->mapped_bytes(), mapped_total);
    bitmap &= rec.domain->pgsize_bitmap();
  }
  if (groups != num_non_pinned_groups_) VB_BAD("%d groups in domains, counter says %d", groups, num_non_pinned_groups_);
  if (bitmap & (kCpuPage - 1)) bitmap = (bitmap & ~(kCpuPage - 1)) | kCpuPage;
  if (bitmap != pgsize_bitmap_) VB_BAD("pgsize bitmap %#lx, domains give %#lx", pgsize_bitmap_, bitmap);
#undef VB_BAD
  return "";
}

}  // namespace vfio::type1
