// Test helper (header-only): a value snapshot of a DmaTree, to assert "nothing changed" after a
// refused operation, and a builder for trees of plain mappings.
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "vfio/type1/dma_tree.h"

namespace vfio::type1::testing {

using DmaRow = std::tuple<uint64_t, uint64_t, uint64_t, uint32_t, bool>;  // iova size vaddr prot inv

inline std::vector<DmaRow> Snapshot(const DmaTree& tree) {
  std::vector<DmaRow> rows;
  for (const auto& [iova, d] : tree) rows.emplace_back(d.iova, d.size, d.vaddr, d.prot, d.vaddr_invalid);
  return rows;
}

inline Dma MakeDma(uint64_t iova, uint64_t size, uint64_t vaddr = 0x10000000,
                   uint32_t prot = kProtRead | kProtWrite, bool vaddr_invalid = false) {
  Dma d;
  d.iova = iova;
  d.size = size;
  d.vaddr = vaddr;
  d.prot = prot;
  d.vaddr_invalid = vaddr_invalid;
  return d;
}

}  // namespace vfio::type1::testing
