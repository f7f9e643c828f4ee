// Failure injection in the style of iommufd's fail_nth. Every fallible internal operation (an
// allocation, a page-table table allocation, a pin) passes through VB_FAIL_POINT("name"); a test
// arms the process-wide injector to fail the Nth such point reached from now on, runs an
// operation, and checks that the state is exactly as before and the errno is the kernel's.
//
// Unarmed cost: one relaxed atomic load.
#pragma once

#include <atomic>
#include <cstdint>

namespace vb {

class FailInjector {
 public:
  // Fail the nth (1-based) fail point reached after this call; 0 disarms.
  static void ArmNth(uint64_t nth);
  static void Disarm() { ArmNth(0); }
  // How many fail points were reached since the last ArmNth (armed or not).
  static uint64_t Reached();
  // True when the armed failure has fired since the last ArmNth.
  static bool Fired();
  // The name of the point that failed since the last ArmNth ("" if none): tests map it to the
  // errno the kernel answers for that allocation.
  static const char* FiredName();

  // Called by VB_FAIL_POINT. Returns true if this point must fail.
  static bool ShouldFail(const char* name) {
    if (!armed_.load(std::memory_order_relaxed)) [[likely]]
      return false;
    return ShouldFailSlow(name);
  }

 private:
  static bool ShouldFailSlow(const char* name);
  static std::atomic<bool> armed_;
};

}  // namespace vb

#define VB_FAIL_POINT(name) (::vb::FailInjector::ShouldFail(name))
