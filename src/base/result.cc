#include "base/result.h"

#include <cstring>

namespace vb {

std::string Error::ToString() const {
  std::string s = context;
  if (!s.empty()) s += ": ";
  s += std::strerror(errnum);
  return s;
}

}  // namespace vb
