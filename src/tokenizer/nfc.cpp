// NFC normalisation (Unicode canonical decomposition, canonical ordering, canonical
// composition), needed because Qwen's tokenizer.json normalises its input with NFC.
#include <algorithm>

#include "tokenizer/nfc_tables.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace engram::tok {

namespace {

// Hangul syllables compose and decompose algorithmically.
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount;
constexpr uint32_t kSCount = kLCount * kNCount;

uint8_t ccc(uint32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = kNfcCombiningClasses + kNfcCombiningClasses_size;
  const auto* it =
      std::lower_bound(kNfcCombiningClasses, end, cp,
                       [](const NfcCombiningClass& e, uint32_t v) { return e.cp < v; });
  return it != end && it->cp == cp ? it->rank : 0;
}

const NfcDecomposition* decomposition(uint32_t cp) {
  if (cp < 0xC0) return nullptr;
  const auto* end = kNfcDecompositions + kNfcDecompositions_size;
  const auto* it = std::lower_bound(kNfcDecompositions, end, cp,
                                    [](const NfcDecomposition& e, uint32_t v) { return e.cp < v; });
  return it != end && it->cp == cp ? it : nullptr;
}

// Composite of a starter and the following character, or 0.
uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto* end = kNfcCompositions + kNfcCompositions_size;
  const auto* it =
      std::lower_bound(kNfcCompositions, end, std::pair(a, b),
                       [](const NfcComposition& e, std::pair<uint32_t, uint32_t> v) {
                         return e.first < v.first || (e.first == v.first && e.second < v.second);
                       });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

// Whether cp is the second character of some composition (a few of those are starters,
// e.g. Indic vowel length marks, so the combining class alone does not reveal them).
bool is_composition_second(uint32_t cp) {
  static const std::vector<uint32_t> seconds = [] {
    std::vector<uint32_t> v;
    for (size_t i = 0; i < kNfcCompositions_size; ++i) v.push_back(kNfcCompositions[i].second);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  return std::binary_search(seconds.begin(), seconds.end(), cp);
}

bool may_change(uint32_t cp) {
  if (cp < 0x300) return cp >= 0xC0 && decomposition(cp) != nullptr;
  // Hangul jamo and syllables may compose; the rest matters only if it (de)composes or moves.
  return (cp >= kLBase && cp < 0x1200) || (cp >= kSBase && cp < kSBase + kSCount) ||
         decomposition(cp) != nullptr || ccc(cp) != 0 || is_composition_second(cp);
}

}  // namespace

std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps) {
  // 1. Full canonical decomposition.
  std::vector<uint32_t> d;
  d.reserve(cps.size() + 8);
  for (uint32_t cp : cps) {
    if (cp >= kSBase && cp < kSBase + kSCount) {
      const uint32_t s = cp - kSBase;
      d.push_back(kLBase + s / kNCount);
      d.push_back(kVBase + (s % kNCount) / kTCount);
      if (s % kTCount) d.push_back(kTBase + s % kTCount);
    } else if (const NfcDecomposition* e = decomposition(cp)) {
      d.insert(d.end(), kNfcDecompositionData + e->offset,
               kNfcDecompositionData + e->offset + e->length);
    } else {
      d.push_back(cp);
    }
  }
  // 2. Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (ccc(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && ccc(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](uint32_t a, uint32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  return d;
}

std::string nfc_normalize(std::string_view text) {
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  bool change = false;
  for (size_t pos = 0; pos < text.size();) {
    const uint32_t cp = next_codepoint(text, pos);
    change = change || may_change(cp);
    cps.push_back(cp);
  }
  if (!change) return std::string(text);  // the common case: nothing to do

  std::vector<uint32_t> d = nfd(cps);
  // 3. Canonical composition: join each character to the last starter unless blocked.
  std::vector<uint32_t> c;
  c.reserve(d.size());
  size_t starter = SIZE_MAX;
  int last_ccc = -1;  // class of the last character appended after the starter
  for (uint32_t cp : d) {
    const int cc = ccc(cp);
    if (starter != SIZE_MAX) {
      const bool blocked = last_ccc != -1 && (last_ccc == 0 || last_ccc >= cc);
      if (!blocked) {
        if (const uint32_t comp = compose(c[starter], cp)) {
          c[starter] = comp;
          continue;
        }
      }
    }
    if (cc == 0) {
      starter = c.size();
      last_ccc = -1;
    } else {
      last_ccc = cc;
    }
    c.push_back(cp);
  }
  std::string out;
  out.reserve(text.size() + 8);
  for (uint32_t cp : c) append_utf8(out, cp);
  return out;
}

}  // namespace engram::tok
