// Agent memory in a conversation: what `engram chat` and `engram serve` both run so that a model
// remembers its user across conversations (DESIGN.md section 4; the formats are the ones the
// shipped chat model is trained on, docs/MODEL.md "The memory protocol").
//
// Per user turn (retrospective side): the user's store is searched (hybrid BM25 + dense over the
// served model's embeddings) for top-K candidates, a reranker picks top-M, and they become the
// memory block, the whole system prompt:
//
//   You are a helpful assistant. Memories about the user:
//   [1] User's sister is named Alice.
//   Cite the memory you use as [i]. If none applies, say you don't know.
//
// The reply's `[i]` citations are parsed and stripped before the user sees the text
// (CitationFilter, which also works on a stream). Explicit controls are answered without the
// model: "remember ..." stores the statement (even a sensitive one: the user asked), "forget ..."
// forgets every memory that matches (the history keeps the event, not the text), "what do you
// remember about me?" lists them.
//
// At the conversation's end (prospective reflection): the model extracts topic memories as
// {"extracted_memories": [{"summary": ..., "reference": [turn ids]}]} under a JSON-schema
// constraint; for each, the similar existing memories are shown and the model answers Add() or
// Merge(i, "summary") under a grammar constraint; the store applies it with its history.
// Sensitive statements never reach automatic extraction: the detector's rules
// (sensitive_detector.h), and for what they pass the model's constrained yes/no per category
// (sensitive_judge.h), which can only add caution.
//
// A temporary chat is a session without a store: nothing is read or written.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/agent_memory.h"
#include "engram/chat_template.h"
#include "engram/reranker.h"

namespace engram {
class Grammar;
class GrammarVocab;
class Model;
class Tokenizer;
class ThreadPool;
class TextEncoder;
}  // namespace engram

namespace engram::agent_memory {

class SensitiveJudge;

// What the memory layer needs from a model. engine_memory_model() is engram's own; tests use
// scripted ones.
class MemoryModel {
 public:
  virtual ~MemoryModel() = default;
  // A dense vector for `text` (empty: no dense retrieval).
  virtual std::vector<float> embed(std::string_view text) = 0;
  // The greedy reply to `messages` (rendered by the chat template, with the generation
  // prompt), at most `max_tokens`, constrained by `grammar` when it is not null. Throws
  // engram::Error when the messages do not fit the context.
  virtual std::string complete(const std::vector<ChatMessage>& messages,
                               const std::shared_ptr<const Grammar>& grammar, int max_tokens) = 0;
  // Tokens of the rendered prompt, and how many the context holds (prompt and reply).
  virtual size_t count_tokens(const std::vector<ChatMessage>& messages) = 0;
  virtual size_t context_tokens() const = 0;
};

// The served model as a MemoryModel: embeddings from Context::embed (mean-pooled, normalised),
// completions from a conversation of its own (greedy). Use it from one thread at a time.
std::unique_ptr<MemoryModel> engine_memory_model(const Model& model, const Tokenizer& tok,
                                                 const ChatTemplate& tmpl, ThreadPool& pool,
                                                 std::shared_ptr<GrammarVocab> vocab);

// `model` with its embeddings taken from a dedicated text encoder instead (--embed-model);
// completions and token counts stay `model`'s. The encoder and pool must outlive the result.
std::unique_ptr<MemoryModel> with_text_encoder(std::unique_ptr<MemoryModel> model,
                                               const TextEncoder& encoder, ThreadPool& pool);

// The seam for the learned reranker (RMM's retrospective reflection): from the retriever's
// top-K candidates, best first, it picks the top-M shown to the model, and later hears which of
// them the reply cited. TopReranker is the deterministic default.
class MemoryReranker {
 public:
  virtual ~MemoryReranker() = default;
  // Indexes into `candidates` of the memories to show, in the order they are numbered [1]..[M].
  virtual std::vector<size_t> choose(std::string_view user, const std::vector<float>& query,
                                     const std::vector<SearchHit>& candidates, size_t m) = 0;
  // The reply's attribution: cited[j] is whether shown memory j+1 (candidates[chosen[j]]) was
  // cited. Called once per generated reply.
  virtual void feedback(std::string_view user, const std::vector<float>& query,
                        const std::vector<SearchHit>& candidates, const std::vector<size_t>& chosen,
                        const std::vector<bool>& cited) = 0;
};

// The retriever's first M, nothing learned.
class TopReranker : public MemoryReranker {
 public:
  std::vector<size_t> choose(std::string_view user, const std::vector<float>& query,
                             const std::vector<SearchHit>& candidates, size_t m) override;
  void feedback(std::string_view, const std::vector<float>&, const std::vector<SearchHit>&,
                const std::vector<size_t>&, const std::vector<bool>&) override {}
};

// RMM's learned reranker (include/engram/reranker.h, owned by the evaluation side) behind the
// seam: per user, loaded from the store when first used and saved after every learning step.
// While `learning`, the M are drawn (Gumbel top-M) and the citations of the reply are the
// rewards (+1 cited, -1 not); otherwise the M best scores. Candidates without an embedding of the
// query's size cannot be scored: then the retriever's first M are shown and nothing is learned.
// `params` apply to every user (the defaults, not RMM's: see RerankerParams). One thread at a time.
std::unique_ptr<MemoryReranker> learned_reranker(MemoryStore& store, bool learning = true,
                                                 uint64_t seed = 0,
                                                 const RerankerParams& params = {});

// The protocol's fixed texts (docs/MODEL.md).
inline constexpr std::string_view kPlainSystem = "You are a helpful assistant.";
inline constexpr std::string_view kMemoryHead =
    "You are a helpful assistant. Memories about the user:";
inline constexpr std::string_view kMemoryTail =
    "Cite the memory you use as [i]. If none applies, say you don't know.";
inline constexpr std::string_view kExtractSystem =
    "Extract memories about the user from the conversation. Answer with JSON: "
    "{\"extracted_memories\": [{\"summary\": ..., \"reference\": [turn ids]}]}.";
inline constexpr std::string_view kMergeSystem =
    "Decide how to store the new memory. Answer Add() if it is a new fact, or "
    "Merge(i, \"summary\") to combine it with existing memory [i].";

// The memory block for these summaries ([1]..[n]); the plain system prompt when there are none.
std::string memory_block(const std::vector<std::string>& summaries);

// Removes `[i]` citations (1-2 digits, with the space before them) from a reply, as it streams:
// feed() returns what may be shown now (a possible citation is held back until it is decided),
// finish() the rest. cited() lists the numbers found, in order of first appearance.
class CitationFilter {
 public:
  std::string feed(std::string_view text);
  std::string finish();
  const std::vector<int>& cited() const { return cited_; }

 private:
  std::string held_;
  std::vector<int> cited_;
};
// The whole reply at once: what the user sees, and the numbers cited.
std::string strip_citations(std::string_view reply, std::vector<int>* cited = nullptr);

// Explicit memory controls in a user's message.
enum class ControlKind { kNone, kRemember, kForget, kList };
struct Control {
  ControlKind kind = ControlKind::kNone;
  std::string text;  // remember: the statement as stored; forget: what to forget
};
// "remember (that) ...", "forget (that|about) ...", "what do you remember about me?" and a few
// more wordings (case-insensitive; "please" allowed; a remember/forget ending in '?' is a
// question, not a control). The remembered statement is put in the third person where that is a
// plain word swap ("my" -> "User's", "I am" -> "User is").
Control parse_control(std::string_view user_text);
// Whether `summary` matches a forget request: every content word of `request` is a word of the
// summary (case-insensitive, a plural 's' ignored). A request without content words matches
// nothing.
bool forget_matches(std::string_view request, std::string_view summary);
// Whether `text` holds any content word of a forget request: such turns of the conversation are
// not shown to reflection (forgetting errs on the side of forgetting more).
bool forget_touches(std::string_view request, std::string_view text);

// One line of the extraction transcript: "[i] User: text" / "[i] Assistant: text".
struct TranscriptTurn {
  std::string role;  // "user" | "assistant"
  std::string text;
};
std::string extraction_transcript(const std::vector<TranscriptTurn>& turns);
// The extraction reply -> its memories. Throws engram::Error when it is not the format.
struct ExtractedMemory {
  std::string summary;
  std::vector<int64_t> reference;
};
std::vector<ExtractedMemory> parse_extraction(std::string_view reply);
// The JSON schema extraction is constrained to.
std::string extraction_schema();
// The Add/Merge prompt's user message, and its reply parsed. `n_existing` bounds the index.
std::string add_merge_prompt(const std::vector<std::string>& existing, std::string_view fresh);
struct AddMergeDecision {
  bool merge = false;
  size_t index = 0;  // 1-based, merge only
  std::string summary;
};
// Throws engram::Error when the reply is neither Add() nor Merge(i, "summary") with i in range.
AddMergeDecision parse_add_merge(std::string_view reply, size_t n_existing);
// The GBNF the Add/Merge reply is constrained to, for `n_existing` memories (1..n).
std::string add_merge_gbnf(size_t n_existing);

struct MemorySessionParams {
  size_t top_k = 20;     // candidates retrieved per user turn
  size_t top_m = 5;      // memories shown to the model
  size_t similar_k = 5;  // existing memories shown beside a new one (Add/Merge)
  int extract_max_tokens = 200;
  int decide_max_tokens = 80;
  HybridParams hybrid;
  // Ask the model, per category it is able to judge, whether a statement the detector's rules
  // pass is sensitive (a "yes" leaves it out too; a "no" never overrides the rules). `chat` and
  // `serve` turn it on; off, the rules alone decide (what the LoCoMo evaluation runs).
  bool ask_model_if_sensitive = false;
  std::string actor = "user";  // history's actor for the user's own controls
  std::string conversation;    // this conversation's id in the store ("" : one is made up)
};

// One user turn as the session prepared it.
struct MemoryTurn {
  std::string user_text;
  Control control;
  std::optional<std::string> reply;  // a control's answer: show it, generate nothing
  std::string system_prompt;         // the memory block (empty when reply is set)
  std::vector<Memory> shown;         // [1]..[M]
  // For the reranker's feedback.
  std::vector<float> query;
  std::vector<SearchHit> candidates;
  std::vector<size_t> chosen;
};

struct ReflectionReport {
  size_t extracted = 0;             // topic memories the model wrote
  size_t added = 0;                 // stored as new memories
  size_t merged = 0;                // folded into an existing memory
  size_t unchanged = 0;             // already stored word for word
  size_t skipped_sensitive = 0;     // left out: a sensitive category, not asked for
  size_t sensitive_by_model = 0;    // texts left out on the model's "yes" alone (rules passed)
  size_t skipped_forgotten = 0;     // left out: the user asked to forget it
  size_t turns_left_out = 0;        // transcript turns not shown (sensitive, controls, forgotten)
  std::vector<std::string> errors;  // what went wrong (a reply not in the format, ...)
};

class MemorySession {
 public:
  // `store` null: a temporary chat (no memory is read or written; controls say so).
  MemorySession(MemoryStore* store, std::string user, MemoryModel& model,
                MemorySessionParams params = {}, MemoryReranker* reranker = nullptr);
  ~MemorySession();

  bool temporary() const { return store_ == nullptr; }
  const std::string& user() const { return user_; }
  const std::string& conversation() const { return params_.conversation; }

  // Prepares the answer to a user turn: a control is carried out and answered here; otherwise
  // the memories are retrieved and the memory block built.
  MemoryTurn begin_turn(std::string_view user_text);
  // The messages to generate from: the memory block as the system prompt (after the caller's
  // own `system` text and a blank line, when there is one), then `dialogue` (user and
  // assistant turns, ending with the user's).
  static std::vector<ChatMessage> prompt_messages(const MemoryTurn& turn, std::string_view system,
                                                  const std::vector<ChatMessage>& dialogue);
  // Records the turn with the reply as the user saw it (citations stripped) and the numbers it
  // cited; the reranker hears which shown memories were used.
  void end_turn(const MemoryTurn& turn, std::string_view shown_reply,
                const std::vector<int>& cited);

  // Prospective reflection over the turns since the last call; then they are forgotten. Nothing
  // happens in a temporary chat or when no turn was recorded.
  ReflectionReport end_conversation();
  size_t pending_turns() const { return turns_.size(); }

  // Reflection over turns given by the caller (POST /v1/memories with infer): the same
  // extraction, checks and Add/Merge, without touching this session's own turns.
  ReflectionReport reflect(const std::vector<TranscriptTurn>& turns);

  // Stores `statement` as an explicit memory (the user asked; stored even when sensitive, and
  // flagged), `said` being the user's words it came from. Throws engram::Error when the store
  // refuses it (too long, ...) or the chat is temporary.
  Memory remember(std::string_view statement, std::string_view said);

 private:
  struct Recorded {
    TranscriptTurn turn;
    bool leave_out = false;  // a control, or its answer
  };
  // Whether `text` is sensitive (rules, then the model's yes/no when asked for).
  bool sensitive(std::string_view text, ReflectionReport& report);
  std::string list_reply();
  std::string forget(const std::string& what);
  std::string remember_reply(const MemoryTurn& turn);
  void extract_window(const std::vector<TranscriptTurn>& window,
                      const std::vector<size_t>& global_index, ReflectionReport& report);
  void store_extracted(const ExtractedMemory& e, const std::vector<TranscriptTurn>& window,
                       const std::vector<size_t>& global_index, ReflectionReport& report);

  MemoryStore* store_;
  std::string user_;
  MemoryModel& model_;
  MemorySessionParams params_;
  TopReranker top_;
  MemoryReranker* reranker_;
  std::vector<Recorded> turns_;
  std::vector<std::string> forgotten_;  // forget requests of this conversation
  std::shared_ptr<const Grammar> extraction_grammar_;
  std::vector<std::shared_ptr<const Grammar>> merge_grammars_;  // by number of existing memories
  std::unique_ptr<SensitiveJudge> judge_;
};

// A store usable from several threads: every call under one mutex (the server's HTTP threads
// and its engine thread share one store).
std::unique_ptr<MemoryStore> synchronized_store(std::unique_ptr<MemoryStore> store);

}  // namespace engram::agent_memory
