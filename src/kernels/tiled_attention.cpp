// attention() (ops.h) as tiled attention (tiled_attention.h): the tasks, the packing of their
// queries, the scalar tile kernel, and the softmax probabilities for the callers that ask.
#include "kernels/tiled_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/thread_pool.h"
#include "kernels/ops_internal.h"

namespace engram {

void attention_tile_scalar(const AttentionTile& t) {
  float* m = t.m;
  float* l = t.l;
  float s[kTileKeys];
  std::fill(m, m + kTileRows, kTileMasked);
  std::fill(l, l + kTileRows, 0.0f);
  std::fill(t.o, t.o + int64_t{t.rows} * t.hd, 0.0f);
  for (int64_t j0 = t.j_begin; j0 < t.j_end; j0 += kTileKeys) {
    const int nk = static_cast<int>(std::min<int64_t>(kTileKeys, t.j_end - j0));
    for (int r = 0; r < t.rows; ++r) {
      float m_new = m[r];
      for (int jj = 0; jj < nk; ++jj) {
        const int64_t j = j0 + jj;
        float x = kTileMasked;
        if (j < t.limit[r]) {
          const float* k = t.k + j * t.k_stride;
          x = 0.0f;
          for (int d = 0; d < t.hd; ++d) x += t.qt[d * kTileRows + r] * k[d];
        }
        s[jj] = x;
        m_new = std::max(m_new, x);
      }
      const float corr = std::exp(m[r] - m_new);
      float* o = t.o + r * t.hd;
      for (int d = 0; d < t.hd; ++d) o[d] *= corr;
      l[r] *= corr;
      for (int jj = 0; jj < nk; ++jj) {
        if (s[jj] == kTileMasked) continue;
        const float p = std::exp(s[jj] - m_new);
        l[r] += p;
        const float* v = t.v + (j0 + jj) * t.v_stride;
        for (int d = 0; d < t.hd; ++d) o[d] += p * v[d];
      }
      m[r] = m_new;
    }
  }
}

namespace {

// Keys per task when the keys are split (few queries): 256 rows of K and V of every kv head
// (512 KiB at 4 kv heads of 64) stay in L2 while each kv head in turn reads its part of them.
constexpr int64_t kSplitKeys = 256;

// The rows of a task: heads [h0, h0 + nh) of kv head kvh over queries [i0, i0 + nq); row r is
// query i0 + r / nh, head h0 + r % nh.
struct TaskRows {
  int64_t i0 = 0;
  int nq = 0, kvh = 0, h0 = 0, nh = 0;
  int rows() const { return nq * nh; }
};

class TiledAttention {
 public:
  TiledAttention(AttentionTileFn tile, const VecKernels& vk, const AttentionArgs& a)
      : tile_(tile), vk_(vk), a_(a), group_(a.n_head / a.n_head_kv), hd_(a.head_dim) {
    // A task's rows: `heads_` query heads of one kv head (all of them, up to kTileRows) over a
    // run of up to `run_` consecutive queries, so each K/V tile is read once for all its rows.
    heads_ = std::min(group_, kTileRows);
    head_parts_ = (group_ + heads_ - 1) / heads_;
    run_ = std::max(1, kTileRows / heads_);
    n_runs_ = (a.n_q + run_ - 1) / run_;
    parts_ = int64_t{a.n_head_kv} * head_parts_;
  }

  void run(ThreadPool& pool) {
    if (n_runs_ == 1) {
      run_split_keys(pool);
    } else {
      run_query_blocks(pool);
    }
  }

 private:
  struct Scratch {  // one thread's
    std::vector<float> qt, q, o;
    int64_t limit[kTileRows];
    float m[kTileRows], l[kTileRows];
    explicit Scratch(int hd)
        : qt(size_t(hd) * kTileRows), q(size_t(kTileRows) * hd), o(size_t(kTileRows) * hd) {}
  };

  // Part p (a kv head and a run of its query heads) over the queries from i0.
  TaskRows rows_of(int64_t i0, int64_t p) const {
    TaskRows t;
    t.i0 = i0;
    t.nq = static_cast<int>(std::min<int64_t>(run_, a_.n_q - i0));
    t.kvh = static_cast<int>(p / head_parts_);
    t.h0 = t.kvh * group_ + static_cast<int>(p % head_parts_) * heads_;
    t.nh = std::min(heads_, (t.kvh + 1) * group_ - t.h0);
    return t;
  }

  // The tile of the rows over all the keys they see, their queries packed into x.
  AttentionTile pack(const TaskRows& tr, Scratch& x) const {
    const int rows = tr.rows();
    const int padded = (rows + 15) / 16 * 16;  // whole vectors of rows, at 8 or 16 per vector
    for (int d = 0; d < hd_; ++d) {
      std::fill(&x.qt[size_t(d) * kTileRows + rows], &x.qt[size_t(d) * kTileRows + padded], 0.0f);
    }
    std::fill(x.limit + rows, x.limit + kTileRows, int64_t{0});
    for (int r = 0; r < rows; ++r) {
      const int64_t i = tr.i0 + r / tr.nh;
      const float* q = a_.q + (i * a_.n_head + tr.h0 + r % tr.nh) * hd_;
      for (int d = 0; d < hd_; ++d) {
        x.q[size_t(r) * hd_ + d] = q[d] * a_.scale;
        x.qt[size_t(d) * kTileRows + r] = q[d] * a_.scale;
      }
      x.limit[r] = visible_keys(a_, i);
    }
    AttentionTile t;
    t.qt = x.qt.data();
    t.q = x.q.data();
    t.k = a_.k + int64_t{tr.kvh} * hd_;
    t.v = a_.v + int64_t{tr.kvh} * hd_;
    t.k_stride = a_.k_stride;
    t.v_stride = a_.v_stride;
    t.hd = hd_;
    t.rows = tr.rows();
    t.limit = x.limit;
    t.j_end = x.limit[tr.rows() - 1];
    t.n_full = x.limit[0];
    t.o = x.o.data();
    t.m = x.m;
    t.l = x.l;
    return t;
  }

  // Row r's output O / l and, if asked, its probabilities exp(score - m - log l), the scores
  // computed again: only the policies that choose keys by the attention they receive pay.
  void finish_row(const TaskRows& tr, int r, const float* o, float m, float l) const {
    const int64_t row = (tr.i0 + r / tr.nh) * a_.n_head + tr.h0 + r % tr.nh;
    float* out = a_.out + row * hd_;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int d = 0; d < hd_; ++d) out[d] = o[d] * inv;
    if (!a_.probs) return;
    float* p = a_.probs + row * a_.n_kv;
    const int64_t n_vis = l > 0.0f ? visible_keys(a_, tr.i0 + r / tr.nh) : 0;
    if (n_vis > 0) {
      vk_.scores(a_.q + row * hd_, 1, hd_, a_.k + int64_t{tr.kvh} * hd_, a_.k_stride, n_vis,
                 a_.scale, p);
      vk_.exp_sum(p, n_vis, m + std::log(l));
    }
    std::fill(p + n_vis, p + a_.n_kv, 0.0f);
  }

  // Many queries: a task is a run of queries x a part, over all the keys they see.
  void run_query_blocks(ThreadPool& pool) {
    const int64_t n_tasks = n_runs_ * parts_;
    std::atomic<int64_t> next_task{0};  // taken dynamically: a task's cost grows with its keys
    pool.run([&](int, int) {
      Scratch x(hd_);
      for (int64_t task; (task = next_task.fetch_add(1, std::memory_order_relaxed)) < n_tasks;) {
        // The last queries see the most keys: they go first, so the pool ends on short tasks.
        const TaskRows tr = rows_of((n_runs_ - 1 - task / parts_) * run_, task % parts_);
        tile_(pack(tr, x));
        for (int r = 0; r < tr.rows(); ++r) {
          finish_row(tr, r, &x.o[size_t(r) * hd_], x.m[r], x.l[r]);
        }
      }
    });
  }

  // Few queries (decode): too few rows to share out, so the keys are shared out instead. A
  // task is a range of kSplitKeys keys, for every part in turn (so each K/V row is read from
  // memory once, by one thread); each row's states over the ranges are merged at the end.
  void run_split_keys(ThreadPool& pool) {
    const int64_t n_keys = visible_keys(a_, a_.n_q - 1);
    const int64_t n_ranges = std::max<int64_t>(1, (n_keys + kSplitKeys - 1) / kSplitKeys);
    const size_t o_size = size_t(tile_o_rows(rows_of(0, 0).rows())) * hd_;
    const size_t per_state = o_size + 2 * kTileRows;                   // O, m, l
    std::vector<float> states(size_t(n_ranges) * parts_ * per_state);  // [range][part]
    auto state = [&](int64_t c, int64_t p) {
      return &states[(size_t(c) * parts_ + p) * per_state];
    };
    std::atomic<int64_t> next_range{0};
    pool.run([&](int, int) {
      Scratch x(hd_);
      for (int64_t c; (c = next_range.fetch_add(1, std::memory_order_relaxed)) < n_ranges;) {
        for (int64_t p = 0; p < parts_; ++p) {
          AttentionTile t = pack(rows_of(0, p), x);
          float* st = state(c, p);
          t.j_begin = c * kSplitKeys;
          t.j_end = std::min(t.j_end, t.j_begin + kSplitKeys);
          if (t.j_begin < t.j_end) {
            t.o = st;
            t.m = st + o_size;
            t.l = t.m + kTileRows;
            tile_(t);
          } else {  // no row sees this range: an empty state
            std::fill(st, st + per_state, 0.0f);
            std::fill(st + o_size, st + o_size + kTileRows, kTileMasked);
          }
        }
      }
    });
    // m = max_c m_c, l = sum_c l_c e^(m_c - m), O = sum_c O_c e^(m_c - m); in range order, so
    // the result does not depend on the thread count.
    std::vector<float> o(hd_);
    for (int64_t p = 0; p < parts_; ++p) {
      const TaskRows tr = rows_of(0, p);
      for (int r = 0; r < tr.rows(); ++r) {
        float m = kTileMasked;
        for (int64_t c = 0; c < n_ranges; ++c) m = std::max(m, state(c, p)[o_size + r]);
        float l = 0.0f;
        std::fill(o.begin(), o.end(), 0.0f);
        for (int64_t c = 0; c < n_ranges; ++c) {
          const float* st = state(c, p);
          const float lc = st[o_size + kTileRows + r];
          if (lc == 0.0f) continue;
          const float w = std::exp(st[o_size + r] - m);
          l += lc * w;
          for (int d = 0; d < hd_; ++d) o[d] += st[size_t(r) * hd_ + d] * w;
        }
        finish_row(tr, r, o.data(), m, l);
      }
    }
  }

  AttentionTileFn tile_;
  const VecKernels& vk_;
  const AttentionArgs& a_;
  int group_, hd_;
  int heads_ = 0, head_parts_ = 0, run_ = 0;
  int64_t n_runs_ = 0, parts_ = 0;
};

void tiled_attention(AttentionTileFn tile, const VecKernels& vk, const AttentionArgs& a,
                     ThreadPool& pool) {
  check_attention_args(a);
  if (a.n_q == 0) return;
  if (a.n_kv == 0) {
    std::fill(a.out, a.out + int64_t{a.n_q} * a.n_head * a.head_dim, 0.0f);
    return;
  }
  TiledAttention(tile, vk, a).run(pool);
}

}  // namespace

void attention_with_isa(Isa isa, const AttentionArgs& a, ThreadPool& pool) {
  if (!isa_available(isa)) {
    throw Error(std::string("attention: this CPU cannot run the ") + isa_name(isa) + " kernels");
  }
  switch (isa) {
    case Isa::Avx512:
      tiled_attention(attention_tile_avx512, vec_kernels_avx2(), a, pool);
      break;
    case Isa::Avx2:
      tiled_attention(attention_tile_avx2, vec_kernels_avx2(), a, pool);
      break;
    case Isa::Scalar:
      tiled_attention(attention_tile_scalar, vec_kernels_scalar(), a, pool);
      break;
  }
}

void attention(const AttentionArgs& a, ThreadPool& pool) {
  attention_with_isa(best_isa(), a, pool);
}

}  // namespace engram
