// The texts of the memory protocol (docs/MODEL.md): the memory block, citations, the explicit
// controls, the extraction transcript and reply, the Add/Merge prompt and reply. Pure functions
// of text, so that every rule here is tested without a model.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "engram/error.h"
#include "engram/memory_session.h"

namespace engram::agent_memory {
namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80;
}

// Strips `prefix` (lower case) from the front of `s` when `lower_s` starts with it as whole
// words (followed by a space, a colon or the end).
bool strip_words(std::string_view& s, std::string_view& lower_s, std::string_view prefix) {
  if (lower_s.substr(0, prefix.size()) != prefix) return false;
  if (lower_s.size() > prefix.size() && word_char(lower_s[prefix.size()])) return false;
  s.remove_prefix(prefix.size());
  lower_s.remove_prefix(prefix.size());
  while (!s.empty() && (is_space(s.front()) || s.front() == ':' || s.front() == ',')) {
    s.remove_prefix(1);
    lower_s.remove_prefix(1);
  }
  return true;
}

// Words of a text, lower case: runs of letters, digits and non-ASCII bytes.
std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::string w;
  for (char c : s) {
    if (word_char(c)) {
      w += lower(c);
    } else if (!w.empty()) {
      out.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) out.push_back(std::move(w));
  return out;
}

// Words that say nothing about which memory is meant.
bool stop_word(const std::string& w) {
  static const char* const kStop[] = {
      "a",        "about",  "all",        "also",  "am",     "an",   "and",    "any",  "are",
      "as",       "at",     "be",         "been",  "but",    "by",   "called", "did",  "do",
      "does",     "every",  "everything", "for",   "from",   "had",  "has",    "have", "he",
      "her",      "his",    "i",          "in",    "is",     "it",   "its",    "just", "me",
      "memories", "memory", "mine",       "my",    "myself", "name", "named",  "of",   "on",
      "or",       "our",    "please",     "s",     "said",   "she",  "that",   "the",  "their",
      "them",     "there",  "they",       "this",  "those",  "to",   "told",   "user", "was",
      "we",       "were",   "what",       "which", "who",    "with", "you",    "your", "ll",
      "m",        "ve",     "re",         "d",     "t"};
  for (const char* s : kStop)
    if (w == s) return true;
  return false;
}

// The same word up to a plural: "cat"/"cats", "hobby"/"hobbies".
bool same_word(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto ies = [](const std::string& x, const std::string& y) {
    return x.size() > 3 && x.compare(x.size() - 3, 3, "ies") == 0 && y.size() == x.size() - 2 &&
           y.back() == 'y' && x.compare(0, y.size() - 1, y, 0, y.size() - 1) == 0;
  };
  if (ies(a, b) || ies(b, a)) return true;
  if (a.size() == b.size() + 1 && a.back() == 's' && a.compare(0, b.size(), b) == 0) return true;
  return b.size() == a.size() + 1 && b.back() == 's' && b.compare(0, a.size(), a) == 0;
}

// First person -> third person where it is a plain word swap.
std::string third_person(std::string_view s) {
  struct Swap {
    const char* from;  // lower case, words separated by one space
    const char* to;
  };
  static const Swap kSwaps[] = {{"i am", "User is"},  {"i'm", "User is"},    {"i have", "User has"},
                                {"i've", "User has"}, {"i was", "User was"}, {"my", "User's"},
                                {"mine", "User's"},   {"myself", "User"},    {"me", "the user"},
                                {"i", "User"}};
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const bool at_word_start = i == 0 || !word_char(s[i - 1]);
    bool swapped = false;
    if (at_word_start) {
      for (const Swap& sw : kSwaps) {
        const std::string_view from = sw.from;
        if (i + from.size() > s.size()) continue;
        if (lowercase(s.substr(i, from.size())) != from) continue;
        const size_t end = i + from.size();
        if (end < s.size() && (word_char(s[end]) || s[end] == '\'')) continue;
        out += sw.to;
        i = end;
        swapped = true;
        break;
      }
    }
    if (!swapped) out += s[i++];
  }
  return out;
}

// A statement as a memory: trimmed, capitalised, ending with a full stop.
std::string as_statement(std::string_view s) {
  std::string t(trim(s));
  if (t.empty()) return t;
  t = third_person(t);
  if (std::islower(static_cast<unsigned char>(t[0]))) t[0] = static_cast<char>(std::toupper(t[0]));
  const char last = t.back();
  if (last != '.' && last != '!' && last != '?') t += '.';
  return t;
}

// A citation being held back: 0 undecided, 1 a whole citation, -1 not one.
int classify_citation(const std::string& h, int* number) {
  size_t i = 0;
  if (i < h.size() && h[i] == ' ') ++i;
  if (i == h.size()) return i > 0 ? 0 : -1;
  if (h[i] != '[') return -1;
  ++i;
  int value = 0, digits = 0;
  while (i < h.size() && digits < 2 && std::isdigit(static_cast<unsigned char>(h[i]))) {
    value = value * 10 + (h[i] - '0');
    ++digits;
    ++i;
  }
  if (i == h.size()) return 0;
  if (digits == 0 || h[i] != ']' || value == 0 || i + 1 != h.size()) return -1;
  *number = value;
  return 1;
}

}  // namespace

std::string memory_block(const std::vector<std::string>& summaries) {
  if (summaries.empty()) return std::string(kPlainSystem);
  std::string out(kMemoryHead);
  for (size_t i = 0; i < summaries.size(); ++i) {
    std::string line = summaries[i];
    // One memory, one line: a newline inside a summary would start a line the model reads as
    // another memory.
    for (char& c : line)
      if (c == '\n' || c == '\r') c = ' ';
    out += fmt::format("\n[{}] {}", i + 1, line);
  }
  out += '\n';
  out += kMemoryTail;
  return out;
}

std::string CitationFilter::feed(std::string_view text) {
  std::string out;
  for (char c : text) {
    held_ += c;
    while (!held_.empty()) {
      int number = 0;
      const int r = classify_citation(held_, &number);
      if (r == 0) break;
      if (r == 1) {
        if (std::find(cited_.begin(), cited_.end(), number) == cited_.end())
          cited_.push_back(number);
        held_.clear();
        break;
      }
      out += held_[0];
      held_.erase(0, 1);
    }
  }
  return out;
}

std::string CitationFilter::finish() {
  std::string out;
  out.swap(held_);
  return out;
}

std::string strip_citations(std::string_view reply, std::vector<int>* cited) {
  CitationFilter f;
  std::string out = f.feed(reply);
  out += f.finish();
  if (cited) *cited = f.cited();
  return out;
}

Control parse_control(std::string_view user_text) {
  std::string_view s = trim(user_text);
  const std::string low_owned = lowercase(s);
  std::string_view low = low_owned;
  Control c;
  if (s.empty()) return c;
  // Listing: a few fixed questions, punctuation at the end ignored.
  {
    std::string q = low_owned;
    while (!q.empty() &&
           (q.back() == '?' || q.back() == '.' || q.back() == '!' || is_space(q.back())))
      q.pop_back();
    static const char* const kList[] = {"what do you remember about me",
                                        "what do you know about me",
                                        "what have you remembered about me",
                                        "what do you remember",
                                        "list my memories",
                                        "show my memories",
                                        "list memories",
                                        "show memories"};
    for (const char* p : kList) {
      if (q == p) {
        c.kind = ControlKind::kList;
        return c;
      }
    }
  }
  if (s.back() == '?') return c;  // "remember when ...?" asks, it does not tell
  strip_words(s, low, "please");
  if (strip_words(s, low, "remember")) {
    if (!strip_words(s, low, "that")) strip_words(s, low, "this");
    const std::string text = as_statement(s);
    if (text.empty()) return c;
    c.kind = ControlKind::kRemember;
    c.text = text;
    return c;
  }
  if (strip_words(s, low, "forget")) {
    if (!strip_words(s, low, "that")) strip_words(s, low, "about");
    std::string_view t = trim(s);
    while (!t.empty() && (t.back() == '.' || t.back() == '!')) t.remove_suffix(1);
    if (t.empty()) return c;
    c.kind = ControlKind::kForget;
    c.text = std::string(t);
    return c;
  }
  return c;
}

bool forget_matches(std::string_view request, std::string_view summary) {
  const std::vector<std::string> have = words(summary);
  size_t content = 0;
  for (const std::string& w : words(request)) {
    if (stop_word(w)) continue;
    ++content;
    const bool found = std::any_of(have.begin(), have.end(),
                                   [&](const std::string& h) { return same_word(w, h); });
    if (!found) return false;
  }
  return content > 0;
}

bool forget_touches(std::string_view request, std::string_view text) {
  const std::vector<std::string> have = words(text);
  for (const std::string& w : words(request)) {
    if (stop_word(w)) continue;
    if (std::any_of(have.begin(), have.end(),
                    [&](const std::string& h) { return same_word(w, h); }))
      return true;
  }
  return false;
}

std::string extraction_transcript(const std::vector<TranscriptTurn>& turns) {
  std::string out;
  for (size_t i = 0; i < turns.size(); ++i) {
    if (i) out += '\n';
    std::string text = turns[i].text;
    for (char& c : text)
      if (c == '\n' || c == '\r') c = ' ';
    out += fmt::format("[{}] {}: {}", i, turns[i].role == "user" ? "User" : "Assistant", text);
  }
  return out;
}

std::vector<ExtractedMemory> parse_extraction(std::string_view reply) {
  using json = nlohmann::json;
  const json j = json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error("the extraction reply is not a JSON object");
  auto it = j.find("extracted_memories");
  if (it == j.end() || !it->is_array())
    throw Error("the extraction reply has no extracted_memories array");
  std::vector<ExtractedMemory> out;
  for (const json& m : *it) {
    if (!m.is_object()) throw Error("an extracted memory is not an object");
    auto s = m.find("summary");
    if (s == m.end() || !s->is_string()) throw Error("an extracted memory has no summary string");
    ExtractedMemory e;
    e.summary = std::string(trim(s->get<std::string>()));
    auto r = m.find("reference");
    if (r != m.end() && r->is_array()) {
      for (const json& x : *r)
        if (x.is_number_integer() || x.is_number_unsigned())
          e.reference.push_back(x.get<int64_t>());
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string extraction_schema() {
  // Bounded so that a reply always fits the context: at most 8 memories of 300 characters.
  return R"({"type": "object", "properties": {"extracted_memories": {"type": "array", "maxItems": 8,)"
         R"( "items": {"type": "object", "properties": {"summary": {"type": "string", "minLength": 1,)"
         R"( "maxLength": 300}, "reference": {"type": "array", "maxItems": 8, "items": {"type": "integer",)"
         R"( "minimum": 0, "maximum": 999}}}, "required": ["summary", "reference"],)"
         R"( "additionalProperties": false}}}, "required": ["extracted_memories"],)"
         R"( "additionalProperties": false})";
}

std::string add_merge_prompt(const std::vector<std::string>& existing, std::string_view fresh) {
  std::string out = "Existing memories:";
  for (size_t i = 0; i < existing.size(); ++i) {
    std::string line = existing[i];
    for (char& c : line)
      if (c == '\n' || c == '\r') c = ' ';
    out += fmt::format("\n[{}] {}", i + 1, line);
  }
  out += fmt::format("\nNew memory: {}", fresh);
  return out;
}

AddMergeDecision parse_add_merge(std::string_view reply, size_t n_existing) {
  const std::string_view r = trim(reply);
  AddMergeDecision d;
  if (r == "Add()") return d;
  constexpr std::string_view kOpen = "Merge(";
  constexpr std::string_view kClose = "\")";
  if (r.substr(0, kOpen.size()) != kOpen || r.size() < kOpen.size() + kClose.size() ||
      r.substr(r.size() - kClose.size()) != kClose)
    throw Error(fmt::format("the Add/Merge reply is neither Add() nor Merge(i, \"summary\"): '{}'",
                            r.substr(0, 80)));
  size_t i = kOpen.size();
  size_t index = 0;
  size_t digits = 0;
  while (i < r.size() && std::isdigit(static_cast<unsigned char>(r[i])) && digits < 4) {
    index = index * 10 + static_cast<size_t>(r[i] - '0');
    ++i;
    ++digits;
  }
  if (digits == 0 || r.substr(i, 3) != ", \"")
    throw Error("the Merge reply does not start Merge(i, \"");
  if (index < 1 || index > n_existing)
    throw Error(fmt::format("the Merge reply names memory {}, there are {}", index, n_existing));
  i += 3;
  d.merge = true;
  d.index = index;
  d.summary = std::string(trim(r.substr(i, r.size() - kClose.size() - i)));
  if (d.summary.empty()) throw Error("the Merge reply's summary is empty");
  return d;
}

std::string add_merge_gbnf(size_t n_existing) {
  std::string idx;
  for (size_t i = 1; i <= n_existing; ++i) idx += fmt::format("{}\"{}\"", i > 1 ? " | " : "", i);
  return "root ::= \"Add()\" | \"Merge(\" idx \", \\\"\" text \"\\\")\"\n"
         "idx ::= " +
         idx +
         "\n"
         "text ::= [^\"\\\\\\n]+\n";
}

}  // namespace engram::agent_memory
