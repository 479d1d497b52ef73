// MemoryStore over a SqlConnection: the verbs written once for both backends. Every statement
// names user_id in its WHERE clause (or inserts it), and every value is a bound parameter; the
// only text that differs by backend is the full-text search and its upkeep.
#include <fmt/format.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <random>

#include "agent_memory/fts_query.h"
#include "agent_memory/schema.h"
#include "agent_memory/sql_connection.h"
#include "agent_memory/store_input.h"
#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram::agent_memory {
namespace {

static_assert(std::endian::native == std::endian::little, "embeddings are stored little-endian");

constexpr std::string_view kMemoryColumns =
    "m.id, m.summary, m.turns_json, m.embedding, m.conversation, m.sensitive, "
    "m.explicit_request, m.created_ms, m.updated_ms";

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Blob embedding_blob(const std::vector<float>& e) {
  Blob b;
  b.bytes.resize(e.size() * sizeof(float));
  if (!e.empty()) std::memcpy(b.bytes.data(), e.data(), b.bytes.size());
  return b;
}

std::vector<float> embedding_from(const std::vector<uint8_t>& bytes) {
  if (bytes.size() % sizeof(float))
    throw Error(fmt::format("memory store: an embedding of {} bytes is not float32", bytes.size()));
  std::vector<float> e(bytes.size() / sizeof(float));
  if (!e.empty()) std::memcpy(e.data(), bytes.data(), bytes.size());
  return e;
}

Memory memory_from(const SqlRow& r) {
  Memory m;
  m.id = column_int(r, 0);
  m.summary = column_text(r, 1);
  m.turns_json = column_text(r, 2);
  m.embedding = embedding_from(column_blob(r, 3));
  m.conversation = column_text(r, 4);
  m.sensitive = column_int(r, 5) != 0;
  m.explicit_request = column_int(r, 6) != 0;
  m.created_ms = column_int(r, 7);
  m.updated_ms = column_int(r, 8);
  return m;
}

MemoryEvent event_from(const std::string& s) {
  if (s == "ADD") return MemoryEvent::kAdd;
  if (s == "MERGE") return MemoryEvent::kMerge;
  if (s == "UPDATE") return MemoryEvent::kUpdate;
  if (s == "DELETE") return MemoryEvent::kDelete;
  throw Error(fmt::format("memory store: unknown history event '{}'", s));
}

std::optional<std::string> optional_text(const SqlRow& r, size_t i) {
  if (column_is_null(r, i)) return std::nullopt;
  return column_text(r, i);
}

SqlValue text(std::string_view s) {
  return std::string(s);
}

// ASCII-only case folding: enough for "forget" to match what a user typed in another case,
// without pretending to know every script's case rules.
std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

class SqlMemoryStore final : public MemoryStore {
 public:
  SqlMemoryStore(std::unique_ptr<SqlConnection> c, std::string where)
      : c_(std::move(c)), where_(std::move(where)), rng_(std::random_device{}()) {
    migrate_schema(*c_, where_);
  }

  std::string location() const override { return where_; }

  Memory add(std::string_view user, const NewMemory& m, std::string_view actor) override {
    return add_all(user, {m}, actor).front();
  }

  std::vector<Memory> add_all(std::string_view user, const std::vector<NewMemory>& ms,
                              std::string_view actor) override {
    check_user(user);
    check_actor(actor);
    for (const NewMemory& m : ms) check_new_memory(m);
    std::vector<Memory> out;
    Transaction tx(*c_);
    int64_t seq = column_int(
        c_->query("SELECT COALESCE(MAX(seq), 0) FROM memories WHERE user_id = $1", {text(user)})[0],
        0);
    for (const NewMemory& m : ms) {
      Memory stored;
      static_cast<NewMemory&>(stored) = m;
      stored.id = fresh_id();
      stored.created_ms = stored.updated_ms = now_ms();
      c_->query(
          "INSERT INTO memories (id, user_id, seq, summary, turns_json, embedding, conversation, "
          "sensitive, explicit_request, created_ms, updated_ms) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
          {stored.id, text(user), ++seq, m.summary, m.turns_json, embedding_blob(m.embedding),
           m.conversation, int64_t{m.sensitive}, int64_t{m.explicit_request}, stored.created_ms,
           stored.updated_ms});
      record(user, stored.id, MemoryEvent::kAdd, nullptr, m.summary, actor, stored.created_ms);
      out.push_back(std::move(stored));
    }
    tx.commit();
    return out;
  }

  std::optional<Memory> get(std::string_view user, int64_t id) override {
    check_user(user);
    return find(user, id);
  }

  std::vector<Memory> get_all(std::string_view user) override {
    check_user(user);
    std::vector<Memory> out;
    for (const SqlRow& r : c_->query(fmt::format("SELECT {} FROM memories m WHERE m.user_id = $1 "
                                                 "ORDER BY m.seq",
                                                 kMemoryColumns),
                                     {text(user)}))
      out.push_back(memory_from(r));
    return out;
  }

  std::vector<SearchHit> search(std::string_view user, std::string_view query,
                                size_t limit) override {
    check_user(user);
    check_query(query, limit);
    const std::vector<std::string> terms = query_terms(query);
    if (terms.empty()) return {};
    std::vector<SqlRow> rows;
    if (c_->dialect() == SqlDialect::kSqlite) {
      // bm25() is lower-is-better; negated so that every backend's score is higher-is-better.
      rows = c_->query(fmt::format("SELECT {}, -bm25(memories_fts) AS score FROM memories_fts "
                                   "JOIN memories m ON m.id = memories_fts.rowid "
                                   "WHERE memories_fts MATCH $1 AND m.user_id = $2 "
                                   "ORDER BY score DESC, m.seq LIMIT $3",
                                   kMemoryColumns),
                       {fts5_match_expression(terms), text(user), static_cast<int64_t>(limit)});
    } else {
      // plainto_tsquery ANDs the words; its output is quoted lexemes joined by '&', which become
      // '|' so that any word matches, as on SQLite.
      rows = c_->query(
          fmt::format("SELECT {}, ts_rank(m.summary_tsv, q) AS score FROM memories m, "
                      "CAST(replace(CAST(plainto_tsquery('english', $1) AS text), '&', '|') "
                      "AS tsquery) q WHERE m.user_id = $2 AND m.summary_tsv @@ q "
                      "ORDER BY score DESC, m.seq LIMIT $3",
                      kMemoryColumns),
          {plain_query_text(terms), text(user), static_cast<int64_t>(limit)});
    }
    std::vector<SearchHit> hits;
    for (const SqlRow& r : rows) hits.push_back({memory_from(r), column_double(r, 9)});
    return hits;
  }

  Memory update(std::string_view user, int64_t id, std::string_view summary,
                const std::vector<float>* embedding, std::string_view actor) override {
    check_user(user);
    check_actor(actor);
    check_summary(summary);
    if (embedding) check_embedding(*embedding);
    Transaction tx(*c_);
    Memory m = existing(user, id);
    const std::string old = m.summary;
    m.summary = summary;
    if (embedding) m.embedding = *embedding;
    m.updated_ms = now_ms();
    write_back(user, m);
    record(user, id, MemoryEvent::kUpdate, old, m.summary, actor, m.updated_ms);
    tx.commit();
    return m;
  }

  Memory merge(std::string_view user, int64_t id, std::string_view merged_summary,
               const NewMemory& from, std::string_view actor) override {
    check_user(user);
    check_actor(actor);
    check_summary(merged_summary);
    check_new_memory(from);
    Transaction tx(*c_);
    Memory m = existing(user, id);
    const std::string old = m.summary;
    m.summary = merged_summary;
    m.turns_json = join_turns(m.turns_json, from.turns_json);
    if (!from.embedding.empty()) m.embedding = from.embedding;
    m.sensitive = m.sensitive || from.sensitive;
    m.explicit_request = m.explicit_request || from.explicit_request;
    m.updated_ms = now_ms();
    write_back(user, m);
    record(user, id, MemoryEvent::kMerge, old, m.summary, actor, m.updated_ms);
    tx.commit();
    return m;
  }

  bool remove(std::string_view user, int64_t id, std::string_view actor) override {
    check_user(user);
    check_actor(actor);
    if (id <= 0) return false;
    bool removed = false;
    {
      Transaction tx(*c_);
      removed = forget_one(user, id, actor, now_ms());
      tx.commit();
    }
    if (removed) purge_freed_text();
    return removed;
  }

  std::vector<int64_t> forget_matching(std::string_view user, std::string_view text_match,
                                       std::string_view actor) override {
    check_user(user);
    check_actor(actor);
    check_query(text_match, 1);
    const std::string needle = ascii_lower(text_match);
    if (needle.find_first_not_of(" \t\r\n") == std::string::npos)
      throw Error("the text to forget is empty");
    std::vector<int64_t> ids;
    {
      Transaction tx(*c_);
      const int64_t at = now_ms();
      for (const SqlRow& r : c_->query("SELECT id, summary FROM memories WHERE user_id = $1 "
                                       "ORDER BY seq",
                                       {text(user)}))
        if (ascii_lower(column_text(r, 1)).find(needle) != std::string::npos)
          ids.push_back(column_int(r, 0));
      for (int64_t id : ids) forget_one(user, id, actor, at);
      tx.commit();
    }
    if (!ids.empty()) purge_freed_text();
    return ids;
  }

  size_t wipe(std::string_view user, std::string_view actor) override {
    check_user(user);
    check_actor(actor);
    size_t n = 0;
    {
      Transaction tx(*c_);
      const int64_t at = now_ms();
      for (const SqlRow& r :
           c_->query("SELECT id FROM memories WHERE user_id = $1 ORDER BY seq", {text(user)})) {
        forget_one(user, column_int(r, 0), actor, at);
        ++n;
      }
      c_->query("DELETE FROM conversation_turns WHERE user_id = $1", {text(user)});
      c_->query("DELETE FROM reranker_params WHERE user_id = $1", {text(user)});
      tx.commit();
    }
    purge_freed_text();
    return n;
  }

  std::vector<HistoryEntry> history(std::string_view user, int64_t id) override {
    check_user(user);
    std::vector<HistoryEntry> out;
    for (const SqlRow& r :
         c_->query("SELECT memory_id, event, old_text, new_text, actor, at_ms FROM memory_history "
                   "WHERE user_id = $1 AND memory_id = $2 ORDER BY seq",
                   {text(user), id})) {
      HistoryEntry h;
      h.memory_id = column_int(r, 0);
      h.event = event_from(column_text(r, 1));
      h.old_text = optional_text(r, 2);
      h.new_text = optional_text(r, 3);
      h.actor = column_text(r, 4);
      h.at_ms = column_int(r, 5);
      out.push_back(std::move(h));
    }
    return out;
  }

  std::optional<RerankerState> reranker(std::string_view user) override {
    check_user(user);
    const auto rows = c_->query(
        "SELECT version, params, updated_ms FROM reranker_params WHERE user_id = $1", {text(user)});
    if (rows.empty()) return std::nullopt;
    RerankerState s;
    s.version = static_cast<int32_t>(column_int(rows[0], 0));
    s.blob = column_blob(rows[0], 1);
    s.updated_ms = column_int(rows[0], 2);
    return s;
  }

  void save_reranker(std::string_view user, int32_t version,
                     const std::vector<uint8_t>& blob) override {
    check_user(user);
    if (blob.size() > StoreLimits::kMaxRerankerBytes)
      throw Error(fmt::format("reranker parameters are {} bytes, more than the limit of {}",
                              blob.size(), StoreLimits::kMaxRerankerBytes));
    Transaction tx(*c_);
    c_->query("DELETE FROM reranker_params WHERE user_id = $1", {text(user)});
    c_->query(
        "INSERT INTO reranker_params (user_id, version, params, updated_ms) "
        "VALUES ($1, $2, $3, $4)",
        {text(user), int64_t{version}, Blob{blob}, now_ms()});
    tx.commit();
  }

  std::string claim_embedding_encoder(std::string_view identity) override {
    if (identity.empty() || identity.size() > 1024)
      throw Error(
          fmt::format("embedding encoder identity of {} bytes (1 to 1024)", identity.size()));
    Transaction tx(*c_);
    const auto rows = c_->query("SELECT identity FROM embedding_encoder WHERE one = 1", {});
    if (!rows.empty()) return column_text(rows[0], 0);
    c_->query("INSERT INTO embedding_encoder (one, identity, claimed_ms) VALUES (1, $1, $2)",
              {text(identity), now_ms()});
    tx.commit();
    return std::string(identity);
  }

  void add_turns(std::string_view user, std::string_view conversation,
                 const std::vector<Turn>& turns) override {
    check_user(user);
    check_conversation(conversation);
    for (const Turn& t : turns) check_turn(t);
    Transaction tx(*c_);
    for (const Turn& t : turns) {
      if (!c_->query("SELECT 1 FROM conversation_turns WHERE user_id = $1 AND conversation = $2 "
                     "AND turn_index = $3",
                     {text(user), text(conversation), t.index})
               .empty())
        throw Error(fmt::format("conversation already has a turn {}", t.index));
      c_->query(
          "INSERT INTO conversation_turns (user_id, conversation, turn_index, role, text, at_ms) "
          "VALUES ($1, $2, $3, $4, $5, $6)",
          {text(user), text(conversation), t.index, t.role, t.text, t.at_ms ? t.at_ms : now_ms()});
    }
    tx.commit();
  }

  std::vector<Turn> turns(std::string_view user, std::string_view conversation) override {
    check_user(user);
    check_conversation(conversation);
    std::vector<Turn> out;
    for (const SqlRow& r : c_->query("SELECT turn_index, role, text, at_ms FROM conversation_turns "
                                     "WHERE user_id = $1 AND conversation = $2 ORDER BY turn_index",
                                     {text(user), text(conversation)}))
      out.push_back({column_int(r, 0), column_text(r, 1), column_text(r, 2), column_int(r, 3)});
    return out;
  }

 private:
  std::optional<Memory> find(std::string_view user, int64_t id) {
    if (id <= 0) return std::nullopt;
    const auto rows = c_->query(
        fmt::format("SELECT {} FROM memories m WHERE m.user_id = $1 AND m.id = $2", kMemoryColumns),
        {text(user), id});
    if (rows.empty()) return std::nullopt;
    return memory_from(rows[0]);
  }

  // The same message whether the id belongs to another user or to nobody: no existence oracle.
  Memory existing(std::string_view user, int64_t id) {
    auto m = find(user, id);
    if (!m) throw Error(fmt::format("memory {} not found for this user", id));
    return *m;
  }

  void write_back(std::string_view user, const Memory& m) {
    c_->query(
        "UPDATE memories SET summary = $1, turns_json = $2, embedding = $3, sensitive = $4, "
        "explicit_request = $5, updated_ms = $6 WHERE user_id = $7 AND id = $8",
        {m.summary, m.turns_json, embedding_blob(m.embedding), int64_t{m.sensitive},
         int64_t{m.explicit_request}, m.updated_ms, text(user), m.id});
  }

  void record(std::string_view user, int64_t id, MemoryEvent e, SqlValue old_text,
              SqlValue new_text, std::string_view actor, int64_t at) {
    c_->query(
        "INSERT INTO memory_history (user_id, memory_id, event, old_text, new_text, actor, at_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        {text(user), id, std::string(event_name(e)), std::move(old_text), std::move(new_text),
         text(actor), at});
  }

  // Inside a transaction: deletes the row (the FTS5 trigger or the generated column takes the
  // words out of the index with it), blanks the text of its history, records a DELETE.
  bool forget_one(std::string_view user, int64_t id, std::string_view actor, int64_t at) {
    if (c_->query("DELETE FROM memories WHERE user_id = $1 AND id = $2 RETURNING id",
                  {text(user), id})
            .empty())
      return false;
    c_->query(
        "UPDATE memory_history SET old_text = NULL, new_text = NULL "
        "WHERE user_id = $1 AND memory_id = $2",
        {text(user), id});
    record(user, id, MemoryEvent::kDelete, nullptr, nullptr, actor, at);
    return true;
  }

  // After a forget, make the words unrecoverable from the file too: FTS5 keeps deleted terms in
  // old index segments until they merge ('optimize' rewrites them), freed pages are zeroed
  // (secure_delete), and the WAL still holds old page images until it is checkpointed. On
  // PostgreSQL the rows are gone for every reader; their space is reclaimed by VACUUM.
  void purge_freed_text() {
    if (c_->dialect() != SqlDialect::kSqlite) return;
    c_->query("INSERT INTO memories_fts(memories_fts) VALUES ('optimize')", {});
    c_->query("PRAGMA wal_checkpoint(TRUNCATE)", {});
  }

  // Random ids in [1, 2^53): a user cannot guess another's, nor count the store's memories.
  int64_t fresh_id() {
    std::uniform_int_distribution<int64_t> dist(1, (int64_t{1} << 53) - 1);
    for (;;) {
      const int64_t id = dist(rng_);
      // Not in use, and not the id of a forgotten memory whose history remains.
      if (c_->query("SELECT 1 FROM memories WHERE id = $1 UNION ALL "
                    "SELECT 1 FROM memory_history WHERE memory_id = $1",
                    {id})
              .empty())
        return id;
    }
  }

  std::unique_ptr<SqlConnection> c_;
  std::string where_;
  std::mt19937_64 rng_;
};

}  // namespace

std::string_view event_name(MemoryEvent e) {
  switch (e) {
    case MemoryEvent::kAdd:
      return "ADD";
    case MemoryEvent::kMerge:
      return "MERGE";
    case MemoryEvent::kUpdate:
      return "UPDATE";
    case MemoryEvent::kDelete:
      return "DELETE";
  }
  return "?";
}

std::unique_ptr<MemoryStore> open_memory_store(const std::string& location) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (location.rfind(kSqlite, 0) == 0) {
    const std::string path = location.substr(kSqlite.size());
    if (path.empty()) throw Error("memory store location 'sqlite:' names no file");
    return std::make_unique<SqlMemoryStore>(open_sqlite_connection(path), path);
  }
  if (location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0)
    return std::make_unique<SqlMemoryStore>(open_postgres_connection(location),
                                            masked_url(location));
  throw Error(
      fmt::format("memory store location '{}' is neither sqlite:PATH nor a postgresql:// URL",
                  masked_url(location)));
}

}  // namespace engram::agent_memory
