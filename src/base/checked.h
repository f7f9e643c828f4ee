// Checked address arithmetic. Every iova+size in vfiobox goes through these: an overflow is an
// error, never a wrap. Conventions (from iommufd): `first`/`last` are inclusive, `begin`/`end`
// exclusive, and one function never mixes the two.
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.h"

namespace vb {

inline std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The inclusive last address of [start, start + size). size must be non-zero; a range that would
// wrap past 2^64 is an error (EINVAL as Linux 6.1 answers; EOVERFLOW on >= 6.18).
inline Result<uint64_t> RangeLast(uint64_t start, uint64_t size, int overflow_errno = EINVAL) {
  if (size == 0) return Err(EINVAL, "range: zero size");
  uint64_t last;
  if (__builtin_add_overflow(start, size - 1, &last)) return Err(overflow_errno, "range: overflow");
  return last;
}

constexpr bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
constexpr bool IsAligned(uint64_t v, uint64_t align) { return (v & (align - 1)) == 0; }
constexpr uint64_t AlignDown(uint64_t v, uint64_t align) { return v & ~(align - 1); }

// An inclusive interval [first, last]. Never empty.
struct Interval {
  uint64_t first = 0;
  uint64_t last = 0;
  bool Contains(uint64_t a) const { return a >= first && a <= last; }
  bool Contains(const Interval& o) const { return o.first >= first && o.last <= last; }
  bool Overlaps(const Interval& o) const { return first <= o.last && o.first <= last; }
  friend bool operator==(const Interval&, const Interval&) = default;
};

}  // namespace vb
