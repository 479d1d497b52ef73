// Constructors of the policies behind make_memory_policy (params already resolved).
#pragma once

#include <memory>

#include "engram/memory.h"

namespace engram {

std::unique_ptr<MemoryPolicy> make_sliding_policy(const MemoryParams& p, const ModelShape& s);
std::unique_ptr<MemoryPolicy> make_unit_policy(const MemoryParams& p, const ModelShape& s);

}  // namespace engram
