#include "cli/common.h"

#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engram/error.h"

namespace engram::cli {

namespace {

// ./models/NAME if present, else the copy in the source tree this binary was built from.
std::string shipped_model(const std::string& name) {
  const std::string local = "models/" + name;
  if (std::filesystem::exists(local)) return local;
#ifdef ENGRAM_SOURCE_DIR
  return std::string(ENGRAM_SOURCE_DIR) + "/" + local;
#else
  return local;
#endif
}

}  // namespace

std::string default_model_path() {
  return shipped_model("engram-tiny.gguf");
}

std::string default_chat_model_path() {
  return shipped_model("engram-tiny-chat.gguf");
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("error reading '{}'", path));
  return ss.str();
}

std::ofstream open_output(const std::string& path, const char* cmd, const char* flag) {
  std::ofstream f(path);
  if (!f) throw Error(fmt::format("{}: cannot write {} '{}'", cmd, flag, path));
  return f;
}

void add_memory_rerank_option(CLI::App* cmd, std::string& rerank) {
  cmd->add_option(
         "--memory-rerank", rerank,
         "Which memories of the top 20 are shown: fixed (the retriever's top 5), learned "
         "(RMM's reranker, learned per user from the replies' citations: SGD at lr 1 with each "
         "draw's mean reward as baseline, chosen on LoCoMo) or learned-rmm (the same with RMM's "
         "own Adam at lr 1e-3 and fixed baseline 0.5)")
      ->check(CLI::IsMember({"fixed", "learned", "learned-rmm"}))
      ->capture_default_str();
}

void add_sampling_options(CLI::App* cmd, SamplerParams& sampling, int64_t& seed) {
  cmd->add_option("--seed", seed, "Sampling seed (default: random)");
  cmd->add_option("--temp", sampling.temperature, "Temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", sampling.top_k, "Top-k, 0 = off")->capture_default_str();
  cmd->add_option("--top-p", sampling.top_p, "Top-p, 1 = off")->capture_default_str();
  cmd->add_option("--min-p", sampling.min_p, "Min-p, 0 = off")->capture_default_str();
  cmd->add_option("--repeat-penalty", sampling.repeat_penalty, "1 = off")->capture_default_str();
  cmd->add_option("--frequency-penalty", sampling.frequency_penalty)->capture_default_str();
  cmd->add_option("--presence-penalty", sampling.presence_penalty)->capture_default_str();
  cmd->add_option("--repeat-last-n", sampling.penalty_last_n, "Penalty window")
      ->capture_default_str();
}

double token_nll(std::span<const float> logits, int32_t target) {
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - mx);
  return std::log(sum) - (double(logits[target]) - mx);
}

}  // namespace engram::cli
