// Views of a model's tensors, ready for the kernels. Matrices point into the mapped file;
// small vectors (norms, biases, rope factors) are converted to f32 copies at load time.
#pragma once

#include <vector>

#include "kernels/matmul.h"

namespace engram {

struct LayerWeights {
  std::vector<float> attn_norm;   // [n_embd]
  WeightMatrix wq, wk, wv, wo;    // wq: [n_head*head_dim, n_embd] ...
  std::vector<float> bq, bk, bv;  // empty unless qkv_bias
  std::vector<float> ffn_norm;    // [n_embd]
  WeightMatrix w_gate, w_up;      // [n_ff, n_embd]
  WeightMatrix w_down;            // [n_embd, n_ff]
};

struct ModelWeights {
  WeightMatrix tok_embd;           // [n_vocab, n_embd]
  std::vector<float> output_norm;  // [n_embd]
  WeightMatrix output;             // [n_vocab, n_embd]; == tok_embd when tied
  std::vector<float> rope_freqs;   // [rope_dim/2] or empty
  std::vector<LayerWeights> layers;
};

}  // namespace engram
