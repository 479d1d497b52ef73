// Model loading refuses what it cannot run, naming the architecture, tensor or type.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/model.h"

namespace engram {
namespace {

const std::string kModel = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/llama_f32.gguf";

// Rewrites the golden model with `edit` applied to metadata and tensors, into a temp file.
struct Rewrite {
  std::string arch = "";
  std::string drop_tensor = "";
  std::string retype_tensor = "";
  TensorType new_type = TensorType::Q3_K;
};

std::string rewrite(const Rewrite& r, const std::string& name) {
  auto src = GgufFile::open(kModel);
  GgufWriter w;
  for (const auto& [key, value] : src->metadata()) {
    if (key == "general.architecture" && !r.arch.empty()) {
      w.set_string(key, r.arch);
    } else {
      w.set_value(key, value);
    }
  }
  for (const GgufTensorInfo& t : src->tensors()) {
    if (t.name == r.drop_tensor) continue;
    if (t.name == r.retype_tensor) {
      // Same element count in the new type's geometry: fill with zero blocks.
      const TensorTypeInfo& info = tensor_type_info(r.new_type);
      std::vector<int64_t> ne = t.ne;
      ne[0] = 256;  // a K-quant block per row
      const int64_t rows = t.n_elements() / t.ne[0];
      std::vector<uint8_t> zeros(size_t(rows) * info.block_bytes, 0);
      w.add_tensor(t.name, ne, r.new_type, zeros.data(), zeros.size());
      continue;
    }
    w.add_tensor(t.name, t.ne, static_cast<TensorType>(t.type), src->tensor_data(t), t.nbytes);
  }
  const std::string path =
      (std::filesystem::temp_directory_path() / ("engram_test_" + name + ".gguf")).string();
  w.write(path);
  return path;
}

void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    Model::load(path);
    FAIL() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(ModelLoad, LoadsTheGoldenModel) {
  auto m = Model::load(kModel);
  EXPECT_EQ(m->config().arch, "llama");
  EXPECT_EQ(m->config().n_layer, 2);
  EXPECT_EQ(m->config().n_head_kv, 2);
  EXPECT_GT(m->weight_bytes(), 0u);
}

TEST(ModelLoad, RefusesUnsupportedArchitectureByName) {
  Rewrite r;
  r.arch = "gptneox";
  expect_load_error(rewrite(r, "arch"), "architecture 'gptneox' is not supported");
}

TEST(ModelLoad, RefusesUnsupportedTensorTypeByName) {
  Rewrite r;
  r.retype_tensor = "blk.0.ffn_up.weight";
  r.new_type = TensorType::Q3_K;
  expect_load_error(rewrite(r, "type"), "q3_K");
}

TEST(ModelLoad, NamesAMissingTensor) {
  Rewrite r;
  r.drop_tensor = "blk.1.attn_k.weight";
  expect_load_error(rewrite(r, "missing"), "missing tensor 'blk.1.attn_k.weight'");
}

TEST(ModelLoad, NamesAMissingFile) {
  expect_load_error("/nonexistent/model.gguf", "/nonexistent/model.gguf");
}

}  // namespace
}  // namespace engram
