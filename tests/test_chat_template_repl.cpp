// `engram chat` driven through a pipe on the random-weight golden model: the REPL keeps the
// turns, /save writes them as JSON, /reset clears them, and a model without a chat template
// is refused with a message that says what to do.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_runner.h"

namespace {

const std::string kModel = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/llama_f32.gguf";

using engram::testing_cli::CliResult;
using engram::testing_cli::slurp;
using engram::testing_cli::TempFile;

CliResult run_cli(const std::string& args, const std::string& input) {
  return engram::testing_cli::run_cli(args, &input);
}

TEST(ChatRepl, PipedTurnsAreKeptAndSavedAsJson) {
  const TempFile save_file("chat_save.json");
  const std::string& save = save_file.path();
  const CliResult r =
      run_cli("chat -m " + kModel +
                  " --chat-template chatml --system 'Be kind.' -n 6 "
                  "--temp 0 --seed 1 -t 1",
              "hello there\n\nsecond \"quoted\" message\n/save " + save + "\n/quit\nnever read\n");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(save));
  EXPECT_EQ(j["chat_template"], "chatml");
  const auto& m = j["messages"];
  ASSERT_EQ(m.size(), 5u) << j.dump(1);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[0]["content"], "Be kind.");
  EXPECT_EQ(m[1]["role"], "user");
  EXPECT_EQ(m[1]["content"], "hello there");
  EXPECT_EQ(m[2]["role"], "assistant");
  EXPECT_EQ(m[3]["content"], "second \"quoted\" message");
  EXPECT_EQ(m[4]["role"], "assistant");
  // The two replies went to stdout, one line each (stdin is not a terminal: no prompts).
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
}

TEST(ChatRepl, ResetClearsTheConversation) {
  const TempFile save_file("chat_reset.json");
  const std::string& save = save_file.path();
  const CliResult r = run_cli("chat -m " + kModel + " --chat-template llama3 -n 3 --temp 0 -t 1 -v",
                              "one\ntwo\n/reset\n/save " + save + "\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(save))["messages"].size(), 0u);
  EXPECT_NE(r.err.find("[conversation cleared]"), std::string::npos) << r.err;
}

TEST(ChatRepl, LaterTurnsEvaluateOnlyTheNewSuffix) {
  const CliResult r = run_cli("chat -m " + kModel + " --chat-template chatml -n 4 --temp 0 -t 1 -v",
                              "hi\nagain\nthird\n");
  ASSERT_EQ(r.status, 0) << r.err;
  // Turn 1 evaluates everything; later turns reuse what the context already holds.
  EXPECT_NE(r.err.find(": 0 reused (prefix match: none)"), std::string::npos) << r.err;
  const size_t second = r.err.find("[prompt", r.err.find("[prompt") + 1);
  ASSERT_NE(second, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("prefix match: none", second), std::string::npos) << r.err;
}

TEST(ChatRepl, MissingTemplateWithoutOverrideIsAClearError) {
  const CliResult r = run_cli("chat -m " + kModel + " -n 2", "hello\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no tokenizer.chat_template"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--chat-template"), std::string::npos) << r.err;
  const CliResult bad = run_cli("chat -m " + kModel + " --chat-template nope", "");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("unknown chat template 'nope'"), std::string::npos) << bad.err;
}

TEST(ChatRepl, StopStringEndsAReply) {
  // With --stop on every character the replies must be empty, yet the turn completes.
  std::string stops;
  for (char c = 32; c < 127; ++c) {
    if (c == '\'' || c == '"') continue;
    stops += std::string(" --stop='") + c + "'";
  }
  const TempFile save_file("chat_stop.json");
  const std::string& save = save_file.path();
  const CliResult r =
      run_cli("chat -m " + kModel + " --chat-template chatml -n 8 --temp 0 -t 1" + stops,
              "hi\n/save " + save + "\n");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(save));
  ASSERT_EQ(j["messages"].size(), 2u);
  const std::string reply = j["messages"][1]["content"];
  for (char c : reply) EXPECT_FALSE(c >= 32 && c < 127 && c != '\'' && c != '"') << reply;
}

}  // namespace
