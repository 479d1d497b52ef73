// A conversation with a model: its messages, the stream that holds them under a memory policy,
// and replies generated a token at a time. This is the one conversation engine: `engram chat`
// is a REPL over it and `engram serve` an HTTP layer over it.
//
// A turn: prompt() renders the messages through the chat template and evaluates only what the
// stream does not hold yet (the cached tokens, or the cached text, start the new rendering);
// then start_reply(), and step() until it reports a finish; between steps the caller evaluates
// pending() -- one Context::eval, or one batched pass over many conversations (decode_batch);
// end_reply() adds the reply to the messages. save()/resume() keep it all in a session file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engram/chat_template.h"
#include "engram/context.h"
#include "engram/memory.h"
#include "engram/sampler.h"

namespace engram {

class Model;
class Tokenizer;
class ThreadPool;
class GrammarMatcher;

// Why a reply ended. OpenAI's finish_reason: Stop -> "stop", Length/ContextFull -> "length".
enum class FinishReason { None, Stop, Length, ContextFull, Cancelled };
const char* finish_reason_name(FinishReason r);

struct ReplyParams {
  int max_tokens = 512;
  std::vector<std::string> stop;
  // Constrains the reply to a grammar (engram/grammar.h: JSON Schema, GBNF, regex); the reply
  // ends when the grammar's output is complete. Null: none. A matcher serves one reply.
  std::shared_ptr<GrammarMatcher> grammar;
};

// What a prompt cost: tokens of the rendered prompt, how many were already in the stream.
struct PromptStats {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t evaluated = 0;
  const char* reuse = "none";  // how the cached prefix was found: none | tokens | text
};

// Called while a long prompt is read: tokens done, tokens in all.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

class Conversation {
 public:
  // A new, empty conversation; the stream's memory policy is made from `memory`.
  Conversation(const Model& model, const Tokenizer& tok, ChatTemplate tmpl, ThreadPool& pool,
               const MemoryParams& memory, const ContextParams& params);
  // A conversation saved by save(). kv_dir / kv_cache_mib say where this run keeps memory
  // units. Throws engram::Error naming `path` when it holds no conversation (a stream saved by
  // `run`), was saved with another template, or does not match itself.
  static std::unique_ptr<Conversation> resume(const std::string& path, const Model& model,
                                              const Tokenizer& tok, ChatTemplate tmpl,
                                              ThreadPool& pool, const ContextParams& params,
                                              const std::string& kv_dir = "",
                                              int kv_cache_mib = 256);
  ~Conversation();
  Conversation(const Conversation&) = delete;
  Conversation& operator=(const Conversation&) = delete;

  // The sampler for the replies that follow. It is seeded once and carries on across turns; it
  // has already seen the stream's last tokens (repetition penalties look back over them).
  void set_sampling(const SamplerParams& params);

  // Renders `messages` (the whole conversation, ending with the turn to answer) and evaluates
  // what is new; they become messages(). Throws engram::Error (and changes nothing) when the
  // template rejects them or they need more tokens than the memory policy holds.
  PromptStats prompt(const std::vector<ChatMessage>& messages, const ProgressFn& progress = {});
  // A raw text prompt (no template; BOS as the vocabulary wants): /v1/completions.
  PromptStats prompt_text(const std::string& text, const ProgressFn& progress = {});

  // Starts a reply to the prompt just evaluated.
  void start_reply(const ReplyParams& params);
  struct Step {
    std::string text;  // what became showable (stop strings held back, UTF-8 never split)
    FinishReason finish = FinishReason::None;
  };
  // Samples the next token from the stream's logits and returns what it shows. When finish is
  // None, the token is pending(): evaluate it (eval_pending() or decode_batch) before the next
  // step. A finishing step's text includes everything held back.
  Step step();
  // Ends the reply early (a client went away, Ctrl-C): the held-back text is returned.
  Step cancel();
  // The token the next forward pass must evaluate, or -1.
  int32_t pending() const { return pending_; }
  void eval_pending();
  // Called by decode_batch after it evaluated pending() in this conversation's context.
  void pending_done();
  // Adds the reply (as shown) to messages() as the assistant's turn and returns it.
  std::string end_reply();
  // Tokens generated in the current/last reply.
  int completion_tokens() const { return n_generated_; }

  // Forgets everything but the system prompt (when `keep_system`).
  void reset(bool keep_system);
  // Writes the stream and the conversation to `path` (beside, then renamed).
  void save(const std::string& path) const;

  const std::vector<ChatMessage>& messages() const { return messages_; }
  const ChatTemplate& chat_template() const { return tmpl_; }
  const MemoryParams& memory() const { return memory_; }
  Context& context() { return *ctx_; }
  const Context& context() const { return *ctx_; }
  // The tokens the stream holds, in order (what the next prompt's prefix is matched against).
  const std::vector<int32_t>& cached_tokens() const { return cached_; }

 private:
  Conversation(const Model& model, const Tokenizer& tok, ChatTemplate tmpl, ThreadPool& pool);
  PromptStats evaluate(std::vector<int32_t> tokens, std::string text, bool raw,
                       const ProgressFn& progress);
  size_t text_match(const std::string& prompt) const;
  void clear_stream();

  const Model& model_;
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  ThreadPool& pool_;
  MemoryParams memory_;
  std::unique_ptr<Context> ctx_;
  std::optional<Sampler> sampler_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> cached_;  // tokens in the stream, in order
  std::string cached_text_;      // the text they spell
  // Where in cached_text_ the last reply began with a space the shown reply leaves out (a
  // SentencePiece decoder drops it), or ~0.
  uint64_t dropped_space_;
  std::string bos_text_;

  // The reply in progress.
  struct Reply;
  std::unique_ptr<Reply> reply_;
  int32_t pending_ = -1;
  int n_generated_ = 0;
};

// Evaluates the pending() token of every conversation in one forward pass over all of them
// (Context::decode_batch: the weights are read once for the whole batch).
void eval_pending(std::span<Conversation* const> conversations);

// Evaluates `tokens` in slices of whole prefill chunks (the same blocks as one eval, so the
// same result), calling `progress` after each.
void eval_in_slices(Context& ctx, std::span<const int32_t> tokens, const ProgressFn& progress);

// Tokens to evaluate per call when streaming a long input in pieces: the largest multiple of
// the context's prefill chunk up to `about` (at least one chunk). Pieces of another size would
// end in a short block, which a memory policy takes for a question and retrieves for.
size_t stream_slice(const Context& ctx, size_t about);

}  // namespace engram
