// `full`: every query attends to every cached cell at its original position. The reference for
// quality; its cost grows with the context, so it is bounded by n_ctx.
#include "engram/memory.h"

namespace engram {
namespace {

class FullPolicy final : public MemoryPolicy {
 public:
  explicit FullPolicy(int64_t n_ctx) : n_ctx_(n_ctx) {}

  std::string name() const override { return "full"; }
  int64_t capacity() const override { return n_ctx_; }

  void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
            const BlockData& data, AttentionPlan& out) const override {
    (void)layer;
    (void)data;
    const int64_t n = block.first_cell + block.n_tokens;
    out.clear();
    out.cells.resize(n);
    out.key_pos.resize(n);
    for (int64_t c = 0; c < n; ++c) {
      out.cells[c] = c;
      out.key_pos[c] = cells[c].pos;
    }
    out.query_pos.assign(out.key_pos.end() - block.n_tokens, out.key_pos.end());
  }

 private:
  int64_t n_ctx_;
};

}  // namespace

std::unique_ptr<MemoryPolicy> make_full_policy(int64_t n_ctx) {
  return std::make_unique<FullPolicy>(n_ctx);
}

}  // namespace engram
