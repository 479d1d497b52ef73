// AttentionRecorder (see attention_recorder.h).
#include "eval/attention_recorder.h"

#include <algorithm>

namespace engram::eval {

AttentionRecorder::AttentionRecorder(int64_t n_ctx) : full_(make_full_policy(n_ctx)) {}

PolicyNeeds AttentionRecorder::needs() const {
  PolicyNeeds n = full_->needs();
  n.received = true;
  return n;
}

void AttentionRecorder::plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
                             const BlockData& data, AttentionPlan& out) const {
  full_->plan(layer, block, cells, data, out);
}

void AttentionRecorder::apply(const QueryBlock& block, const std::vector<KvCell>& cells,
                              const BlockData& data, Eviction& evict) {
  received_.assign(data.received.size(), {});
  for (size_t l = 0; l < data.received.size(); ++l) {
    std::vector<float>& row = received_[l];
    row.assign(cells.size(), 0.0f);
    const auto& planned = data.planned[l];
    for (size_t j = 0; j < planned.size() && j < data.received[l].size(); ++j) {
      const int64_t c = planned[j];
      if (c >= 0 && size_t(c) < cells.size() && cells[c].pos >= 0 &&
          size_t(cells[c].pos) < row.size())
        row[size_t(cells[c].pos)] += data.received[l][j];
    }
  }
  full_->apply(block, cells, data, evict);
}

void AttentionRecorder::reset() {
  received_.clear();
  full_->reset();
}

double AttentionRecorder::mass(int64_t begin, int64_t end) const {
  double m = 0;
  for (const auto& row : received_)
    for (int64_t p = std::max<int64_t>(begin, 0); p < end && size_t(p) < row.size(); ++p)
      m += row[size_t(p)];
  return m;
}

}  // namespace engram::eval
