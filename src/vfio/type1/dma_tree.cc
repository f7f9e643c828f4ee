#include "vfio/type1/dma_tree.h"

#include <cassert>

#include "base/checked.h"
#include "base/fail_point.h"

namespace vfio::type1 {

vb::Result<DmaTree::Prepared> DmaTree::Prepare(Dma dma) {
  TRY(vb::RangeLast(dma.iova, dma.size));
  if (VB_FAIL_POINT("type1.dma_alloc")) return vb::Err(ENOMEM, "type1.dma: alloc");
  // Build the node in a scratch map and extract it: the allocation happens here, so Commit's
  // node insert allocates nothing and cannot fail.
  Map scratch;
  uint64_t key = dma.iova;
  scratch.emplace(key, std::move(dma));
  return Prepared(scratch.extract(scratch.begin()));
}

Dma& DmaTree::Commit(Prepared&& prepared) {
  assert(!prepared.empty());
  auto result = map_.insert(std::move(prepared.node_));
  assert(result.inserted);
  return result.position->second;
}

vb::Result<Dma*> DmaTree::Insert(Dma dma) {
  uint64_t last = TRY(vb::RangeLast(dma.iova, dma.size));
  if (Overlaps(dma.iova, last)) return vb::Err(EEXIST, "type1.dma: overlaps a mapping");
  if (Available() == 0) return vb::Err(ENOSPC, "type1.dma: entry limit");
  Prepared p = TRY(Prepare(std::move(dma)));
  return &Commit(std::move(p));
}

template <typename It, typename M>
It DmaTree::FirstOverlapping(M& map, uint64_t first, uint64_t last) {
  // Records do not overlap, so only the one starting at or below `first` can reach into the
  // range from the left; otherwise the first record starting inside it is the answer.
  It it = map.upper_bound(first);
  if (it != map.begin()) {
    It prev = std::prev(it);
    if (prev->second.last() >= first) return prev;
  }
  if (it != map.end() && it->first <= last) return it;
  return map.end();
}

Dma* DmaTree::FindFirstOverlapping(uint64_t first, uint64_t last) {
  auto it = FirstOverlapping<iterator>(map_, first, last);
  return it == map_.end() ? nullptr : &it->second;
}

const Dma* DmaTree::FindFirstOverlapping(uint64_t first, uint64_t last) const {
  auto it = FirstOverlapping<const_iterator>(map_, first, last);
  return it == map_.end() ? nullptr : &it->second;
}

Dma* DmaTree::FindContaining(uint64_t iova) { return FindFirstOverlapping(iova, iova); }
const Dma* DmaTree::FindContaining(uint64_t iova) const { return FindFirstOverlapping(iova, iova); }

Dma* DmaTree::FindExact(uint64_t iova) {
  auto it = map_.find(iova);
  return it == map_.end() ? nullptr : &it->second;
}

std::ranges::subrange<DmaTree::iterator> DmaTree::Overlapping(uint64_t first, uint64_t last) {
  iterator b = FirstOverlapping<iterator>(map_, first, last);
  iterator e = last == UINT64_MAX ? map_.end() : map_.upper_bound(last);
  if (b == map_.end()) e = b;
  return {b, e};
}

std::ranges::subrange<DmaTree::const_iterator> DmaTree::Overlapping(uint64_t first,
                                                                    uint64_t last) const {
  const_iterator b = FirstOverlapping<const_iterator>(map_, first, last);
  const_iterator e = last == UINT64_MAX ? map_.end() : map_.upper_bound(last);
  if (b == map_.end()) e = b;
  return {b, e};
}

bool DmaTree::Bisects(uint64_t first, uint64_t last) const {
  const Dma* head = FindContaining(first);
  if (head && head->iova != first) return true;
  const Dma* tail = FindContaining(last);
  return tail && tail->last() != last;
}

Dma DmaTree::Extract(iterator it) {
  Dma d = std::move(it->second);
  map_.erase(it);
  return d;
}

Dma DmaTree::Extract(uint64_t iova) {
  auto it = map_.find(iova);
  assert(it != map_.end());
  return Extract(it);
}

size_t DmaTree::Remove(iterator begin, iterator end) {
  // Counted by size, not by walking the range: a walk of 65,535 cold nodes costs milliseconds.
  const size_t before = map_.size();
  map_.erase(begin, end);
  return before - map_.size();
}

}  // namespace vfio::type1
