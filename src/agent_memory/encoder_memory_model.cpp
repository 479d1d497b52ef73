// A MemoryModel whose embeddings come from a dedicated text encoder (--embed-model, a `bert`
// GGUF) while completions and token counts stay with the served model.
#include "engram/memory_session.h"
#include "engram/text_encoder.h"

namespace engram::agent_memory {
namespace {

class EncoderMemoryModel : public MemoryModel {
 public:
  EncoderMemoryModel(std::unique_ptr<MemoryModel> inner, const TextEncoder& encoder,
                     ThreadPool& pool)
      : inner_(std::move(inner)), encoder_(encoder), pool_(pool) {}

  // A text longer than the encoder's context is embedded by its beginning (BERT's truncation).
  std::vector<float> embed(std::string_view text) override {
    return encoder_.embed(text, pool_).vector;
  }
  std::string complete(const std::vector<ChatMessage>& messages,
                       const std::shared_ptr<const Grammar>& grammar, int max_tokens) override {
    return inner_->complete(messages, grammar, max_tokens);
  }
  size_t count_tokens(const std::vector<ChatMessage>& messages) override {
    return inner_->count_tokens(messages);
  }
  size_t context_tokens() const override { return inner_->context_tokens(); }

 private:
  std::unique_ptr<MemoryModel> inner_;
  const TextEncoder& encoder_;
  ThreadPool& pool_;
};

}  // namespace

std::unique_ptr<MemoryModel> with_text_encoder(std::unique_ptr<MemoryModel> model,
                                               const TextEncoder& encoder, ThreadPool& pool) {
  return std::make_unique<EncoderMemoryModel>(std::move(model), encoder, pool);
}

}  // namespace engram::agent_memory
