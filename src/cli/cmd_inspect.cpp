// `engram inspect MODEL`: what a GGUF file holds. A summary a person reads at a glance comes
// first (architecture, hyperparameters, tokenizer, weight totals), then all metadata, then the
// tensor table; `--json` prints the same as one JSON object.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engram/error.h"
#include "engram/gguf.h"

namespace engram::cli {

namespace {

using Json = nlohmann::ordered_json;

struct InspectOptions {
  std::string model;
  bool json = false;
  bool full = false;
};

std::string human_bytes(uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string human_count(uint64_t n) {
  if (n < 1000) return fmt::format("{}", n);
  const char* units[] = {"K", "M", "B", "T"};
  double v = static_cast<double>(n) / 1000.0;
  int u = 0;
  while (v >= 1000.0 && u < 3) {
    v /= 1000.0;
    ++u;
  }
  return fmt::format("{:.1f}{}", v, units[u]);
}

std::string shape_text(const std::vector<int64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += fmt::format("{}{}", i ? " x " : "", ne[i]);
  return s;
}

// Control characters escaped so one value stays on one line.
std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

size_t elem_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      return 1;
    case GgufType::UINT16:
    case GgufType::INT16:
      return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32:
      return 4;
    default:
      return 8;
  }
}

// Element i of a numeric array as JSON, decoded from the raw little-endian bytes.
Json numeric_element(const GgufValue& v, uint64_t i) {
  const uint8_t* p = v.raw.data() + i * elem_size(v.elem_type);
  auto load = [p](auto x) {
    std::memcpy(&x, p, sizeof(x));
    return x;
  };
  switch (v.elem_type) {
    case GgufType::UINT8:
      return load(uint8_t{});
    case GgufType::INT8:
      return load(int8_t{});
    case GgufType::UINT16:
      return load(uint16_t{});
    case GgufType::INT16:
      return load(int16_t{});
    case GgufType::UINT32:
      return load(uint32_t{});
    case GgufType::INT32:
      return load(int32_t{});
    case GgufType::UINT64:
      return load(uint64_t{});
    case GgufType::INT64:
      return load(int64_t{});
    // Through the shortest decimal, so 1e-5f prints as 1e-05 and not 9.99999974737875e-06.
    case GgufType::FLOAT32:
      return std::stod(fmt::format("{}", load(float{})));
    case GgufType::FLOAT64:
      return load(double{});
    case GgufType::BOOL:
      return *p != 0;
    default:
      return nullptr;
  }
}

Json value_json(const GgufValue& v, bool full) {
  switch (v.type) {
    case GgufType::STRING:
      return v.str;
    case GgufType::BOOL:
      return v.u64 != 0;
    case GgufType::FLOAT32:
      return std::stod(fmt::format("{}", static_cast<float>(v.f64)));
    case GgufType::FLOAT64:
      return v.f64;
    case GgufType::INT8:
    case GgufType::INT16:
    case GgufType::INT32:
    case GgufType::INT64:
      return v.i64;
    case GgufType::ARRAY: {
      Json arr = Json::array();
      const uint64_t n = full ? v.count : std::min<uint64_t>(v.count, 16);
      for (uint64_t i = 0; i < n; ++i) {
        arr.push_back(v.elem_type == GgufType::STRING ? Json(v.strings[i]) : numeric_element(v, i));
      }
      return arr;
    }
    default:
      return v.u64;
  }
}

// The value as one line of text; --full shows long strings and arrays whole.
std::string value_text(const GgufValue& v, bool full) {
  if (!full) return v.to_display();
  if (v.type == GgufType::STRING) return escape(v.str);
  if (v.type != GgufType::ARRAY) return v.to_display();
  std::string out = fmt::format("[{} x {}]", v.count, gguf_type_name(v.elem_type));
  for (uint64_t i = 0; i < v.count; ++i) {
    out += i ? ", " : " ";
    out += v.elem_type == GgufType::STRING ? escape(v.strings[i]) : numeric_element(v, i).dump();
  }
  return out;
}

std::string type_text(const GgufValue& v) {
  if (v.type == GgufType::ARRAY) return fmt::format("{}[]", gguf_type_name(v.elem_type));
  return gguf_type_name(v.type);
}

struct TypeTotals {
  uint64_t count = 0;
  uint64_t bytes = 0;
  uint64_t params = 0;
};

struct Summary {
  uint64_t params = 0;
  uint64_t bytes = 0;
  std::map<std::string, TypeTotals> by_type;
  std::vector<std::string> unsupported;  // type names engram cannot compute with
  // By bytes, largest first: the types that make up the file.
  std::vector<std::pair<std::string, TypeTotals>> ordered() const {
    std::vector<std::pair<std::string, TypeTotals>> v(by_type.begin(), by_type.end());
    std::stable_sort(v.begin(), v.end(),
                     [](const auto& a, const auto& b) { return a.second.bytes > b.second.bytes; });
    return v;
  }
};

Summary summarize(const GgufFile& f) {
  Summary s;
  for (const GgufTensorInfo& t : f.tensors()) {
    const std::string name = tensor_type_name(t.type);
    TypeTotals& tt = s.by_type[name];
    tt.count++;
    tt.bytes += t.nbytes;
    tt.params += static_cast<uint64_t>(t.n_elements());
    s.params += static_cast<uint64_t>(t.n_elements());
    s.bytes += t.nbytes;
    const TensorTypeInfo* info = tensor_type_info(t.type);
    if ((info == nullptr || !info->supported) &&
        std::find(s.unsupported.begin(), s.unsupported.end(), name) == s.unsupported.end()) {
      s.unsupported.push_back(name);
    }
  }
  return s;
}

// Scalar "<arch>.*" keys: the hyperparameters, with the prefix dropped.
std::vector<std::pair<std::string, const GgufValue*>> hyperparameters(const GgufFile& f,
                                                                      const std::string& arch) {
  std::vector<std::pair<std::string, const GgufValue*>> out;
  if (arch.empty()) return out;
  const std::string prefix = arch + ".";
  for (const auto& [k, v] : f.metadata()) {
    if (k.size() > prefix.size() && k.compare(0, prefix.size(), prefix) == 0 &&
        v.type != GgufType::ARRAY) {
      out.emplace_back(k.substr(prefix.size()), &v);
    }
  }
  return out;
}

std::string string_or_empty(const GgufFile& f, const char* key) {
  const GgufValue* v = f.find(key);
  return v != nullptr && v->type == GgufType::STRING ? v->str : std::string();
}

void print_text(const GgufFile& f, bool full) {
  const Summary s = summarize(f);
  const std::string arch = string_or_empty(f, "general.architecture");
  fmt::print("file          {}\n", f.path());
  fmt::print("format        GGUF v{}, {} ({} bytes), alignment {}, data at byte {}\n", f.version(),
             human_bytes(f.file_size()), f.file_size(), f.alignment(), f.data_offset());
  const std::string name = string_or_empty(f, "general.name");
  if (!name.empty()) fmt::print("name          {}\n", escape(name));
  fmt::print("architecture  {}\n", arch.empty() ? "(none: no general.architecture)" : escape(arch));

  // Hyperparameters, wrapped at about 100 columns.
  std::string line = "             ";
  bool any = false;
  for (const auto& [k, v] : hyperparameters(f, arch)) {
    const std::string item = fmt::format(" {}={}", k, v->to_display());
    if (line.size() + item.size() > 100 && any) {
      fmt::print("{}\n", line);
      line = "             ";
    }
    line += item;
    any = true;
  }
  if (any) fmt::print("{}\n", line);

  const std::string tok_model = string_or_empty(f, "tokenizer.ggml.model");
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  if (!tok_model.empty() || tokens != nullptr) {
    fmt::print("tokenizer     {}{}\n", tok_model.empty() ? "?" : escape(tok_model),
               tokens != nullptr ? fmt::format(", {} tokens", tokens->count) : "");
  }

  std::string types;
  for (const auto& [tname, tt] : s.ordered()) {
    types += fmt::format("{}{} x {}", types.empty() ? "" : ", ", tname, tt.count);
  }
  fmt::print("weights       {} tensors, {} params, {}{}\n", f.tensors().size(),
             human_count(s.params), human_bytes(s.bytes),
             types.empty() ? "" : fmt::format(" ({})", types));
  if (!s.unsupported.empty()) {
    std::string list;
    for (const std::string& u : s.unsupported) list += (list.empty() ? "" : ", ") + u;
    fmt::print("              not computable by engram: {}\n", list);
  }

  fmt::print("\nmetadata ({} keys)\n", f.metadata().size());
  size_t kw = 0;
  for (const auto& [k, v] : f.metadata()) kw = std::max(kw, k.size());
  kw = std::min<size_t>(kw, 48);
  for (const auto& [k, v] : f.metadata()) {
    fmt::print("  {:<{}}  {:<8} {}\n", escape(k), kw, type_text(v), value_text(v, full));
  }

  fmt::print("\ntensors ({})\n", f.tensors().size());
  size_t nw = 4;
  for (const GgufTensorInfo& t : f.tensors()) nw = std::max(nw, t.name.size());
  nw = std::min<size_t>(nw, 48);
  fmt::print("  {:<{}}  {:<6} {:<22} {:>10}  {:>12}\n", "name", nw, "type", "shape", "bytes",
             "file offset");
  for (const GgufTensorInfo& t : f.tensors()) {
    fmt::print("  {:<{}}  {:<6} {:<22} {:>10}  {:>12}\n", escape(t.name), nw,
               tensor_type_name(t.type), shape_text(t.ne), human_bytes(t.nbytes),
               f.data_offset() + t.offset);
  }
}

void print_json(const GgufFile& f, bool full) {
  const Summary s = summarize(f);
  Json j;
  j["file"] = f.path();
  j["version"] = f.version();
  j["size"] = f.file_size();
  j["alignment"] = f.alignment();
  j["data_offset"] = f.data_offset();
  const std::string arch = string_or_empty(f, "general.architecture");
  j["architecture"] = arch.empty() ? Json(nullptr) : Json(arch);

  Json types = Json::object();
  for (const auto& [tname, tt] : s.ordered()) {
    types[tname] = {{"count", tt.count}, {"params", tt.params}, {"bytes", tt.bytes}};
  }
  j["summary"] = {{"tensors", f.tensors().size()},
                  {"params", s.params},
                  {"bytes", s.bytes},
                  {"types", types},
                  {"unsupported_types", s.unsupported}};

  Json meta = Json::object();
  for (const auto& [k, v] : f.metadata()) {
    Json e = {{"type", gguf_type_name(v.type)}};
    if (v.type == GgufType::ARRAY) {
      e["elem_type"] = gguf_type_name(v.elem_type);
      e["count"] = v.count;
      e["truncated"] = !full && v.count > 16;
    }
    e["value"] = value_json(v, full);
    meta[k] = std::move(e);
  }
  j["metadata"] = std::move(meta);

  Json tensors = Json::array();
  for (const GgufTensorInfo& t : f.tensors()) {
    tensors.push_back({{"name", t.name},
                       {"type", tensor_type_name(t.type)},
                       {"shape", t.ne},
                       {"elements", t.n_elements()},
                       {"bytes", t.nbytes},
                       {"offset", t.offset},
                       {"file_offset", f.data_offset() + t.offset}});
  }
  j["tensors"] = std::move(tensors);
  // GGUF strings need not be valid UTF-8; replace bad bytes rather than fail the dump.
  fmt::print("{}\n", j.dump(2, ' ', false, Json::error_handler_t::replace));
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto opts = std::make_shared<InspectOptions>();
  CLI::App* sub = app.add_subcommand("inspect", "Show a GGUF file's metadata, tensors and sizes");
  sub->add_option("model", opts->model, "GGUF model file")->required();
  sub->add_flag("--json", opts->json, "Print machine-readable JSON");
  sub->add_flag("--full", opts->full, "Show long strings and arrays whole");
  sub->callback([opts]() {
    const std::unique_ptr<GgufFile> f = GgufFile::open(opts->model);
    if (opts->json) {
      print_json(*f, opts->full);
    } else {
      print_text(*f, opts->full);
    }
  });
}

}  // namespace engram::cli
