// SentencePiece BPE (tokenizer.ggml.model = llama): start from single characters and keep
// merging the adjacent pair whose concatenation is the highest-scoring piece in the
// vocabulary (leftmost on ties); characters that end up outside the vocabulary become
// their UTF-8 bytes as <0xXX> tokens (byte fallback), or <unk> when those are missing.
#include <queue>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace engram {

namespace {

struct Symbol {
  int prev, next;
  size_t start, len;  // byte range in the escaped text; len 0 once merged away
};

struct Bigram {
  int left, right;
  float score;
  size_t len;  // combined length when queued; stale entries no longer match it
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    if (a.score != b.score) return a.score < b.score;  // max-heap on score
    return a.left > b.left;                            // then leftmost first
  }
};

bool mergeable(TokenType t) {
  return t == TokenType::Normal || t == TokenType::UserDefined;
}

}  // namespace

void Tokenizer::Impl::encode_spm(std::string_view fragment, std::vector<int32_t>& out) const {
  // Spaces become U+2581; the leading one mirrors SentencePiece's add_dummy_prefix.
  std::string text;
  text.reserve(fragment.size() + 3);
  if (add_space_prefix) text += "\xE2\x96\x81";
  for (char c : fragment) {
    if (c == ' ')
      text += "\xE2\x96\x81";
    else
      text += c;
  }
  if (!spm_word_split) {
    encode_spm_word(text, out);
    return;
  }
  // No piece has U+2581 after another character, so no merge crosses the start of a
  // "▁word" that follows a non-space: merging each such word alone gives the same result
  // with small queues (one queue over a long text is several times slower).
  size_t start = 0;
  for (size_t i = 3; i + 3 <= text.size(); ++i) {
    if (text.compare(i, 3, "\xE2\x96\x81") == 0 && text.compare(i - 3, 3, "\xE2\x96\x81") != 0) {
      encode_spm_word(std::string_view(text).substr(start, i - start), out);
      start = i;
    }
  }
  encode_spm_word(std::string_view(text).substr(start), out);
}

void Tokenizer::Impl::encode_spm_word(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<Symbol> sym;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len =
        std::min(tok::utf8_seq_len(static_cast<unsigned char>(text[pos])), text.size() - pos);
    sym.push_back({static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1, pos, len});
    pos += len;
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view piece(text.data() + sym[left].start, sym[left].len + sym[right].len);
    const int32_t id = find(piece);
    if (id < 0 || !mergeable(types[id])) return;
    queue.push({left, right, scores[id], piece.size()});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int i = 0; i >= 0; i = sym[i].next) {
    const std::string_view piece(text.data() + sym[i].start, sym[i].len);
    const int32_t id = find(piece);
    if (id >= 0 && mergeable(types[id])) {
      out.push_back(id);
      continue;
    }
    bool all_bytes = true;
    for (char c : piece) all_bytes = all_bytes && byte_token[static_cast<uint8_t>(c)] >= 0;
    if (all_bytes) {
      for (char c : piece) out.push_back(byte_token[static_cast<uint8_t>(c)]);
    } else if (unk >= 0) {
      out.push_back(unk);  // as HF does when byte tokens are missing
    }
  }
}

}  // namespace engram
