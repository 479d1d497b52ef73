// TokenStreamer: incremental decode that never splits a UTF-8 sequence across outputs.
#include "engram/tokenizer.h"
#include "tokenizer/unicode.h"

namespace engram {

namespace {

// Length of the prefix of s that can be emitted now: everything except a trailing sequence
// that is well-formed so far but incomplete.
size_t emittable(const std::string& s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = tok::utf8_seq_len(c);
    if (need <= back) return n;  // complete (or a stray byte that will never complete)
    // Check the bytes seen so far could still begin a valid sequence (decode the prefix).
    size_t pos = n - back;
    std::string probe = s.substr(pos);
    probe.append(need - back, '\x80');  // pad with continuation bytes
    size_t p = 0;
    const uint32_t cp = tok::next_codepoint(probe, p);
    if (cp == tok::kReplacementChar || p != probe.size()) return n;  // already ill-formed
    return pos;
  }
  return n;
}

}  // namespace

std::string TokenStreamer::push(int32_t id) {
  std::string piece = tok_.token_to_piece(id, render_special_);
  if (at_start_ && !piece.empty()) {
    // Same rule as Tokenizer::decode: drop the space the SentencePiece encoder prefixed (or
    // that a WordPiece word-initial piece starts with).
    if ((tok_.add_space_prefix() || tok_.model() == TokenizerModel::Bert) &&
        tok_.token_type(id) == TokenType::Normal && piece[0] == ' ')
      piece.erase(0, 1);
    at_start_ = false;
  }
  pending_ += piece;
  const size_t cut = emittable(pending_);
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string TokenStreamer::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

void TokenStreamer::reset() {
  pending_.clear();
  at_start_ = true;
}

}  // namespace engram
