// Byte-level BPE (tokenizer.ggml.model = gpt2): split the text with the pre-tokenizer, spell
// each piece's bytes as GPT-2's byte characters, then repeatedly apply the lowest-ranked
// merge among adjacent pairs (leftmost on ties), as Hugging Face's BPE model does.
#include <queue>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace engram {

namespace tok {

namespace {

struct ByteMap {
  std::array<std::string, 256> chars;
  std::array<int16_t, 512> bytes;  // code point (< 0x200) -> byte, -1 if none
  ByteMap() {
    bytes.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + n++;
      append_utf8(chars[b], cp);
      bytes[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;  // immutable after construction
  return m;
}

}  // namespace

const std::string& byte_to_char(uint8_t b) {
  return byte_map().chars[b];
}

int char_to_byte(uint32_t cp) {
  return cp < 512 ? byte_map().bytes[cp] : -1;
}

}  // namespace tok

namespace {

struct Pair {
  int32_t rank;
  int left, right;
  int32_t left_id, right_id;  // ids when queued; a changed symbol makes the entry stale
  int32_t result;
};

struct PairOrder {
  bool operator()(const Pair& a, const Pair& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;  // min-heap on rank
    return a.left > b.left;                        // then leftmost first
  }
};

}  // namespace

void Tokenizer::Impl::encode_bpe(std::string_view fragment, std::vector<int32_t>& out) const {
  std::string normalized;
  if (nfc) {
    normalized = tok::nfc_normalize(fragment);
    fragment = normalized;
  }
  std::vector<std::string_view> pieces;
  tok::pretokenize(pre, fragment, pieces);

  std::vector<int32_t> ids;
  std::vector<int> prev, next;
  std::string spelled;
  for (std::string_view piece : pieces) {
    if (ignore_merges) {
      spelled.clear();
      for (char c : piece) spelled += tok::byte_to_char(static_cast<uint8_t>(c));
      const int32_t id = find(spelled);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    const int n = static_cast<int>(piece.size());
    ids.resize(n);
    prev.resize(n);
    next.resize(n);
    for (int i = 0; i < n; ++i) {
      ids[i] = byte_char_token[static_cast<uint8_t>(piece[i])];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    std::priority_queue<Pair, std::vector<Pair>, PairOrder> queue;
    auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0 || ids[l] < 0 || ids[r] < 0) return;
      const uint64_t key = (static_cast<uint64_t>(ids[l]) << 32) | static_cast<uint32_t>(ids[r]);
      auto it = merges.find(key);
      if (it != merges.end())
        queue.push({it->second.rank, l, r, ids[l], ids[r], it->second.result});
    };
    for (int i = 0; i + 1 < n; ++i) try_add(i, i + 1);
    while (!queue.empty()) {
      const Pair p = queue.top();
      queue.pop();
      // Merged-away symbols get id -2, so any stale entry fails one of these checks.
      if (next[p.left] != p.right || ids[p.left] != p.left_id || ids[p.right] != p.right_id)
        continue;
      ids[p.left] = p.result;
      ids[p.right] = -2;
      next[p.left] = next[p.right];
      if (next[p.left] >= 0) prev[next[p.left]] = p.left;
      try_add(prev[p.left], p.left);
      try_add(p.left, next[p.left]);
    }
    for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) {
      if (ids[i] >= 0)
        out.push_back(ids[i]);
      else if (unk >= 0)
        out.push_back(unk);  // a byte with no token (incomplete vocabulary)
    }
  }
}

}  // namespace engram
