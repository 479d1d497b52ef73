// Crash consistency of the agent memory store: a child process applies a stream of adds,
// updates, merges and forgets and is killed with SIGKILL at a random moment, 100 times over
// one store. After each kill the store must be as some sequence of whole operations left it:
// every memory's history ends in its current text, every merge brought its turn (a memory with
// k MERGE events holds 1 + k turns), the full-text index agrees with the rows, and deleted
// memories keep no text.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "agent_memory/sql_connection.h"
#include "agent_memory_backends.h"
#include "engram/agent_memory.h"

namespace engram {
namespace {

using agent_memory::MemoryEvent;
using agent_memory::MemoryStore;
using agent_memory::NewMemory;
using agent_memory_test::PostgresBackend;
using agent_memory_test::SqliteBackend;

constexpr const char* kUser = "crash-user";

NewMemory with_turn(std::string summary, int turn) {
  NewMemory m;
  m.summary = std::move(summary);
  m.turns_json = "[" + std::to_string(turn) + "]";
  m.embedding = {static_cast<float>(turn), 1.0f};
  return m;
}

// The child: forever pick an operation on the user's memories; after the first one is
// committed, write a byte to `ready`. Never returns.
[[noreturn]] void mutate_forever(const std::string& location, unsigned seed, int ready) {
  try {
    auto store = agent_memory::open_memory_store(location);
    std::mt19937 rng(seed);
    std::vector<int64_t> ids;
    for (const auto& m : store->get_all(kUser)) ids.push_back(m.id);
    for (int k = 0;; ++k) {
      if (k == 1 && write(ready, "r", 1) != 1) _exit(4);
      const std::string word = "w" + std::to_string(seed) + "x" + std::to_string(k);
      const int op = static_cast<int>(rng() % 10);
      if (ids.size() < 4 || op < 2) {
        ids.push_back(store->add(kUser, with_turn("added " + word, k), "child").id);
      } else if (op < 5) {
        store->update(kUser, ids[rng() % ids.size()], "updated " + word, nullptr, "child");
      } else if (op < 8) {
        store->merge(kUser, ids[rng() % ids.size()], "merged " + word, with_turn(word, k), "child");
      } else if (op < 9) {
        const size_t i = rng() % ids.size();
        store->remove(kUser, ids[i], "child");
        ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        // A batch: all or nothing.
        store->add_all(kUser,
                       {with_turn("batch " + word + "a", k), with_turn("batch " + word + "b", k)},
                       "child");
        for (const auto& m : store->get_all(kUser))
          if (std::find(ids.begin(), ids.end(), m.id) == ids.end()) ids.push_back(m.id);
      }
    }
  } catch (...) {
    _exit(3);
  }
}

// PostgreSQL: the server process of a killed client finishes (commits or rolls back) its last
// transaction on its own time. A check that began meanwhile could read a memory before that
// transaction and its history after it, so wait until the child's session (named by its
// application_name; other tests share the database) has ended.
void wait_for_session_end(agent_memory::SqlConnection& c, const std::string& application_name) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (agent_memory::column_int(
             c.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                     {application_name})[0],
             0) > 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "the killed child's session did not end within 30 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

template <typename Backend>
class MemoryStoreCrashTest : public agent_memory_test::StoreFixture<Backend> {};
using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
TYPED_TEST_SUITE(MemoryStoreCrashTest, Backends, agent_memory_test::BackendNames);

void expect_consistent(MemoryStore& store, int round) {
  SCOPED_TRACE("after kill " + std::to_string(round));
  for (const auto& m : store.get_all(kUser)) {
    const auto h = store.history(kUser, m.id);
    ASSERT_FALSE(h.empty()) << "memory " << m.id << " has no history";
    EXPECT_EQ(h.front().event, MemoryEvent::kAdd);
    ASSERT_TRUE(h.back().new_text) << "memory " << m.id;
    EXPECT_EQ(*h.back().new_text, m.summary) << "history of " << m.id << " ends elsewhere";
    size_t merges = 0;
    for (const auto& e : h) {
      EXPECT_NE(e.event, MemoryEvent::kDelete);
      merges += e.event == MemoryEvent::kMerge;
    }
    const auto turns = nlohmann::json::parse(m.turns_json);
    EXPECT_EQ(turns.size(), 1 + merges) << "memory " << m.id << ": a merge was half applied";
    // The full-text index holds the current words: the memory's unique last word finds it.
    const std::string last_word = m.summary.substr(m.summary.rfind(' ') + 1);
    const auto hits = store.search(kUser, last_word, 5);
    ASSERT_FALSE(hits.empty()) << "'" << last_word << "' not in the index";
    EXPECT_EQ(hits[0].memory.id, m.id);
  }
}

TYPED_TEST(MemoryStoreCrashTest, KillNineMidBatchLeavesWholeOperations) {
  {
    auto store = agent_memory::open_memory_store(this->location());
    for (int i = 0; i < 6; ++i) store->add(kUser, with_turn("seed s" + std::to_string(i), i), "t");
  }
  std::mt19937 rng(20261204);
  auto raw = [&] { return this->backend_.raw(); };

  constexpr bool kPostgres = std::is_same_v<TypeParam, PostgresBackend>;
  const std::string child_name = "engram_crash_child_" + std::to_string(getpid());
  const std::string child_location =
      kPostgres ? this->location() + "&application_name=" + child_name : this->location();
  for (int round = 0; round < 100; ++round) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) mutate_forever(child_location, 1000 + round, ready[1]);
    close(ready[1]);
    // The child is at work (its first operation committed; a busy machine may take a while to
    // get there): kill it within the next 10 ms, wherever it is.
    pollfd p{ready[0], POLLIN, 0};
    const bool started = poll(&p, 1, 60000) == 1;
    close(ready[0]);
    if (started) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 10000));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child stopped by itself, exit status "
                                     << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ASSERT_TRUE(started) << "the child did not start writing within 60 s";
    if constexpr (kPostgres) {
      wait_for_session_end(*raw(), child_name);
      if (this->HasFatalFailure()) return;
    }
    auto store = agent_memory::open_memory_store(this->location());
    expect_consistent(*store, round);
    if (this->HasFatalFailure()) return;
  }
  // What each child committed before its kill is still there: the seeds' 6 events and at least
  // one more per child.
  EXPECT_GE(agent_memory::column_int(raw()->query("SELECT count(*) FROM memory_history", {})[0], 0),
            6 + 100);
  if constexpr (std::is_same_v<TypeParam, SqliteBackend>) {
    auto c = raw();
    EXPECT_EQ(agent_memory::column_text(c->query("PRAGMA integrity_check", {})[0], 0), "ok");
    EXPECT_NO_THROW(
        c->query("INSERT INTO memories_fts(memories_fts) VALUES ('integrity-check')", {}));
  }
  // Deleted memories keep their events but no text.
  auto c = raw();
  const auto rows = c->query(
      "SELECT count(*) FROM memory_history h WHERE NOT EXISTS (SELECT 1 FROM memories m "
      "WHERE m.id = h.memory_id) AND (h.old_text IS NOT NULL OR h.new_text IS NOT NULL)",
      {});
  EXPECT_EQ(agent_memory::column_int(rows[0], 0), 0);
}

}  // namespace
}  // namespace engram
