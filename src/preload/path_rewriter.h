// preload::PathRewriter: decides which paths the preload library serves and where they live. It
// holds one generated tree (immutable) and rewrites an absolute path whose leading components are
// one of the tree's owned roots ("/sys/bus/pci", "/dev/vfio", ...) to the same path under the
// tree's directory; every other path (relative ones, other /sys files such as
// /sys/devices/system/cpu) is left to the real filesystem. See docs/design/0005-preload-path-rewrite.md.
//
// Allocation-free and lock-free (it is immutable): callers provide the buffers, so the interposed
// open/stat stay async-signal-safe for paths that are not ours. Owned by the preload runtime,
// which publishes a new rewriter after each regeneration and never frees an old one.
#pragma once

#include <climits>
#include <cstddef>

#include "preload/sysfs_tree.h"

namespace preload {

class PathRewriter {
 public:
  explicit PathRewriter(GeneratedTree tree);

  struct Buffers {
    char logical[PATH_MAX];         // the normalized path as the program named it
    char real[PATH_MAX + 256];      // where it lives in the tree
  };
  struct Result {
    const char* path;               // what to hand the real libc: `path` itself or buffers.real
    bool ours = false;              // rewritten into the tree
    bool dev_node = false;          // under /dev/vfio/ (a node, not the directory): NodeTable's
    const DevNode* node = nullptr;  // the node, when the tree has one at that path
    const char* logical = nullptr;  // buffers.logical when ours
  };
  // `path` may be null (the real call reports EFAULT). Paths too long to rewrite stay untouched.
  Result Rewrite(const char* path, Buffers* b) const;

  // Strips the tree's directory from a path the real libc returned (realpath, getcwd): in place.
  // Returns true when it did.
  bool MapBack(char* path) const;

  const ControlFile* ControlOf(dev_t dev, ino_t ino) const;
  const DevNode* NodeByRdev(dev_t rdev) const;
  const GeneratedTree& tree() const { return tree_; }

 private:
  GeneratedTree tree_;
};

}  // namespace preload
