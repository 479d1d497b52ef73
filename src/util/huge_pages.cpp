#include "util/huge_pages.h"

#include <sys/mman.h>

#include <cstdlib>

namespace engram {

void* allocate_huge_page_backed(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes < kHuge) return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;  // aligned_alloc needs a multiple
  void* p = std::aligned_alloc(kHuge, rounded);
  // Advice only: with transparent huge pages off, the buffer still works with small pages.
  if (p) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

}  // namespace engram
