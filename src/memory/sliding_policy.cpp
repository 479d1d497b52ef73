// `window` and `sinks` (StreamingLLM): the first n_sink cells (0 for window) plus the last
// n_local cells before the query block. Positions are slot order inside the plan (0..n-1), not
// the stream positions, so the model always sees positions it was trained on; cells that left
// the window are dropped, so memory stays bounded however long the stream.
#include "memory/policies.h"

#include <algorithm>

namespace engram {
namespace {

class SlidingPolicy final : public MemoryPolicy {
 public:
  SlidingPolicy(std::string name, int n_sink, int n_local, int max_block, bool f16)
      : name_(std::move(name)),
        n_sink_(n_sink),
        n_local_(n_local),
        max_block_(max_block),
        f16_(f16) {}

  std::string name() const override { return name_; }
  int max_block() const override { return max_block_; }
  PolicyNeeds needs() const override {
    PolicyNeeds n;
    n.keys_before_rope = true;
    n.kv_f16 = f16_;
    return n;
  }

  void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
            const BlockData& data, AttentionPlan& out) const override {
    (void)layer;
    (void)cells;
    (void)data;
    const int64_t first = block.first_cell;
    const int64_t n_init = std::min<int64_t>(n_sink_, first);
    const int64_t local = std::max<int64_t>(n_init, first - n_local_);
    out.clear();
    auto add = [&](int64_t c) {
      out.key_pos.push_back(static_cast<int64_t>(out.cells.size()));
      out.cells.push_back(c);
    };
    for (int64_t c = 0; c < n_init; ++c) add(c);
    for (int64_t c = local; c < first + block.n_tokens; ++c) add(c);
    out.query_pos.assign(out.key_pos.end() - block.n_tokens, out.key_pos.end());
  }

  void apply(const QueryBlock& block, const std::vector<KvCell>& cells, const BlockData& data,
             Eviction& evict) override {
    (void)block;
    (void)data;
    // Cells [n_sink, end - n_local) can never be planned again. Drop them in batches of at least
    // kSlack so a decode step does not move the whole window every token.
    const int64_t end = static_cast<int64_t>(cells.size());
    const int64_t keep_from = std::max<int64_t>(n_sink_, end - n_local_);
    if (keep_from - n_sink_ >= kSlack) evict = {n_sink_, keep_from};
  }

 private:
  static constexpr int64_t kSlack = 32;
  std::string name_;
  int n_sink_, n_local_, max_block_;
  bool f16_;
};

}  // namespace

std::unique_ptr<MemoryPolicy> make_sliding_policy(const MemoryParams& p, const ModelShape& s) {
  const int n_sink = p.kind == "window" ? 0 : p.n_sink;
  return std::make_unique<SlidingPolicy>(p.kind, n_sink, p.n_local,
                                         s.n_ctx_train - n_sink - p.n_local, p.kv_f16);
}

}  // namespace engram
