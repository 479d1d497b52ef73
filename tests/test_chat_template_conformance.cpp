// Chat templates render byte-identically to @huggingface/jinja (issue 3, acceptance 3).
// tests/fixtures/chat/expected.json holds the reference renders made by
// tools/chat/gen_fixtures.mjs from the real templates in tests/fixtures/chat/templates/;
// this test needs no node. tools/chat/compare.mjs re-runs the comparison live.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "chat/jinja.h"
#include "engram/chat_template.h"
#include "engram/error.h"

namespace engram {
namespace {

const std::string kDir = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/chat/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ChatTemplateConformance, MatchesHuggingFaceJinjaOnEveryCase) {
  const auto cases = nlohmann::ordered_json::parse(slurp(kDir + "expected.json"));
  ASSERT_GE(cases.size(), 100u);
  std::map<std::string, int> per_template;
  int mismatches = 0, rejected = 0;
  for (const auto& c : cases) {
    const std::string id = c["id"];
    const std::string file = c["template"];
    ++per_template[file];
    std::string got, error;
    try {
      got = chat::jinja::Template(slurp(kDir + "templates/" + file)).render(c["vars"]);
    } catch (const Error& e) {
      error = e.what();
    }
    if (c.contains("error")) {
      ++rejected;
      EXPECT_FALSE(error.empty()) << id << ": the reference rejects this conversation ("
                                  << c["error"].get<std::string>() << ") but we rendered "
                                  << nlohmann::ordered_json(got).dump();
      if (error.empty()) ++mismatches;
      // Rejections come from the template's raise_exception(), whose message we pass on.
      EXPECT_NE(error.find(c["error"].get<std::string>()), std::string::npos)
          << id << ": " << error;
      continue;
    }
    const std::string want = c["expected"];
    if (!error.empty() || got != want) {
      ++mismatches;
      ADD_FAILURE() << id << "\n  want: " << nlohmann::ordered_json(want).dump()
                    << "\n  got:  " << (error.empty() ? nlohmann::ordered_json(got).dump() : error);
    }
  }
  EXPECT_EQ(mismatches, 0);
  // Every template of the set is exercised.
  for (const char* f :
       {"llama3.jinja", "qwen3.jinja", "llama2-chat.jinja", "mistral-instruct.jinja"}) {
    EXPECT_GT(per_template[f], 20) << f;
  }
  EXPECT_GT(rejected, 0);  // role-alternation errors are part of the set
}

// The builtin-*.jinja fixtures are the built-in templates; they must not drift apart.
TEST(ChatTemplateConformance, BuiltinFixturesAreTheBuiltins) {
  for (const auto& name : ChatTemplate::builtin_names()) {
    EXPECT_EQ(ChatTemplate::builtin(name, "", "").source(),
              slurp(kDir + "templates/builtin-" + name + ".jinja"))
        << name << ": regenerate with engram chat-template --chat-template " << name
        << " --print-source";
  }
}

// ChatTemplate::render passes the same variables the fixtures use.
TEST(ChatTemplateConformance, ChatTemplateRenderAgreesWithTheFixtures) {
  const auto cases = nlohmann::ordered_json::parse(slurp(kDir + "expected.json"));
  int checked = 0;
  for (const auto& c : cases) {
    if (c.contains("error") || c["template"] != "llama2-chat.jinja") continue;
    std::vector<ChatMessage> msgs;
    for (const auto& m : c["vars"]["messages"]) msgs.push_back({m["role"], m["content"]});
    auto t = ChatTemplate::from_source(slurp(kDir + "templates/llama2-chat.jinja"),
                                       c["vars"]["bos_token"], c["vars"]["eos_token"]);
    EXPECT_EQ(t.render(msgs, c["vars"]["add_generation_prompt"]), c["expected"].get<std::string>())
        << c["id"];
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

}  // namespace
}  // namespace engram
