// The served model as the agent memory's MemoryModel: embeddings from a stream of their own
// (Context::embed), completions greedy through a conversation of their own (the same engine
// `chat` and `serve` run), constrained by a grammar when one is given.
#include <fmt/format.h>

#include "engram/context.h"
#include "engram/conversation.h"
#include "engram/error.h"
#include "engram/grammar.h"
#include "engram/memory_session.h"
#include "engram/model.h"
#include "engram/tokenizer.h"

namespace engram::agent_memory {
namespace {

class EngineMemoryModel : public MemoryModel {
 public:
  EngineMemoryModel(const Model& model, const Tokenizer& tok, const ChatTemplate& tmpl,
                    ThreadPool& pool, std::shared_ptr<GrammarVocab> vocab)
      : tok_(tok),
        tmpl_(tmpl),
        vocab_(std::move(vocab)),
        embed_ctx_(model, pool, ContextParams{0, 512}),
        conv_(model, tok, tmpl, pool, MemoryParams{}, ContextParams{0, 512}) {
    SamplerParams greedy;
    greedy.temperature = 0;
    conv_.set_sampling(greedy);
  }

  std::vector<float> embed(std::string_view text) override {
    std::vector<int32_t> ids = tok_.encode(text, true, false);
    // A text longer than the context is embedded by its beginning.
    if (static_cast<int64_t>(ids.size()) > embed_ctx_.n_ctx())
      ids.resize(static_cast<size_t>(embed_ctx_.n_ctx()));
    if (ids.empty()) return {};
    return embed_ctx_.embed(ids);
  }

  std::string complete(const std::vector<ChatMessage>& messages,
                       const std::shared_ptr<const Grammar>& grammar, int max_tokens) override {
    conv_.reset(false);
    conv_.prompt(messages);
    ReplyParams rp;
    rp.max_tokens = max_tokens;
    if (grammar) {
      if (!vocab_) vocab_ = std::make_shared<GrammarVocab>(tok_);  // built when first needed
      rp.grammar = std::make_shared<GrammarMatcher>(grammar, vocab_);
    }
    conv_.start_reply(rp);
    std::string out;
    while (true) {
      const Conversation::Step s = conv_.step();
      out += s.text;
      if (s.finish != FinishReason::None) break;
      conv_.eval_pending();
    }
    conv_.end_reply();
    conv_.reset(false);
    return out;
  }

  size_t count_tokens(const std::vector<ChatMessage>& messages) override {
    return tok_.encode(tmpl_.render(messages, true), tok_.add_bos(), true).size();
  }

  size_t context_tokens() const override { return static_cast<size_t>(embed_ctx_.n_ctx()); }

 private:
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  std::shared_ptr<GrammarVocab> vocab_;  // null until a constraint needs it
  Context embed_ctx_;
  Conversation conv_;
};

}  // namespace

std::unique_ptr<MemoryModel> engine_memory_model(const Model& model, const Tokenizer& tok,
                                                 const ChatTemplate& tmpl, ThreadPool& pool,
                                                 std::shared_ptr<GrammarVocab> vocab) {
  return std::make_unique<EngineMemoryModel>(model, tok, tmpl, pool, std::move(vocab));
}

}  // namespace engram::agent_memory
