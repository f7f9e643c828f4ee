#include "hw/bar.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "base/checked.h"
#include "base/fail_point.h"

namespace hw {

vb::Result<void> Bar::ValidateSpec(const BarSpec& spec) {
  switch (spec.kind) {
    case BarKind::kNone:
      return vb::Err(EINVAL, "bar: no kind");
    case BarKind::kIo:
      if (spec.size < 4 || spec.size > 256 || !vb::IsPowerOfTwo(spec.size))
        return vb::Err(EINVAL, "bar: I/O size not a power of two in 4..256");
      if (spec.prefetchable || spec.mappable) return vb::Err(EINVAL, "bar: I/O BAR cannot be prefetchable or mappable");
      return vb::Ok();
    case BarKind::kMem32:
      if (spec.size > (uint64_t{1} << 31)) return vb::Err(EINVAL, "bar: 32-bit BAR above 2 GiB");
      [[fallthrough]];
    case BarKind::kMem64:
      if (spec.size < 16 || !vb::IsPowerOfTwo(spec.size) || spec.size > (uint64_t{1} << 40))
        return vb::Err(EINVAL, "bar: memory size not a power of two in 16..1 TiB");
      return vb::Ok();
  }
  return vb::Err(EINVAL, "bar: bad kind");
}

vb::Result<std::unique_ptr<Bar>> Bar::Create(const BarSpec& spec, MmioHandler* handler) {
  TRY(ValidateSpec(spec));
  if (spec.mappable && handler) return vb::Err(EINVAL, "bar: a mappable BAR has no register handler");
  std::unique_ptr<Bar> bar(new Bar(spec, handler));
  if (handler) return bar;
  if (spec.mappable) {
    if (VB_FAIL_POINT("bar.memfd")) return vb::Err(ENOMEM, "bar: memfd_create");
    int fd = memfd_create("vfiobox-bar", MFD_CLOEXEC);
    if (fd < 0) return vb::Err(ENOMEM, "bar: memfd_create");
    if (ftruncate(fd, static_cast<off_t>(spec.size)) != 0) {
      close(fd);
      return vb::Err(ENOMEM, "bar: ftruncate");
    }
    void* p = mmap(nullptr, spec.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      return vb::Err(ENOMEM, "bar: mmap");
    }
    bar->fd_ = fd;
    bar->host_ = static_cast<uint8_t*>(p);
    return bar;
  }
  if (VB_FAIL_POINT("bar.plain")) return vb::Err(ENOMEM, "bar: allocation");
  // Plain non-mappable memory BARs are meant to be small; cap them to keep tests honest.
  if (spec.size > (uint64_t{64} << 20)) return vb::Err(EINVAL, "bar: plain memory BAR above 64 MiB");
  bar->plain_.assign(spec.size, 0);
  bar->host_ = bar->plain_.data();
  return bar;
}

Bar::~Bar() {
  if (fd_ >= 0) {
    munmap(host_, spec_.size);
    close(fd_);
  }
}

void Bar::Clear() {
  if (host_) std::memset(host_, 0, spec_.size);
}

}  // namespace hw
