// Model::load: reads hyperparameters from GGUF metadata and binds every tensor the forward
// pass needs, checking name, shape and type up front so a bad file fails at load time.
#include <fmt/format.h>

#include "engram/error.h"
#include "engram/model.h"
#include "kernels/quant.h"
#include "model/model_weights.h"
#include "model/tensor_binder.h"

namespace engram {
namespace {

ModelConfig read_config(const GgufFile& f) {
  ModelConfig c;
  if (!f.has("general.architecture")) {
    throw Error(fmt::format("{}: no 'general.architecture' key; is this a model file?", f.path()));
  }
  c.arch = f.get_string("general.architecture");
  if (c.arch != "llama" && c.arch != "qwen2") {
    throw Error(fmt::format("{}: architecture '{}' is not supported (supported: llama, qwen2){}",
                            f.path(), c.arch,
                            c.arch == "bert" ? "; a bert file is an embedding model: give it "
                                               "with --embed-model"
                                             : ""));
  }
  c.name = f.get_string("general.name", "");
  const std::string a = c.arch + ".";
  c.n_embd = positive_int(f, a + "embedding_length", 1 << 16);
  c.n_layer = positive_int(f, a + "block_count", 1024);
  c.n_head = positive_int(f, a + "attention.head_count", 1024);
  c.n_head_kv = f.has(a + "attention.head_count_kv")
                    ? positive_int(f, a + "attention.head_count_kv", 1024)
                    : c.n_head;
  c.n_ff = positive_int(f, a + "feed_forward_length", 1 << 20);
  c.n_ctx_train = positive_int(f, a + "context_length", 1 << 24);
  c.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
  if (c.n_head % c.n_head_kv != 0) {
    throw Error(fmt::format("{}: head_count {} is not a multiple of head_count_kv {}", f.path(),
                            c.n_head, c.n_head_kv));
  }
  c.head_dim = f.has(a + "attention.key_length") ? positive_int(f, a + "attention.key_length", 4096)
                                                 : c.n_embd / c.n_head;
  if (c.head_dim * c.n_head != c.n_embd && !f.has(a + "attention.key_length")) {
    throw Error(fmt::format("{}: embedding_length {} is not divisible by head_count {}", f.path(),
                            c.n_embd, c.n_head));
  }
  if (f.get_uint(a + "attention.value_length", c.head_dim) != static_cast<uint64_t>(c.head_dim)) {
    throw Error(
        fmt::format("{}: attention.value_length differs from key_length; not supported", f.path()));
  }
  c.rope_dim = static_cast<int>(f.get_uint(a + "rope.dimension_count", c.head_dim));
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    throw Error(fmt::format("{}: rope.dimension_count {} is invalid for head size {}", f.path(),
                            c.rope_dim, c.head_dim));
  }
  c.rope_base = static_cast<float>(f.get_float(a + "rope.freq_base", 10000.0));
  const std::string scaling = f.get_string(a + "rope.scaling.type", "none");
  if (scaling == "linear") {
    double factor = f.get_float(a + "rope.scaling.factor", 1.0);
    if (!(factor > 0)) {
      throw Error(fmt::format("{}: rope.scaling.factor {} must be > 0", f.path(), factor));
    }
    c.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (scaling != "none") {
    throw Error(
        fmt::format("{}: rope scaling type '{}' is not supported (supported: none, "
                    "linear, and llama3 via rope_freqs)",
                    f.path(), scaling));
  }
  if (f.has(a + "rope.scale_linear")) {
    c.rope_freq_scale = static_cast<float>(1.0 / f.get_float(a + "rope.scale_linear"));
  }
  c.rope_interleaved = (c.arch == "llama");
  c.qkv_bias = (c.arch == "qwen2");
  return c;
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = GgufFile::open(path);
  const GgufFile& f = *m->file_;
  ModelConfig& c = m->config_;
  c = read_config(f);

  auto w = std::make_unique<ModelWeights>();
  Binder b(f);
  const GgufTensorInfo& embd = b.find("token_embd.weight");
  if (embd.ne.size() != 2 || embd.ne[0] != c.n_embd || embd.ne[1] <= 0) {
    throw Error(fmt::format("{}: tensor 'token_embd.weight' has shape {}, expected [{}, n_vocab]",
                            path, Binder::shape(embd), c.n_embd));
  }
  c.n_vocab = static_cast<int>(embd.ne[1]);
  w->tok_embd = b.matrix("token_embd.weight", c.n_vocab, c.n_embd);
  w->output_norm = b.vec("output_norm.weight", c.n_embd);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  w->output = c.tied_output ? w->tok_embd : b.matrix("output.weight", c.n_vocab, c.n_embd);
  if (f.find_tensor("rope_freqs.weight")) {
    w->rope_freqs = b.vec("rope_freqs.weight", c.rope_dim / 2);
    c.has_rope_freqs = true;
  }
  const int q_dim = c.n_head * c.head_dim;
  const int kv_dim = c.n_head_kv * c.head_dim;
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    LayerWeights L;
    L.attn_norm = b.vec(p + "attn_norm.weight", c.n_embd);
    L.wq = b.matrix(p + "attn_q.weight", q_dim, c.n_embd);
    L.wk = b.matrix(p + "attn_k.weight", kv_dim, c.n_embd);
    L.wv = b.matrix(p + "attn_v.weight", kv_dim, c.n_embd);
    L.wo = b.matrix(p + "attn_output.weight", c.n_embd, q_dim);
    if (c.qkv_bias) {
      L.bq = b.vec(p + "attn_q.bias", q_dim);
      L.bk = b.vec(p + "attn_k.bias", kv_dim);
      L.bv = b.vec(p + "attn_v.bias", kv_dim);
    }
    L.ffn_norm = b.vec(p + "ffn_norm.weight", c.n_embd);
    L.w_gate = b.matrix(p + "ffn_gate.weight", c.n_ff, c.n_embd);
    L.w_up = b.matrix(p + "ffn_up.weight", c.n_ff, c.n_embd);
    L.w_down = b.matrix(p + "ffn_down.weight", c.n_embd, c.n_ff);
    w->layers.push_back(std::move(L));
  }
  // Matrices the matmul kernels read in a repacked layout are copied into it once here; the
  // mapped file is then read only for token embeddings.
  prepack_weights(w->output);
  for (LayerWeights& L : w->layers) {
    for (WeightMatrix* mat : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      prepack_weights(*mat);
    }
  }
  m->weights_ = std::move(w);
  return m;
}

Model::~Model() = default;

uint64_t Model::weight_bytes() const {
  auto bytes = [](const WeightMatrix& w) { return static_cast<uint64_t>(w.row_bytes) * w.rows; };
  uint64_t total = bytes(weights_->output);
  for (const LayerWeights& L : weights_->layers) {
    total += bytes(L.wq) + bytes(L.wk) + bytes(L.wv) + bytes(L.wo) + bytes(L.w_gate) +
             bytes(L.w_up) + bytes(L.w_down);
  }
  return total;
}

uint64_t Model::n_params() const {
  uint64_t total = 0;
  for (const GgufTensorInfo& t : file_->tensors()) total += t.n_elements();
  return total;
}

}  // namespace engram
