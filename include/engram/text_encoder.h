// A dedicated embedding model: a `bert` GGUF as llama.cpp converts BERT, MiniLM and bge
// models (WordPiece vocabulary, learned absolute positions, post-LayerNorm encoder layers,
// GELU feed-forward, biases everywhere) mapping a text to one L2-normalised vector, pooled as
// the file says (`bert.pooling_type`: mean over the tokens, or the [CLS] token).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace engram {

class GgufFile;
class ThreadPool;
class Tokenizer;

enum class Pooling : uint8_t { Mean = 1, Cls = 2 };  // llama.cpp's pooling_type values

struct TextEncoderConfig {
  std::string arch;  // "bert"
  std::string name;  // general.name, if any
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_ff = 0;
  int n_ctx_train = 0;    // positions the file has embeddings for: the longest input
  int n_token_types = 0;  // rows of token_types.weight (type 0 is used)
  float norm_eps = 1e-12f;
  Pooling pooling = Pooling::Mean;
  bool pooling_from_file = false;  // false: the file names none, mean is used
};

struct TextEncoderWeights;  // src/model/bert_encoder.cpp

class TextEncoder {
 public:
  // Opens, validates and maps a `bert` GGUF. Throws engram::Error naming the file and the
  // problem (another architecture, a missing tensor or key, a wrong shape, an unsupported
  // pooling type or tensor type).
  static std::unique_ptr<TextEncoder> load(const std::string& path);
  ~TextEncoder();

  const TextEncoderConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  const GgufFile& file() const { return *file_; }
  int dim() const { return config_.n_embd; }
  // What the vectors are comparable with (embedding_identity() below): two files give the
  // same identity only when they hold the same model.
  const std::string& identity() const { return identity_; }

  struct Embedding {
    std::vector<float> vector;  // [dim], L2-normalised
    size_t n_tokens = 0;        // tokens read, [CLS] and [SEP] included
    bool truncated = false;     // the text had more tokens than n_ctx_train; its end was cut
  };
  // [CLS] text [SEP], cut to the trained context (keeping [SEP] last), through the encoder,
  // pooled and normalised. Thread-safe: the encoder holds no per-call state.
  Embedding embed(std::string_view text, ThreadPool& pool) const;
  // The same from token ids (framing included); more than n_ctx_train ids is an error.
  std::vector<float> embed_tokens(std::span<const int32_t> ids, ThreadPool& pool) const;
  // The last layer's hidden states [ids.size(), n_embd] before pooling (for tests).
  std::vector<float> hidden_states(std::span<const int32_t> ids, ThreadPool& pool) const;

 private:
  TextEncoder();
  TextEncoderConfig config_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<TextEncoderWeights> weights_;
  std::string identity_;
};

// The identity of an embedding: "KIND:NAME:DIM:POOLING:FINGERPRINT", the fingerprint a hash
// of every tensor's name and first and last 4 KiB. TextEncoder::identity() is this for its file
// (kind "bert"); the served model's mean-pooled embeddings use kind "model".
std::string embedding_identity(const GgufFile& file, std::string_view kind, int dim,
                               std::string_view pooling);

}  // namespace engram
