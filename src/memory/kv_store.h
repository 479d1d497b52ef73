// K/V tensors of the cached cells, per layer, in f32. Cell c of layer l holds the key (rotated
// at the cell's stream position, or before RoPE when the policy asks) and the value of one
// token: [n_cells, n_head_kv * head_dim].
#pragma once

#include <cstdint>
#include <vector>

namespace engram {

class KvStore {
 public:
  KvStore(int n_layer, int kv_dim) : kv_dim_(kv_dim), k_(n_layer), v_(n_layer) {}

  int kv_dim() const { return kv_dim_; }
  int64_t size() const { return n_cells_; }

  // Makes room for cells [0, n) in every layer (contents of new cells are undefined).
  void resize(int64_t n) {
    for (auto& t : k_) t.resize(static_cast<size_t>(n) * kv_dim_);
    for (auto& t : v_) t.resize(static_cast<size_t>(n) * kv_dim_);
    n_cells_ = n;
  }
  // Drops cells [begin, end) of every layer; later cells move down. Capacity is released once
  // the store holds under half of it, so a stream that forgets stays bounded in RAM.
  void erase(int64_t begin, int64_t end) {
    for (auto* ts : {&k_, &v_}) {
      for (auto& t : *ts) {
        t.erase(t.begin() + begin * kv_dim_, t.begin() + end * kv_dim_);
        if (t.size() * 2 < t.capacity()) t.shrink_to_fit();
      }
    }
    n_cells_ -= end - begin;
  }
  void reserve(int64_t n) {
    for (auto& t : k_) t.reserve(static_cast<size_t>(n) * kv_dim_);
    for (auto& t : v_) t.reserve(static_cast<size_t>(n) * kv_dim_);
  }

  float* k(int layer, int64_t cell) { return k_[layer].data() + cell * kv_dim_; }
  float* v(int layer, int64_t cell) { return v_[layer].data() + cell * kv_dim_; }
  const float* k(int layer, int64_t cell) const { return k_[layer].data() + cell * kv_dim_; }
  const float* v(int layer, int64_t cell) const { return v_[layer].data() + cell * kv_dim_; }

  uint64_t bytes() const {
    uint64_t b = 0;
    for (const auto& t : k_) b += t.capacity() * sizeof(float);
    for (const auto& t : v_) b += t.capacity() * sizeof(float);
    return b;
  }

 private:
  int kv_dim_;
  int64_t n_cells_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace engram
