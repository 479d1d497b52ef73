// `--memory` and its parameters, shared by every command that runs a stream, and chunked
// prefill with a progress bar.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "engram/conversation.h"  // stream_slice, eval_in_slices
#include "engram/memory.h"

namespace CLI {
class App;
}

namespace engram {
class Context;
class Model;
}  // namespace engram

namespace engram::cli {

struct MemoryOptions {
  MemoryParams params;
  std::string refine = "none";
};

// Registers --memory, --n-sink, --n-init, --n-local, --block-size, --repr-topk, --topk, --n-mem,
// --gamma, --tau, --min-event, --max-event, --refine, --contiguity, --retrieve-every, --kv-f16
// on `cmd`.
void add_memory_options(CLI::App* cmd, MemoryOptions& o);

// The parameters the options describe; n_ctx is the `full` policy's size (0: trained).
MemoryParams memory_params(const MemoryOptions& o, int64_t n_ctx);

// Refuses (naming the flag and `why`) any memory flag given on `cmd` other than the storage
// flags --kv-dir and --kv-cache: for commands where a saved session fixes the policy.
void refuse_memory_flags(const CLI::App& cmd, const std::string& why);

// The policy the options describe for `model`; n_ctx is the `full` policy's size (0: trained).
std::unique_ptr<MemoryPolicy> make_policy(const MemoryOptions& o, const Model& model,
                                          int64_t n_ctx);

// Evaluates `tokens` in slices, drawing a progress bar on stderr (tokens/s, memory units formed,
// memory held) when `progress` is set.
void prefill(Context& ctx, std::span<const int32_t> tokens, bool progress);

// Tokens at the end of a prompt that generation follows which are read as a block of their own:
// the last line (the tokens after the last `newline`) when it holds 2 to block_limit() - 1
// tokens, else the last kPromptTail; none when the whole prompt fits one block. A file that
// ends with its question is then read as `run -f FILE -p QUESTION` reads the question: a
// block that is no prefill chunk, for which memory retrieves. Without it the question lands in
// whatever block the chunking leaves at the end -- a full chunk (gated), one token (a decode
// step, reusing the last retrieval) or a few of its last tokens (docs/EVALUATION.md, issue 21).
constexpr size_t kPromptTail = 32;
size_t prompt_tail(const Context& ctx, std::span<const int32_t> tokens, int32_t newline);

// prefill() of a prompt that generation follows: the prompt_tail() as its own last block.
void prefill_prompt(Context& ctx, std::span<const int32_t> tokens, int32_t newline, bool progress);

// Redraws the one-line prefill progress bar on stderr: policy, `where` (e.g. "1200/5000
// tokens"), percent done, tokens/s over `secs`, events or blocks formed, cells and bytes held.
void draw_progress(const Context& ctx, const std::string& where, double fraction, int64_t tokens,
                   double secs);

// "12.3 MiB"
std::string format_bytes(uint64_t b);

}  // namespace engram::cli
