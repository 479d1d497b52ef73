// Regex -> DFA against a brute-force matcher over the syntax tree, on every string of a small
// alphabet up to a length, plus the errors unsupported syntax must give.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "engram/error.h"
#include "grammar/regex.h"

namespace engram::grammar {
namespace {

// End positions reachable by matching `r` at `pos` of `s` (code points).
std::set<size_t> brute(const RegexPtr& r, const std::u32string& s, size_t pos) {
  using K = RegexNode::Kind;
  switch (r->kind) {
    case K::Empty:
      return {pos};
    case K::Set:
      if (pos < s.size() && r->set.contains(s[pos])) return {pos + 1};
      return {};
    case K::Bytes: {
      for (size_t i = 0; i < r->bytes.size(); ++i) {
        if (pos + i >= s.size() || s[pos + i] != static_cast<unsigned char>(r->bytes[i])) return {};
      }
      return {pos + r->bytes.size()};
    }
    case K::Concat: {
      std::set<size_t> cur = {pos};
      for (auto& k : r->kids) {
        std::set<size_t> next;
        for (size_t p : cur) {
          auto e = brute(k, s, p);
          next.insert(e.begin(), e.end());
        }
        cur = next;
      }
      return cur;
    }
    case K::Alt: {
      std::set<size_t> out;
      for (auto& k : r->kids) {
        auto e = brute(k, s, pos);
        out.insert(e.begin(), e.end());
      }
      return out;
    }
    case K::Repeat: {
      std::set<size_t> out, cur = {pos};
      for (uint32_t n = 0;; ++n) {
        if (n >= r->min) out.insert(cur.begin(), cur.end());
        if (n == r->max || cur.empty() || n > s.size() + r->min) break;
        std::set<size_t> next;
        for (size_t p : cur) {
          auto e = brute(r->kids[0], s, p);
          next.insert(e.begin(), e.end());
        }
        cur = next;
      }
      return out;
    }
    default:
      return {};
  }
}

std::string utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

// Every string over `alpha` up to `max_len`, checked against the brute-force matcher.
void check_all(const std::string& pattern, const std::u32string& alpha, size_t max_len,
               bool search) {
  SCOPED_TRACE(pattern);
  const RegexPtr re = anchor(parse_regex(pattern, "test"), search, "test");
  const Dfa d = compile_regex(re, Encoding::Utf8, "test");
  std::vector<std::u32string> layer = {U""};
  size_t checked = 0;
  for (size_t len = 0; len <= max_len; ++len) {
    for (const auto& s : layer) {
      const bool want = brute(re, s, 0).count(s.size()) > 0;
      ASSERT_EQ(d.matches(utf8(s)), want) << "string '" << utf8(s) << "'";
      ++checked;
    }
    std::vector<std::u32string> next;
    for (const auto& s : layer) {
      for (char32_t c : alpha) next.push_back(s + c);
    }
    layer = std::move(next);
  }
  EXPECT_GT(checked, 0u);
}

TEST(GrammarRegex, MatchesLikeBruteForce) {
  const std::u32string ab = U"ab1-";
  for (const char* p : {"a*b", "(a|b)+1?", "a{2,3}", "a{2}b{1,}", "[a-b]+-?[0-9]", "[^a]*",
                        "(?:ab|a)*", "\\d+", "\\w-\\w", "a?b?1?-?", "(a|)(b|1)", "[\\-a]+", "a.b",
                        "(ab){0,2}1", "a+?b", "((a|b){1,2}-){2}"}) {
    check_all(p, ab, 6, false);
  }
}

TEST(GrammarRegex, SearchSemanticsUnlessAnchored) {
  const std::u32string ab = U"ab1";
  check_all("ab", ab, 5, true);
  check_all("^ab", ab, 5, true);
  check_all("b1$", ab, 5, true);
  check_all("^a|b$", ab, 5, true);
  const Dfa d = compile_regex(anchor(parse_regex("b1", "t"), true, "t"), Encoding::Utf8, "t");
  EXPECT_TRUE(d.matches("aab1a"));
  EXPECT_FALSE(d.matches("ab"));
}

TEST(GrammarRegex, UnicodeClassesMatchWholeCharacters) {
  const std::u32string alpha = U"a\u00e9\u4e2d\U0001F600";
  check_all("[^a]+", alpha, 4, false);
  check_all("[\u00e0-\u00ff\u4e00-\u9fff]a?", alpha, 3, false);
  check_all(".\\W", alpha, 3, false);
  const Dfa d = compile_regex(parse_regex("\\u00e9{2}", "t"), Encoding::Utf8, "t");
  EXPECT_TRUE(d.matches("\xc3\xa9\xc3\xa9"));
  EXPECT_FALSE(d.matches("\xc3\xa9"));
}

TEST(GrammarRegex, JsonStringEncodingEscapesQuotesAndControls) {
  const RegexPtr re = re_repeat(re_set(CharSet::any()), 0, RegexNode::kUnbounded);
  const Dfa d = compile_regex(re, Encoding::JsonString, "t");
  EXPECT_TRUE(d.matches("plain \\\" \\\\ \\n \\u001f \\u001F"));
  EXPECT_FALSE(d.matches("a\"b"));  // a bare quote ends a JSON string
  EXPECT_FALSE(d.matches("a\nb"));  // raw control characters are not JSON
  EXPECT_FALSE(d.matches("\\q"));   // no such escape
  const Dfa one = compile_regex(re_literal("a\"/"), Encoding::JsonString, "t");
  EXPECT_TRUE(one.matches("a\\\"/"));
  EXPECT_TRUE(one.matches("a\\\"\\/"));
  EXPECT_FALSE(one.matches("a\"/"));
}

TEST(GrammarRegex, UnsupportedSyntaxNamesTheOffset) {
  struct Case {
    const char* pattern;
    const char* needle;
  };
  for (const Case& c :
       {Case{"(a)\\1", "backreference"}, Case{"a(?=b)", "lookahead"}, Case{"(?<!a)b", "lookbehind"},
        Case{"\\bword", "word boundary"}, Case{"a**", "nothing to repeat"},
        Case{"(ab", "missing ')'"}, Case{"[a-", "unterminated"}, Case{"a{3,1}", "repetition"},
        Case{"\\p{L}", "property"}}) {
    try {
      Dfa d = compile_regex(anchor(parse_regex(c.pattern, "where"), false, "where"), Encoding::Utf8,
                            "where");
      ADD_FAILURE() << c.pattern << " compiled";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("where"), std::string::npos) << m;
      EXPECT_NE(m.find(c.needle), std::string::npos) << m;
    }
  }
  try {
    anchor(parse_regex("a^b", "where"), true, "where");
    ADD_FAILURE() << "inner anchor accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("anchor"), std::string::npos);
  }
}

TEST(GrammarRegex, HugeRepetitionIsAnErrorNotAHang) {
  try {
    compile_regex(parse_regex("(a|b|c|d)*a(a|b|c|d){40}", "big"), Encoding::Utf8, "big");
    ADD_FAILURE() << "compiled";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
}

TEST(GrammarRegex, DfaOperations) {
  const Dfa a = compile_regex(parse_regex("[ab]*", "t"), Encoding::Utf8, "t");
  const Dfa b = compile_regex(parse_regex("a+b", "t"), Encoding::Utf8, "t");
  const Dfa both = Dfa::intersect(a, Dfa::complement(b), 1000);
  EXPECT_TRUE(
      both.matches("ab"
                   "a"));
  EXPECT_FALSE(both.matches("aab"));
  EXPECT_TRUE(both.matches(""));
  const Dfa ne = a.without_empty();
  EXPECT_FALSE(ne.matches(""));
  EXPECT_TRUE(ne.matches("b"));
  EXPECT_EQ(a.fingerprint(),
            compile_regex(parse_regex("(a|b)*", "t"), Encoding::Utf8, "t").fingerprint());
}

}  // namespace
}  // namespace engram::grammar
