#include "base/fail_point.h"

namespace vb {

std::atomic<bool> FailInjector::armed_{false};

namespace {
std::atomic<uint64_t> g_nth{0};
std::atomic<uint64_t> g_reached{0};
std::atomic<bool> g_fired{false};
std::atomic<const char*> g_fired_name{""};
}  // namespace

void FailInjector::ArmNth(uint64_t nth) {
  g_reached.store(0);
  g_fired.store(false);
  g_fired_name.store("");
  g_nth.store(nth);
  armed_.store(nth != 0);
}

uint64_t FailInjector::Reached() { return g_reached.load(); }
bool FailInjector::Fired() { return g_fired.load(); }
const char* FailInjector::FiredName() { return g_fired_name.load(); }

bool FailInjector::ShouldFailSlow(const char* name) {
  uint64_t n = g_reached.fetch_add(1) + 1;
  if (n == g_nth.load()) {
    g_fired_name.store(name);
    g_fired.store(true);
    return true;
  }
  return false;
}

}  // namespace vb
