// The one definition of preload::CreateBackend() (see backend.h for the seam). The system layer
// replaces the body's last line with the real machine; the fake stays selectable for tests.
#include <cstdlib>
#include <cstring>

#include "preload/backend.h"
#include "preload/fake_backend.h"

namespace preload {

std::unique_ptr<Backend> CreateBackend() {
  const char* fake = getenv("VFIOBOX_TEST_FAKE");
  if (fake && strcmp(fake, "1") == 0) return std::make_unique<FakeBackend>();
  return nullptr;
}

}  // namespace preload
