// `engram chat` driven through a pipe on the random-weight golden model: the REPL keeps the
// turns, /save writes them as JSON, /reset clears them, and a model without a chat template
// is refused with a message that says what to do. With a memory policy a conversation outgrows
// the model's context, and --session resumes it later as if it had never stopped.
#include <fmt/format.h>
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

// Eight turns of ~12 words and replies of up to 8 tokens: past the golden model's 256 tokens.
std::string long_conversation(int turns) {
  std::string in;
  for (int i = 0; i < turns; ++i) {
    in += "turn " + std::to_string(i) + " the cat sat on a mat and then went home again\n";
  }
  return in;
}

TEST(ChatRepl, AMemoryPolicyCarriesTheConversationPastTheContext) {
  const std::string args = "chat -m " + kModel + " --chat-template chatml -n 8 --temp 0 -t 1 -v";
  const CliResult full = run_cli(args, long_conversation(8));
  ASSERT_EQ(full.status, 0) << full.err;
  EXPECT_NE(full.err.find("the context holds 256"), std::string::npos) << full.err;
  const CliResult sinks = run_cli(args + " --memory sinks", long_conversation(8));
  ASSERT_EQ(sinks.status, 0) << sinks.err;
  EXPECT_EQ(sinks.err.find("the context holds"), std::string::npos) << sinks.err;
  EXPECT_EQ(sinks.err.find("context full"), std::string::npos) << sinks.err;
  // Every turn after the first reused the stream: nothing was read again from the start.
  size_t turns = 0;
  for (size_t at = sinks.err.find("[prompt"); at != std::string::npos;
       at = sinks.err.find("[prompt", at + 1), ++turns) {
    const std::string line = sinks.err.substr(at, sinks.err.find('\n', at) - at);
    if (turns > 0) {
      EXPECT_EQ(line.find("prefix match: none"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(turns, 8u) << sinks.err;
  EXPECT_EQ(std::count(sinks.out.begin(), sinks.out.end(), '\n'), 8) << sinks.out;
}

// A conversation in two runs through --session answers as one run does, bit for bit (greedy):
// the stream, its memory units and the conversation all come back. With sinks the cut falls
// after a reply whose first token begins with a space the shown reply drops, which the resumed
// run must still match against the rendering.
TEST(ChatRepl, ASessionResumesTheConversation) {
  for (const auto& [memory, cut_at] : {std::pair{"episodic", "turn 6"}, {"sinks", "turn 5"}}) {
    SCOPED_TRACE(memory);
    const TempFile session_file("chat.session");
    const std::string& session = session_file.path();
    const std::string chat = "chat -m " + kModel + " --chat-template chatml -n 8 --temp 0 -t 1 -v";
    const std::string all = long_conversation(9);
    const size_t cut = all.find(cut_at);
    const CliResult one = run_cli(chat + " --memory " + memory, all);
    ASSERT_EQ(one.status, 0) << one.err;
    const CliResult first =
        run_cli(chat + " --memory " + memory + " --session '" + session + "'", all.substr(0, cut));
    ASSERT_EQ(first.status, 0) << first.err;
    const CliResult second = run_cli(chat + " --session '" + session + "'", all.substr(cut));
    ASSERT_EQ(second.status, 0) << second.err;
    const std::string resumed = fmt::format("[resumed {} messages", 2 * (cut_at[5] - '0'));
    EXPECT_NE(second.err.find(resumed), std::string::npos) << second.err;
    EXPECT_EQ(second.err.find("prefix match: none"), std::string::npos) << second.err;
    EXPECT_EQ(first.out + second.out, one.out);
    EXPECT_EQ(std::count(one.out.begin(), one.out.end(), '\n'), 9) << one.out;
  }
}

TEST(ChatRepl, AResumedConversationKeepsItsSystemPromptThroughReset) {
  const TempFile session_file("system.session"), save_file("system.json");
  const std::string chat = "chat -m " + kModel + " --chat-template chatml -n 2 --temp 0 -t 1 " +
                           "--session '" + session_file.path() + "'";
  ASSERT_EQ(run_cli(chat + " --system 'Be kind.'", "hi\n").status, 0);
  const CliResult r = run_cli(chat, "/reset\n/save " + save_file.path() + "\n");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto m = nlohmann::json::parse(slurp(save_file.path()))["messages"];
  ASSERT_EQ(m.size(), 1u) << m.dump();
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[0]["content"], "Be kind.");
}

// A system prompt read from a file longer than the progress threshold (8192 tokens) is read
// under a progress bar and answered as the same text given with --system.
TEST(ChatRepl, ASystemFileIsReadUnderAProgressBar) {
  const TempFile doc_file("system_doc.txt");
  {
    std::ofstream f(doc_file.path());
    for (int i = 0; i < 400; ++i) f << "line " << i << " the cat sat on the mat. ";
    f << "\n\n";  // trailing whitespace is left out, as `run -f` does
  }
  const std::string chat =
      "chat -m " + kModel + " --chat-template chatml --memory sinks -n 6 --temp 0 -t 2 -v";
  const CliResult from_file =
      run_cli(chat + " --system-file '" + doc_file.path() + "'", "what was it about\n");
  ASSERT_EQ(from_file.status, 0) << from_file.err;
  EXPECT_NE(from_file.err.find("tok/s"), std::string::npos) << from_file.err;
  const size_t at = from_file.err.find("[prompt ");
  ASSERT_NE(at, std::string::npos) << from_file.err;
  EXPECT_GT(std::stoll(from_file.err.substr(at + 8)), 8192) << from_file.err;
  std::string text = slurp(doc_file.path());
  text.erase(text.find_last_not_of(" \n") + 1);
  const CliResult inline_text = run_cli(chat + " --system '" + text + "'", "what was it about\n");
  ASSERT_EQ(inline_text.status, 0) << inline_text.err;
  EXPECT_EQ(from_file.out, inline_text.out);
  const CliResult both = run_cli(chat + " --system x --system-file '" + doc_file.path() + "'", "");
  EXPECT_NE(both.status, 0);
  EXPECT_NE(both.err.find("--system excludes --system-file"), std::string::npos) << both.err;
}

TEST(ChatRepl, SessionMisuseIsAClearError) {
  const TempFile session_file("misuse.session");
  const std::string& session = session_file.path();
  const std::string base = "chat -m " + kModel + " -n 2 --temp 0 -t 1 --session '" + session + "'";
  ASSERT_EQ(run_cli(base + " --chat-template chatml --memory sinks", "hi\n").status, 0);
  const CliResult flag = run_cli(base + " --chat-template chatml --memory episodic", "hi\n");
  EXPECT_EQ(flag.status, 1);
  EXPECT_NE(flag.err.find("--memory"), std::string::npos) << flag.err;
  const CliResult sys = run_cli(base + " --chat-template chatml --system x", "hi\n");
  EXPECT_EQ(sys.status, 1);
  EXPECT_NE(sys.err.find("--system"), std::string::npos) << sys.err;
  const CliResult other = run_cli(base + " --chat-template llama3", "hi\n");
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.err.find("'chatml'"), std::string::npos) << other.err;
  // A stream saved by `engram run` holds no conversation.
  ASSERT_EQ(run_cli("run -q -m " + kModel + " -p 'the cat sat' -n 2 -t 1 --save-session '" +
                        session + "'",
                    "")
                .status,
            0);
  const CliResult run_file = run_cli(base + " --chat-template chatml", "hi\n");
  EXPECT_EQ(run_file.status, 1);
  EXPECT_NE(run_file.err.find("not a conversation"), std::string::npos) << run_file.err;
  const CliResult dir =
      run_cli("chat -m " + kModel + " --chat-template chatml --session /no/such/dir/x", "hi\n");
  EXPECT_EQ(dir.status, 1);
  EXPECT_NE(dir.err.find("/no/such/dir/x"), std::string::npos) << dir.err;
}

}  // namespace
