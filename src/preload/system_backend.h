// preload::SystemBackend: the real machine behind libvfiobox-preload.so. It builds a
// topology::System inside the program's process (topology from $VFIOBOX_TOPOLOGY, else the
// built-in default machine), serves its /dev/vfio nodes through uapi::VfioNodeTable, describes it
// to the sysfs generator, applies sysfs control writes (bind, unbind, driver_override,
// drivers_probe, remove) to the model, and prints the IOMMU fault log at exit when it is not empty.
//
// Memory hooks: munmap/mremap/madvise over DMA-mapped pages keep those pages reaching the device
// (vfio::type1::PinnedPages), as the kernel's pinned pages do.
//
// Locks: mu_ (kLeaf) guards driver_overrides_ only and is never held across a call into the
// machine. Control writes run with no preload lock held (they may block: remove waits for the
// device's handles to close, as on Linux).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/mutex.h"
#include "preload/backend.h"
#include "topology/system.h"
#include "uapi/node_table.h"

namespace preload {

class SystemBackend final : public Backend, public SysfsControl {
 public:
  // Null (and a one-line message on stderr) when the topology cannot be loaded or built.
  static std::unique_ptr<SystemBackend> Create();
  ~SystemBackend() override;

  uapi::NodeTable& nodes() override { return *nodes_; }
  SysfsDescription Describe() override;
  SysfsControl* control() override { return this; }
  int OnWrite(const SysfsWrite& write) override;
  bool CurrentConfig(const std::string& device, std::vector<uint8_t>* out) override;
  // kDmarDomainTranslationStruct: iommu::DmarDomainTranslationStruct over the machine.
  bool CurrentText(const std::string& path, std::string* out) override;

  // Pinning (ARCHITECTURE "Pinning", vfio::type1::PinnedPages): DMA-mapped pages in the range are
  // moved aside (MADV_REMOVE: copied) before the call, and followed to an mremap's new address.
  int Munmap(void* addr, size_t length, const RealMemoryCalls& real) override;
  void* Mremap(void* old_addr, size_t old_size, size_t new_size, int flags, void* new_addr,
               const RealMemoryCalls& real) override;
  int Madvise(void* addr, size_t length, int advice, const RealMemoryCalls& real) override;

  topology::System& system() { return *system_; }

 private:
  explicit SystemBackend(std::unique_ptr<topology::System> system);
  void PrintFaultLog();

  std::unique_ptr<topology::System> system_;
  std::unique_ptr<uapi::VfioNodeTable> nodes_;
  vb::Mutex mu_{vb::LockRank::kLeaf};  // guards driver_overrides_
  std::map<std::string, std::string> driver_overrides_ GUARDED_BY(mu_);
};

}  // namespace preload
