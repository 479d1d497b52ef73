// The grammar engine: parser acceptance against hand-written cases (JSON Schema, GBNF,
// regex), token masks against a brute-force scan of small vocabularies, and bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/grammar.h"
#include "engram/sampler.h"
#include "engram/tokenizer.h"
#include "grammar/regex.h"

namespace engram {
namespace {

// A vocabulary of the 256 single bytes plus an end-of-generation token (id 256).
std::shared_ptr<GrammarVocab> byte_vocab() {
  static std::shared_ptr<GrammarVocab> v = [] {
    std::vector<std::string> pieces;
    for (int b = 0; b < 256; ++b) pieces.push_back(std::string(1, static_cast<char>(b)));
    pieces.push_back("");
    return std::make_shared<GrammarVocab>(pieces, std::vector<int32_t>{256});
  }();
  return v;
}

bool accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g, byte_vocab());
  for (unsigned char c : text) {
    if (!m.accept(c)) return false;
  }
  return m.accepting();
}

std::shared_ptr<const Grammar> schema(const std::string& s) {
  return Grammar::from_json_schema(s);
}

void expect_language(const std::shared_ptr<const Grammar>& g, const std::vector<std::string>& yes,
                     const std::vector<std::string>& no) {
  for (const auto& s : yes) EXPECT_TRUE(accepts(g, s)) << "should accept: " << s;
  for (const auto& s : no) EXPECT_FALSE(accepts(g, s)) << "should refuse: " << s;
}

TEST(GrammarJsonSchema, ObjectsWithRequiredAndOptionalProperties) {
  auto g = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},
                     "required":["a"],"additionalProperties":false})");
  expect_language(g,
                  {R"({"a": 1})", R"({"a": -20, "b": "x"})", R"({"a":1,"b":""})", "{ \"a\" : 0 }",
                   R"({"b": "x", "a": 1})"},
                  {R"({})", R"({"b": "x"})", R"({"a": 1.5})", R"({"a": 1, "c": 2})", R"({"a": 01})",
                   R"({"a": 1,})", R"({"a": 1, "a": 2})"});
}

TEST(GrammarJsonSchema, RequiredPropertiesInAnyOrderEachOnce) {
  auto g =
      schema(R"({"properties":{"x":{"type":"integer"},"y":{"type":"integer"},"z":{"type":"null"},
      "w":{"type":"string"}},"required":["y","x","w"],"additionalProperties":false})");
  expect_language(g,
                  {R"({"x": 1, "y": 2, "w": ""})", R"({"w": "", "y": 2, "x": 1})",
                   R"({"z": null, "y": 2, "z": null, "x": 1, "w": "a"})"},
                  {R"({"x": 1, "y": 2})", R"({"y": 2, "y": 3, "x": 1, "w": ""})",
                   R"({"x": 1, "y": 2, "w": "", "z": 3})"});
}

TEST(GrammarJsonSchema, AdditionalPropertiesNeverSpellAListedName) {
  auto g = schema(R"({"type":"object","properties":{"a":{"type":"integer"}}})");
  expect_language(g, {R"({"a": 1, "z": [true, null, {"q": "w"}]})", R"({"z": 1, "a": 2})", R"({})"},
                  {R"({"a": "text"})", R"({"z": 1, "a": "text"})"});
}

TEST(GrammarJsonSchema, ArraysEnumsConstAndUnions) {
  auto g =
      schema(R"({"type":"array","items":{"enum":["x","y",3,null]},"minItems":1,"maxItems":3})");
  expect_language(g, {R"(["x"])", R"(["y", 3, null])"},
                  {R"([])", R"(["z"])", R"(["x","x","x","x"])"});
  auto u = schema(R"({"type":["string","null"],"maxLength":3})");
  expect_language(u, {R"("abc")", "null", R"("")", R"("\"\"")"}, {R"("abcd")", "1"});
  auto c = schema(R"({"const":{"k":[1,2]}})");
  expect_language(c, {R"({"k": [1, 2]})", R"({"k":[1,2]})"}, {R"({"k": [2, 1]})"});
  auto p = schema(R"({"prefixItems":[{"type":"integer"},{"type":"string"}],"items":false})");
  expect_language(p, {"[1, \"a\"]", "[1]", "[]"}, {"[\"a\"]", "[1, \"a\", 2]"});
}

TEST(GrammarJsonSchema, RecursiveRefsAndCombinators) {
  auto g = schema(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
      "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"],
      "additionalProperties":false}},"$ref":"#/$defs/node"})");
  expect_language(g, {R"({"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]})"},
                  {R"({"v": 1, "kids": [{"w": 2}]})"});
  auto a = schema(R"({"anyOf":[{"type":"integer","minimum":10},{"type":"boolean"}]})");
  expect_language(a, {"10", "999", "true"}, {"9", "-10", "\"x\""});
  auto all =
      schema(R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},
      {"properties":{"b":{"type":"string"}},"required":["b"]}]})");
  expect_language(all, {R"({"a": 1, "b": "x"})"}, {R"({"a": 1})", R"({"b": "x"})"});
}

TEST(GrammarJsonSchema, StringsPatternsFormatsAndNumbers) {
  auto p = schema(R"({"type":"string","pattern":"^[a-z]+-\\d{2}$"})");
  expect_language(p, {R"("ab-12")"}, {R"("ab-1")", R"("AB-12")"});
  auto s = schema(R"({"type":"string","pattern":"x"})");  // unanchored: contains x
  expect_language(s, {R"("axb")", R"("x")"}, {R"("ab")"});
  auto d = schema(R"({"type":"string","format":"date"})");
  expect_language(d, {R"("2024-02-29")", R"("2000-02-29")"},
                  {R"("2024-13-01")", R"("yesterday")", R"("2023-02-29")", R"("2024-04-31")",
                   R"("1900-02-29")"});
  auto e = schema(R"({"type":"string","format":"email"})");
  expect_language(
      e, {R"("a.b+c@ex-ample.co")", R"("x_y@a.b.c")"},
      {R"("x@.")", R"("a,b@c.d")", R"("a@b")", R"("a..b@c.d")", R"(".a@c.d")", R"("a@-c.d")"});
  auto n = schema(R"({"type":"number","minimum":0,"maximum":100})");
  expect_language(n, {"0", "100", "99.5", "100.0", "3"}, {"-1", "100.5", "101", "-0.5"});
  auto i = schema(R"({"type":"integer","exclusiveMinimum":-5,"maximum":250})");
  expect_language(i, {"-4", "0", "250", "199"}, {"-5", "251", "1000", "2.5"});
  auto l = schema(R"({"type":"string","minLength":2,"maxLength":40000})");
  expect_language(l, {R"("ab")", R"("\u00e9\u00e9")", "\"" + std::string(500, 'z') + "\""},
                  {R"("a")", R"("")"});
}

TEST(GrammarJsonSchema, UnsupportedKeywordsNameKeywordAndPath) {
  struct Case {
    const char* schema;
    const char* path;
    const char* keyword;
  };
  for (const Case& c :
       {Case{R"({"properties":{"a":{"not":{"type":"string"}}}})", "#/properties/a/not", "not"},
        Case{R"({"type":"array","items":{"type":"integer"},"uniqueItems":true})", "#/uniqueItems",
             "uniqueItems"},
        Case{R"({"type":"number","multipleOf":0.5})", "#/multipleOf", "multipleOf"},
        Case{R"({"if":{"type":"string"},"then":{"minLength":1}})", "#/if", "if"},
        Case{R"({"$ref":"http://example.com/s.json"})", "#", "not local"},
        Case{R"({"type":"string","pattern":"(a)\\1"})", "#/pattern", "backreference"},
        Case{R"({"type":"strin"})", "#/type", "strin"}}) {
    try {
      schema(c.schema);
      ADD_FAILURE() << c.schema << " compiled";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(c.path), std::string::npos) << m;
      EXPECT_NE(m.find(c.keyword), std::string::npos) << m;
    }
  }
  EXPECT_THROW(schema("{\"type\": "), Error);
  EXPECT_THROW(schema(R"({"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})"), Error);
}

TEST(GrammarGbnf, ArithmeticWithLeftRecursion) {
  // Left-recursive, as people write expressions.
  auto g = Grammar::from_gbnf(
      "root   ::= expr\n"
      "expr   ::= expr (\"+\" | \"-\") term | term\n"
      "term   ::= term (\"*\" | \"/\") factor | factor\n"
      "factor ::= num | \"(\" expr \")\"\n"
      "num    ::= [0-9]+\n");
  expect_language(g, {"1", "1+2*3", "(1+2)*3-40/5", "((7))"}, {"", "1+", "(1", "1++2", "a"});
}

TEST(GrammarGbnf, FixtureFilesCompileAndConstrain) {
  auto read = [](const std::string& name) {
    std::ifstream in(std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/grammar/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_FALSE(ss.str().empty()) << name;
    return ss.str();
  };
  auto json = Grammar::from_gbnf(read("json.gbnf"));
  expect_language(json, {R"({"a": [1, 2.5, "x\n", true, null], "b": {}})", "[]", "-3e5"},
                  {R"({"a" 1})", "[1,]", "tru"});
  auto chess = Grammar::from_gbnf(read("chess.gbnf"));
  expect_language(chess, {"1. e4 e5 2. Nf3 Nc6 3. Bb5 a6", "1. d4 d5 2. c4 dxc4 3. O-O"},
                  {"1. e9", "e4 e5", "1. Nf3 Nc6 3."});
  auto arith = Grammar::from_gbnf(read("arithmetic.gbnf"));
  expect_language(arith, {"2 * (3 + 4)", "10/5-1"}, {"2 * ", "(1"});
}

TEST(GrammarGbnf, RepetitionsClassesAndEscapes) {
  auto g = Grammar::from_gbnf("root ::= [a-c]{2,3} \"\\x21\"? [^0-9\\n]* (\"-\" .){1,}\n");
  expect_language(g, {"ab-x", "abc!zz-9-\xc3\xa9"}, {"a-x", "abcd1-x", "ab1-x", "ab"});
}

TEST(GrammarGbnf, BadInputNamesLineAndColumn) {
  struct Case {
    const char* text;
    const char* needle;
  };
  for (const Case& c :
       {Case{"root ::= foo\n", "undefined rule 'foo'"}, Case{"root ::= \"a\n", "line 1"},
        Case{"root := \"a\"\n", "'::='"}, Case{"root ::= [a-\n", "line 1"},
        Case{"item ::= \"a\"\n", "'root'"}, Case{"root ::= a\na ::= \"x\" a\n", "empty"},
        Case{"root ::= \"a\"{5,2}\n", "max < min"},
        Case{"root ::= \"a\"\n\nroot ::= \"b\"\n", "line 3"}}) {
    try {
      Grammar::from_gbnf(c.text);
      ADD_FAILURE() << c.text << " compiled";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
    }
  }
}

TEST(GrammarRegexFrontEnd, WholeOutputMatch) {
  auto g = Grammar::from_regex("\\d{4}-\\d{2}-\\d{2}");
  expect_language(g, {"2024-01-31"}, {"2024-01-3", "x2024-01-31", "2024-01-311"});
  EXPECT_THROW(Grammar::from_regex("(?=a)"), Error);
}

// ---- masks against brute force ----

// A small vocabulary: every single character of `alpha` plus random strings over it.
std::vector<std::string> small_vocab(const std::string& alpha, int n_multi, uint32_t seed) {
  std::vector<std::string> v;
  for (char c : alpha) v.push_back(std::string(1, c));
  std::mt19937 rng(seed);
  for (int i = 0; i < n_multi; ++i) {
    std::string s;
    const int len = 2 + static_cast<int>(rng() % 5);
    for (int k = 0; k < len; ++k) s += alpha[rng() % alpha.size()];
    v.push_back(s);
  }
  v.push_back("");  // the EOG token
  return v;
}

// Walks `text` in greedy longest-match tokens; at every step the mask must equal the
// token-by-token check (allows(), which steps the parser over the bytes with no masks).
void check_masks(const std::shared_ptr<const Grammar>& g, const std::vector<std::string>& pieces,
                 const std::string& text) {
  const int32_t eog = static_cast<int32_t>(pieces.size() - 1);
  auto vocab = std::make_shared<GrammarVocab>(pieces, std::vector<int32_t>{eog});
  GrammarMatcher m(g, vocab);
  std::vector<uint64_t> bits;
  size_t pos = 0, steps = 0, allowed_total = 0;
  for (;;) {
    m.fill_mask(bits);
    for (int32_t t = 0; t < static_cast<int32_t>(pieces.size()); ++t) {
      const bool in_mask = (bits[t >> 6] >> (t & 63)) & 1;
      ASSERT_EQ(in_mask, m.allows(t))
          << "token '" << pieces[t] << "' after '" << text.substr(0, pos) << "'";
      allowed_total += in_mask;
    }
    ++steps;
    if (pos == text.size()) break;
    int32_t best = -1;
    for (int32_t t = 0; t < eog; ++t) {
      if (text.compare(pos, pieces[t].size(), pieces[t]) == 0 &&
          (best < 0 || pieces[t].size() > pieces[best].size()) && m.allows(t)) {
        best = t;
      }
    }
    ASSERT_GE(best, 0) << "no token continues '" << text.substr(0, pos) << "'";
    ASSERT_TRUE(m.accept(best));
    pos += pieces[best].size();
  }
  EXPECT_TRUE(m.accepting());
  EXPECT_TRUE((bits[eog >> 6] >> (eog & 63)) & 1);
  EXPECT_GT(allowed_total, steps);  // the masks are not trivially empty
}

TEST(GrammarMask, JsonSchemaMasksEqualBruteForce) {
  const std::string alpha = "{}[]\":, ab1-.\\e";
  auto pieces = small_vocab(alpha, 400, 7);
  for (const char* w : {"\": ", "\", \"", "{\"", "\"}", "\"a\": ", ", ", "1, ", "}, {"})
    pieces.insert(pieces.end() - 1, w);
  auto g = schema(R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"number"}},
      "b":{"type":"string","maxLength":5},"ab":{"type":"object"}},"required":["a"]})");
  check_masks(g, pieces, R"({"a": [1, -1.1e1, 11], "b": "ab\\e", "ab": {"a": {}, "b": [1, "a"]}})");
  check_masks(g, pieces, R"({"a": []})");
}

TEST(GrammarMask, RegexMasksEqualDfaScan) {
  // An independent oracle: the DFA run over prefix + token.
  const std::string pattern = "(ab|b1)*-?[0-9a]{1,3}";
  auto g = Grammar::from_regex(pattern);
  const auto dfa =
      grammar::compile_regex(grammar::anchor(grammar::parse_regex(pattern, "t"), false, "t"),
                             grammar::Encoding::Utf8, "t");
  auto pieces = small_vocab("ab1-09", 300, 11);
  const int32_t eog = static_cast<int32_t>(pieces.size() - 1);
  auto vocab = std::make_shared<GrammarVocab>(pieces, std::vector<int32_t>{eog});
  GrammarMatcher m(g, vocab);
  std::vector<uint64_t> bits;
  std::string prefix;
  for (const char* tok : {"ab", "b1", "ab", "-", "0", "a"}) {
    m.fill_mask(bits);
    for (int32_t t = 0; t < eog; ++t) {
      uint32_t st = 0;
      for (char c : prefix + pieces[t]) {
        st = dfa.next(st, static_cast<uint8_t>(c));
        if (st == grammar::Dfa::kDead) break;
      }
      const bool viable = st != grammar::Dfa::kDead;
      ASSERT_EQ(((bits[t >> 6] >> (t & 63)) & 1) != 0, viable) << prefix << " + " << pieces[t];
    }
    const bool eog_ok = (bits[eog >> 6] >> (eog & 63)) & 1;
    EXPECT_EQ(eog_ok, dfa.matches(prefix));
    int32_t id = -1;
    for (int32_t t = 0; t < eog; ++t) {
      if (pieces[t] == tok) id = t;
    }
    ASSERT_GE(id, 0);
    ASSERT_TRUE(m.accept(id));
    prefix += tok;
  }
}

TEST(GrammarMask, GbnfMasksEqualBruteForce) {
  auto g = Grammar::from_gbnf(
      "root ::= item (\",\" \" \"? item)*\nitem ::= \"[\" root? \"]\" | [a-c]+\n");
  auto pieces = small_vocab("[],  abc", 300, 5);
  check_masks(g, pieces, "[a, [b,c], []],abc, [[a]]");
}

// ---- no dead ends ----

// The vocabulary of a golden model (256 tokens: 245 byte-fallback tokens, 8 word pieces,
// control tokens), where every multi-byte character is spelt by byte tokens.
std::shared_ptr<GrammarVocab> golden_vocab(const char* model) {
  auto file = GgufFile::open(std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/" + model);
  auto tok = Tokenizer::from_gguf(*file);
  return std::make_shared<GrammarVocab>(*tok);
}

TEST(GrammarMatcher, MaxLengthCountsACharacterWhenItBegins) {
  // Regression: the count went up where a character ended, so after three characters the
  // lead byte of a fourth was allowed under maxLength 3, and then nothing was (not even '"').
  auto g = schema(R"({"type":"string","maxLength":3})");
  auto v = byte_vocab();
  GrammarMatcher m(g, v);
  for (unsigned char c : std::string("\"\xed\x8c\x97\xe0\xbb\xac-")) ASSERT_TRUE(m.accept(c));
  EXPECT_FALSE(m.allows(0xed));  // a 4th character may not begin
  EXPECT_FALSE(m.allows('a'));
  EXPECT_TRUE(m.allows('"'));
  std::vector<uint64_t> bits;
  m.fill_mask(bits);
  int n = 0;
  for (uint64_t w : bits) n += __builtin_popcountll(w);
  EXPECT_EQ(n, 1);
  // Inside a character the count already holds it: its continuation bytes stay allowed.
  GrammarMatcher m2(g, v);
  for (unsigned char c : std::string("\"ab\xed\x8c")) ASSERT_TRUE(m2.accept(c));
  EXPECT_TRUE(m2.allows(0x97));
  EXPECT_FALSE(m2.allows('"'));
  // Escapes count as one character each; a surrogate pair is one character, a lone surrogate
  // none (JSON Schema counts code points).
  auto one = schema(R"({"type":"string","minLength":1,"maxLength":1})");
  expect_language(one, {R"("\ud83d\ude00")", R"("\n")", R"("\u00e9")", "\"\xf0\x9f\x98\x80\""},
                  {R"("\ud83d")", R"("\ude00")", R"("\ud83d\ude00a")", R"("")"});
  auto two = schema(R"({"type":"string","minLength":2})");
  expect_language(two, {R"("\ud83d\ude00a")", R"("\t\t")"}, {R"("\ud83d\ude00")"});
}

// Random walks over the masks of a byte-token vocabulary: at every step the mask equals the
// token-by-token check, and it is empty only once the output is complete (finished()).
void walk_never_stuck(const std::shared_ptr<const Grammar>& g,
                      const std::shared_ptr<GrammarVocab>& v, int seeds, const std::string& what) {
  int ended = 0;
  for (int seed = 0; seed < seeds; ++seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    GrammarMatcher m(g, v);
    std::vector<uint64_t> bits;
    std::vector<int32_t> allowed;
    size_t n_tokens = 0;
    for (int step = 0; step < 120; ++step) {
      m.fill_mask(bits);
      allowed.clear();
      for (int32_t t = 0; t < v->n_vocab(); ++t) {
        const bool in_mask = (bits[t >> 6] >> (t & 63)) & 1;
        ASSERT_EQ(in_mask, m.allows(t)) << what << " seed " << seed << " token " << t;
        if (in_mask) allowed.push_back(t);
      }
      if (allowed.empty()) {
        ASSERT_TRUE(m.finished()) << what << " seed " << seed << ": empty mask after " << n_tokens
                                  << " tokens, output incomplete";
        ++ended;
        break;
      }
      const int32_t t = allowed[rng() % allowed.size()];
      ASSERT_TRUE(m.accept(t)) << what << " seed " << seed;
      ++n_tokens;
      if (m.finished()) {
        ++ended;
        break;
      }
    }
  }
  EXPECT_GT(ended, 0) << what;  // the walks do reach the end of the grammar
}

TEST(GrammarMatcher, RandomWalksNeverReachAnEmptyMaskBeforeTheEnd) {
  // Character counts, patterns, formats and enums with non-ASCII text, on vocabularies where
  // characters are spelt byte by byte (llama) and by byte-level BPE pieces (qwen2).
  const char* schemas[] = {
      R"({"type":"string","maxLength":3})",
      R"({"type":"string","minLength":2,"maxLength":4})",
      R"({"type":"string","maxLength":0})",
      R"({"type":"string","pattern":"^[a-z\u00e9]{2,4}$"})",
      R"({"type":"string","pattern":"ab","maxLength":4})",
      R"({"type":"string","pattern":"[\u4e00-\u9fff]","maxLength":3})",
      R"({"type":"string","format":"email","maxLength":12})",
      R"({"type":"string","format":"date-time"})",
      R"({"enum":["h\u00e9llo","\u65e5\u672c\u8a9e","\ud83c\udf89 party","a\"b","x\\y","\u0001"]})",
      R"({"anyOf":[{"type":"string","maxLength":2},{"type":"integer","minimum":-5,"maximum":5}]})",
      R"({"type":"object","properties":{"a":{"type":"string","maxLength":2},
          "b":{"enum":["\u00e9",1]}},"additionalProperties":false})",
      R"({"type":"array","items":{"type":"string","minLength":1,"maxLength":2},"maxItems":2})",
  };
  for (const char* model : {"llama_f32.gguf", "qwen2_f32.gguf"}) {
    auto v = golden_vocab(model);
    for (const char* s : schemas) {
      std::shared_ptr<const Grammar> g;
      try {
        g = schema(s);
      } catch (const Error& e) {
        ADD_FAILURE() << s << ": " << e.what();
        continue;
      }
      walk_never_stuck(g, v, 40, std::string(model) + " " + s);
    }
  }
}

TEST(GrammarMatcher, EogOnlyInAcceptingStateAndFinished) {
  auto g = Grammar::from_regex("ab?");
  auto v = byte_vocab();
  GrammarMatcher m(g, v);
  EXPECT_FALSE(m.allows(256));
  EXPECT_FALSE(m.accept(256));
  EXPECT_TRUE(m.accept('a'));
  EXPECT_TRUE(m.allows(256));
  EXPECT_FALSE(m.finished());  // 'b' may follow
  EXPECT_FALSE(m.accept('c'));
  EXPECT_TRUE(m.accept('b'));
  EXPECT_TRUE(m.finished());
  EXPECT_TRUE(m.accept(256));
  EXPECT_FALSE(m.allows('a'));
}

TEST(GrammarSampler, ConstrainedGenerationsMatchAndEndOnlyWhenComplete) {
  // Random logits over the byte vocabulary: every seeded generation must spell a complete
  // sentence of the grammar, with EOG drawn only where the output is complete.
  auto g = Grammar::from_json_schema(
      R"({"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":99},
          "tag":{"enum":["a","b"]}},"required":["n","tag"],"additionalProperties":false})");
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> logits(257);
  for (uint64_t seed = 0; seed < 12; ++seed) {
    SamplerParams p;
    p.seed = seed;
    p.temperature = seed % 3 == 0 ? 0.0f : 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    Sampler s(p);
    auto m = std::make_shared<GrammarMatcher>(g, byte_vocab());
    s.set_grammar(m);
    std::string out;
    bool ended = false;
    for (int step = 0; step < 400 && !ended; ++step) {
      for (float& l : logits) l = u(rng);
      const int32_t t = s.sample(logits);
      if (t == 256) {
        ended = true;
      } else {
        out += static_cast<char>(t);
      }
    }
    EXPECT_TRUE(ended) << out;
    EXPECT_TRUE(accepts(g, out)) << out;
    EXPECT_TRUE(m->finished());
  }
}

}  // namespace
}  // namespace engram
