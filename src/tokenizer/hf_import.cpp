// Hugging Face tokenizer.json -> GGUF tokenizer metadata (see import_hf_tokenizer).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/tokenizer.h"

namespace engram {

namespace {

using Json = nlohmann::json;

// The split regexes of the pre-tokenizers we implement, as tokenizer.json spells them.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

Json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", path.string()));
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
}

// Visits a component and, for "Sequence" components, its children (any list field).
template <typename F>
void visit(const Json& j, const F& fn) {
  if (!j.is_object()) return;
  fn(j);
  for (const char* key : {"normalizers", "pretokenizers", "processors", "decoders"})
    if (j.contains(key) && j[key].is_array())
      for (const Json& c : j[key]) visit(c, fn);
}

// A special-token field of tokenizer_config.json: "text" or {"content": "text", ...}.
std::string token_field(const Json& cfg, const char* key) {
  if (!cfg.contains(key)) return {};
  const Json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return {};
}

bool is_byte_piece(const std::string& t) {
  return t.size() == 6 && t.starts_with("<0x") && t.back() == '>' &&
         std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

}  // namespace

void import_hf_tokenizer(const std::string& dir, GgufWriter& out) {
  namespace fs = std::filesystem;
  const fs::path tj_path = fs::path(dir) / "tokenizer.json";
  const Json tj = read_json(tj_path);
  const std::string src = tj_path.string();
  auto fail = [&](const std::string& msg) -> void { throw Error(src + ": " + msg); };

  Json cfg = Json::object();
  const fs::path cfg_path = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(cfg_path)) cfg = read_json(cfg_path);

  if (!tj.contains("model") || !tj["model"].is_object()) fail("no \"model\" object");
  const Json& model = tj["model"];
  const std::string type = model.value("type", std::string());
  if (type != "BPE") fail(fmt::format("model.type '{}' is not supported (supported: BPE)", type));
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("model.vocab is missing");

  // Tokens by id: the model vocabulary, then the added tokens (which may extend it).
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<bool> present;
  auto put = [&](const std::string& text, int64_t id, int32_t t) {
    if (id < 0 || id > 10'000'000)
      fail(fmt::format("token '{}' has id {} (out of range)", text, id));
    if (static_cast<size_t>(id) >= tokens.size()) {
      tokens.resize(id + 1);
      types.resize(id + 1, 5);
      present.resize(id + 1, false);
    }
    tokens[id] = text;
    types[id] = t;
    present[id] = true;
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) fail(fmt::format("model.vocab['{}'] is not an integer", text));
    put(text, id.get<int64_t>(), 1);
  }
  const size_t n_model = tokens.size();
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const Json& a : tj["added_tokens"]) {
      const std::string content = a.value("content", std::string());
      if (!a.contains("id") || !a["id"].is_number_integer())
        fail(fmt::format("added token '{}' has no integer id", content));
      put(content, a["id"].get<int64_t>(), a.value("special", false) ? 3 : 4);
    }
  }
  for (size_t i = 0; i < tokens.size(); ++i)
    if (!present[i]) tokens[i] = fmt::format("[PAD{}]", i);  // type 5 (unused)

  // SentencePiece-style BPE (Llama-2, Mistral): byte fallback and U+2581 for spaces.
  bool metaspace = false, prepend = false, byte_level = false, nfc = false;
  std::string split_regex;
  auto scan = [&](const Json& c) {
    const std::string t = c.value("type", std::string());
    if (t == "Metaspace") {
      metaspace = true;
      const std::string scheme = c.value("prepend_scheme", std::string("always"));
      prepend = c.value("add_prefix_space", true) && scheme != "never";
    } else if (t == "Prepend" && c.value("prepend", std::string()) == kSpmSpace) {
      prepend = true;
    } else if (t == "Replace" && c.value("content", std::string()) == kSpmSpace) {
      metaspace = true;
    } else if (t == "ByteLevel") {
      byte_level = true;
      if (c.value("use_regex", true) && split_regex.empty()) split_regex = "<gpt-2>";
    } else if (t == "NFC") {
      nfc = true;
    } else if (t == "Split" && c.contains("pattern") && c["pattern"].contains("Regex")) {
      split_regex = c["pattern"]["Regex"].get<std::string>();
    }
  };
  if (tj.contains("normalizer")) visit(tj["normalizer"], scan);
  if (tj.contains("pre_tokenizer")) visit(tj["pre_tokenizer"], scan);
  const bool spm = model.value("byte_fallback", false) || (metaspace && !byte_level);
  if (!spm && !byte_level)
    fail("neither a SentencePiece-style (byte_fallback / U+2581) nor a byte-level BPE vocabulary");

  // Merges: "a b" strings (older files) or ["a", "b"] pairs (tokenizers >= 0.20).
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array()) {
    merges.reserve(model["merges"].size());
    for (const Json& m : model["merges"]) {
      if (m.is_string()) {
        merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        fail(fmt::format("model.merges[{}] is neither \"a b\" nor [\"a\", \"b\"]", merges.size()));
      }
    }
  }

  std::unordered_map<std::string, int32_t> ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids.emplace(tokens[i], static_cast<int32_t>(i));
  auto id_of = [&](const std::string& text) -> int64_t {
    auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  };

  const std::string name = fs::path(dir).filename().string();
  out.set_string("general.name", name.empty() ? std::string("tokenizer") : name);

  if (spm) {
    out.set_string("tokenizer.ggml.model", "llama");
    // SentencePiece merges the pair whose result scores highest; HF's BPE merges the pair of
    // lowest rank. Scoring each piece -(rank of the first merge that produces it) makes the
    // two agree. Pieces no merge produces get lower scores than all of those.
    std::vector<float> scores(tokens.size(), 0.0f);
    std::vector<bool> scored(tokens.size(), false);
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      const int64_t id = id_of(m.substr(0, sp) + m.substr(sp + 1));
      if (id < 0) fail(fmt::format("model.merges[{}] = '{}' makes no token", r, m));
      if (!scored[id]) {
        scores[id] = -static_cast<float>(r);
        scored[id] = true;
      }
    }
    for (size_t i = 0; i < n_model; ++i) {
      if (types[i] == 1 && is_byte_piece(tokens[i])) types[i] = 6;
      if (types[i] == 1 && !scored[i])
        scores[i] = -static_cast<float>(merges.size() + i);  // single characters etc.
    }
    out.set_f32_array("tokenizer.ggml.scores", scores);
    out.set_bool("tokenizer.ggml.add_space_prefix", prepend);
  } else {
    out.set_string("tokenizer.ggml.model", "gpt2");
    std::string pre;
    if (split_regex == kLlama3Regex) {
      pre = "llama-bpe";
    } else if (split_regex == kQwen2Regex) {
      pre = "qwen2";
    } else if (split_regex == "<gpt-2>") {
      pre = "gpt-2";
    } else {
      fail(fmt::format("pre_tokenizer regex '{}' is not one we implement (llama-bpe, qwen2, gpt-2)",
                       split_regex));
    }
    if (nfc && pre != "qwen2")
      fail(fmt::format("an NFC normalizer with pre-tokenizer '{}' is not supported", pre));
    out.set_string("tokenizer.ggml.pre", pre);
    out.set_string_array("tokenizer.ggml.merges", merges);
  }

  // Unknown token of the model.
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const int64_t id = id_of(model["unk_token"].get<std::string>());
    if (id >= 0) {
      types[id] = 2;
      out.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(id));
    }
  }

  out.set_string_array("tokenizer.ggml.tokens", tokens);
  out.set_i32_array("tokenizer.ggml.token_type", types);

  // BOS/EOS/PAD from tokenizer_config.json; BOS insertion from it, else from the template
  // post-processor of tokenizer.json (what HF applies with add_special_tokens).
  std::string bos = token_field(cfg, "bos_token");
  bool add_bos = false, add_eos = false, have_add_bos = false;
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    add_bos = cfg["add_bos_token"].get<bool>();
    have_add_bos = true;
  }
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean())
    add_eos = cfg["add_eos_token"].get<bool>();
  if (!have_add_bos && tj.contains("post_processor")) {
    visit(tj["post_processor"], [&](const Json& c) {
      if (c.value("type", std::string()) != "TemplateProcessing" || !c.contains("single")) return;
      const Json& single = c["single"];
      if (single.is_array() && !single.empty() && single[0].contains("SpecialToken")) {
        add_bos = true;
        if (bos.empty()) bos = single[0]["SpecialToken"].value("id", std::string());
      }
    });
  }
  auto set_id = [&](const char* key, const std::string& text, const char* field) {
    if (text.empty()) return;
    const int64_t id = id_of(text);
    if (id < 0)
      throw Error(fmt::format("{}: {} '{}' is not a token", cfg_path.string(), field, text));
    out.set_u32(key, static_cast<uint32_t>(id));
  };
  set_id("tokenizer.ggml.bos_token_id", bos, "bos_token");
  set_id("tokenizer.ggml.eos_token_id", token_field(cfg, "eos_token"), "eos_token");
  set_id("tokenizer.ggml.padding_token_id", token_field(cfg, "pad_token"), "pad_token");
  if (const int64_t eot = id_of("<|eot_id|>"); eot >= 0)
    out.set_u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(eot));
  out.set_bool("tokenizer.ggml.add_bos_token", add_bos);
  out.set_bool("tokenizer.ggml.add_eos_token", add_eos);

  if (cfg.contains("chat_template")) {
    const Json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      out.set_string("tokenizer.chat_template", ct.get<std::string>());
    } else if (ct.is_array()) {  // [{"name": ..., "template": ...}]: keep "default"
      for (const Json& t : ct)
        if (t.value("name", std::string()) == "default" && t.contains("template"))
          out.set_string("tokenizer.chat_template", t["template"].get<std::string>());
    }
  }
}

}  // namespace engram
