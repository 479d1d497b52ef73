// `blocks` (InfLLM) and `episodic` (EM-LLM): initial tokens + memory units + local window.
//
// Cells [0, n_init) are always attended. Later cells are cut into units -- fixed blocks of
// block_size, or events closed by surprise (optionally refined on the key-similarity graph).
// The local window starts at the first unit boundary at or after end - n_local, so a unit is
// either wholly in the window or wholly in memory. While a cell is in the window the attention
// it receives (softmax probability, summed over queries and heads, as the model computed it) is
// accumulated; when its unit leaves the window, the repr_topk keys that received the most
// become its representatives, one set per layer.
//
// Retrieval scores a unit by how strongly the block's query heads match its representatives
// (score_units). A prefill chunk (see is_chunk) scores with the mean of its queries per head:
// for each query head the best dot product with any representative, then a log-sum-exp over the
// query heads. A question scores with its own last queries, by attention mass: each (query,
// head) pair spreads a softmax over every representative in memory, and a unit scores the mass
// its representatives get, summed over the pairs. Each pair then counts at most once, so pairs
// whose queries match everything (a head with large norms, a frequent token) no longer decide;
// with the max-and-log-sum-exp score such pairs let filler events outrank the pass key at 32k
// and 128k. Averaging queries or keys was tried first and lost the needle: one head of one
// query matching one key is what attention itself acts on (docs/EVALUATION.md, "Retrieval").
//
// Positions: initial cells keep theirs (0..n_init-1), every retrieved cell shares the last
// initial token's position n_init - 1 (one fixed distance, about n_local, from the queries, as
// the reference does), and the local window continues from n_init without gaps (with n_init 0,
// memory takes position 0 and the window starts at 1). Before anything has left the window
// this is exactly the full policy, and while nothing is retrieved it is exactly sinks with
// n_sink = n_init: sharing a position rather than reserving one keeps the chunks as long.
//
// The chunk gate: a prefill chunk loads a unit only when the unit's score exceeds, by
// chunk_gate nats, the score the window's own keys would get. On engram-tiny no chunk-time
// retrieval lowered perplexity (docs/EVALUATION.md): memory at one position is text the
// model never saw during training, and it takes attention from the window. Questions are not
// gated: they are what memory is for.
//
// Similarities use queries and keys before RoPE: a dot product of rotated vectors depends on
// the distance between them, which changes as the stream grows.
//
// Cost per query block: scoring streams every representative of the layer once (int8, head_dim
// + 4 bytes each; kernels/key_scores.h) for all the scoring queries at once, split over the
// threads; everything else is bounded by n_init + n_local + n_mem. A decode step (a one-token
// block) or a prefill chunk (max_block() tokens) reuses the units the last retrieval
// at its layer chose while that retrieval is fewer than retrieve_every tokens old, so over a
// long stream scoring is paid once per retrieve_every tokens instead of at every block; a
// question (a block of any other size) always retrieves. Retrieval happens in plan() (which must
// not change state), so a fresh choice is only recorded there and becomes the one later blocks
// reuse when apply() commits the block.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <queue>

#include "engram/thread_pool.h"
#include "kernels/key_scores.h"
#include "memory/policies.h"
#include "memory/segment.h"
#include "util/record_io.h"

namespace engram {
namespace {

// A question or a user's turn scores memory with each of its last (up to) this many queries; a
// prefill chunk (see is_chunk) with the mean of its queries per head, as InfLLM does, which
// keeps scoring a long stream linear in memory size.
constexpr int kScoreQueries = 64;
// Floats of per-(unit, query head) scores held at once while scoring.
constexpr int64_t kScoreChunk = int64_t{1} << 20;

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
  bool shared = true;
  Refine refine = Refine::none;
  SegmenterParams seg;
  int max_block = 0;
  double chunk_gate = 0;
  double lexical = 0;
  bool f16 = false;
  std::string kv_dir;
  int kv_cache_mib = 0;
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
  int64_t at = -1;          // first cell of the block that retrieved; -1: none
  std::vector<int> chosen;  // what the block loads, in temporal order
};

class UnitPolicy final : public MemoryPolicy {
 public:
  UnitPolicy(const UnitConfig& c, const ModelShape& s) : cfg_(c), shape_(s), seg_(c.seg) {
    reset();
  }

  std::string name() const override { return cfg_.episodic ? "episodic" : "blocks"; }
  PolicyNeeds needs() const override {
    return {.qk = true,
            .surprise = cfg_.episodic,
            .keys_before_rope = true,
            .kv_f16 = cfg_.f16,
            .received = true,
            .kv_dir = cfg_.kv_dir,
            .kv_cache_bytes = uint64_t(cfg_.kv_cache_mib) << 20};
  }
  int max_block() const override { return cfg_.max_block; }
  int64_t units() const override { return static_cast<int64_t>(units_.size()); }
  // Everything up to the end of the last unit in memory: the initial cells and the units.
  int64_t settled_cells() const override { return units_.empty() ? 0 : units_.back().end; }

  uint64_t bytes() const override {
    uint64_t b = units_.capacity() * sizeof(Unit);
    for (const auto& r : repr_) b += r.bytes();
    for (const auto& k : keys_) b += k.capacity() * sizeof(float);
    for (const auto& s : score_) b += s.capacity() * sizeof(float);
    b += df_.capacity() * sizeof(int32_t);
    return b;
  }

  void reset() override {
    units_.clear();
    repr_.assign(size_t(shape_.n_layer) * shape_.n_head_kv, KeyMatrix(shape_.head_dim));
    last_.assign(shape_.n_layer, {});
    fresh_.assign(shape_.n_layer, {});
    shared_ = {};
    closed_.clear();
    open_start_ = cfg_.n_init;
    pending_begin_ = cfg_.n_init;
    keys_.assign(shape_.n_layer, {});
    score_.assign(shape_.n_layer, {});
    df_.clear();
    unit_tokens_ = 0;
    lexical_ = {};
    seg_.reset();
  }

  void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
            const BlockData& data, AttentionPlan& out) const override {
    const int64_t first = block.first_cell;
    const int64_t n_init = std::min<int64_t>(cfg_.n_init, first);
    const int64_t local = local_start(first);
    static const std::vector<int> none;
    const std::vector<int>* chosen_ptr = &none;
    fresh_[layer].at = -1;  // set again below if this plan retrieves
    if (!units_.empty() && layer < static_cast<int>(data.q.size()) && !data.q[layer].empty()) {
      const Retrieval& last = last_[layer];
      // A question or a user's turn always retrieves for itself.
      const bool may_reuse = block.n_tokens == 1 || is_chunk(block.n_tokens);
      // A choice of nothing (the chunk gate passed no unit) is reused too: scoring is what
      // retrieve_every saves.
      if (may_reuse && last.at >= 0 && first - last.at < cfg_.retrieve_every) {
        chosen_ptr = &last.chosen;
      } else if (shared_.at == first) {
        // Second reading of a question: every layer loads what all layers chose (see reread).
        fresh_[layer] = shared_;
        chosen_ptr = &shared_.chosen;
      } else {
        Retrieval& r = fresh_[layer];
        const bool chunk = is_chunk(block.n_tokens);
        std::vector<float> score;
        const std::vector<float>* bonus =
            !chunk && cfg_.lexical > 0 ? &lexical_bonus(block, cells) : nullptr;
        std::vector<int> ranked = rank(layer, data.q[layer].data(), data.n_tokens, data.pool, chunk,
                                       chunk ? &score : nullptr, bonus);
        if (chunk) {
          // The gate: a chunk loads only units that match its queries clearly better than
          // the local window does (see MemoryParams::chunk_gate).
          const double bar =
              window_score(layer, data.q[layer].data(), data.n_tokens, local, first) +
              cfg_.chunk_gate;
          std::erase_if(ranked, [&](int u) { return score[u] < bar; });
        }
        r.chosen = select(ranked);
        r.at = first;
        chosen_ptr = &r.chosen;
      }
    }
    const std::vector<int>& chosen = *chosen_ptr;
    out.clear();
    auto add = [&](int64_t c, int64_t pos) {
      out.cells.push_back(c);
      out.key_pos.push_back(pos);
    };
    for (int64_t c = 0; c < n_init; ++c) add(c, c);
    // Memory shares the last initial token's position (position 0 when there are none).
    const int64_t mem_pos = std::max<int64_t>(n_init - 1, 0);
    for (int u : chosen) {
      for (int64_t c = units_[u].begin; c < units_[u].end; ++c) add(c, mem_pos);
    }
    const int64_t base = n_init + (n_init == 0 && !chosen.empty() ? 1 : 0);
    for (int64_t c = local; c < first + block.n_tokens; ++c) add(c, base + (c - local));
    out.query_pos.assign(out.key_pos.end() - block.n_tokens, out.key_pos.end());
  }

  // A question that every layer retrieved for is read a second time, every layer then loading
  // the union of what all layers chose. Layers differ in what they can find -- in engram-tiny
  // the first layer has no heads that match content and never ranks the needle, while the last
  // one does (docs/EVALUATION.md) -- and a unit one layer needs is then in every layer's memory.
  // Each layer keeps its own full choice, so a question may attend up to n_layer times the
  // budget; an interleaving of the layers' rankings within one budget was tried first and
  // squeezed out units that only the deepest layer ranked highly.
  bool reread(const QueryBlock& block) const override {
    const int64_t first = block.first_cell;
    if (!cfg_.shared || shared_.at == first || is_chunk(block.n_tokens) || block.n_tokens < 2) {
      return false;
    }
    std::vector<int> all;
    for (const Retrieval& r : fresh_) {
      if (r.at != first) return false;  // a layer had nothing to retrieve from
      all.insert(all.end(), r.chosen.begin(), r.chosen.end());
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    bool same = true;  // every layer already loads all of it: one reading is enough
    for (const Retrieval& r : fresh_) same = same && r.chosen == all;
    if (same) return false;
    shared_.at = first;
    shared_.chosen = std::move(all);
    return true;
  }

  void save_state(RecordWriter& out) const override {
    out.vec(units_);
    out.vec(closed_);
    out.put<int64_t>(open_start_);
    out.put<int64_t>(pending_begin_);
    for (const Retrieval& r : last_) {
      out.put<int64_t>(r.at);
      out.vec(r.chosen);
    }
    for (int l = 0; l < shape_.n_layer; ++l) {
      out.vec(keys_[l]);
      out.vec(score_[l]);
    }
    seg_.save(out);
    out.end_record();
    for (const KeyMatrix& r : repr_) {  // the bulk: one record per layer and kv head
      r.save(out);
      out.end_record();
    }
  }

  // Reads what save_state wrote and checks that it describes a state this policy could have
  // reached over `cells`: units and events in order inside the cells, keys for exactly the
  // cells not yet in memory, retrievals naming existing units.
  void load_state(RecordReader& in, const std::vector<KvCell>& cells) override {
    reset();
    const int64_t n = static_cast<int64_t>(cells.size());
    const int kv = shape_.kv_dim();
    in.next(name() + " state");
    std::vector<Unit> units = in.vec<Unit>("units", uint64_t(n));
    std::vector<Unit> closed = in.vec<Unit>("closed events", uint64_t(n));
    const int64_t open_start = in.get<int64_t>("open_start");
    const int64_t pending_begin = in.get<int64_t>("pending_begin");
    // Units, then events still in the window, tile [n_init, open_start) in order.
    int64_t at = cfg_.n_init;
    for (const std::vector<Unit>* list : {&units, &closed}) {
      for (const Unit& u : *list) {
        if (u.begin != at || u.end <= u.begin || u.end > n || u.end - u.begin > cfg_.n_local) {
          in.fail(
              list == &units ? "units" : "closed events",
              fmt::format("[{}, {}) does not follow {} inside {} cells, at most n_local {} long",
                          u.begin, u.end, at, n, cfg_.n_local));
        }
        at = u.end;
      }
    }
    if (open_start != at || (open_start > n && open_start != cfg_.n_init)) {
      in.fail("open_start", fmt::format("{}, expected {}", open_start, at));
    }
    const int64_t want_pending = units.empty() ? cfg_.n_init : units.back().end;
    if (pending_begin != want_pending) {
      in.fail("pending_begin", fmt::format("{}, expected {}", pending_begin, want_pending));
    }
    std::vector<Retrieval> last(shape_.n_layer);
    for (Retrieval& r : last) {
      r.at = in.get<int64_t>("retrieval at");
      r.chosen = in.vec<int>("retrieved units", units.size());
      if (r.at < -1 || r.at >= n) in.fail("retrieval at", fmt::format("{} is not a cell", r.at));
      for (size_t i = 0; i < r.chosen.size(); ++i) {
        const int u = r.chosen[i];
        if (u < 0 || u >= static_cast<int>(units.size()) || (i > 0 && u <= r.chosen[i - 1])) {
          in.fail("retrieved units",
                  fmt::format("unit {} is not one of {} in order", u, units.size()));
        }
      }
    }
    const uint64_t pending = uint64_t(std::max<int64_t>(0, n - pending_begin));
    std::vector<std::vector<float>> keys(shape_.n_layer), score(shape_.n_layer);
    for (int l = 0; l < shape_.n_layer; ++l) {
      keys[l] = in.vec<float>("pending keys", pending * kv);
      score[l] = in.vec<float>("pending scores", pending);
      if (keys[l].size() != pending * kv || score[l].size() != pending) {
        in.fail("pending keys", fmt::format("{} keys and {} scores for {} cells not in memory",
                                            keys[l].size() / kv, score[l].size(), pending));
      }
    }
    seg_.load(in);
    in.done();
    for (KeyMatrix& r : repr_) {
      in.next(name() + " representatives");
      r.load(in, static_cast<int64_t>(units.size()) * cfg_.repr_topk);
      in.done();
    }
    units_ = std::move(units);
    for (const Unit& u : units_) count_tokens(u, cells);
    closed_ = std::move(closed);
    open_start_ = open_start;
    pending_begin_ = pending_begin;
    last_ = std::move(last);
    keys_ = std::move(keys);
    score_ = std::move(score);
  }

  void apply(const QueryBlock& block, const std::vector<KvCell>& cells, const BlockData& data,
             Eviction& evict) override {
    shared_.at = -1;
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
    for (int l = 0; l < static_cast<int>(data.k.size()); ++l) {
      std::vector<float>& keys = keys_[l];
      std::vector<float>& score = score_[l];
      for (int i = i0; i < n; ++i) {
        const float* row = data.k[l].data() + size_t(i) * kv;
        keys.insert(keys.end(), row, row + kv);
        score.push_back(0.0f);
      }
      // Attention the block paid to cells not yet in memory (the window and the block itself).
      if (l < static_cast<int>(data.received.size())) {
        const std::vector<int64_t>& planned = data.planned[l];
        for (size_t j = 0; j < planned.size(); ++j) {
          if (planned[j] >= pending_begin_)
            score[size_t(planned[j] - pending_begin_)] += data.received[l][j];
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
    while (n_done < closed_.size() && closed_[n_done].end <= local) {
      finalize(closed_[n_done++], cells);
    }
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

  // A prefill chunk carrying a stream forward: the model cuts long inputs into blocks of
  // max_block() tokens. A block of any other size (2+ tokens) is a question or a user's turn
  // (or the rest of a long input) and retrieves for itself with its own queries.
  bool is_chunk(int n_tokens) const { return n_tokens == cfg_.max_block; }

  // First unit boundary at or after end - n_local (never before n_init).
  int64_t local_start(int64_t end) const {
    if (end <= cfg_.n_init) return end;
    const int64_t lo = std::max<int64_t>(cfg_.n_init, end - cfg_.n_local);
    for (const Unit& u : closed_) {
      if (u.begin >= lo) return u.begin;
    }
    return std::clamp<int64_t>(open_start_, lo, end);
  }

  // Each unit's score, -inf for units that cannot be among the best `keep` (see below).
  //   mean_query (a prefill chunk): one query per head, the mean of the block's; the score is
  //     the log-sum-exp over the query heads h of scale * max over the unit's representatives
  //     of q_h . k.
  //   otherwise (a question): the block's last kScoreQueries queries, each of their heads a pair
  //     p; with l(u, p) = log sum over the unit's representatives of exp(scale * q_p . k) and
  //     Z(p) = log sum over all units of exp(l(u, p)), the score is log sum_p exp(l(u, p) -
  //     Z(p)): the log of the softmax mass the pairs would give the unit's representatives if
  //     every representative in memory were attended. Two passes over the representatives.
  std::vector<float> score_units(int layer, const float* q, int n_q, bool mean_query, int keep,
                                 ThreadPool& pool, const std::vector<float>* bonus) const {
    const int hd = shape_.head_dim, n_kv = shape_.n_head_kv, group = shape_.n_head / n_kv;
    const int q_dim = shape_.q_dim(), K = cfg_.repr_topk;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    // Scoring queries: the block's own, or their mean.
    const int m = mean_query ? 1 : std::min(n_q, kScoreQueries);
    if (!mean_query) q += size_t(n_q - m) * q_dim;  // the last m
    std::vector<float> mean;
    if (mean_query && n_q > 1) {
      mean = mean_query_of(q, n_q);
      q = mean.data();
    }
    // Per kv head, its query heads of every scoring query: x[v] = [m * group][hd].
    std::vector<std::vector<float>> x(n_kv, std::vector<float>(size_t(m) * group * hd));
    for (int v = 0; v < n_kv; ++v) {
      for (int i = 0; i < m; ++i) {
        const float* src = q + size_t(i) * q_dim + size_t(v) * group * hd;
        std::copy(src, src + size_t(group) * hd, x[v].begin() + size_t(i) * group * hd);
      }
    }
    const int64_t n_units = static_cast<int64_t>(units_.size());
    const int pairs = m * shape_.n_head;  // scoring (query, head) pairs
    // Units per pass: per_pair[unit][pair] stays within kScoreChunk floats.
    const int64_t chunk = std::max<int64_t>(2, kScoreChunk / pairs);
    std::vector<float> per_pair(size_t(std::min(n_units, chunk)) * pairs);
    constexpr int kG = KeyMatrix::kGroup;
    // per_pair[u - c0][p] for units [c0, c0 + nc): the max over the unit's representatives of
    // scale * q_p . k (mean_query), or the log-sum-exp of it.
    auto pair_scores = [&](int64_t c0, int64_t nc) {
      // Each thread scores its own units (the key groups at the ends of its range may be
      // shared with a neighbour's and are then computed by both; nothing is written twice).
      pool.parallel_for(nc, 2, [&](int64_t b, int64_t e) {
        const int64_t u0 = c0 + b, u1 = c0 + e;
        const int64_t g0 = u0 * K / kG, g1 = (u1 * K + kG - 1) / kG;
        std::vector<float> out(size_t(m) * group * (g1 - g0) * kG);
        const int64_t width = (g1 - g0) * kG;
        for (int v = 0; v < n_kv; ++v) {
          key_scores(repr_[size_t(layer) * n_kv + v], x[v].data(), m * group, g0, g1, out.data());
          for (int64_t u = u0; u < u1; ++u) {
            const int64_t col = u * K - g0 * kG;
            float* pu = per_pair.data() + size_t(u - c0) * pairs;
            for (int i = 0; i < m; ++i) {
              for (int g = 0; g < group; ++g) {
                const float* r = out.data() + (size_t(i) * group + g) * width + col;
                const float mx = *std::max_element(r, r + K) * scale;
                float v_ip = mx;
                if (!mean_query) {
                  float sum = 0;
                  for (int k = 0; k < K; ++k) sum += std::exp(r[k] * scale - mx);
                  v_ip = mx + std::log(sum);
                }
                pu[i * shape_.n_head + v * group + g] = v_ip;
              }
            }
          }
        }
      });
    };
    // Z(p) for a question: a streaming log-sum-exp over every unit.
    std::vector<float> z(pairs, 0.0f);
    if (!mean_query) {
      std::vector<double> top(pairs, -std::numeric_limits<double>::infinity()), sum(pairs, 0.0);
      for (int64_t c0 = 0; c0 < n_units; c0 += chunk) {
        const int64_t nc = std::min(chunk, n_units - c0);
        pair_scores(c0, nc);
        for (int64_t u = 0; u < nc; ++u) {
          for (int p = 0; p < pairs; ++p) {
            const double v = per_pair[size_t(u) * pairs + p];
            if (v > top[p]) {
              sum[p] = sum[p] * std::exp(top[p] - v) + 1.0;
              top[p] = v;
            } else {
              sum[p] += std::exp(v - top[p]);
            }
          }
        }
      }
      for (int p = 0; p < pairs; ++p) z[p] = static_cast<float>(top[p] + std::log(sum[p]));
    }
    // A unit's score is at most its best pair's value + log(pairs): once `keep` units score
    // more than that, it cannot be among the best `keep` and its log-sum-exp is not computed.
    const float slack = static_cast<float>(std::log(double(pairs)));
    std::priority_queue<float, std::vector<float>, std::greater<float>> top;  // best `keep`
    std::vector<float> score(n_units, -std::numeric_limits<float>::infinity());
    for (int64_t c0 = 0; c0 < n_units; c0 += chunk) {
      const int64_t nc = std::min(chunk, n_units - c0);
      pair_scores(c0, nc);
      for (int64_t u = 0; u < nc; ++u) {
        float* pu = per_pair.data() + size_t(u) * pairs;
        for (int p = 0; p < pairs; ++p) pu[p] -= z[p];
        const float mx = *std::max_element(pu, pu + pairs);
        const float extra = bonus ? (*bonus)[size_t(c0 + u)] : 0.0f;
        if (static_cast<int>(top.size()) == keep && mx + slack + extra < top.top()) continue;
        double sum = 0;
        for (int p = 0; p < pairs; ++p) sum += std::exp(double(pu[p]) - mx);
        const float sc = mx + static_cast<float>(std::log(sum)) + extra;
        score[c0 + u] = sc;
        top.push(sc);
        if (static_cast<int>(top.size()) > keep) top.pop();
      }
    }
    return score;
  }

  // The mean of a block's n_q queries (q: [n_q, q_dim]), what a prefill chunk scores with.
  std::vector<float> mean_query_of(const float* q, int n_q) const {
    const int q_dim = shape_.q_dim();
    std::vector<float> mean(q_dim, 0.0f);
    for (int i = 0; i < n_q; ++i) {
      for (int j = 0; j < q_dim; ++j) mean[j] += q[size_t(i) * q_dim + j] / float(n_q);
    }
    return mean;
  }

  // The prefill-chunk score (see score_units) the local window's cells [c0, c1) would get as a
  // unit whose every key is a representative (float keys, not the int8 representatives).
  float window_score(int layer, const float* q, int n_q, int64_t c0, int64_t c1) const {
    const int hd = shape_.head_dim, group = shape_.n_head / shape_.n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::vector<float> mean = mean_query_of(q, n_q);
    std::vector<float> best(shape_.n_head, -std::numeric_limits<float>::infinity());
    for (int64_t c = std::max(c0, pending_begin_); c < c1; ++c) {
      const float* k = key(layer, c);
      for (int h = 0; h < shape_.n_head; ++h) {
        const float d = dot(mean.data() + size_t(h) * hd, k + size_t(h / group) * hd, hd) * scale;
        best[h] = std::max(best[h], d);
      }
    }
    const float top = *std::max_element(best.begin(), best.end());
    if (!std::isfinite(top)) return top;  // an empty window: any unit passes
    double sum = 0;
    for (float b : best) sum += std::exp(double(b - top));
    return top + static_cast<float>(std::log(sum));
  }

  // The units that can be loaded by a block, best first: topk blocks, or for episodic enough
  // candidates to fill the similarity buffer with the smallest events (and a few more). `scores`,
  // if given, receives every unit's score_units value.
  std::vector<int> rank(int layer, const float* q, int n_q, ThreadPool* pool, bool chunk,
                        std::vector<float>* scores = nullptr,
                        const std::vector<float>* bonus = nullptr) const {
    const int n_units = static_cast<int>(units_.size());
    const int k = static_cast<int>(std::min<int64_t>(
        n_units, cfg_.episodic ? cfg_.n_mem / std::max(1, cfg_.seg.min_event) + 8 : cfg_.topk));
    static ThreadPool inline_pool(1);  // callers without threads (unit tests) score inline
    const std::vector<float> score =
        score_units(layer, q, n_q, chunk, k, pool ? *pool : inline_pool, bonus);
    std::vector<int> order(n_units);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
      return score[a] > score[b] || (score[a] == score[b] && a < b);
    });
    order.resize(k);
    if (scores) *scores = score;
    return order;
  }

  // What a block loads from ranked candidates: the first topk blocks; or for episodic the
  // similarity buffer filled in rank order, then the neighbours of each hit.
  std::vector<int> select(const std::vector<int>& ranked) const {
    std::vector<int> chosen;
    if (!cfg_.episodic) {
      chosen.assign(ranked.begin(), ranked.begin() + std::min<size_t>(ranked.size(), cfg_.topk));
    } else {
      const int n_units = static_cast<int>(units_.size());
      const int64_t sim_budget =
          cfg_.n_mem - static_cast<int64_t>(std::llround(cfg_.contiguity * cfg_.n_mem));
      std::vector<char> taken(n_units, 0);
      int64_t used = 0;
      auto size = [&](int u) { return units_[u].end - units_[u].begin; };
      std::vector<int> hits;
      for (int u : ranked) {
        if (taken[u] || used + size(u) > sim_budget) continue;
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

  // Document frequencies for the lexical score: a unit entering memory counts each distinct token
  // it holds once.
  void count_tokens(const Unit& u, const std::vector<KvCell>& cells) {
    std::vector<int32_t> ids;
    ids.reserve(size_t(u.end - u.begin));
    for (int64_t c = u.begin; c < u.end; ++c) ids.push_back(cells[size_t(c)].token);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int32_t t : ids) {
      if (t < 0) continue;
      if (size_t(t) >= df_.size()) df_.resize(size_t(t) + 1, 0);
      ++df_[size_t(t)];
    }
    unit_tokens_ += u.end - u.begin;
  }

  // The lexical bonus of every unit for a question block: BM25 (k1 1.2, b 0.75) of the unit
  // against the block's distinct token ids, divided by the sum of the tokens' idf (so a unit
  // holding each question token about once scores about 1), times cfg_.lexical nats. A token
  // no unit holds still counts in the divisor: a question whose rare words are nowhere in memory
  // gives every unit little. Computed once per block (every layer and the second reading share
  // it); one pass over the cells of memory, so a question costs O(stream) reads of token ids.
  const std::vector<float>& lexical_bonus(const QueryBlock& block,
                                          const std::vector<KvCell>& cells) const {
    if (lexical_.at == block.first_cell && lexical_.bonus.size() == units_.size()) {
      return lexical_.bonus;
    }
    lexical_.at = block.first_cell;
    const size_t n_units = units_.size();
    lexical_.bonus.assign(n_units, 0.0f);
    if (n_units == 0) return lexical_.bonus;
    std::vector<int32_t> q;
    for (int i = 0; i < block.n_tokens; ++i) q.push_back(cells[size_t(block.first_cell + i)].token);
    std::sort(q.begin(), q.end());
    q.erase(std::unique(q.begin(), q.end()), q.end());
    const double N = double(n_units);
    std::vector<int> slot(df_.size(), -1);
    std::vector<double> idf;
    double norm = 0;
    for (int32_t t : q) {
      const double df = t >= 0 && size_t(t) < df_.size() ? df_[size_t(t)] : 0;
      const double w = std::log(1.0 + (N - df + 0.5) / (df + 0.5));
      norm += w;
      if (df > 0) {
        slot[size_t(t)] = static_cast<int>(idf.size());
        idf.push_back(w);
      }
    }
    if (idf.empty() || norm <= 0) return lexical_.bonus;
    constexpr double k1 = 1.2, b = 0.75;
    const double avg = double(unit_tokens_) / N;
    std::vector<int> tf(idf.size());
    for (size_t u = 0; u < n_units; ++u) {
      std::fill(tf.begin(), tf.end(), 0);
      for (int64_t c = units_[u].begin; c < units_[u].end; ++c) {
        const int32_t t = cells[size_t(c)].token;
        if (t >= 0 && size_t(t) < slot.size() && slot[size_t(t)] >= 0)
          ++tf[size_t(slot[size_t(t)])];
      }
      const double len_norm = k1 * (1 - b + b * double(units_[u].end - units_[u].begin) / avg);
      double s = 0;
      for (size_t j = 0; j < idf.size(); ++j) {
        if (tf[j] > 0) s += idf[j] * tf[j] * (k1 + 1) / (tf[j] + len_norm);
      }
      lexical_.bonus[u] = static_cast<float>(cfg_.lexical * s / norm);
    }
    return lexical_.bonus;
  }

  const float* key(int layer, int64_t c) const {
    return &keys_[layer][size_t(c - pending_begin_) * shape_.kv_dim()];
  }

  // Representatives per layer: the repr_topk keys that received the most attention (a unit
  // shorter than that repeats its best key, which leaves every maximum unchanged).
  void finalize(const Unit& u, const std::vector<KvCell>& cells) {
    count_tokens(u, cells);
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
      for (int v = 0; v < shape_.n_head_kv; ++v) {
        KeyMatrix& repr = repr_[size_t(l) * shape_.n_head_kv + v];
        for (int j = 0; j < cfg_.repr_topk; ++j) {
          repr.append(key(l, idx[j < k ? j : 0]) + size_t(v) * shape_.head_dim);
        }
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
  std::vector<Unit> units_;  // in memory, temporal order
  // [layer * n_head_kv + kv head]: repr_topk keys per unit, in unit order (int8; see
  // kernels/key_scores.h), one matrix per kv head so that scoring streams it.
  std::vector<KeyMatrix> repr_;
  std::vector<Retrieval> last_;  // [layer]: what decode steps may reuse
  // [layer]: the retrieval the latest plan() of the layer made (at -1 if it reused), committed
  // by apply() for its block. plan() stays const for the caller: its result depends only on
  // committed state; this is scratch.
  mutable std::vector<Retrieval> fresh_;
  mutable Retrieval shared_;  // a question's shared choice while it is read again (see reread)
  std::vector<Unit> closed_;  // closed, still in the local window
  int64_t open_start_ = 0;
  int64_t pending_begin_ = 0;              // keys/scores kept for cells [pending_begin_, end)
  std::vector<std::vector<float>> keys_;   // [layer][(c - pending_begin_) * kv_dim], before RoPE
  std::vector<std::vector<float>> score_;  // [layer][c - pending_begin_], attention received
  std::vector<int32_t> df_;                // [token id]: units in memory holding the token
  int64_t unit_tokens_ = 0;                // cells in memory units
  // The lexical bonus per unit of the block at `at` (scratch, like fresh_; see lexical_bonus).
  mutable struct {
    int64_t at = -1;
    std::vector<float> bonus;
  } lexical_;
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
  c.shared = p.shared_retrieval;
  c.refine = p.refine;
  c.seg = {p.gamma, p.tau, p.min_event, p.max_event};
  c.f16 = p.kv_f16;
  c.kv_dir = p.kv_dir;
  c.kv_cache_mib = p.kv_cache_mib;
  c.chunk_gate = p.chunk_gate;
  c.lexical = p.lexical;
  c.max_block = s.n_ctx_train - std::max(p.n_init, 1) - p.n_local;
  return std::make_unique<UnitPolicy>(c, s);
}

}  // namespace engram
