#include "uapi/node_table.h"

#include <sys/sysmacros.h>

#include <cerrno>

#include "base/fail_point.h"
#include "uapi/container_file.h"
#include "uapi/group_file.h"

namespace uapi {
namespace {
constexpr const char kContainerPath[] = "/dev/vfio/vfio";
constexpr const char kPrefix[] = "/dev/vfio/";
}  // namespace

int VfioNodeTable::ParseGroupPath(const std::string& path) {
  const size_t plen = sizeof(kPrefix) - 1;
  if (path.size() <= plen || path.compare(0, plen, kPrefix) != 0) return -1;
  long n = 0;
  for (size_t i = plen; i < path.size(); ++i) {
    char c = path[i];
    if (c < '0' || c > '9') return -1;
    // No leading zeros: "/dev/vfio/07" is not the node of group 7.
    if (i == plen && c == '0' && path.size() > plen + 1) return -1;
    n = n * 10 + (c - '0');
    if (n > 0x7fffffff) return -1;
  }
  return static_cast<int>(n);
}

std::shared_ptr<FileObject> VfioNodeTable::Open(const std::string& path, int flags, int* err) {
  std::shared_ptr<FileObject> obj;
  *err = 0;
  // The struct file (and for the container, the vfio_container) allocation.
  if (VB_FAIL_POINT("uapi.node_open")) {
    *err = ENOMEM;
    return nullptr;
  }
  if (path == kContainerPath) {
    obj = std::make_shared<ContainerFileObject>(vfio_.OpenContainer());
  } else if (int id = ParseGroupPath(path); id < 0 || !vfio_.FindGroup(id)) {
    *err = ENOENT;
  } else {
    auto g = vfio_.OpenGroup(id);
    if (!g)
      *err = g.error().errnum;
    else
      obj = std::make_shared<GroupFileObject>(std::move(*g), fds_);
  }
  return obj;
}

std::optional<dev_t> VfioNodeTable::Rdev(const std::string& path) const {
  if (path == kContainerPath) return makedev(kMiscMajor, kVfioMinor);
  int id = ParseGroupPath(path);
  if (id < 0 || !vfio_.FindGroup(id)) return std::nullopt;
  return makedev(kGroupMajor, static_cast<unsigned>(id));
}

std::vector<int> VfioNodeTable::GroupIds() const {
  std::vector<int> ids;
  for (const auto& g : vfio_.Groups()) ids.push_back(g->id());
  return ids;
}

}  // namespace uapi
