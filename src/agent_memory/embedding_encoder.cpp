// One encoder's embeddings per store: cosine similarity between vectors of two encoders means
// nothing, even when their dimensions agree, so the store records whose they are and a caller
// with another encoder is refused instead of mixing them.
#include <fmt/format.h>

#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram::agent_memory {

void claim_embedding_encoder(MemoryStore& store, const std::string& identity,
                             const std::string& what) {
  const std::string recorded = store.claim_embedding_encoder(identity);
  if (recorded != identity)
    throw Error(fmt::format(
        "{}: the memory store's embeddings were made by encoder '{}', but {} embeds with '{}'; "
        "embeddings of different encoders cannot be compared (use the same encoder, or "
        "another store)",
        store.location(), recorded, what, identity));
}

}  // namespace engram::agent_memory
