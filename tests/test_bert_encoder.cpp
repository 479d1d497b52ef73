// The `bert` text encoder against golden fixtures from an independent PyTorch reference
// (tools/py/bert_reference.py): the same token ids, and pooled embeddings within the fixture's
// tolerance (1e-4 for F32 weights); and bad files refused with errors naming what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/text_encoder.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"

namespace engram {
namespace {

const std::string kDir = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";

nlohmann::json load_sidecar(const std::string& name) {
  std::ifstream f(kDir + name + ".json");
  EXPECT_TRUE(f.good()) << name;
  return nlohmann::json::parse(f);
}

class GoldenBert : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenBert, TokenIdsMatchReference) {
  const nlohmann::json j = load_sidecar(GetParam());
  auto enc = TextEncoder::load(kDir + GetParam() + ".gguf");
  ThreadPool pool(2);
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto want = c["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> ids = enc->tokenizer().encode(text, true, false);
    const TextEncoder::Embedding e = enc->embed(text, pool);
    EXPECT_EQ(e.truncated, c["truncated"].get<bool>()) << text;
    EXPECT_EQ(e.n_tokens, want.size()) << text;
    if (e.truncated) {
      ids.resize(want.size());
      ids.back() = enc->tokenizer().eos();
    }
    EXPECT_EQ(ids, want) << text;
  }
}

TEST_P(GoldenBert, EmbeddingsMatchReference) {
  const nlohmann::json j = load_sidecar(GetParam());
  auto enc = TextEncoder::load(kDir + GetParam() + ".gguf");
  EXPECT_EQ(enc->config().pooling == Pooling::Cls ? "cls" : "mean",
            j["pooling"].get<std::string>());
  EXPECT_TRUE(enc->config().pooling_from_file);
  const double tol = j["tolerance_max_abs"].get<double>();
  ThreadPool pool(2);
  double worst = 0;
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto want = c["embedding"].get<std::vector<float>>();
    const std::vector<float> got = enc->embed(text, pool).vector;
    ASSERT_EQ(got.size(), want.size()) << text;
    double norm = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
      norm += double(got[i]) * got[i];
    }
    EXPECT_NEAR(norm, 1.0, 1e-5) << text;
  }
  std::cout << "[ bert ] " << GetParam() << ": max |engram - reference| = " << worst << "\n";
  RecordProperty("max_abs_diff", std::to_string(worst));
  EXPECT_LE(worst, tol) << GetParam();
}

TEST_P(GoldenBert, SameEmbeddingOnOneThread) {
  auto enc = TextEncoder::load(kDir + GetParam() + ".gguf");
  ThreadPool one(1), two(2);
  const std::string text = "My sister lives in Paris.";
  EXPECT_EQ(enc->embed(text, one).vector, enc->embed(text, two).vector);
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenBert,
                         ::testing::Values("bert_mean_f32", "bert_cls_f32", "bert_mean_f16"));

TEST(BertEncoder, TokensBeyondTheContextAreAnErrorWhenGivenAsIds) {
  auto enc = TextEncoder::load(kDir + "bert_mean_f32.gguf");
  ThreadPool pool(1);
  std::vector<int32_t> ids(size_t(enc->config().n_ctx_train) + 1, 5);
  try {
    enc->embed_tokens(ids, pool);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds at most 40"), std::string::npos) << e.what();
  }
  EXPECT_THROW(enc->embed_tokens(std::vector<int32_t>{2, 999999, 3}, pool), Error);
}

TEST(BertEncoder, IdentityTellsModelsApart) {
  auto a = TextEncoder::load(kDir + "bert_mean_f32.gguf");
  auto b = TextEncoder::load(kDir + "bert_mean_f16.gguf");
  auto a2 = TextEncoder::load(kDir + "bert_mean_f32.gguf");
  EXPECT_EQ(a->identity(), a2->identity());
  EXPECT_NE(a->identity(), b->identity());
  EXPECT_NE(a->identity().find(":32:mean:"), std::string::npos) << a->identity();
}

// The golden model rewritten with `edit` applied, in a temp file.
std::string rewrite(
    const std::string& name,
    const std::function<bool(GgufWriter&, const std::string& key, const GgufValue& v)>& edit_kv,
    const std::function<bool(GgufWriter&, const GgufTensorInfo& t, const uint8_t* data)>&
        edit_tensor) {
  auto src = GgufFile::open(kDir + "bert_mean_f32.gguf");
  GgufWriter w;
  for (const auto& [key, value] : src->metadata())
    if (!edit_kv(w, key, value)) w.set_value(key, value);
  for (const GgufTensorInfo& t : src->tensors())
    if (!edit_tensor(w, t, src->tensor_data(t)))
      w.add_tensor(t.name, t.ne, static_cast<TensorType>(t.type), src->tensor_data(t), t.nbytes);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("engram_test_bert_" + name + ".gguf")).string();
  w.write(path);
  return path;
}

auto keep_kv = [](GgufWriter&, const std::string&, const GgufValue&) { return false; };
auto keep_tensor = [](GgufWriter&, const GgufTensorInfo&, const uint8_t*) { return false; };

void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    TextEncoder::load(path);
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(BertEncoderLoad, NamesAMissingTensor) {
  expect_load_error(rewrite("missing", keep_kv,
                            [](GgufWriter&, const GgufTensorInfo& t, const uint8_t*) {
                              return t.name == "blk.1.ffn_down.bias";
                            }),
                    "missing tensor 'blk.1.ffn_down.bias'");
  expect_load_error(rewrite("missing_pos", keep_kv,
                            [](GgufWriter&, const GgufTensorInfo& t, const uint8_t*) {
                              return t.name == "position_embd.weight";
                            }),
                    "missing tensor 'position_embd.weight'");
}

TEST(BertEncoderLoad, NamesATensorOfTheWrongShape) {
  // attn_q.weight as [n_embd/2, 2*n_embd]: same bytes, wrong shape.
  expect_load_error(rewrite("shape", keep_kv,
                            [](GgufWriter& w, const GgufTensorInfo& t, const uint8_t* d) {
                              if (t.name != "blk.0.attn_q.weight") return false;
                              w.add_tensor(t.name, {t.ne[0] / 2, t.ne[1] * 2},
                                           static_cast<TensorType>(t.type), d, t.nbytes);
                              return true;
                            }),
                    "tensor 'blk.0.attn_q.weight' has shape [16, 64], expected [32, 32]");
}

TEST(BertEncoderLoad, RefusesBadMetadataByName) {
  expect_load_error(rewrite(
                        "ctx",
                        [](GgufWriter& w, const std::string& k, const GgufValue&) {
                          if (k != "bert.context_length") return false;
                          w.set_u32(k, 41);
                          return true;
                        },
                        keep_tensor),
                    "tensor 'position_embd.weight' has shape [32, 40], expected [32, 41]");
  expect_load_error(rewrite(
                        "pool",
                        [](GgufWriter& w, const std::string& k, const GgufValue&) {
                          if (k != "bert.pooling_type") return false;
                          w.set_u32(k, 4);
                          return true;
                        },
                        keep_tensor),
                    "bert.pooling_type = 4 is not supported");
  expect_load_error(rewrite(
                        "eps",
                        [](GgufWriter&, const std::string& k, const GgufValue&) {
                          return k == "bert.attention.layer_norm_epsilon";
                        },
                        keep_tensor),
                    "'bert.attention.layer_norm_epsilon' is missing");
  expect_load_error(rewrite(
                        "causal",
                        [](GgufWriter& w, const std::string& k, const GgufValue&) {
                          if (k != "bert.attention.causal") return false;
                          w.set_bool(k, true);
                          return true;
                        },
                        keep_tensor),
                    "bert.attention.causal is true");
  expect_load_error(rewrite(
                        "arch",
                        [](GgufWriter& w, const std::string& k, const GgufValue&) {
                          if (k != "general.architecture") return false;
                          w.set_string(k, "llama");
                          return true;
                        },
                        keep_tensor),
                    "architecture 'llama' is not an embedding model");
}

TEST(BertEncoderLoad, WithoutPoolingTypeMeansMean) {
  const std::string path = rewrite(
      "nopool",
      [](GgufWriter&, const std::string& k, const GgufValue&) { return k == "bert.pooling_type"; },
      keep_tensor);
  auto enc = TextEncoder::load(path);
  EXPECT_EQ(enc->config().pooling, Pooling::Mean);
  EXPECT_FALSE(enc->config().pooling_from_file);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace engram
