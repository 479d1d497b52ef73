// The agent memory store's contract, one typed suite run on SQLite and on PostgreSQL: mem0's
// verbs, the history, user isolation, search syntax as plain text, forgetting, limits, schema.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "agent_memory/schema.h"
#include "agent_memory/sql_connection.h"
#include "agent_memory_backends.h"
#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram {
namespace {

using agent_memory::HistoryEntry;
using agent_memory::Memory;
using agent_memory::MemoryEvent;
using agent_memory::MemoryStore;
using agent_memory::NewMemory;
using agent_memory::open_memory_store;
using agent_memory_test::PostgresBackend;
using agent_memory_test::SqliteBackend;

template <typename Backend>
class MemoryStoreTest : public agent_memory_test::StoreFixture<Backend> {
 protected:
  std::unique_ptr<MemoryStore> open() { return open_memory_store(this->location()); }
  static constexpr bool kSqlite = std::is_same_v<Backend, SqliteBackend>;
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
TYPED_TEST_SUITE(MemoryStoreTest, Backends, agent_memory_test::BackendNames);

NewMemory memory(std::string summary) {
  NewMemory m;
  m.summary = std::move(summary);
  return m;
}

std::set<int64_t> ids_of(const std::vector<Memory>& ms) {
  std::set<int64_t> out;
  for (const Memory& m : ms) out.insert(m.id);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TYPED_TEST(MemoryStoreTest, AddGetRoundTripsEveryField) {
  auto store = this->open();
  NewMemory m;
  m.summary = "Alice's daughter Mia turns five in May; she loves jellyfish. \xe2\x9c\x93";
  m.turns_json = R"([{"conversation":"c1","turn":3,"text":"Mia loves jellyfish"}])";
  m.embedding = {0.25f, -1.5f, 3.0e-8f, 1e30f};
  m.conversation = "c1";
  m.sensitive = true;
  m.explicit_request = true;
  const Memory added = store->add("alice", m, "test");
  EXPECT_GT(added.id, 0);
  EXPECT_LT(added.id, int64_t{1} << 53);
  EXPECT_GT(added.created_ms, 0);
  EXPECT_EQ(added.created_ms, added.updated_ms);
  auto again = this->open();  // a second connection sees the committed row
  const auto got = again->get("alice", added.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->summary, m.summary);
  EXPECT_EQ(got->turns_json, m.turns_json);
  EXPECT_EQ(got->embedding, m.embedding);
  EXPECT_EQ(got->conversation, "c1");
  EXPECT_TRUE(got->sensitive);
  EXPECT_TRUE(got->explicit_request);
  EXPECT_EQ(got->created_ms, added.created_ms);
  const auto h = again->history("alice", added.id);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].event, MemoryEvent::kAdd);
  EXPECT_FALSE(h[0].old_text);
  EXPECT_EQ(h[0].new_text, m.summary);
  EXPECT_EQ(h[0].actor, "test");
  // Defaults: no embedding, no flags.
  const Memory plain = store->add("alice", memory("plain"), "test");
  EXPECT_TRUE(store->get("alice", plain.id)->embedding.empty());
  EXPECT_FALSE(store->get("alice", plain.id)->sensitive);
}

TYPED_TEST(MemoryStoreTest, EveryReadIsScopedToOneUser) {
  auto store = this->open();
  const Memory a = store->add("alice", memory("Alice likes green tea"), "test");
  const Memory b = store->add("bob", memory("Bob likes green tea too"), "test");
  EXPECT_EQ(ids_of(store->get_all("alice")), std::set<int64_t>{a.id});
  EXPECT_EQ(ids_of(store->get_all("bob")), std::set<int64_t>{b.id});
  EXPECT_TRUE(store->get_all("carol").empty());
  EXPECT_FALSE(store->get("bob", a.id));
  const auto hits = store->search("bob", "green tea", 10);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].memory.id, b.id);
  EXPECT_TRUE(store->history("bob", a.id).empty());
  // User names differing only in case or by a trailing space are different users.
  EXPECT_TRUE(store->get_all("Alice").empty());
  EXPECT_TRUE(store->get_all("alice ").empty());
}

TYPED_TEST(MemoryStoreTest, AnotherUsersIdBehavesLikeAnIdThatDoesNotExist) {
  auto store = this->open();
  const Memory a = store->add("alice", memory("Alice's PIN hint is her cat's name"), "test");
  const int64_t nobody = a.id == 12345 ? 12346 : 12345;
  for (int64_t id : {a.id, nobody}) {
    SCOPED_TRACE(id);
    EXPECT_FALSE(store->get("mallory", id));
    EXPECT_FALSE(store->remove("mallory", id, "mallory"));
    EXPECT_TRUE(store->history("mallory", id).empty());
    const std::string upd =
        error_of([&] { store->update("mallory", id, "owned", nullptr, "mallory"); });
    EXPECT_EQ(upd, "memory " + std::to_string(id) + " not found for this user");
    const std::string mer =
        error_of([&] { store->merge("mallory", id, "owned", memory("x"), "mallory"); });
    EXPECT_EQ(mer, upd);
  }
  for (int64_t id : {int64_t{0}, int64_t{-1}, INT64_MAX, INT64_MIN}) {
    EXPECT_FALSE(store->get("mallory", id));
    EXPECT_FALSE(store->remove("mallory", id, "mallory"));
  }
  // Nothing of Alice's changed.
  const auto got = store->get("alice", a.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->summary, a.summary);
  EXPECT_EQ(store->history("alice", a.id).size(), 1u);
}

TYPED_TEST(MemoryStoreTest, UpdateAndMergeKeepTheHistory) {
  auto store = this->open();
  NewMemory first = memory("User has a dog named Rex");
  first.turns_json = R"([{"turn":1}])";
  first.embedding = {1, 0};
  const Memory m = store->add("u", first, "reflection");
  const std::vector<float> e2 = {0, 1};
  store->update("u", m.id, "User has a beagle named Rex", &e2, "cli");
  NewMemory from = memory("Rex is four years old");
  from.turns_json = R"([{"turn":7},{"turn":8}])";
  from.embedding = {0.5f, 0.5f};
  from.sensitive = true;
  const Memory merged =
      store->merge("u", m.id, "User has a four-year-old beagle named Rex", from, "reflection");
  EXPECT_EQ(merged.summary, "User has a four-year-old beagle named Rex");
  const auto got = store->get("u", m.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->summary, merged.summary);
  EXPECT_EQ(nlohmann::json::parse(got->turns_json),
            nlohmann::json::parse(R"([{"turn":1},{"turn":7},{"turn":8}])"));
  EXPECT_EQ(got->embedding, from.embedding);
  EXPECT_TRUE(got->sensitive);
  EXPECT_GE(got->updated_ms, got->created_ms);
  const auto h = store->history("u", m.id);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].event, MemoryEvent::kAdd);
  EXPECT_EQ(h[1].event, MemoryEvent::kUpdate);
  EXPECT_EQ(h[1].old_text, "User has a dog named Rex");
  EXPECT_EQ(h[1].new_text, "User has a beagle named Rex");
  EXPECT_EQ(h[1].actor, "cli");
  EXPECT_EQ(h[2].event, MemoryEvent::kMerge);
  EXPECT_EQ(h[2].old_text, "User has a beagle named Rex");
  EXPECT_EQ(h[2].new_text, merged.summary);
  // Search follows the new text, not the old.
  EXPECT_TRUE(store->search("u", "dog", 5).empty());
  ASSERT_EQ(store->search("u", "beagle", 5).size(), 1u);
  // A failed merge (turns that are not an array) changes nothing.
  NewMemory bad = memory("x");
  bad.turns_json = "{}";
  EXPECT_THROW(store->merge("u", m.id, "changed", bad, "t"), Error);
  EXPECT_EQ(store->get("u", m.id)->summary, merged.summary);
  EXPECT_EQ(store->history("u", m.id).size(), 3u);
}

TYPED_TEST(MemoryStoreTest, SearchRanksByTheQueryWords) {
  auto store = this->open();
  const Memory both = store->add("u", memory("User plays chess and the violin"), "t");
  const Memory chess = store->add("u", memory("User joined a chess club in Lyon"), "t");
  store->add("u", memory("User is allergic to peanuts"), "t");
  store->add("other", memory("Other plays chess and the violin every day"), "t");
  auto hits = store->search("u", "Chess VIOLIN", 10);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].memory.id, both.id);  // both words beat one
  EXPECT_EQ(hits[1].memory.id, chess.id);
  EXPECT_GT(hits[0].score, hits[1].score);
  EXPECT_EQ(store->search("u", "chess", 1).size(), 1u);
  // Stemming: "playing" finds "plays".
  hits = store->search("u", "playing", 10);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].memory.id, both.id);
  EXPECT_TRUE(store->search("u", "", 10).empty());
  EXPECT_TRUE(store->search("u", "  ...  ", 10).empty());
  EXPECT_TRUE(store->search("u", "tennis", 10).empty());
}

TYPED_TEST(MemoryStoreTest, QuerySyntaxInUserTextIsPlainText) {
  auto store = this->open();
  const std::vector<std::string> hostile = {
      "\"unbalanced quote",
      "NEAR(chess violin, 2)",
      "summary:chess",
      "chess*",
      "^chess",
      "chess AND OR NOT",
      "NOT chess",
      "chess & violin | !peanuts <-> lyon",
      "'; DROP TABLE memories; --",
      "') OR 1=1 --",
      "{summary} : (chess)",
      "\\x00 \\' %_",
      "chess\"\"\"violin",
  };
  const Memory m = store->add("u", memory("User plays chess and the violin"), "t");
  store->add("v", memory("Victim plays chess; DROP TABLE memories"), "t");
  for (const std::string& q : hostile) {
    SCOPED_TRACE(q);
    std::vector<agent_memory::SearchHit> hits;
    ASSERT_NO_THROW(hits = store->search("u", q, 10));
    for (const auto& h : hits) EXPECT_EQ(h.memory.id, m.id);  // only u's memory, ever
    // The same text as a memory is stored and found verbatim.
    const Memory stored = store->add("w", memory(q + " marker"), "t");
    EXPECT_EQ(store->get("w", stored.id)->summary, q + " marker");
  }
  EXPECT_EQ(store->get_all("u").size(), 1u);
  EXPECT_EQ(store->get_all("v").size(), 1u);
  EXPECT_EQ(store->get_all("w").size(), hostile.size());
  EXPECT_EQ(store->search("w", "marker", 100).size(), hostile.size());
}

TYPED_TEST(MemoryStoreTest, SqlMetacharactersInNamesAreJustNames) {
  auto store = this->open();
  const std::string evil_user = "x' OR '1'='1";
  const std::string like_user = "%";
  store->add("alice", memory("Alice's memory"), "t");
  const Memory e = store->add(evil_user, memory("evil's own"), "a'); DELETE FROM memories; --");
  EXPECT_EQ(ids_of(store->get_all(evil_user)), std::set<int64_t>{e.id});
  EXPECT_TRUE(store->get_all(like_user).empty());
  EXPECT_TRUE(store->get_all("_____").empty());
  EXPECT_EQ(store->get_all("alice").size(), 1u);
  EXPECT_EQ(store->history(evil_user, e.id)[0].actor, "a'); DELETE FROM memories; --");
  // forget by text matches literally: "%" is not a wildcard.
  store->add("alice", memory("Discount of 50% on Fridays"), "t");
  EXPECT_EQ(store->forget_matching("alice", "%", "t").size(), 1u);
  EXPECT_EQ(store->get_all("alice").size(), 1u);
  EXPECT_TRUE(store->forget_matching("alice", "_", "t").empty());
}

TYPED_TEST(MemoryStoreTest, ForgottenTextIsGoneEverywhere) {
  auto store = this->open();
  const Memory keep = store->add("u", memory("User's favourite colour is teal"), "t");
  NewMemory secret = memory("User's secret codeword is zanzibarquux");
  secret.turns_json = R"([{"text":"remember zanzibarquux"}])";
  const Memory m = store->add("u", secret, "t");
  store->update("u", m.id, "User's secret codeword is still zanzibarquux", nullptr, "t");
  ASSERT_EQ(store->search("u", "zanzibarquux", 10).size(), 1u);
  EXPECT_TRUE(store->remove("u", m.id, "cli"));
  EXPECT_FALSE(store->remove("u", m.id, "cli"));  // only once
  EXPECT_FALSE(store->get("u", m.id));
  EXPECT_TRUE(store->search("u", "zanzibarquux", 10).empty());
  EXPECT_EQ(ids_of(store->get_all("u")), std::set<int64_t>{keep.id});
  const auto h = store->history("u", m.id);
  ASSERT_EQ(h.size(), 3u);  // the events stay ...
  EXPECT_EQ(h[2].event, MemoryEvent::kDelete);
  EXPECT_EQ(h[2].actor, "cli");
  for (const HistoryEntry& e : h) {  // ... without the words
    EXPECT_FALSE(e.old_text);
    EXPECT_FALSE(e.new_text);
  }
  EXPECT_EQ(store->history("u", keep.id)[0].new_text, keep.summary);
  if constexpr (TestFixture::kSqlite) {
    // Not even the bytes of the file remember it (FTS segments merged, freed pages zeroed,
    // WAL checkpointed).
    store.reset();
    const std::string path = this->backend_.raw_path();
    for (const char* ext : {"", "-wal"}) {
      std::ifstream in(path + ext, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      EXPECT_EQ(bytes.find("zanzibarquux"), std::string::npos) << path << ext;
      if (*ext == '\0') {
        EXPECT_NE(bytes.find("teal"), std::string::npos);
      }
    }
  }
}

TYPED_TEST(MemoryStoreTest, ForgetMatchingIsCaseInsensitiveAndScoped) {
  auto store = this->open();
  const Memory a = store->add("u", memory("User lives in Berlin"), "t");
  const Memory b = store->add("u", memory("User moved to BERLIN in 2020"), "t");
  const Memory c = store->add("u", memory("User works in Munich"), "t");
  const Memory other = store->add("v", memory("V lives in Berlin"), "t");
  const auto gone = store->forget_matching("u", "berlin", "cli");
  EXPECT_EQ(std::set<int64_t>(gone.begin(), gone.end()), (std::set<int64_t>{a.id, b.id}));
  EXPECT_EQ(ids_of(store->get_all("u")), std::set<int64_t>{c.id});
  EXPECT_TRUE(store->get("v", other.id));
  EXPECT_TRUE(store->forget_matching("u", "berlin", "cli").empty());
  EXPECT_THROW(store->forget_matching("u", "   ", "cli"), Error);
}

TYPED_TEST(MemoryStoreTest, WipeRemovesOneUsersEverything) {
  auto store = this->open();
  const Memory a1 = store->add("u", memory("one"), "t");
  store->add("u", memory("two"), "t");
  const Memory v1 = store->add("v", memory("v's"), "t");
  store->save_reranker("u", 1, {1, 2, 3});
  store->save_reranker("v", 1, {4});
  store->add_turns("u", "c", {{0, "user", "hello", 0}});
  store->add_turns("v", "c", {{0, "user", "hi", 0}});
  EXPECT_EQ(store->wipe("u", "cli"), 2u);
  EXPECT_TRUE(store->get_all("u").empty());
  EXPECT_FALSE(store->reranker("u"));
  EXPECT_TRUE(store->turns("u", "c").empty());
  ASSERT_EQ(store->history("u", a1.id).size(), 2u);
  EXPECT_EQ(store->history("u", a1.id)[1].event, MemoryEvent::kDelete);
  EXPECT_TRUE(store->get("v", v1.id));
  EXPECT_TRUE(store->reranker("v"));
  EXPECT_EQ(store->turns("v", "c").size(), 1u);
  EXPECT_EQ(store->wipe("u", "cli"), 0u);
}

TYPED_TEST(MemoryStoreTest, RerankerParametersPerUser) {
  auto store = this->open();
  EXPECT_FALSE(store->reranker("u"));
  std::vector<uint8_t> blob(100000);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 7);
  store->save_reranker("u", 3, blob);
  store->save_reranker("u", 4, {0, 255, 0});
  store->save_reranker("v", 1, blob);
  const auto u = store->reranker("u");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->version, 4);
  EXPECT_EQ(u->blob, (std::vector<uint8_t>{0, 255, 0}));
  EXPECT_GT(u->updated_ms, 0);
  EXPECT_EQ(store->reranker("v")->blob, blob);
  store->save_reranker("w", 1, {});
  EXPECT_TRUE(store->reranker("w")->blob.empty());
}

TYPED_TEST(MemoryStoreTest, ConversationTurns) {
  auto store = this->open();
  store->add_turns("u", "conv-1",
                   {{0, "user", "I adopted a cat", 0}, {1, "assistant", "Congratulations!", 0}});
  store->add_turns("u", "conv-1", {{2, "user", "Her name is Luna", 0}});
  store->add_turns("u", "conv-2", {{0, "user", "other conversation", 0}});
  const auto t = store->turns("u", "conv-1");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].text, "I adopted a cat");
  EXPECT_EQ(t[1].role, "assistant");
  EXPECT_EQ(t[2].index, 2);
  EXPECT_GT(t[2].at_ms, 0);
  EXPECT_TRUE(store->turns("v", "conv-1").empty());
  // A repeated index is refused and the batch it came in leaves nothing.
  EXPECT_THROW(store->add_turns("u", "conv-1", {{3, "user", "new", 0}, {1, "user", "dup", 0}}),
               Error);
  EXPECT_EQ(store->turns("u", "conv-1").size(), 3u);
}

TYPED_TEST(MemoryStoreTest, OversizedAndMalformedInputIsAClearError) {
  auto store = this->open();
  const std::string big(agent_memory::StoreLimits::kMaxSummaryBytes + 1, 'a');
  auto expect_error = [](const std::function<void()>& f, const std::string& part) {
    const std::string msg = error_of(f);
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  };
  expect_error([&] { store->add("u", memory(big), "t"); }, "memory text is 16385 bytes");
  expect_error([&] { store->add("u", memory(""), "t"); }, "memory text is empty");
  expect_error([&] { store->add("u", memory(std::string("a\0b", 3)), "t"); }, "NUL");
  expect_error([&] { store->add("u", memory("bad \xff utf8"), "t"); }, "not valid UTF-8");
  expect_error([&] { store->add("", memory("x"), "t"); }, "user is empty");
  expect_error([&] { store->add("a\nb", memory("x"), "t"); }, "user contains a control");
  expect_error([&] { store->add(std::string(257, 'u'), memory("x"), "t"); }, "user is 257 bytes");
  expect_error([&] { store->add("u", memory("x"), ""); }, "actor is empty");
  NewMemory m = memory("x");
  m.turns_json = "not json";
  expect_error([&] { store->add("u", m, "t"); }, "not a JSON array");
  m = memory("x");
  m.embedding = {1.0f, std::nanf("")};
  expect_error([&] { store->add("u", m, "t"); }, "embedding[1] is not finite");
  m.embedding.assign(agent_memory::StoreLimits::kMaxEmbeddingDims + 1, 0.0f);
  expect_error([&] { store->add("u", m, "t"); }, "dimensions");
  expect_error([&] { store->search("u", "x", 0); }, "search limit 0");
  expect_error([&] { store->search("u", std::string(5000, 'q'), 5); }, "search query is 5000");
  expect_error([&] { store->add_turns("u", "c", {{-1, "user", "x", 0}}); }, "negative");
  // A batch with one bad memory stores none of them.
  expect_error([&] { store->add_all("u", {memory("fine"), memory("")}, "t"); }, "empty");
  EXPECT_TRUE(store->get_all("u").empty());
  // Many query words and very long words are bounded, not errors.
  std::string many;
  for (int i = 0; i < 1000; ++i) many += "w" + std::to_string(i) + " ";
  EXPECT_NO_THROW(store->search("u", many.substr(0, 4000), 5));
  EXPECT_NO_THROW(store->search("u", std::string(4000, 'z'), 5));
}

TYPED_TEST(MemoryStoreTest, SchemaIsVersionedAndNewerStoresAreRefused) {
  { auto store = this->open(); }
  {
    auto store = this->open();  // reopening migrates nothing and keeps working
    store->add("u", memory("kept"), "t");
  }
  auto c = this->backend_.raw();
  EXPECT_EQ(agent_memory::column_int(c->query("SELECT version FROM schema_version", {})[0], 0),
            agent_memory::schema_version());
  // The path from version 1: the index step 2 adds is made on open, the data kept.
  ASSERT_GE(agent_memory::schema_version(), 2);
  c->exec_script("DROP INDEX memory_history_by_id");
  c->query("UPDATE schema_version SET version = 1", {});
  {
    auto store = this->open();
    EXPECT_EQ(agent_memory::stored_schema_version(*c), agent_memory::schema_version());
    EXPECT_EQ(store->get_all("u").size(), 1u);
  }
  EXPECT_THROW(c->exec_script("CREATE INDEX memory_history_by_id ON memory_history(memory_id)"),
               Error);  // it exists again
  c->query("UPDATE schema_version SET version = $1",
           {static_cast<int64_t>(agent_memory::schema_version() + 1)});
  const std::string msg = error_of([&] { this->open(); });
  EXPECT_NE(msg.find("newer than this engram"), std::string::npos) << msg;
}

TEST(MemoryStoreOpen, BadLocationsAreClearErrors) {
  auto msg = error_of([] { open_memory_store("mysql://x"); });
  EXPECT_NE(msg.find("neither sqlite:PATH nor a postgresql:// URL"), std::string::npos) << msg;
  msg = error_of([] { open_memory_store("sqlite:"); });
  EXPECT_NE(msg.find("names no file"), std::string::npos) << msg;
  msg = error_of([] { open_memory_store("sqlite:/nonexistent-dir/x.db"); });
  EXPECT_NE(msg.find("/nonexistent-dir/x.db: cannot open memory store"), std::string::npos) << msg;
  // A file that is not a database.
  const std::string junk = ::testing::TempDir() + "/memstore_junk_" + std::to_string(getpid());
  std::ofstream(junk) << std::string(5000, 'j');
  msg = error_of([&] { open_memory_store("sqlite:" + junk); });
  EXPECT_NE(msg.find("not a database"), std::string::npos) << msg;
  std::filesystem::remove(junk);
  // A server that is not there: the password never appears in the message.
  msg = error_of([] { open_memory_store("postgresql://me:hunter2@127.0.0.1:1/db"); });
  EXPECT_NE(msg.find("cannot connect"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
}

}  // namespace
}  // namespace engram
