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
#include "util/record_io.h"

namespace engram {

namespace {

// The activations of a forward pass over n rows (the tokens of one block, or one token of each
// stream in a batch). Shapes [rows, cols].
struct Activations {
  std::vector<float> x, h;      // [n, n_embd]: the residual stream, and scratch
  std::vector<float> q, att;    // [n, q_dim]
  std::vector<float> k, v;      // [n, kv_dim]
  std::vector<float> gate, up;  // [n, n_ff]
  void resize(const ModelConfig& c, int n) {
    const size_t q_dim = size_t(c.n_head) * c.head_dim, kv_dim = size_t(c.n_head_kv) * c.head_dim;
    x.resize(size_t(n) * c.n_embd);
    h.resize(size_t(n) * c.n_embd);
    q.resize(n * q_dim);
    att.resize(n * q_dim);
    k.resize(n * kv_dim);
    v.resize(n * kv_dim);
    gate.resize(size_t(n) * c.n_ff);
    up.resize(size_t(n) * c.n_ff);
  }
};

// Every layer over the rows of `tokens`, leaving the last hidden states in a.x. The matrix
// products run over all rows at once (the weights are read once per layer); `attend(l)` fills
// a.att from a.q/a.k/a.v of layer l -- per stream, under its memory policy.
template <class Attend>
void forward_layers(const Model& model, ThreadPool& pool, std::span<const int32_t> tokens,
                    Activations& a, Attend&& attend) {
  const ModelConfig& c = model.config();
  const ModelWeights& W = model.weights();
  const int n = static_cast<int>(tokens.size());
  a.resize(c, n);
  for (int i = 0; i < n; ++i) {
    const auto* row =
        static_cast<const uint8_t*>(W.tok_embd.data) + tokens[i] * W.tok_embd.row_bytes;
    dequantize_row(W.tok_embd.type, row, &a.x[size_t(i) * c.n_embd], c.n_embd);
  }
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = W.layers[l];
    for (int i = 0; i < n; ++i) {
      rmsnorm(&a.h[size_t(i) * c.n_embd], &a.x[size_t(i) * c.n_embd], L.attn_norm.data(), c.n_embd,
              c.rms_eps);
    }
    {  // one activation quantization and one parallel region for the three projections
      const WeightMatrix w[3] = {L.wq, L.wk, L.wv};
      float* const y[3] = {a.q.data(), a.k.data(), a.v.data()};
      matmul_many(w, y, 3, a.h.data(), n, pool);
    }
    attend(l);
    matmul(L.wo, a.att.data(), n, a.h.data(), pool);
    for (size_t j = 0; j < a.x.size(); ++j) a.x[j] += a.h[j];
    for (int i = 0; i < n; ++i) {
      rmsnorm(&a.h[size_t(i) * c.n_embd], &a.x[size_t(i) * c.n_embd], L.ffn_norm.data(), c.n_embd,
              c.rms_eps);
    }
    {
      const WeightMatrix w[2] = {L.w_gate, L.w_up};
      float* const y[2] = {a.gate.data(), a.up.data()};
      matmul_many(w, y, 2, a.h.data(), n, pool);
    }
    silu_mul(a.gate.data(), a.gate.data(), a.up.data(), int64_t(n) * c.n_ff, pool);
    matmul(L.w_down, a.gate.data(), n, a.h.data(), pool);
    for (size_t j = 0; j < a.x.size(); ++j) a.x[j] += a.h[j];
  }
}

}  // namespace

struct Context::Impl {
  Impl(const ModelConfig& c, const PolicyNeeds& n)
      : kv(c.n_layer, c.n_head_kv * c.head_dim, n.kv_f16), needs(n) {
    if (!n.kv_dir.empty()) kv.use_file(n.kv_dir, n.kv_cache_bytes);
  }
  KvStore kv;
  std::vector<KvCell> cells;
  AttentionPlan plan;
  PolicyNeeds needs;
  BlockData data;  // what the policy asked for, for the current block
  RopeParams rp;
  std::vector<float> rope_table;  // [n_ctx_train, rope_dim]: cos/sin of the trained positions
  // Logits of the previous block's last token: the surprise of the next block's first token.
  std::vector<float> prev_row;
  int64_t last_attended = 0;
  std::vector<std::vector<int64_t>> attended;  // [layer][stream positions] of the last block
  // Scratch for one query block.
  Activations act;
  std::vector<float> block_logits, cs;
  std::vector<float> k_gather, v_gather;  // keys/values of a non-contiguous plan
  std::vector<float> probs;               // [n, n_head, n_kv] softmax probabilities, for `received`

  // cos/sin of position pos (from the table when it is there).
  const float* angles(int64_t pos) {
    const int64_t n_table = static_cast<int64_t>(rope_table.size()) / std::max(1, rp.rope_dim);
    if (pos >= 0 && pos < n_table) return &rope_table[size_t(pos) * rp.rope_dim];
    cs.resize(rp.rope_dim);
    rope_cache(cs.data(), static_cast<int32_t>(pos), rp);
    return cs.data();
  }
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
  const bool reserve = !policy_;
  if (!policy_) policy_ = make_full_policy(params_.n_ctx);
  impl_ = std::make_unique<Impl>(c, policy_->needs());
  if (reserve) impl_->kv.reserve(params_.n_ctx);
  Impl& s = *impl_;
  s.rp.head_dim = c.head_dim;
  s.rp.rope_dim = c.rope_dim;
  s.rp.base = c.rope_base;
  s.rp.freq_scale = c.rope_freq_scale;
  s.rp.freq_factors =
      model.weights().rope_freqs.empty() ? nullptr : model.weights().rope_freqs.data();
  s.rp.interleaved = c.rope_interleaved;
  s.rope_table.resize(size_t(std::max(c.n_ctx_train, 1)) * c.rope_dim);
  for (int p = 0; p < c.n_ctx_train; ++p)
    rope_cache(&s.rope_table[size_t(p) * c.rope_dim], p, s.rp);
  s.attended.resize(c.n_layer);
  if (s.needs.qk) {
    s.data.q.resize(c.n_layer);
    s.data.k.resize(c.n_layer);
  }
  if (s.needs.received) {
    s.data.planned.resize(c.n_layer);
    s.data.received.resize(c.n_layer);
  }
}

Context::~Context() = default;

void Context::clear() {
  impl_->kv.resize(0);
  impl_->cells.clear();
  impl_->prev_row.clear();
  impl_->last_attended = 0;
  for (auto& a : impl_->attended) a.clear();
  policy_->reset();
  n_past_ = 0;
  n_logits_ = 0;
}

std::vector<int32_t> Context::tokens() const {
  std::vector<int32_t> t;
  t.reserve(impl_->cells.size());
  for (const KvCell& c : impl_->cells) t.push_back(c.token);
  return t;
}

void Context::save_state(RecordWriter& out) const {
  const Impl& s = *impl_;
  const int n_layer = model_.config().n_layer, kv_dim = s.kv.kv_dim();
  out.put<int64_t>(n_past_);
  // Tokens and positions apart: KvCell has padding, whose bytes are not the stream's.
  std::vector<int32_t> tokens;
  std::vector<int64_t> pos;
  for (const KvCell& cell : s.cells) {
    tokens.push_back(cell.token);
    pos.push_back(cell.pos);
  }
  out.vec(tokens);
  out.vec(pos);
  out.vec(s.prev_row);
  // The last row of logits only: what sampling continues from.
  const std::span<const float> last = n_logits_ > 0 ? logits() : std::span<const float>();
  out.vec(std::vector<float>(last.begin(), last.end()));
  out.put<int64_t>(s.last_attended);
  for (const auto& a : s.attended) out.vec(a);
  out.end_record();
  // The policy's state before the K/V, so that loading can move settled cells out of RAM as
  // it goes (a session can be larger than RAM).
  policy_->save_state(out);
  // K/V as f32 (an f16 store converts back exactly), kPageCells cells per record.
  std::vector<float> row(kv_dim);
  const int64_t n = s.kv.size();
  for (int64_t c0 = 0; c0 < n; c0 += KvStore::kPageCells) {
    const int64_t c1 = std::min(n, c0 + KvStore::kPageCells);
    for (int l = 0; l < n_layer; ++l) {
      for (int64_t c = c0; c < c1; ++c) {
        s.kv.read_k(l, c, row.data(), /*keep=*/false);  // a pass over every cell: no caching
        out.bytes(row.data(), row.size() * sizeof(float));
        s.kv.read_v(l, c, row.data(), /*keep=*/false);
        out.bytes(row.data(), row.size() * sizeof(float));
      }
    }
    out.end_record();
  }
}

void Context::load_state(RecordReader& in) {
  Impl& s = *impl_;
  if (!s.cells.empty() || n_past_ != 0) throw Error("a session loads into a fresh context only");
  const ModelConfig& c = model_.config();
  const int kv_dim = s.kv.kv_dim();
  in.next("stream");
  const int64_t n_past = in.get<int64_t>("n_past");
  // 2^40 tokens is far past any real stream, and keeps later position arithmetic in range.
  if (n_past < 0 || n_past > (int64_t{1} << 40)) {
    in.fail("n_past", fmt::format("{} is outside [0, 2^40]", n_past));
  }
  const uint64_t most = uint64_t(std::min(n_past, policy_->capacity()));
  const std::vector<int32_t> tokens = in.vec<int32_t>("cell tokens", most);
  const std::vector<int64_t> pos = in.vec<int64_t>("cell positions", most);
  if (pos.size() != tokens.size()) {
    in.fail("cell positions", fmt::format("{} positions for {} tokens", pos.size(), tokens.size()));
  }
  std::vector<KvCell> cells(tokens.size());
  for (size_t i = 0; i < cells.size(); ++i) cells[i] = {tokens[i], pos[i]};
  for (size_t i = 0; i < cells.size(); ++i) {
    const KvCell& cell = cells[i];
    if (cell.token < 0 || cell.token >= c.n_vocab) {
      in.fail("cells",
              fmt::format("cell {} has token {}, outside [0, {})", i, cell.token, c.n_vocab));
    }
    if (cell.pos < 0 || cell.pos >= n_past || (i > 0 && cell.pos <= cells[i - 1].pos)) {
      in.fail("cells", fmt::format("cell {} has position {}: positions must rise within [0, {})", i,
                                   cell.pos, n_past));
    }
  }
  auto rows = [&](const char* field) {
    std::vector<float> v = in.vec<float>(field, uint64_t(c.n_vocab));
    if (!v.empty() && v.size() != size_t(c.n_vocab)) {
      in.fail(field, fmt::format("{} values, the model has {} tokens", v.size(), c.n_vocab));
    }
    return v;
  };
  std::vector<float> prev_row = rows("prev_row");
  std::vector<float> last = rows("logits");
  const int64_t last_attended = in.get<int64_t>("last_attended");
  std::vector<std::vector<int64_t>> attended(c.n_layer);
  for (auto& a : attended) {
    a = in.vec<int64_t>("attended", uint64_t(n_past));
    for (int64_t p : a) {
      if (p < 0 || p >= n_past) in.fail("attended", fmt::format("position {} out of range", p));
    }
  }
  in.done();
  s.cells = std::move(cells);
  policy_->load_state(in, s.cells);
  const int64_t n = static_cast<int64_t>(s.cells.size());
  const int64_t settled = policy_->settled_cells();
  std::vector<float> k(kv_dim), v(kv_dim);
  for (int64_t c0 = 0; c0 < n; c0 += KvStore::kPageCells) {
    in.next(fmt::format("kv cells {}..", c0));
    const int64_t c1 = std::min(n, c0 + KvStore::kPageCells);
    s.kv.resize(c1);
    for (int l = 0; l < c.n_layer; ++l) {
      for (int64_t cell = c0; cell < c1; ++cell) {
        in.bytes(k.data(), k.size() * sizeof(float), "k");
        in.bytes(v.data(), v.size() * sizeof(float), "v");
        s.kv.write(l, cell, k.data(), v.data());
      }
    }
    in.done();
    s.kv.settle(std::min(settled, c1));
  }
  s.prev_row = std::move(prev_row);
  logits_ = std::move(last);
  n_logits_ = logits_.empty() ? 0 : 1;
  s.last_attended = last_attended;
  s.attended = std::move(attended);
  n_past_ = n_past;
}

MemoryStats Context::memory_stats() const {
  MemoryStats m;
  m.cells_held = static_cast<int64_t>(impl_->cells.size());
  m.cells_attended = impl_->last_attended;
  m.units = policy_->units();
  m.tokens_seen = n_past_;
  m.bytes_on_disk = impl_->kv.file_bytes();
  return m;
}

uint64_t Context::memory_bytes() const {
  return impl_->kv.bytes() + impl_->cells.capacity() * sizeof(KvCell) + policy_->bytes();
}

std::span<const int64_t> Context::attended_positions(int layer) const {
  if (layer < 0 || layer >= static_cast<int>(impl_->attended.size())) {
    throw Error(fmt::format("attended_positions: layer {} out of range [0, {})", layer,
                            impl_->attended.size()));
  }
  return impl_->attended[layer];
}

int Context::block_limit() const {
  return std::max(1, std::min(params_.n_batch, policy_->max_block()));
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
    throw Error(
        fmt::format("context is full: {} + {} tokens exceed the {} tokens the '{}' memory "
                    "policy holds (raise --ctx or choose another --memory policy)",
                    n_past_, tokens.size(), policy_->capacity(), policy_->name()));
  }
  if (all_logits) logits_.resize(tokens.size() * static_cast<size_t>(n_vocab));
  int64_t row = 0;
  n_logits_ = 0;
  const size_t chunk = static_cast<size_t>(block_limit());
  for (size_t i = 0; i < tokens.size(); i += chunk) {
    const size_t n = std::min(chunk, tokens.size() - i);
    eval_block(tokens.subspan(i, n), all_logits);
    if (all_logits) {
      row += n;
      n_logits_ = row;
    }
  }
}

// Attention of one layer for the block's rows: q/k/v are the projections ([n, q_dim] and
// [n, kv_dim], before RoPE), att receives the attention output [n, q_dim]. Writes the block's
// K/V into the store and asks the policy which cells to attend to.
void Context::attend_layer(int l, const QueryBlock& block, float* q, float* k, float* v,
                           float* att) {
  const ModelConfig& c = model_.config();
  const LayerWeights& L = model_.weights().layers[l];
  Impl& s = *impl_;
  const int n = block.n_tokens;
  const int q_dim = c.n_head * c.head_dim;
  const int kv_dim = c.n_head_kv * c.head_dim;
  const RopeParams& rp = s.rp;
  const bool raw_keys = s.needs.keys_before_rope;
  if (c.qkv_bias) {
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < q_dim; ++j) q[size_t(i) * q_dim + j] += L.bq[j];
      for (int j = 0; j < kv_dim; ++j) {
        k[size_t(i) * kv_dim + j] += L.bk[j];
        v[size_t(i) * kv_dim + j] += L.bv[j];
      }
    }
  }
  if (s.needs.qk) {
    s.data.q[l].assign(q, q + size_t(n) * q_dim);   // [n, q_dim], before RoPE
    s.data.k[l].assign(k, k + size_t(n) * kv_dim);  // [n, kv_dim]
  }
  // Keys are stored rotated at their stream position (or before RoPE if the policy asks); a
  // plan that gives a key another position rotates it by the difference when gathering.
  for (int i = 0; i < n; ++i) {
    const int64_t cell = block.first_cell + i;
    float* kd = &k[size_t(i) * kv_dim];
    if (!raw_keys) {
      const float* cs = s.angles(s.cells[cell].pos);
      for (int hh = 0; hh < c.n_head_kv; ++hh) rope_apply(kd + hh * c.head_dim, cs, rp);
    }
    s.kv.write(l, cell, kd, &v[size_t(i) * kv_dim]);
  }

  policy_->plan(l, block, s.cells, s.data, s.plan);
  const AttentionPlan& p = s.plan;
  for (int i = 0; i < n; ++i) {
    const float* cs = s.angles(p.query_pos[i]);
    for (int hh = 0; hh < c.n_head; ++hh) {
      rope_apply(&q[size_t(i) * q_dim + hh * c.head_dim], cs, rp);
    }
  }

  // Attend straight from the store when the plan is a run of cells at their own positions;
  // otherwise gather (and re-rotate) the planned keys.
  const int64_t n_kv = static_cast<int64_t>(p.cells.size());
  if (l == 0) s.last_attended = n_kv;
  s.attended[l].resize(n_kv);
  for (int64_t j = 0; j < n_kv; ++j) s.attended[l][j] = s.cells[p.cells[j]].pos;
  bool direct = n_kv > 0 && !raw_keys && !s.kv.f16() && p.cells[0] >= s.kv.in_ram_begin();
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
      s.kv.read_k(l, cell, kd);
      const int64_t delta = raw_keys ? p.key_pos[j] : p.key_pos[j] - s.cells[cell].pos;
      if (delta != 0 || raw_keys) {
        const float* cs = s.angles(delta);
        for (int hh = 0; hh < c.n_head_kv; ++hh) rope_apply(kd + hh * c.head_dim, cs, rp);
      }
      s.kv.read_v(l, cell, &s.v_gather[size_t(j) * kv_dim]);
    }
    a.k = s.k_gather.data();
    a.v = s.v_gather.data();
  }
  a.k_stride = kv_dim;
  a.v_stride = kv_dim;
  a.q = q;
  a.out = att;
  a.n_q = n;
  a.n_kv = n_kv;
  a.n_head = c.n_head;
  a.n_head_kv = c.n_head_kv;
  a.head_dim = c.head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if (s.needs.received) {
    s.probs.resize(size_t(n) * c.n_head * n_kv);
    a.probs = s.probs.data();
  }
  attention(a, pool_);
  if (s.needs.received) {
    s.data.planned[l] = p.cells;
    s.data.received[l].resize(n_kv);
    attention_received(a, s.data.received[l].data(), pool_);
  }
}

void Context::run_layers(std::span<const int32_t> tokens, const QueryBlock& block) {
  Activations& a = impl_->act;
  forward_layers(model_, pool_, tokens, a, [&](int l) {
    attend_layer(l, block, a.q.data(), a.k.data(), a.v.data(), a.att.data());
  });
}

QueryBlock Context::begin_block(std::span<const int32_t> tokens) {
  Impl& s = *impl_;
  const int n = static_cast<int>(tokens.size());
  // Append the block's cells; the policy sees them when planning.
  QueryBlock block{static_cast<int64_t>(s.cells.size()), n};
  for (int i = 0; i < n; ++i) s.cells.push_back({tokens[i], n_past_ + i});
  s.kv.resize(static_cast<int64_t>(s.cells.size()));
  s.data.n_tokens = n;
  s.data.pool = &pool_;
  return block;
}

void Context::eval_block(std::span<const int32_t> tokens, bool all_logits) {
  const ModelConfig& c = model_.config();
  const ModelWeights& W = model_.weights();
  Impl& s = *impl_;
  const int n = static_cast<int>(tokens.size());
  const QueryBlock block = begin_block(tokens);

  // A policy may ask for a second reading of the block (its plans then differ; the first
  // reading's K/V rows are overwritten and only the second one's output is kept).
  run_layers(tokens, block);
  if (policy_->reread(block)) run_layers(tokens, block);

  // Logits: every row of the block when asked for or when the policy needs surprise, else the
  // last only.
  const bool every_row = all_logits || s.needs.surprise;
  const int first = every_row ? 0 : n - 1;
  const int rows = n - first;
  for (int i = first; i < n; ++i) {
    rmsnorm(&s.act.h[size_t(i - first) * c.n_embd], &s.act.x[size_t(i) * c.n_embd],
            W.output_norm.data(), c.n_embd, c.rms_eps);
  }
  float* out;
  if (all_logits) {
    out = logits_.data() + n_logits_ * int64_t(c.n_vocab);
  } else if (every_row) {
    s.block_logits.resize(size_t(n) * c.n_vocab);
    out = s.block_logits.data();
  } else {
    logits_.resize(size_t(c.n_vocab));
    out = logits_.data();
  }
  matmul(W.output, s.act.h.data(), rows, out, pool_);
  end_block(tokens, block, out, all_logits);
}

void Context::end_block(std::span<const int32_t> tokens, const QueryBlock& block, const float* out,
                        bool all_logits) {
  const ModelConfig& c = model_.config();
  Impl& s = *impl_;
  const int n = block.n_tokens;
  if (s.needs.surprise) {
    // Surprise of token i = -log softmax(logits of token i-1)[token i].
    // Rows are independent, so the pool splits them; each row's value is the same whatever
    // the split.
    s.data.surprise.assign(n, 0.0f);
    pool_.parallel_for(n, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float* row = i > 0 ? out + size_t(i - 1) * c.n_vocab
                                 : (s.prev_row.empty() ? nullptr : s.prev_row.data());
        if (row) s.data.surprise[i] = log_sum_exp(row, c.n_vocab) - row[tokens[i]];
      }
    });
    s.prev_row.assign(out + size_t(n - 1) * c.n_vocab, out + size_t(n) * c.n_vocab);
  }
  if (!all_logits) {
    // The last row, unless the logits were computed in place.
    const int rows = s.needs.surprise ? n : 1;
    if (out != logits_.data()) {
      logits_.assign(out + size_t(rows - 1) * c.n_vocab, out + size_t(rows) * c.n_vocab);
    }
    n_logits_ = 1;
  }

  Eviction evict;
  policy_->apply(block, s.cells, s.data, evict);
  n_past_ += n;
  if (!evict.empty()) {
    s.kv.erase(evict.begin, evict.end);
    s.cells.erase(s.cells.begin() + evict.begin, s.cells.begin() + evict.end);
  }
  s.kv.settle(policy_->settled_cells());
}

void Context::decode_batch(std::span<Context* const> ctxs, std::span<const int32_t> tokens) {
  if (ctxs.size() != tokens.size()) {
    throw Error(fmt::format("decode_batch: {} streams but {} tokens", ctxs.size(), tokens.size()));
  }
  if (ctxs.empty()) return;
  if (ctxs.size() == 1) {
    ctxs[0]->eval(tokens);
    return;
  }
  const Model& model = ctxs[0]->model_;
  ThreadPool& pool = ctxs[0]->pool_;
  const ModelConfig& c = model.config();
  for (size_t b = 0; b < ctxs.size(); ++b) {
    Context& x = *ctxs[b];
    if (&x.model_ != &model) throw Error("decode_batch: the streams run different models");
    for (size_t o = 0; o < b; ++o) {
      if (ctxs[o] == ctxs[b]) throw Error("decode_batch: a stream appears twice in the batch");
    }
    if (tokens[b] < 0 || tokens[b] >= c.n_vocab) {
      throw Error(fmt::format("token id {} is out of range [0, {})", tokens[b], c.n_vocab));
    }
    if (x.n_past_ + 1 > x.policy_->capacity()) {
      throw Error(
          fmt::format("context is full: {} + 1 tokens exceed the {} tokens the '{}' memory "
                      "policy holds",
                      x.n_past_, x.policy_->capacity(), x.policy_->name()));
    }
  }
  const int n = static_cast<int>(ctxs.size());
  const size_t q_dim = size_t(c.n_head) * c.head_dim, kv_dim = size_t(c.n_head_kv) * c.head_dim;
  std::vector<QueryBlock> blocks(n);
  for (int b = 0; b < n; ++b) blocks[b] = ctxs[b]->begin_block(tokens.subspan(b, 1));
  // Row b of the batch is stream b's token; the matrix products run over all rows at once,
  // attention over each stream's own memory.
  Activations a;
  forward_layers(model, pool, tokens, a, [&](int l) {
    for (int b = 0; b < n; ++b) {
      ctxs[b]->attend_layer(l, blocks[b], &a.q[b * q_dim], &a.k[b * kv_dim], &a.v[b * kv_dim],
                            &a.att[b * q_dim]);
    }
  });
  for (int b = 0; b < n; ++b) {
    Context& x = *ctxs[b];
    if (x.policy_->reread(blocks[b])) {
      // A second reading, as eval() would do it (policies ask for it only for questions).
      x.run_layers(tokens.subspan(b, 1), blocks[b]);
      std::copy_n(x.impl_->act.x.begin(), c.n_embd, &a.x[size_t(b) * c.n_embd]);
    }
  }
  const ModelWeights& W = model.weights();
  for (int b = 0; b < n; ++b) {
    rmsnorm(&a.h[size_t(b) * c.n_embd], &a.x[size_t(b) * c.n_embd], W.output_norm.data(), c.n_embd,
            c.rms_eps);
  }
  std::vector<float> logits(size_t(n) * c.n_vocab);  // [n, n_vocab]
  matmul(W.output, a.h.data(), n, logits.data(), pool);
  for (int b = 0; b < n; ++b) {
    ctxs[b]->end_block(tokens.subspan(b, 1), blocks[b], &logits[size_t(b) * c.n_vocab], false);
  }
}

std::vector<float> Context::embed(std::span<const int32_t> tokens) {
  const ModelConfig& c = model_.config();
  const ModelWeights& W = model_.weights();
  if (tokens.empty()) throw Error("embed: no tokens");
  clear();
  std::vector<double> sum(c.n_embd, 0.0);
  std::vector<float> row(c.n_embd);
  const size_t chunk = static_cast<size_t>(block_limit());
  for (size_t i = 0; i < tokens.size(); i += chunk) {
    const std::span<const int32_t> part = tokens.subspan(i, std::min(chunk, tokens.size() - i));
    eval(part);
    const Activations& a = impl_->act;  // the block's last hidden states
    for (size_t r = 0; r < part.size(); ++r) {
      rmsnorm(row.data(), &a.x[r * c.n_embd], W.output_norm.data(), c.n_embd, c.rms_eps);
      for (int j = 0; j < c.n_embd; ++j) sum[j] += row[j];
    }
  }
  clear();
  double norm = 0;
  for (double v : sum) norm += v * v;
  norm = std::sqrt(norm);
  std::vector<float> out(c.n_embd);
  for (int j = 0; j < c.n_embd; ++j) out[j] = norm > 0 ? static_cast<float>(sum[j] / norm) : 0.0f;
  return out;
}

}  // namespace engram
