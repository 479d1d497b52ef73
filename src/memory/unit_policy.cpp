// `blocks` (InfLLM) and `episodic` (EM-LLM): initial tokens + memory units + local window.
//
// Cells [0, n_init) are always attended. Later cells are cut into units -- fixed blocks of
// block_size, or events closed by surprise (optionally refined on the key-similarity graph).
// The local window starts at the first unit boundary at or after end - n_local, so a unit is
// either wholly in the window or wholly in memory. While a cell is in the window the attention
// it receives is accumulated; when its unit leaves the window, the repr_topk keys that received
// the most are averaged into the unit's representative, one per layer. Each query block and
// layer scores the units by its mean query and loads the chosen ones in temporal order.
//
// Positions: initial cells keep theirs (0..n_init-1), every retrieved cell gets position n_init
// (one fixed distance, about n_local, from the queries, as the reference does), and the local
// window continues from n_init + 1 without gaps. Before anything has left the window this is
// exactly the full policy.
//
// Attention received and similarities use queries and keys before RoPE: a dot product of
// rotated vectors depends on the distance between them, which changes as the stream grows.
//
// Cost per query block: scoring reads one representative per unit and layer, from a contiguous
// [unit][kv_dim] matrix per layer; everything else is bounded by n_init + n_local + n_mem. A
// decode step (a one-token block) reuses the units the last retrieval at its layer chose while
// that retrieval is fewer than retrieve_every tokens old, so over a long stream scoring is paid
// once per retrieve_every generated tokens instead of at every token. Retrieval happens in plan()
// (which must not change state), so a fresh choice is only recorded there and becomes the one
// decode steps reuse when apply() commits the block.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "memory/policies.h"
#include "memory/segment.h"

namespace engram {
namespace {

struct UnitConfig {
  bool episodic = false;
  int n_init = 0;
  int n_local = 0;
  int block_size = 0;
  int repr_topk = 0;
  int topk = 0;
  int n_mem = 0;
  double contiguity = 0;
  int retrieve_every = 1;
  Refine refine = Refine::none;
  SegmenterParams seg;
  int max_block = 0;
  bool f16 = false;
};

// Eight independent partial sums (the compiler keeps them in vector registers), then a fixed
// reduction order, so a score is the same whatever called it.
float dot(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// Units a retrieval chose at one layer, and when.
struct Retrieval {
  int64_t at = -1;  // first cell of the block that retrieved; -1: none
  std::vector<int> chosen;
};

class UnitPolicy final : public MemoryPolicy {
 public:
  UnitPolicy(const UnitConfig& c, const ModelShape& s) : cfg_(c), shape_(s), seg_(c.seg) {
    reset();
  }

  std::string name() const override { return cfg_.episodic ? "episodic" : "blocks"; }
  PolicyNeeds needs() const override {
    return {.qk = true, .surprise = cfg_.episodic, .keys_before_rope = true, .kv_f16 = cfg_.f16};
  }
  int max_block() const override { return cfg_.max_block; }
  int64_t units() const override { return static_cast<int64_t>(units_.size()); }

  uint64_t bytes() const override {
    uint64_t b = units_.capacity() * sizeof(Unit);
    for (const auto& r : repr_) b += r.capacity() * sizeof(float);
    for (const auto& k : keys_) b += k.capacity() * sizeof(float);
    for (const auto& s : score_) b += s.capacity() * sizeof(float);
    return b;
  }

  void reset() override {
    units_.clear();
    repr_.assign(shape_.n_layer, {});
    last_.assign(shape_.n_layer, {});
    fresh_.assign(shape_.n_layer, {});
    closed_.clear();
    open_start_ = cfg_.n_init;
    pending_begin_ = cfg_.n_init;
    keys_.assign(shape_.n_layer, {});
    score_.assign(shape_.n_layer, {});
    seg_.reset();
  }

  void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
            const BlockData& data, AttentionPlan& out) const override {
    (void)cells;
    const int64_t first = block.first_cell;
    const int64_t n_init = std::min<int64_t>(cfg_.n_init, first);
    const int64_t local = local_start(first);
    std::vector<int> fresh;
    const std::vector<int>* chosen_ptr = &fresh;
    fresh_[layer].at = -1;  // set again below if this plan retrieves
    if (!units_.empty() && layer < static_cast<int>(data.q.size()) && !data.q[layer].empty()) {
      const Retrieval& last = last_[layer];
      if (block.n_tokens == 1 && last.at >= 0 && !last.chosen.empty() &&
          first - last.at < cfg_.retrieve_every) {
        chosen_ptr = &last.chosen;
      } else {
        fresh = retrieve(layer, data.q[layer].data(), data.n_tokens);
        fresh_[layer].at = first;
        fresh_[layer].chosen = fresh;
      }
    }
    const std::vector<int>& chosen = *chosen_ptr;
    out.clear();
    auto add = [&](int64_t c, int64_t pos) {
      out.cells.push_back(c);
      out.key_pos.push_back(pos);
    };
    for (int64_t c = 0; c < n_init; ++c) add(c, c);
    for (int u : chosen) {
      for (int64_t c = units_[u].begin; c < units_[u].end; ++c) add(c, n_init);
    }
    const int64_t base = n_init + (chosen.empty() ? 0 : 1);
    for (int64_t c = local; c < first + block.n_tokens; ++c) add(c, base + (c - local));
    out.query_pos.assign(out.key_pos.end() - block.n_tokens, out.key_pos.end());
  }

  void apply(const QueryBlock& block, const std::vector<KvCell>& cells, const BlockData& data,
             Eviction& evict) override {
    (void)evict;  // memory units keep their cells
    const int64_t first = block.first_cell;
    // Retrievals plan() made for this block become the ones later decode steps reuse.
    for (int l = 0; l < shape_.n_layer; ++l) {
      if (fresh_[l].at != first) continue;
      std::swap(last_[l], fresh_[l]);
      fresh_[l].at = -1;
    }
    const int64_t end = static_cast<int64_t>(cells.size());
    const int n = block.n_tokens;
    const int kv = shape_.kv_dim();
    const int i0 = static_cast<int>(std::clamp<int64_t>(cfg_.n_init - first, 0, n));
    if (!data.q.empty()) {
      std::vector<float> fold(kv), suffix(kv);
      for (int l = 0; l < shape_.n_layer; ++l) {
        std::vector<float>& keys = keys_[l];
        std::vector<float>& score = score_[l];
        // Block cells: query i sees cells up to its own, so cell i is seen by queries i..n-1.
        std::fill(suffix.begin(), suffix.end(), 0.0f);
        std::vector<float> own(n, 0.0f);
        for (int i = n - 1; i >= 0; --i) {
          fold_query(&data.q[l][size_t(i) * shape_.q_dim()], fold.data());
          for (int j = 0; j < kv; ++j) suffix[j] += fold[j];
          own[i] = dot(suffix.data(), &data.k[l][size_t(i) * kv], kv);
        }
        // Window cells before the block are seen by every query.
        for (int64_t c = pending_begin_; c < first; ++c) {
          const size_t r = size_t(c - pending_begin_);
          score[r] += dot(suffix.data(), &keys[r * kv], kv);
        }
        for (int i = i0; i < n; ++i) {
          const float* row = data.k[l].data() + size_t(i) * kv;
          keys.insert(keys.end(), row, row + kv);
          score.push_back(own[i]);
        }
      }
    }

    for (int i = i0; i < n; ++i) {
      const int64_t c = first + i;
      bool cut;
      if (cfg_.episodic) {
        cut = data.surprise.empty() ? seg_.push_forced() : seg_.push(data.surprise[i]);
      } else {
        cut = c - open_start_ == cfg_.block_size;
      }
      if (!cut || c == open_start_) continue;
      closed_.push_back({open_start_, c});
      open_start_ = c;
      if (cfg_.episodic && cfg_.refine != Refine::none && closed_.size() >= 2) refine_last();
    }

    const int64_t local = local_start(end);
    size_t n_done = 0;
    while (n_done < closed_.size() && closed_[n_done].end <= local) finalize(closed_[n_done++]);
    closed_.erase(closed_.begin(), closed_.begin() + n_done);
    if (n_done > 0) {
      const int64_t new_begin = units_.back().end;
      const size_t drop = size_t(new_begin - pending_begin_);
      for (int l = 0; l < shape_.n_layer; ++l) {
        keys_[l].erase(keys_[l].begin(), keys_[l].begin() + drop * kv);
        score_[l].erase(score_[l].begin(), score_[l].begin() + drop);
      }
      pending_begin_ = new_begin;
    }
  }

 private:
  struct Unit {
    int64_t begin = 0, end = 0;
  };

  // First unit boundary at or after end - n_local (never before n_init).
  int64_t local_start(int64_t end) const {
    if (end <= cfg_.n_init) return end;
    const int64_t lo = std::max<int64_t>(cfg_.n_init, end - cfg_.n_local);
    for (const Unit& u : closed_) {
      if (u.begin >= lo) return u.begin;
    }
    return std::clamp<int64_t>(open_start_, lo, end);
  }

  // Sum of the query heads that share each kv head: [q_dim] -> [kv_dim].
  void fold_query(const float* q, float* out) const {
    const int hd = shape_.head_dim, group = shape_.n_head / shape_.n_head_kv;
    std::fill(out, out + shape_.kv_dim(), 0.0f);
    for (int h = 0; h < shape_.n_head; ++h) {
      float* o = out + (h / group) * hd;
      for (int d = 0; d < hd; ++d) o[d] += q[h * hd + d];
    }
  }

  std::vector<int> retrieve(int layer, const float* q, int n_q) const {
    const int kv = shape_.kv_dim();
    std::vector<float> qbar(kv, 0.0f), fold(kv);
    for (int i = 0; i < n_q; ++i) {
      fold_query(q + size_t(i) * shape_.q_dim(), fold.data());
      for (int j = 0; j < kv; ++j) qbar[j] += fold[j];
    }
    const int n_units = static_cast<int>(units_.size());
    std::vector<float> score(n_units);
    const float* rows = repr_[layer].data();
    for (int u = 0; u < n_units; ++u) score[u] = dot(qbar.data(), rows + size_t(u) * kv, kv);
    std::vector<int> order(n_units);
    std::iota(order.begin(), order.end(), 0);
    auto by_score = [&](int a, int b) {
      return score[a] > score[b] || (score[a] == score[b] && a < b);
    };

    std::vector<int> chosen;
    if (!cfg_.episodic) {
      const int k = std::min(cfg_.topk, n_units);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), by_score);
      chosen.assign(order.begin(), order.begin() + k);
    } else {
      // Similarity buffer first, then the neighbours of each hit, in rank order.
      const int64_t sim_budget =
          cfg_.n_mem - static_cast<int64_t>(std::llround(cfg_.contiguity * cfg_.n_mem));
      const int k = std::min<int64_t>(n_units, cfg_.n_mem / std::max(1, cfg_.seg.min_event) + 8);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), by_score);
      std::vector<char> taken(n_units, 0);
      int64_t used = 0;
      auto size = [&](int u) { return units_[u].end - units_[u].begin; };
      std::vector<int> hits;
      for (int r = 0; r < k; ++r) {
        const int u = order[r];
        if (used + size(u) > sim_budget) continue;
        used += size(u);
        taken[u] = 1;
        hits.push_back(u);
      }
      chosen = hits;
      for (int u : hits) {
        for (int nb : {u - 1, u + 1}) {
          if (nb < 0 || nb >= n_units || taken[nb] || used + size(nb) > cfg_.n_mem) continue;
          used += size(nb);
          taken[nb] = 1;
          chosen.push_back(nb);
        }
      }
    }
    std::sort(chosen.begin(), chosen.end());
    return chosen;
  }

  const float* key(int layer, int64_t c) const {
    return &keys_[layer][size_t(c - pending_begin_) * shape_.kv_dim()];
  }

  // Representative per layer: mean of the repr_topk keys that received the most attention.
  void finalize(const Unit& u) {
    const int kv = shape_.kv_dim();
    const int64_t len = u.end - u.begin;
    const int k = static_cast<int>(std::min<int64_t>(cfg_.repr_topk, len));
    std::vector<int64_t> idx(len);
    for (int l = 0; l < shape_.n_layer; ++l) {
      std::iota(idx.begin(), idx.end(), u.begin);
      const std::vector<float>& score = score_[l];
      auto sc = [&](int64_t c) { return score[size_t(c - pending_begin_)]; };
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
        return sc(a) > sc(b) || (sc(a) == sc(b) && a < b);
      });
      std::vector<float>& repr = repr_[l];
      const size_t at = repr.size();
      repr.resize(at + kv, 0.0f);
      for (int j = 0; j < k; ++j) {
        const float* kk = key(l, idx[j]);
        for (int d = 0; d < kv; ++d) repr[at + d] += kk[d] / k;
      }
    }
    units_.push_back(u);
  }

  // Moves the boundary between the last two closed events to the best split of their cells on
  // the similarity graph of the upper layers' keys (negative similarities count as no edge).
  void refine_last() {
    Unit& left = closed_[closed_.size() - 2];
    Unit& right = closed_.back();
    const int64_t a = left.begin, c = right.end;
    const int m = static_cast<int>(c - a);
    const int kv = shape_.kv_dim();
    std::vector<double> A(size_t(m) * m, 0.0);
    for (int l = shape_.n_layer / 2; l < shape_.n_layer; ++l) {
      for (int i = 0; i < m; ++i) {
        for (int j = i + 1; j < m; ++j)
          A[size_t(i) * m + j] += dot(key(l, a + i), key(l, a + j), kv);
      }
    }
    for (int i = 0; i < m; ++i) {
      for (int j = i + 1; j < m; ++j) {
        const double w = std::max(0.0, A[size_t(i) * m + j]);
        A[size_t(i) * m + j] = A[size_t(j) * m + i] = w;
      }
    }
    const int lo = static_cast<int>(std::max<int64_t>(cfg_.seg.min_event, m - cfg_.seg.max_event));
    const int hi = static_cast<int>(std::min<int64_t>(m - cfg_.seg.min_event, cfg_.seg.max_event));
    const int s = best_split(A, m, lo, hi, static_cast<int>(left.end - a), cfg_.refine);
    left.end = right.begin = a + s;
  }

  UnitConfig cfg_;
  ModelShape shape_;
  SurpriseSegmenter seg_;
  std::vector<Unit> units_;               // in memory, temporal order
  std::vector<std::vector<float>> repr_;  // [layer][unit * kv_dim]
  std::vector<Retrieval> last_;           // [layer]: what decode steps may reuse
  // [layer]: the retrieval the latest plan() of the layer made (at -1 if it reused), committed
  // by apply() for its block. plan() stays const for the caller: its result depends only on
  // committed state; this is scratch.
  mutable std::vector<Retrieval> fresh_;
  std::vector<Unit> closed_;  // closed, still in the local window
  int64_t open_start_ = 0;
  int64_t pending_begin_ = 0;              // keys/scores kept for cells [pending_begin_, end)
  std::vector<std::vector<float>> keys_;   // [layer][(c - pending_begin_) * kv_dim], before RoPE
  std::vector<std::vector<float>> score_;  // [layer][c - pending_begin_], attention received
};

}  // namespace

std::unique_ptr<MemoryPolicy> make_unit_policy(const MemoryParams& p, const ModelShape& s) {
  UnitConfig c;
  c.episodic = p.kind == "episodic";
  c.n_init = p.n_init;
  c.n_local = p.n_local;
  c.block_size = p.block_size;
  c.repr_topk = p.repr_topk;
  c.topk = p.topk;
  c.n_mem = p.n_mem;
  c.contiguity = p.contiguity;
  c.retrieve_every = p.retrieve_every;
  c.refine = p.refine;
  c.seg = {p.gamma, p.tau, p.min_event, p.max_event};
  c.f16 = p.kv_f16;
  c.max_block = s.n_ctx_train - p.n_init - 1 - p.n_local;
  return std::make_unique<UnitPolicy>(c, s);
}

}  // namespace engram
