// Helpers shared by the sub-commands: default model path, reading input files, timing.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <span>
#include <string>

#include "engram/sampler.h"

namespace CLI {
class App;
}

namespace engram::cli {

// The shipped model: ./models/engram-tiny.gguf if present, else the copy in the source tree
// this binary was built from.
std::string default_model_path();
// The shipped chat model (models/engram-tiny-chat.gguf, found the same way): the default of
// `chat` and `serve`.
std::string default_chat_model_path();

// Whole file as bytes; engram::Error naming the path on failure.
std::string read_text_file(const std::string& path);

// A file opened for writing an output flag's results (--json, --csv); engram::Error naming
// the command, the flag and the path when it cannot be created.
std::ofstream open_output(const std::string& path, const char* cmd, const char* flag);

// --seed, --temp, --top-k, --top-p, --min-p and the penalty flags, shared by run and chat.
// seed < 0 (the default) means a random seed.
void add_sampling_options(CLI::App* cmd, SamplerParams& sampling, int64_t& seed);

// --memory-rerank fixed|learned|learned-rmm (agent memory), shared by chat and serve.
void add_memory_rerank_option(CLI::App* cmd, std::string& rerank);

// -log softmax(logits)[target], in double for a stable sum over many tokens.
double token_nll(std::span<const float> logits, int32_t target);

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace engram::cli
