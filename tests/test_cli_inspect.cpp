// `engram inspect`: runs the real binary on small files the test writes, and on bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "engram/gguf.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::temp_path;

std::string write_model(const std::string& name) {
  engram::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "tiny test");
  w.set_u32("llama.context_length", 256);
  w.set_u32("llama.embedding_length", 32);
  w.set_u32("llama.block_count", 1);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens = {"<s>", "</s>", "line\nbreak"};
  for (int i = 0; i < 40; ++i) tokens.push_back("t" + std::to_string(i));
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  std::vector<float> scores(tokens.size(), -1.0f);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  const std::vector<uint8_t> emb(32 * 43 * 2, 0);
  w.add_tensor("token_embd.weight", {32, 43}, engram::TensorType::F16, emb.data(), emb.size());
  const std::vector<uint8_t> norm(32 * 4, 0);
  w.add_tensor("output_norm.weight", {32}, engram::TensorType::F32, norm.data(), norm.size());
  const std::vector<uint8_t> q(256 / 256 * 110 * 2, 0);
  w.add_tensor("blk.0.ffn_down.weight", {256, 2}, engram::TensorType::Q3_K, q.data(), q.size());
  const std::string path = temp_path(name);
  w.write(path);
  return path;
}

TEST(CliInspect, MissingFile) {
  const CliResult r = run_cli("inspect /nonexistent/x.gguf");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(
      r.err.find("engram: error: cannot open '/nonexistent/x.gguf': No such file or directory"),
      std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(CliInspect, BadFlagsAndMissingArgument) {
  const std::string path = write_model("flags.gguf");
  CliResult r = run_cli("inspect --no-such-flag '" + path + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no-such-flag"), std::string::npos) << r.err;
  r = run_cli("inspect");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("model"), std::string::npos) << r.err;
  r = run_cli("inspect --json=maybe '" + path + "'");
  EXPECT_NE(r.status, 0);
  std::filesystem::remove(path);
}

TEST(CliInspect, CorruptFileIsAClearError) {
  const std::string path = temp_path("corrupt.gguf");
  std::ofstream(path, std::ios::binary) << "GGML and then some bytes that are not a header";
  const CliResult r = run_cli("inspect '" + path + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("engram: error: " + path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("magic"), std::string::npos) << r.err;
  std::filesystem::remove(path);
}

TEST(CliInspect, TextSummaryMetadataAndTensors) {
  const std::string path = write_model("text.gguf");
  const CliResult r = run_cli("inspect '" + path + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string& o = r.out;
  EXPECT_NE(o.find("GGUF v3"), std::string::npos) << o;
  EXPECT_NE(o.find("architecture  llama"), std::string::npos) << o;
  EXPECT_NE(o.find("context_length=256"), std::string::npos) << o;
  EXPECT_NE(o.find("layer_norm_rms_epsilon=1e-05"), std::string::npos) << o;
  EXPECT_NE(o.find("tokenizer     llama, 43 tokens"), std::string::npos) << o;
  EXPECT_NE(o.find("weights       3 tensors, 1.9K params"), std::string::npos) << o;
  EXPECT_NE(o.find("f16 x 1"), std::string::npos) << o;
  EXPECT_NE(o.find("not computable by engram: q3_K"), std::string::npos) << o;
  EXPECT_NE(o.find("[43 x string] <s>, </s>, line\\nbreak, t0, t1, ..."), std::string::npos) << o;
  EXPECT_NE(o.find("blk.0.ffn_down.weight"), std::string::npos) << o;
  EXPECT_NE(o.find("256 x 2"), std::string::npos) << o;
  // The summary comes before the metadata listing, which comes before the tensor table.
  EXPECT_LT(o.find("weights"), o.find("metadata ("));
  EXPECT_LT(o.find("metadata ("), o.find("tensors (3)"));
  std::filesystem::remove(path);
}

TEST(CliInspect, Json) {
  const std::string path = write_model("json.gguf");
  CliResult r = run_cli("inspect --json '" + path + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["size"], std::filesystem::file_size(path));
  EXPECT_EQ(j["summary"]["tensors"], 3);
  EXPECT_EQ(j["summary"]["params"], 32 * 43 + 32 + 512);
  EXPECT_EQ(j["summary"]["types"]["q3_K"]["count"], 1);
  EXPECT_EQ(j["summary"]["unsupported_types"], nlohmann::json::array({"q3_K"}));
  EXPECT_EQ(j["metadata"]["llama.context_length"]["value"], 256);
  EXPECT_EQ(j["metadata"]["llama.attention.layer_norm_rms_epsilon"]["value"], 1e-05);
  const auto& tokens = j["metadata"]["tokenizer.ggml.tokens"];
  EXPECT_EQ(tokens["count"], 43);
  EXPECT_EQ(tokens["truncated"], true);
  EXPECT_EQ(tokens["value"].size(), 16u);
  EXPECT_EQ(tokens["value"][2], "line\nbreak");
  EXPECT_EQ(j["tensors"][0]["name"], "token_embd.weight");
  EXPECT_EQ(j["tensors"][0]["shape"], nlohmann::json::array({32, 43}));
  EXPECT_EQ(j["tensors"][2]["type"], "q3_K");
  EXPECT_EQ(j["tensors"][1]["file_offset"].get<uint64_t>() % 32, 0u);

  r = run_cli("inspect --json --full '" + path + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json full = nlohmann::json::parse(r.out);
  EXPECT_EQ(full["metadata"]["tokenizer.ggml.tokens"]["value"].size(), 43u);
  EXPECT_EQ(full["metadata"]["tokenizer.ggml.scores"]["value"][42], -1.0);
  std::filesystem::remove(path);
}

}  // namespace
