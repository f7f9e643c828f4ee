#include "faults/bus_access.h"

namespace faults {
namespace {

// The largest naturally aligned piece (<= 8 bytes, <= left) starting at `addr`.
unsigned PieceAt(uint64_t addr, unsigned left) {
  unsigned piece = 8;
  while (piece > 1 && ((addr & (piece - 1)) != 0 || piece > left)) piece >>= 1;
  return piece;
}

AccessStatus ReadSplit(MemoryBus& bus, uint64_t addr, uint8_t* out, unsigned size) {
  for (unsigned done = 0; done < size;) {
    unsigned piece = PieceAt(addr + done, size - done);
    BusStatus s = bus.Read(addr + done, out + done, piece);
    if (s != BusStatus::kOk) return {s, addr + done};
    done += piece;
  }
  return {};
}

AccessStatus WriteSplit(MemoryBus& bus, uint64_t addr, const uint8_t* data, unsigned size) {
  for (unsigned done = 0; done < size;) {
    unsigned piece = PieceAt(addr + done, size - done);
    BusStatus s = bus.Write(addr + done, data + done, piece);
    if (s != BusStatus::kOk) return {s, addr + done};
    done += piece;
  }
  return {};
}

bool IsScalar(unsigned size) { return size == 1 || size == 2 || size == 4 || size == 8; }

bool AllEnabled(const uint8_t* enable, unsigned size) {
  for (unsigned i = 0; i < size; ++i) {
    if (enable[i] == 0) return false;
  }
  return true;
}

}  // namespace

AccessStatus BusRead(MemoryBus& bus, uint64_t addr, uint8_t* out, unsigned size) {
  if (IsScalar(size)) {
    BusStatus s = bus.Read(addr, out, size);
    return {s, s == BusStatus::kOk ? 0 : addr};
  }
  return ReadSplit(bus, addr, out, size);
}

AccessStatus BusWrite(MemoryBus& bus, uint64_t addr, const uint8_t* data, unsigned size) {
  if (IsScalar(size)) {
    BusStatus s = bus.Write(addr, data, size);
    return {s, s == BusStatus::kOk ? 0 : addr};
  }
  if (size == 16 || size == 32 || size == 64) {
    bool accepted = false;
    BusStatus s = bus.WriteWide(addr, data, size, &accepted);
    if (s != BusStatus::kOk) return {s, addr};
    if (accepted) return {};
  }
  return WriteSplit(bus, addr, data, size);
}

namespace {
// Calls access(offset, length) for each run of enabled bytes, in address order; stops at the first
// failing one.
template <typename Access>
AccessStatus ForEachEnabledRun(unsigned size, const uint8_t* enable, Access access) {
  for (unsigned i = 0; i < size;) {
    if (enable[i] == 0) {
      ++i;
      continue;
    }
    unsigned end = i;
    while (end < size && enable[end] != 0) ++end;
    AccessStatus s = access(i, end - i);
    if (!s.ok()) return s;
    i = end;
  }
  return {};
}
}  // namespace

AccessStatus BusReadMasked(MemoryBus& bus, uint64_t addr, uint8_t* out, unsigned size, const uint8_t* enable) {
  if (AllEnabled(enable, size)) return BusRead(bus, addr, out, size);
  return ForEachEnabledRun(size, enable, [&](unsigned at, unsigned n) { return ReadSplit(bus, addr + at, out + at, n); });
}

AccessStatus BusWriteMasked(MemoryBus& bus, uint64_t addr, const uint8_t* data, unsigned size,
                            const uint8_t* enable) {
  if (AllEnabled(enable, size)) return BusWrite(bus, addr, data, size);
  return ForEachEnabledRun(size, enable, [&](unsigned at, unsigned n) { return WriteSplit(bus, addr + at, data + at, n); });
}

}  // namespace faults
