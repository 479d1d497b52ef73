// Helpers shared by the GGUF reader and writer.
#pragma once

#include <cstddef>

#include "engram/gguf.h"

namespace engram {

// Bytes taken by one scalar of this metadata type; 0 for STRING and ARRAY.
size_t gguf_scalar_size(GgufType type);

}  // namespace engram
