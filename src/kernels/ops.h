// Element-wise and small ops of the forward pass. Each has a scalar definition here; where a
// SIMD version exists it is tested against the scalar one.
#pragma once

#include <cstdint>

namespace engram {

class ThreadPool;

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);

// In place, numerically stable.
void softmax(float* x, int64_t n);

// log(sum_i exp(x[i])), computed stably (n >= 1): the log normaliser of softmax(x).
float log_sum_exp(const float* x, int64_t n);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(float* out, const float* gate, const float* up, int64_t n);
// The same, large inputs (a prefill block's) split over the pool.
void silu_mul(float* out, const float* gate, const float* up, int64_t n, ThreadPool& pool);

// Rotary position embedding of one head vector of size head_dim, in place; only the first
// rope_dim dims rotate. interleaved=true rotates pairs (x[2i], x[2i+1]) (llama GGUF layout);
// false rotates (x[i], x[i + rope_dim/2]) (NeoX / qwen2 layout). freq_factors (may be null)
// divides the i-th frequency (llama3 scaling via rope_freqs); freq_scale multiplies the
// position (linear scaling).
struct RopeParams {
  int head_dim = 0;
  int rope_dim = 0;
  float base = 10000.0f;
  float freq_scale = 1.0f;
  const float* freq_factors = nullptr;  // rope_dim/2 entries or null
  bool interleaved = true;
};
void rope(float* x, int32_t pos, const RopeParams& p);
// The same in two steps, so the angles of one position are computed once for all heads:
// rope_cache fills cs[2*i], cs[2*i+1] = cos, sin of the i-th angle (rope_dim floats);
// rope_apply rotates one head vector with them.
void rope_cache(float* cs, int32_t pos, const RopeParams& p);
void rope_apply(float* x, const float* cs, const RopeParams& p);

// Attention of a block of n_q queries against n_kv cached keys/values for one layer.
// Query i sees keys [0, n_kv - n_q + i + 1): the policy orders cells so that the query block's
// own cells come last (causal inside the block). Grouped-query: head h reads kv head
// h / (n_head / n_head_kv).
struct AttentionArgs {
  const float* q = nullptr;  // [n_q, n_head, head_dim], rotated
  const float* k = nullptr;  // [n_kv, n_head_kv, head_dim], rotated, row stride k_stride floats
  const float* v = nullptr;  // [n_kv, n_head_kv, head_dim], row stride v_stride floats
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  float* out = nullptr;  // [n_q, n_head, head_dim]
  int n_q = 0;
  int64_t n_kv = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  // Optional output [n_q, n_head, n_kv]: each softmax's probabilities, 0 for the keys a query
  // does not see; attention_received() sums them per key.
  float* probs = nullptr;
};
// Tiled, flash-style (tiled_attention.cpp): blocks of queries against tiles of keys with an
// online softmax; the probabilities, when asked for, in a second pass over the keys.
void attention(const AttentionArgs& a, ThreadPool& pool);
// One softmax at a time in double: what the tests hold attention() to.
void attention_reference(const AttentionArgs& a);

// Attention mass each key received: recv[j] = sum over the queries i that see key j and over
// all heads of softmax probability (i, h, j), from the a.probs that attention() wrote. Memory
// policies choose representative keys by it. Each recv[j] is summed by one thread in a fixed
// order, so the result does not depend on the thread count.
void attention_received(const AttentionArgs& a, float* recv, ThreadPool& pool);

}  // namespace engram
