// Binds GGUF tensors to the views the kernels read, checking name, shape and type, with
// errors that name the file, the tensor and what was expected (the model loaders share it).
#pragma once

#include <fmt/format.h>

#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/gguf.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"

namespace engram {

class Binder {
 public:
  explicit Binder(const GgufFile& f) : f_(f) {}

  const GgufTensorInfo& find(const std::string& name) const {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (!t) throw Error(fmt::format("{}: missing tensor '{}'", f_.path(), name));
    return *t;
  }

  // A matrix with `rows` rows of `cols` elements (GGUF ne = [cols, rows]).
  WeightMatrix matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const GgufTensorInfo& t = find(name);
    const TensorTypeInfo* info = tensor_type_info(t.type);
    if (!info || !info->supported) {
      throw Error(
          fmt::format("{}: tensor '{}' has type {}, which engram does not support "
                      "(supported: f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)",
                      f_.path(), name, tensor_type_name(t.type)));
    }
    if (t.ne.size() != 2 || t.ne[0] != cols || t.ne[1] != rows) {
      throw Error(fmt::format("{}: tensor '{}' has shape {}, expected [{}, {}]", f_.path(), name,
                              shape(t), cols, rows));
    }
    WeightMatrix w;
    w.type = static_cast<TensorType>(t.type);
    w.data = f_.tensor_data(t);
    w.rows = rows;
    w.cols = cols;
    w.row_bytes = tensor_row_bytes(w.type, cols);
    return w;
  }

  // A 1-D tensor of n elements, converted to f32.
  std::vector<float> vec(const std::string& name, int64_t n) const {
    const GgufTensorInfo& t = find(name);
    if (t.ne.size() != 1 || t.ne[0] != n) {
      throw Error(
          fmt::format("{}: tensor '{}' has shape {}, expected [{}]", f_.path(), name, shape(t), n));
    }
    const TensorTypeInfo* info = tensor_type_info(t.type);
    if (!info || !info->supported) {
      throw Error(fmt::format("{}: tensor '{}' has unsupported type {}", f_.path(), name,
                              tensor_type_name(t.type)));
    }
    std::vector<float> out(n);
    dequantize_row(static_cast<TensorType>(t.type), f_.tensor_data(t), out.data(), n);
    return out;
  }

  static std::string shape(const GgufTensorInfo& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.ne.size(); ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
    return s + "]";
  }

 private:
  const GgufFile& f_;
};

// An unsigned metadata value in [1, max].
inline int positive_int(const GgufFile& f, const std::string& key, uint64_t max) {
  uint64_t v = f.get_uint(key);
  if (v == 0 || v > max) {
    throw Error(
        fmt::format("{}: metadata '{}' = {} is out of range [1, {}]", f.path(), key, v, max));
  }
  return static_cast<int>(v);
}

}  // namespace engram
