// K/V tensors of the cached cells, per layer. Cell c of layer l holds the key (rotated at the
// cell's stream position, or before RoPE when the policy asks) and the value of one token:
// [n_cells, n_head_kv * head_dim]. Stored as f32, or as f16 (half the RAM) when the policy
// asks; f16 cells are read through read_k/read_v, which convert.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engram/tensor_type.h"
#include "kernels/quant.h"

namespace engram {

class KvStore {
 public:
  KvStore(int n_layer, int kv_dim, bool f16 = false)
      : kv_dim_(kv_dim), f16_(f16), k_(n_layer), v_(n_layer), kh_(n_layer), vh_(n_layer) {}

  int kv_dim() const { return kv_dim_; }
  bool f16() const { return f16_; }
  int64_t size() const { return n_cells_; }

  // Makes room for cells [0, n) in every layer (contents of new cells are undefined).
  void resize(int64_t n) {
    const size_t len = static_cast<size_t>(n) * kv_dim_;
    for (size_t l = 0; l < k_.size(); ++l) {
      if (f16_) {
        kh_[l].resize(len);
        vh_[l].resize(len);
      } else {
        k_[l].resize(len);
        v_[l].resize(len);
      }
    }
    n_cells_ = n;
  }
  void reserve(int64_t n) {
    const size_t len = static_cast<size_t>(n) * kv_dim_;
    for (size_t l = 0; l < k_.size(); ++l) {
      if (f16_) {
        kh_[l].reserve(len);
        vh_[l].reserve(len);
      } else {
        k_[l].reserve(len);
        v_[l].reserve(len);
      }
    }
  }
  // Drops cells [begin, end) of every layer; later cells move down. Capacity is released once
  // the store holds under half of it, so a stream that forgets stays bounded in RAM.
  void erase(int64_t begin, int64_t end) {
    erase_all(k_, begin, end);
    erase_all(v_, begin, end);
    erase_all(kh_, begin, end);
    erase_all(vh_, begin, end);
    n_cells_ -= end - begin;
  }

  void write(int layer, int64_t cell, const float* k, const float* v) {
    const size_t at = static_cast<size_t>(cell) * kv_dim_;
    if (f16_) {
      quantize_row(TensorType::F16, k, kh_[layer].data() + at, kv_dim_);
      quantize_row(TensorType::F16, v, vh_[layer].data() + at, kv_dim_);
    } else {
      std::copy(k, k + kv_dim_, k_[layer].data() + at);
      std::copy(v, v + kv_dim_, v_[layer].data() + at);
    }
  }
  void read_k(int layer, int64_t cell, float* out) const { read(k_, kh_, layer, cell, out); }
  void read_v(int layer, int64_t cell, float* out) const { read(v_, vh_, layer, cell, out); }

  // Direct pointers, f32 stores only.
  float* k(int layer, int64_t cell) { return k_[layer].data() + cell * kv_dim_; }
  float* v(int layer, int64_t cell) { return v_[layer].data() + cell * kv_dim_; }
  const float* k(int layer, int64_t cell) const { return k_[layer].data() + cell * kv_dim_; }
  const float* v(int layer, int64_t cell) const { return v_[layer].data() + cell * kv_dim_; }

  uint64_t bytes() const {
    uint64_t b = 0;
    for (const auto& t : k_) b += t.capacity() * sizeof(float);
    for (const auto& t : v_) b += t.capacity() * sizeof(float);
    for (const auto& t : kh_) b += t.capacity() * sizeof(uint16_t);
    for (const auto& t : vh_) b += t.capacity() * sizeof(uint16_t);
    return b;
  }

 private:
  template <typename T>
  void erase_all(std::vector<std::vector<T>>& ts, int64_t begin, int64_t end) {
    for (auto& t : ts) {
      if (t.empty()) continue;
      t.erase(t.begin() + begin * kv_dim_, t.begin() + end * kv_dim_);
      if (t.size() * 2 < t.capacity()) t.shrink_to_fit();
    }
  }
  void read(const std::vector<std::vector<float>>& f, const std::vector<std::vector<uint16_t>>& h,
            int layer, int64_t cell, float* out) const {
    const size_t at = static_cast<size_t>(cell) * kv_dim_;
    if (f16_) {
      dequantize_row(TensorType::F16, h[layer].data() + at, out, kv_dim_);
    } else {
      std::copy(f[layer].data() + at, f[layer].data() + at + kv_dim_, out);
    }
  }

  int kv_dim_;
  bool f16_;
  int64_t n_cells_ = 0;
  std::vector<std::vector<float>> k_, v_;
  std::vector<std::vector<uint16_t>> kh_, vh_;
};

}  // namespace engram
