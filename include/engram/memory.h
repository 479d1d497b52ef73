// The KV-memory layer between the model and the cached keys/values.
//
// The model never reaches into the cache: once per query block (a prefill chunk or one decode
// step) and per layer it asks the memory policy for a plan -- which cells the block attends to
// and the RoPE position each key and query gets -- and the attention kernel only consumes that
// plan. plan() does not mutate; apply() (once per block, after all layers and the logits) is the
// only mutator: it may form memory units and tell the model which cells to forget.
//
// Policies that need more than the cell list (the block's queries and keys per layer, or the
// surprise of every token) say so through needs(); the model computes those only when asked.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace engram {

class ThreadPool;
struct ModelConfig;
class RecordWriter;
class RecordReader;

// Metadata of one cached token, kept apart from its K/V tensors.
struct KvCell {
  int32_t token = -1;
  int64_t pos = 0;  // position in the stream; the stored key is rotated at this position
};

// The cells a query block appended before being planned: [first_cell, first_cell + n_tokens).
struct QueryBlock {
  int64_t first_cell = 0;
  int n_tokens = 0;
};

struct AttentionPlan {
  // Cells to attend, in order; the block's own cells come last, in order, so that query i of
  // the block sees cells [0, cells.size() - n_tokens + i + 1).
  std::vector<int64_t> cells;
  std::vector<int64_t> key_pos;    // RoPE position given to each planned key
  std::vector<int64_t> query_pos;  // RoPE position given to each query of the block
  void clear() {
    cells.clear();
    key_pos.clear();
    query_pos.clear();
  }
};

// What a policy asks the model to compute for it (all off: nothing extra is computed).
struct PolicyNeeds {
  bool qk = false;        // the block's queries and keys before RoPE, per layer
  bool surprise = false;  // -log p(token | previous tokens) of every token of the block
  // Store keys before RoPE and rotate them at their planned position when gathering (policies
  // that re-position keys; avoids rotating twice, and large angles at stream positions ~1e6).
  bool keys_before_rope = false;
  bool kv_f16 = false;  // store K/V as f16 (half the RAM; gathering converts)
  // The attention mass each planned key received from the block's queries, per layer.
  bool received = false;
  // Move the K/V of settled cells (see MemoryPolicy::settled_cells) out of RAM into a file in
  // this directory (empty: keep everything in RAM), with a cache of about kv_cache_bytes.
  std::string kv_dir;
  uint64_t kv_cache_bytes = 0;
};

// Shapes a policy needs to read BlockData; taken from the model.
struct ModelShape {
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ctx_train = 0;
  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
};

// The shapes of a model's configuration.
ModelShape model_shape(const ModelConfig& c);

// Per-block data the model fills as far as needs() asks. During plan(layer) the q/k rows of
// layers <= layer are filled; during apply() everything is.
struct BlockData {
  int n_tokens = 0;
  std::vector<std::vector<float>> q;  // [n_layer][n_tokens * q_dim], before RoPE
  std::vector<std::vector<float>> k;  // [n_layer][n_tokens * kv_dim], before RoPE
  std::vector<float> surprise;        // [n_tokens], nats; 0 for the first token of the stream
  // [n_layer][planned keys]: the cells the layer's plan listed, and the softmax probability
  // each received from the block's queries, summed over queries and heads (needs().received).
  std::vector<std::vector<int64_t>> planned;
  std::vector<std::vector<float>> received;
  // The model's threads, for a policy's own heavy work (scoring memory); may be null.
  ThreadPool* pool = nullptr;
};

// Cells the model must drop after apply(): [begin, end); cells after it are renumbered down.
struct Eviction {
  int64_t begin = 0;
  int64_t end = 0;
  bool empty() const { return end <= begin; }
};

// What a policy did, for progress bars and reports.
struct MemoryStats {
  int64_t cells_held = 0;      // cells in the store
  int64_t cells_attended = 0;  // keys the last block attended to at layer 0 (incl. its own)
  int64_t units = 0;           // memory units formed (blocks or events)
  int64_t tokens_seen = 0;     // tokens the stream has had in all
  uint64_t bytes_on_disk = 0;  // K/V moved to the memory file (PolicyNeeds::kv_dir)
};

class MemoryPolicy {
 public:
  virtual ~MemoryPolicy() = default;
  virtual std::string name() const = 0;
  virtual PolicyNeeds needs() const { return {}; }
  // Most tokens the stream may hold in all; eval() refuses a block that would exceed it, before
  // changing anything. Policies that forget old cells are unbounded.
  virtual int64_t capacity() const { return std::numeric_limits<int64_t>::max(); }
  // Largest query block the policy accepts (its positions must stay inside the trained context);
  // the model cuts prefill chunks to it.
  virtual int max_block() const { return std::numeric_limits<int>::max(); }
  // Plans attention of `block` at `layer`. Must not change any state.
  virtual void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
                    const BlockData& data, AttentionPlan& out) const = 0;
  // Called once after all layers processed `block` (and its logits are known).
  virtual void apply(const QueryBlock& block, const std::vector<KvCell>& cells,
                     const BlockData& data, Eviction& evict) {
    (void)block;
    (void)cells;
    (void)data;
    (void)evict;
  }
  // Called once after every layer planned `block`; true asks the model to run the block through
  // every layer again, planning each anew (and to keep only that second run). A policy whose
  // deeper layers found memory that its shallower layers should load too uses it. Must not
  // change committed state.
  virtual bool reread(const QueryBlock& block) const {
    (void)block;
    return false;
  }
  // Forgets everything (the model cleared its cells).
  virtual void reset() {}
  // Saved sessions (engram/session.h): a policy whose state is more than its cells writes it
  // as records, and reads it back into a policy made with the same parameters, checking every
  // value against the `cells` already restored. Policies without such state write nothing.
  virtual void save_state(RecordWriter& out) const { (void)out; }
  virtual void load_state(RecordReader& in, const std::vector<KvCell>& cells) {
    (void)in;
    (void)cells;
  }
  // Cells [0, n) will never be written or evicted again and are read only when a plan lists
  // them (memory units): the model may keep their K/V out of RAM. 0 for policies that evict.
  virtual int64_t settled_cells() const { return 0; }
  // Units formed so far (blocks or events); 0 for policies without memory units.
  virtual int64_t units() const { return 0; }
  // Bytes the policy itself holds (representatives, pending keys), beside the K/V store.
  virtual uint64_t bytes() const { return 0; }
};

enum class Refine { none, modularity, conductance };

// Parameters of every policy; -1 means "scaled to the model's trained context" (see
// resolve_memory_params; other negative values are refused). Field names match the CLI flags
// (n_local <-> --n-local).
struct MemoryParams {
  std::string kind = "full";  // full | window | sinks | blocks | episodic
  int64_t n_ctx = 0;          // full: cells held (0: the trained context)
  int n_sink = 4;             // sinks: initial tokens kept
  int n_init = 4;             // blocks/episodic: initial tokens kept (as sinks' n_sink)
  int n_local = -1;           // window/sinks/blocks/episodic: local window
  int block_size = -1;        // blocks: tokens per memory block
  int repr_topk = 8;          // blocks/episodic: representative keys per unit
  int topk = -1;              // blocks: memory blocks loaded per query block
  int n_mem = -1;             // episodic: retrieved-memory budget in tokens
  double gamma = 1.0;         // episodic: boundary threshold in std devs
  int tau = -1;               // episodic: surprise statistics window
  int min_event = 8;          // episodic
  int max_event = -1;         // episodic
  Refine refine = Refine::none;
  double contiguity = 0.3;  // episodic: share of n_mem for neighbours of hits
  // blocks/episodic: a decode step (one-token block) or a prefill chunk (a block of the policy's
  // max_block() tokens, where the model cuts long inputs) reuses the units chosen by the last
  // retrieval at its layer while that retrieval is fewer than this many tokens old (1: retrieve
  // at every block). Blocks of other sizes (a question, a user's turn) always retrieve.
  int retrieve_every = 256;
  // blocks/episodic: a prefill chunk loads a unit only if the unit's retrieval score beats the
  // score the chunk's queries give the local window by this many nats (a large negative value
  // loads the best units unconditionally, as InfLLM and EM-LLM do). Questions are not gated.
  double chunk_gate = 3.0;
  // blocks/episodic: a question also scores units by the words it shares with them (BM25 over
  // token ids), adding up to about this many nats to a unit holding every question token (0:
  // attention alone). Prefill chunks and decode steps are not affected.
  double lexical = 3.0;
  // blocks/episodic: a question is read twice -- once with each layer retrieving for itself,
  // then with every layer loading the units all layers chose together (see MemoryPolicy::reread).
  bool shared_retrieval = true;
  bool kv_f16 = false;  // all but full: store K/V as f16
  // blocks/episodic: keep the K/V of memory units in an (unlinked) file in this directory
  // instead of RAM, read back through a cache of kv_cache_mib MiB. Empty: all in RAM.
  std::string kv_dir;
  int kv_cache_mib = 256;
};

// Fills the -1 fields from n_ctx_train and checks every field; throws engram::Error naming the
// field, its flag and value.
MemoryParams resolve_memory_params(const MemoryParams& p, const ModelShape& shape);

// Builds the policy of p.kind (after resolve_memory_params).
std::unique_ptr<MemoryPolicy> make_memory_policy(const MemoryParams& p, const ModelShape& shape);

// Dense attention over every cell, at the cells' own positions; refuses to grow past n_ctx.
std::unique_ptr<MemoryPolicy> make_full_policy(int64_t n_ctx);

}  // namespace engram
