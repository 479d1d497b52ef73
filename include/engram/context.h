// A running model: the KV memory of one stream and the forward pass over it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engram/memory.h"

namespace engram {

class Model;
class ThreadPool;
class RecordWriter;
class RecordReader;

struct ContextParams {
  int64_t n_ctx = 0;  // 0: the model's trained context
  int n_batch = 512;  // prefill chunk size (tokens per query block)
};

class Context {
 public:
  // Uses the `full` policy over n_ctx cells unless another policy is given.
  Context(const Model& model, ThreadPool& pool, const ContextParams& params = {},
          std::unique_ptr<MemoryPolicy> policy = nullptr);
  ~Context();

  // Runs `tokens` through the model in chunks of n_batch, appending them to memory at the next
  // positions. Keeps the logits of the last token, or of every token when all_logits.
  void eval(std::span<const int32_t> tokens, bool all_logits = false);

  // One token for each of several streams of the same model in one forward pass: the weight
  // matrices are read once for the whole batch, attention runs per stream under its own memory
  // policy. Same result as ctxs[i]->eval({tokens[i]}) for each i, within float rounding.
  static void decode_batch(std::span<Context* const> ctxs, std::span<const int32_t> tokens);

  // The embedding of `tokens`: the mean over them of the final hidden state (after the output
  // norm), L2-normalised. Evaluated in a cleared stream, which is cleared again after.
  std::vector<float> embed(std::span<const int32_t> tokens);

  // Logits of the last evaluated token ([n_vocab]).
  std::span<const float> logits() const;
  // Logits of token i of the last eval (requires all_logits).
  std::span<const float> logits(int64_t i) const;

  int64_t n_past() const { return n_past_; }
  // Tokens per prefill chunk: eval() cuts its input into blocks of this many (n_batch, or less
  // if the memory policy accepts less). A caller streaming a long input in pieces should make
  // each piece a multiple of it: the policy tells a chunk carrying the stream from a question
  // by its size.
  int block_limit() const;
  // Most tokens this context can hold: n_ctx for `full`, unbounded for policies that forget or
  // move old tokens to memory.
  int64_t n_ctx() const { return policy_->capacity(); }
  const MemoryPolicy& policy() const { return *policy_; }
  const Model& model() const { return model_; }
  // Cells held, keys attended by the last block, units formed, and bytes of K/V + policy state.
  MemoryStats memory_stats() const;
  uint64_t memory_bytes() const;
  // Stream positions of the cells the last block attended to at `layer` (what the memory policy
  // loaded: evaluation checks whether a needle was among them).
  std::span<const int64_t> attended_positions(int layer) const;
  // The tokens of the cells held, in stream order (all of them for policies that keep memory
  // units; the sinks and the window for sliding policies).
  std::vector<int32_t> tokens() const;
  // Forgets every cached token.
  void clear();

  // The stream's state as records, and back into a fresh context made with the same model and
  // policy parameters (engram/session.h is the API).
  void save_state(RecordWriter& out) const;
  void load_state(RecordReader& in);

 private:
  struct Impl;
  void eval_block(std::span<const int32_t> tokens, bool all_logits);
  // Embeds the block and runs it through every layer, leaving the last hidden states in Impl.
  void run_layers(std::span<const int32_t> tokens, const QueryBlock& block);
  void attend_layer(int layer, const QueryBlock& block, float* q, float* k, float* v, float* att);
  // Appends the block's cells (positions n_past_ on) before its layers run.
  QueryBlock begin_block(std::span<const int32_t> tokens);
  // After the layers: surprise from the block's logits `out` ([rows, n_vocab], rows = n or the
  // last only), the policy's apply, eviction.
  void end_block(std::span<const int32_t> tokens, const QueryBlock& block, const float* out,
                 bool all_logits);

  const Model& model_;
  ThreadPool& pool_;
  ContextParams params_;
  std::unique_ptr<MemoryPolicy> policy_;
  std::unique_ptr<Impl> impl_;
  int64_t n_past_ = 0;
  std::vector<float> logits_;  // [n_logits, n_vocab]
  int64_t n_logits_ = 0;
};

}  // namespace engram
