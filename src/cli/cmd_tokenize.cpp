// `engram tokenize -m MODEL (-p TEXT | -f FILE)`: token ids and pieces of a text, printed
// like llama.cpp's llama-tokenize ("  id -> 'piece'"), as an id list (--ids-only) or as JSON.
// --batch-jsonl FILE tokenizes one JSON string per line (or the conformance corpus' objects:
// {"s": text} / {"hex": bytes}) and prints one {"ids": [...]} line each.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/tokenizer.h"

namespace engram::cli {

namespace {

struct TokenizeOptions {
  std::string model, prompt, file, batch;
  bool ids_only = false, no_bos = false, json = false, parse_special = false;
};

// Pieces may be partial UTF-8; show such bytes as \xNN so the line stays printable.
std::string printable(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      out += fmt::format("\\x{:02X}", c);
      ++i;
    } else {
      out.append(s, i, len);
      i += len;
    }
  }
  return out;
}

std::string hex_decode(const std::string& hex, size_t line) {
  if (hex.size() % 2) throw Error(fmt::format("batch line {}: odd-length hex", line));
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

void run_batch(const Tokenizer& tok, const TokenizeOptions& o) {
  std::ifstream in(o.batch, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", o.batch));
  std::string line;
  size_t n = 0;
  const bool bos = tok.add_bos() && !o.no_bos;
  while (std::getline(in, line)) {
    ++n;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}:{}: not JSON: {}", o.batch, n, e.what()));
    }
    std::string text;
    if (j.is_string())
      text = j.get<std::string>();
    else if (j.is_object() && j.contains("s") && j["s"].is_string())
      text = j["s"].get<std::string>();
    else if (j.is_object() && j.contains("hex") && j["hex"].is_string())
      text = hex_decode(j["hex"].get<std::string>(), n);
    else
      throw Error(
          fmt::format("{}:{}: expected a string, {{\"s\": ...}} or {{\"hex\": ...}}", o.batch, n));
    nlohmann::json res;
    res["ids"] = tok.encode(text, bos, o.parse_special);
    fmt::print("{}\n", res.dump());
  }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Show the tokens of a text");
  o->model = default_model_path();
  cmd->add_option("-m,--model", o->model, "GGUF file with a vocabulary (a vocab-only one will do)")
      ->capture_default_str();
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "Text to tokenize");
  auto* f = cmd->add_option("-f,--file", o->file, "Read the text from a file");
  auto* b = cmd->add_option("--batch-jsonl", o->batch, "Tokenize each JSON line of a file");
  p->excludes(f)->excludes(b);
  f->excludes(b);
  cmd->add_flag("--ids-only", o->ids_only, "Print only the list of ids");
  cmd->add_flag("--no-bos", o->no_bos, "Do not add BOS even if the vocabulary asks for it");
  cmd->add_flag("--json", o->json, "Print JSON: {\"ids\": [...], \"pieces\": [...]}");
  cmd->add_flag("--parse-special", o->parse_special,
                "Recognise control tokens such as <|eot_id|> in the text");
  cmd->callback([o, p, f, b]() {
    if (p->count() == 0 && f->count() == 0 && b->count() == 0)
      throw Error("tokenize: give the text with -p TEXT, -f FILE or --batch-jsonl FILE");
    auto file = GgufFile::open(o->model);
    auto tok = Tokenizer::from_gguf(*file);
    if (b->count()) {
      run_batch(*tok, *o);
      return;
    }
    const std::string text = f->count() ? read_text_file(o->file) : o->prompt;
    const std::vector<int32_t> ids =
        tok->encode(text, tok->add_bos() && !o->no_bos, o->parse_special);
    if (o->json) {
      nlohmann::json j;
      j["ids"] = ids;
      nlohmann::json pieces = nlohmann::json::array();
      for (int32_t id : ids) pieces.push_back(tok->token_to_piece(id, true));
      j["pieces"] = pieces;
      // Partial UTF-8 pieces are shown with U+FFFD rather than failing the dump.
      fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else if (o->ids_only) {
      std::string s = "[";
      for (size_t i = 0; i < ids.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", ids[i]);
      fmt::print("{}]\n", s);
    } else {
      for (int32_t id : ids)
        fmt::print("{:6d} -> '{}'\n", id, printable(tok->token_to_piece(id, true)));
    }
  });
}

}  // namespace engram::cli
