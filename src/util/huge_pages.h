// Large read-mostly buffers (packed weights, the bandwidth probe) backed by 2 MiB pages where
// the kernel allows it. Decode streams every weight once per token; with 4 KiB pages that is a
// TLB miss every 4 KiB, and under a hypervisor each miss is a two-level page walk.
#pragma once

#include <cstddef>

namespace engram {

// 64-byte aligned (2 MiB aligned and advised MADV_HUGEPAGE when `bytes` is at least 2 MiB);
// release with std::free. Null when out of memory.
void* allocate_huge_page_backed(size_t bytes);

}  // namespace engram
