// vb::LiveCount<T>: how many T exist right now. A T that embeds one as a member is counted from
// construction to destruction; LiveCount<T>::live() reads the process-wide count. Used by the
// fuzzer and the fail-nth tests to prove that every container, group file, device file, backend
// instance and domain an operation created is gone again ("object counters return to zero").
// Lock-free: one relaxed atomic per constructor and destructor.
#pragma once

#include <atomic>
#include <cstdint>

namespace vb {

template <typename T>
class LiveCount {
 public:
  LiveCount() { n_.fetch_add(1, std::memory_order_relaxed); }
  LiveCount(const LiveCount&) : LiveCount() {}
  LiveCount& operator=(const LiveCount&) { return *this; }
  ~LiveCount() { n_.fetch_sub(1, std::memory_order_relaxed); }
  static int64_t live() { return n_.load(std::memory_order_relaxed); }

 private:
  static inline std::atomic<int64_t> n_{0};
};

}  // namespace vb
