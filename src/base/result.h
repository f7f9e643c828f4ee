// Result<T>: the one error-carrying return type of vfiobox. An Error is an errno value plus a short
// static context string naming the failing operation ("type1.map: overlaps"). No exceptions cross
// a layer; at the UAPI edge an Error becomes exactly the kernel's -errno.
//
//   Result<Mapping> m = TRY(table.Map(...));   // propagate on error
//   return Err(EINVAL, "map: unaligned iova");
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

namespace vb {

struct Error {
  int errnum = 0;               // positive errno value, as ioctl() leaves in errno
  const char* context = "";     // static string: which operation and why

  std::string ToString() const;
  friend bool operator==(const Error& a, const Error& b) { return a.errnum == b.errnum; }
};

template <typename T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Err(int errnum, const char* context = "") {
  return std::unexpected<Error>(Error{errnum, context});
}

inline Result<void> Ok() { return {}; }

// The errno of a result, 0 on success. Handy in tests: EXPECT_EQ(ErrnoOf(r), EINVAL).
template <typename T>
int ErrnoOf(const Result<T>& r) {
  return r.has_value() ? 0 : r.error().errnum;
}

}  // namespace vb

// Propagates the error of a Result-valued expression; otherwise yields its value (GNU statement
// expression, accepted by GCC and Clang).
#define TRY(expr)                                                   \
  ({                                                                \
    auto&& vb_try_result_ = (expr);                                 \
    if (!vb_try_result_.has_value()) [[unlikely]]                   \
      return ::std::unexpected<::vb::Error>(vb_try_result_.error()); \
    std::move(vb_try_result_).value();                              \
  })
