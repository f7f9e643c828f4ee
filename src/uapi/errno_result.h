// The UAPI edge of Result<T>: what an ioctl handler returns for a Result whose value is not the
// ioctl's return value — 0 on success, the kernel's -errno on failure.
#pragma once

#include "base/result.h"

namespace uapi {

template <typename T>
long Errno(const vb::Result<T>& r) {
  return r.has_value() ? 0 : -static_cast<long>(r.error().errnum);
}

}  // namespace uapi
