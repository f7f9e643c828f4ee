// preload::FakeBackend: a small, self-contained machine for testing the preload library without
// the VFIO core: a container that answers GET_API_VERSION (0) and CHECK_EXTENSION (1), groups
// that answer GET_STATUS (VIABLE when every member is bound to a VFIO driver or unbound) and
// GET_DEVICE_FD (a device whose pread at the config region offset 7 << 40 reads its config
// space), and a sysfs description with a bridge, the edu behind it (group 7, vfio-pci), a group 3
// shared by a vfio-pci function, an e1000e function and a platform device. Its SysfsControl
// applies driver_override/bind/unbind/drivers_probe like the driver core.
//
// Selected by VFIOBOX_TEST_FAKE=1 (create_backend.cc). Lock: mu_ (kLeaf) guards the description;
// it is never held while installing an fd.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/mutex.h"
#include "preload/backend.h"

namespace preload {

class FakeBackend : public Backend, public uapi::NodeTable, public SysfsControl {
 public:
  FakeBackend();
  uapi::NodeTable& nodes() override { return *this; }
  SysfsDescription Describe() override EXCLUDES(mu_);
  SysfsControl* control() override { return this; }

  std::shared_ptr<uapi::FileObject> Open(const std::string& path, int flags, int* err) override
      EXCLUDES(mu_);
  int OnWrite(const SysfsWrite& write) override EXCLUDES(mu_);

  // Group ids a device is in, for the group file (-1: none).
  int GroupOf(const std::string& name) EXCLUDES(mu_);
  bool GroupViable(int group) EXCLUDES(mu_);
  std::vector<uint8_t> ConfigOf(const std::string& bdf) EXCLUDES(mu_);

 private:
  PciFunctionDesc* FindLocked(const std::string& bdf) REQUIRES(mu_);

  vb::Mutex mu_{vb::LockRank::kLeaf};  // guards desc_ and open_groups_
  SysfsDescription desc_ GUARDED_BY(mu_);
  std::map<int, std::weak_ptr<uapi::FileObject>> open_groups_ GUARDED_BY(mu_);
};

}  // namespace preload
