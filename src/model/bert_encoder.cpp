// TextEncoder: a `bert` GGUF (llama.cpp's layout) loaded and run as a sentence encoder.
//
// The forward pass is BERT's, with token type 0 throughout (llama.cpp does the same):
//   x = LayerNorm(tok_embd[id] + position_embd[pos] + token_types[0])     (token_embd_norm)
//   per layer: a = softmax(Q K^T / sqrt(head_dim)) V over every token (no causal mask),
//              x = LayerNorm(x + attn_output(a))                           (attn_output_norm)
//              x = LayerNorm(x + ffn_down(GELU(ffn_up(x))))                (layer_output_norm)
// every projection with its bias, GELU in its exact (erf) form as BERT defines it (llama.cpp
// uses the tanh approximation). Pooling: the mean of the last hidden states, or the [CLS]
// row; the pooled vector is L2-normalised. Shapes in comments are [rows, cols], row-major.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/text_encoder.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/tensor_binder.h"

namespace engram {

struct BertLinear {
  WeightMatrix w;        // [out, in]
  std::vector<float> b;  // [out]
};

struct BertNorm {
  std::vector<float> w, b;  // [n_embd]
};

struct BertLayer {
  BertLinear q, k, v, o;  // [n_embd, n_embd]
  BertNorm attn_norm;     // attn_output_norm
  BertLinear up;          // [n_ff, n_embd]
  BertLinear down;        // [n_embd, n_ff]
  BertNorm out_norm;      // layer_output_norm
};

struct TextEncoderWeights {
  WeightMatrix tok_embd;     // [n_vocab, n_embd]
  WeightMatrix pos_embd;     // [n_ctx_train, n_embd]
  WeightMatrix type_embd;    // [n_token_types, n_embd]
  std::vector<float> type0;  // row 0 of type_embd
  BertNorm embd_norm;        // token_embd_norm
  std::vector<BertLayer> layers;
};

namespace {

TextEncoderConfig read_config(const GgufFile& f) {
  TextEncoderConfig c;
  if (!f.has("general.architecture"))
    throw Error(fmt::format("{}: no 'general.architecture' key; is this a model file?", f.path()));
  c.arch = f.get_string("general.architecture");
  if (c.arch != "bert")
    throw Error(fmt::format(
        "{}: architecture '{}' is not an embedding model engram can run (supported: bert)",
        f.path(), c.arch));
  c.name = f.get_string("general.name", "");
  c.n_embd = positive_int(f, "bert.embedding_length", 1 << 16);
  c.n_layer = positive_int(f, "bert.block_count", 1024);
  c.n_head = positive_int(f, "bert.attention.head_count", 1024);
  c.n_ff = positive_int(f, "bert.feed_forward_length", 1 << 20);
  c.n_ctx_train = positive_int(f, "bert.context_length", 1 << 20);
  if (c.n_embd % c.n_head != 0)
    throw Error(
        fmt::format("{}: bert.embedding_length {} is not divisible by "
                    "bert.attention.head_count {}",
                    f.path(), c.n_embd, c.n_head));
  if (f.has("bert.attention.head_count_kv") &&
      f.get_uint("bert.attention.head_count_kv") != static_cast<uint64_t>(c.n_head))
    throw Error(
        fmt::format("{}: bert.attention.head_count_kv differs from head_count; not "
                    "supported",
                    f.path()));
  if (!f.has("bert.attention.layer_norm_epsilon"))
    throw Error(
        fmt::format("{}: metadata 'bert.attention.layer_norm_epsilon' is missing", f.path()));
  const double eps = f.get_float("bert.attention.layer_norm_epsilon");
  if (!(eps > 0 && eps < 1))
    throw Error(fmt::format("{}: bert.attention.layer_norm_epsilon = {} is out of range (0, 1)",
                            f.path(), eps));
  c.norm_eps = static_cast<float>(eps);
  if (f.get_bool("bert.attention.causal", false))
    throw Error(fmt::format("{}: bert.attention.causal is true; a bert encoder attends both ways",
                            f.path()));
  const uint64_t pooling = f.get_uint("bert.pooling_type", 0);
  c.pooling_from_file = pooling != 0;
  if (pooling == 0 || pooling == 1) {
    c.pooling = Pooling::Mean;
  } else if (pooling == 2) {
    c.pooling = Pooling::Cls;
  } else {
    throw Error(
        fmt::format("{}: bert.pooling_type = {} is not supported (supported: 1 mean, "
                    "2 cls; 0 or none means mean)",
                    f.path(), pooling));
  }
  return c;
}

// Row `row` of a table (embeddings) as f32, into out[w.cols].
void table_row(const WeightMatrix& w, int64_t row, float* out) {
  dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + row * w.row_bytes, out, w.cols);
}

// out = (x - mean(x)) / sqrt(var(x) + eps) * w + b, BERT's LayerNorm (statistics in double).
void layernorm(float* out, const float* x, const float* w, const float* b, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += (x[i] - mean) * (x[i] - mean);
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>((x[i] - mean) * inv) * w[i] + b[i];
}

// In place: x * Phi(x), the exact (erf) GELU.
void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void add_bias(float* y, const std::vector<float>& b, int n) {
  const size_t cols = b.size();
  for (int i = 0; i < n; ++i)
    for (size_t j = 0; j < cols; ++j) y[i * cols + j] += b[j];
}

// y = x W^T + b over n rows.
void linear(const BertLinear& l, const float* x, int n, float* y, ThreadPool& pool) {
  matmul(l.w, x, n, y, pool);
  add_bias(y, l.b, n);
}

// x = LayerNorm(h) row by row ([n, dim]).
void norm_rows(const BertNorm& nm, const float* h, int n, float* x, float eps) {
  const size_t dim = nm.w.size();
  for (int i = 0; i < n; ++i)
    layernorm(x + i * dim, h + i * dim, nm.w.data(), nm.b.data(), static_cast<int64_t>(dim), eps);
}

// Bidirectional multi-head attention: out[i] = sum_j softmax_j(q_i . k_j * scale) v_j, per
// head; one task per head.
void attend_all(const float* q, const float* k, const float* v, float* out, int n, int n_head,
                int head_dim, ThreadPool& pool) {
  const int n_embd = n_head * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  pool.parallel_for(n_head, 1, [&](int64_t h0, int64_t h1) {
    std::vector<float> s(static_cast<size_t>(n));
    for (int64_t h = h0; h < h1; ++h) {
      for (int i = 0; i < n; ++i) {
        const float* qi = q + size_t(i) * n_embd + h * head_dim;
        for (int j = 0; j < n; ++j) {
          const float* kj = k + size_t(j) * n_embd + h * head_dim;
          float dot = 0;
          for (int d = 0; d < head_dim; ++d) dot += qi[d] * kj[d];
          s[j] = dot * scale;
        }
        softmax(s.data(), n);
        float* oi = out + size_t(i) * n_embd + h * head_dim;
        std::fill(oi, oi + head_dim, 0.0f);
        for (int j = 0; j < n; ++j) {
          const float* vj = v + size_t(j) * n_embd + h * head_dim;
          for (int d = 0; d < head_dim; ++d) oi[d] += s[j] * vj[d];
        }
      }
    }
  });
}

// First and last 4 KiB of every tensor, FNV-1a: tells two models apart cheaply.
uint64_t fingerprint(const GgufFile& f) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const GgufTensorInfo& t : f.tensors()) {
    mix(reinterpret_cast<const uint8_t*>(t.name.data()), t.name.size());
    const uint8_t* d = f.tensor_data(t);
    const size_t n = static_cast<size_t>(t.nbytes);
    const size_t head = std::min<size_t>(n, 4096), tail = std::min<size_t>(n - head, 4096);
    mix(d, head);
    mix(d + n - tail, tail);
  }
  return h;
}

}  // namespace

std::string embedding_identity(const GgufFile& file, std::string_view kind, int dim,
                               std::string_view pooling) {
  const std::string name = file.get_string("general.name", "");
  return fmt::format("{}:{}:{}:{}:{:016x}", kind, name.empty() ? "unnamed" : name, dim, pooling,
                     fingerprint(file));
}

TextEncoder::TextEncoder() = default;
TextEncoder::~TextEncoder() = default;

std::unique_ptr<TextEncoder> TextEncoder::load(const std::string& path) {
  std::unique_ptr<TextEncoder> e(new TextEncoder());
  e->file_ = GgufFile::open(path);
  const GgufFile& f = *e->file_;
  TextEncoderConfig& c = e->config_;
  c = read_config(f);
  e->tok_ = Tokenizer::from_gguf(f);
  if (e->tok_->model() != TokenizerModel::Bert)
    throw Error(
        fmt::format("{}: a bert model needs tokenizer.ggml.model 'bert' (WordPiece)", path));

  auto w = std::make_unique<TextEncoderWeights>();
  Binder b(f);
  const GgufTensorInfo& embd = b.find("token_embd.weight");
  if (embd.ne.size() != 2 || embd.ne[0] != c.n_embd || embd.ne[1] <= 0)
    throw Error(fmt::format("{}: tensor 'token_embd.weight' has shape {}, expected [{}, n_vocab]",
                            path, Binder::shape(embd), c.n_embd));
  c.n_vocab = static_cast<int>(embd.ne[1]);
  if (c.n_vocab != e->tok_->n_vocab())
    throw Error(
        fmt::format("{}: tensor 'token_embd.weight' has {} rows but the vocabulary has {} "
                    "tokens",
                    path, c.n_vocab, e->tok_->n_vocab()));
  w->tok_embd = b.matrix("token_embd.weight", c.n_vocab, c.n_embd);
  w->pos_embd = b.matrix("position_embd.weight", c.n_ctx_train, c.n_embd);
  const GgufTensorInfo& types = b.find("token_types.weight");
  c.n_token_types = types.ne.size() == 2 && types.ne[1] > 0 ? static_cast<int>(types.ne[1]) : 1;
  if (f.has("tokenizer.ggml.token_type_count")) {
    const uint64_t n = f.get_uint("tokenizer.ggml.token_type_count");
    if (n != static_cast<uint64_t>(c.n_token_types))
      throw Error(
          fmt::format("{}: tokenizer.ggml.token_type_count = {} but tensor "
                      "'token_types.weight' has shape {}",
                      path, n, Binder::shape(types)));
  }
  w->type_embd = b.matrix("token_types.weight", c.n_token_types, c.n_embd);
  w->type0.resize(static_cast<size_t>(c.n_embd));
  table_row(w->type_embd, 0, w->type0.data());
  auto norm = [&](const std::string& name) {
    return BertNorm{b.vec(name + ".weight", c.n_embd), b.vec(name + ".bias", c.n_embd)};
  };
  auto lin = [&](const std::string& name, int rows, int cols) {
    BertLinear l{b.matrix(name + ".weight", rows, cols), b.vec(name + ".bias", rows)};
    prepack_weights(l.w);
    return l;
  };
  w->embd_norm = norm("token_embd_norm");
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    BertLayer L;
    L.q = lin(p + "attn_q", c.n_embd, c.n_embd);
    L.k = lin(p + "attn_k", c.n_embd, c.n_embd);
    L.v = lin(p + "attn_v", c.n_embd, c.n_embd);
    L.o = lin(p + "attn_output", c.n_embd, c.n_embd);
    L.attn_norm = norm(p + "attn_output_norm");
    L.up = lin(p + "ffn_up", c.n_ff, c.n_embd);
    L.down = lin(p + "ffn_down", c.n_embd, c.n_ff);
    L.out_norm = norm(p + "layer_output_norm");
    w->layers.push_back(std::move(L));
  }
  e->weights_ = std::move(w);
  e->identity_ =
      embedding_identity(f, "bert", c.n_embd, c.pooling == Pooling::Cls ? "cls" : "mean");
  return e;
}

std::vector<float> TextEncoder::hidden_states(std::span<const int32_t> ids,
                                              ThreadPool& pool) const {
  const TextEncoderConfig& c = config_;
  const TextEncoderWeights& W = *weights_;
  const int n = static_cast<int>(ids.size());
  if (n == 0) throw Error("text encoder: no tokens");
  if (n > c.n_ctx_train)
    throw Error(fmt::format("text encoder: {} tokens, but {} holds at most {} (its positions)", n,
                            file_->path(), c.n_ctx_train));
  const size_t E = static_cast<size_t>(c.n_embd), F = static_cast<size_t>(c.n_ff);
  std::vector<float> x(n * E), h(n * E), q(n * E), k(n * E), v(n * E), att(n * E), ff(n * F);
  std::vector<float> tok(E), pos(E);
  for (int i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= c.n_vocab)
      throw Error(
          fmt::format("text encoder: token id {} is out of range [0, {})", ids[i], c.n_vocab));
    table_row(W.tok_embd, ids[i], tok.data());
    table_row(W.pos_embd, i, pos.data());
    for (size_t j = 0; j < E; ++j) h[i * E + j] = tok[j] + pos[j] + W.type0[j];
  }
  norm_rows(W.embd_norm, h.data(), n, x.data(), c.norm_eps);
  const int head_dim = c.n_embd / c.n_head;
  for (const BertLayer& L : W.layers) {
    {  // one activation pass and one parallel region for the three projections
      const WeightMatrix w[3] = {L.q.w, L.k.w, L.v.w};
      float* const y[3] = {q.data(), k.data(), v.data()};
      matmul_many(w, y, 3, x.data(), n, pool);
    }
    add_bias(q.data(), L.q.b, n);
    add_bias(k.data(), L.k.b, n);
    add_bias(v.data(), L.v.b, n);
    attend_all(q.data(), k.data(), v.data(), att.data(), n, c.n_head, head_dim, pool);
    linear(L.o, att.data(), n, h.data(), pool);
    for (size_t j = 0; j < h.size(); ++j) h[j] += x[j];
    norm_rows(L.attn_norm, h.data(), n, x.data(), c.norm_eps);
    linear(L.up, x.data(), n, ff.data(), pool);
    gelu_erf(ff.data(), static_cast<int64_t>(ff.size()));
    linear(L.down, ff.data(), n, h.data(), pool);
    for (size_t j = 0; j < h.size(); ++j) h[j] += x[j];
    norm_rows(L.out_norm, h.data(), n, x.data(), c.norm_eps);
  }
  return x;
}

std::vector<float> TextEncoder::embed_tokens(std::span<const int32_t> ids, ThreadPool& pool) const {
  const std::vector<float> x = hidden_states(ids, pool);
  const size_t E = static_cast<size_t>(config_.n_embd), n = ids.size();
  std::vector<double> pooled(E, 0.0);
  if (config_.pooling == Pooling::Cls) {
    for (size_t j = 0; j < E; ++j) pooled[j] = x[j];
  } else {
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < E; ++j) pooled[j] += x[i * E + j];
    for (double& p : pooled) p /= static_cast<double>(n);
  }
  double ss = 0;
  for (double p : pooled) ss += p * p;
  const double inv = ss > 0 ? 1.0 / std::sqrt(ss) : 0.0;
  std::vector<float> out(E);
  for (size_t j = 0; j < E; ++j) out[j] = static_cast<float>(pooled[j] * inv);
  return out;
}

TextEncoder::Embedding TextEncoder::embed(std::string_view text, ThreadPool& pool) const {
  std::vector<int32_t> ids = tok_->encode(text, true, false);
  Embedding r;
  const size_t limit = static_cast<size_t>(config_.n_ctx_train);
  if (ids.size() > limit) {
    // As BERT truncates: the text's first tokens, then [SEP].
    ids.resize(limit);
    ids.back() = tok_->eos();
    r.truncated = true;
  }
  r.n_tokens = ids.size();
  r.vector = embed_tokens(ids, pool);
  return r;
}

}  // namespace engram
