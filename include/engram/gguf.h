// GGUF files: a validating reader over mmap and a writer.
//
// The reader checks every count, length, offset and dimension against the file before it
// trusts it; a truncated or hostile file raises engram::Error naming the problem and the
// byte offset, never crashes and never allocates more than the file could describe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engram/tensor_type.h"

namespace engram {

enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

const char* gguf_type_name(GgufType type);

// One metadata value. Scalars live in the matching member; arrays keep their element type,
// with numeric elements as raw little-endian bytes and string elements decoded.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  GgufType elem_type = GgufType::UINT8;  // arrays only
  uint64_t u64 = 0;                      // UINT8..UINT64 and BOOL
  int64_t i64 = 0;                       // INT8..INT64
  double f64 = 0;                        // FLOAT32, FLOAT64
  std::string str;                       // STRING
  std::vector<std::string> strings;      // ARRAY of STRING
  std::vector<uint8_t> raw;              // ARRAY of numbers/bools
  uint64_t count = 0;                    // ARRAY length

  bool is_integer() const;
  bool is_float() const;
  // Short human-readable rendering ("[32000 x string]", "0.5", "llama").
  std::string to_display() const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // dimensions, innermost (row length) first
  uint32_t type = 0;        // ggml type id (see TensorType)
  uint64_t offset = 0;      // relative to the data section
  uint64_t nbytes = 0;      // size of the data, computed from ne and type
  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Memory-maps and validates the file. Throws engram::Error.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Validates an in-memory image (tests, fuzzing). The bytes must outlive the object.
  static std::unique_ptr<GgufFile> parse(std::span<const uint8_t> bytes,
                                         std::string name = "<memory>");
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }

  // Metadata, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. The variants without a default throw when the key is missing; all throw
  // when the value has an incompatible type (integers widen; ints convert to float).
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, const std::string& dflt) const;
  uint64_t get_uint(std::string_view key) const;
  uint64_t get_uint(std::string_view key, uint64_t dflt) const;
  int64_t get_int(std::string_view key, int64_t dflt) const;
  double get_float(std::string_view key) const;
  double get_float(std::string_view key, double dflt) const;
  bool get_bool(std::string_view key, bool dflt) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;

  // Tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;

 private:
  GgufFile() = default;
  void parse_all();

  std::string path_;
  std::span<const uint8_t> bytes_;
  void* map_ = nullptr;  // mmap base when opened from a file
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

// Builds a GGUF v3 file in memory and writes it. Tensor data is copied in.
class GgufWriter {
 public:
  void set_string(const std::string& key, const std::string& v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // Copies any value (used to carry metadata over, e.g. by `engram quantize`).
  void set_value(const std::string& key, const GgufValue& v);

  // ne innermost first, as in GgufTensorInfo. nbytes must match the type geometry.
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, TensorType type,
                  const void* data, size_t nbytes);

  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;  // throws engram::Error on I/O failure

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    TensorType type;
    std::vector<uint8_t> data;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace engram
