// Agent memory across conversations: what a model remembers about each of its users. One store
// interface (MemoryStore), two backends chosen by location: SQLite ("sqlite:PATH", one file, the
// embedded default) and PostgreSQL ("postgresql://..." or "postgres://...", for several servers
// sharing one store). Both pass the same test suite.
//
// The verbs follow mem0's (add, search, get_all, update, delete, history). Every call names
// one user and sees only that user's rows: an id of another user's memory behaves exactly like
// an id that does not exist. User text is always bound, never spliced into SQL. A change that
// touches several rows (a merge, a forget, an import) is one transaction, so a crash leaves the
// store as it was before or after, never half.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace engram::agent_memory {

// What a history entry records (mem0's events; MERGE is RMM's prospective reflection folding a
// new topic into an existing memory).
enum class MemoryEvent { kAdd, kMerge, kUpdate, kDelete };
std::string_view event_name(MemoryEvent e);  // "ADD", "MERGE", "UPDATE", "DELETE"

// A memory as a caller writes it.
struct NewMemory {
  std::string summary;            // the topic summary (what is searched and shown)
  std::string turns_json = "[]";  // the dialogue turns it came from: a JSON array
  std::vector<float> embedding;   // dense vector for the retriever; may be empty
  std::string conversation;       // the conversation it came from; may be empty
  bool sensitive = false;         // the detector found a sensitive category in it
  bool explicit_request = false;  // the user asked for it to be remembered
};

// A stored memory.
struct Memory : NewMemory {
  int64_t id = 0;          // random in [1, 2^53): unguessable, safe as a JSON number
  int64_t created_ms = 0;  // Unix time in milliseconds
  int64_t updated_ms = 0;
};

// One change of one memory. A deleted memory's history keeps its events but not its text:
// once forgotten, the words are gone from the memory, the full-text index and the history.
struct HistoryEntry {
  int64_t memory_id = 0;
  MemoryEvent event = MemoryEvent::kAdd;
  std::optional<std::string> old_text;  // the summary before (none for ADD and after a forget)
  std::optional<std::string> new_text;  // the summary after (none for DELETE)
  std::string actor;                    // who made the change ("cli", "reflection", a key name)
  int64_t at_ms = 0;
};

struct SearchHit {
  Memory memory;
  double score = 0;  // higher is better; comparable only within one result list
};

// The learned reranker's parameters for one user, as an opaque blob with its format version.
struct RerankerState {
  int32_t version = 0;
  std::vector<uint8_t> blob;
  int64_t updated_ms = 0;
};

// One turn of a conversation that memories refer to (by conversation id and index).
struct Turn {
  int64_t index = 0;
  std::string role;  // "user", "assistant", ...
  std::string text;
  int64_t at_ms = 0;
};

// Limits on what one call may write or ask; larger input is an engram::Error naming the field.
struct StoreLimits {
  static constexpr size_t kMaxUserBytes = 256;
  static constexpr size_t kMaxSummaryBytes = 16 * 1024;
  static constexpr size_t kMaxTurnsJsonBytes = 1024 * 1024;
  static constexpr size_t kMaxEmbeddingDims = 16384;
  static constexpr size_t kMaxConversationBytes = 256;
  static constexpr size_t kMaxActorBytes = 256;
  static constexpr size_t kMaxQueryBytes = 4096;
  static constexpr size_t kMaxTurnTextBytes = 256 * 1024;
  static constexpr size_t kMaxRerankerBytes = 64 * 1024 * 1024;
  static constexpr size_t kMaxSearchLimit = 1000;
};

class MemoryStore {
 public:
  virtual ~MemoryStore() = default;

  // Where the store lives, as given to open() (a PostgreSQL password is masked).
  virtual std::string location() const = 0;

  // ADD: stores a memory and its first history entry; returns it with its id and times.
  virtual Memory add(std::string_view user, const NewMemory& m, std::string_view actor) = 0;
  // Several ADDs in one transaction: all are stored or none (import).
  virtual std::vector<Memory> add_all(std::string_view user, const std::vector<NewMemory>& ms,
                                      std::string_view actor) = 0;
  virtual std::optional<Memory> get(std::string_view user, int64_t id) = 0;
  // Every memory of the user, in the order they were added.
  virtual std::vector<Memory> get_all(std::string_view user) = 0;
  // Full-text search of the summaries (BM25 on SQLite, ts_rank on PostgreSQL), best first.
  // Any word of the query may match; query syntax of the backend in `query` is plain text.
  virtual std::vector<SearchHit> search(std::string_view user, std::string_view query,
                                        size_t limit) = 0;
  // UPDATE: a new summary (and, when given, a new embedding). Throws if the user has no such id.
  virtual Memory update(std::string_view user, int64_t id, std::string_view summary,
                        const std::vector<float>* embedding, std::string_view actor) = 0;
  // MERGE (RMM's Merge(index, merged_summary)): the memory takes the merged summary, its turns
  // gain `from`'s turns, and its embedding becomes `from`'s when `from` has one.
  virtual Memory merge(std::string_view user, int64_t id, std::string_view merged_summary,
                       const NewMemory& from, std::string_view actor) = 0;
  // DELETE (forget): the memory is gone and its history keeps the events without the text.
  // Returns false if the user has no such id.
  virtual bool remove(std::string_view user, int64_t id, std::string_view actor) = 0;
  // Forgets every memory whose summary contains `text` (case-insensitive for ASCII letters), in
  // one transaction; returns the ids forgotten.
  virtual std::vector<int64_t> forget_matching(std::string_view user, std::string_view text,
                                               std::string_view actor) = 0;
  // Forgets every memory of the user, their conversation turns and reranker parameters; the
  // history keeps one text-less DELETE per memory. Returns how many memories there were.
  virtual size_t wipe(std::string_view user, std::string_view actor) = 0;
  // A memory's history, oldest first (also after it was deleted). Empty if the user never had it.
  virtual std::vector<HistoryEntry> history(std::string_view user, int64_t id) = 0;

  virtual std::optional<RerankerState> reranker(std::string_view user) = 0;
  virtual void save_reranker(std::string_view user, int32_t version,
                             const std::vector<uint8_t>& blob) = 0;

  // Appends turns to a conversation (their indexes must be new for it).
  virtual void add_turns(std::string_view user, std::string_view conversation,
                         const std::vector<Turn>& turns) = 0;
  virtual std::vector<Turn> turns(std::string_view user, std::string_view conversation) = 0;

  // Embeddings of different encoders are not comparable, so a store holds one encoder's: the
  // first caller records `identity` (TextEncoder::identity(), or the served model's), every
  // later caller gets the recorded one back and must refuse to embed if it differs
  // (claim_embedding_encoder() below does). Returns the recorded identity.
  virtual std::string claim_embedding_encoder(std::string_view identity) = 0;
};

// Claims the store's embeddings for `identity`; throws engram::Error naming both encoders and
// `what` (the flag or file that chose this one) when the store's were made by another.
void claim_embedding_encoder(MemoryStore& store, const std::string& identity,
                             const std::string& what);

// Hybrid retrieval: the store's full-text ranking and dense cosine similarity over the stored
// embeddings, fused by reciprocal rank (score = sum over the two lists of weight / (rrf_k +
// rank), rank from 1), which needs no calibration between BM25 and cosine scales.
struct HybridParams {
  size_t text_candidates = 50;  // how many full-text hits take part
  double rrf_k = 60;            // the usual constant of reciprocal rank fusion
  double text_weight = 1.0;
  double dense_weight = 1.0;
};
// The user's memories best matching `query` (words) and `query_embedding` (either may be
// empty). Memories without an embedding, or with one of another dimension than the query's
// (made by another encoder), take part through the text ranking only.
std::vector<SearchHit> hybrid_search(MemoryStore& store, std::string_view user,
                                     std::string_view query,
                                     const std::vector<float>& query_embedding, size_t limit,
                                     const HybridParams& params = {});

// Opens (creating or migrating the schema if needed) the store at `location`: "sqlite:PATH" or a
// PostgreSQL URL ("postgresql://" / "postgres://"). Throws engram::Error naming what failed.
std::unique_ptr<MemoryStore> open_memory_store(const std::string& location);

// The schema version this build writes (the schema_version table); stores with an older version
// are migrated on open, newer ones are refused.
int schema_version();

}  // namespace engram::agent_memory
