// The conversation engine (include/engram/conversation.h) and the batched decode under it:
// one forward pass over several streams gives each stream what decoding it alone gives; a
// conversation reuses its stream across turns and resumes from a session; the server's request
// parser refuses bad fields by name.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engram/chat_template.h"
#include "engram/context.h"
#include "engram/conversation.h"
#include "engram/error.h"
#include "engram/grammar.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "random_vectors.h"
#include "server/api_error.h"
#include "server/api_request.h"

namespace engram {
namespace {

const std::string kGolden = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";

using testing_util::random_tokens;

std::unique_ptr<Context> make_ctx(const Model& m, ThreadPool& pool, const std::string& kind) {
  MemoryParams p;
  p.kind = kind;
  return std::make_unique<Context>(m, pool, ContextParams{},
                                   make_memory_policy(p, model_shape(m.config())));
}

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// Streams of different lengths and policies, decoded together for several steps, against the
// same streams decoded one by one.
TEST(DecodeBatch, EqualsDecodingEachStreamAlone) {
  for (const char* file : {"llama_f32.gguf", "qwen2_f32.gguf"}) {
    SCOPED_TRACE(file);
    auto model = Model::load(kGolden + file);
    ThreadPool pool(2);
    const int n_vocab = model->config().n_vocab;
    const std::vector<std::string> kinds = {"full", "sinks", "episodic"};
    const std::vector<int> lengths = {17, 300, 40};  // sinks: past the 256-token context
    std::vector<std::unique_ptr<Context>> batched, alone;
    for (size_t i = 0; i < kinds.size(); ++i) {
      const auto prompt = random_tokens(lengths[i], n_vocab, 7 + i);
      batched.push_back(make_ctx(*model, pool, kinds[i]));
      alone.push_back(make_ctx(*model, pool, kinds[i]));
      batched.back()->eval(prompt);
      alone.back()->eval(prompt);
    }
    std::vector<Context*> ptrs;
    for (auto& c : batched) ptrs.push_back(c.get());
    for (int step = 0; step < 6; ++step) {
      std::vector<int32_t> next;
      for (size_t i = 0; i < kinds.size(); ++i) {
        const int32_t t = (step * 31 + static_cast<int>(i) * 17 + 5) % n_vocab;
        next.push_back(t);
        const int32_t one[1] = {t};
        alone[i]->eval(one);
      }
      Context::decode_batch(ptrs, next);
      for (size_t i = 0; i < kinds.size(); ++i) {
        SCOPED_TRACE(kinds[i]);
        EXPECT_EQ(batched[i]->n_past(), alone[i]->n_past());
        EXPECT_LT(max_abs_diff(batched[i]->logits(), alone[i]->logits()), 1e-4f) << step;
      }
    }
  }
}

TEST(DecodeBatch, RefusesMismatchedInput) {
  auto model = Model::load(kGolden + "llama_f32.gguf");
  ThreadPool pool(1);
  auto a = make_ctx(*model, pool, "full");
  const int32_t one[1] = {5};
  a->eval(one);
  Context* twice[2] = {a.get(), a.get()};
  const int32_t two[2] = {1, 2};
  EXPECT_THROW(Context::decode_batch(twice, two), Error);
  Context* single[1] = {a.get()};
  EXPECT_THROW(Context::decode_batch(single, two), Error);
  const int32_t bad[1] = {100000};
  EXPECT_THROW(Context::decode_batch(single, bad), Error);
}

TEST(Embed, UnitLengthAndIndependentOfWhatCameBefore) {
  auto model = Model::load(kGolden + "llama_f32.gguf");
  ThreadPool pool(1);
  Context ctx(*model, pool);
  const auto a = random_tokens(20, model->config().n_vocab, 1);
  const auto b = random_tokens(30, model->config().n_vocab, 2);
  const std::vector<float> ea = ctx.embed(a);
  ASSERT_EQ(ea.size(), size_t(model->config().n_embd));
  double norm = 0;
  for (float x : ea) norm += double(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  (void)ctx.embed(b);
  EXPECT_EQ(ctx.embed(a), ea);  // the stream is cleared before and after
  EXPECT_EQ(ctx.n_past(), 0);
}

struct Chat {
  std::unique_ptr<Model> model = Model::load(kGolden + "llama_f32.gguf");
  std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(model->file());
  ThreadPool pool{1};
  ChatTemplate tmpl = ChatTemplate::builtin("chatml", "<s>", "</s>");

  std::unique_ptr<Conversation> make(const std::string& kind = "full") {
    MemoryParams p;
    p.kind = kind;
    auto c = std::make_unique<Conversation>(*model, *tok, tmpl, pool, p, ContextParams{});
    SamplerParams greedy;
    greedy.temperature = 0;
    c->set_sampling(greedy);
    return c;
  }
};

std::string reply(Conversation& c, const std::vector<ChatMessage>& messages, int n) {
  c.prompt(messages);
  c.start_reply({n, {}, nullptr});
  while (true) {
    const Conversation::Step s = c.step();
    if (s.finish != FinishReason::None) break;
    c.eval_pending();
  }
  return c.end_reply();
}

TEST(Conversation, ASecondTurnReusesTheStream) {
  Chat chat;
  auto c = chat.make();
  std::vector<ChatMessage> m = {{"user", "the cat sat"}};
  const std::string r1 = reply(*c, m, 6);
  EXPECT_EQ(c->completion_tokens(), 6);
  m.push_back({"assistant", r1});
  m.push_back({"user", "on the mat"});
  const int64_t held = c->context().n_past();
  const PromptStats s = c->prompt(m);
  EXPECT_NE(std::string(s.reuse), "none");
  EXPECT_EQ(s.cached_tokens, held);
  EXPECT_LT(s.evaluated, s.prompt_tokens);
}

TEST(Conversation, SavedAndResumedGivesTheSameReplies) {
  Chat chat;
  const std::string path =
      (std::filesystem::temp_directory_path() / "engram_test_conversation.session").string();
  auto whole = chat.make("sinks");
  std::vector<ChatMessage> m = {{"user", "hello there"}};
  m.push_back({"assistant", reply(*whole, m, 5)});
  m.push_back({"user", "and again"});
  const std::string expected = reply(*whole, m, 5);

  auto first = chat.make("sinks");
  std::vector<ChatMessage> m2 = {{"user", "hello there"}};
  m2.push_back({"assistant", reply(*first, m2, 5)});
  first->save(path);
  auto resumed =
      Conversation::resume(path, *chat.model, *chat.tok, chat.tmpl, chat.pool, ContextParams{});
  ASSERT_EQ(resumed->messages().size(), 2u);
  SamplerParams greedy;
  greedy.temperature = 0;
  resumed->set_sampling(greedy);
  m2.push_back({"user", "and again"});
  EXPECT_EQ(reply(*resumed, m2, 5), expected);
  std::filesystem::remove(path);
}

TEST(Conversation, StopStringsAndMisuse) {
  Chat chat;
  auto c = chat.make();
  const std::vector<ChatMessage> m = {{"user", "the cat sat"}};
  EXPECT_THROW(c->start_reply({4, {}, nullptr}), Error);  // nothing evaluated yet
  const std::string free_text = reply(*c, m, 12);
  // A prompt beyond the context is refused without changing the conversation.
  std::vector<ChatMessage> huge = {{"user", std::string(2000, 'x')}};
  EXPECT_THROW(c->prompt(huge), Error);
  EXPECT_EQ(c->messages().size(), 2u);
  EXPECT_THROW(c->step(), Error);  // no reply in progress
  (void)free_text;
}

// A constrained reply follows its grammar and ends where the grammar's output is complete;
// the next reply is free again.
TEST(Conversation, AGrammarConstrainsOneReply) {
  Chat chat;
  auto c = chat.make();
  SamplerParams sampled;
  sampled.temperature = 1.0f;
  sampled.seed = 3;
  c->set_sampling(sampled);
  auto vocab = std::make_shared<GrammarVocab>(*chat.tok);
  const auto digits = Grammar::from_regex("[0-9]{3}-[a-c]+");
  std::vector<ChatMessage> m = {{"user", "a code please"}};
  c->prompt(m);
  c->start_reply({64, {}, std::make_shared<GrammarMatcher>(digits, vocab)});
  FinishReason why = FinishReason::None;
  while (why == FinishReason::None) {
    why = c->step().finish;
    if (why == FinishReason::None) c->eval_pending();
  }
  const std::string constrained = c->end_reply();
  EXPECT_EQ(why, FinishReason::Stop);
  ASSERT_GE(constrained.size(), 5u) << constrained;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(constrained[i] >= '0' && constrained[i] <= '9');
  EXPECT_EQ(constrained[3], '-');
  for (size_t i = 4; i < constrained.size(); ++i) {
    EXPECT_TRUE(constrained[i] >= 'a' && constrained[i] <= 'c') << constrained;
  }
  m.push_back({"assistant", constrained});
  m.push_back({"user", "now anything"});
  c->prompt(m);
  c->start_reply({16, {}, nullptr});
  while (c->step().finish == FinishReason::None) c->eval_pending();
  const std::string free_reply = c->end_reply();
  // Unconstrained again: the golden model's random bytes leave the grammar's alphabet.
  EXPECT_NE(free_reply.find_first_not_of("0123456789-abc"), std::string::npos) << free_reply;
}

TEST(ServerRequest, RefusesBadFieldsByName) {
  using server::ApiError;
  const server::RequestLimits limits;
  auto param_of = [&](const std::string& body) {
    try {
      server::parse_chat_request(body, limits);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      return e.param();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(param_of(R"({"messages":[{"role":"user","content":"x"}]})"), "accepted");
  EXPECT_EQ(param_of(R"({"messages":[{"role":"user","content":"x"}],"top_p":2})"), "top_p");
  EXPECT_EQ(param_of(R"({"messages":[{"role":"user","content":"x"}],"seed":"1"})"), "seed");
  EXPECT_EQ(param_of(R"({"messages":[{"role":"user"}]})"), "messages[0].content");
  EXPECT_EQ(param_of(R"({"messages":[{"role":"user","content":"x"}],"conversation":"../a"})"),
            "conversation");
  EXPECT_EQ(param_of(R"({"messages":[{"role":"user","content":"x"}],"stop":["a",""]})"), "stop");
  EXPECT_EQ(param_of(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})"),
            "messages[0].content[0].type");
  EXPECT_EQ(param_of("{\"messages\": 1e999999}"), "");  // malformed JSON names no field
  const server::GenerationRequest r = server::parse_chat_request(
      R"({"messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
          "max_completion_tokens":7,"seed":-1,"temperature":0})",
      limits);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "ab");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_TRUE(r.seeded);
  EXPECT_EQ(r.sampling.seed, ~uint64_t(0));
}

}  // namespace
}  // namespace engram
