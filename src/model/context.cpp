// The forward pass of llama-family models over a query block, with attention planned by the
// memory policy. Shapes in comments are [rows, cols] of row-major f32 buffers.
#include "engram/context.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "memory/kv_store.h"
#include "model/model_weights.h"

namespace engram {

struct Context::Impl {
  Impl(const ModelConfig& c) : kv(c.n_layer, c.n_head_kv * c.head_dim) {}
  KvStore kv;
  std::vector<KvCell> cells;
  AttentionPlan plan;
  // Scratch for one query block.
  std::vector<float> x, h, q, k, v, att, gate, up;
  std::vector<float> k_gather, v_gather;  // keys/values of a non-contiguous plan
};

Context::Context(const Model& model, ThreadPool& pool, const ContextParams& params,
                 std::unique_ptr<MemoryPolicy> policy)
    : model_(model), pool_(pool), params_(params), policy_(std::move(policy)) {
  const ModelConfig& c = model.config();
  if (params_.n_ctx < 0) throw Error(fmt::format("n_ctx must be >= 0, got {}", params_.n_ctx));
  if (params_.n_ctx == 0) params_.n_ctx = c.n_ctx_train;
  if (params_.n_batch <= 0) {
    throw Error(fmt::format("n_batch must be > 0, got {}", params_.n_batch));
  }
  if (!policy_) {
    policy_ = make_full_policy(params_.n_ctx);
    impl_ = std::make_unique<Impl>(c);
    impl_->kv.reserve(params_.n_ctx);
  } else {
    impl_ = std::make_unique<Impl>(c);
  }
}

Context::~Context() = default;

void Context::clear() {
  impl_->kv.resize(0);
  impl_->cells.clear();
  n_past_ = 0;
  n_logits_ = 0;
}

std::span<const float> Context::logits() const {
  if (n_logits_ == 0) throw Error("no logits: nothing has been evaluated yet");
  const int64_t nv = model_.config().n_vocab;
  return {logits_.data() + (n_logits_ - 1) * nv, static_cast<size_t>(nv)};
}

std::span<const float> Context::logits(int64_t i) const {
  if (i < 0 || i >= n_logits_) {
    throw Error(fmt::format("logits({}) out of range: the last eval kept {} rows", i, n_logits_));
  }
  const int64_t nv = model_.config().n_vocab;
  return {logits_.data() + i * nv, static_cast<size_t>(nv)};
}

void Context::eval(std::span<const int32_t> tokens, bool all_logits) {
  const int n_vocab = model_.config().n_vocab;
  for (int32_t t : tokens) {
    if (t < 0 || t >= n_vocab) {
      throw Error(fmt::format("token id {} is out of range [0, {})", t, n_vocab));
    }
  }
  if (n_past_ + static_cast<int64_t>(tokens.size()) > policy_->capacity()) {
    throw Error(fmt::format("context is full: {} + {} tokens exceed the {} tokens the '{}' memory "
                            "policy holds (raise --ctx or choose another --memory policy)",
                            n_past_, tokens.size(), policy_->capacity(), policy_->name()));
  }
  if (all_logits) logits_.resize(tokens.size() * static_cast<size_t>(n_vocab));
  int64_t row = 0;
  n_logits_ = 0;
  for (size_t i = 0; i < tokens.size(); i += params_.n_batch) {
    const size_t n = std::min<size_t>(params_.n_batch, tokens.size() - i);
    eval_block(tokens.subspan(i, n), all_logits);
    if (all_logits) {
      row += n;
      n_logits_ = row;
    }
  }
}

void Context::eval_block(std::span<const int32_t> tokens, bool all_logits) {
  const ModelConfig& c = model_.config();
  const ModelWeights& W = model_.weights();
  Impl& s = *impl_;
  const int n = static_cast<int>(tokens.size());
  const int q_dim = c.n_head * c.head_dim;
  const int kv_dim = c.n_head_kv * c.head_dim;

  // Append the block's cells; the policy sees them when planning.
  QueryBlock block{static_cast<int64_t>(s.cells.size()), n};
  for (int i = 0; i < n; ++i) s.cells.push_back({tokens[i], n_past_ + i});
  s.kv.resize(static_cast<int64_t>(s.cells.size()));

  s.x.resize(size_t(n) * c.n_embd);  // [n, n_embd]
  s.h.resize(size_t(n) * c.n_embd);
  s.q.resize(size_t(n) * q_dim);  // [n, q_dim]
  s.k.resize(size_t(n) * kv_dim);
  s.v.resize(size_t(n) * kv_dim);
  s.att.resize(size_t(n) * q_dim);
  s.gate.resize(size_t(n) * c.n_ff);  // [n, n_ff]
  s.up.resize(size_t(n) * c.n_ff);

  for (int i = 0; i < n; ++i) {
    const auto* row = static_cast<const uint8_t*>(W.tok_embd.data) + tokens[i] * W.tok_embd.row_bytes;
    dequantize_row(W.tok_embd.type, row, &s.x[size_t(i) * c.n_embd], c.n_embd);
  }

  RopeParams rp;
  rp.head_dim = c.head_dim;
  rp.rope_dim = c.rope_dim;
  rp.base = c.rope_base;
  rp.freq_scale = c.rope_freq_scale;
  rp.freq_factors = W.rope_freqs.empty() ? nullptr : W.rope_freqs.data();
  rp.interleaved = c.rope_interleaved;

  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = W.layers[l];
    for (int i = 0; i < n; ++i) {
      rmsnorm(&s.h[size_t(i) * c.n_embd], &s.x[size_t(i) * c.n_embd], L.attn_norm.data(), c.n_embd,
              c.rms_eps);
    }
    matmul(L.wq, s.h.data(), n, s.q.data(), pool_);
    matmul(L.wk, s.h.data(), n, s.k.data(), pool_);
    matmul(L.wv, s.h.data(), n, s.v.data(), pool_);
    if (c.qkv_bias) {
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < q_dim; ++j) s.q[size_t(i) * q_dim + j] += L.bq[j];
        for (int j = 0; j < kv_dim; ++j) {
          s.k[size_t(i) * kv_dim + j] += L.bk[j];
          s.v[size_t(i) * kv_dim + j] += L.bv[j];
        }
      }
    }
    // Keys are stored rotated at their stream position; a plan that gives a key another
    // position rotates it by the difference when gathering.
    for (int i = 0; i < n; ++i) {
      const int64_t cell = block.first_cell + i;
      float* kd = s.kv.k(l, cell);
      std::memcpy(kd, &s.k[size_t(i) * kv_dim], sizeof(float) * kv_dim);
      for (int hh = 0; hh < c.n_head_kv; ++hh) {
        rope(kd + hh * c.head_dim, static_cast<int32_t>(s.cells[cell].pos), rp);
      }
      std::memcpy(s.kv.v(l, cell), &s.v[size_t(i) * kv_dim], sizeof(float) * kv_dim);
    }

    policy_->plan(l, block, s.cells, s.plan);
    const AttentionPlan& p = s.plan;
    for (int i = 0; i < n; ++i) {
      for (int hh = 0; hh < c.n_head; ++hh) {
        rope(&s.q[size_t(i) * q_dim + hh * c.head_dim], static_cast<int32_t>(p.query_pos[i]), rp);
      }
    }

    // Attend straight from the store when the plan is a run of cells at their own positions;
    // otherwise gather (and re-rotate) the planned keys.
    const int64_t n_kv = static_cast<int64_t>(p.cells.size());
    bool direct = n_kv > 0;
    for (int64_t j = 0; j < n_kv && direct; ++j) {
      direct = p.cells[j] == p.cells[0] + j && p.key_pos[j] == s.cells[p.cells[j]].pos;
    }
    AttentionArgs a;
    if (direct) {
      a.k = s.kv.k(l, p.cells[0]);
      a.v = s.kv.v(l, p.cells[0]);
    } else {
      s.k_gather.resize(size_t(n_kv) * kv_dim);
      s.v_gather.resize(size_t(n_kv) * kv_dim);
      for (int64_t j = 0; j < n_kv; ++j) {
        const int64_t cell = p.cells[j];
        float* kd = &s.k_gather[size_t(j) * kv_dim];
        std::memcpy(kd, s.kv.k(l, cell), sizeof(float) * kv_dim);
        const int64_t delta = p.key_pos[j] - s.cells[cell].pos;
        if (delta != 0) {
          for (int hh = 0; hh < c.n_head_kv; ++hh) {
            rope(kd + hh * c.head_dim, static_cast<int32_t>(delta), rp);
          }
        }
        std::memcpy(&s.v_gather[size_t(j) * kv_dim], s.kv.v(l, cell), sizeof(float) * kv_dim);
      }
      a.k = s.k_gather.data();
      a.v = s.v_gather.data();
    }
    a.k_stride = kv_dim;
    a.v_stride = kv_dim;
    a.q = s.q.data();
    a.out = s.att.data();
    a.n_q = n;
    a.n_kv = n_kv;
    a.n_head = c.n_head;
    a.n_head_kv = c.n_head_kv;
    a.head_dim = c.head_dim;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    attention(a, pool_);

    matmul(L.wo, s.att.data(), n, s.h.data(), pool_);
    for (size_t j = 0; j < s.x.size(); ++j) s.x[j] += s.h[j];

    for (int i = 0; i < n; ++i) {
      rmsnorm(&s.h[size_t(i) * c.n_embd], &s.x[size_t(i) * c.n_embd], L.ffn_norm.data(), c.n_embd,
              c.rms_eps);
    }
    matmul(L.w_gate, s.h.data(), n, s.gate.data(), pool_);
    matmul(L.w_up, s.h.data(), n, s.up.data(), pool_);
    silu_mul(s.gate.data(), s.gate.data(), s.up.data(), int64_t(n) * c.n_ff);
    matmul(L.w_down, s.gate.data(), n, s.h.data(), pool_);
    for (size_t j = 0; j < s.x.size(); ++j) s.x[j] += s.h[j];
  }

  policy_->apply(block, s.cells);
  n_past_ += n;

  // Logits: every row of the block, or only its last.
  const int first = all_logits ? 0 : n - 1;
  const int rows = n - first;
  for (int i = first; i < n; ++i) {
    rmsnorm(&s.h[size_t(i - first) * c.n_embd], &s.x[size_t(i) * c.n_embd], W.output_norm.data(),
            c.n_embd, c.rms_eps);
  }
  float* out;
  if (all_logits) {
    out = logits_.data() + n_logits_ * int64_t(c.n_vocab);
  } else {
    logits_.resize(size_t(c.n_vocab));
    out = logits_.data();
    n_logits_ = 1;
  }
  matmul(W.output, s.h.data(), rows, out, pool_);
}

}  // namespace engram
