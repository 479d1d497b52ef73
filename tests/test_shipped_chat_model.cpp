// The shipped chat model (models/engram-tiny-chat.gguf) against its PyTorch reference
// (tools/train/chat_fixtures.py, which reads the GGUF itself): the file's own chat template
// renders each held-out conversation to the reference's text, engram's tokenizer turns it into
// the reference's ids (control tokens as single ids), and greedy decoding gives the reference's
// tokens up to and including <|im_end|>, which ends generation.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engram/chat_template.h"
#include "engram/context.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"

namespace engram {
namespace {

const std::string kRoot = std::string(ENGRAM_SOURCE_DIR) + "/";
const std::string kModel = kRoot + "models/engram-tiny-chat.gguf";

nlohmann::json load_fixture() {
  std::ifstream in(kRoot + "tests/fixtures/shipped_chat/greedy.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in);
}

std::vector<ChatMessage> messages_of(const nlohmann::json& p) {
  std::vector<ChatMessage> m;
  for (const auto& x : p["messages"]) m.push_back({x["role"], x["content"]});
  return m;
}

TEST(ShippedChatModel, TemplateAndTokenizerGiveTheReferencePrompts) {
  const auto g = load_fixture();
  auto model = Model::load(kModel);
  auto tok = Tokenizer::from_gguf(model->file());
  const ChatTemplate tmpl = ChatTemplate::from_gguf(model->file());
  EXPECT_EQ(tmpl.name(), "gguf");  // the file's own template, not a built-in stand-in
  EXPECT_EQ(tmpl.fallback_reason(), "");
  const int32_t im_end = g["eog_token"].get<int32_t>();
  EXPECT_EQ(tok->token_to_piece(im_end, true), "<|im_end|>");
  EXPECT_TRUE(tok->is_eog(im_end));
  EXPECT_EQ(tok->eos(), im_end);
  EXPECT_EQ(tok->encode("<|im_start|>", false, true).size(), 1u);
  int checked = 0;
  for (const auto& p : g["prompts"]) {
    const std::string text = tmpl.render(messages_of(p), true);
    EXPECT_EQ(text, p["prompt_text"].get<std::string>()) << "prompt " << checked;
    EXPECT_EQ(tok->encode(text, tok->add_bos(), true), p["prompt"].get<std::vector<int32_t>>())
        << "prompt " << checked;
    ++checked;
  }
  EXPECT_EQ(checked, 20);
}

TEST(ShippedChatModel, GreedyRepliesMatchTheReference) {
  const auto g = load_fixture();
  auto model = Model::load(kModel);
  auto tok = Tokenizer::from_gguf(model->file());
  ThreadPool pool(2);
  Context ctx(*model, pool);
  int checked = 0, ended = 0;
  for (const auto& p : g["prompts"]) {
    const auto prompt = p["prompt"].get<std::vector<int32_t>>();
    const auto expected = p["continuation"].get<std::vector<int32_t>>();
    ctx.clear();
    ctx.eval(prompt);
    std::vector<int32_t> got;
    while (got.size() < expected.size()) {
      auto l = ctx.logits();
      got.push_back(static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin()));
      if (tok->is_eog(got.back())) break;
      ctx.eval(std::span<const int32_t>(&got.back(), 1));
    }
    EXPECT_EQ(got, expected) << "prompt " << checked << " (" << p["task"] << ")";
    ended += !got.empty() && tok->is_eog(got.back());
    ++checked;
  }
  EXPECT_EQ(checked, 20);
  EXPECT_GT(ended, 0);  // replies end with <|im_end|> rather than running on
}

}  // namespace
}  // namespace engram
