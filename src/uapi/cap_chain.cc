#include "uapi/cap_chain.h"

#include <linux/vfio.h>

#include <cerrno>
#include <cstring>

#include "base/fail_point.h"
#include "uapi/user_copy.h"

namespace uapi {

void CapChain::Add(uint16_t id, uint16_t version, const void* body, size_t body_len) {
  if (failed_ || VB_FAIL_POINT("uapi.cap_alloc")) {
    failed_ = true;
    return;
  }
  size_t at = buf_.size();
  buf_.resize(at + sizeof(vfio_info_cap_header) + body_len);
  vfio_info_cap_header h{id, version, 0};
  std::memcpy(buf_.data() + at, &h, sizeof(h));
  if (body_len) std::memcpy(buf_.data() + at + sizeof(h), body, body_len);
  if (last_ != static_cast<size_t>(-1)) {
    uint32_t next = static_cast<uint32_t>(header_size_ + at);
    std::memcpy(buf_.data() + last_ + offsetof(vfio_info_cap_header, next), &next, sizeof(next));
  }
  last_ = at;
}

int CapChain::Place(uint64_t user, uint32_t* argsz, uint32_t* cap_offset, uint32_t* flags,
                    uint32_t caps_flag) const {
  if (failed_) return -ENOMEM;
  if (buf_.empty()) return 0;
  *flags |= caps_flag;
  uint64_t need = uint64_t{header_size_} + buf_.size();
  if (*argsz < need) {
    *argsz = static_cast<uint32_t>(need);
    *cap_offset = 0;
    return 0;
  }
  if (int r = CopyToUser(user + header_size_, buf_.data(), buf_.size()); r != 0) return r;
  *cap_offset = header_size_;
  return 0;
}

}  // namespace uapi
