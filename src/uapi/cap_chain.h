// uapi::CapChain: a VFIO INFO capability chain being built (Linux: struct vfio_info_cap), and the
// argsz-grow rule every INFO ioctl follows (reference §5.7). Capabilities are laid out
// contiguously in build order, each starting with struct vfio_info_cap_header; `next` offsets are
// relative to the start of the user's INFO struct (the chain is placed right after the fixed
// struct of `header_size` bytes), the last cap's next is 0. As in 6.1 no padding is inserted
// between capabilities. A plain value; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace uapi {

class CapChain {
 public:
  explicit CapChain(uint32_t header_size) : header_size_(header_size) {}

  // Appends a capability: the header {id, version, next} followed by `body_len` bytes of body.
  void Add(uint16_t id, uint16_t version, const void* body, size_t body_len);
  size_t size() const { return buf_.size(); }
  bool empty() const { return buf_.empty(); }
  const uint8_t* data() const { return buf_.data(); }

  // The argsz-grow rule. With no caps: nothing changes. Otherwise `caps_flag` is set in *flags;
  // if *argsz covers header + chain the chain is copied to user + header_size and *cap_offset
  // becomes header_size; else *argsz becomes the size needed and *cap_offset 0 (not an error).
  // Returns 0, -EFAULT (the chain could not be written) or -ENOMEM (an Add could not allocate:
  // fail point "uapi.cap_alloc", the kernel's vfio_info_cap_add failing).
  int Place(uint64_t user, uint32_t* argsz, uint32_t* cap_offset, uint32_t* flags,
            uint32_t caps_flag) const;

 private:
  uint32_t header_size_;
  std::vector<uint8_t> buf_;
  size_t last_ = static_cast<size_t>(-1);
  bool failed_ = false;  // an Add could not allocate; Place answers ENOMEM  // offset in buf_ of the last cap's header
};

}  // namespace uapi
