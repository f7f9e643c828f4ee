#include "preload/path_rewriter.h"

#include <cstring>

namespace preload {

PathRewriter::PathRewriter(GeneratedTree tree) : tree_(std::move(tree)) {}

namespace {

// Copies `in` to `out` collapsing repeated slashes and "." components; ".." is kept (the kernel
// resolves it against symlinks, which a lexical rule cannot). Returns false when it does not fit.
bool Normalize(const char* in, char* out, size_t cap) {
  size_t o = 0;
  const char* p = in;
  while (*p) {
    while (*p == '/') ++p;
    const char* s = p;
    while (*p && *p != '/') ++p;
    size_t len = static_cast<size_t>(p - s);
    if (len == 0) break;
    if (len == 1 && s[0] == '.') continue;
    if (o + 1 + len + 2 > cap) return false;
    out[o++] = '/';
    memcpy(out + o, s, len);
    o += len;
  }
  if (o == 0) out[o++] = '/';
  // A trailing slash means "must be a directory": keep it.
  size_t inlen = strlen(in);
  if (inlen > 1 && in[inlen - 1] == '/' && out[o - 1] != '/') out[o++] = '/';
  out[o] = '\0';
  return true;
}

bool UnderPrefix(const char* path, const std::string& prefix) {
  size_t n = prefix.size();
  return strncmp(path, prefix.data(), n) == 0 && (path[n] == '\0' || path[n] == '/');
}

}  // namespace

PathRewriter::Result PathRewriter::Rewrite(const char* path, Buffers* b) const {
  Result r{path};
  if (path == nullptr || path[0] != '/') return r;
  const char* p = path;
  while (*p == '/') ++p;
  if (strncmp(p, "sys", 3) != 0 && strncmp(p, "dev", 3) != 0) return r;
  if (!Normalize(path, b->logical, sizeof b->logical)) return r;
  bool owned = false;
  for (const std::string& o : tree_.owned) {
    if (UnderPrefix(b->logical, o)) {
      owned = true;
      break;
    }
  }
  if (!owned) return r;
  size_t rl = tree_.root.size(), ll = strlen(b->logical);
  if (rl + ll + 1 > sizeof b->real) return r;
  memcpy(b->real, tree_.root.data(), rl);
  memcpy(b->real + rl, b->logical, ll + 1);
  r.path = b->real;
  r.ours = true;
  r.logical = b->logical;
  if (strncmp(b->logical, "/dev/vfio/", 10) == 0 && b->logical[10] != '\0') {
    r.dev_node = true;
    for (const DevNode& n : tree_.dev_nodes)
      if (n.path == b->logical) r.node = &n;
  }
  return r;
}

bool PathRewriter::MapBack(char* path) const {
  if (path == nullptr) return false;
  size_t rl = tree_.root.size();
  if (strncmp(path, tree_.root.data(), rl) != 0 || (path[rl] != '/' && path[rl] != '\0')) return false;
  if (path[rl] == '\0') {
    strcpy(path, "/");
    return true;
  }
  memmove(path, path + rl, strlen(path + rl) + 1);
  return true;
}

const ControlFile* PathRewriter::ControlOf(dev_t dev, ino_t ino) const {
  if (dev != tree_.dev) return nullptr;
  auto it = tree_.controls.find(ino);
  return it == tree_.controls.end() ? nullptr : &it->second;
}

const DevNode* PathRewriter::NodeByRdev(dev_t rdev) const {
  for (const DevNode& n : tree_.dev_nodes)
    if (n.rdev == rdev) return &n;
  return nullptr;
}

}  // namespace preload
