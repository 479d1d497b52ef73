// Tokenizer: loading and validating the GGUF vocabulary, splitting out special tokens,
// decoding. The model-specific merge loops live in spm.cpp and bpe.cpp.
#include "engram/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <limits>

#include "engram/error.h"
#include "engram/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace engram {

namespace {

// Control tokens that end a turn in the chat formats we know, besides EOS itself.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>",    "<|eom_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>",
    "<|endoftext|>", "<|end_of_text|>", "</s>",       "<EOT>",
};

struct PreInfo {
  std::string_view name;
  tok::PreTokenizer kind;
  bool ignore_merges;
  bool nfc;
};

// Names as llama.cpp's converter writes them. "default" has no regex of its own in GGUF;
// we give it GPT-2's, which is what a plain byte-level BPE vocabulary was trained with.
constexpr PreInfo kPres[] = {
    {"default", tok::PreTokenizer::Gpt2, false, false},
    {"gpt-2", tok::PreTokenizer::Gpt2, false, false},
    {"llama-bpe", tok::PreTokenizer::Llama3, true, false},
    {"llama3", tok::PreTokenizer::Llama3, true, false},
    {"llama-v3", tok::PreTokenizer::Llama3, true, false},
    {"qwen2", tok::PreTokenizer::Qwen2, false, true},
};

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  auto im = std::make_unique<Impl>();
  auto fail = [&](const std::string& msg) -> void {
    throw Error(fmt::format("{}: vocabulary: {}", f.path(), msg));
  };

  if (!f.has("tokenizer.ggml.model")) fail("tokenizer.ggml.model is missing");
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model == "llama") {
    im->model = TokenizerModel::Llama;
  } else if (model == "gpt2") {
    im->model = TokenizerModel::Gpt2;
  } else if (model == "bert") {
    im->model = TokenizerModel::Bert;
  } else {
    fail(
        fmt::format("tokenizer model '{}' is not supported (supported: llama, gpt2, bert)", model));
  }
  const bool spm = im->model == TokenizerModel::Llama;
  const bool bert = im->model == TokenizerModel::Bert;

  if (!f.has("tokenizer.ggml.tokens")) fail("tokenizer.ggml.tokens is missing");
  im->tokens = f.get_string_array("tokenizer.ggml.tokens");
  const size_t n = im->tokens.size();
  if (n == 0) fail("tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail(fmt::format("tokenizer.ggml.tokens has {} entries (too many)", n));

  if (f.has("tokenizer.ggml.scores")) {
    im->scores = f.get_f32_array("tokenizer.ggml.scores");
    if (im->scores.size() != n)
      fail(fmt::format("tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
                       im->scores.size(), n));
  } else {
    im->scores.assign(n, 0.0f);
  }

  im->types.assign(n, TokenType::Normal);
  if (f.has("tokenizer.ggml.token_type")) {
    const std::vector<int32_t> t = f.get_i32_array("tokenizer.ggml.token_type");
    if (t.size() != n)
      fail(fmt::format("tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                       t.size(), n));
    for (size_t i = 0; i < n; ++i) {
      if (t[i] < 0 || t[i] > 6)
        fail(fmt::format("tokenizer.ggml.token_type[{}] = {} (expected 0..6)", i, t[i]));
      im->types[i] = t[i] == 0 ? TokenType::Normal : static_cast<TokenType>(t[i]);
    }
  }

  im->token_ids.reserve(n);
  for (size_t i = 0; i < n; ++i) im->token_ids.emplace(im->tokens[i], static_cast<int32_t>(i));

  // Special ids: -1 (or an all-ones uint32) means "none"; anything else must be in range.
  auto read_id = [&](const char* key, int32_t dflt) -> int32_t {
    if (!f.has(key)) return dflt;
    const int64_t v = f.get_int(key, -1);
    if (v == -1 || v == 0xFFFFFFFFll) return -1;
    if (v < 0 || static_cast<uint64_t>(v) >= n)
      fail(fmt::format("{} = {} is out of range (the vocabulary has {} tokens)", key, v, n));
    return static_cast<int32_t>(v);
  };
  // SentencePiece's fixed layout is <unk>=0, <s>=1, </s>=2 when the file does not say.
  im->bos = read_id("tokenizer.ggml.bos_token_id", spm && n > 1 ? 1 : -1);
  im->eos = read_id("tokenizer.ggml.eos_token_id", spm && n > 2 ? 2 : -1);
  im->unk = read_id("tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
  im->pad = read_id("tokenizer.ggml.padding_token_id", -1);
  const int32_t eot = read_id("tokenizer.ggml.eot_token_id", -1);
  const int32_t eom = read_id("tokenizer.ggml.eom_token_id", -1);
  if (bert) {
    // [CLS] and [SEP] frame every text. llama.cpp's converter writes the separator under its
    // own spelling ("seperator") and no CLS key (llama.cpp then assumes 101); we look the
    // texts up instead of assuming an id.
    auto id_or_text = [&](std::initializer_list<const char*> keys, std::string_view text) {
      for (const char* k : keys)
        if (f.has(k)) return read_id(k, -1);
      return im->find(text);
    };
    im->bos = id_or_text({"tokenizer.ggml.cls_token_id", "tokenizer.ggml.bos_token_id"}, "[CLS]");
    im->eos =
        id_or_text({"tokenizer.ggml.seperator_token_id", "tokenizer.ggml.eos_token_id"}, "[SEP]");
    im->unk = id_or_text({"tokenizer.ggml.unknown_token_id"}, "[UNK]");
    im->pad = id_or_text({"tokenizer.ggml.padding_token_id"}, "[PAD]");
    if (im->bos < 0) fail("bert: no [CLS] token (tokenizer.ggml.cls_token_id or a '[CLS]' token)");
    if (im->eos < 0)
      fail("bert: no [SEP] token (tokenizer.ggml.seperator_token_id or a '[SEP]' token)");
    if (im->unk < 0) fail("bert: no [UNK] token (tokenizer.ggml.unknown_token_id or '[UNK]')");
  }
  im->add_bos = f.get_bool("tokenizer.ggml.add_bos_token", spm || bert);
  im->add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  im->add_space_prefix = spm && f.get_bool("tokenizer.ggml.add_space_prefix", true);

  if (spm) {
    for (int b = 0; b < 256; ++b) im->byte_token[b] = im->find(fmt::format("<0x{:02X}>", b));
    im->spm_word_split = true;
    for (size_t i = 0; i < n && im->spm_word_split; ++i) {
      const std::string& t = im->tokens[i];
      if (im->types[i] != TokenType::Normal && im->types[i] != TokenType::UserDefined) continue;
      for (size_t p = t.find("\xE2\x96\x81", 1); p != std::string::npos;
           p = t.find("\xE2\x96\x81", p + 1)) {
        if (p < 3 || t.compare(p - 3, 3, "\xE2\x96\x81") != 0) im->spm_word_split = false;
      }
    }
  } else if (bert) {
    // An uncased vocabulary (no normal piece holds an upper-case letter) is matched against
    // lowercased, accent-stripped words, as BERT's do_lower_case does; a cased one as written.
    for (size_t i = 0; i < n; ++i) {
      if (im->types[i] != TokenType::Normal) continue;
      const std::string& t = im->tokens[i];
      im->wordpiece_max_piece_bytes = std::max(im->wordpiece_max_piece_bytes, t.size());
      for (size_t pos = 0; pos < t.size() && im->wordpiece_lowercase;) {
        const uint32_t cp = tok::next_codepoint(t, pos);
        if (tok::has_lowercase(cp)) im->wordpiece_lowercase = false;
      }
    }
  } else {
    im->pre_name = f.get_string("tokenizer.ggml.pre", "default");
    const PreInfo* pre = nullptr;
    for (const PreInfo& p : kPres)
      if (p.name == im->pre_name) pre = &p;
    if (!pre) {
      std::string names;
      for (const PreInfo& p : kPres) names += (names.empty() ? "" : ", ") + std::string(p.name);
      fail(fmt::format("tokenizer.ggml.pre '{}' is not supported (supported: {})", im->pre_name,
                       names));
    }
    im->pre = pre->kind;
    im->ignore_merges = pre->ignore_merges;
    im->nfc = pre->nfc;

    for (int b = 0; b < 256; ++b)
      im->byte_char_token[b] = im->find(tok::byte_to_char(static_cast<uint8_t>(b)));

    if (!f.has("tokenizer.ggml.merges")) fail("tokenizer.ggml.merges is missing (gpt2 needs it)");
    const std::vector<std::string> merges = f.get_string_array("tokenizer.ggml.merges");
    im->merges.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      // The separator is the first space after the first byte (a token may be a lone space).
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos)
        fail(fmt::format("tokenizer.ggml.merges[{}] = '{}' is not two tokens separated by a space",
                         r, m));
      const std::string_view ls(m.data(), sp), rs(m.data() + sp + 1, m.size() - sp - 1);
      const int32_t l = im->find(ls), rt = im->find(rs);
      if (l < 0 || rt < 0)
        fail(fmt::format("tokenizer.ggml.merges[{}] = '{}' names '{}', which is not a token", r, m,
                         l < 0 ? ls : rs));
      const int32_t res = im->find(std::string(ls) + std::string(rs));
      if (res < 0)
        fail(fmt::format("tokenizer.ggml.merges[{}] = '{}' makes '{}{}', which is not a token", r,
                         m, ls, rs));
      const uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(rt);
      im->merges.emplace(key, Impl::Merge{static_cast<int32_t>(r), res});  // first rank wins
    }
  }

  im->eog.assign(n, 0);
  for (int32_t id : {im->eos, eot, eom})
    if (id >= 0) im->eog[id] = 1;
  for (size_t i = 0; i < n; ++i) {
    const TokenType t = im->types[i];
    if (t == TokenType::Control &&
        std::find(std::begin(kEogTexts), std::end(kEogTexts), im->tokens[i]) != std::end(kEogTexts))
      im->eog[i] = 1;
    if ((t == TokenType::Control || t == TokenType::Unknown || t == TokenType::UserDefined) &&
        !im->tokens[i].empty())
      im->specials_by_byte[static_cast<uint8_t>(im->tokens[i][0])].push_back(
          static_cast<int32_t>(i));
  }
  for (auto& v : im->specials_by_byte) {
    std::stable_sort(v.begin(), v.end(), [&](int32_t a, int32_t b) {
      return im->tokens[a].size() > im->tokens[b].size();
    });
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(im)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  const Impl& im = *impl_;
  std::string clean;
  if (!tok::is_valid_utf8(text)) {
    clean = tok::sanitize_utf8(text);
    text = clean;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && im.bos >= 0) out.push_back(im.bos);

  auto encode_fragment = [&](std::string_view frag) {
    if (frag.empty()) return;
    if (im.model == TokenizerModel::Llama)
      im.encode_spm(frag, out);
    else if (im.model == TokenizerModel::Bert)
      im.encode_wordpiece(frag, out);
    else
      im.encode_bpe(frag, out);
  };
  size_t start = 0, i = 0;
  while (i < text.size()) {
    int32_t match = -1;
    for (int32_t id : im.specials_by_byte[static_cast<uint8_t>(text[i])]) {
      if (!parse_special && im.types[id] != TokenType::UserDefined) continue;
      if (text.substr(i).starts_with(im.tokens[id])) {
        match = id;  // candidates are sorted longest first
        break;
      }
    }
    if (match < 0) {
      ++i;
      continue;
    }
    encode_fragment(text.substr(start, i - start));
    out.push_back(match);
    i += im.tokens[match].size();
    start = i;
  }
  encode_fragment(text.substr(start));
  if (add_bos && im.model == TokenizerModel::Bert) out.push_back(im.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  const Impl& im = *impl_;
  if (!im.valid(id)) return {};
  const std::string& text = im.tokens[id];
  switch (im.types[id]) {
    case TokenType::Control:
      return render_special ? text : std::string();
    case TokenType::Unknown:
      return render_special ? text : std::string("\xE2\x81\x87");  // ⁇, as SentencePiece
    case TokenType::UserDefined:
      return text;  // stored raw by both converters
    case TokenType::Byte:
      if (text.size() == 6 && text.starts_with("<0x") && text.back() == '>') {
        const unsigned long v = std::strtoul(text.substr(3, 2).c_str(), nullptr, 16);
        return std::string(1, static_cast<char>(v));
      }
      return text;
    default:
      break;
  }
  std::string out;
  if (im.model == TokenizerModel::Llama || im.model == TokenizerModel::Bert) {
    size_t p = 0;
    while (p < text.size()) {
      if (text.compare(p, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        p += 3;
      } else {
        out += text[p++];
      }
    }
    return out;
  }
  size_t p = 0;
  while (p < text.size()) {
    const size_t start = p;
    const uint32_t cp = tok::next_codepoint(text, p);
    const int b = tok::char_to_byte(cp);
    if (b >= 0)
      out += static_cast<char>(b);
    else
      out.append(text, start, p - start);  // not a byte character: keep as is
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (at_start && !piece.empty()) {
      if ((impl_->add_space_prefix || impl_->model == TokenizerModel::Bert) &&
          token_type(id) == TokenType::Normal && piece[0] == ' ')
        piece.erase(0, 1);
      at_start = false;
    }
    out += piece;
  }
  return out;
}

int32_t Tokenizer::n_vocab() const {
  return static_cast<int32_t>(impl_->tokens.size());
}
int32_t Tokenizer::bos() const {
  return impl_->bos;
}
int32_t Tokenizer::eos() const {
  return impl_->eos;
}
int32_t Tokenizer::unk() const {
  return impl_->unk;
}
int32_t Tokenizer::pad() const {
  return impl_->pad;
}
bool Tokenizer::add_bos() const {
  return impl_->add_bos;
}
bool Tokenizer::add_eos() const {
  return impl_->add_eos;
}
bool Tokenizer::add_space_prefix() const {
  return impl_->add_space_prefix;
}
bool Tokenizer::is_eog(int32_t id) const {
  return impl_->valid(id) && impl_->eog[id] != 0;
}
bool Tokenizer::is_control(int32_t id) const {
  return impl_->valid(id) && impl_->types[id] == TokenType::Control;
}
TokenizerModel Tokenizer::model() const {
  return impl_->model;
}
const std::string& Tokenizer::pre() const {
  return impl_->pre_name;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string kEmpty;
  return impl_->valid(id) ? impl_->tokens[id] : kEmpty;
}
TokenType Tokenizer::token_type(int32_t id) const {
  return impl_->valid(id) ? impl_->types[id] : TokenType::Undefined;
}
float Tokenizer::token_score(int32_t id) const {
  return impl_->valid(id) ? impl_->scores[id] : 0.0f;
}
int32_t Tokenizer::find_token(std::string_view text) const {
  return impl_->find(text);
}

}  // namespace engram
