// The KV-memory layer between the model and the cached keys/values.
//
// The model never reaches into the cache: once per query block (a prefill chunk or one decode
// step) and per layer it asks the memory policy for a plan -- which cells the block attends to
// and the RoPE position each key and query gets -- and the attention kernel only consumes that
// plan. plan() does not mutate; apply() (once per block, after all layers) is the only mutator.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace engram {

// Metadata of one cached token, kept apart from its K/V tensors.
struct KvCell {
  int32_t token = -1;
  int64_t pos = 0;  // position in the stream; the stored key is rotated at this position
};

// The cells a query block appended before being planned: [first_cell, first_cell + n_tokens).
struct QueryBlock {
  int64_t first_cell = 0;
  int n_tokens = 0;
};

struct AttentionPlan {
  // Cells to attend, in order; the block's own cells come last, in order, so that query i of
  // the block sees cells [0, cells.size() - n_tokens + i + 1).
  std::vector<int64_t> cells;
  std::vector<int64_t> key_pos;    // RoPE position given to each planned key
  std::vector<int64_t> query_pos;  // RoPE position given to each query of the block
  void clear() {
    cells.clear();
    key_pos.clear();
    query_pos.clear();
  }
};

class MemoryPolicy {
 public:
  virtual ~MemoryPolicy() = default;
  virtual std::string name() const = 0;
  // Most tokens the stream may hold in all; eval() refuses a block that would exceed it, before
  // changing anything. Policies that forget old cells are unbounded.
  virtual int64_t capacity() const { return std::numeric_limits<int64_t>::max(); }
  // Plans attention of `block` at `layer`. Must not change any state.
  virtual void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
                    AttentionPlan& out) const = 0;
  // Called once after all layers processed `block`.
  virtual void apply(const QueryBlock& block, const std::vector<KvCell>& cells) {
    (void)block;
    (void)cells;
  }
};

// Dense attention over every cell, at the cells' own positions; refuses to grow past n_ctx.
std::unique_ptr<MemoryPolicy> make_full_policy(int64_t n_ctx);

}  // namespace engram
