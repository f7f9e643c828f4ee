// The one definition of preload::CreateBackend() (see backend.h for the seam): the real machine
// (SystemBackend), or the test fake under VFIOBOX_TEST_FAKE=1.
#include <cstdlib>
#include <cstring>

#include "preload/backend.h"
#include "preload/fake_backend.h"
#include "preload/system_backend.h"

namespace preload {

std::unique_ptr<Backend> CreateBackend() {
  const char* fake = getenv("VFIOBOX_TEST_FAKE");
  if (fake && strcmp(fake, "1") == 0) return std::make_unique<FakeBackend>();
  return SystemBackend::Create();
}

}  // namespace preload
