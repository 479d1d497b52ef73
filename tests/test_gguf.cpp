// GGUF reader/writer: round trips of every value type, typed getters, and hostile files
// (truncated, wrong magic/version, impossible counts and lengths, bad tensor infos).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/tensor_type.h"

namespace engram {
namespace {

using Bytes = std::vector<uint8_t>;

// Runs f, expects engram::Error, and returns its message ("" and a failure otherwise).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected engram::Error";
  return "";
}

std::string parse_error(const Bytes& b) {
  return error_of([&] { GgufFile::parse(b, "t.gguf"); });
}

// Hand-assembles GGUF bytes, for files the writer refuses to produce.
struct Raw {
  Bytes b;
  template <typename T>
  Raw& put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Raw& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    put<uint32_t>(version);
    put<uint64_t>(n_tensors);
    return put<uint64_t>(n_kv);
  }
  Raw& kv_u32(const std::string& key, uint32_t v) {
    str(key);
    put<uint32_t>(4);
    return put<uint32_t>(v);
  }
  Raw& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name);
    put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) put<uint64_t>(d);
    put<uint32_t>(type);
    return put<uint64_t>(offset);
  }
  Raw& pad(size_t alignment = 32) {
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

template <typename T>
GgufValue array_of(GgufType elem, const std::vector<T>& xs) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem;
  v.count = xs.size();
  v.raw.resize(xs.size() * sizeof(T));
  if (!xs.empty()) std::memcpy(v.raw.data(), xs.data(), v.raw.size());
  return v;
}

GgufValue scalar(GgufType t, uint64_t u, int64_t i, double f) {
  GgufValue v;
  v.type = t;
  v.u64 = u;
  v.i64 = i;
  v.f64 = f;
  return v;
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

// A small valid file: a few keys (one array) and two tensors; the last tensor's data ends
// exactly at the end of the file, so every shorter prefix is invalid.
Bytes small_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a"});
  w.set_i32_array("tokenizer.ggml.token_type", {3, 3, 1});
  Bytes a = pattern(8 * 4, 1);
  w.add_tensor("a", {8}, TensorType::F32, a.data(), a.size());
  Bytes q = pattern(2 * 34, 2);
  w.add_tensor("q", {32, 2}, TensorType::Q8_0, q.data(), q.size());  // 68 bytes + 28 padding
  Bytes c = pattern(16 * 2, 3);
  w.add_tensor("c", {16}, TensorType::F16, c.data(), c.size());  // 32 bytes: no padding after
  return w.to_bytes();
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::path(testing::TempDir()) / (std::to_string(getpid()) + "_" + name))
      .string();
}

// ---------------------------------------------------------------------------------------
// Tensor types.

TEST(TensorType, GeometryMatchesGgml) {
  struct Row {
    TensorType t;
    const char* name;
    int64_t block;
    size_t bytes;
    bool supported;
  };
  const Row rows[] = {
      {TensorType::F32, "f32", 1, 4, true},        {TensorType::F16, "f16", 1, 2, true},
      {TensorType::BF16, "bf16", 1, 2, true},      {TensorType::Q8_0, "q8_0", 32, 34, true},
      {TensorType::Q4_0, "q4_0", 32, 18, true},    {TensorType::Q4_1, "q4_1", 32, 20, false},
      {TensorType::Q5_0, "q5_0", 32, 22, false},   {TensorType::Q5_1, "q5_1", 32, 24, false},
      {TensorType::Q8_1, "q8_1", 32, 36, false},   {TensorType::Q2_K, "q2_K", 256, 84, false},
      {TensorType::Q3_K, "q3_K", 256, 110, false}, {TensorType::Q4_K, "q4_K", 256, 144, true},
      {TensorType::Q5_K, "q5_K", 256, 176, true},  {TensorType::Q6_K, "q6_K", 256, 210, true},
      {TensorType::Q8_K, "q8_K", 256, 292, false}, {TensorType::I8, "i8", 1, 1, false},
      {TensorType::I16, "i16", 1, 2, false},       {TensorType::I32, "i32", 1, 4, false},
      {TensorType::I64, "i64", 1, 8, false},       {TensorType::F64, "f64", 1, 8, false},
  };
  for (const Row& r : rows) {
    const TensorTypeInfo& info = tensor_type_info(r.t);
    EXPECT_STREQ(info.name, r.name);
    EXPECT_EQ(info.block_size, r.block) << r.name;
    EXPECT_EQ(info.block_bytes, r.bytes) << r.name;
    EXPECT_EQ(info.supported, r.supported) << r.name;
    EXPECT_EQ(tensor_type_name(static_cast<uint32_t>(r.t)), r.name);
  }
  EXPECT_EQ(tensor_type_info(4u), nullptr);  // removed Q4_2
  EXPECT_EQ(tensor_type_info(77u), nullptr);
  EXPECT_EQ(tensor_type_name(77), "unknown(77)");
}

TEST(TensorType, RowBytes) {
  EXPECT_EQ(tensor_row_bytes(TensorType::F32, 10), 40u);
  EXPECT_EQ(tensor_row_bytes(TensorType::Q8_0, 64), 68u);
  EXPECT_EQ(tensor_row_bytes(TensorType::Q4_K, 512), 288u);
  EXPECT_EQ(tensor_row_bytes(TensorType::Q6_K, 0), 0u);
  const std::string msg = error_of([] { tensor_row_bytes(TensorType::Q4_K, 100); });
  EXPECT_NE(msg.find("100"), std::string::npos) << msg;
  EXPECT_NE(msg.find("256"), std::string::npos) << msg;
  EXPECT_THROW(tensor_row_bytes(TensorType::Q8_0, -32), Error);
  EXPECT_THROW(tensor_row_bytes(TensorType::F64, std::numeric_limits<int64_t>::max() / 2), Error);
}

TEST(TensorType, Parse) {
  EXPECT_EQ(parse_tensor_type("f32"), TensorType::F32);
  EXPECT_EQ(parse_tensor_type("F16"), TensorType::F16);
  EXPECT_EQ(parse_tensor_type("bf16"), TensorType::BF16);
  EXPECT_EQ(parse_tensor_type("q8_0"), TensorType::Q8_0);
  EXPECT_EQ(parse_tensor_type("Q4_0"), TensorType::Q4_0);
  EXPECT_EQ(parse_tensor_type("q4_k"), TensorType::Q4_K);
  EXPECT_EQ(parse_tensor_type("q6_K"), TensorType::Q6_K);
  EXPECT_EQ(parse_tensor_type("q5_k"), TensorType::Q5_K);
  EXPECT_NE(error_of([] { parse_tensor_type("q3_k"); }).find("not supported"), std::string::npos);
  EXPECT_NE(error_of([] { parse_tensor_type("int3"); }).find("'int3'"), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// Round trips.

TEST(Gguf, RoundTripsEveryValueType) {
  GgufWriter w;
  w.set_value("u8", scalar(GgufType::UINT8, 200, 0, 0));
  w.set_value("i8", scalar(GgufType::INT8, 0, -100, 0));
  w.set_value("u16", scalar(GgufType::UINT16, 60000, 0, 0));
  w.set_value("i16", scalar(GgufType::INT16, 0, -30000, 0));
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -2000000000);
  w.set_u64("u64", 0xfedcba9876543210ull);
  w.set_value("i64", scalar(GgufType::INT64, 0, std::numeric_limits<int64_t>::min(), 0));
  w.set_f32("f32", 1e-5f);
  w.set_value("f64", scalar(GgufType::FLOAT64, 0, 0, 3.141592653589793));
  w.set_bool("bool_t", true);
  w.set_bool("bool_f", false);
  w.set_string("str", "h\xc3\xa9llo\n");
  w.set_string("str_empty", "");
  w.set_string("str_bad_utf8", std::string("\xff\xfe\0x", 4));
  w.set_value("a_u8", array_of<uint8_t>(GgufType::UINT8, {0, 1, 255}));
  w.set_value("a_i8", array_of<int8_t>(GgufType::INT8, {-128, 0, 127}));
  w.set_value("a_u16", array_of<uint16_t>(GgufType::UINT16, {0, 65535}));
  w.set_value("a_i16", array_of<int16_t>(GgufType::INT16, {-32768, 32767}));
  w.set_value("a_u32", array_of<uint32_t>(GgufType::UINT32, {1, 4294967295u}));
  w.set_i32_array("a_i32", {-1, 0, 2147483647});
  w.set_value("a_u64", array_of<uint64_t>(GgufType::UINT64, {~0ull}));
  w.set_value("a_i64", array_of<int64_t>(GgufType::INT64, {-5, 5}));
  w.set_f32_array("a_f32", {0.5f, -2.25f, 1e30f});
  w.set_value("a_f64", array_of<double>(GgufType::FLOAT64, {1.0 / 3.0}));
  w.set_value("a_bool", array_of<uint8_t>(GgufType::BOOL, {1, 0, 1}));
  w.set_string_array("a_str", {"<s>", "", "\xe2\x96\x81the"});
  w.set_f32_array("a_empty", {});
  // Replacing a key keeps its position and drops the old value.
  w.set_u32("u32", 4000000001u);

  const Bytes bytes = w.to_bytes();
  EXPECT_EQ(bytes, w.to_bytes());  // deterministic
  const auto f = GgufFile::parse(bytes, "rt.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->metadata().size(), 28u);
  EXPECT_EQ(f->metadata()[4].first, "u32");

  EXPECT_EQ(f->find("u8")->u64, 200u);
  EXPECT_EQ(f->find("i8")->i64, -100);
  EXPECT_EQ(f->find("u16")->u64, 60000u);
  EXPECT_EQ(f->find("i16")->i64, -30000);
  EXPECT_EQ(f->get_uint("u32"), 4000000001u);
  EXPECT_EQ(f->get_int("i32", 0), -2000000000);
  EXPECT_EQ(f->get_uint("u64"), 0xfedcba9876543210ull);
  EXPECT_EQ(f->get_int("i64", 0), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->get_float("f32"), static_cast<double>(1e-5f));
  EXPECT_EQ(f->find("f32")->type, GgufType::FLOAT32);
  EXPECT_EQ(f->get_float("f64"), 3.141592653589793);
  EXPECT_TRUE(f->get_bool("bool_t", false));
  EXPECT_FALSE(f->get_bool("bool_f", true));
  EXPECT_EQ(f->get_string("str"), "h\xc3\xa9llo\n");
  EXPECT_EQ(f->get_string("str_empty"), "");
  EXPECT_EQ(f->get_string("str_bad_utf8"), std::string("\xff\xfe\0x", 4));

  for (const auto& [key, v] : f->metadata()) {
    const GgufValue* orig = nullptr;
    // Compare each array against what was written, byte for byte.
    if (v.type != GgufType::ARRAY) continue;
    const auto src = GgufFile::parse(bytes);  // same bytes; checks parse is repeatable
    orig = src->find(key);
    ASSERT_NE(orig, nullptr);
    EXPECT_EQ(v.raw, orig->raw);
  }
  EXPECT_EQ(f->find("a_u8")->raw, (Bytes{0, 1, 255}));
  EXPECT_EQ(f->find("a_i8")->count, 3u);
  EXPECT_EQ(f->find("a_i8")->elem_type, GgufType::INT8);
  EXPECT_EQ(f->get_i32_array("a_i8"), (std::vector<int32_t>{-128, 0, 127}));
  EXPECT_EQ(f->get_i32_array("a_u16"), (std::vector<int32_t>{0, 65535}));
  EXPECT_EQ(f->get_i32_array("a_i16"), (std::vector<int32_t>{-32768, 32767}));
  EXPECT_EQ(f->get_i32_array("a_i32"), (std::vector<int32_t>{-1, 0, 2147483647}));
  EXPECT_EQ(f->get_i32_array("a_i64"), (std::vector<int32_t>{-5, 5}));
  EXPECT_THROW(f->get_i32_array("a_u32"), Error);  // 4294967295 does not fit
  EXPECT_THROW(f->get_i32_array("a_u64"), Error);
  EXPECT_EQ(f->get_f32_array("a_f32"), (std::vector<float>{0.5f, -2.25f, 1e30f}));
  EXPECT_EQ(f->get_f32_array("a_f64"), (std::vector<float>{static_cast<float>(1.0 / 3.0)}));
  EXPECT_EQ(f->find("a_u64")->raw, Bytes(8, 0xff));
  EXPECT_EQ(f->find("a_bool")->raw, (Bytes{1, 0, 1}));
  EXPECT_EQ(f->find("a_bool")->elem_type, GgufType::BOOL);
  EXPECT_EQ(f->get_string_array("a_str"), (std::vector<std::string>{"<s>", "", "\xe2\x96\x81the"}));
  EXPECT_EQ(f->find("a_empty")->count, 0u);
  EXPECT_TRUE(f->get_f32_array("a_empty").empty());

  // Copying every value through set_value reproduces the file exactly.
  GgufWriter copy;
  for (const auto& [k, v] : f->metadata()) copy.set_value(k, v);
  EXPECT_EQ(copy.to_bytes(), bytes);
}

TEST(Gguf, RoundTripsTensorsOfSeveralTypes) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  struct T {
    std::string name;
    std::vector<int64_t> ne;
    TensorType type;
    size_t nbytes;
  };
  const std::vector<T> ts = {
      {"f32", {3, 5}, TensorType::F32, 60},
      {"f16", {7}, TensorType::F16, 14},
      {"bf16", {2, 2, 2}, TensorType::BF16, 16},
      {"q8_0", {64, 3}, TensorType::Q8_0, 6 * 34},
      {"q4_0", {32, 1, 1, 2}, TensorType::Q4_0, 2 * 18},
      {"q4_k", {256, 2}, TensorType::Q4_K, 2 * 144},
      {"q6_k", {512}, TensorType::Q6_K, 2 * 210},
      {"q5_k", {256}, TensorType::Q5_K, 176},
  };
  std::vector<Bytes> data;
  for (size_t i = 0; i < ts.size(); ++i) {
    data.push_back(pattern(ts[i].nbytes, static_cast<uint8_t>(i)));
    w.add_tensor(ts[i].name, ts[i].ne, ts[i].type, data[i].data(), data[i].size());
  }
  const Bytes bytes = w.to_bytes();
  const auto f = GgufFile::parse(bytes);
  ASSERT_EQ(f->tensors().size(), ts.size());
  EXPECT_EQ(f->data_offset() % 32, 0u);
  for (size_t i = 0; i < ts.size(); ++i) {
    const GgufTensorInfo& t = f->tensors()[i];
    EXPECT_EQ(t.name, ts[i].name);
    EXPECT_EQ(t.ne, ts[i].ne);
    EXPECT_EQ(t.type, static_cast<uint32_t>(ts[i].type));
    EXPECT_EQ(t.nbytes, ts[i].nbytes);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(std::memcmp(f->tensor_data(t), data[i].data(), data[i].size()), 0) << t.name;
    EXPECT_EQ(f->find_tensor(ts[i].name), &t);
  }
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
  EXPECT_EQ(f->tensors()[0].n_elements(), 15);
  EXPECT_EQ(f->tensors()[4].n_elements(), 64);
}

TEST(Gguf, WriteThenOpenFromDisk) {
  GgufWriter w;
  w.set_string("general.architecture", "qwen2");
  const Bytes d = pattern(64, 9);
  w.add_tensor("w", {16}, TensorType::F32, d.data(), d.size());
  const std::string path = temp_path("write_open.gguf");
  w.write(path);
  std::ifstream in(path, std::ios::binary);
  const Bytes on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, w.to_bytes());
  const auto f = GgufFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->file_size(), on_disk.size());
  EXPECT_EQ(f->get_string("general.architecture"), "qwen2");
  EXPECT_EQ(std::memcmp(f->tensor_data(f->tensors()[0]), d.data(), d.size()), 0);
  // No temporary files left next to it.
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    EXPECT_EQ(e.path().string().find(path + ".tmp"), std::string::npos) << e.path();
  }
  std::filesystem::remove(path);
}

TEST(Gguf, CustomAlignmentAndVersion2) {
  GgufWriter w;
  w.set_u32("general.alignment", 64);
  const Bytes d = pattern(40, 1);
  w.add_tensor("a", {10}, TensorType::F32, d.data(), d.size());
  w.add_tensor("b", {10}, TensorType::F32, d.data(), d.size());
  Bytes bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->tensors()[1].offset, 64u);
  bytes[4] = 2;  // version 2 has the same layout as 3 (64-bit counts) and is accepted
  EXPECT_EQ(GgufFile::parse(bytes)->version(), 2u);
}

TEST(Gguf, EmptyFileWithNoTensors) {
  GgufWriter w;
  const Bytes bytes = w.to_bytes();
  EXPECT_EQ(bytes.size(), 32u);  // 24-byte header, padded
  const auto f = GgufFile::parse(bytes);
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_TRUE(f->tensors().empty());
}

TEST(Gguf, TypedGetters) {
  GgufWriter w;
  w.set_u32("u", 7);
  w.set_i32("neg", -3);
  w.set_string("s", "x");
  w.set_f32("f", 0.25f);
  w.set_bool("b", true);
  w.set_u64("big", ~0ull);
  w.set_string_array("sa", {"a"});
  const Bytes bytes = w.to_bytes();
  const auto f = GgufFile::parse(bytes, "g.gguf");
  EXPECT_EQ(f->get_uint("u"), 7u);
  EXPECT_EQ(f->get_int("u", 0), 7);
  EXPECT_EQ(f->get_float("u"), 7.0);  // integers convert to float
  EXPECT_EQ(f->get_int("neg", 0), -3);
  EXPECT_EQ(f->get_float("f"), 0.25);
  EXPECT_EQ(f->get_uint("missing", 5), 5u);
  EXPECT_EQ(f->get_int("missing", -1), -1);
  EXPECT_EQ(f->get_float("missing", 1.5), 1.5);
  EXPECT_EQ(f->get_string("missing", "d"), "d");
  EXPECT_TRUE(f->get_bool("missing", true));
  EXPECT_TRUE(f->has("s"));
  EXPECT_FALSE(f->has("missing"));

  std::string msg = error_of([&] { f->get_uint("missing"); });
  EXPECT_NE(msg.find("g.gguf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'missing'"), std::string::npos) << msg;
  msg = error_of([&] { f->get_uint("s"); });
  EXPECT_NE(msg.find("'s'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("string"), std::string::npos) << msg;
  msg = error_of([&] { f->get_uint("neg"); });
  EXPECT_NE(msg.find("-3"), std::string::npos) << msg;
  EXPECT_THROW(f->get_int("big", 0), Error);
  EXPECT_THROW(f->get_string("u"), Error);
  EXPECT_THROW(f->get_float("s"), Error);
  EXPECT_THROW(f->get_bool("u", false), Error);
  EXPECT_THROW(f->get_string_array("s"), Error);
  EXPECT_THROW(f->get_f32_array("sa"), Error);
  EXPECT_THROW(f->get_i32_array("sa"), Error);
  EXPECT_THROW(f->get_string_array("missing"), Error);
}

TEST(Gguf, ToDisplay) {
  GgufValue s;
  s.type = GgufType::STRING;
  s.str = "llama";
  EXPECT_EQ(s.to_display(), "llama");
  s.str = "a\nb";
  EXPECT_EQ(s.to_display(), "a\\nb");
  s.str = std::string(500, 'x');
  EXPECT_LT(s.to_display().size(), 100u);
  EXPECT_NE(s.to_display().find("500 bytes"), std::string::npos);
  EXPECT_EQ(scalar(GgufType::FLOAT32, 0, 0, 0.5).to_display(), "0.5");
  EXPECT_EQ(scalar(GgufType::FLOAT32, 0, 0, static_cast<float>(1e-5)).to_display(), "1e-05");
  EXPECT_EQ(scalar(GgufType::INT32, 0, -7, 0).to_display(), "-7");
  EXPECT_EQ(scalar(GgufType::UINT64, 42, 0, 0).to_display(), "42");
  EXPECT_EQ(scalar(GgufType::BOOL, 1, 0, 0).to_display(), "true");
  GgufValue a;
  a.type = GgufType::ARRAY;
  a.elem_type = GgufType::STRING;
  for (int i = 0; i < 32000; ++i) a.strings.push_back(i == 0 ? "<s>" : i == 1 ? "</s>" : "t");
  a.count = a.strings.size();
  EXPECT_EQ(a.to_display().rfind("[32000 x string] <s>, </s>, ", 0), 0u) << a.to_display();
  EXPECT_NE(a.to_display().find("..."), std::string::npos);
  EXPECT_EQ(array_of<int32_t>(GgufType::INT32, {1, -2}).to_display(), "[2 x i32] 1, -2");
}

// ---------------------------------------------------------------------------------------
// Hostile files.

TEST(GgufHostile, TruncatedAtEveryByteOffset) {
  const Bytes full = small_file();
  ASSERT_NO_THROW(GgufFile::parse(full));
  for (size_t cut = 0; cut < full.size(); ++cut) {
    // An exact-size heap copy, so that ASan catches any read past the end.
    const Bytes part(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    try {
      GgufFile::parse(part, "cut.gguf");
      ADD_FAILURE() << "parsed a file truncated to " << cut << " of " << full.size() << " bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.gguf"), std::string::npos) << e.what();
    }
  }
}

TEST(GgufHostile, TruncatedFileOnDisk) {
  const Bytes full = small_file();
  const std::string path = temp_path("truncated.gguf");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(full.data()), 100);
  const std::string msg = error_of([&] { GgufFile::open(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("at byte"), std::string::npos) << msg;
  std::filesystem::remove(path);
}

TEST(GgufHostile, OpenErrors) {
  std::string msg = error_of([] { GgufFile::open("/nonexistent/x.gguf"); });
  EXPECT_EQ(msg, "cannot open '/nonexistent/x.gguf': No such file or directory");
  msg = error_of([] { GgufFile::open(testing::TempDir()); });
  EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
  const std::string empty = temp_path("empty.gguf");
  std::ofstream(empty, std::ios::binary).close();
  msg = error_of([&] { GgufFile::open(empty); });
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  std::filesystem::remove(empty);
}

TEST(GgufHostile, WrongMagic) {
  Bytes b = small_file();
  std::memcpy(b.data(), "GGML", 4);
  const std::string msg = parse_error(b);
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
  EXPECT_NE(msg.find("GGML"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t.gguf"), std::string::npos) << msg;
}

TEST(GgufHostile, WrongVersion) {
  EXPECT_NE(parse_error(Raw().header(0, 0, 1).b).find("version 1"), std::string::npos);
  EXPECT_NE(parse_error(Raw().header(0, 0, 4).b).find("version 4"), std::string::npos);
  EXPECT_NE(parse_error(Raw().header(0, 0, 0x03000000).b).find("big-endian"), std::string::npos);
}

TEST(GgufHostile, HugeCountsFailFastWithoutAllocating) {
  std::string msg = parse_error(Raw().header(0, uint64_t{1} << 60).zeros(64).b);
  EXPECT_NE(msg.find("metadata count"), std::string::npos) << msg;
  msg = parse_error(Raw().header(~uint64_t{0}, 0).zeros(64).b);
  EXPECT_NE(msg.find("tensor count"), std::string::npos) << msg;
  // Each fits alone, together they do not.
  msg = parse_error(Raw().header(3, 3).zeros(100).b);
  EXPECT_NE(msg.find("count"), std::string::npos) << msg;

  // An array of 2^60 strings, of 2^61 u32 and of 2^64-1 u8.
  Raw r;
  r.header(0, 1).str("tokenizer.ggml.tokens").put<uint32_t>(9).put<uint32_t>(8);
  r.put<uint64_t>(uint64_t{1} << 60).zeros(64);
  msg = parse_error(r.b);
  EXPECT_NE(msg.find("tokenizer.ggml.tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1152921504606846976"), std::string::npos) << msg;
  Raw r2;
  r2.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(uint64_t{1} << 61);
  EXPECT_NE(parse_error(r2.zeros(64).b).find("'k'"), std::string::npos);
  Raw r3;
  r3.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(0).put<uint64_t>(~uint64_t{0});
  EXPECT_NE(parse_error(r3.zeros(64).b).find("does not fit"), std::string::npos);
}

TEST(GgufHostile, StringLengthsBeyondTheFile) {
  Raw r;
  r.header(0, 1).put<uint64_t>(1000).zeros(20);  // key length 1000, 20 bytes left
  std::string msg = parse_error(r.b);
  EXPECT_NE(msg.find("string length 1000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at byte 24"), std::string::npos) << msg;
  Raw r2;
  r2.header(0, 1).str("general.name").put<uint32_t>(8).put<uint64_t>(~uint64_t{0}).zeros(8);
  msg = parse_error(r2.b);
  EXPECT_NE(msg.find("general.name"), std::string::npos) << msg;
  EXPECT_NE(msg.find("18446744073709551615"), std::string::npos) << msg;
  Raw r3;
  r3.header(1, 0).put<uint64_t>(uint64_t{1} << 62).zeros(40);  // tensor name length
  EXPECT_NE(parse_error(r3.b).find("tensor #0 name"), std::string::npos);
}

TEST(GgufHostile, BadMetadata) {
  Raw nested;
  nested.header(0, 1).str("n").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1).zeros(32);
  EXPECT_NE(parse_error(nested.b).find("nested"), std::string::npos);

  Raw unknown;
  unknown.header(0, 1).str("weird").put<uint32_t>(13).zeros(16);
  std::string msg = parse_error(unknown.b);
  EXPECT_NE(msg.find("unknown value type 13"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'weird'"), std::string::npos) << msg;

  Raw unknown_elem;
  unknown_elem.header(0, 1).str("a").put<uint32_t>(9).put<uint32_t>(99).put<uint64_t>(0).zeros(8);
  EXPECT_NE(parse_error(unknown_elem.b).find("element type 99"), std::string::npos);

  Raw empty_key;
  empty_key.header(0, 1).str("").put<uint32_t>(4).put<uint32_t>(1).zeros(8);
  EXPECT_NE(parse_error(empty_key.b).find("empty"), std::string::npos);

  Raw dup;
  dup.header(0, 2).kv_u32("llama.block_count", 1).kv_u32("llama.block_count", 2);
  msg = parse_error(dup.b);
  EXPECT_NE(msg.find("duplicate"), std::string::npos) << msg;
  EXPECT_NE(msg.find("llama.block_count"), std::string::npos) << msg;

  Raw bad_bool;
  bad_bool.header(0, 1).str("b").put<uint32_t>(7).put<uint8_t>(2).zeros(8);
  EXPECT_NE(parse_error(bad_bool.b).find("bool"), std::string::npos);
}

TEST(GgufHostile, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u, 0x80000001u}) {
    const std::string msg = parse_error(Raw().header(0, 1).kv_u32("general.alignment", a).b);
    EXPECT_NE(msg.find("general.alignment"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(a)), std::string::npos) << msg;
  }
  Raw wrong_type;
  wrong_type.header(0, 1).str("general.alignment").put<uint32_t>(10).put<uint64_t>(32);
  const std::string msg = parse_error(wrong_type.b);
  EXPECT_NE(msg.find("u64"), std::string::npos) << msg;

  GgufWriter w;
  w.set_u32("general.alignment", 24);
  EXPECT_THROW(w.to_bytes(), Error);
}

// A file with one tensor info (or more) and `data` bytes of tensor data after the padding.
Bytes tensor_file(
    const std::vector<std::tuple<std::string, std::vector<uint64_t>, uint32_t, uint64_t>>& ts,
    size_t data) {
  Raw r;
  r.header(ts.size(), 0);
  for (const auto& [name, ne, type, off] : ts) r.tensor(name, ne, type, off);
  return r.pad().zeros(data).b;
}

TEST(GgufHostile, BadTensorInfos) {
  std::string msg = parse_error(tensor_file({{"t", {}, 0, 0}}, 64));
  EXPECT_NE(msg.find("0 dimensions"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {1, 1, 1, 1, 1}, 0, 0}}, 64));
  EXPECT_NE(msg.find("5 dimensions"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"blk.0.attn_q.weight", {4, 0}, 0, 0}}, 64));
  EXPECT_NE(msg.find("blk.0.attn_q.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dimension 1 is 0"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {uint64_t{1} << 63}, 0, 0}}, 64));
  EXPECT_NE(msg.find("9223372036854775808"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0}}, 64));
  EXPECT_NE(msg.find("overflow"), std::string::npos) << msg;
  // Element count fits int64, byte size does not.
  msg = parse_error(tensor_file({{"t", {uint64_t{1} << 31, uint64_t{1} << 31}, 28, 0}}, 64));
  EXPECT_NE(msg.find("overflow"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {33, 2}, 8, 0}}, 128));
  EXPECT_NE(msg.find("row length 33"), std::string::npos) << msg;
  EXPECT_NE(msg.find("q8_0"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {4}, 77, 0}}, 64));
  EXPECT_NE(msg.find("unknown tensor type id 77"), std::string::npos) << msg;
  EXPECT_NE(parse_error(tensor_file({{"t", {4}, 4, 0}}, 64)).find("id 4"), std::string::npos);
  msg = parse_error(tensor_file({{"", {4}, 0, 0}}, 64));
  EXPECT_NE(msg.find("empty name"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {4}, 0, 0}, {"t", {4}, 0, 32}}, 64));
  EXPECT_NE(msg.find("duplicate tensor 't'"), std::string::npos) << msg;
}

TEST(GgufHostile, TensorDataOutOfRangeMisalignedOrOverlapping) {
  // Header: 24 + name (8 + 19) + n_dims 4 + ne 8 + type 4 = 67, where the offset field is;
  // it ends at 75, so the data section starts at 96.
  std::string msg = parse_error(tensor_file({{"blk.0.attn_q.weight", {16}, 0, 32}}, 64));
  EXPECT_EQ(msg,
            "t.gguf: tensor 'blk.0.attn_q.weight': data [128, 192) extends past end of file "
            "(160 bytes) (at byte 67)");
  msg = parse_error(tensor_file({{"t", {16}, 0, 0xffffffffffffffe0ull}}, 64));
  EXPECT_NE(msg.find("extends past end of file"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {16}, 0, 0}}, 63));
  EXPECT_NE(msg.find("extends past end of file"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"t", {4}, 0, 8}}, 64));
  EXPECT_NE(msg.find("offset 8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("alignment 32"), std::string::npos) << msg;
  msg = parse_error(tensor_file({{"a", {16}, 0, 0}, {"b", {8}, 0, 32}}, 128));
  EXPECT_NE(msg.find("overlaps"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'a'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'b'"), std::string::npos) << msg;
  // Same ranges listed the other way round, and identical offsets.
  EXPECT_NE(parse_error(tensor_file({{"b", {8}, 0, 32}, {"a", {16}, 0, 0}}, 128)).find("overlaps"),
            std::string::npos);
  EXPECT_NE(parse_error(tensor_file({{"a", {8}, 0, 0}, {"b", {8}, 0, 0}}, 128)).find("overlaps"),
            std::string::npos);
  // Adjacent ranges are fine, in any order.
  EXPECT_NO_THROW(GgufFile::parse(tensor_file({{"b", {8}, 0, 32}, {"a", {8}, 0, 0}}, 64)));
}

TEST(GgufHostile, WriterRefusesInconsistentInput) {
  GgufWriter w;
  const Bytes d(64);
  EXPECT_THROW(w.add_tensor("t", {16}, TensorType::F32, d.data(), 60), Error);
  EXPECT_THROW(w.add_tensor("t", {33}, TensorType::Q8_0, d.data(), 34), Error);
  EXPECT_THROW(w.add_tensor("t", {}, TensorType::F32, d.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("t", {0}, TensorType::F32, d.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("", {16}, TensorType::F32, d.data(), 64), Error);
  w.add_tensor("t", {16}, TensorType::F32, d.data(), 64);
  EXPECT_THROW(w.add_tensor("t", {16}, TensorType::F32, d.data(), 64), Error);
  EXPECT_THROW(w.set_u32("", 1), Error);
  GgufValue nested;
  nested.type = GgufType::ARRAY;
  nested.elem_type = GgufType::ARRAY;
  EXPECT_THROW(w.set_value("n", nested), Error);
  GgufValue short_raw = array_of<uint32_t>(GgufType::UINT32, {1, 2});
  short_raw.count = 3;
  EXPECT_THROW(w.set_value("s", short_raw), Error);
}

TEST(GgufHostile, WriteFailureNamesThePathAndLeavesNoFile) {
  GgufWriter w;
  w.set_u32("x", 1);
  const std::string path = "/nonexistent-dir/out.gguf";
  const std::string msg = error_of([&] { w.write(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  // Writing over a directory fails at rename; the temporary file is removed.
  const std::string dir = temp_path("a_dir.gguf");
  std::filesystem::create_directories(dir + "/sub");
  EXPECT_THROW(w.write(dir), Error);
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::path(dir).parent_path())) {
    EXPECT_EQ(e.path().string().find(dir + ".tmp"), std::string::npos) << e.path();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace engram

namespace engram {
namespace {

// The fuzz seed corpus (tools/py/make_fuzz_seeds.py) also runs here, so the sanitizer build
// of the unit tests covers it even where libFuzzer is unavailable: valid_* files parse,
// bad_* files are refused with engram::Error.
TEST(GgufSeeds, CorpusParsesOrFailsCleanly) {
  const std::filesystem::path dir = std::filesystem::path(ENGRAM_SOURCE_DIR) / "fuzz/corpus/gguf";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    std::ifstream in(e.path(), std::ios::binary);
    const Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (name.rfind("valid_", 0) == 0) {
      EXPECT_NO_THROW(GgufFile::parse(b, name)) << name;
    } else {
      EXPECT_THROW(GgufFile::parse(b, name), Error) << name;
    }
    ++n;
  }
  EXPECT_GE(n, 8);
}

}  // namespace
}  // namespace engram
