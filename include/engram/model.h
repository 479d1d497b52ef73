// A llama-family model loaded from a GGUF file: hyperparameters and weight views into the
// memory-mapped file. Loading validates names, shapes and types of every tensor it uses.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engram/gguf.h"

namespace engram {

struct ModelConfig {
  std::string arch;  // "llama" or "qwen2"
  std::string name;  // general.name, if any
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_ctx_train = 0;
  float rms_eps = 1e-5f;
  // RoPE
  int rope_dim = 0;
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // linear scaling: positions are multiplied by this
  bool rope_interleaved = true;  // llama GGUF layout; qwen2 uses the NeoX (half) layout
  bool has_rope_freqs = false;   // llama3-style per-frequency divisors (rope_freqs.weight)
  bool qkv_bias = false;
  bool tied_output = false;
};

struct ModelWeights;  // defined in src/model/model_weights.h

class Model {
 public:
  // Opens, validates and maps the model. Throws engram::Error naming the file and the problem
  // (unsupported architecture or tensor type, missing tensor, wrong shape).
  static std::unique_ptr<Model> load(const std::string& path);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const GgufFile& file() const { return *file_; }
  const ModelWeights& weights() const { return *weights_; }

  // Bytes of weight data read for one decode step (every matrix once), and parameter count.
  uint64_t weight_bytes() const;
  uint64_t n_params() const;

 private:
  Model() = default;
  ModelConfig config_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<ModelWeights> weights_;
};

}  // namespace engram
