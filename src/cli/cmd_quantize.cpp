// `engram quantize IN OUT --type q8_0|q4_0|q4_k|q5_k|q6_k`: rewrites a GGUF model with its weight
// matrices in a quantized type. Follows llama.cpp's habits so other readers load the result:
//  - only tensors with 2+ dimensions are quantized; norms, biases and other 1-D tensors keep
//    their type;
//  - q4_k is llama.cpp's Q4_K_M mix: output.weight, and attn_v / ffn_down in the first and
//    last eighth of the layers plus every third layer between, are Q6_K, the rest Q4_K;
//    q5_k is its Q5_K_M mix: the same tensors Q6_K, the rest Q5_K;
//    the K-quants put output.weight (and token_embd when tied) in Q6_K;
//  - a row length that is not a multiple of the type's block falls back to Q8_0 when it can
//    (multiple of 32), otherwise the tensor keeps its type; each fallback is reported;
//  - all metadata is copied and general.file_type is set to the llama_ftype value.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/tensor_type.h"
#include "engram/thread_pool.h"
#include "kernels/quant.h"

namespace engram::cli {

namespace {

struct QuantizeOptions {
  std::string input;
  std::string output;
  std::string type;
  int threads = 0;
};

struct Target {
  const char* flag;  // as typed on the command line
  TensorType type;   // the base type of the matrices
  uint32_t ftype;    // llama_ftype written to general.file_type
  bool k_mix;        // Q4_K_M-style mix
};

// llama_ftype values (llama.h): ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7,
// MOSTLY_Q4_K_M 15, MOSTLY_Q5_K_M 17, MOSTLY_Q6_K 18, MOSTLY_BF16 32.
constexpr Target kTargets[] = {
    {"q8_0", TensorType::Q8_0, 7, false},  {"q4_0", TensorType::Q4_0, 2, false},
    {"q4_k", TensorType::Q4_K, 15, true},  {"q5_k", TensorType::Q5_K, 17, true},
    {"q6_k", TensorType::Q6_K, 18, false}, {"f16", TensorType::F16, 1, false},
    {"bf16", TensorType::BF16, 32, false}, {"f32", TensorType::F32, 0, false},
};

const Target& find_target(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const Target& t : kTargets) {
    if (lower == t.flag) return t;
  }
  std::string accepted;
  for (const Target& t : kTargets) accepted += std::string(accepted.empty() ? "" : ", ") + t.flag;
  throw Error(fmt::format("--type '{}' is not a quantization type (accepted: {})", name, accepted));
}

std::string human_bytes(uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  return n < (1u << 20)   ? fmt::format("{:.1f} KiB", n / 1024.0)
         : n < (1u << 30) ? fmt::format("{:.2f} MiB", n / 1048576.0)
                          : fmt::format("{:.2f} GiB", n / 1073741824.0);
}

bool is_float_type(uint32_t id) {
  return id == static_cast<uint32_t>(TensorType::F32) ||
         id == static_cast<uint32_t>(TensorType::F16) ||
         id == static_cast<uint32_t>(TensorType::BF16);
}

// llama.cpp's "use more bits" layers of Q4_K_M: the first and last eighth, and every third
// layer in between.
bool use_more_bits(int64_t layer, int64_t n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

// The type a tensor should get, before the block-size check.
TensorType wanted_type(const GgufTensorInfo& t, const Target& target, int64_t n_layer,
                       bool has_output) {
  const bool k_quant = target.type == TensorType::Q4_K || target.type == TensorType::Q5_K ||
                       target.type == TensorType::Q6_K;
  if (k_quant && (t.name == "output.weight" || (!has_output && t.name == "token_embd.weight"))) {
    return TensorType::Q6_K;
  }
  if (target.k_mix) {
    static const std::regex kLayer(R"(blk\.(\d+)\.(attn_v|ffn_down)\.weight)");
    std::smatch m;
    if (std::regex_match(t.name, m, kLayer) && use_more_bits(std::stoll(m[1].str()), n_layer)) {
      return TensorType::Q6_K;
    }
  }
  return target.type;
}

void run_quantize(const QuantizeOptions& opt) {
  const Target& target = find_target(opt.type);
  if (opt.input == opt.output) {
    throw Error(fmt::format("output path '{}' is the input file; choose another", opt.output));
  }
  if (opt.threads < 0 || opt.threads > 1024) {
    throw Error(fmt::format("--threads {} is out of range [0, 1024] (0 = all cores)", opt.threads));
  }
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<GgufFile> in = GgufFile::open(opt.input);
  ThreadPool pool(opt.threads > 0 ? opt.threads : default_thread_count());

  const std::string arch = in->get_string("general.architecture", "");
  const int64_t n_layer =
      arch.empty() ? 0 : static_cast<int64_t>(in->get_uint(arch + ".block_count", 0));
  const bool has_output = in->find_tensor("output.weight") != nullptr;

  GgufWriter out;
  bool wrote_ftype = false;
  for (const auto& [key, value] : in->metadata()) {
    if (key == "general.file_type") {
      out.set_u32(key, target.ftype);
      wrote_ftype = true;
    } else {
      out.set_value(key, value);
    }
  }
  if (!wrote_ftype) out.set_u32("general.file_type", target.ftype);

  const auto& tensors = in->tensors();
  uint64_t bytes_in = 0, bytes_out = 0;
  int n_quantized = 0, n_kept = 0, n_fallback = 0;
  std::vector<float> rows_f32;   // [rows, cols] the tensor in f32
  std::vector<uint8_t> encoded;  // [rows, row_bytes] the result
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = tensors[i];
    const uint8_t* data = in->tensor_data(t);
    bytes_in += t.nbytes;
    const std::string src_name = tensor_type_name(t.type);
    const int64_t cols = t.ne.empty() ? 1 : t.ne[0];
    const int64_t rows = cols > 0 ? t.n_elements() / cols : 0;
    std::string shape;
    for (size_t d = 0; d < t.ne.size(); ++d) shape += fmt::format("{}{}", d ? " x " : "", t.ne[d]);

    TensorType dst = wanted_type(t, target, n_layer, has_output);
    std::string note;
    const TensorTypeInfo* src_info = tensor_type_info(t.type);
    const bool matrix = t.ne.size() >= 2 && rows > 0;
    bool convert = matrix && src_info != nullptr && src_info->supported &&
                   t.type != static_cast<uint32_t>(dst);
    if (convert && cols % tensor_type_info(dst).block_size != 0) {
      if (dst != TensorType::Q8_0 && cols % 32 == 0) {
        note = fmt::format(" (row length {} is not a multiple of {}: q8_0 instead)", cols,
                           tensor_type_info(dst).block_size);
        dst = TensorType::Q8_0;
        ++n_fallback;
      } else {
        note = fmt::format(" (row length {} fits no block: kept)", cols);
        convert = false;
        ++n_fallback;
      }
    }
    if (convert && t.type == static_cast<uint32_t>(dst)) convert = false;
    if (convert && !is_float_type(t.type)) note += " (requantized: quality loss adds up)";

    if (!convert) {
      out.add_tensor(t.name, t.ne, static_cast<TensorType>(t.type), data, t.nbytes);
      bytes_out += t.nbytes;
      ++n_kept;
      fmt::print("[{:4}/{:4}] {:<36} {:>6}          [{}] {}{}\n", i + 1, tensors.size(), t.name,
                 src_name, shape, human_bytes(t.nbytes), note);
      continue;
    }
    const TensorType src = static_cast<TensorType>(t.type);
    const size_t src_rb = tensor_row_bytes(src, cols);
    const size_t dst_rb = tensor_row_bytes(dst, cols);
    rows_f32.resize(static_cast<size_t>(rows) * cols);
    encoded.resize(static_cast<size_t>(rows) * dst_rb);
    pool.parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* f = rows_f32.data() + r * cols;
        dequantize_row(src, data + r * src_rb, f, cols);
        quantize_row(dst, f, encoded.data() + r * dst_rb, cols);
      }
    });
    out.add_tensor(t.name, t.ne, dst, encoded.data(), encoded.size());
    bytes_out += encoded.size();
    ++n_quantized;
    fmt::print("[{:4}/{:4}] {:<36} {:>6} -> {:<6} [{}] {} -> {}{}\n", i + 1, tensors.size(), t.name,
               src_name, tensor_type_info(dst).name, shape, human_bytes(t.nbytes),
               human_bytes(encoded.size()), note);
  }
  std::vector<float>().swap(rows_f32);
  std::vector<uint8_t>().swap(encoded);
  out.write(opt.output);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(
      "quantized {} tensors to {} ({} kept{}), tensor data {} -> {} ({:.2f}x smaller), "
      "file_type {}, {:.1f} s\nwrote {}\n",
      n_quantized, target.flag, n_kept,
      n_fallback ? fmt::format(", {} with a fallback type", n_fallback) : std::string(),
      human_bytes(bytes_in), human_bytes(bytes_out),
      bytes_out ? static_cast<double>(bytes_in) / static_cast<double>(bytes_out) : 0.0,
      target.ftype, secs, opt.output);
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto opt = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write a copy of a GGUF model with its weight matrices quantized");
  cmd->add_option("input", opt->input, "Input GGUF model")->required();
  cmd->add_option("output", opt->output, "Output GGUF path")->required();
  cmd->add_option(
         "--type", opt->type,
         "Target type: q8_0, q4_0, q4_k (Q4_K_M mix), q5_k (Q5_K_M mix), q6_k, f16, bf16, f32")
      ->required();
  cmd->add_option("-t,--threads", opt->threads, "Threads (0 = all cores, at most 8)");
  cmd->callback([opt] { run_quantize(*opt); });
}

}  // namespace engram::cli
