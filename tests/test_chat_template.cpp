// Chat templates: the Jinja interpreter's semantics (as @huggingface/jinja has them), the
// built-in templates, choosing a template from a GGUF, and stop strings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <sstream>

#include "chat/jinja.h"
#include "chat/stop_strings.h"
#include "engram/chat_template.h"
#include "engram/error.h"
#include "engram/gguf.h"

namespace engram {
namespace {

std::string render(const std::string& src,
                   const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) {
  return chat::jinja::Template(src).render(vars);
}

std::string error_of(const std::string& src,
                     const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) {
  try {
    render(src, vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Jinja, TextExpressionsAndLiterals) {
  EXPECT_EQ(render("a{{ 1 + 2 }}b{{ 'x' ~ 3 }}{{ \"q\" + 'r' }}"), "a3bx3qr");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ 1 / 2 }} {{ 4 / 2 }}"),
            "3 1 8 0.5 2.0");
  EXPECT_EQ(render("{{ true }} {{ none }} {{ [1, 'a'] }} {{ {'k': none} }}"),
            "true  [1, \"a\"] {\"k\": null}");
  EXPECT_EQ(render("{{ -1 }} {{ 1.5 }} {{ 3.0 }}"), "-1 1.5 3.0");
}

TEST(Jinja, ControlFlowAndLoopVariables) {
  const nlohmann::ordered_json v = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index0 }}{{ x }}{% if loop.first %}F{% elif "
                   "loop.last %}L{% else %}-{% endif %}{% endfor %}",
                   v),
            "0aF1b-2cL");
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ loop.index }}{{ x }}{% endfor %}", v), "1a2c");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(
      render("{% for x in xs %}{% if x == 'b' %}{% break %}{% endif %}{{ x }}{% endfor %}", v),
      "a");
  EXPECT_EQ(render("{% for x in xs[1:] %}{{ x }}{% endfor %}|{% for x in xs[::-1] %}{{ x }}{% "
                   "endfor %}|{{ xs[-1] }}",
                   v),
            "bc|cba|c");
}

TEST(Jinja, WhitespaceControlMatchesTheReference) {
  // trim_blocks and lstrip_blocks are on, as in @huggingface/jinja and transformers.
  EXPECT_EQ(render("  {% if true %}\nyes\n  {% endif %}\nafter"), "yes\nafter");
  EXPECT_EQ(render("a   {{- 'b' -}}   c"), "abc");
  EXPECT_EQ(render("a\n{#- comment -#}\nb"), "ab");
  EXPECT_EQ(render("x\n"), "x");  // one trailing newline is dropped
}

TEST(Jinja, NamespaceSetAndScoping) {
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i "
                   "%}{% endfor %}{{ ns.n }}"),
            "3");
  // A plain set inside a loop does not leak out of it.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(render("{% set block %}in{{ 1 }}{% endset %}[{{ block }}]"), "[in1]");
}

TEST(Jinja, FiltersTestsAndMethods) {
  EXPECT_EQ(render("{{ '  hi \u00a0' | trim }}|{{ 'abc' | length }}|{{ [3, 1] | length }}"),
            "hi|3|2");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }}|{{ ' x  y '.split() }}"),
            "[\"a\", \"b\", \"\", \"c\"]|[\"x\", \"y\"]");
  EXPECT_EQ(render("{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}{{ 'ab'.startswith('a') }}"),
            "HELLOhellotrue");
  // Like the reference, strip() ignores its argument and strips whitespace.
  EXPECT_EQ(render("[{{ '\\n x\\n'.strip('\\n') }}]"), "[x]");
  EXPECT_EQ(render("{{ {'a': [1, 'é']} | tojson }}|{{ 'é' | tojson(ensure_ascii=true) }}"),
            "{\"a\": [1, \"é\"]}|\"\\u00e9\"");
  EXPECT_EQ(render("{{ x is defined }}{{ x is not defined }}{{ none is none }}{{ 'a' is string }}"),
            "falsetruetruetrue");
  EXPECT_EQ(
      render("{{ 'b' in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 'z' not in 'abc' }}"),
      "truetruetruetrue");
  EXPECT_EQ(
      render("{{ d.get('a') }}{{ d.get('z', 'dflt') }}{{ d['a'] }}{{ d.a }}", {{"d", {{"a", 1}}}}),
      "1dflt11");
  EXPECT_EQ(
      render("{{ [1, 2, 3] | join('-') }}|{{ x | default('d') }}|{{ 'a' if false else 'b' }}"),
      "1-2-3|d|b");
  EXPECT_EQ(render("{{ 'a b'.replace(' ', '_') }}{{ 'Tt' | lower }}{{ 'x' * 1 if false else '' }}"),
            "a_btt");
}

TEST(Jinja, MacrosAndRaiseException) {
  EXPECT_EQ(render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}"),
            "1B23");
  EXPECT_NE(error_of("{{ raise_exception('roles must alternate') }}").find("roles must alternate"),
            std::string::npos);
}

TEST(Jinja, UnsupportedConstructsNameThemselvesAndTheirPosition) {
  const std::string e1 = error_of("ok\n{% call foo() %}x{% endcall %}");
  EXPECT_NE(e1.find("unsupported statement 'call'"), std::string::npos) << e1;
  EXPECT_NE(e1.find("line 2, column 4"), std::string::npos) << e1;
  const std::string e2 = error_of("{{ 'x' | wordwrap }}");
  EXPECT_NE(e2.find("unsupported filter 'wordwrap'"), std::string::npos) << e2;
  EXPECT_NE(e2.find("line 1, column 10"), std::string::npos) << e2;
  const std::string e3 = error_of("{{ 1 is divisibleby }}");
  EXPECT_NE(e3.find("unsupported test 'divisibleby'"), std::string::npos) << e3;
  EXPECT_NE(error_of("{% if x %}never closed").find("'if' is never closed"), std::string::npos);
  EXPECT_NE(error_of("{{ 'abc' + x }}").find("undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ foo() }}").find("cannot call 'foo'"), std::string::npos);
}

TEST(Jinja, HostileInputFailsCleanly) {
  EXPECT_THROW(render("{{ " + std::string(5000, '(')), Error);
  EXPECT_THROW(render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), Error);
  EXPECT_THROW(render("{{ 'unterminated"), Error);
  EXPECT_THROW(render("{{"), Error);
  EXPECT_THROW(render("{% for %}"), Error);
}

// Mutated real templates either render or raise engram::Error; nothing else escapes.
TEST(Jinja, MutatedTemplatesNeverCrash) {
  const std::string dir = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/chat/templates/";
  const nlohmann::ordered_json vars = {
      {"messages", {{{"role", "system"}, {"content", "s"}}, {{"role", "user"}, {"content", "u"}}}},
      {"bos_token", "<s>"},
      {"add_generation_prompt", true}};
  std::mt19937 rng(7);
  int rendered = 0, rejected = 0;
  for (const char* name : {"qwen3.jinja", "llama2-chat.jinja", "llama3.jinja"}) {
    std::ifstream in(dir + name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string base = ss.str();
    ASSERT_FALSE(base.empty()) << name;
    const std::string alphabet = "{}%#-()[]'\".:|~+*/ \nabz0";
    for (int i = 0; i < 300; ++i) {
      std::string t = base;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !t.empty(); ++e) {
        const size_t at = rng() % t.size();
        switch (rng() % 3) {
          case 0:
            t[at] = alphabet[rng() % alphabet.size()];
            break;
          case 1:
            t.erase(at, 1 + rng() % 8);
            break;
          default:
            t.insert(at, 1, alphabet[rng() % alphabet.size()]);
        }
      }
      try {
        chat::jinja::Template(t).render(vars);
        ++rendered;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rendered, 0);
  EXPECT_GT(rejected, 0);
}

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", " Hello! "}, {"user", "Bye"}};

TEST(ChatTemplate, BuiltinLlama3) {
  auto t = ChatTemplate::builtin("llama3", "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_EQ(t.render(kConversation, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe "
            "brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_"
            "header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|"
            "end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, BuiltinLlama2AndMistralAndChatml) {
  EXPECT_EQ(
      ChatTemplate::builtin("llama2", "<s>", "</s>").render(kConversation, true),
      "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(ChatTemplate::builtin("mistral", "<s>", "</s>").render(kConversation, true),
            "<s>[INST] Be brief.\n\nHi [/INST] Hello! </s>[INST] Bye [/INST]");
  EXPECT_EQ(ChatTemplate::builtin("chatml", "", "<|im_end|>").render({{"user", "Hi"}}, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(ChatTemplate::builtin("chatml", "", "").render({{"user", "Hi"}}, false),
            "<|im_start|>user\nHi<|im_end|>\n");
  try {
    ChatTemplate::builtin("vicuna", "", "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama3, llama2, mistral, chatml"), std::string::npos);
  }
}

std::vector<uint8_t> vocab_gguf(const std::string& chat_template) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a"});
  w.set_u32("tokenizer.ggml.bos_token_id", 0);
  w.set_u32("tokenizer.ggml.eos_token_id", 1);
  if (!chat_template.empty()) w.set_string("tokenizer.chat_template", chat_template);
  return w.to_bytes();
}

TEST(ChatTemplate, FromGgufUsesTheFileTemplateAndItsTokens) {
  auto bytes = vocab_gguf(
      "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}"
      "{{ eos_token }}{% endfor %}");
  auto f = GgufFile::parse(bytes);
  auto t = ChatTemplate::from_gguf(*f);
  EXPECT_EQ(t.name(), "gguf");
  EXPECT_EQ(t.render({{"user", "x"}}, true), "<s>user:x</s>");
  // A name overrides the file's template.
  EXPECT_EQ(ChatTemplate::from_gguf(*f, "chatml").name(), "chatml");
}

TEST(ChatTemplate, MissingTemplateIsAClearError) {
  auto bytes = vocab_gguf("");
  auto f = GgufFile::parse(bytes, "vocab.gguf");
  try {
    ChatTemplate::from_gguf(*f);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("vocab.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--chat-template"), std::string::npos) << msg;
  }
}

TEST(ChatTemplate, UnparsableKnownTemplateFallsBackToTheBuiltin) {
  auto bytes = vocab_gguf("{% call x() %}<|im_start|>{% endcall %}");
  auto f = GgufFile::parse(bytes);
  auto t = ChatTemplate::from_gguf(*f);
  EXPECT_EQ(t.name(), "chatml");
  EXPECT_NE(t.fallback_reason().find("call"), std::string::npos);
  auto bad = vocab_gguf("{% call x() %}{% endcall %}");
  auto g = GgufFile::parse(bad);
  EXPECT_THROW(ChatTemplate::from_gguf(*g), Error);
}

TEST(StopStrings, HoldsBackPrefixesAndStopsAcrossPieces) {
  chat::StopStrings s({"<|end|>", "STOP"});
  EXPECT_EQ(s.push("Hello <|"), "Hello ");  // "<|" may start "<|end|>"
  EXPECT_EQ(s.push("en"), "");
  EXPECT_EQ(s.push("d|> tail"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "<|end|>");
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.flush(), "");
}

TEST(StopStrings, ReleasesTextThatStopsBeingAPrefix) {
  chat::StopStrings s({"STOP"});
  EXPECT_EQ(s.push("a ST"), "a ");
  EXPECT_EQ(s.push("x"), "STx");
  EXPECT_EQ(s.push("ST"), "");
  EXPECT_EQ(s.flush(), "ST");  // end of generation: the held text was not a stop string
  EXPECT_FALSE(s.stopped());
  s.reset();
  EXPECT_EQ(s.push("xxSTOPyy"), "xx");
  EXPECT_TRUE(s.stopped());
}

TEST(StopStrings, EarliestMatchWinsAndEmptyStopsAreIgnored) {
  chat::StopStrings s({"", "bc", "abcd"});
  EXPECT_EQ(s.push("zabc"), "za");
  EXPECT_EQ(s.matched(), "bc");
  chat::StopStrings none;
  EXPECT_EQ(none.push("anything"), "anything");
}

}  // namespace
}  // namespace engram
