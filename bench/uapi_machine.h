// UapiMachine: the benchmarks' default machine, driven through the UAPI file objects the preload
// library dispatches to (in-process, no LD_PRELOAD): open /dev/vfio nodes, and a device the way a
// program gets one (container, group, SET_CONTAINER, type1v2, GET_DEVICE_FD). Installs the fault
// dispatcher, so register BAR mappings are trapped. Benchmark setup only: aborts on any failure.
#pragma once

#include <fcntl.h>
#include <linux/vfio.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "faults/fault_dispatcher.h"
#include "topology/system.h"
#include "uapi/fd_table.h"
#include "uapi/node_table.h"

namespace bench {

class UapiMachine {
 public:
  UapiMachine() {
    faults::FaultDispatcher::Install();
    std::string err;
    sys_ = topology::System::Create(topology::DefaultTopology(), &err);
    if (!sys_) Die(err.c_str());
    nodes_ = std::make_unique<uapi::VfioNodeTable>(sys_->vfio());
  }

  [[noreturn]] static void Die(const char* what) {
    std::fprintf(stderr, "bench: %s failed\n", what);
    std::abort();
  }
  static std::shared_ptr<uapi::FileObject> Obj(int fd) { return uapi::FdTable::Global().Lookup(fd).object; }

  topology::System& sys() { return *sys_; }

  // open(path, O_RDWR | O_CLOEXEC) of a /dev/vfio node.
  int Open(const std::string& path) {
    int e = 0;
    auto obj = nodes_->Open(path, O_RDWR, &e);
    if (!obj) Die(path.c_str());
    return uapi::FdTable::Global().Install(std::move(obj), O_CLOEXEC);
  }

  // The device fd of `name` in a container of its own (type1v2); its container fd in *container.
  int OpenDevice(const std::string& name, int* container = nullptr) {
    auto dev = sys_->machine().FindDevice(name);
    if (!dev) Die(name.c_str());
    const int c = Open("/dev/vfio/vfio");
    const int g = Open("/dev/vfio/" + std::to_string(sys_->iommu_core().GroupOf(*dev)->id()));
    if (Obj(g)->Ioctl(VFIO_GROUP_SET_CONTAINER, reinterpret_cast<unsigned long>(&c)) != 0 ||
        Obj(c)->Ioctl(VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0)
      Die("container");
    const long d = Obj(g)->Ioctl(VFIO_GROUP_GET_DEVICE_FD, reinterpret_cast<unsigned long>(name.c_str()));
    if (d < 0) Die("GET_DEVICE_FD");
    if (container) *container = c;
    return static_cast<int>(d);
  }

 private:
  std::unique_ptr<topology::System> sys_;
  std::unique_ptr<uapi::VfioNodeTable> nodes_;
};

}  // namespace bench
