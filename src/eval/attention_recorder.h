// Attention attribution for the agent memory's retrospective reflection: how much of the
// attention of some tokens (an answer) fell on other tokens (each memory shown before it).
// engram's attention kernel already sums, per key, the softmax mass the block's queries gave it
// (PolicyNeeds::received, which the `blocks` and `episodic` policies use to pick representative
// keys); this is a `full` policy that asks for it and keeps what the last block received.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "engram/memory.h"

namespace engram::eval {

class AttentionRecorder final : public MemoryPolicy {
 public:
  explicit AttentionRecorder(int64_t n_ctx);
  std::string name() const override { return "full"; }
  PolicyNeeds needs() const override;
  int64_t capacity() const override { return full_->capacity(); }
  void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
            const BlockData& data, AttentionPlan& out) const override;
  void apply(const QueryBlock& block, const std::vector<KvCell>& cells, const BlockData& data,
             Eviction& evict) override;
  void reset() override;

  // Attention mass the last block's queries gave the cell at stream position `pos` (summed over
  // the block's queries and every head), per layer ([layer][position]); a layer's row sums to
  // (queries x heads). Positions past the last block are absent.
  const std::vector<std::vector<float>>& received() const { return received_; }
  // The mass on positions [begin, end) summed over every layer.
  double mass(int64_t begin, int64_t end) const;

 private:
  std::unique_ptr<MemoryPolicy> full_;
  std::vector<std::vector<float>> received_;
};

}  // namespace engram::eval
