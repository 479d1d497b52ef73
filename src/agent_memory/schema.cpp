// Schema migrations of the memory store. Tables, the same on both backends:
//   memories            one row per memory, scoped by user_id; id is random (unguessable),
//                       seq orders a user's memories by when they were added
//   memory_history      append-only: every ADD/MERGE/UPDATE/DELETE, ordered by seq
//   reranker_params     one blob per user
//   conversation_turns  the turns memories refer to, per (user, conversation, index)
//   embedding_encoder   one row: the encoder whose embeddings the store holds
// Full text: SQLite keeps an FTS5 index of the summaries (external content, kept in step by
// triggers in the same transaction as the row); PostgreSQL a generated tsvector column under a
// GIN index. A new step goes at the end of both lists; existing steps are never edited.
#include "agent_memory/schema.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram::agent_memory {
namespace {

constexpr std::array<std::string_view, 3> kSqliteSteps = {
    // 1: the first schema.
    R"sql(
CREATE TABLE memories (
  id INTEGER PRIMARY KEY,
  user_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  summary TEXT NOT NULL,
  turns_json TEXT NOT NULL,
  embedding BLOB NOT NULL,
  conversation TEXT NOT NULL,
  sensitive INTEGER NOT NULL,
  explicit_request INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE INDEX memories_by_user ON memories(user_id, seq);
CREATE TABLE memory_history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id TEXT NOT NULL,
  memory_id INTEGER NOT NULL,
  event TEXT NOT NULL,
  old_text TEXT,
  new_text TEXT,
  actor TEXT NOT NULL,
  at_ms INTEGER NOT NULL);
CREATE INDEX memory_history_by_memory ON memory_history(user_id, memory_id, seq);
CREATE TABLE reranker_params (
  user_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  params BLOB NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE TABLE conversation_turns (
  user_id TEXT NOT NULL,
  conversation TEXT NOT NULL,
  turn_index INTEGER NOT NULL,
  role TEXT NOT NULL,
  text TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (user_id, conversation, turn_index));
CREATE VIRTUAL TABLE memories_fts USING fts5(
  summary, content='memories', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
  INSERT INTO memories_fts(rowid, summary) VALUES (new.id, new.summary);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
  INSERT INTO memories_fts(memories_fts, rowid, summary) VALUES ('delete', old.id, old.summary);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF summary ON memories BEGIN
  INSERT INTO memories_fts(memories_fts, rowid, summary) VALUES ('delete', old.id, old.summary);
  INSERT INTO memories_fts(rowid, summary) VALUES (new.id, new.summary);
END;
)sql",
    // 2: new ids are checked against the history of forgotten memories by id alone.
    "CREATE INDEX memory_history_by_id ON memory_history(memory_id);",
    // 3: the encoder whose embeddings the store holds (one row).
    "CREATE TABLE IF NOT EXISTS embedding_encoder (one INTEGER PRIMARY KEY CHECK (one = 1), "
    "identity TEXT NOT NULL, claimed_ms INTEGER NOT NULL);",
};

constexpr std::array<std::string_view, 3> kPostgresSteps = {
    // 1: the first schema.
    R"sql(
CREATE TABLE memories (
  id BIGINT PRIMARY KEY,
  user_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  summary TEXT NOT NULL,
  turns_json TEXT NOT NULL,
  embedding BYTEA NOT NULL,
  conversation TEXT NOT NULL,
  sensitive BIGINT NOT NULL,
  explicit_request BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  summary_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, summary)) STORED);
CREATE INDEX memories_by_user ON memories(user_id, seq);
CREATE INDEX memories_fts ON memories USING GIN (summary_tsv);
CREATE TABLE memory_history (
  seq BIGSERIAL PRIMARY KEY,
  user_id TEXT NOT NULL,
  memory_id BIGINT NOT NULL,
  event TEXT NOT NULL,
  old_text TEXT,
  new_text TEXT,
  actor TEXT NOT NULL,
  at_ms BIGINT NOT NULL);
CREATE INDEX memory_history_by_memory ON memory_history(user_id, memory_id, seq);
CREATE TABLE reranker_params (
  user_id TEXT PRIMARY KEY,
  version BIGINT NOT NULL,
  params BYTEA NOT NULL,
  updated_ms BIGINT NOT NULL);
CREATE TABLE conversation_turns (
  user_id TEXT NOT NULL,
  conversation TEXT NOT NULL,
  turn_index BIGINT NOT NULL,
  role TEXT NOT NULL,
  text TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  PRIMARY KEY (user_id, conversation, turn_index));
)sql",
    // 2: as on SQLite.
    "CREATE INDEX memory_history_by_id ON memory_history(memory_id);",
    // 3: as on SQLite.
    "CREATE TABLE IF NOT EXISTS embedding_encoder (one BIGINT PRIMARY KEY CHECK (one = 1), "
    "identity TEXT NOT NULL, claimed_ms BIGINT NOT NULL);",
};

static_assert(kSqliteSteps.size() == kPostgresSteps.size(), "one migration list per dialect");

bool has_version_table(SqlConnection& c) {
  if (c.dialect() == SqlDialect::kSqlite)
    return !c.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
                    {})
                .empty();
  return column_int(c.query("SELECT (to_regclass('schema_version') IS NOT NULL)::int", {})[0], 0);
}

}  // namespace

int schema_version() {
  return static_cast<int>(kSqliteSteps.size());
}

int stored_schema_version(SqlConnection& c) {
  if (!has_version_table(c)) return 0;
  const auto rows = c.query("SELECT version FROM schema_version", {});
  return rows.empty() ? 0 : static_cast<int>(column_int(rows[0], 0));
}

void migrate_schema(SqlConnection& c, const std::string& where) {
  const int target = schema_version();
  auto refuse_newer = [&](int v) {
    if (v > target)
      throw Error(fmt::format(
          "{}: memory store has schema version {}, newer than this engram's {}; use a newer engram",
          where, v, target));
  };
  const int seen = stored_schema_version(c);
  refuse_newer(seen);
  if (seen == target) return;
  Transaction tx(c);
  // Several servers may open a new PostgreSQL store at once: one migrates, the others wait on
  // this lock and then find the work done. (SQLite's BEGIN IMMEDIATE already serialises.)
  if (c.dialect() == SqlDialect::kPostgres)
    c.query("SELECT pg_advisory_xact_lock(7310575183504715117)", {});
  c.exec_script("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  const int version = stored_schema_version(c);
  refuse_newer(version);
  const auto& steps = c.dialect() == SqlDialect::kSqlite ? kSqliteSteps : kPostgresSteps;
  for (int v = version; v < target; ++v) {
    try {
      c.exec_script(steps[v]);
    } catch (const Error& e) {
      throw Error(
          fmt::format("migrating the memory store to schema version {}: {}", v + 1, e.what()));
    }
  }
  c.query("DELETE FROM schema_version", {});
  c.query("INSERT INTO schema_version (version) VALUES ($1)", {static_cast<int64_t>(target)});
  tx.commit();
}

}  // namespace engram::agent_memory
