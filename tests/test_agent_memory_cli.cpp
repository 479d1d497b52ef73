// `engram memory` through the real binary: every verb on both backends, every error path (one
// line `engram: error: ...`, exit code 1), and an attacker who knows other users' ids and
// types SQL and FTS5 syntax, oversized and malformed input: no leak, no crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "agent_memory_backends.h"
#include "cli_runner.h"

namespace engram {
namespace {

using agent_memory_test::PostgresBackend;
using agent_memory_test::SqliteBackend;
using testing_cli::CliResult;
using testing_cli::run_cli;
using testing_cli::slurp;
using testing_cli::temp_path;
using testing_cli::TempFile;

// A shell word: single-quoted, with embedded single quotes closed and escaped.
std::string sh(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The convention for bad input: exit code 1, one line on stderr naming the problem.
void expect_one_line_error(const CliResult& r, const std::string& part) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err.rfind("engram: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << "expected '" << part << "' in: " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

int64_t id_from_added(const CliResult& r) {
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("added ", 0), 0u) << r.out;
  return r.out.size() > 6 ? std::stoll(r.out.substr(6)) : 0;
}

template <typename Backend>
class MemoryCliTest : public agent_memory_test::StoreFixture<Backend> {
 protected:
  // "--db PATH" or "--pg URL".
  std::string where() const {
    if constexpr (std::is_same_v<Backend, SqliteBackend>)
      return "--db " + sh(this->backend_.raw_path());
    else
      return "--pg " + sh(this->location());
  }
  std::string store(const std::string& user) const { return where() + " --user " + sh(user); }
  CliResult memory(const std::string& verb, const std::string& user, const std::string& rest = "") {
    return run_cli("memory " + verb + " " + store(user) + " " + rest);
  }
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
TYPED_TEST_SUITE(MemoryCliTest, Backends, agent_memory_test::BackendNames);

TYPED_TEST(MemoryCliTest, EveryVerbRoundTrips) {
  const int64_t tea = id_from_added(this->memory("add", "alice", sh("Alice drinks green tea")));
  const int64_t cat = id_from_added(
      this->memory("add", "alice", sh("Alice's cat is called Miso") + " --conversation c-42"));
  id_from_added(this->memory("add", "bob", sh("Bob drinks green tea too")));
  auto r = this->memory("add", "alice", sh("Alice was diagnosed with asthma"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("(sensitive: health; stored because you asked)"), std::string::npos);

  r = this->memory("list", "alice");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto listed = lines_of(r.out);
  ASSERT_EQ(listed.size(), 3u) << r.out;
  EXPECT_EQ(r.out.find("Bob"), std::string::npos);
  EXPECT_NE(r.out.find(std::to_string(tea) + "\tAlice drinks green tea\n"), std::string::npos);

  r = this->memory("search", "alice", "'green TEA' --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto hits = lines_of(r.out);
  ASSERT_EQ(hits.size(), 1u) << r.out;
  EXPECT_EQ(nlohmann::json::parse(hits[0])["id"], tea);

  r = this->memory("history", "alice", "--id " + std::to_string(cat) + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto h = nlohmann::json::parse(r.out);
  EXPECT_EQ(h["event"], "ADD");
  EXPECT_EQ(h["new_text"], "Alice's cat is called Miso");
  EXPECT_EQ(h["actor"], "cli");

  // export -> import into another user: the same memories, new ids.
  TempFile exported("export.jsonl");
  r = this->memory("export", "alice", "-o " + sh(exported.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto rows = lines_of(slurp(exported.path()));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(rows[1])["conversation"], "c-42");
  EXPECT_EQ(nlohmann::json::parse(rows[2])["sensitive"], true);
  r = this->memory("import", "carol", sh(exported.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "imported 3 memories\n");
  r = this->memory("export", "carol");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto copied = lines_of(r.out);
  ASSERT_EQ(copied.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    auto a = nlohmann::json::parse(rows[i]), b = nlohmann::json::parse(copied[i]);
    EXPECT_EQ(a["summary"], b["summary"]);
    EXPECT_EQ(a["turns"], b["turns"]);
    EXPECT_NE(a["id"], b["id"]);
  }

  // forget by text, then by id; wipe.
  r = this->memory("forget", "alice", "'GREEN tea'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "forgot 1 memory: " + std::to_string(tea) + "\n");
  r = this->memory("search", "alice", "tea");
  EXPECT_EQ(r.out, "");
  r = this->memory("export", "alice");
  EXPECT_EQ(r.out.find("green tea"), std::string::npos);
  r = this->memory("history", "alice", "--id " + std::to_string(tea));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("tea"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\tDELETE\tcli\t(forgotten)\n"), std::string::npos) << r.out;
  r = this->memory("forget", "alice", "--id " + std::to_string(cat));
  EXPECT_EQ(r.out, "forgot memory " + std::to_string(cat) + "\n");
  r = this->memory("wipe", "alice", "--yes");
  EXPECT_EQ(r.out, "wiped 1 memory of user 'alice'\n");
  EXPECT_EQ(this->memory("list", "alice").out, "");
  EXPECT_EQ(lines_of(this->memory("list", "bob").out).size(), 1u);
  EXPECT_EQ(lines_of(this->memory("list", "carol").out).size(), 3u);
}

TYPED_TEST(MemoryCliTest, AnotherUserCannotReachAlicesMemories) {
  const int64_t id =
      id_from_added(this->memory("add", "alice", sh("Alice's locker code is quokka7")));
  const std::string guess = std::to_string(id == 1 ? 2 : id - 1);
  // Her id and a guessed id fail alike (only the number differs).
  for (const std::string& attacker :
       {std::string("mallory"), std::string("alice' OR '1'='1"), std::string("%")}) {
    SCOPED_TRACE(attacker);
    auto theirs = this->memory("forget", attacker, "--id " + std::to_string(id));
    auto guessed = this->memory("forget", attacker, "--id " + guess);
    expect_one_line_error(theirs, "not found for user");
    expect_one_line_error(guessed, "not found for user");
    EXPECT_EQ(theirs.err.substr(theirs.err.find(" not found")),
              guessed.err.substr(guessed.err.find(" not found")));
    expect_one_line_error(this->memory("history", attacker, "--id " + std::to_string(id)),
                          "not found for user");
    expect_one_line_error(this->memory("forget", attacker, "quokka7"), "contains");
    for (const char* verb : {"list", "export"}) {
      auto r = this->memory(verb, attacker);
      EXPECT_EQ(r.status, 0) << r.err;
      EXPECT_EQ(r.out, "");
    }
    for (const std::string& q : {std::string("quokka7"), std::string("locker OR code"),
                                 std::string("* OR 1=1"), std::string("\"quokka7\""),
                                 std::string("summary:quokka7"), std::string("') OR 1=1 --")}) {
      auto r = this->memory("search", attacker, sh(q));
      EXPECT_EQ(r.status, 0) << r.err;
      EXPECT_EQ(r.out, "") << q;
    }
    auto r = this->memory("wipe", attacker, "--yes");
    EXPECT_EQ(r.status, 0) << r.err;
  }
  // Hostile text from Alice herself is stored and searched as text.
  for (const std::string& text :
       {std::string("'); DROP TABLE memories; --"), std::string("NEAR(a b) \"x\" * ^y AND"),
        std::string("50% off_sale \\ ; --")}) {
    const int64_t own = id_from_added(this->memory("add", "alice", sh(text)));
    auto r = this->memory("search", "alice", sh(text) + " --json -n 100");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(std::to_string(own)), std::string::npos) << text;
  }
  auto r = this->memory("list", "alice");
  EXPECT_NE(r.out.find(std::to_string(id) + "\tAlice's locker code is quokka7"), std::string::npos);
  EXPECT_EQ(lines_of(r.out).size(), 4u);
}

TYPED_TEST(MemoryCliTest, OversizedInputIsAClearError) {
  expect_one_line_error(this->memory("add", "u", sh(std::string(20000, 'a'))),
                        "memory text is 20000 bytes, more than the limit of 16384");
  expect_one_line_error(this->memory("search", "u", sh(std::string(5000, 'q'))),
                        "search query is 5000 bytes");
  expect_one_line_error(this->memory("list", std::string(300, 'u')), "user is 300 bytes");
  expect_one_line_error(this->memory("add", "u", "\"$(printf 'bad \\377 utf8')\""),
                        "not valid UTF-8");
  expect_one_line_error(run_cli("memory list " + this->where() + " --user \"$(printf 'a\\tb')\""),
                        "user contains a control character");
  expect_one_line_error(this->memory("add", "u", "'   '"), "memory text is empty");
  TempFile big("big.jsonl");
  {
    std::ofstream f(big.path(), std::ios::binary);
    f << R"({"summary": "fine"})"
      << "\n"
      << R"({"summary": ")" << std::string(5 * 1024 * 1024, 'x') << "\"}\n";
  }
  expect_one_line_error(this->memory("import", "u", sh(big.path())), ":2: line is 5242895 bytes");
  EXPECT_EQ(this->memory("list", "u").out, "");  // all or nothing
}

TEST(MemoryCli, ErrorPaths) {
  TempFile db("errors.db");
  const std::string store = "--db " + sh(db.path()) + " --user u";
  // Setup: one memory.
  ASSERT_EQ(run_cli("memory add " + store + " 'a first memory'").status, 0);

  expect_one_line_error(run_cli("memory"), "A subcommand is required");
  expect_one_line_error(run_cli("memory list --user u"), "give the store with --db FILE or --pg");
  expect_one_line_error(run_cli("memory list --db " + sh(db.path())), "--user is required");
  expect_one_line_error(run_cli("memory list " + store + " --pg postgresql://x"), "excludes");
  expect_one_line_error(run_cli("memory list --db /nonexistent/m.db --user u"),
                        "/nonexistent/m.db: no such memory store");
  TempFile junk("junk.db");
  std::ofstream(junk.path()) << std::string(4096, 'j');
  expect_one_line_error(run_cli("memory list --db " + sh(junk.path()) + " --user u"),
                        "not a database");
  expect_one_line_error(
      run_cli("memory list --pg 'postgresql://me:hunter2@127.0.0.1:1/db' --user u"),
      "cannot connect to the memory store");
  EXPECT_EQ(run_cli("memory list --pg 'postgresql://me:hunter2@127.0.0.1:1/db' --user u")
                .err.find("hunter2"),
            std::string::npos);
  expect_one_line_error(run_cli("memory list --pg 'mysql://x' --user u"), "neither sqlite:PATH");
  expect_one_line_error(run_cli("memory add " + store), "text is required");
  expect_one_line_error(run_cli("memory forget " + store), "give --id ID or the TEXT to forget");
  expect_one_line_error(run_cli("memory forget " + store + " --id 5 words"), "excludes");
  expect_one_line_error(run_cli("memory forget " + store + " --id 12345"),
                        "memory forget: memory 12345 not found for user 'u'");
  expect_one_line_error(run_cli("memory forget " + store + " --id abc"), "--id");
  expect_one_line_error(run_cli("memory forget " + store + " nothing-like-this"),
                        "no memory of user 'u' contains 'nothing-like-this'");
  expect_one_line_error(run_cli("memory forget " + store + " '  '"), "the text to forget is empty");
  expect_one_line_error(run_cli("memory history " + store + " --id 12345"),
                        "memory history: memory 12345 not found for user 'u'");
  expect_one_line_error(run_cli("memory history " + store), "--id is required");
  expect_one_line_error(run_cli("memory search " + store + " x -n 0"), "--limit");
  expect_one_line_error(run_cli("memory search " + store), "query is required");
  expect_one_line_error(run_cli("memory wipe " + store), "add --yes");
  expect_one_line_error(run_cli("memory export " + store + " -o /nonexistent/dir/out.jsonl"),
                        "/nonexistent/dir/out.jsonl: cannot write");
  expect_one_line_error(run_cli("memory import " + store + " /nonexistent.jsonl"),
                        "/nonexistent.jsonl: cannot open");
  expect_one_line_error(run_cli("memory import " + store + " /tmp"), "/tmp: is a directory");
  // Verbs, flags and values CLI11 refuses, and what the store refuses in a name.
  expect_one_line_error(run_cli("memory frobnicate " + store), "A subcommand is required");
  expect_one_line_error(run_cli("memory list " + store + " --frob"), "--frob");
  expect_one_line_error(run_cli("memory list " + store + " extra"), "extra");
  expect_one_line_error(run_cli("memory history " + store + " --id abc"), "--id");
  expect_one_line_error(run_cli("memory search " + store + " x -n 1001"), "--limit");
  expect_one_line_error(run_cli("memory forget " + store + " --id -5"),
                        "memory forget: memory -5 not found for user 'u'");
  expect_one_line_error(run_cli("memory add " + store + " x --conversation \"$(printf 'a\nb')\""),
                        "conversation id contains a control character");
  expect_one_line_error(run_cli("memory add --db /nonexistent/dir/m.db --user u x"),
                        "/nonexistent/dir/m.db");
  // An export that cannot be renamed into place (the name is a directory) leaves nothing behind.
  TempFile dir("export_dir");
  std::filesystem::create_directory(dir.path());
  expect_one_line_error(run_cli("memory export " + store + " -o " + sh(dir.path())),
                        dir.path() + ": cannot write");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + ".tmp"));
  // Import: each bad line names its file, line and field; nothing is imported.
  const std::vector<std::pair<std::string, std::string>> bad_lines = {
      {"not json", ":2: not JSON"},
      {"[1, 2]", ":2: not a JSON object"},
      {R"({"text": "x"})", ":2: unknown field 'text'"},
      {R"({"turns": []})", ":2: no 'summary'"},
      {R"({"summary": 5})", ":2: 'summary' is not a string"},
      {R"({"summary": "x", "turns": {}})", ":2: 'turns' is not an array"},
      {R"({"summary": "x", "embedding": [1, "a"]})", ":2: 'embedding'[1] is not a number"},
      {R"({"summary": "x", "embedding": [1e300]})", ":2: 'embedding'[0] is outside the float"},
      {R"({"summary": "x", "sensitive": "yes"})", ":2: 'sensitive' is not true or false"},
      {R"({"summary": "x", "id": "abc"})", ":2: 'id' is not an integer"},
      {R"({"summary": ""})", ":2: memory text is empty"},
  };
  for (const auto& [line, message] : bad_lines) {
    SCOPED_TRACE(line);
    TempFile f("bad.jsonl");
    std::ofstream(f.path()) << R"({"summary": "good one"})"
                            << "\n"
                            << line << "\n";
    expect_one_line_error(run_cli("memory import " + store + " " + sh(f.path())),
                          f.path() + message);
  }
  auto r = run_cli("memory list " + store);
  EXPECT_EQ(lines_of(r.out).size(), 1u) << r.out;
  // Import from standard input works, blank lines are skipped.
  const std::string input = "\n{\"summary\": \"from stdin\"}\n\n";
  r = run_cli("memory import " + store + " -", &input);
  EXPECT_EQ(r.out, "imported 1 memory\n") << r.err;
  for (const char* ext : {"-wal", "-shm"}) std::filesystem::remove(db.path() + ext);
}

TEST(MemoryCli, ForgottenTextLeavesTheSqliteFile) {
  TempFile db("forget.db");
  const std::string store = "--db " + sh(db.path()) + " --user u";
  ASSERT_EQ(run_cli("memory add " + store + " 'the vault word is xylophonequartz'").status, 0);
  ASSERT_EQ(run_cli("memory add " + store + " 'User likes tea'").status, 0);
  auto r = run_cli("memory forget " + store + " xylophonequartz");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* ext : {"", "-wal"})
    EXPECT_EQ(slurp(db.path() + ext).find("xylophonequartz"), std::string::npos) << ext;
  EXPECT_NE(slurp(db.path()).find("User likes tea"), std::string::npos);
  for (const char* ext : {"-wal", "-shm"}) std::filesystem::remove(db.path() + ext);
}

}  // namespace
}  // namespace engram
